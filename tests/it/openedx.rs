//! `target.kind = "openedx"` through the built binary: `check` against openedx-sim (issue 17 §6).

use canvas_sim::Seed;
use canvas_sim::openedx::{
    OpenEdxHandle, OpenEdxOptions, OpenEdxSeed, SeedClient, SeedLmsUser, SeedProgram,
    SeedProgramCourseEnrollment, SeedProgramEnrollment, spawn,
};

use crate::support::*;

const PROGRAM: &str = "00000000-1111-2222-3333-444444444444";
const CURRICULUM: &str = "aaaaaaaa-1111-2222-3333-444444444444";
const RUN: &str = "course-v1:MITx+6.002x+2026";
const SECRET: &str = "sentinel-openedx-secret-91c2";

async fn lms() -> OpenEdxHandle {
    spawn(OpenEdxOptions {
        seed: OpenEdxSeed::default()
            .client(SeedClient::new("rostersync", SECRET, "svc"))
            .client(SeedClient::new("partner", SECRET, "svc").restricted())
            .user(SeedLmsUser::new("svc").staff())
            .program(SeedProgram::new(PROGRAM, "MITx").curriculum(CURRICULUM, &[RUN])),
        ..OpenEdxOptions::default()
    })
    .await
    .expect("openedx-sim starts")
}

fn openedx_extra(lms: &OpenEdxHandle, client_id: &str) -> String {
    format!(
        "[target]\nkind = \"openedx\"\n[openedx]\nbase_url = \"{}\"\nclient_id = \"{client_id}\"\n\
         client_secret = \"{SECRET}\"\n",
        lms.base_url()
    )
}

#[tokio::test]
async fn openedx_check_reads_a_token_and_each_managed_program_and_names_a_restricted_application() {
    let env = TestEnv::new(Seed::default()).await;
    let lms = lms().await;
    env.sis(&[
        ("learner-1", PROGRAM, None, "learner", None),
        ("learner-1", PROGRAM, Some(RUN), "learner", None),
    ])
    .await;
    let out = env
        .cli(&["check"], &openedx_extra(&lms, "rostersync"))
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok    openedx "), "{stdout}");
    assert!(
        stdout.contains(&format!("{PROGRAM}: 0 program enrollment(s)")),
        "{stdout}"
    );
    assert_eq!(env.writes(), 0, "Canvas is not reached with kind = openedx");

    let out = env.cli(&["check"], &openedx_extra(&lms, "partner")).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("restricted application"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET), "{text}");
    }
    lms.shutdown().await;
}

// ---- The cycle against Open edX (issue 17 §1, §3): through the built binary, a real PostgreSQL, openedx-sim. ----

const PROGRAM_2: &str = "00000000-1111-2222-3333-555555555555";
const CURRICULUM_2: &str = "bbbbbbbb-1111-2222-3333-555555555555";
const RUN_B: &str = "course-v1:MITx+18.01x+2026";
/// A small university's first sync: the brake's ratios are for districts, not for a handful of learners.
const LOOSE: &str = "[reconcile]\nmax_removal_ratio = 1.0\nmax_course_removal_ratio = 1.0\n";

/// A university: two programs sharing a run, a SAML provider so that learners with an SSO account get linked.
fn university() -> OpenEdxSeed {
    let mut seed = OpenEdxSeed::default()
        .client(SeedClient::new("rostersync", SECRET, "svc"))
        .user(SeedLmsUser::new("svc").staff())
        .user(SeedLmsUser::new("ada").with_social_uid("mit:Learner-1"))
        .program(SeedProgram::new(PROGRAM, "MITx").curriculum(CURRICULUM, &[RUN, RUN_B]))
        .program(SeedProgram::new(PROGRAM_2, "MITx").curriculum(CURRICULUM_2, &[RUN]));
    seed.saml_providers
        .push(canvas_sim::openedx::SeedSamlProvider {
            slug: "mit".into(),
            organization: "MITx".into(),
        });
    seed
}

async fn lms_with(seed: OpenEdxSeed) -> OpenEdxHandle {
    spawn(OpenEdxOptions {
        seed,
        ..OpenEdxOptions::default()
    })
    .await
    .expect("openedx-sim starts")
}

/// The SIS of an Open edX university: the five columns and `curriculum_uuid`.
type OpenEdxRow<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

async fn openedx_sis(env: &TestEnv, rows: &[OpenEdxRow<'_>]) {
    sqlx::query("ALTER TABLE sis_enrollments ADD COLUMN IF NOT EXISTS curriculum_uuid text")
        .execute(&env.pool)
        .await
        .expect("curriculum column");
    sqlx::query("TRUNCATE sis_enrollments")
        .execute(&env.pool)
        .await
        .expect("truncate");
    for (user, program, run, role, status, curriculum) in rows {
        sqlx::query("INSERT INTO sis_enrollments VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(*user)
            .bind(*program)
            .bind(*run)
            .bind(*role)
            .bind(*status)
            .bind(*curriculum)
            .execute(&env.pool)
            .await
            .expect("insert SIS row");
    }
}

/// The config of an Open edX deployment: no [canvas] table is needed (TestEnv writes one; it is ignored).
fn openedx_config(lms: &OpenEdxHandle, extra: &str) -> String {
    format!(
        "{}[sis]\nenrollments_query = \"SELECT user_id, course_id, section_id, role, status, curriculum_uuid FROM sis_enrollments\"\n{extra}",
        openedx_extra(lms, "rostersync")
    )
}

async fn reconcile(
    env: &TestEnv,
    lms: &OpenEdxHandle,
    args: &[&str],
    extra: &str,
) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["reconcile", "--json"];
    all.extend_from_slice(args);
    let out = env.cli(&all, &openedx_config(lms, extra)).await;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(SECRET), "the client secret leaked: {text}");
    (out.status.code(), json_report(&out), text)
}

fn run_of(report: &serde_json::Value) -> String {
    report["run_id"].as_str().expect("run_id").to_owned()
}

fn program_status(lms: &OpenEdxHandle, program: &str, key: &str) -> Option<(String, bool)> {
    lms.with_store(|s| {
        s.program_enrollment(program, key)
            .map(|e| (e.status.clone(), e.username.is_some()))
    })
}

fn run_status(lms: &OpenEdxHandle, program: &str, run: &str, key: &str) -> Option<(String, bool)> {
    lms.with_store(|s| {
        s.program_course_enrollment(program, run, key)
            .map(|e| (e.status.clone(), s.is_course_staff(e)))
    })
}

fn puts(lms: &OpenEdxHandle) -> usize {
    lms.requests().iter().filter(|r| r.method == "PUT").count()
}

#[tokio::test]
async fn openedx_first_cycle_converges_the_second_plans_nothing_and_a_dry_run_writes_nothing() {
    let env = TestEnv::new(Seed::default()).await;
    let mut seed = university();
    // Drift: a learner the SIS no longer lists, active in a run.
    seed = seed
        .enrollment(SeedProgramEnrollment::new(
            "learner-9",
            PROGRAM,
            CURRICULUM,
            "enrolled",
        ))
        .course_enrollment(SeedProgramCourseEnrollment::new(
            "learner-9",
            PROGRAM,
            RUN,
            "active",
        ));
    let lms = lms_with(seed).await;
    let c = Some(CURRICULUM);
    openedx_sis(
        &env,
        &[
            // Has an SSO account: linked at creation.
            ("Learner-1", PROGRAM, None, None, None, c),
            ("Learner-1", PROGRAM, Some(RUN), Some("learner"), None, None),
            // No account yet: a waiting enrollment, staff in a run.
            (
                "learner-2",
                PROGRAM,
                None,
                Some("learner"),
                Some("pending"),
                c,
            ),
            ("learner-2", PROGRAM, Some(RUN_B), Some("staff"), None, None),
            // Must be created and names no curriculum: skipped with the reason.
            ("learner-3", PROGRAM, None, None, None, None),
            // Uppercase program UUID: skipped with the reason.
            (
                "learner-4",
                "ABCDEF00-1111-2222-3333-444444444444",
                None,
                None,
                None,
                c,
            ),
        ],
    )
    .await;

    let (code, dry, _) = reconcile(&env, &lms, &["--dry-run"], LOOSE).await;
    assert_eq!(code, Some(0), "{dry}");
    assert_eq!(puts(&lms), 0, "a dry run writes nothing");
    assert_eq!(dry["planned"]["enroll"].as_u64(), Some(4), "{dry}");
    assert_eq!(dry["planned"]["remove"].as_u64(), Some(2), "{dry}");

    let (code, first, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(first["applied"].as_u64(), Some(6), "{first}");
    assert_eq!(
        program_status(&lms, PROGRAM, "learner-1"),
        Some(("enrolled".into(), true)),
        "linked through SSO, stored in the SIS's casing"
    );
    assert_eq!(
        run_status(&lms, PROGRAM, RUN, "learner-1"),
        Some(("active".into(), false))
    );
    assert_eq!(
        program_status(&lms, PROGRAM, "learner-2"),
        Some(("pending".into(), false)),
        "waiting: enrolled all the same"
    );
    assert_eq!(
        run_status(&lms, PROGRAM, RUN_B, "learner-2"),
        Some(("active".into(), true))
    );
    assert_eq!(program_status(&lms, PROGRAM, "learner-3"), None);
    // The unlisted learner: course access taken away (run inactive), the program enrollment ended (conclude).
    assert_eq!(
        run_status(&lms, PROGRAM, RUN, "learner-9"),
        Some(("inactive".into(), false))
    );
    assert_eq!(
        program_status(&lms, PROGRAM, "learner-9"),
        Some(("ended".into(), false))
    );

    let rows = env.audit(&run_of(&first)).await;
    let skipped: Vec<&AuditRecord> = rows.iter().filter(|r| r.outcome == "skipped").collect();
    assert!(
        skipped
            .iter()
            .any(|r| r.user_id.as_deref() == Some("learner-3")
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("no curriculum_uuid"))),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|r| r.user_id.as_deref() == Some("learner-4")
                && r.error.as_deref().is_some_and(|e| e.contains("uppercase"))),
        "{skipped:?}"
    );
    let removal = rows
        .iter()
        .find(|r| r.user_id.as_deref() == Some("learner-9") && r.section_id.is_none())
        .expect("program removal row");
    assert_eq!(
        (
            removal.action.as_str(),
            removal.state_before.as_deref(),
            removal.state_after.as_deref()
        ),
        ("remove", Some("enrolled"), Some("ended")),
        "audited in Open edX's words"
    );
    let targets: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT target FROM rostersync.audit_log UNION SELECT DISTINCT target FROM rostersync.sync_runs",
    )
    .fetch_all(&env.pool)
    .await
    .expect("targets");
    assert_eq!(targets, vec!["openedx".to_owned()]);

    let before = puts(&lms);
    let (code, second, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(0), "{text}");
    for action in ["enroll", "remove", "change_role", "change_state"] {
        assert_eq!(
            second["planned"][action].as_u64(),
            Some(0),
            "{action}: {second}"
        );
    }
    assert_eq!(puts(&lms), before, "the second cycle writes nothing");

    // The linked learner is retired in Open edX: never cancelled, never re-created.
    assert_eq!(lms.with_store(|s| s.retire_user("ada")), 1);
    let (code, third, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(puts(&lms), before, "nothing written for a retired learner");
    let rows = env.audit(&run_of(&third)).await;
    assert!(
        rows.iter()
            .any(|r| r.user_id.as_deref() == Some("Learner-1")
                && r.outcome == "skipped"
                && r.error.as_deref().is_some_and(|e| e.contains("retired"))),
        "{rows:?}"
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log WHERE error LIKE $1 OR steps::text LIKE $1",
    )
    .bind(format!("%{SECRET}%"))
    .fetch_one(&env.pool)
    .await
    .expect("audit search");
    assert_eq!(stored, 0);
    lms.shutdown().await;
}

/// 20 learners enrolled in Open edX, and a SIS export that cancels every one of them.
async fn a_bad_export_cancels_twenty() -> (TestEnv, OpenEdxHandle, Vec<String>) {
    let env = TestEnv::new(Seed::default()).await;
    let keys: Vec<String> = (0..20).map(|i| format!("learner-{i:02}")).collect();
    let seed = keys.iter().fold(university(), |seed, k| {
        seed.enrollment(SeedProgramEnrollment::new(
            k, PROGRAM, CURRICULUM, "enrolled",
        ))
    });
    let lms = lms_with(seed).await;
    let rows: Vec<OpenEdxRow<'_>> = keys
        .iter()
        .map(|k| {
            (
                k.as_str(),
                PROGRAM,
                None,
                None,
                Some("canceled"),
                Some(CURRICULUM),
            )
        })
        .collect();
    openedx_sis(&env, &rows).await;
    (env, lms, keys)
}

#[tokio::test]
async fn openedx_the_brake_holds_a_mass_cancel_from_a_bad_export() {
    let (env, lms, keys) = a_bad_export_cancels_twenty().await;
    let (code, report, text) = reconcile(&env, &lms, &[], "").await;
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(report["held"].as_u64(), Some(20), "{report}");
    assert_eq!(puts(&lms), 0, "nothing cancelled");
    assert!(
        keys.iter()
            .all(|k| program_status(&lms, PROGRAM, k).is_some_and(|(s, _)| s == "enrolled"))
    );
    lms.shutdown().await;
}

#[tokio::test]
async fn openedx_a_learner_moved_between_programs_ends_active_only_in_the_new_one_and_a_207_audits_each_key()
 {
    let env = TestEnv::new(Seed::default()).await;
    let seed = university()
        // learner-5 moves from PROGRAM to PROGRAM_2 (both have RUN).
        .enrollment(SeedProgramEnrollment::new(
            "learner-5",
            PROGRAM,
            CURRICULUM,
            "enrolled",
        ))
        .course_enrollment(SeedProgramCourseEnrollment::new(
            "learner-5",
            PROGRAM,
            RUN,
            "active",
        ))
        // learner-6 is asked to be active in RUN through both programs: the second is Open edX's `conflict`.
        .enrollment(SeedProgramEnrollment::new(
            "learner-6",
            PROGRAM,
            CURRICULUM,
            "enrolled",
        ))
        .course_enrollment(SeedProgramCourseEnrollment::new(
            "learner-6",
            PROGRAM,
            RUN,
            "active",
        ));
    let lms = lms_with(seed).await;
    let (c1, c2) = (Some(CURRICULUM), Some(CURRICULUM_2));
    openedx_sis(
        &env,
        &[
            ("learner-5", PROGRAM_2, None, None, None, c2),
            ("learner-5", PROGRAM_2, Some(RUN), None, None, None),
            ("learner-6", PROGRAM, None, None, None, c1),
            ("learner-6", PROGRAM, Some(RUN), None, None, None),
            ("learner-6", PROGRAM_2, None, None, None, c2),
            ("learner-6", PROGRAM_2, Some(RUN), None, None, None),
        ],
    )
    .await;
    let (code, report, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(2), "one key failed: {text}");
    assert_eq!(
        run_status(&lms, PROGRAM, RUN, "learner-5"),
        Some(("inactive".into(), false))
    );
    assert_eq!(
        run_status(&lms, PROGRAM_2, RUN, "learner-5"),
        Some(("active".into(), false))
    );
    assert_eq!(
        run_status(&lms, PROGRAM, RUN, "learner-6"),
        Some(("active".into(), false))
    );
    assert_eq!(run_status(&lms, PROGRAM_2, RUN, "learner-6"), None);
    let activations = lms
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PUT"
                && r.path_and_query.contains(PROGRAM_2)
                && r.path_and_query.contains("/courses/")
        })
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(activations, vec![207], "one batch, a partial success");
    let rows = env.audit(&run_of(&report)).await;
    let in_run: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| {
            r.course_id.as_deref() == Some(PROGRAM_2) && r.section_id.as_deref() == Some(RUN)
        })
        .map(|r| (r.user_id.as_deref().unwrap_or_default(), r.outcome.as_str()))
        .collect();
    assert!(in_run.contains(&("learner-5", "applied")), "{in_run:?}");
    assert!(in_run.contains(&("learner-6", "failed")), "{in_run:?}");
    let conflict = rows
        .iter()
        .find(|r| r.user_id.as_deref() == Some("learner-6") && r.outcome == "failed")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(conflict.contains("`conflict`"), "{conflict}");
    lms.shutdown().await;
}

#[tokio::test]
async fn openedx_waiting_enrollments_are_kept_alive_before_they_expire() {
    let env = TestEnv::new(Seed::default()).await;
    let lms = lms_with(university()).await;
    openedx_sis(
        &env,
        &[("learner-7", PROGRAM, None, None, None, Some(CURRICULUM))],
    )
    .await;
    let (code, _, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        program_status(&lms, PROGRAM, "learner-7"),
        Some(("enrolled".into(), false))
    );
    let before = puts(&lms);
    let (_, quiet, _) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(
        puts(&lms),
        before,
        "written this cycle: not due yet: {quiet}"
    );

    // 40 days later (rostersync's own record of the write), past openedx.waiting_keepalive_days = 30.
    sqlx::query("UPDATE rostersync.openedx_learners SET written_at = now() - interval '40 days'")
        .execute(&env.pool)
        .await
        .expect("age the write");
    lms.advance_clock(std::time::Duration::from_secs(40 * 86_400));
    let (code, report, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(puts(&lms), before + 1, "one keep-alive write");
    let row = env
        .audit(&run_of(&report))
        .await
        .into_iter()
        .find(|r| r.user_id.as_deref() == Some("learner-7"))
        .expect("keep-alive row");
    assert_eq!(
        (
            row.action.as_str(),
            row.state_before.as_deref(),
            row.state_after.as_deref(),
            row.outcome.as_str()
        ),
        (
            "change_state",
            Some("enrolled"),
            Some("enrolled"),
            "applied"
        )
    );
    // Open edX's expiry of waiting enrollments unmodified for 60 days: 30 more days do not reach it.
    lms.advance_clock(std::time::Duration::from_secs(30 * 86_400));
    assert_eq!(
        lms.with_store(
            |s| s.expire_waiting_enrollments(std::time::Duration::from_secs(60 * 86_400))
        ),
        0
    );
    assert!(program_status(&lms, PROGRAM, "learner-7").is_some());

    // The SIS moves the learner to another curriculum: Open edX's API cannot, and the cycle says so.
    sqlx::query("UPDATE sis_enrollments SET curriculum_uuid = $1")
        .bind(CURRICULUM_2)
        .execute(&env.pool)
        .await
        .expect("new curriculum");
    let writes = puts(&lms);
    let (code, report, text) = reconcile(&env, &lms, &[], LOOSE).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(puts(&lms), writes, "nothing pretended");
    let said = env
        .audit(&run_of(&report))
        .await
        .into_iter()
        .find(|r| r.outcome == "skipped")
        .and_then(|r| r.error)
        .unwrap_or_default();
    assert!(said.contains("cannot be changed through the API"), "{said}");
    lms.shutdown().await;
}

#[tokio::test]
async fn openedx_held_cancels_are_applied_by_a_person_undone_and_explained() {
    let (env, lms, keys) = a_bad_export_cancels_twenty().await;
    let (code, tripped, text) = reconcile(&env, &lms, &[], "").await;
    assert_eq!(code, Some(3), "{text}");
    let config = openedx_config(&lms, "");

    // A person reviewed the held cancels and makes them.
    let out = env
        .cli(
            &["apply", &run_of(&tripped), "--by", "alice", "--json"],
            &config,
        )
        .await;
    let applied = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{applied}");
    assert_eq!(applied["applied"].as_u64(), Some(20), "{applied}");
    assert!(
        keys.iter()
            .all(|k| program_status(&lms, PROGRAM, k).is_some_and(|(s, _)| s == "canceled"))
    );

    // ...and takes them back.
    let out = env
        .cli(
            &["undo", &run_of(&applied), "--by", "bob", "--json"],
            &config,
        )
        .await;
    let undone = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{undone}");
    assert_eq!(undone["applied"].as_u64(), Some(20), "{undone}");
    assert!(
        keys.iter()
            .all(|k| program_status(&lms, PROGRAM, k).is_some_and(|(s, _)| s == "enrolled"))
    );

    // The help desk's question about one learner.
    let out = env
        .cli(&["explain", "--user", "LEARNER-03", "--json"], &config)
        .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let explained = json_report(&out);
    assert_eq!(
        explained["courses"],
        serde_json::json!([PROGRAM]),
        "{explained}"
    );
    assert!(
        text.contains("canceled") && text.contains("enrolled"),
        "{text}"
    );
    // Its history, recorded under the key as Open edX compares it, is found whatever the casing asked.
    assert!(
        explained["history"]
            .as_array()
            .is_some_and(|h| h.len() >= 2),
        "{explained}"
    );

    // The SIS drops a learner: Open edX cannot be asked for one learner's programs, but rostersync knows where
    // it wrote them, and explain shows the live enrollment and the removal it faces.
    sqlx::query("DELETE FROM sis_enrollments WHERE user_id = 'learner-04'")
        .execute(&env.pool)
        .await
        .expect("drop a learner");
    let out = env
        .cli(&["explain", "--user", "learner-04", "--json"], &config)
        .await;
    let explained = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{explained}");
    assert_eq!(
        explained["courses"],
        serde_json::json!([PROGRAM]),
        "{explained}"
    );
    assert_eq!(explained["sis_rows"], serde_json::json!([]), "{explained}");
    assert_eq!(
        explained["live"][0]["state"].as_str(),
        Some("enrolled"),
        "{explained}"
    );
    assert_eq!(
        explained["would_do"][0]["state_after"].as_str(),
        Some("ended"),
        "removal = conclude ends a program enrollment: {explained}"
    );
    // One nobody knows is still an error, not an empty answer...
    let out = env
        .cli(&["explain", "--user", "learner-99", "--json"], &config)
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("neither the SIS nor rostersync knows"),
        "{stderr}"
    );
    // ...unless the operator names the program: it is read, and a learner enrolled there by someone else is found.
    lms.with_store(|s| {
        s.add_program_enrollment(SeedProgramEnrollment::new(
            "learner-77",
            PROGRAM,
            CURRICULUM,
            "enrolled",
        ))
    });
    let out = env
        .cli(
            &[
                "explain",
                "--user",
                "learner-77",
                "--course",
                PROGRAM,
                "--json",
            ],
            &config,
        )
        .await;
    let explained = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{explained}");
    assert_eq!(
        explained["live"][0]["state"].as_str(),
        Some("enrolled"),
        "{explained}"
    );
    lms.shutdown().await;
}

#[tokio::test]
async fn openedx_a_batch_answered_500_fails_every_key_and_the_next_cycle_makes_them() {
    use canvas_sim::openedx::PROGRAM_ENROLLMENTS_ROUTE;
    use canvas_sim::{FaultAction, FaultOptions, FaultRule};
    let env = TestEnv::new(Seed::default()).await;
    let lms = lms_with(university()).await;
    let keys: Vec<String> = (0..30).map(|i| format!("learner-{i:02}")).collect();
    let rows: Vec<OpenEdxRow<'_>> = keys
        .iter()
        .map(|k| (k.as_str(), PROGRAM, None, None, None, Some(CURRICULUM)))
        .collect();
    openedx_sis(&env, &rows).await;
    lms.set_faults(FaultOptions::default().with_rule(FaultRule::on(
        "PUT",
        PROGRAM_ENROLLMENTS_ROUTE,
        FaultAction::status(500),
    )));
    let extra = "[limits]\nmax_retries = 1\n";
    let (code, report, text) = reconcile(&env, &lms, &[], extra).await;
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(report["failed"].as_u64(), Some(30), "{report}");
    assert_eq!(lms.with_store(|s| s.program_enrollments(PROGRAM).len()), 0);
    let rows = env.audit(&run_of(&report)).await;
    assert_eq!(rows.len(), 30, "one row per key");
    assert!(
        rows.iter().all(|r| r.outcome == "failed"
            && r.error
                .as_deref()
                .is_some_and(|e| e.contains("nothing of this request was applied"))),
        "{rows:?}"
    );
    lms.set_faults(FaultOptions::default());
    let (code, report, text) = reconcile(&env, &lms, &[], extra).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["applied"].as_u64(), Some(30), "{report}");
    assert_eq!(lms.with_store(|s| s.program_enrollments(PROGRAM).len()), 30);
    lms.shutdown().await;
}

#[tokio::test]
async fn openedx_the_daemon_is_ready_once_open_edx_accepts_it_and_its_cycles_converge() {
    use std::time::Duration;
    let env = TestEnv::new(Seed::default()).await;
    let lms = lms_with(university()).await;
    openedx_sis(
        &env,
        &[("learner-8", PROGRAM, None, None, None, Some(CURRICULUM))],
    )
    .await;
    let daemon = Daemon::start(&env, "*/2 * * * * *", &openedx_config(&lms, LOOSE)).await;
    daemon
        .wait_for(Duration::from_secs(20), |_, s| s == 200, "/readyz")
        .await;
    eventually(
        Duration::from_secs(20),
        || program_status(&lms, PROGRAM, "learner-8").is_some(),
        || daemon.log(),
    )
    .await;
    let log = daemon.log();
    assert!(!log.contains(SECRET), "{log}");
    assert_eq!(env.writes(), 0, "Canvas is never reached");
    // The target's requests are in the same families a Canvas daemon's are: the token, the reads, the write.
    let (_, text) = daemon.get("/metrics").await.expect("/metrics");
    for series in [
        "rostersync_canvas_requests_total{method=\"POST\",status=\"200\"}",
        "rostersync_canvas_requests_total{method=\"GET\",status=\"200\"}",
        "rostersync_canvas_requests_total{method=\"PUT\",status=\"200\"}",
    ] {
        assert!(
            metric(&text, series).unwrap_or(0.0) >= 1.0,
            "{series}\n{text}"
        );
    }
    assert!(!text.contains(SECRET));
    lms.shutdown().await;
}

#[tokio::test]
async fn openedx_a_cycle_with_a_restricted_application_exits_1_saying_so() {
    let env = TestEnv::new(Seed::default()).await;
    let lms = lms().await;
    openedx_sis(
        &env,
        &[("learner-1", PROGRAM, None, None, None, Some(CURRICULUM))],
    )
    .await;
    let config = format!(
        "{}[sis]\nenrollments_query = \"SELECT user_id, course_id, section_id, role, status, curriculum_uuid FROM sis_enrollments\"\n",
        openedx_extra(&lms, "partner")
    );
    let out = env.cli(&["reconcile", "--json"], &config).await;
    let report = json_report(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("restricted application"), "{error}");
    assert!(!format!("{report}").contains(SECRET));
    assert_eq!(
        lms.count("PUT", canvas_sim::openedx::PROGRAM_ENROLLMENTS_ROUTE),
        0
    );
    lms.shutdown().await;
}
