//! `rostersync.sync_runs`: one row per cycle, opened `running` and closed with its status and counts.

use serde_json::Value;
use sqlx::PgPool;

use super::DbError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Partial,
    Failed,
    SafetyTripped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::SafetyTripped => "safety_tripped",
        }
    }
}

/// A run that an earlier process left `running` or with `planned` audit rows: it was interrupted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InterruptedRun {
    pub run_id: String,
    pub unresolved_planned: i64,
}

#[derive(Clone)]
pub struct Runs {
    pool: PgPool,
}

impl Runs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn start(&self, run_id: &str, dry_run: bool) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO rostersync.sync_runs (id, status, dry_run) VALUES ($1, 'running', $2)",
        )
        .bind(run_id)
        .bind(dry_run)
        .execute(&self.pool)
        .await
        .map_err(DbError::query("opening the run record"))?;
        Ok(())
    }

    pub async fn finish(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: &Value,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE rostersync.sync_runs SET finished_at = now(), status = $2, counts = $3, error = $4 WHERE id = $1",
        )
        .bind(run_id)
        .bind(status.as_str())
        .bind(counts)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(DbError::query("closing the run record"))?;
        Ok(())
    }

    /// Closes runs that earlier processes left `running` (the caller holds the leader lock, so none is live) and
    /// reports the runs since the last completed one that left audit rows `planned` (an interrupted change:
    /// it may or may not have reached Canvas). Those audit rows stay as they are: the new run names
    /// them, and its own plan, computed from Canvas as it now is, finishes the job.
    pub async fn close_interrupted(&self, current: &str) -> Result<Vec<InterruptedRun>, DbError> {
        sqlx::query(
            "UPDATE rostersync.sync_runs SET status = 'failed', finished_at = now(), \
             error = coalesce(error, 'interrupted: the process ended before the run was closed') \
             WHERE status = 'running' AND id <> $1",
        )
        .bind(current)
        .execute(&self.pool)
        .await
        .map_err(DbError::query("closing interrupted runs"))?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT a.run_id, count(*) FROM rostersync.audit_log a \
             JOIN rostersync.sync_runs r ON r.id = a.run_id \
             WHERE a.outcome = 'planned' AND NOT a.dry_run AND a.run_id <> $1 \
               AND r.started_at > coalesce((SELECT max(started_at) FROM rostersync.sync_runs \
                   WHERE status IN ('succeeded', 'partial', 'safety_tripped') AND id <> $1), '-infinity') \
             GROUP BY a.run_id ORDER BY min(a.id)",
        )
        .bind(current)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::query("looking for unresolved planned changes"))?;
        Ok(rows
            .into_iter()
            .map(|(run_id, unresolved_planned)| InterruptedRun {
                run_id,
                unresolved_planned,
            })
            .collect())
    }
}
