//! `rostersync undo RUN_ID` (CONTRACT v2, the operator's desk), through the built binary.

use canvas_sim::Seed;

use crate::support::*;

/// The brake stays out of the way: this run is meant to conclude 20 of 25.
const OPEN: &str = "[reconcile]\nmax_removal_ratio = 1.0\nmax_course_removal_ratio = 1.0";

/// 25 students of course 100 (users 1..=25), all enrolled; the SIS lists only the first five.
async fn class() -> TestEnv {
    let mut seed = Seed::default().course(course(100, "U1"));
    for u in 1..=25u64 {
        seed = seed
            .user(user(u, &format!("u{u}")))
            .enrollment(enrolled(u, 100, STUDENT, "active"));
    }
    let env = TestEnv::new(seed).await;
    let names: Vec<String> = (1..=5).map(|u| format!("u{u}")).collect();
    let rows: Vec<Row5<'_>> = names
        .iter()
        .map(|u| (u.as_str(), "U1", None, "student", None))
        .collect();
    env.sis(&rows).await;
    env
}

fn states(env: &TestEnv) -> Vec<String> {
    (1..=25u64)
        .map(|u| {
            env.enrollments_of(u, 100)
                .into_iter()
                .map(|(_, _, s)| s)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[tokio::test]
async fn undo_reactivates_exactly_what_the_run_concluded_and_a_hand_moved_one_is_a_conflict() {
    let env = class().await;
    let out = env.cli(&["reconcile", "--json"], OPEN).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let run_id = run["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(run["applied"], 20);
    assert_eq!(states(&env)[5..], vec!["completed".to_owned(); 20][..]);

    // By hand, in Canvas, before the undo: u6's concluded enrollment is made inactive.
    env.sim.with_store(|s| {
        let id = s.enrollments_of(6, 100)[0].id;
        if let Some(e) = s.enrollment_mut(id) {
            e.workflow_state = canvas_sim::EnrollmentState::Inactive;
        }
    });

    // The inverse plan first: 19 reactivations and one conflict, nothing changed.
    let writes = env.writes();
    let out = env
        .cli(
            &["undo", &run_id, "--by", "Ana", "--dry-run", "--json"],
            OPEN,
        )
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.writes(), writes, "a dry-run undo changes nothing");
    // As a person reads it: the conflict says why, and the way to make it is `undo`, not `apply`.
    let shown = env
        .cli(&["undo", &run_id, "--by", "Ana", "--dry-run"], OPEN)
        .await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("1 changes not made") && text.contains("conflict:"),
        "{text}"
    );
    assert!(
        text.contains(&format!("rostersync undo {run_id}")),
        "{text}"
    );
    let plan_id = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let out = env.cli(&["apply", &plan_id, "--by", "Ana"], OPEN).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is the plan of `undo"), "{stderr}");

    let out = env
        .cli(
            &[
                "undo",
                &run_id,
                "--by",
                "Ana",
                "--reason",
                "bad export",
                "--json",
            ],
            OPEN,
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let undo: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(undo["applied"], 19, "{undo}");
    assert_eq!(undo["skipped"], 1, "{undo}");
    let s = states(&env);
    assert_eq!(s[..5], vec!["active".to_owned(); 5][..], "untouched");
    assert_eq!(
        s[5], "inactive",
        "the hand-moved one is left as the person left it"
    );
    assert_eq!(s[6..], vec!["active".to_owned(); 19][..], "{s:?}");
    let rows = env.audit(undo["run_id"].as_str().expect("undo run")).await;
    let conflict: Vec<_> = rows.iter().filter(|r| r.outcome == "skipped").collect();
    assert_eq!(conflict.len(), 1, "{rows:?}");
    assert_eq!(conflict[0].user_id.as_deref(), Some("u6"));
    assert!(
        conflict[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("conflict:")),
        "{conflict:?}"
    );
    let unnamed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log WHERE run_id = $1 AND approved_by IS DISTINCT FROM 'Ana'",
    )
    .bind(undo["run_id"].as_str())
    .fetch_one(&env.pool)
    .await
    .expect("query");
    assert_eq!(unnamed, 0, "every row names who undid it");

    // Paused: the next cycle would conclude the 19 again from the same SIS rows; it plans and changes nothing.
    let writes = env.writes();
    let out = env.cli(&["reconcile", "--json"], OPEN).await;
    let next: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(next["dry_run"], true, "{next}");
    assert!(
        next["details"]["paused"]
            .as_str()
            .is_some_and(|p| p.contains("undo of run")),
        "{next}"
    );
    assert_eq!(env.writes(), writes, "paused after the undo");
    let out = env.cli(&["resume", "--by", "Ana"], OPEN).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Undo it again, or undo the dry run: exit 1 saying what to do.
    let again = env.cli(&["undo", &run_id, "--by", "Ana"], OPEN).await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already undone by Ana"), "{stderr}");
    let out = env.cli(&["reconcile", "--dry-run", "--json"], OPEN).await;
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dry_id = dry["run_id"].as_str().expect("dry run id");
    let out = env.cli(&["undo", dry_id, "--by", "Ana"], OPEN).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a dry run"), "{stderr}");
    let out = env.cli(&["undo", "no-such-run", "--by", "Ana"], OPEN).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is unknown"));
}

#[tokio::test]
async fn undo_reverses_an_enroll_a_deletion_and_a_role_change() {
    // Users 1..=10 enrolled as students in course 100; user 11 in Canvas, not enrolled.
    let mut seed = Seed::default()
        .course(course(100, "U1"))
        .user(user(11, "u11"));
    for u in 1..=10u64 {
        seed = seed
            .user(user(u, &format!("u{u}")))
            .enrollment(enrolled(u, 100, STUDENT, "active"));
    }
    let env = TestEnv::new(seed).await;
    // The SIS: u1 gone (deleted under removal = delete), u2 a TA now, u11 new, the rest as they are.
    let rows: Vec<(String, &str)> = (2..=11u64)
        .map(|u| (format!("u{u}"), if u == 2 { "ta" } else { "student" }))
        .collect();
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, r)| (u.as_str(), "U1", None, *r, None))
        .collect();
    env.sis(&rows).await;
    let config = format!("{OPEN}\nremoval = \"delete\"");
    let out = env.cli(&["reconcile", "--json"], &config).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(run["applied"], 3, "{run}");
    let u1_id = env.enrollments_of(1, 100)[0].0;
    assert_eq!(env.enrollments_of(1, 100)[0].2, "deleted");

    let out = env
        .cli(
            &[
                "undo",
                run["run_id"].as_str().expect("id"),
                "--by",
                "Ana",
                "--json",
            ],
            &config,
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let undo: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(undo["applied"], 3, "{undo}");
    // u1: the same row revived, active.
    let u1 = env.enrollments_of(1, 100);
    assert_eq!(u1.len(), 1, "{u1:?}");
    assert_eq!((u1[0].0, u1[0].2.as_str()), (u1_id, "active"));
    // u11: removed as the policy says.
    let u11 = env.enrollments_of(11, 100);
    assert!(u11.iter().all(|(_, _, s)| s == "deleted"), "{u11:?}");
    // u2: a student again (the old row revived), the TA row ended.
    let u2 = env.enrollments_of(2, 100);
    let active: Vec<_> = u2.iter().filter(|(_, _, s)| s == "active").collect();
    assert_eq!(active.len(), 1, "{u2:?}");
    assert_eq!(active[0].1, STUDENT, "{u2:?}");
}
