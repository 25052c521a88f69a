//! The leader lock: a PostgreSQL session advisory lock held on a dedicated connection, so that exactly one process
//! applies changes. The lock lives and dies with that connection: a killed process (kill -9 included) releases it
//! when PostgreSQL notices the connection is gone, and a terminated backend loses it at once.
//!
//! A watcher task owns the connection and keeps a cheap query in flight on it, so that losing the connection is
//! noticed within a fraction of a second (the pending query fails) rather than at the next periodic check. Losing
//! the lock cancels [`LeaderLock::lost`], which the running cycle listens to: no new write starts after that.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{DbError, connect_options};
use crate::config::DatabaseUrl;

/// The advisory lock key every rostersync process agrees on ("rostersy").
pub const LOCK_KEY: i64 = 0x726f_7374_6572_7379;

/// How long each probe query sleeps on the server: the upper bound on noticing a silently dead connection is a
/// TCP matter, but a terminated backend or a closed socket fails the pending probe at once.
const PROBE: &str = "SELECT pg_sleep(0.5)";

pub struct LeaderLock {
    lost: CancellationToken,
    release: Option<oneshot::Sender<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl LeaderLock {
    /// Tries once to take the lock; `Ok(None)` when another process holds it.
    pub async fn try_acquire(url: &DatabaseUrl) -> Result<Option<LeaderLock>, DbError> {
        let options = connect_options("rostersync", url)?.application_name("rostersync-leader");
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|source| DbError::Connect {
                which: "rostersync",
                url: url.to_string(),
                source,
            })?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::query("taking the leader lock"))?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        let lost = CancellationToken::new();
        let (release_tx, release_rx) = oneshot::channel();
        let watcher = tokio::spawn(watch(conn, lost.clone(), release_rx));
        Ok(Some(LeaderLock {
            lost,
            release: Some(release_tx),
            watcher: Some(watcher),
        }))
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

    /// Cancelled the moment the lock is known to be lost.
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

async fn watch(
    mut conn: PgConnection,
    lost: CancellationToken,
    mut release: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut release => {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY).execute(&mut conn).await;
                let _ = conn.close().await;
                return;
            }
            probe = sqlx::query(PROBE).execute(&mut conn) => {
                if let Err(e) = probe {
                    tracing::error!(error = %e, "leader lock lost: its database connection failed");
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
