//! Leadership under faults (CONTRACT v2): a leader cut off from the database by a silent network partition stops
//! writing to Canvas within 30 s, a standby takes over within 60 s, and their writes never overlap. The partition is
//! real: the leader reaches PostgreSQL through a TCP proxy in the test that is frozen (it stops forwarding in both
//! directions and closes nothing, as a partition sends no RST).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use canvas_sim::FaultOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::*;

const POST_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";

/// A TCP proxy to one upstream that can be frozen: while frozen it accepts, reads and forwards nothing, and keeps
/// every socket open.
struct FreezableProxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    async fn start(upstream: String) -> FreezableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (frozen, rx) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let (upstream, mut rx) = (upstream.clone(), rx.clone());
                tokio::spawn(async move {
                    if rx.wait_for(|f| !*f).await.is_err() {
                        return;
                    }
                    let Ok(up) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    tokio::spawn(pump(down_r, up_w, rx.clone()));
                    tokio::spawn(pump(up_r, down_w, rx));
                });
            }
        });
        FreezableProxy {
            addr,
            frozen,
            accept,
        }
    }

    fn freeze(&self) {
        let _ = self.frozen.send(true);
    }

    fn thaw(&self) {
        let _ = self.frozen.send(false);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies one direction; while frozen, holds what it read (data or the end of the stream) and reads no more.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let read = from.read(&mut buf).await;
        // Data, an end of stream or an error that arrives while frozen waits too: a partition forwards no FIN.
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn agent_of(pid: i32) -> impl Fn(&canvas_sim::RequestRecord) -> bool {
    let tag = format!("(pid {pid})");
    move |r| r.user_agent.as_deref().is_some_and(|ua| ua.contains(&tag))
}

#[tokio::test]
async fn a_partitioned_leader_fences_itself_and_the_standby_takes_over_without_overlap() {
    // Enough that the leader, writing at the default concurrency until it notices (T1 = 8 s), cannot finish alone.
    let n = 600;
    let (env, _) = roster_env(
        n,
        FaultOptions {
            write_latency: Duration::from_millis(300),
            ..FaultOptions::default()
        },
    )
    .await;
    let mut via_proxy = url::Url::parse(&env.db_url).expect("database url");
    let upstream = format!(
        "{}:{}",
        via_proxy.host_str().unwrap_or("127.0.0.1"),
        via_proxy.port().unwrap_or(5432)
    );
    let proxy = FreezableProxy::start(upstream).await;
    via_proxy
        .set_port(Some(proxy.addr.port()))
        .expect("set port");

    // The leader reaches the database only through the proxy; the standby directly. Default concurrency.
    // A first sync of 600 is over the enroll brake (500): the test is about leadership, not the brake.
    const FIRST_SYNC: &str = "[reconcile]\nmax_additions = 100000";
    let leader = Daemon::start_with_db(&env, via_proxy.as_str(), "*/2 * * * * *", FIRST_SYNC).await;
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", POST_ENROLLMENTS) >= 4,
        || format!("the leader never wrote:\n{}", leader.log()),
    )
    .await;
    let standby = Daemon::start(&env, "*/2 * * * * *", FIRST_SYNC).await;
    let is_old = agent_of(leader.pid());
    let is_new = agent_of(standby.pid());

    let posts_before = env.sim.count("POST", POST_ENROLLMENTS);
    assert!(
        posts_before < n as usize,
        "the leader is mid-apply when the partition starts ({posts_before} of {n})"
    );
    proxy.freeze();
    let frozen_at = Instant::now();

    // The old leader knows it lost: its gauge drops (its HTTP server does not need the database).
    leader
        .wait_for(
            Duration::from_secs(20),
            |t, _| metric(t, "rostersync_leader") == Some(0.0),
            "/metrics",
        )
        .await;
    let fenced_after = frozen_at.elapsed();
    // The standby takes over and finishes the job.
    eventually(
        Duration::from_secs(60),
        || {
            env.sim
                .requests()
                .iter()
                .any(|r| r.method != "GET" && is_new(r))
        },
        || format!("the standby never wrote:\n{}", standby.log()),
    )
    .await;
    let took_over_after = frozen_at.elapsed();
    eventually(
        Duration::from_secs(40),
        || env.sim.with_store(|s| s.enrollments().count()) >= n as usize,
        || format!("the standby never finished:\n{}", standby.log()),
    )
    .await;
    // Its cycle cannot record anything through the frozen proxy; it is dropped after a grace instead of waiting
    // minutes for TCP to give up.
    eventually(
        Duration::from_secs(30),
        || leader.log().contains("did not wind down in time"),
        || {
            format!(
                "the old leader's cycle was never dropped:\n{}",
                leader.log()
            )
        },
    )
    .await;
    // The partition heals: the old leader makes no write.
    proxy.thaw();
    let thawed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let requests = env.sim.requests();
    let old_writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != "GET" && is_old(r))
        .collect();
    let new_writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != "GET" && is_new(r))
        .collect();
    assert!(!old_writes.is_empty() && !new_writes.is_empty());
    assert_eq!(
        old_writes.len() + new_writes.len(),
        requests.iter().filter(|r| r.method != "GET").count(),
        "every write came from one of the two replicas"
    );
    let old_last = old_writes.iter().map(|r| r.finished).max().expect("old");
    let new_first = new_writes.iter().map(|r| r.started).min().expect("new");
    let old_last_after = old_last.saturating_duration_since(frozen_at);
    let new_first_after = new_first.saturating_duration_since(frozen_at);
    eprintln!(
        "partition: the old leader's gauge fell after {fenced_after:?}, its last write ended {old_last_after:?} \
         after the freeze; the standby's first write started {new_first_after:?} after ({took_over_after:?} \
         observed); {} old writes, {} new",
        old_writes.len(),
        new_writes.len()
    );
    assert!(
        old_last < new_first,
        "the old leader's last write ({old_last_after:?} after the freeze) ends before the new leader's first \
         ({new_first_after:?})"
    );
    assert!(
        new_first.duration_since(old_last) >= Duration::from_secs(1),
        "never in the same second: {old_last_after:?} / {new_first_after:?}"
    );
    assert!(
        old_last_after < Duration::from_secs(30),
        "the old leader stops writing within 30 s of losing the database ({old_last_after:?})"
    );
    assert!(
        new_first_after < Duration::from_secs(60),
        "the standby takes over within 60 s ({new_first_after:?})"
    );
    assert!(
        !old_writes.iter().any(|r| r.started > thawed_at),
        "no write from the old leader once the partition heals"
    );
    assert!(
        leader.log().contains("leader lock presumed lost"),
        "the old leader fenced itself on the probe timeout:\n{}",
        leader.log()
    );
    for uid in 1..=n {
        assert_eq!(
            env.enrollments_of(uid, 100).len(),
            1,
            "exactly one enrollment for user {uid}"
        );
    }
    drop((leader, standby, proxy));
}

/// Losing the lock ends the retries in flight too: with every write answered 503, each change sits in backoff
/// (0.5, 1, 2, 4, 8 s) when the lock's backend is terminated, and no retry follows.
#[tokio::test]
async fn losing_the_lock_ends_the_retries_in_flight() {
    let (env, _) = roster_env(
        8,
        FaultOptions::default().with_rule(canvas_sim::FaultRule::on(
            "POST",
            POST_ENROLLMENTS,
            canvas_sim::FaultAction::status(503),
        )),
    )
    .await;
    let leader = Daemon::start(&env, "0 0 0 1 1 *", "").await;
    // The four changes in flight have each been answered 503 at least once: all are retrying.
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", POST_ENROLLMENTS) >= 8,
        || format!("the leader never retried:\n{}", leader.log()),
    )
    .await;
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) t",
    )
    .fetch_one(&env.pool)
    .await
    .expect("terminate");
    assert_eq!(terminated, 1);
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let posts = env.sim.requests();
    let after: Vec<Duration> = posts
        .iter()
        .filter(|r| r.method == "POST" && r.started > cut)
        .map(|r| r.started - cut)
        .collect();
    assert!(
        after.len() <= 1 && after.iter().all(|d| *d < Duration::from_millis(500)),
        "retries after the lock was lost, at {after:?}:\n{}",
        leader.log()
    );
    assert!(
        leader.log().contains("leader lock lost"),
        "{}",
        leader.log()
    );
    drop(leader);
}
