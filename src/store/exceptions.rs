//! `rostersync.exceptions` (CONTRACT v2): enrollments rostersync never touches. An exception names a user and one
//! course (or every course); while it is active — not removed, and `expires_at` unset or still ahead by the database
//! clock — each cycle leaves that user's enrollments there exactly as they are.
//!
//! Rows are never deleted or rewritten beyond `removed_by`/`removed_at`: the table is the audit trail of every
//! exception ever added and removed. Expiry needs no writer: the cycle's query compares `expires_at` with `now()`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::DbError;

/// One row of `rostersync.exceptions`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Exception {
    pub id: i64,
    pub user_id: String,
    /// `None` = every course.
    pub course_id: Option<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub removed_by: Option<String>,
    pub removed_at: Option<DateTime<Utc>>,
    /// Whether it applies now (computed by the database, whose clock the cycle uses too).
    pub active: bool,
}

/// What `except add` records.
#[derive(Debug, Clone)]
pub struct NewException<'a> {
    pub user_id: &'a str,
    pub course_id: Option<&'a str>,
    pub reason: &'a str,
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What `except remove` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed(Exception),
    AlreadyRemoved(Exception),
    Unknown,
}

/// The columns every read returns, `active` computed with the same test the cycle uses. A macro, so that each
/// statement stays one literal (`concat!`).
macro_rules! columns {
    () => {
        "id, user_id, course_id, reason, created_by, created_at, expires_at, removed_by, removed_at, \
         (removed_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS active"
    };
}

/// An exception applies now: not removed, and not expired by the database clock.
macro_rules! active {
    () => {
        "removed_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
    };
}

#[derive(Clone)]
pub struct Exceptions {
    pool: PgPool,
}

impl Exceptions {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records a new exception and returns it; `None` when `expires_at` is not in the future by the database clock
    /// (the same clock the cycles compare it with), in which case nothing is recorded.
    pub async fn add(&self, new: &NewException<'_>) -> Result<Option<Exception>, DbError> {
        sqlx::query_as(concat!(
            "INSERT INTO rostersync.exceptions (user_id, course_id, reason, created_by, expires_at) \
             SELECT $1, $2, $3, $4, $5 WHERE $5::timestamptz IS NULL OR $5::timestamptz > now() \
             RETURNING ",
            columns!()
        ))
        .bind(new.user_id)
        .bind(new.course_id)
        .bind(new.reason)
        .bind(new.created_by)
        .bind(new.expires_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::query("recording an exception"))
    }

    /// Marks an exception removed by `by`, once: a second removal finds it already removed.
    pub async fn remove(&self, id: i64, by: &str) -> Result<Removal, DbError> {
        let removed: Option<Exception> = sqlx::query_as(concat!(
            "UPDATE rostersync.exceptions SET removed_by = $2, removed_at = now() \
             WHERE id = $1 AND removed_at IS NULL RETURNING ",
            columns!()
        ))
        .bind(id)
        .bind(by)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::query("removing an exception"))?;
        if let Some(e) = removed {
            return Ok(Removal::Removed(e));
        }
        Ok(match self.get(id).await? {
            Some(e) => Removal::AlreadyRemoved(e),
            None => Removal::Unknown,
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<Exception>, DbError> {
        sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM rostersync.exceptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::query("reading an exception"))
    }

    /// The active exceptions (`all` = every one ever added), oldest first.
    pub async fn list(&self, all: bool) -> Result<Vec<Exception>, DbError> {
        let query = if all {
            concat!(
                "SELECT ",
                columns!(),
                " FROM rostersync.exceptions ORDER BY id"
            )
        } else {
            concat!(
                "SELECT ",
                columns!(),
                " FROM rostersync.exceptions WHERE ",
                active!(),
                " ORDER BY id"
            )
        };
        sqlx::query_as(query)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::query("listing exceptions"))
    }

    /// (user id, course id or `None` = every course) of each exception active now: what a cycle leaves alone.
    pub async fn active_scopes(&self) -> Result<Vec<(String, Option<String>)>, DbError> {
        sqlx::query_as(concat!(
            "SELECT user_id, course_id FROM rostersync.exceptions WHERE ",
            active!()
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::query("reading the active exceptions"))
    }
}
