//! `rostersync explain` (CONTRACT v2, the operator's desk), through the built binary.

use canvas_sim::Seed;

use crate::support::*;

const CONFIG: &str = "[reconcile]\nmax_removals = 0\n\
[[role_rules]]\nname = \"staff\"\nusers_query = \"SELECT 'adult1' AS user_id\"\n\
from_role = \"StudentEnrollment\"\nto_role = \"TaEnrollment\"";

/// adult1 (Canvas user 1): a SIS row in C1 (the staff rule makes it a TA), a row in C2 with a role Canvas does not
/// have (skipped), and a hand-made designer enrollment in C3 that no SIS row lists (a removal the brake holds:
/// `max_removals = 0`; the staff rule only rewrites students). Five classmates keep C1–C3 managed.
async fn district() -> TestEnv {
    let mut seed = Seed::default()
        .course(course(100, "C1"))
        .course(course(101, "C2"))
        .course(course(102, "C3"))
        .user(user(1, "adult1"))
        .enrollment(enrolled(1, 102, DESIGNER, "active"));
    let mut rows: Vec<(String, &str, &str)> = vec![
        ("adult1".into(), "C1", "student"),
        ("adult1".into(), "C2", "Pupil"),
    ];
    for u in 2..=6u64 {
        seed = seed.user(user(u, &format!("k{u}")));
        for (c, id) in [("C1", 100), ("C2", 101), ("C3", 102)] {
            seed = seed.enrollment(enrolled(u, id, STUDENT, "active"));
            rows.push((format!("k{u}"), c, "student"));
        }
    }
    let env = TestEnv::new(seed).await;
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c, r)| (u.as_str(), *c, None, *r, None))
        .collect();
    env.sis(&rows).await;
    env
}

#[tokio::test]
async fn explain_shows_a_skipped_row_a_role_rule_and_a_held_removal() {
    let env = district().await;
    let out = env.cli(&["reconcile", "--json"], CONFIG).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "the brake holds the removal: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = env
        .cli(&["explain", "--user", "adult1", "--json"], CONFIG)
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let skipped: Vec<_> = e["sis_rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["skipped"].is_string())
        .collect();
    assert_eq!(skipped.len(), 1, "{e:#}");
    assert_eq!(skipped[0]["course_id"], "C2");
    assert!(
        skipped[0]["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("Pupil")),
        "the reason names the role: {e:#}"
    );
    assert_eq!(e["role_rules"][0]["rule"], "staff", "{e:#}");
    assert_eq!(e["role_rules"][0]["to"], "TaEnrollment");
    let held: Vec<_> = e["would_do"]
        .as_array()
        .expect("would_do")
        .iter()
        .filter(|c| c["outcome"] == "held")
        .collect();
    assert_eq!(held.len(), 1, "{e:#}");
    assert_eq!(held[0]["action"], "remove");
    assert_eq!(held[0]["course_id"], "C3");
    assert!(
        held[0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("held by the brake")),
        "{e:#}"
    );
    // The enroll in C1 was made as a TA by the first cycle: history, newest first, and nothing left to do there.
    let history = e["history"].as_array().expect("history");
    assert!(
        history.iter().any(|h| h["course_id"] == "C1"
            && h["outcome"] == "applied"
            && h["role_after"] == "TaEnrollment"),
        "{e:#}"
    );
    assert!(
        history
            .iter()
            .any(|h| h["course_id"] == "C3" && h["outcome"] == "held"),
        "{e:#}"
    );
    assert!(
        !e["would_do"]
            .as_array()
            .expect("would_do")
            .iter()
            .any(|c| c["course_id"] == "C1"),
        "C1 is converged: {e:#}"
    );

    // The same, as a person reads it.
    let out = env.cli(&["explain", "--user", "adult1"], CONFIG).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for needle in [
        "SKIPPED",
        "staff: StudentEnrollment → TaEnrollment",
        "HELD",
        "History",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }

    // Unknown to both sides: exit 1, saying what to check.
    let out = env.cli(&["explain", "--user", "nobody"], CONFIG).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("neither the SIS nor Canvas knows user `nobody`"),
        "{stderr}"
    );
}
