//! `rostersync.sync_runs`: one row per cycle, opened `running` and closed with its status and counts.

use crate::domain::guard::ScopedBase;
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

/// Who approved a run, and as whom they ran the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub by: String,
    pub reason: Option<String>,
    pub source_run_id: Option<String>,
    /// Database role, session user, OS user and host: a typed name alone is not an audit trail.
    pub approved_as: String,
    /// For an `undo`: the run it reverses (`sync_runs.undo_of`; `source_run_id` is the run an `apply` makes).
    pub undo_of: Option<String>,
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
        self.start_approved(run_id, dry_run, None).await
    }

    /// What a scoped run's brake counts with its own changes: the access-removing changes and enrolls applied by
    /// scoped runs since the last full run that applied, and that full run's active or invited enrollments.
    pub async fn scoped_base(&self) -> Result<ScopedBase, DbError> {
        let (district_live, removals_made, enrolls_made): (i64, i64, i64) = sqlx::query_as(
            "WITH last_full AS ( \
                 SELECT started_at, coalesce((counts->'details'->>'live_giving_access')::bigint, 0) AS live \
                 FROM rostersync.sync_runs \
                 WHERE scope = 'full' AND NOT dry_run AND status IN ('succeeded', 'partial', 'safety_tripped') \
                 ORDER BY started_at DESC LIMIT 1) \
             SELECT coalesce((SELECT live FROM last_full), 0), \
                    count(*) FILTER (WHERE a.action <> 'enroll' AND (a.action <> 'change_state' \
                                     OR a.state_after IN ('inactive', 'completed', 'deleted'))), \
                    count(*) FILTER (WHERE a.action = 'enroll') \
             FROM rostersync.audit_log a JOIN rostersync.sync_runs r ON r.id = a.run_id \
             WHERE r.scope = 'courses' AND a.outcome = 'applied' AND NOT a.dry_run \
               AND r.started_at > coalesce((SELECT started_at FROM last_full), '-infinity')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(DbError::query("reading what scoped runs made since the last full run"))?;
        Ok(ScopedBase {
            removals_made: removals_made.max(0) as u64,
            enrolls_made: enrolls_made.max(0) as u64,
            district_live: district_live.max(0) as u64,
        })
    }

    /// Opens a run limited to some courses (`scope = 'courses'`).
    pub async fn start_scoped(&self, run_id: &str, dry_run: bool) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO rostersync.sync_runs (id, status, dry_run, scope) VALUES ($1, 'running', $2, 'courses')",
        )
        .bind(run_id)
        .bind(dry_run)
        .execute(&self.pool)
        .await
        .map_err(DbError::query("opening the run record"))?;
        Ok(())
    }

    /// Opens a run an operator approved (`apply`, `undo`): who, why, and from which reviewed run.
    pub async fn start_approved(
        &self,
        run_id: &str,
        dry_run: bool,
        approval: Option<&Approval>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO rostersync.sync_runs \
                 (id, status, dry_run, source_run_id, approved_by, reason, approved_as, undo_of) \
             VALUES ($1, 'running', $2, $3, $4, $5, $6, $7)",
        )
        .bind(run_id)
        .bind(dry_run)
        .bind(approval.and_then(|a| a.source_run_id.as_deref()))
        .bind(approval.map(|a| a.by.as_str()))
        .bind(approval.and_then(|a| a.reason.as_deref()))
        .bind(approval.map(|a| a.approved_as.as_str()))
        .bind(approval.and_then(|a| a.undo_of.as_deref()))
        .execute(&self.pool)
        .await
        .map_err(DbError::query("opening the run record"))?;
        Ok(())
    }

    /// The latest run whose trip no operator has acted on (RELIABILITY.md promise 4), if any.
    pub async fn open_trip(&self) -> Result<Option<String>, DbError> {
        sqlx::query_scalar(
            "SELECT id FROM rostersync.sync_runs \
             WHERE status = 'safety_tripped' AND NOT dry_run AND trip_cleared_at IS NULL \
             ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::query(
            "looking for a trip no operator has acted on",
        ))
    }

    /// An operator acted: trips up to and including `run_id` (every trip, when `None`) no longer hold later cycles.
    pub async fn clear_trips(&self, up_to: Option<&str>, by: &str) -> Result<u64, DbError> {
        let done = sqlx::query(
            "UPDATE rostersync.sync_runs SET trip_cleared_at = now(), trip_cleared_by = $2 \
             WHERE status = 'safety_tripped' AND trip_cleared_at IS NULL \
               AND ($1::text IS NULL OR started_at <= (SELECT started_at FROM rostersync.sync_runs WHERE id = $1))",
        )
        .bind(up_to)
        .bind(by)
        .execute(&self.pool)
        .await
        .map_err(DbError::query("clearing the trip"))?;
        Ok(done.rows_affected())
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
    /// reports the runs with audit rows still `planned` and not yet resolved (an interrupted change: it may or may
    /// not have reached Canvas). Those rows stay as they are; the cycle resolves them from Canvas
    /// (`reconcile::resolve`) with rows of its own.
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
             WHERE a.outcome = 'planned' AND NOT a.dry_run AND a.run_id <> $1 \
               AND NOT EXISTS (SELECT 1 FROM rostersync.audit_log b WHERE b.source_audit_id = a.id \
                               AND b.run_id <> a.run_id AND b.outcome IN ('applied', 'failed')) \
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

/// Who is running this command, as the database and the machine know them: `approved_as` of an operator's run.
pub async fn approved_as(pool: &PgPool) -> Result<String, DbError> {
    let (role, session): (String, String) =
        sqlx::query_as("SELECT current_user::text, session_user::text")
            .fetch_one(pool)
            .await
            .map_err(DbError::query("reading the database role"))?;
    Ok(format!(
        "db role {role}, session user {session}, os user {}, host {}",
        os_user(),
        host_name()
    ))
}

/// The OS user running this process.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid {}", unsafe { libc::getuid() })
        })
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
