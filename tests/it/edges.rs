//! Issue 13: safe at the edges. Each test drives the built binary against a real PostgreSQL and the simulator.

use std::time::Duration;

use canvas_sim::{FaultAction, FaultOptions, FaultRule, Seed};

use crate::support::*;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
/// Every test here is about something other than the brake.
const LOOSE: &str = "[reconcile]\nmax_removal_ratio = 1.0";

/// A token that cannot see SIS ids: Canvas lists the enrollments, with no `sis_user_id` on any user. The cycle
/// stops before any write and names the permission; nothing is re-POSTed.
#[tokio::test]
async fn a_token_that_cannot_see_sis_ids_stops_the_cycle_naming_the_permission() {
    let mut seed = Seed::default().course(course(100, "C1"));
    let mut rows = Vec::new();
    for i in 1..=8u64 {
        // As such a token sees them: users without their SIS id.
        seed = seed
            .user(canvas_sim::SeedUser::new(i, &format!("Student {i}")))
            .enrollment(enrolled(i, 100, STUDENT, "active"));
        rows.push((format!("s{i}"), "C1"));
    }
    let env = TestEnv::new(seed).await;
    let sis: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c)| (u.as_str(), *c, None, "student", None))
        .collect();
    env.sis(&sis).await;
    let out = env.cli(&["reconcile", "--json"], LOOSE).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("view SIS ID")),
        "names the permission: {stderr}"
    );
    assert_eq!(env.writes(), 0, "never re-POST an existing enrollment");
    // `check` says so before any cycle runs.
    let out = env.cli(&["check"], LOOSE).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL  sis ids") && l.contains("view SIS ID")),
        "{stdout}"
    );
}

/// A `CHAR(n)` SIS column pads the id: the row is skipped, and it still holds its user's enrollment in the course.
#[tokio::test]
async fn a_padded_user_id_is_skipped_and_still_holds_the_users_enrollment() {
    let seed = Seed::default()
        .course(course(100, "C1"))
        .user(user(1, "u1"))
        .user(user(2, "u2"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(2, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("u1      ", "C1", None, "student", None),
        ("u2", "C1", None, "student", None),
    ])
    .await;
    let out = env.cli(&["reconcile", "--json"], LOOSE).await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(json["planned"]["remove"], 0, "{json}");
    assert_eq!(json["skipped"], 1);
    assert_eq!(
        env.enrollments_of(1, 100)[0].2,
        "active",
        "held, not concluded"
    );
    assert_eq!(env.writes(), 0);
}

/// The default section and a teacher-made section carry no SIS id; a SIS row naming the course (no section)
/// names both, and neither is touched while the SIS lists the user.
#[tokio::test]
async fn enrollments_in_two_sections_without_sis_ids_are_both_kept() {
    let seed = Seed::default()
        .course(course(100, "C1"))
        .section(canvas_sim::SeedSection::new(500, 100, "Teacher's group"))
        .user(user(1, "u1"))
        .user(user(2, "u2"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(1, 100, STUDENT, "active").in_section(500))
        .enrollment(enrolled(2, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("u1", "C1", None, "student", None),
        ("u2", "C1", None, "student", None),
    ])
    .await;
    for cycle in 1..=2 {
        let out = env.cli(&["reconcile", "--json"], LOOSE).await;
        let json = json_report(&out);
        assert_eq!(out.status.code(), Some(0), "cycle {cycle}: {json}");
        assert_eq!(json["planned"]["remove"], 0, "cycle {cycle}: {json}");
    }
    let states: Vec<String> = env
        .enrollments_of(1, 100)
        .into_iter()
        .map(|(_, _, s)| s)
        .collect();
    assert_eq!(states, vec!["active", "active"]);
    assert_eq!(env.writes(), 0);
}

/// A run killed between a Canvas write and its outcome: the next cycle reads Canvas and records what happened to
/// every change the dead run left `planned` — `applied` for the one Canvas made, `failed: interrupted` for none
/// here — in rows of its own that point at the old ones.
#[tokio::test]
async fn changes_of_a_killed_run_are_resolved_from_canvas_by_the_next_cycle() {
    let (env, _) = roster_env(
        12,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                COURSE_ENROLLMENTS,
                FaultAction::ApplyThenHang(Duration::from_secs(60)),
            )
            .nth(4),
        ),
    )
    .await;
    let (mut child, _log) = env.spawn_cli(
        &["reconcile", "--json"],
        &format!("{LOOSE}\n[limits]\nmax_in_flight = 1"),
    );
    let enrolled = |env: &TestEnv| env.sim.with_store(|s| s.enrollments().count());
    eventually(
        Duration::from_secs(20),
        || enrolled(&env) >= 4,
        || "the fourth enroll never reached Canvas".into(),
    )
    .await;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    env.sim.set_faults(FaultOptions::default());

    let out = env.cli(&["reconcile", "--json"], LOOSE).await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert!(
        json["details"]["resolved_interrupted"].as_u64() >= Some(1),
        "{json}"
    );
    let unresolved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log a WHERE a.outcome = 'planned' AND NOT a.dry_run \
         AND NOT EXISTS (SELECT 1 FROM rostersync.audit_log b WHERE b.source_audit_id = a.id \
                         AND b.outcome IN ('applied', 'failed'))",
    )
    .fetch_one(&env.pool)
    .await
    .expect("audit");
    assert_eq!(
        unresolved, 0,
        "every change of every run ends with a final outcome"
    );
    let made: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log b \
         WHERE b.run_id = $1 AND b.source_audit_id IS NOT NULL AND b.outcome = 'applied'",
    )
    .bind(json["run_id"].as_str().unwrap_or_default())
    .fetch_one(&env.pool)
    .await
    .expect("resolution");
    assert!(
        made >= 1,
        "the enroll Canvas made before the kill is recorded as applied"
    );
    assert_eq!(enrolled(&env), 12, "and not made twice");
}

/// A SIS query that hangs is cancelled after `sis.statement_timeout_secs`: the cycle ends with that error before
/// any write, instead of holding the schedule forever.
#[tokio::test]
async fn a_stuck_sis_query_is_cancelled_by_its_statement_timeout() {
    let (seed, rows) = roster(3);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let started = std::time::Instant::now();
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[sis]\nstatement_timeout_secs = 1\nenrollments_query = \"SELECT user_id, course_id, section_id, role, status FROM sis_enrollments WHERE pg_sleep(30) IS NOT NULL\"",
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("statement timeout")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "not the 30 s the query wanted"
    );
    assert_eq!(env.writes(), 0);
}

/// A cycle has a deadline: when it passes, the changes in flight finish, the rest are recorded `not attempted`,
/// the run is `partial` (exit 2) and says why, and the next cycle makes what is left.
#[tokio::test]
async fn a_cycle_past_its_deadline_stops_cleanly_and_records_what_is_left() {
    let (env, _) = roster_env(
        20,
        FaultOptions {
            write_latency: Duration::from_millis(400),
            ..FaultOptions::default()
        },
    )
    .await;
    let extra = "[reconcile]\ncycle_deadline_secs = 2\n[limits]\nmax_in_flight = 1";
    let out = env.cli(&["reconcile", "--json"], extra).await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(2), "{json}");
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{json}"
    );
    let left = json["details"]["not_attempted"]
        .as_u64()
        .unwrap_or_default();
    assert!(left > 0 && json["applied"].as_u64() > Some(0), "{json}");
    let audit = env.audit(json["run_id"].as_str().unwrap_or_default()).await;
    assert_eq!(
        audit
            .iter()
            .filter(|a| a
                .error
                .as_deref()
                .is_some_and(|e| e.contains("reached its deadline")))
            .count() as u64,
        left,
        "every change left is recorded"
    );
    let out = env.cli(&["reconcile", "--json"], LOOSE).await;
    let json = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(json["planned"]["enroll"].as_u64(), Some(left));
}

/// A SIS section Canvas does not have: the first cycle's enroll finds it (skipped, not failed); later cycles look
/// it up once and plan nothing, exit 0; once the section exists the enrollment is made.
#[tokio::test]
async fn a_sis_section_canvas_lacks_is_skipped_and_enrolled_once_it_exists() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    env.sis(&[("d1", "DAEMON-1", Some("DAEMON-1-X"), "student", None)])
        .await;
    let first = env.cli(&["reconcile", "--json"], LOOSE).await;
    let json = json_report(&first);
    assert_eq!(
        first.status.code(),
        Some(0),
        "skipped is not failed: {json}"
    );
    assert_eq!(json["failed"], 0);
    for cycle in 2..=3 {
        let posts = env.writes();
        let out = env.cli(&["reconcile", "--json"], LOOSE).await;
        let json = json_report(&out);
        assert_eq!(out.status.code(), Some(0), "cycle {cycle}: {json}");
        assert_eq!(json["planned"]["enroll"], 0, "cycle {cycle}: {json}");
        assert_eq!(env.writes(), posts, "cycle {cycle}: no write");
        let audit = env.audit(json["run_id"].as_str().unwrap_or_default()).await;
        assert!(
            audit.iter().any(|a| a.outcome == "skipped"
                && a.error
                    .as_deref()
                    .is_some_and(|e| e.contains("section `DAEMON-1-X` is not in Canvas"))),
            "cycle {cycle}: {audit:?}"
        );
    }
    env.sim.with_store(|s| {
        s.add_section(section(300, 100, "DAEMON-1-X"))
            .map(|_| ())
            .expect("section")
    });
    let out = env.cli(&["reconcile", "--json"], LOOSE).await;
    let json = json_report(&out);
    assert_eq!(json["applied"], 1, "{json}");
}
