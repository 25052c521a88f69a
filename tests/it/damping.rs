//! Flap damping (CONTRACT v2, `reconcile.removal_grace_cycles`): an access-removing change is made only when that
//! many consecutive cycles decided it, audited `deferred` until then; a change not decided again is never made.

use canvas_sim::Seed;

use crate::support::*;

const GRACE_2: &str = "[reconcile]\nremoval_grace_cycles = 2";

/// Courses A (100) and B (101), 20 students each (users 1..=20 in A, 21..=40 in B), all enrolled and all listed.
async fn two_courses() -> TestEnv {
    let mut seed = Seed::default()
        .course(course(100, "A"))
        .course(course(101, "B"));
    for u in 1..=40u64 {
        let c = if u <= 20 { 100 } else { 101 };
        seed = seed
            .user(user(u, &format!("s{u}")))
            .enrollment(enrolled(u, c, STUDENT, "active"));
    }
    let env = TestEnv::new(seed).await;
    set_sis(&env, &[]).await;
    env
}

/// The SIS as listed, with `moves` (user, course) replacing those users' own rows.
async fn set_sis(env: &TestEnv, moves: &[(u64, &'static str)]) {
    env.clear_sis().await;
    let rows: Vec<(String, &str)> = (1..=40u64)
        .map(|u| {
            let own = if u <= 20 { "A" } else { "B" };
            let course = moves.iter().find(|(m, _)| *m == u).map_or(own, |(_, c)| *c);
            (format!("s{u}"), course)
        })
        .collect();
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c)| (u.as_str(), *c, None, "student", None))
        .collect();
    env.sis(&rows).await;
}

async fn cycle(env: &TestEnv) -> serde_json::Value {
    let out = env.cli(&["reconcile", "--json"], GRACE_2).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

fn state(env: &TestEnv, user: u64, course: u64) -> Vec<String> {
    env.enrollments_of(user, course)
        .into_iter()
        .map(|(_, _, s)| s)
        .collect()
}

#[tokio::test]
async fn a_removal_is_made_on_the_second_cycle_that_decides_it_and_a_flap_never() {
    let env = two_courses().await;
    // s1 leaves the SIS: the first cycle defers the conclusion, the second makes it.
    env.clear_sis().await;
    let rows: Vec<(String, &str)> = (2..=40u64)
        .map(|u| (format!("s{u}"), if u <= 20 { "A" } else { "B" }))
        .collect();
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c)| (u.as_str(), *c, None, "student", None))
        .collect();
    env.sis(&rows).await;
    let shown = env.cli(&["reconcile", "--dry-run"], GRACE_2).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("deferred: 1 of 2 cycles"), "{text}");
    let first = cycle(&env).await;
    assert_eq!(first["details"]["deferred"], 1, "{first}");
    assert_eq!(state(&env, 1, 100), ["active"], "not yet");
    let audit = env.audit(first["run_id"].as_str().expect("run id")).await;
    let deferred: Vec<_> = audit.iter().filter(|r| r.outcome == "deferred").collect();
    assert_eq!(deferred.len(), 1, "{audit:?}");
    assert!(
        deferred[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("deferred: 1 of 2 cycles")),
        "{deferred:?}"
    );
    let second = cycle(&env).await;
    assert_eq!(second["details"]["deferred"], 0, "{second}");
    assert_eq!(
        state(&env, 1, 100),
        ["completed"],
        "made on the second cycle"
    );

    // A half-loaded export moves s2 from A to B for one cycle, then back: the enroll in B is made at once (it
    // gives access), the conclusion in A is deferred and then never made.
    set_sis(&env, &[(1, "A"), (2, "B")]).await;
    env.cli(&["reconcile"], GRACE_2).await;
    assert_eq!(state(&env, 2, 100), ["active"], "deferred");
    assert_eq!(state(&env, 2, 101), ["active"], "the enroll is not damped");
    set_sis(&env, &[(1, "A")]).await;
    let back = cycle(&env).await;
    assert_eq!(
        state(&env, 2, 100),
        ["active"],
        "the flap never concluded A"
    );
    // Now B's enrollment of s2 is the change decided once: deferred, and made only if decided again.
    assert_eq!(back["details"]["deferred"], 1, "{back}");
    assert_eq!(state(&env, 2, 101), ["active"]);
    cycle(&env).await;
    assert_eq!(state(&env, 2, 101), ["completed"]);
    assert_eq!(state(&env, 2, 100), ["active"], "never concluded");
}
