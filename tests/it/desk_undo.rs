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
