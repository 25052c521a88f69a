//! `rostersync.removal_grace`: the access-removing changes deferred by flap damping
//! (`reconcile.removal_grace_cycles`), with how many consecutive cycles decided each.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgPool;

use super::DbError;

#[derive(Clone)]
pub struct RemovalGrace {
    pool: PgPool,
}

/// One deferred change as a run records it: its key, its SIS course, and the cycles that decided it so far.
pub struct Deferral<'a> {
    pub key: &'a str,
    pub course: &'a str,
    pub cycles: u32,
}

impl RemovalGrace {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// How many consecutive cycles decided each of `keys` before this one (absent: none).
    pub async fn cycles(&self, keys: &[String]) -> Result<HashMap<String, u32>, DbError> {
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "SELECT change_key, cycles FROM rostersync.removal_grace WHERE change_key = ANY($1)",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::query("reading deferred removals"))?;
        Ok(rows
            .into_iter()
            .map(|(k, n)| (k, n.max(0) as u32))
            .collect())
    }

    /// Records what run `run_id` deferred, and forgets every other change of the courses it covered (every course
    /// for a full run, `scope` for a scoped one): made now, or no longer decided.
    pub async fn record(
        &self,
        run_id: &str,
        deferred: &[Deferral<'_>],
        scope: Option<&BTreeSet<String>>,
    ) -> Result<(), DbError> {
        let err = DbError::query;
        let keys: Vec<&str> = deferred.iter().map(|d| d.key).collect();
        let courses: Vec<&str> = deferred.iter().map(|d| d.course).collect();
        let cycles: Vec<i32> = deferred.iter().map(|d| d.cycles as i32).collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(err("recording deferred removals"))?;
        match scope {
            None => sqlx::query(
                "DELETE FROM rostersync.removal_grace WHERE NOT (change_key = ANY($1))",
            )
            .bind(&keys),
            Some(scope) => sqlx::query(
                "DELETE FROM rostersync.removal_grace WHERE course_id = ANY($2) AND NOT (change_key = ANY($1))",
            )
            .bind(&keys)
            .bind(scope.iter().map(String::as_str).collect::<Vec<_>>()),
        }
        .execute(&mut *tx)
        .await
        .map_err(err("forgetting deferred removals"))?;
        sqlx::query(
            "INSERT INTO rostersync.removal_grace (change_key, course_id, cycles, first_run, last_run) \
             SELECT k, c, n, $4, $4 FROM unnest($1::text[], $2::text[], $3::int[]) AS t(k, c, n) \
             ON CONFLICT (change_key) DO UPDATE \
             SET cycles = EXCLUDED.cycles, last_run = EXCLUDED.last_run, updated_at = now()",
        )
        .bind(&keys)
        .bind(&courses)
        .bind(&cycles)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(err("recording deferred removals"))?;
        tx.commit()
            .await
            .map_err(err("recording deferred removals"))?;
        Ok(())
    }
}
