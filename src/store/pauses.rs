//! `rostersync.pauses`: the operator's pauses (`rostersync pause` / `resume`, and the pause `undo` leaves). A pause is
//! in force while it is not resumed and its `until` (if any) is ahead; rows are never deleted. The database's clock
//! decides "ahead", so that every replica and every command agree on whether a pause still holds.
//!
//! Opening and ending pauses take a table lock in their transaction: two operators pausing at once get one pause
//! and one "already paused", never two pauses in force.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::DbError;

/// One row of `rostersync.pauses`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Pause {
    pub id: i64,
    pub paused_by: String,
    pub reason: Option<String>,
    pub paused_at: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// The run an `undo` reversed, for the pause it leaves behind.
    pub source_run_id: Option<String>,
    pub resumed_by: Option<String>,
    pub resumed_at: Option<DateTime<Utc>>,
}

/// A pause to open.
#[derive(Debug, Clone)]
pub struct NewPause<'a> {
    pub by: &'a str,
    pub reason: Option<&'a str>,
    pub until: Option<DateTime<Utc>>,
    pub source_run_id: Option<&'a str>,
    /// Database role, session user, OS user and host ([`super::runs::approved_as`]).
    pub paused_as: &'a str,
}

/// What [`Pauses::open`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Paused(Pause),
    /// A pause is already in force; nothing was written.
    AlreadyPaused(Pause),
    /// `until` is not ahead of the database's clock (`now`); nothing was written.
    UntilPassed {
        now: DateTime<Utc>,
    },
}

const COLUMNS: &str =
    "id, paused_by, reason, paused_at, until, source_run_id, resumed_by, resumed_at";

/// In force: not resumed, and no `until` or one still ahead.
const IN_FORCE: &str = "resumed_at IS NULL AND (until IS NULL OR until > now())";

#[derive(Clone)]
pub struct Pauses {
    pool: PgPool,
}

impl Pauses {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pause in force (the latest, should there be several), and the database's clock, which also decides
    /// whether a `[[schedule.pause]]` window is open.
    pub async fn in_force(&self) -> Result<(Option<Pause>, DateTime<Utc>), DbError> {
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::query("reading the database clock"))?;
        let pause = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rostersync.pauses WHERE {IN_FORCE} ORDER BY paused_at DESC, id DESC LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::query("reading the pause in force"))?;
        Ok((pause, now))
    }

    /// The latest pause that is no longer in force (resumed, or its `until` passed), for "not paused" messages.
    pub async fn last_ended(&self) -> Result<Option<Pause>, DbError> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rostersync.pauses WHERE NOT ({IN_FORCE}) \
             ORDER BY coalesce(resumed_at, until) DESC, id DESC LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::query("reading the last pause"))
    }

    /// Opens a pause unless one is already in force or `until` has passed.
    pub async fn open(&self, new: &NewPause<'_>) -> Result<Opened, DbError> {
        let err = DbError::query("opening the pause");
        let mut tx = self.pool.begin().await.map_err(err)?;
        lock(&mut tx).await?;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::query("reading the database clock"))?;
        if let Some(until) = new.until
            && until <= now
        {
            return Ok(Opened::UntilPassed { now });
        }
        let existing: Option<Pause> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rostersync.pauses WHERE {IN_FORCE} ORDER BY paused_at DESC, id DESC LIMIT 1"
        )))
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::query("reading the pause in force"))?;
        if let Some(existing) = existing {
            return Ok(Opened::AlreadyPaused(existing));
        }
        let pause: Pause = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO rostersync.pauses (paused_by, reason, until, source_run_id, paused_as) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        )))
        .bind(new.by)
        .bind(new.reason)
        .bind(new.until)
        .bind(new.source_run_id)
        .bind(new.paused_as)
        .fetch_one(&mut *tx)
        .await
        .map_err(DbError::query("opening the pause"))?;
        tx.commit()
            .await
            .map_err(DbError::query("opening the pause"))?;
        Ok(Opened::Paused(pause))
    }

    /// Ends every pause in force (normally one), recording who; returns them, oldest first.
    pub async fn resume(&self, by: &str, resumed_as: &str) -> Result<Vec<Pause>, DbError> {
        let err = DbError::query("ending the pause");
        let mut tx = self.pool.begin().await.map_err(err)?;
        lock(&mut tx).await?;
        let mut ended: Vec<Pause> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE rostersync.pauses SET resumed_by = $1, resumed_at = now(), resumed_as = $2 \
             WHERE {IN_FORCE} RETURNING {COLUMNS}"
        )))
        .bind(by)
        .bind(resumed_as)
        .fetch_all(&mut *tx)
        .await
        .map_err(DbError::query("ending the pause"))?;
        tx.commit()
            .await
            .map_err(DbError::query("ending the pause"))?;
        ended.sort_by_key(|p| (p.paused_at, p.id));
        Ok(ended)
    }
}

/// Serialises `pause` and `resume` (readers are not blocked: cycles keep reading whether they are paused).
async fn lock(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), DbError> {
    sqlx::query("LOCK TABLE rostersync.pauses IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await
        .map_err(DbError::query("locking the pauses table"))?;
    Ok(())
}
