//! The leader lock: a PostgreSQL session advisory lock held on a dedicated connection, so that exactly one
//! process applies changes. The lock lives and dies with that connection: a killed process (kill -9 included)
//! releases it when PostgreSQL notices the connection is gone, and a terminated backend loses it at once.

use sqlx::{Connection, PgConnection};

use super::{DbError, connect_options};
use crate::config::DatabaseUrl;

/// `hashtext('rostersync')`-style constant: the advisory lock key every rostersync process agrees on.
pub const LOCK_KEY: i64 = 0x726f_7374_6572_7379; // "rostersy"

pub struct LeaderLock {
    conn: PgConnection,
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
        if got {
            Ok(Some(LeaderLock { conn }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Checks that the lock is still ours (the connection is alive and the lock is listed for this backend).
    pub async fn still_held(&mut self) -> bool {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND granted AND objid = ($1 & 4294967295)::oid AND classid = ($1 >> 32)::oid)",
        )
        .bind(LOCK_KEY)
        .fetch_one(&mut self.conn)
        .await
        .unwrap_or(false)
    }

    /// Releases the lock now (rather than whenever the pool would drop the connection).
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}
