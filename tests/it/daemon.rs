//! `rostersync run` started as an operator would: the built binary, its HTTP endpoints, signals, and replicas.

use std::time::{Duration, Instant};

use canvas_sim::FaultOptions;

use crate::support::*;

const POST_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";

#[tokio::test]
async fn metrics_healthz_and_readyz_answer_as_the_contract_says() {
    let (seed, rows) = roster(3);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let mut d = Daemon::start(&env, "0 0 0 1 1 *", "").await;
    let text = d
        .wait_for(
            Duration::from_secs(20),
            |b, _| cycles(b, "succeeded") >= 1.0,
            "/metrics",
        )
        .await;
    let resp = reqwest::get(d.url("/metrics")).await.expect("scrape");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    for (name, kind) in [
        ("rostersync_cycles", "counter"),
        ("rostersync_changes", "counter"),
        ("rostersync_canvas_requests", "counter"),
        ("rostersync_cycle_duration_seconds", "histogram"),
        ("rostersync_last_success_timestamp_seconds", "gauge"),
        ("rostersync_safety_trips", "counter"),
        ("rostersync_leader", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} {kind} missing:\n{text}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"));
    assert_eq!(
        metric(
            &text,
            "rostersync_changes_total{action=\"enroll\",outcome=\"applied\"}"
        ),
        Some(3.0)
    );
    assert!(
        metric(
            &text,
            "rostersync_canvas_requests_total{method=\"POST\",status=\"200\"}"
        )
        .is_some()
    );
    assert_eq!(metric(&text, "rostersync_leader"), Some(1.0));
    assert!(metric(&text, "rostersync_last_success_timestamp_seconds").unwrap_or(0.0) > 1.7e9);
    assert!(metric(&text, "rostersync_cycle_duration_seconds_count").unwrap_or(0.0) >= 1.0);
    // Labels never carry ids.
    for line in text.lines().filter(|l| l.contains('{')) {
        assert!(
            !line.contains("d1") && !line.contains("DAEMON-1"),
            "an id in a label: {line}"
        );
    }
    assert_eq!(d.get("/healthz").await.map(|r| r.0), Some(200));
    assert_eq!(d.get("/readyz").await.map(|r| r.0), Some(200));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
}

#[tokio::test]
async fn sigterm_mid_cycle_finishes_the_change_in_flight_closes_the_run_and_exits_0() {
    let (env, _) = roster_env(
        30,
        FaultOptions {
            write_latency: Duration::from_millis(300),
            ..FaultOptions::default()
        },
    )
    .await;
    let mut d = Daemon::start(&env, "0 0 0 1 1 *", "[limits]\nmax_in_flight = 1").await;
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", POST_ENROLLMENTS) >= 3,
        || format!("no writes started:\n{}", d.log()),
    )
    .await;
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).await, Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        signalled.elapsed()
    );
    let posts = env.sim.count("POST", POST_ENROLLMENTS);
    assert!(
        posts < 30,
        "the rest of the cycle was not attempted ({posts} POSTs)"
    );
    let (status, planned, applied, skipped): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT r.status, \
                count(*) FILTER (WHERE a.outcome = 'planned'), \
                count(*) FILTER (WHERE a.outcome = 'applied'), \
                count(*) FILTER (WHERE a.outcome = 'skipped') \
         FROM rostersync.sync_runs r JOIN rostersync.audit_log a ON a.run_id = r.id GROUP BY r.status",
    )
    .fetch_one(&env.pool)
    .await
    .expect("run");
    assert_ne!(status, "running", "the run row is closed");
    assert_eq!(planned, 0, "every change has its final outcome");
    assert_eq!(
        applied as usize, posts,
        "each POST that reached Canvas is recorded as applied"
    );
    assert_eq!(applied + skipped, 30);
}

#[tokio::test]
async fn two_replicas_make_exactly_one_set_of_changes_and_a_killed_leader_is_replaced() {
    let (seed, rows) = roster(12);
    let env = TestEnv::new(seed).await;
    load(&env, &rows[..10]).await;
    let mut a = Daemon::start(&env, "*/2 * * * * *", "").await;
    let mut b = Daemon::start(&env, "*/2 * * * * *", "").await;
    // Several ticks with both running.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        env.sim.count("POST", POST_ENROLLMENTS),
        10,
        "no duplicate creates across replicas"
    );
    let leader_of = |text: &str| metric(text, "rostersync_leader").unwrap_or(-1.0);
    let (ma, mb) = (
        a.get("/metrics").await.map(|r| r.1).unwrap_or_default(),
        b.get("/metrics").await.map(|r| r.1).unwrap_or_default(),
    );
    let mut leaders = [leader_of(&ma), leader_of(&mb)];
    leaders.sort_by(f64::total_cmp);
    assert_eq!(leaders, [0.0, 1.0], "exactly one leader");
    assert_eq!(
        a.get("/readyz").await.map(|r| r.0),
        Some(200),
        "the standby stays ready too"
    );
    assert_eq!(b.get("/readyz").await.map(|r| r.0), Some(200));
    let holders: i64 = advisory_locks_held(&env.pool).await;
    assert_eq!(holders, 1);

    // kill -9 the leader; the standby takes over and enrols the two new rows.
    let (leader, standby) = if leader_of(&ma) == 1.0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    leader.signal(libc::SIGKILL);
    let _ = leader.wait_exit(Duration::from_secs(5)).await;
    load(&env, &rows[10..]).await;
    standby
        .wait_for(
            Duration::from_secs(15),
            |t, _| leader_of(t) == 1.0,
            "/metrics",
        )
        .await;
    eventually(
        Duration::from_secs(15),
        || env.sim.count("POST", POST_ENROLLMENTS) >= 12,
        || format!("the standby never applied:\n{}", standby.log()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.sim.count("POST", POST_ENROLLMENTS),
        12,
        "still exactly one create per enrollment"
    );
    standby.signal(libc::SIGTERM);
    assert_eq!(standby.wait_exit(Duration::from_secs(15)).await, Some(0));
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(rostersync::store::lock::LOCK_KEY)
        .fetch_one(&env.pool)
        .await
        .expect("try lock");
    assert!(free, "shutdown released the lock");
}

#[tokio::test]
async fn a_tick_during_a_running_cycle_is_skipped_and_counted() {
    let (env, _) = roster_env(
        12,
        FaultOptions {
            write_latency: Duration::from_millis(400),
            ..FaultOptions::default()
        },
    )
    .await;
    let mut d = Daemon::start(&env, "* * * * * *", "[limits]\nmax_in_flight = 1").await;
    let text = d
        .wait_for(
            Duration::from_secs(20),
            |t, _| metric(t, "rostersync_skipped_ticks_total").unwrap_or(0.0) >= 1.0,
            "/metrics",
        )
        .await;
    assert!(cycles(&text, "succeeded") <= 1.0);
    assert!(d.log().contains("schedule tick skipped"));
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", POST_ENROLLMENTS) >= 12,
        || d.log(),
    )
    .await;
    // Later cycles find nothing to do.
    d.wait_for(
        Duration::from_secs(10),
        |t, _| cycles(t, "succeeded") >= 2.0,
        "/metrics",
    )
    .await;
    assert_eq!(
        env.sim.count("POST", POST_ENROLLMENTS),
        12,
        "no overlap: each enrollment created once"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).await, Some(0));
}

#[tokio::test]
async fn a_rejected_token_makes_the_replica_not_ready_until_canvas_accepts_again() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let token_file = env.dir.path().join("token");
    std::fs::write(&token_file, "stale-token\n").expect("write token");
    let extra = format!("token_file = \"{}\"", token_file.display());
    let config_text = env
        .toml(&extra)
        .replace(&format!("token = \"{}\"\n", env.token), "");
    let port = free_port();
    let config = env.dir.path().join("rotation.toml");
    std::fs::write(
        &config,
        format!("{config_text}\n[schedule]\ncron = \"*/2 * * * * *\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("config");
    let log = env.dir.path().join("rotation.log");
    let child = rostersync_cmd()
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut d = Daemon {
        child,
        port,
        stderr_path: log,
    };
    d.wait_for(Duration::from_secs(20), |_, s| s == 503, "/readyz")
        .await;
    let roles_calls = env.sim.count("GET", "/api/v1/accounts/:id/roles");
    assert!(roles_calls <= 4, "no retry storm on 401: {roles_calls}");
    // Rotate: the file now holds the token Canvas accepts; no restart.
    std::fs::write(&token_file, format!("{}\n", env.token)).expect("rotate");
    d.wait_for(Duration::from_secs(20), |_, s| s == 200, "/readyz")
        .await;
    eventually(
        Duration::from_secs(10),
        || env.sim.count("POST", POST_ENROLLMENTS) >= 2,
        || d.log(),
    )
    .await;
    assert!(!d.log().contains(&env.token), "the token is never logged");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
}

#[tokio::test]
async fn traces_go_to_an_otlp_collector_only_when_one_is_configured() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                if !body.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    // Without a collector: no export, and no export errors in the log.
    let mut plain = Daemon::start(&env, "0 0 0 1 1 *", "").await;
    plain
        .wait_for(
            Duration::from_secs(20),
            |t, _| cycles(t, "succeeded") >= 1.0,
            "/metrics",
        )
        .await;
    plain.signal(libc::SIGTERM);
    assert_eq!(plain.wait_exit(Duration::from_secs(15)).await, Some(0));
    assert!(
        !plain.log().to_lowercase().contains("export"),
        "{}",
        plain.log()
    );
    assert_eq!(received.load(Ordering::SeqCst), 0);

    // With one: the cycle's spans arrive (flushed at shutdown at the latest).
    let mut traced = Daemon::start(
        &env,
        "0 0 0 1 1 *",
        &format!("[log]\notlp_endpoint = \"http://{collector}\""),
    )
    .await;
    traced
        .wait_for(
            Duration::from_secs(20),
            |t, _| cycles(t, "succeeded") >= 1.0,
            "/metrics",
        )
        .await;
    traced.signal(libc::SIGTERM);
    assert_eq!(traced.wait_exit(Duration::from_secs(15)).await, Some(0));
    assert!(
        received.load(Ordering::SeqCst) >= 1,
        "no trace export arrived; log:\n{}",
        traced.log()
    );
}

/// A standby runs no cycles, so only the token check (GET /api/v1/users/self) can tell it that its token is bad:
/// it stays not ready with the reason in /readyz, logs why without the token, and becomes ready once the token file
/// holds a token Canvas accepts. A standby with a good token is ready without ever running a cycle.
#[tokio::test]
async fn a_standby_is_ready_only_after_canvas_accepted_its_token() {
    use rostersync::store::lock::LeaderLock;
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    // The test holds the leader lock, so every daemon it starts is a standby.
    let lock = LeaderLock::try_acquire(&env.settings("").database.url)
        .await
        .expect("lock")
        .expect("the leader lock is free");
    let token_file = env.dir.path().join("standby-token");
    std::fs::write(&token_file, "revoked-standby-token\n").expect("write token");
    let own_token = format!("token = \"{}\"\n", env.token);
    let mut bad = Daemon::start_with(
        &env,
        "*/2 * * * * *",
        &format!("token_file = \"{}\"", token_file.display()),
        |t| t.replace(&own_token, ""),
    )
    .await;
    let mut good = Daemon::start(&env, "*/2 * * * * *", "").await;

    let body = bad
        .wait_for(
            Duration::from_secs(15),
            |body, s| s == 503 && body.contains("rejected the token"),
            "/readyz",
        )
        .await;
    eprintln!("standby with a revoked token, /readyz: {body}");
    assert!(body.contains("GET /api/v1/users/self"), "{body}");
    good.wait_for(Duration::from_secs(15), |_, s| s == 200, "/readyz")
        .await;
    // Both are standbys: no cycle ran, nothing was written, and each checked its token.
    for d in [&bad, &good] {
        let metrics = d.get("/metrics").await.map(|r| r.1).unwrap_or_default();
        assert_eq!(metric(&metrics, "rostersync_leader"), Some(0.0));
        assert_eq!(
            cycles(&metrics, "succeeded") + cycles(&metrics, "failed"),
            0.0
        );
    }
    assert_eq!(env.writes(), 0);
    assert!(env.sim.count("GET", "/api/v1/users/self") >= 2);
    // Still not ready a few re-checks later, and said once in the log, without the token.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bad.get("/readyz").await.map(|r| r.0), Some(503));
    let log = bad.log();
    assert_eq!(
        log.matches("Canvas token check failed").count(),
        1,
        "one line per change of state: {log}"
    );
    assert!(
        !log.contains("revoked-standby-token") && !log.contains(&env.token),
        "{log}"
    );

    // Rotate the token: the next re-check (canvas_check::RETRY_FIRST, 10 s after the first failure) makes the
    // standby ready.
    std::fs::write(&token_file, format!("{}\n", env.token)).expect("rotate");
    bad.wait_for(Duration::from_secs(20), |_, s| s == 200, "/readyz")
        .await;
    assert!(
        bad.log().contains("Canvas accepted the token"),
        "{}",
        bad.log()
    );
    assert!(!bad.log().contains(&env.token), "the token is never logged");
    for line in bad.log().lines().filter(|l| l.contains("Canvas")) {
        eprintln!("standby log: {line}");
    }
    assert_eq!(env.writes(), 0, "a standby writes nothing");
    lock.release().await;
    for d in [&mut bad, &mut good] {
        d.signal(libc::SIGTERM);
        assert_eq!(d.wait_exit(Duration::from_secs(20)).await, Some(0));
    }
}
