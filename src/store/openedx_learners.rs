//! `rostersync.openedx_learners`: what rostersync remembers of Open edX program learners between cycles.
//!
//! - `seen_linked`: a listing once showed the learner's program enrollment linked to an account. Open edX never
//!   deletes a linked enrollment; it disappears only when the learner is retired (its key is replaced by
//!   `retired_external_key_...`, facts §6.6), so such a learner is not re-created.
//! - `written_at`: when rostersync last wrote the program enrollment. A waiting enrollment (no account yet) is
//!   deleted by Open edX 60 days after its last write (facts §6.4); it is re-written before then.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::DbError;

#[derive(Clone)]
pub struct OpenEdxLearners {
    pool: PgPool,
}

/// What is remembered of one (program, key).
#[derive(Debug, Clone, Copy, Default)]
pub struct Remembered {
    pub seen_linked: bool,
    pub written_at: Option<DateTime<Utc>>,
}

impl OpenEdxLearners {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Everything remembered of these programs' learners, by (program, lower-cased key).
    pub async fn load(
        &self,
        programs: &[String],
    ) -> Result<HashMap<(String, String), Remembered>, DbError> {
        let rows: Vec<(String, String, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT program_uuid, student_key, seen_linked, written_at FROM rostersync.openedx_learners \
             WHERE program_uuid = ANY($1)",
        )
        .bind(programs)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::query("reading the Open edX learners"))?;
        Ok(rows
            .into_iter()
            .map(|(p, k, seen_linked, written_at)| {
                (
                    (p, k),
                    Remembered {
                        seen_linked,
                        written_at,
                    },
                )
            })
            .collect())
    }

    /// The programs in which rostersync wrote this learner's enrollment or saw it linked to an account.
    pub async fn programs_of(&self, student_key: &str) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar(
            "SELECT program_uuid FROM rostersync.openedx_learners WHERE student_key = lower($1) \
             ORDER BY program_uuid",
        )
        .bind(student_key)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::query("reading the Open edX learners"))
    }

    /// Remembers that these (program, lower-cased key) were listed linked to an account.
    pub async fn seen_linked(&self, rows: &[(String, String)]) -> Result<(), DbError> {
        self.upsert(
            rows,
            "INSERT INTO rostersync.openedx_learners (program_uuid, student_key, seen_linked) \
             SELECT * , true FROM UNNEST($1::text[], $2::text[]) \
             ON CONFLICT (program_uuid, student_key) DO UPDATE SET seen_linked = true",
        )
        .await
    }

    /// Remembers that rostersync wrote these (program, lower-cased key) program enrollments now.
    pub async fn written(&self, rows: &[(String, String)]) -> Result<(), DbError> {
        self.upsert(
            rows,
            "INSERT INTO rostersync.openedx_learners (program_uuid, student_key, written_at) \
             SELECT *, now() FROM UNNEST($1::text[], $2::text[]) \
             ON CONFLICT (program_uuid, student_key) DO UPDATE SET written_at = now()",
        )
        .await
    }

    /// The course runs remembered for these programs, as (program, run key).
    pub async fn runs(&self, programs: &[String]) -> Result<Vec<(String, String)>, DbError> {
        sqlx::query_as(
            "SELECT program_uuid, course_key FROM rostersync.openedx_runs WHERE program_uuid = ANY($1)",
        )
        .bind(programs)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::query("reading the Open edX course runs"))
    }

    /// Remembers these (program, run key): their run enrollments are read every cycle from now on.
    pub async fn remember_runs(&self, rows: &[(String, String)]) -> Result<(), DbError> {
        self.upsert(
            rows,
            "INSERT INTO rostersync.openedx_runs (program_uuid, course_key) \
             SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        )
        .await
    }

    async fn upsert(&self, rows: &[(String, String)], sql: &'static str) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (programs, keys): (Vec<&str>, Vec<&str>) =
            rows.iter().map(|(p, k)| (p.as_str(), k.as_str())).unzip();
        sqlx::query(sql)
            .bind(&programs)
            .bind(&keys)
            .execute(&self.pool)
            .await
            .map_err(DbError::query("recording the Open edX learners"))?;
        Ok(())
    }
}
