//! `rostersync.canvas_missing`: SIS ids Canvas answered 404 for, so that a later cycle looks them up once instead
//! of planning a change that fails the same way every cycle. An id leaves the table when a lookup finds it.

use sqlx::PgPool;

use super::DbError;

/// What kind of Canvas object an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKind {
    User,
    Section,
}

impl MissingKind {
    fn as_str(self) -> &'static str {
        match self {
            MissingKind::User => "user",
            MissingKind::Section => "section",
        }
    }
}

#[derive(Clone)]
pub struct MissingRefs {
    pool: PgPool,
}

impl MissingRefs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Every remembered id of this kind.
    pub async fn load(&self, kind: MissingKind) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar("SELECT sis_id FROM rostersync.canvas_missing WHERE kind = $1")
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::query("reading the ids Canvas does not have"))
    }

    pub async fn remember(&self, kind: MissingKind, ids: &[String]) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO rostersync.canvas_missing (kind, sis_id) SELECT $1, unnest($2::text[]) \
             ON CONFLICT (kind, sis_id) DO UPDATE SET last_seen = now()",
        )
        .bind(kind.as_str())
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(DbError::query("remembering ids Canvas does not have"))?;
        Ok(())
    }

    pub async fn forget(&self, kind: MissingKind, ids: &[String]) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM rostersync.canvas_missing WHERE kind = $1 AND sis_id = ANY($2)")
            .bind(kind.as_str())
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(DbError::query("forgetting ids Canvas now has"))?;
        Ok(())
    }
}
