//! RELIABILITY.md promise 22, the soak: the daemon for a long time under 1% random faults and a changing SIS,
//! sampling its memory, file descriptors and database connections. Not part of the normal run:
//!
//! ```sh
//! SOAK_MINUTES=120 cargo test --release --test it soak -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use canvas_sim::FaultOptions;

use crate::support::*;

fn proc_value(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "long-running; run by hand (see the module docs)"]
async fn p22_soak_resources_stay_flat() {
    let minutes: u64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(5);
    let (seed, rows) = roster(300);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions {
            error_rate: 0.01,
            latency: Duration::from_millis(5),
            fault_seed: 22,
            ..FaultOptions::default()
        },
    ))
    .await;
    load(&env, &rows[..250]).await;
    let mut d = Daemon::start(
        &env,
        "*/20 * * * * *",
        "[reconcile]\nmax_removal_ratio = 0.5",
    )
    .await;
    let pid = d.pid();
    let started = Instant::now();
    let mut samples: Vec<(u64, u64, usize, i64)> = Vec::new();
    let mut round = 0usize;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        round += 1;
        // Drift: every minute, swap which 50 users the SIS lists.
        if round.is_multiple_of(6) {
            env.clear_sis().await;
            let offset = (round / 6) % 6 * 10;
            load(&env, &rows[offset..offset + 250]).await;
        }
        let conns: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'rostersync%'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap_or(-1);
        samples.push((
            started.elapsed().as_secs(),
            proc_value(pid, "VmRSS:"),
            open_fds(pid),
            conns,
        ));
    }
    let metrics = d.get("/metrics").await.map(|r| r.1).unwrap_or_default();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(30)).await, Some(0));

    let warm = samples.get(samples.len() / 4).copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    let max_conns = samples.iter().map(|s| s.3).max().unwrap_or(0);
    let max_fds = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let min_fds = samples.iter().map(|s| s.2).min().unwrap_or(0);
    eprintln!("soak: {minutes} min, {} samples", samples.len());
    eprintln!(
        "  RSS kB  after warm-up {} → end {} ({:+.1}%)",
        warm.1,
        last.1,
        100.0 * (last.1 as f64 / warm.1.max(1) as f64 - 1.0)
    );
    eprintln!("  open fds {min_fds}..{max_fds}; PostgreSQL connections ≤ {max_conns}");
    for line in metrics.lines().filter(|l| {
        l.starts_with("rostersync_cycles_total") || l.starts_with("rostersync_canvas_retries_total")
    }) {
        eprintln!("  {line}");
    }
    let unresolved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log WHERE outcome = 'planned' AND NOT dry_run",
    )
    .fetch_one(&env.pool)
    .await
    .expect("planned");
    assert!(
        last.1 as f64 <= warm.1 as f64 * 1.10,
        "RSS grew more than 10%"
    );
    assert!(max_fds - min_fds <= 8, "file descriptors are flat");
    assert!(
        max_conns <= 8 + 1,
        "connections within the pool (8) plus the lock's"
    );
    assert_eq!(unresolved, 0, "no planned row left");
}
