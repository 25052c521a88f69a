//! The reconcile cycle end to end: SIS rows in a real PostgreSQL, Canvas as the simulator over HTTP.

use canvas_sim::{
    FaultAction, FaultOptions, FaultRule, Seed, SimOptions, ThrottleOptions, ThrottleStatus,
};
use rostersync::reconcile::CycleOptions;

use crate::support::*;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
const SECTION_ENROLLMENTS: &str = "/api/v1/sections/:id/enrollments";
const ENROLLMENT: &str = "/api/v1/courses/:course_id/enrollments/:id";

/// A small district with one drift of each kind:
/// - stu1: listed and enrolled (no change)
/// - stu2: enrolled in MATH but no longer listed → remove
/// - stu3: listed in MATH-101-B, not enrolled → enroll
/// - tch7: listed as teacher, enrolled as student → change_role
/// - stu4: listed active in SCI, concluded in Canvas → change_state
/// - stu5: listed inactive in SCI, active in Canvas → change_state
/// - stu6: enrolled in a course the SIS never mentions → untouched
fn district() -> Seed {
    Seed::default()
        .user(user(1, "stu1"))
        .user(user(2, "stu2"))
        .user(user(3, "stu3"))
        .user(user(4, "stu4"))
        .user(user(5, "stu5"))
        .user(user(6, "stu6"))
        .user(user(7, "tch7"))
        .course(course(101, "MATH-101"))
        .course(course(102, "SCI-200"))
        .course(course(103, "ART-UNMANAGED"))
        .section(section(201, 101, "MATH-101-A"))
        .section(section(202, 101, "MATH-101-B"))
        .enrollment(enrolled(1, 101, STUDENT, "active").in_section(201))
        .enrollment(enrolled(2, 101, STUDENT, "active").in_section(201))
        .enrollment(enrolled(7, 101, STUDENT, "active").in_section(201))
        .enrollment(enrolled(4, 102, STUDENT, "completed"))
        .enrollment(enrolled(5, 102, STUDENT, "active"))
        .enrollment(enrolled(6, 103, STUDENT, "active"))
}

const DISTRICT_SIS: &[Row5<'static>] = &[
    (
        "stu1",
        "MATH-101",
        Some("MATH-101-A"),
        "student",
        Some("active"),
    ),
    ("stu3", "MATH-101", Some("MATH-101-B"), "student", None),
    (
        "tch7",
        "MATH-101",
        Some("MATH-101-A"),
        "teacher",
        Some("active"),
    ),
    ("stu4", "SCI-200", None, "StudentEnrollment", Some("active")),
    ("stu5", "SCI-200", None, "student", Some("inactive")),
];

/// Three changes that take access away (stu2's removal, tch7's role change, stu5's state change to inactive) out
/// of four active live enrollments: far above the default 10% brake, so the tests that are not about the brake
/// allow it.
const LOOSE_GUARD: &str = "[reconcile]\nmax_removal_ratio = 1.0";

async fn district_env() -> TestEnv {
    let env = TestEnv::new(district()).await;
    env.sis(DISTRICT_SIS).await;
    env
}

fn states(env: &TestEnv, user: u64, course: u64) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = env
        .enrollments_of(user, course)
        .into_iter()
        .map(|(_, role, state)| (role, state))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn first_sync_converges_and_a_second_plans_nothing() {
    let env = district_env().await;
    let first = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(first.status.as_str(), "succeeded", "{first:#?}");
    assert_eq!(first.planned["enroll"], 1);
    assert_eq!(first.planned["remove"], 1);
    assert_eq!(first.planned["change_role"], 1);
    assert_eq!(first.planned["change_state"], 2);
    assert_eq!((first.applied, first.failed, first.skipped), (5, 0, 0));

    assert_eq!(states(&env, 1, 101), vec![(STUDENT, "active".into())]);
    assert_eq!(
        states(&env, 2, 101),
        vec![(STUDENT, "completed".into())],
        "removed = concluded by default"
    );
    assert_eq!(states(&env, 3, 101), vec![(STUDENT, "active".into())]);
    assert_eq!(
        states(&env, 7, 101),
        vec![(STUDENT, "completed".into()), (TEACHER, "active".into())],
        "role change: new role created, old one concluded"
    );
    assert_eq!(states(&env, 4, 102), vec![(STUDENT, "active".into())]);
    assert_eq!(states(&env, 5, 102), vec![(STUDENT, "inactive".into())]);
    assert_eq!(
        states(&env, 6, 103),
        vec![(STUDENT, "active".into())],
        "unmanaged course untouched"
    );
    // stu3 landed in the section the SIS named.
    let section = env.sim.with_store(|s| {
        s.enrollments_of(3, 101)
            .first()
            .map(|e| e.course_section_id)
    });
    assert_eq!(section, Some(202));

    let audit = env.audit(&first.run_id).await;
    assert_eq!(audit.len(), 5);
    assert!(
        audit.iter().all(|a| a.outcome == "applied" && !a.dry_run),
        "{audit:#?}"
    );
    let role_change = audit
        .iter()
        .find(|a| a.action == "change_role")
        .expect("change_role row");
    assert_eq!(role_change.user_id.as_deref(), Some("tch7"));
    assert_eq!(
        role_change.role_before.as_deref(),
        Some("StudentEnrollment")
    );
    assert_eq!(role_change.role_after.as_deref(), Some("TeacherEnrollment"));
    assert!(
        role_change.canvas_enrollment_id.is_some()
            && role_change.new_canvas_enrollment_id.is_some()
    );
    assert_eq!(env.run_status(&first.run_id).await.0, "succeeded");

    let writes_before = env.writes();
    let second = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(second.planned_total(), 0, "{second:#?}");
    assert_eq!(
        env.writes(),
        writes_before,
        "a converged cycle makes no write"
    );
    assert_eq!(second.status.as_str(), "succeeded");
}

#[tokio::test]
async fn dry_run_plans_and_audits_but_changes_nothing() {
    let env = district_env().await;
    let report = env
        .reconcile_with(
            LOOSE_GUARD,
            CycleOptions {
                dry_run: true,
                ..CycleOptions::default()
            },
        )
        .await;
    assert!(report.dry_run);
    assert_eq!(report.planned_total(), 5);
    assert_eq!(env.writes(), 0);
    let audit = env.audit(&report.run_id).await;
    assert_eq!(audit.len(), 5);
    assert!(audit.iter().all(|a| a.outcome == "planned" && a.dry_run));
    assert_eq!(states(&env, 2, 101), vec![(STUDENT, "active".into())]);
}

#[tokio::test]
async fn a_course_with_more_than_100_enrollments_is_read_across_pages() {
    let mut seed = Seed::default().course(course(500, "BIG-1"));
    let mut rows = Vec::new();
    let names: Vec<String> = (1..=255).map(|i| format!("big{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let id = 1000 + i as u64;
        seed = seed.user(user(id, name));
        if i < 250 {
            seed = seed.enrollment(enrolled(id, 500, STUDENT, "active"));
        }
        rows.push((name.as_str(), "BIG-1", None, "student", None));
    }
    let env = TestEnv::new(seed).await;
    env.sis(&rows).await;
    let report = env.reconcile("").await;
    assert_eq!(report.planned["enroll"], 5, "{report:#?}");
    assert_eq!(
        report.planned["remove"], 0,
        "all 250 live rows were read, none is taken as extra"
    );
    assert_eq!(report.applied, 5);
    assert_eq!(
        env.sim.count("GET", COURSE_ENROLLMENTS),
        3,
        "250 rows at per_page=100 = 3 pages"
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .filter(|r| r.route == COURSE_ENROLLMENTS && r.method == "GET")
            .all(|r| r.path_and_query.contains("per_page=100")),
        "every page asks for 100"
    );
}

#[tokio::test]
async fn listing_requests_every_compared_state_in_one_call() {
    let env = district_env().await;
    env.reconcile(LOOSE_GUARD).await;
    let listing = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.route == COURSE_ENROLLMENTS && r.method == "GET")
        .expect("a course listing");
    for state in [
        "active",
        "invited",
        "creation_pending",
        "inactive",
        "completed",
    ] {
        assert!(
            listing
                .path_and_query
                .contains(&format!("state%5B%5D={state}")),
            "{state} missing from {}",
            listing.path_and_query
        );
    }
}

#[tokio::test]
async fn bad_sis_rows_are_skipped_with_a_reason_and_never_cause_removals() {
    let env = district_env().await;
    env.sis(&[
        ("", "MATH-101", None, "student", None),
        (" stu1 ", "MATH-101", None, "student", None),
        ("stu3", "MATH-101", None, "Learner", None),
        (
            "stu2",
            "MATH-101",
            Some("MATH-101-A"),
            "student",
            Some("dropped"),
        ),
    ])
    .await;
    sqlx::query("INSERT INTO sis_enrollments VALUES (NULL, 'MATH-101', NULL, 'student', NULL)")
        .execute(&env.pool)
        .await
        .expect("insert");
    let report = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(report.details.sis_rows_skipped, 5, "{report:#?}");
    assert_eq!(
        report.planned["remove"], 0,
        "stu2's unreadable row holds stu2's enrollment"
    );
    assert_eq!(states(&env, 2, 101), vec![(STUDENT, "active".into())]);
    assert_eq!(report.applied, 4, "the good rows still apply");
    let audit = env.audit(&report.run_id).await;
    let skipped: Vec<&str> = audit
        .iter()
        .filter(|a| a.outcome == "skipped")
        .filter_map(|a| a.error.as_deref())
        .collect();
    assert_eq!(skipped.len(), 5, "{audit:#?}");
    for expected in [
        "user_id is empty",
        "user_id is NULL",
        "whitespace",
        "role `Learner` does not exist",
        "status `dropped`",
    ] {
        assert!(
            skipped.iter().any(|e| e.contains(expected)),
            "no skipped row says {expected}: {skipped:?}"
        );
    }
}

#[tokio::test]
async fn empty_sis_trips_the_guard_and_writes_nothing() {
    let env = district_env().await;
    env.clear_sis().await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_report(&out);
    assert_eq!(json["safety"]["tripped"], true);
    assert!(
        json["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no usable rows"))
    );
    assert_eq!(env.writes(), 0);
    let run_id = json["run_id"].as_str().expect("run_id");
    assert_eq!(env.run_status(run_id).await.0, "safety_tripped");
}

#[tokio::test]
async fn too_many_removals_hold_every_removal_while_other_changes_apply() {
    let env = district_env().await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[reconcile]\nmax_removals = 0\nmax_removal_ratio = 1.0",
        )
        .await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("3 removals exceed reconcile.max_removals = 0"),
        "the log says which limit and the numbers: {stderr}"
    );
    let json = json_report(&out);
    // The enroll (stu3) and the reactivation (stu4) go ahead; the removal, the role change and the state change to
    // inactive are held.
    assert_eq!(json["applied"], 2, "{json}");
    assert_eq!(json["held"], 3);
    assert_eq!(
        states(&env, 2, 101),
        vec![(STUDENT, "active".into())],
        "held"
    );
    assert_eq!(
        states(&env, 3, 101),
        vec![(STUDENT, "active".into())],
        "enrolled anyway"
    );
    // The ratio brake: 3 of 4 = 75% > the default 10%.
    let env = district_env().await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        json_report(&out)["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_removal_ratio"))
    );
}

async fn throttled_then_applied(status: ThrottleStatus) {
    let seed = district();
    let env = TestEnv::with_options(SimOptions {
        seed,
        throttle: ThrottleOptions {
            status,
            ..ThrottleOptions::default()
        },
        faults: FaultOptions::default()
            .with_rule(FaultRule::on("POST", SECTION_ENROLLMENTS, FaultAction::Throttle).times(3)),
        ..SimOptions::default()
    })
    .await;
    env.sis(DISTRICT_SIS).await;
    let report = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(report.status.as_str(), "succeeded", "{report:#?}");
    assert_eq!(report.failed, 0);
    assert_eq!(report.details.requests.throttled, 3);
    assert!(report.details.requests.retries >= 3);
    let throttled: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.throttled)
        .collect();
    assert_eq!(throttled.len(), 3);
    let expected = if status == ThrottleStatus::TooManyRequests429 {
        429
    } else {
        403
    };
    assert!(throttled.iter().all(|r| r.status == expected));
}

#[tokio::test]
async fn throttled_403_rate_limit_exceeded_is_retried_and_the_cycle_completes() {
    throttled_then_applied(ThrottleStatus::Forbidden403).await;
}

#[tokio::test]
async fn throttled_429_is_retried_and_the_cycle_completes() {
    throttled_then_applied(ThrottleStatus::TooManyRequests429).await;
}

#[tokio::test]
async fn a_per_change_4xx_is_audited_with_canvas_message_and_the_cycle_goes_on() {
    let seed = district()
        .course(course(104, "OLD-1").with_state("completed"))
        .user(user(9, "stu9"));
    let env = TestEnv::new(seed).await;
    env.sis(DISTRICT_SIS).await;
    env.sis(&[("stu9", "OLD-1", None, "student", None)]).await;
    let out = env.cli(&["reconcile", "--json"], LOOSE_GUARD).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_report(&out);
    assert_eq!(json["failed"], 1);
    assert_eq!(json["applied"], 5);
    let audit = env.audit(json["run_id"].as_str().expect("run id")).await;
    let failed = audit
        .iter()
        .find(|a| a.outcome == "failed")
        .expect("failed row");
    assert_eq!(failed.user_id.as_deref(), Some("stu9"));
    assert_eq!(failed.http_status, Some(400));
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("Can't add an enrollment to a concluded course.")),
        "{failed:?}"
    );
    assert_eq!(
        env.run_status(json["run_id"].as_str().unwrap_or_default())
            .await
            .0,
        "partial"
    );
}

#[tokio::test]
async fn a_user_missing_from_canvas_is_skipped_and_enrolled_once_the_account_exists() {
    let env = district_env().await;
    env.sis(&[("newkid", "SCI-200", None, "student", None)])
        .await;
    let report = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(report.details.users_not_found, 1);
    assert_eq!(report.failed, 0, "not an error that repeats forever");
    let audit = env.audit(&report.run_id).await;
    assert!(audit.iter().any(|a| a.user_id.as_deref() == Some("newkid")
        && a.outcome == "skipped"
        && a.error.as_deref() == Some("user not found in Canvas")));
    // Remembered: the next cycle looks the user up once and skips the row with the reason, planning nothing.
    let posts = env.sim.count("POST", COURSE_ENROLLMENTS);
    let out = env.cli(&["reconcile", "--json"], LOOSE_GUARD).await;
    assert_eq!(out.status.code(), Some(0));
    let json = json_report(&out);
    assert_eq!(json["planned"]["enroll"], 0, "{json}");
    assert_eq!(env.sim.count("POST", COURSE_ENROLLMENTS), posts, "no POST");
    let audit = env.audit(json["run_id"].as_str().unwrap_or_default()).await;
    assert!(audit.iter().any(|a| {
        a.user_id.as_deref() == Some("newkid")
            && a.outcome == "skipped"
            && a.error
                .as_deref()
                .is_some_and(|e| e.contains("user `newkid` is not in Canvas"))
    }));
    env.sim
        .with_store(|s| s.add_user(user(99, "newkid")).expect("add user"));
    let report = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(report.planned["enroll"], 1);
    assert_eq!(report.applied, 1);
    assert_eq!(states(&env, 99, 102), vec![(STUDENT, "active".into())]);
}

#[tokio::test]
async fn a_course_missing_from_canvas_skips_its_rows_without_stopping_the_cycle() {
    let env = district_env().await;
    env.sis(&[("stu1", "NO-SUCH-COURSE", None, "student", None)])
        .await;
    let report = env.reconcile(LOOSE_GUARD).await;
    assert_eq!(report.details.courses_not_found, 1);
    assert_eq!(report.applied, 5);
    assert_eq!(report.failed, 0, "CONTRACT v2: skipped, never failed");
    let audit = env.audit(&report.run_id).await;
    assert!(audit.iter().any(|a| {
        a.course_id.as_deref() == Some("NO-SUCH-COURSE")
            && a.outcome == "skipped"
            && a.error
                .as_deref()
                .is_some_and(|e| e.contains("course `NO-SUCH-COURSE` is not in Canvas"))
    }));
    // A converged district plans nothing while the row remains, and its cycles exit 0.
    let out = env.cli(&["reconcile", "--json"], LOOSE_GUARD).await;
    assert_eq!(out.status.code(), Some(0));
    let json = json_report(&out);
    assert_eq!(json["planned"]["enroll"], 0, "{json}");
    assert_eq!(json["skipped"], 1, "one audit row per cycle");
}

#[tokio::test]
async fn a_server_error_while_reading_fails_the_cycle_with_no_writes() {
    let env = TestEnv::with_options(with_faults(
        district(),
        FaultOptions::default().with_rule(
            FaultRule::on(
                "GET",
                COURSE_ENROLLMENTS,
                FaultAction::Status {
                    status: 500,
                    content_type: None,
                    body: None,
                },
            )
            .path_contains("SCI-200"),
        ),
    ))
    .await;
    env.sis(DISTRICT_SIS).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            &format!("{LOOSE_GUARD}\n[limits]\nmax_retries = 1"),
        )
        .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_report(&out);
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("SCI-200") && e.contains("500")),
        "{json}"
    );
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn unknown_config_key_and_bad_values_exit_1_naming_the_key() {
    let env = district_env().await;
    let out = env
        .cli(&["reconcile"], "[reconcile]\nmax_removalz = 3")
        .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_removalz"), "{stderr}");
    let out = env
        .cli(&["check"], "[schedule]\ncron = \"*/15 * * * *\"")
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6"));
    let out = env
        .cli(&["reconcile"], "[reconcile]\nremoval = \"purge\"")
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("conclude, delete, inactivate, keep"));
}

#[tokio::test]
async fn a_bad_token_exits_1_with_canvas_message_and_no_change() {
    let env = district_env().await;
    let config = env
        .toml(LOOSE_GUARD)
        .replace(&env.token, "wrong-token-value");
    let path = env.dir.path().join("bad-token.toml");
    std::fs::write(&path, config).expect("write");
    let out = run_with_config(&path, &["reconcile", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let json = json_report(&out);
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.contains("Invalid access token"), "{error}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wrong-token-value"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-token-value"));
    assert_eq!(env.writes(), 0);
    assert_eq!(
        env.sim.count("GET", "/api/v1/accounts/:id/roles"),
        1,
        "no retry storm on 401"
    );
}

#[tokio::test]
async fn a_sentinel_token_appears_in_no_output_log_or_audit_row() {
    let sentinel = format!("CANARY-{}", uuid::Uuid::new_v4());
    let env = TestEnv::with_options(SimOptions {
        token: sentinel.clone(),
        seed: district().course(course(104, "OLD-1").with_state("completed")).user(user(9, "stu9")),
        faults: FaultOptions::default()
            .with_rule(FaultRule::on("DELETE", ENROLLMENT, FaultAction::Status {
                status: 500,
                content_type: None,
                body: None,
            }))
            .with_rule(FaultRule::on("PUT", "/api/v1/courses/:course_id/enrollments/:id/reactivate", FaultAction::Status {
                status: 403,
                content_type: Some("application/json".into()),
                body: Some(r#"{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}"#.into()),
            })),
        ..SimOptions::default()
    })
    .await;
    env.sis(DISTRICT_SIS).await;
    env.sis(&[("stu9", "OLD-1", None, "student", None)]).await;
    let config = env.config_file(&format!("{LOOSE_GUARD}\n[limits]\nmax_retries = 1"));
    let out = rostersync_cmd()
        .env("RUST_LOG", "trace")
        .arg("--config")
        .arg(&config)
        .args(["reconcile", "--json"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "failures were injected");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.len() > 1000, "trace logging ran");
    assert!(!stdout.contains(&sentinel), "token in stdout");
    assert!(!stderr.contains(&sentinel), "token in the logs");
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rostersync.audit_log a WHERE a::text LIKE '%' || $1 || '%') + \
                (SELECT count(*) FROM rostersync.sync_runs r WHERE r::text LIKE '%' || $1 || '%')",
    )
    .bind(&sentinel)
    .fetch_one(&env.pool)
    .await
    .expect("query");
    assert_eq!(leaked, 0, "token in the audit log or run records");

    // A rejected sentinel token.
    let out = rostersync_cmd()
        .env("RUST_LOG", "trace")
        .env("ROSTERSYNC__CANVAS__TOKEN", format!("{sentinel}-rotated"))
        .arg("--config")
        .arg(&config)
        .args(["reconcile", "--json"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("CANARY"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CANARY"));
}

#[tokio::test]
async fn migrate_and_check_report_what_they_did() {
    let env = district_env().await;
    let out = env.cli(&["migrate"], "").await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    let out = env.cli(&["check"], "").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "ok    config",
        "ok    database",
        "ok    sis query",
        "ok    canvas ",
        "ok    canvas account",
        "ok    canvas roles",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    assert!(!stdout.contains(&env.token));
    let out = env
        .cli(
            &["check"],
            "[sis]\nenrollments_query = \"SELECT user_id, course_id FROM sis_enrollments\"",
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("column `section_id` is missing"));
}

#[test]
fn the_example_config_documents_every_key_and_parses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/rostersync.example.toml"
    ))
    .expect("example config");
    let uncommented = text
        .replace(
            "token_file = \"/etc/rostersync/canvas-token\"",
            "token = \"x\"",
        )
        .replace("# [[role_rules]]", "[[role_rules]]")
        .replace("# name =", "name =")
        .replace("# users_query =", "users_query =")
        .replace("# from_role =", "from_role =")
        .replace("# to_role =", "to_role =");
    let settings =
        rostersync::config::Settings::from_toml_str(&uncommented).expect("example parses");
    assert_eq!(settings.role_rules.len(), 1);
    for key in [
        "base_url",
        "token",
        "token_file",
        "account_id",
        "per_page",
        "request_timeout_secs",
        "url",
        "enrollments_query",
        "user_id_kind",
        "removal",
        "max_removals",
        "max_removal_ratio",
        "dry_run",
        "cron",
        "run_on_start",
        "requests_per_second",
        "max_in_flight",
        "listen",
        "name",
        "users_query",
        "from_role",
        "to_role",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "{key} is not documented"
        );
    }
}

#[tokio::test]
async fn an_html_page_mid_apply_is_canvas_unavailable_and_ends_the_cycle() {
    // A maintenance or login page answered 200 in front of Canvas: not a decode error per change.
    let (seed, rows) = roster(20);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on("POST", COURSE_ENROLLMENTS, FaultAction::HtmlBody)
                .nth(3)
                .times(100),
        ),
    ))
    .await;
    load(&env, &rows).await;
    let out = env
        .cli(&["reconcile", "--json"], "[limits]\nmax_in_flight = 1")
        .await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(2), "{json}");
    assert_eq!(
        json["details"]["canvas_unavailable"], true,
        "drives /readyz"
    );
    assert_eq!(
        (json["applied"].as_u64(), json["failed"].as_u64()),
        (Some(2), Some(1)),
        "{json}"
    );
    assert_eq!(json["details"]["not_attempted"], 17, "{json}");
    assert_eq!(
        env.sim.count("POST", COURSE_ENROLLMENTS),
        3,
        "no request after the page"
    );
    let audit = env.audit(json["run_id"].as_str().unwrap_or_default()).await;
    assert!(
        audit
            .iter()
            .any(|a| a.error.as_deref().is_some_and(|e| e.contains("text/html"))),
        "{audit:#?}"
    );
}
