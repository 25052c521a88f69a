//! Fresh within a minute (CONTRACT v2): between full cycles the leader re-reads the SIS and reconciles only the
//! courses whose SIS rows changed, in a `scope = 'courses'` run that reads only those courses from Canvas; the
//! baseline survives a restart; a NOTIFY on `sis.notify_channel` triggers the check at once. Not timed: each test
//! waits for the behaviour, with generous bounds.

use std::time::Duration;

use canvas_sim::Seed;

use crate::support::*;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
/// No full cycle but the one at start.
const NEVER: &str = "0 0 0 1 1 *";

/// Three courses (ids 100..=102, SIS ids F0..F2) of four enrolled students each, listed by the SIS, and a fifth
/// user per course in Canvas whom no SIS row names yet.
async fn school() -> TestEnv {
    let mut seed = Seed::default();
    let mut rows = Vec::new();
    for c in 0..3u64 {
        let (course_id, course_sis) = (100 + c, format!("F{c}"));
        seed = seed.course(course(course_id, &course_sis));
        for s in 0..5u64 {
            let uid = 1000 + c * 10 + s;
            let sis = format!("f{c}u{s}");
            seed = seed.user(user(uid, &sis));
            if s < 4 {
                seed = seed.enrollment(enrolled(uid, course_id, STUDENT, "active"));
                rows.push((sis, course_sis.clone()));
            }
        }
    }
    let env = TestEnv::new(seed).await;
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c)| (u.as_str(), c.as_str(), None, "student", None))
        .collect();
    env.sis(&rows).await;
    env
}

/// Waits until the async condition holds.
async fn until<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut done: impl FnMut() -> F,
    context: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + within;
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scoped_runs(env: &TestEnv) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as(
        "SELECT status, counts FROM rostersync.sync_runs WHERE scope = 'courses' ORDER BY started_at",
    )
    .fetch_all(&env.pool)
    .await
    .expect("runs")
}

async fn full_runs(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.sync_runs WHERE scope = 'full' AND status = 'succeeded'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("runs")
}

/// The course listings the simulator served since its log was last reset: their paths.
fn listings(env: &TestEnv) -> Vec<String> {
    env.sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.route == COURSE_ENROLLMENTS)
        .map(|r| r.path_and_query)
        .collect()
}

#[tokio::test]
async fn a_changed_course_is_reconciled_alone_and_a_restart_does_not_reconcile_every_course() {
    let env = school().await;
    let mut d = Daemon::start(&env, NEVER, "[schedule]\nsis_poll_secs = 1").await;
    until(
        Duration::from_secs(30),
        || async { full_runs(&env).await >= 1 },
        || d.log(),
    )
    .await;
    // Converged, nothing changed: the checks every second find nothing to do.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(scoped_runs(&env).await.is_empty(), "{}", d.log());

    // The SIS enrols one more student in F1.
    env.sim.reset_requests();
    env.sis(&[("f1u4", "F1", None, "student", None)]).await;
    eventually(
        Duration::from_secs(30),
        || env.enrollments_of(1014, 101).len() == 1,
        || d.log(),
    )
    .await;
    until(
        Duration::from_secs(30),
        || async { scoped_runs(&env).await.iter().all(|r| r.0 != "running") },
        || d.log(),
    )
    .await;
    let runs = scoped_runs(&env).await;
    assert_eq!(runs.len(), 1, "one scoped run: {runs:?}");
    assert_eq!(runs[0].0, "succeeded");
    assert_eq!(runs[0].1["details"]["scope"], serde_json::json!(["F1"]));
    let read = listings(&env);
    assert!(!read.is_empty(), "the scoped run read its course");
    assert!(
        read.iter()
            .all(|p| p.contains("/courses/101/") || p.contains("F1")),
        "only the changed course is read from Canvas: {read:?}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).await, Some(0));

    // A restart without a full cycle at start: the recorded fingerprints are the baseline, so no course is
    // reconciled until one changes.
    let mut d = Daemon::start(
        &env,
        NEVER,
        "[schedule]\nsis_poll_secs = 1\nrun_on_start = false",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        scoped_runs(&env).await.len(),
        1,
        "no scoped run after a restart: {}",
        d.log()
    );
    // F2 loses a student: a scoped run of F2 alone. One removal of the district's 12 is under the brake's ratio
    // (10%: 1 of F2's 4 would not be), since a scoped run is judged against the district.
    sqlx::query("DELETE FROM sis_enrollments WHERE user_id = 'f2u0'")
        .execute(&env.pool)
        .await
        .expect("delete");
    until(
        Duration::from_secs(30),
        || async {
            let runs = scoped_runs(&env).await;
            runs.len() == 2 && runs.iter().all(|r| r.0 != "running")
        },
        || d.log(),
    )
    .await;
    let runs = scoped_runs(&env).await;
    assert_eq!(runs[1].0, "succeeded", "{runs:?}");
    assert_eq!(runs[1].1["details"]["scope"], serde_json::json!(["F2"]));
    let f2u0 = env.enrollments_of(1020, 102);
    assert!(
        f2u0.iter().all(|(_, _, state)| state == "completed"),
        "concluded: {f2u0:?}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).await, Some(0));
}

#[tokio::test]
async fn a_notify_on_the_channel_triggers_a_check_at_once() {
    let env = school().await;
    let d = Daemon::start(
        &env,
        NEVER,
        "[sis]\nnotify_channel = \"roster_changed\"\n[schedule]\nsis_poll_secs = 3600",
    )
    .await;
    until(
        Duration::from_secs(30),
        || async { full_runs(&env).await >= 1 && d.log().contains("listening for SIS changes") },
        || d.log(),
    )
    .await;
    sqlx::query("INSERT INTO sis_enrollments VALUES ('f0u4', 'F0', NULL, 'student', NULL)")
        .execute(&env.pool)
        .await
        .expect("insert");
    sqlx::query("NOTIFY roster_changed")
        .execute(&env.pool)
        .await
        .expect("notify");
    // The hourly poll is far away: only the NOTIFY can make this happen.
    eventually(
        Duration::from_secs(20),
        || env.enrollments_of(1004, 100).len() == 1,
        || d.log(),
    )
    .await;
    until(
        Duration::from_secs(30),
        || async { scoped_runs(&env).await.iter().all(|r| r.0 != "running") },
        || d.log(),
    )
    .await;
    let runs = scoped_runs(&env).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].1["details"]["scope"], serde_json::json!(["F0"]));
}
