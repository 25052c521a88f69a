//! The leader lock: a PostgreSQL session advisory lock held on a dedicated connection, so that exactly one process
//! applies changes. The lock lives and dies with that connection: a killed process (kill -9 included) releases it
//! when PostgreSQL notices the connection is gone, and a terminated backend loses it at once.
//!
//! A watcher task owns the connection and keeps a cheap query in flight on it, so that losing the connection is
//! noticed within a fraction of a second (the pending query fails) rather than at the next periodic check. Losing
//! the lock cancels [`LeaderLock::lost`], which the running cycle listens to: no new write starts after that, and
//! the changes in flight are abandoned.
//!
//! A silent loss (a network partition, a database host that vanished: no RST, no error) is bounded on both ends
//! (README, *Replicas*):
//! - **the client fences itself**: every probe must answer within [`PROBE_TIMEOUT`]; one that does not counts as the
//!   lock lost, so the leader stops writing at most [`PROBE_TIMEOUT`] after it last heard from the database;
//! - **the server drops the session later**: the lock session runs with `idle_session_timeout` =
//!   [`SERVER_IDLE_TIMEOUT`] and TCP keepalives / `tcp_user_timeout` of about the same length, so PostgreSQL ends a
//!   session that stopped probing (and frees the lock for a standby) only well after its client has fenced itself.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{DbError, connect_options};
use crate::config::DatabaseUrl;

/// The advisory lock key every rostersync process agrees on ("rostersy").
pub const LOCK_KEY: i64 = 0x726f_7374_6572_7379;

/// How long each probe query sleeps on the server: a terminated backend or a closed socket fails the pending probe
/// at once; a silent one is caught by [`PROBE_TIMEOUT`].
const PROBE: &str = "SELECT pg_sleep(0.5)";

/// A probe that has not answered after this long means the database is out of reach: the leader fences itself.
/// T1 in the README's timing argument (the leader stops writing within T1 of its last answer from the database).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// The server ends the lock session after this long without a query (`idle_session_timeout`, PostgreSQL 14+), which
/// frees the lock for a standby. T2 in the README: it must be well above [`PROBE_TIMEOUT`].
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Per-session server settings on the lock connection: the server drops a session whose client went silent (T2),
/// by `idle_session_timeout` (a frozen path that still ACKs, e.g. a proxy) and by TCP keepalives and
/// `tcp_user_timeout` (a dead path). Each is set on its own and a refusal (an older server, a setting not
/// supported on this platform) is only logged: the lock still works, only the takeover after a silent partition
/// then waits for the server's own TCP timeouts.
fn session_settings() -> [(&'static str, String); 5] {
    let t2 = SERVER_IDLE_TIMEOUT.as_secs();
    [
        ("idle_session_timeout", format!("{t2}s")),
        // Keepalives: 10 s idle, then 4 probes 2 s apart — a dead client is dropped after about 18 s.
        ("tcp_keepalives_idle", "10".into()),
        ("tcp_keepalives_interval", "2".into()),
        ("tcp_keepalives_count", "4".into()),
        ("tcp_user_timeout", (t2 * 1000).to_string()),
    ]
}

/// What one try at the lock found.
pub enum TryLock {
    /// This process now holds the lock.
    Acquired(LeaderLock, ServerInstance),
    /// Another session holds it.
    Held(ServerInstance),
}

/// Which PostgreSQL server answered (its postmaster start time): after a failover the new primary answers with
/// another one, so a standby can tell "the old session ended on this server" from "this is another server, on
/// which the old leader never held the lock".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInstance(pub String);

pub struct LeaderLock {
    lost: CancellationToken,
    release: Option<oneshot::Sender<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl LeaderLock {
    /// Tries once to take the lock; `Ok(None)` when another process holds it.
    pub async fn try_acquire(url: &DatabaseUrl) -> Result<Option<LeaderLock>, DbError> {
        Ok(match Self::try_lock(url).await? {
            TryLock::Acquired(lock, _) => Some(lock),
            TryLock::Held(_) => None,
        })
    }

    /// Tries once to take the lock, and says which server answered.
    pub async fn try_lock(url: &DatabaseUrl) -> Result<TryLock, DbError> {
        let options = connect_options("rostersync", url)?.application_name("rostersync-leader");
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|source| DbError::Connect {
                which: "rostersync",
                url: url.to_string(),
                cause: super::ConnectCause::from_sqlx(&source, &options),
            })?;
        let (got, instance, backend) = sqlx::query_as::<sqlx::Postgres, (bool, String, i32)>(
            "SELECT pg_try_advisory_lock($1), pg_postmaster_start_time()::text, pg_backend_pid()",
        )
        .bind(LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .map_err(DbError::query("taking the leader lock"))?;
        let instance = ServerInstance(instance);
        if !got {
            let _ = conn.close().await;
            return Ok(TryLock::Held(instance));
        }
        for (name, value) in session_settings() {
            if let Err(e) = sqlx::query("SELECT set_config($1, $2, false)")
                .bind(name)
                .bind(value)
                .execute(&mut conn)
                .await
            {
                tracing::warn!(setting = name, error = %e, "the leader lock session could not set a server-side timeout; after a silent network loss a standby takes over only when the server's own TCP timeouts end this session");
            }
        }
        let lost = CancellationToken::new();
        let (release_tx, release_rx) = oneshot::channel();
        let canceller = Canceller {
            options: options.application_name("rostersync-leader-release"),
            backend,
        };
        let watcher = tokio::spawn(watch(conn, canceller, lost.clone(), release_rx));
        Ok(TryLock::Acquired(
            LeaderLock {
                lost,
                release: Some(release_tx),
                watcher: Some(watcher),
            },
            instance,
        ))
    }

    /// Takes the lock, trying again every 250 ms for up to `wait` (a zero `wait` tries once); `Ok(None)` when
    /// another process still holds it then. A process killed a moment ago still holds the lock until the server
    /// notices its connection is gone (within a second), so a short wait keeps a restart from looking like a
    /// second writer.
    pub async fn acquire_within(
        url: &DatabaseUrl,
        wait: Duration,
    ) -> Result<Option<LeaderLock>, DbError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(url).await? {
                return Ok(Some(lock));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Cancelled the moment the lock is known (or, after [`PROBE_TIMEOUT`] of silence, presumed) lost.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    pub fn is_held(&self) -> bool {
        !self.lost.is_cancelled()
    }

    /// Releases the lock now (rather than whenever the connection would be dropped).
    pub async fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
        if let Some(w) = self.watcher.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
    }
}

impl Drop for LeaderLock {
    fn drop(&mut self) {
        // Dropped without `release`: tell the watcher, which unlocks and closes the connection.
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

/// Ends the probe in flight on the lock session, from a connection of its own, so that a release need not wait for
/// the probe's sleep to run out: the unlock queues behind it on the lock connection, and that wait (up to the
/// probe's 0.5 s, 0.25 s on average) was most of the time a one-shot `reconcile` spent after its last Canvas call.
struct Canceller {
    options: sqlx::postgres::PgConnectOptions,
    /// `pg_backend_pid()` of the lock session.
    backend: i32,
}

impl Canceller {
    /// Best effort: when it cannot (the database out of reach, a role without the right to signal its own
    /// sessions), the unlock simply waits for the probe to end, as it would without it.
    async fn cancel_probe(&self) {
        let Ok(mut conn) = PgConnection::connect_with(&self.options).await else {
            return;
        };
        // Cancels only a statement in progress on that session (the probe); an idle session ignores it. Should it
        // reach the unlock instead, the unlock fails and closing the session frees the lock just the same.
        let _ = sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(self.backend)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

async fn watch(
    mut conn: PgConnection,
    canceller: Canceller,
    lost: CancellationToken,
    mut release: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut release => {
                let unlock = async {
                    let unlock = || sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY);
                    // A second try when the first fails: the cancelled probe's error is what the first one reads
                    // (or the cancel reached the unlock itself). One cancel is sent, so it fails one statement at most.
                    if unlock().execute(&mut conn).await.is_err() {
                        let _ = unlock().execute(&mut conn).await;
                    }
                    let _ = conn.close().await;
                };
                // The unlock waits for the dropped probe to finish on the server; ending the probe early shortens
                // that wait, and both run at once so that a failed cancel costs nothing.
                let release = async {
                    tokio::join!(unlock, canceller.cancel_probe());
                };
                // A database out of reach must not keep the release (and shutdown) waiting: dropping the connection
                // closes the socket, and the server frees the lock when it notices.
                let _ = tokio::time::timeout(Duration::from_secs(3), release).await;
                return;
            }
            probe = tokio::time::timeout(PROBE_TIMEOUT, sqlx::query(PROBE).execute(&mut conn)) => {
                match probe {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "leader lock lost: its database connection failed");
                        lost.cancel();
                        return;
                    }
                    Err(_) => {
                        tracing::error!(
                            timeout_secs = PROBE_TIMEOUT.as_secs(),
                            "leader lock presumed lost: the database has not answered the lock probe; stopping all writes"
                        );
                        lost.cancel();
                        // Dropping the connection (no goodbye: the path may be dead) closes our end of the socket.
                        return;
                    }
                }
            }
        }
    }
}
