//! The large-account paths: live enrollments from the provisioning report, and changes through one SIS import.

use std::sync::Arc;
use std::time::Duration;

use canvas_sim::{FaultAction, FaultOptions, FaultRule, Seed};
use rostersync::metrics::Metrics;
use rostersync::reconcile::{CycleOptions, CycleReport, run_cycle};

use crate::support::*;

/// A SIS row with owned ids: user, course, section, role, status.
type OwnedRow = (String, String, String, &'static str, Option<&'static str>);

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
const SECTION_ENROLLMENTS: &str = "/api/v1/sections/:id/enrollments";
const SIS_IMPORTS: &str = "/api/v1/accounts/:account_id/sis_imports";
/// POST starts a report; GET lists the account's reports of that type.
const REPORTS: &str = "/api/v1/accounts/:account_id/reports/:report";
const REPORT: &str = "/api/v1/accounts/:account_id/reports/:report/:id";
const FILE_DOWNLOAD: &str = "/files/:id/download";

/// Three courses with SIS sections; drift of each kind; one SIS user that does not exist in Canvas.
fn district() -> (Seed, Vec<OwnedRow>) {
    let mut seed = Seed::default().role(adult_learner(20));
    let mut sis = Vec::new();
    for c in 0..3u64 {
        let course_id = 100 + c;
        let course_sis = format!("K{c}");
        let section_sis = format!("K{c}-A");
        seed = seed.course(course(course_id, &course_sis)).section(section(
            200 + c,
            course_id,
            &section_sis,
        ));
        for s in 0..10u64 {
            let uid = 1000 + c * 100 + s;
            let user_sis = format!("k{c}u{s}");
            seed = seed.user(user(uid, &user_sis));
            match s {
                // enrolled and listed
                0..=5 => {
                    seed = seed.enrollment(
                        enrolled(uid, course_id, STUDENT, "active").in_section(200 + c),
                    );
                    sis.push((
                        user_sis,
                        course_sis.clone(),
                        section_sis.clone(),
                        "student",
                        None,
                    ));
                }
                // listed, missing → enroll
                6 | 7 => sis.push((
                    user_sis,
                    course_sis.clone(),
                    section_sis.clone(),
                    "student",
                    None,
                )),
                // enrolled, not listed → remove
                8 => {
                    seed = seed
                        .enrollment(enrolled(uid, course_id, STUDENT, "active").in_section(200 + c))
                }
                // wrong role → change_role; concluded but listed → change_state
                _ => {
                    seed = seed.enrollment(
                        enrolled(uid, course_id, STUDENT, "completed").in_section(200 + c),
                    );
                    sis.push((
                        user_sis,
                        course_sis.clone(),
                        section_sis.clone(),
                        "student",
                        Some("active"),
                    ));
                }
            }
        }
        // A role change in each course.
        let uid = 1000 + c * 100 + 50;
        seed = seed
            .user(user(uid, &format!("k{c}t")))
            .enrollment(enrolled(uid, course_id, STUDENT, "active").in_section(200 + c));
        sis.push((
            format!("k{c}t"),
            course_sis.clone(),
            section_sis.clone(),
            "teacher",
            None,
        ));
    }
    sis.push(("ghost".into(), "K0".into(), "K0-A".into(), "student", None));
    (seed, sis)
}

async fn env_with(seed: Seed, sis: &[OwnedRow]) -> TestEnv {
    let env = TestEnv::new(seed).await;
    env.sim.with_store(|s| s.set_job_polls(1));
    let rows: Vec<Row5<'_>> = sis
        .iter()
        .map(|(u, c, s, r, st)| (u.as_str(), c.as_str(), Some(s.as_str()), *r, *st))
        .collect();
    env.sis(&rows).await;
    env
}

const LOOSE: &str = "[reconcile]\nmax_removal_ratio = 0.5";

#[tokio::test]
async fn the_provisioning_report_read_path_plans_what_per_course_listing_plans() {
    let (seed, sis) = district();
    let by_course = env_with(seed.clone(), &sis).await;
    let dry = rostersync::reconcile::CycleOptions {
        dry_run: true,
        ..Default::default()
    };
    let expected = by_course
        .reconcile_with(&format!("read_path = \"courses\"\n{LOOSE}"), dry.clone())
        .await;
    let by_report = env_with(seed, &sis).await;
    let got = by_report
        .reconcile_with(&format!("read_path = \"report\"\n{LOOSE}"), dry)
        .await;
    assert_eq!(got.details.read_path, "report");
    assert_eq!(got.planned, expected.planned, "{got:#?}");
    assert_eq!(
        got.details.live_enrollments,
        expected.details.live_enrollments
    );
    assert_eq!(
        by_report.sim.count("GET", COURSE_ENROLLMENTS),
        0,
        "no per-course listing"
    );
    assert_eq!(
        by_report
            .sim
            .count("POST", "/api/v1/accounts/:account_id/reports/:report"),
        1
    );

    // Applied through the report path, then converged.
    let report = by_report
        .reconcile(&format!("read_path = \"report\"\n{LOOSE}"))
        .await;
    let failed: Vec<_> = by_report
        .audit(&report.run_id)
        .await
        .into_iter()
        .filter(|a| a.outcome == "failed")
        .collect();
    assert_eq!(report.failed, 0, "{failed:#?}");
    let next = by_report
        .reconcile(&format!("read_path = \"report\"\n{LOOSE}"))
        .await;
    // CONTRACT v2: the user Canvas does not have is remembered and its row skipped, not planned again.
    assert_eq!(next.planned_total(), 0, "converged: {next:#?}");
    assert_eq!(
        next.skipped, 1,
        "only the user Canvas does not have: {next:#?}"
    );
}

#[tokio::test]
async fn auto_picks_the_report_when_there_are_enough_managed_courses() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env
        .reconcile(&format!("report_min_courses = 3\n{LOOSE}"))
        .await;
    assert_eq!(report.details.read_path, "report");
    let report = env
        .reconcile(&format!("report_min_courses = 4\n{LOOSE}"))
        .await;
    assert_eq!(report.details.read_path, "courses");
}

#[tokio::test]
async fn the_sis_import_write_path_applies_the_delta_and_audits_each_row() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env
        .reconcile(&format!("{LOOSE}\nwrite_path = \"sis_import\""))
        .await;
    assert_eq!(report.details.write_path, "sis_import", "{report:#?}");
    assert_eq!(report.planned["enroll"], 7);
    assert_eq!(
        (report.failed, report.details.users_not_found),
        (0, 1),
        "{report:#?}"
    );
    assert_eq!(
        env.sim
            .count("POST", "/api/v1/accounts/:account_id/sis_imports"),
        1
    );
    assert_eq!(
        env.sim.count("POST", SECTION_ENROLLMENTS) + env.sim.count("POST", COURSE_ENROLLMENTS),
        0
    );
    let audit = env.audit(&report.run_id).await;
    assert!(audit.iter().any(|a| a.user_id.as_deref() == Some("ghost")
        && a.outcome == "skipped"
        && a.error.as_deref() == Some("user not found in Canvas")));
    assert_eq!(audit.iter().filter(|a| a.outcome == "planned").count(), 0);
    // The teacher's role change: new role active, old concluded.
    let mut roles: Vec<(u64, String)> = env
        .enrollments_of(1050, 100)
        .into_iter()
        .map(|(_, r, s)| (r, s))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        vec![(STUDENT, "completed".into()), (TEACHER, "active".into())]
    );
    let next = env
        .reconcile(&format!("{LOOSE}\nwrite_path = \"sis_import\""))
        .await;
    // CONTRACT v2: the missing user is remembered and its row skipped, not planned again.
    assert_eq!(next.planned_total(), 0, "converged: {next:#?}");
    assert_eq!(next.skipped, 1, "only the missing user remains: {next:#?}");
}

#[tokio::test]
async fn auto_writes_through_the_api_below_the_bulk_threshold() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env.reconcile(LOOSE).await;
    assert_eq!(report.details.write_path, "api");
    assert_eq!(
        env.sim
            .count("POST", "/api/v1/accounts/:account_id/sis_imports"),
        0
    );
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env
        .reconcile(&format!("{LOOSE}\nbulk_min_changes = 5"))
        .await;
    assert_eq!(report.details.write_path, "sis_import");
}

/// One cycle in-process with a [`Metrics`] the test can read afterwards.
async fn cycle_with_metrics(env: &TestEnv, extra: &str) -> (CycleReport, String) {
    let metrics = Arc::new(Metrics::new());
    let ctx = rostersync::app::connect(env.settings(extra), metrics.clone())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let report = run_cycle(&ctx, &CycleOptions::default()).await;
    (report, metrics.encode())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_refused_sis_import_falls_back_to_the_api_and_no_change_fails() {
    // 401 without a token challenge is Canvas's classic "not authorized" (facts §7): a refusal, not a bad token.
    for status in [401, 403, 404] {
        let (seed, sis) = district();
        let env = env_with(seed, &sis).await;
        env.sim
            .set_faults(FaultOptions::default().with_rule(FaultRule::on(
                "POST",
                SIS_IMPORTS,
                FaultAction::status(status),
            )));
        let out = env
            .cli(
                &["reconcile", "--json"],
                &format!("{LOOSE}\nwrite_path = \"auto\"\nbulk_min_changes = 5"),
            )
            .await;
        let json = json_report(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{status}: {json}\n{}",
            stderr(&out)
        );
        assert_eq!(json["failed"], 0, "{status}: {json}");
        assert_eq!(json["details"]["write_path"], "api", "{status}");
        assert_eq!(json["details"]["canvas_unavailable"], false, "{status}");
        assert!(
            json["applied"].as_u64().unwrap_or(0) >= 15,
            "{status}: {json}"
        );
        assert_eq!(
            env.sim.count("POST", SIS_IMPORTS),
            1,
            "{status}: tried once"
        );
        assert!(env.sim.count("POST", SECTION_ENROLLMENTS) > 0, "{status}");
        let log = stderr(&out);
        assert_eq!(
            log.matches("Import SIS data").count(),
            1,
            "{status}: said once, naming the permission:\n{log}"
        );
        // Converged: only the user Canvas does not have is left, skipped (remembered), not planned.
        let next = env.reconcile(LOOSE).await;
        assert_eq!(next.planned_total(), 0, "{status}: {next:#?}");
        assert_eq!(next.skipped, 1, "{status}: {next:#?}");
    }
    // Counted.
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    env.sim
        .set_faults(FaultOptions::default().with_rule(FaultRule::on(
            "POST",
            SIS_IMPORTS,
            FaultAction::status(403),
        )));
    let (report, metrics) =
        cycle_with_metrics(&env, &format!("{LOOSE}\nwrite_path = \"sis_import\"")).await;
    assert_eq!((report.failed, report.details.write_path), (0, "api"));
    assert_eq!(
        metric(
            &metrics,
            "rostersync_path_fallbacks_total{path=\"sis_import\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refused_provisioning_report_falls_back_to_course_listings() {
    for (method, route) in [("POST", REPORTS), ("GET", REPORT), ("GET", FILE_DOWNLOAD)] {
        for status in [401, 403, 404] {
            let (seed, sis) = district();
            let env = env_with(seed, &sis).await;
            env.sim
                .set_faults(FaultOptions::default().with_rule(FaultRule::on(
                    method,
                    route,
                    FaultAction::status(status),
                )));
            let (report, metrics) =
                cycle_with_metrics(&env, &format!("read_path = \"report\"\n{LOOSE}")).await;
            let case = format!("{status} on {method} {route}");
            assert_eq!(report.error, None, "{case}: {report:#?}");
            assert_eq!(report.details.read_path, "courses", "{case}");
            assert_eq!(report.failed, 0, "{case}: {report:#?}");
            assert_eq!(report.planned["enroll"], 7, "{case}");
            assert_eq!(env.sim.count("GET", COURSE_ENROLLMENTS), 3, "{case}");
            assert_eq!(
                metric(&metrics, "rostersync_path_fallbacks_total{path=\"report\"}"),
                Some(1.0),
                "{case}: {metrics}"
            );
        }
    }
    // `auto` chose the report and falls back the same way.
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    env.sim
        .set_faults(FaultOptions::default().with_rule(FaultRule::on(
            "POST",
            REPORTS,
            FaultAction::status(403),
        )));
    let out = env
        .cli(
            &["reconcile", "--json"],
            &format!("read_path = \"auto\"\nreport_min_courses = 3\n{LOOSE}"),
        )
        .await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{json}\n{}", stderr(&out));
    assert_eq!(json["details"]["read_path"], "courses");
    assert_eq!(json["failed"], 0);
    let log = stderr(&out);
    assert_eq!(
        log.matches("read_reports").count(),
        1,
        "said once, naming the permission:\n{log}"
    );
}

#[tokio::test]
async fn under_login_ids_the_bulk_path_is_not_used() {
    let (seed, sis) = district();
    // The same district, its SIS naming users by login id.
    let sis: Vec<OwnedRow> = sis
        .into_iter()
        .map(|(u, c, s, r, st)| (format!("{}@example.edu", u.to_lowercase()), c, s, r, st))
        .collect();
    let env = env_with(seed, &sis).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            &format!(
                "{LOOSE}\nwrite_path = \"sis_import\"\n[sis]\nuser_id_kind = \"sis_login_id\""
            ),
        )
        .await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{json}\n{}", stderr(&out));
    assert_eq!(json["details"]["write_path"], "api", "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(
        env.sim.count("POST", SIS_IMPORTS),
        0,
        "no import names users by login id"
    );
    assert!(env.sim.count("POST", SECTION_ENROLLMENTS) > 0);
    let log = stderr(&out);
    assert_eq!(
        log.matches("not using a SIS import").count(),
        1,
        "said once:\n{log}"
    );
    // The enrolled users are the ones the login ids name.
    assert_eq!(env.enrollments_of(1006, 100).len(), 1, "k0u6 enrolled");
}

#[tokio::test]
async fn a_sis_import_start_without_an_answer_is_looked_for_before_it_is_sent_again() {
    // Canvas started the import but the answer never came: found, not re-sent.
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    env.sim.set_faults(
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                SIS_IMPORTS,
                FaultAction::ApplyThenHang(Duration::from_secs(4)),
            )
            .nth(1),
        ),
    );
    let extra = format!("request_timeout_secs = 1\n{LOOSE}\nwrite_path = \"sis_import\"");
    let report = env.reconcile(&extra).await;
    assert_eq!(report.details.write_path, "sis_import", "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(env.sim.count("POST", SIS_IMPORTS), 1, "not re-sent");
    assert!(env.sim.count("GET", SIS_IMPORTS) >= 1, "looked for first");
    assert_eq!(env.sim.with_store(|s| s.sis_import_states()).len(), 1);
    // Applied: only the user Canvas does not have is left, skipped (remembered), not planned.
    let next = env.reconcile(&extra).await;
    assert_eq!(
        (next.planned_total(), next.skipped),
        (0, 1),
        "applied: {next:#?}"
    );

    // Canvas never saw it (a 503): nothing to find, so it is sent again, once.
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    env.sim.set_faults(
        FaultOptions::default()
            .with_rule(FaultRule::on("POST", SIS_IMPORTS, FaultAction::status(503)).nth(1)),
    );
    let report = env.reconcile(&extra).await;
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(env.sim.count("POST", SIS_IMPORTS), 2);
    assert!(env.sim.count("GET", SIS_IMPORTS) >= 1, "looked for first");
    assert_eq!(env.sim.with_store(|s| s.sis_import_states()).len(), 1);
}

#[tokio::test]
async fn a_report_start_without_an_answer_is_looked_for_before_it_is_sent_again() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    env.sim.set_faults(
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                REPORTS,
                FaultAction::ApplyThenHang(Duration::from_secs(4)),
            )
            .nth(1),
        ),
    );
    let report = env
        .reconcile(&format!(
            "read_path = \"report\"\nrequest_timeout_secs = 1\n{LOOSE}"
        ))
        .await;
    assert_eq!(report.error, None, "{report:#?}");
    assert_eq!(report.details.read_path, "report");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(env.sim.count("POST", REPORTS), 1, "not re-sent");
    assert!(env.sim.count("GET", REPORTS) >= 1, "looked for first");
}

#[tokio::test]
async fn check_says_whether_the_token_may_run_sis_imports_and_reports() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let out = env.cli(&["check"], "").await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in ["ok    sis imports", "ok    reports"] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    let writes = env.writes();
    assert_eq!(writes, 0, "probed without side effects");
    env.sim.set_faults(
        FaultOptions::default()
            .with_rule(FaultRule::on("GET", SIS_IMPORTS, FaultAction::status(401)))
            .with_rule(FaultRule::on(
                "GET",
                "/api/v1/accounts/:account_id/reports",
                FaultAction::status(403),
            )),
    );
    let refused = env.cli(&["check"], "").await;
    let text = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert!(
        text.contains("warn  sis imports") && text.contains("Import SIS data"),
        "{text}"
    );
    assert!(text.contains("warn  reports"), "{text}");
    assert!(
        text.contains("ok    canvas "),
        "the token itself is fine: {text}"
    );
    assert_eq!(
        refused.status.code(),
        out.status.code(),
        "a refused path is not a failed check"
    );
}
