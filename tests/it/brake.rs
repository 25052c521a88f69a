//! Issue 12: nothing that takes access away happens in bulk without a brake, a readable plan and a person.
//! Each test drives the built binary against a real PostgreSQL and the simulator, counts what reached Canvas, and
//! then `apply`s the tripped (or dry) run as an operator would.

use canvas_sim::{FaultAction, FaultOptions, FaultRule, Seed};
use sqlx::Row as _;

use crate::support::*;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
/// Role changes create the new enrollment in the old one's section.
const SECTION_ENROLLMENTS: &str = "/api/v1/sections/:id/enrollments";
const ENROLLMENT: &str = "/api/v1/courses/:course_id/enrollments/:id";
const REACTIVATE: &str = "/api/v1/courses/:course_id/enrollments/:id/reactivate";
/// Fast enough that a few hundred writes take seconds; the pacer still reads Canvas's throttle headers.
const FAST: &str = "[limits]\nrequests_per_second = 1000\nmax_in_flight = 8";

/// One SIS row: user, course, role, status.
type SisRow = (String, String, &'static str, Option<&'static str>);

/// `courses` courses, each with a teacher `t{c}` and `students` students `c{c}s{s}`, all active in Canvas; the
/// SIS rows that list exactly that.
fn district(courses: u64, students: u64) -> (Seed, Vec<SisRow>) {
    let mut seed = Seed::default();
    let mut rows = Vec::new();
    for c in 0..courses {
        let course_id = 100 + c;
        let course_sis = format!("C{c}");
        let teacher = 9000 + c;
        seed = seed
            .course(course(course_id, &course_sis))
            .user(user(teacher, &format!("t{c}")))
            .enrollment(enrolled(teacher, course_id, TEACHER, "active"));
        rows.push((format!("t{c}"), course_sis.clone(), "teacher", None));
        for s in 0..students {
            let uid = 1000 + c * 1000 + s;
            let sis = format!("c{c}s{s}");
            seed = seed
                .user(user(uid, &sis))
                .enrollment(enrolled(uid, course_id, STUDENT, "active"));
            rows.push((sis, course_sis.clone(), "student", None));
        }
    }
    (seed, rows)
}

async fn load_sis(env: &TestEnv, rows: &[SisRow]) {
    env.clear_sis().await;
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c, role, status)| (u.as_str(), c.as_str(), None, *role, *status))
        .collect();
    env.sis(&rows).await;
}

fn count(env: &TestEnv, method: &str, route: &str) -> usize {
    env.sim.count(method, route)
}

/// `reconcile --json`, returning the exit code and the report.
async fn reconcile(env: &TestEnv, args: &[&str], extra: &str) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["reconcile", "--json"];
    all.extend_from_slice(args);
    let out = env.cli(&all, extra).await;
    (out.status.code(), json_report(&out))
}

async fn apply(env: &TestEnv, run_id: &str, by: &str, extra: &str) -> std::process::Output {
    env.cli(
        &[
            "apply", run_id, "--by", by, "--reason", "reviewed", "--json",
        ],
        extra,
    )
    .await
}

fn run_id(report: &serde_json::Value) -> String {
    report["run_id"].as_str().unwrap_or_default().to_owned()
}

/// Audit rows of `run` with this outcome.
async fn outcomes(env: &TestEnv, run: &str, outcome: &str) -> usize {
    env.audit(run)
        .await
        .iter()
        .filter(|r| r.outcome == outcome)
        .count()
}

/// Applies a tripped run and checks what an operator relies on: exit 0, exactly `held` changes made, the approver
/// on the run and every row, and a second apply refused.
async fn apply_and_check(
    env: &TestEnv,
    tripped: &str,
    held: usize,
    extra: &str,
) -> serde_json::Value {
    let out = apply(env, tripped, "Dana Whitfield", extra).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "apply: {stderr}");
    let report = json_report(&out);
    assert_eq!(report["applied"].as_u64(), Some(held as u64), "{report}");
    let applied = run_id(&report);
    let row = sqlx::query(
        "SELECT source_run_id, approved_by, reason, approved_as FROM rostersync.sync_runs WHERE id = $1",
    )
    .bind(&applied)
    .fetch_one(&env.pool)
    .await
    .expect("apply run");
    assert_eq!(
        row.get::<Option<String>, _>("source_run_id").as_deref(),
        Some(tripped)
    );
    assert_eq!(
        row.get::<Option<String>, _>("approved_by").as_deref(),
        Some("Dana Whitfield")
    );
    assert_eq!(
        row.get::<Option<String>, _>("reason").as_deref(),
        Some("reviewed")
    );
    assert!(
        row.get::<Option<String>, _>("approved_as")
            .is_some_and(|a| a.contains("db role") && a.contains("host")),
        "who actually ran it is recorded"
    );
    let unapproved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log WHERE run_id = $1 AND approved_by IS DISTINCT FROM 'Dana Whitfield'",
    )
    .bind(&applied)
    .fetch_one(&env.pool)
    .await
    .expect("audit");
    assert_eq!(
        unapproved, 0,
        "every audit row of the apply carries the approver"
    );

    let again = apply(env, tripped, "Dana Whitfield", extra).await;
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already applied by Dana Whitfield"),
        "says when and by whom: {stderr}"
    );
    report
}

#[tokio::test]
async fn an_export_relabelling_every_student_teacher_is_held_whole_then_applied_as_reviewed() {
    let (seed, rows) = district(4, 30);
    let env = TestEnv::new(seed).await;
    load_sis(&env, &rows).await;
    assert_eq!(reconcile(&env, &[], FAST).await.0, Some(0), "converged");
    let relabelled: Vec<SisRow> = rows
        .iter()
        .map(|(u, c, role, s)| {
            (
                u.clone(),
                c.clone(),
                if *role == "student" { "teacher" } else { role },
                *s,
            )
        })
        .collect();
    load_sis(&env, &relabelled).await;
    let before = env.writes();
    let (code, report) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(env.writes(), before, "no Canvas write at all");
    assert_eq!(report["held"].as_u64(), Some(120));
    assert_eq!(report["planned"]["change_role"].as_u64(), Some(120));
    let tripped = run_id(&report);
    assert_eq!(outcomes(&env, &tripped, "held").await, 120);
    assert_eq!(
        report["changes"]
            .as_array()
            .map(|c| c.iter().filter(|c| c["outcome"] == "held").count()),
        Some(120),
        "--json carries every held change"
    );

    let (posts, deletes) = (
        count(&env, "POST", SECTION_ENROLLMENTS),
        count(&env, "DELETE", ENROLLMENT),
    );
    apply_and_check(&env, &tripped, 120, FAST).await;
    assert_eq!(
        count(&env, "POST", SECTION_ENROLLMENTS) - posts,
        120,
        "one teacher enrollment per student"
    );
    assert_eq!(
        count(&env, "DELETE", ENROLLMENT) - deletes,
        120,
        "one conclusion per old student enrollment"
    );
    let (code, after) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(0), "the trip is cleared by the apply: {after}");
    assert_eq!(after["planned"]["change_role"].as_u64(), Some(0));
}

#[tokio::test]
async fn an_export_deleting_everyone_makes_no_delete_until_applied() {
    let (seed, rows) = district(3, 20);
    let env = TestEnv::new(seed).await;
    let deleted: Vec<SisRow> = rows
        .iter()
        .map(|(u, c, r, _)| (u.clone(), c.clone(), *r, Some("deleted")))
        .collect();
    load_sis(&env, &deleted).await;
    let (code, report) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(count(&env, "DELETE", ENROLLMENT), 0, "no DELETE");
    assert_eq!(report["held"].as_u64(), Some(63));
    apply_and_check(&env, &run_id(&report), 63, FAST).await;
    assert_eq!(count(&env, "DELETE", ENROLLMENT), 63);
    assert!(
        env.sim
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .all(|r| r.path_and_query.contains("task=delete"))
    );
}

#[tokio::test]
async fn forty_percent_dropped_holds_removals_while_enrolls_and_reactivations_go_through() {
    let (mut seed, mut rows) = district(5, 20);
    // Drift: three students are inactive in Canvas while the SIS says active; five SIS rows are not in Canvas yet.
    for n in 0..3u64 {
        let uid = 60_000 + n;
        seed = seed
            .user(user(uid, &format!("back{n}")))
            .enrollment(enrolled(uid, 103, STUDENT, "inactive"));
        rows.push((format!("back{n}"), "C3".into(), "student", None));
    }
    for n in 0..5u64 {
        seed = seed.user(user(50_000 + n, &format!("new{n}")));
        rows.push((format!("new{n}"), "C0".into(), "student", None));
    }
    let env = TestEnv::new(seed).await;
    // 40% of the students drop out of the export: s12..s19 of every course.
    let dropped = |u: &str| {
        u.starts_with('c')
            && u.rsplit('s')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 12)
    };
    let kept: Vec<SisRow> = rows.iter().filter(|r| !dropped(&r.0)).cloned().collect();
    load_sis(&env, &kept).await;
    let (code, report) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(count(&env, "DELETE", ENROLLMENT), 0, "no removal");
    assert_eq!(
        count(&env, "POST", COURSE_ENROLLMENTS),
        5,
        "the enrolls go through"
    );
    assert_eq!(
        count(&env, "PUT", REACTIVATE),
        3,
        "the reactivations go through"
    );
    let held = report["held"].as_u64().unwrap_or_default() as usize;
    assert_eq!(held, 40, "{report}");
    apply_and_check(&env, &run_id(&report), held, FAST).await;
    assert_eq!(count(&env, "DELETE", ENROLLMENT), 40);
}

#[tokio::test]
async fn a_trip_holds_later_cycles_within_the_limits_until_the_latest_tripped_run_is_applied() {
    let (seed, rows) = district(1, 30);
    let env = TestEnv::new(seed).await;
    load_sis(&env, &rows[..21]).await;
    let (code, first) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "10 of 31 removals: {first}");
    // The export is fixed but for one student: within every limit, yet the trip stands.
    load_sis(&env, &rows[..30]).await;
    let (code, second) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "{second}");
    assert!(
        second["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&run_id(&first)) && r.contains("no operator has acted")),
        "{second}"
    );
    assert_eq!(second["held"].as_u64(), Some(1));
    assert_eq!(count(&env, "DELETE", ENROLLMENT), 0);
    apply_and_check(&env, &run_id(&second), 1, FAST).await;
    let (code, third) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(0), "{third}");
    assert_eq!(count(&env, "DELETE", ENROLLMENT), 1);
}

#[tokio::test]
async fn an_export_enrolling_everyone_everywhere_is_held_then_applied() {
    let (seed, rows) = district(6, 40);
    let env = TestEnv::new(seed).await;
    let students: Vec<&String> = rows
        .iter()
        .filter(|r| r.2 == "student")
        .map(|r| &r.0)
        .collect();
    let mut everywhere = rows.clone();
    for c in 0..6 {
        for s in &students {
            if !s.starts_with(&format!("c{c}s")) {
                everywhere.push(((*s).clone(), format!("C{c}"), "student", None));
            }
        }
    }
    load_sis(&env, &everywhere).await;
    let (code, report) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(count(&env, "POST", COURSE_ENROLLMENTS), 0, "no POST");
    assert_eq!(report["held"].as_u64(), Some(1200));
    assert!(
        report["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("reconcile.max_additions"))
    );
    apply_and_check(&env, &run_id(&report), 1200, FAST).await;
    assert_eq!(count(&env, "POST", COURSE_ENROLLMENTS), 1200);
}

#[tokio::test]
async fn a_pinned_plan_skips_exactly_the_enrollment_changed_by_hand_as_stale() {
    let (seed, rows) = district(1, 30);
    let env = TestEnv::new(seed).await;
    // Two students leave, one arrives: within the limits.
    let mut sis: Vec<SisRow> = rows
        .iter()
        .filter(|r| r.0 != "c0s0" && r.0 != "c0s1")
        .cloned()
        .collect();
    env.sim
        .with_store(|s| s.add_user(user(77, "late")).map(|_| ()))
        .expect("user");
    sis.push(("late".into(), "C0".into(), "student", None));
    load_sis(&env, &sis).await;
    let out = env.cli(&["reconcile", "--dry-run"], FAST).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "3 changes planned",
        "+ enroll",
        "late",
        "- remove",
        "c0s0 (User c0s0)",
        "active → completed",
        "rostersync apply",
    ] {
        assert!(
            text.contains(line),
            "the dry run's text shows `{line}`:\n{text}"
        );
    }
    assert_eq!(env.writes(), 0, "a dry run changes nothing");
    let dry = text
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    // By hand, in Canvas: c0s0 is made inactive before the plan is applied.
    env.sim.with_store(|s| {
        let id = s.enrollments_of(1000, 100)[0].id;
        if let Some(e) = s.enrollment_mut(id) {
            e.workflow_state = canvas_sim::EnrollmentState::Inactive;
        }
    });
    let out = apply(&env, &dry, "Sam", FAST).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_report(&out);
    assert_eq!(report["applied"].as_u64(), Some(2), "{report}");
    assert_eq!(report["skipped"].as_u64(), Some(1));
    let rows = env.audit(&run_id(&report)).await;
    let stale: Vec<_> = rows.iter().filter(|r| r.outcome == "skipped").collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].user_id.as_deref(), Some("c0s0"));
    assert!(
        stale[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("stale:")),
        "{stale:?}"
    );
    assert_eq!(
        count(&env, "DELETE", ENROLLMENT),
        1,
        "only c0s1 is concluded by the apply"
    );
}

#[tokio::test]
async fn apply_refuses_unknown_unreviewable_and_unsigned_runs_with_a_clear_message() {
    let (seed, rows) = district(1, 5);
    let env = TestEnv::new(seed).await;
    load_sis(&env, &rows).await;
    let (code, report) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(0));
    let id = run_id(&report);
    let cases: [(&[&str], &str); 3] = [
        (&["apply", "no-such-run", "--by", "Sam"], "is unknown"),
        (
            &["apply", &id, "--by", "Sam"],
            "neither tripped nor a dry run",
        ),
        (&["apply", &id], "--by needs a name"),
    ];
    for (args, message) in cases {
        let out = env.cli(args, "").await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn an_apply_killed_midway_leaves_each_change_made_or_not_and_a_second_apply_makes_the_rest() {
    let (seed, rows) = district(2, 20);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "DELETE",
                ENROLLMENT,
                FaultAction::ApplyThenHang(std::time::Duration::from_secs(60)),
            )
            .nth(6),
        ),
    ))
    .await;
    // s10..s19 of both courses leave: 20 conclusions, held.
    let kept: Vec<SisRow> = rows
        .iter()
        .filter(|r| {
            !(r.0.starts_with('c')
                && r.0.len() == 5
                && r.0.ends_with(|c: char| c.is_ascii_digit())
                && r.0[3..].starts_with('1'))
        })
        .cloned()
        .collect();
    load_sis(&env, &kept).await;
    let (code, report) = reconcile(&env, &[], FAST).await;
    assert_eq!(code, Some(3), "{report}");
    let held = report["held"].as_u64().unwrap_or_default() as usize;
    assert!(held >= 10, "{report}");
    let tripped = run_id(&report);

    let (mut child, log) = env.spawn_cli(
        &["apply", &tripped, "--by", "Sam"],
        "[limits]\nrequests_per_second = 1000\nmax_in_flight = 1",
    );
    let concluded = |env: &TestEnv| {
        env.sim.with_store(|s| {
            s.enrollments()
                .filter(|e| e.workflow_state == canvas_sim::EnrollmentState::Completed)
                .count()
        })
    };
    // The sixth conclusion is made in Canvas and its answer held back: the apply is killed between the two.
    eventually(
        std::time::Duration::from_secs(30),
        || concluded(&env) >= 6,
        || {
            format!(
                "the sixth conclusion never reached Canvas: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        },
    )
    .await;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    env.sim.set_faults(FaultOptions::default());
    assert_eq!(
        concluded(&env),
        6,
        "one change at a time: the seventh was never sent"
    );

    let out = apply(&env, &tripped, "Sam", FAST).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "not refused as already applied: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One DELETE per enrollment over both applies (the killed one's sixth is recorded as 499: it hung up).
    let mut per_enrollment: std::collections::HashMap<String, usize> = Default::default();
    for r in env.sim.requests().iter().filter(|r| r.method == "DELETE") {
        let path = r
            .path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        *per_enrollment.entry(path).or_default() += 1;
    }
    assert_eq!(per_enrollment.len(), held, "{per_enrollment:?}");
    assert!(
        per_enrollment.values().all(|&n| n == 1),
        "only what is left is made: {per_enrollment:?}"
    );
    assert_eq!(concluded(&env), held, "every held change made exactly once");
    let report = json_report(&out);
    let already = env
        .audit(&run_id(&report))
        .await
        .iter()
        .filter(|r| {
            r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("already made"))
        })
        .count();
    assert!(
        already <= 6,
        "changes the killed apply recorded as applied are not pinned again"
    );
}

#[tokio::test]
async fn a_database_of_the_first_release_upgrades_in_place() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let mut first = sqlx::migrate!("./migrations");
    first.migrations = std::borrow::Cow::Owned(first.migrations[..1].to_vec());
    first.run(&pool).await.expect("the first release's schema");
    sqlx::query("INSERT INTO rostersync.sync_runs (id, status) VALUES ('old-run', 'succeeded')")
        .execute(&pool)
        .await
        .expect("old run");
    sqlx::query(
        "INSERT INTO rostersync.audit_log (run_id, action, user_id, outcome) VALUES ('old-run', 'remove', 'u1', 'applied')",
    )
    .execute(&pool)
    .await
    .expect("old row");

    let out = rostersync_cmd()
        .args(["migrate"])
        .env("ROSTERSYNC__DATABASE__URL", &url)
        .env("ROSTERSYNC__CANVAS__BASE_URL", "http://127.0.0.1:9")
        .env("ROSTERSYNC__CANVAS__TOKEN", "t")
        .output()
        .await
        .expect("migrate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (scope, by): (String, Option<String>) =
        sqlx::query_as("SELECT scope, approved_by FROM rostersync.sync_runs WHERE id = 'old-run'")
            .fetch_one(&pool)
            .await
            .expect("upgraded run");
    assert_eq!((scope.as_str(), by), ("full", None));
    sqlx::query(
        "INSERT INTO rostersync.audit_log (run_id, action, outcome, approved_by) VALUES ('old-run', 'remove', 'held', 'x')",
    )
    .execute(&pool)
    .await
    .expect("the new outcome and column are accepted");
    let old: String =
        sqlx::query_scalar("SELECT outcome FROM rostersync.audit_log WHERE user_id = 'u1'")
            .fetch_one(&pool)
            .await
            .expect("old row kept");
    assert_eq!(old, "applied");
}
