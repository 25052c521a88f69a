//! `rostersync.audit_log`: every decided change, written as `planned` before its Canvas call and updated to its
//! final outcome after, within the same run. A crash between the two leaves a `planned` row that the next run
//! reports; rows are never touched by a later run and never deleted.

use sqlx::PgPool;

use super::DbError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Planned,
    Applied,
    Failed,
    Skipped,
    /// Held back by the brake; `apply` of the run makes it.
    Held,
    /// Decided, and waiting for more cycles to decide it again before it is made (flap damping).
    Deferred,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 6] = [
        AuditOutcome::Planned,
        AuditOutcome::Applied,
        AuditOutcome::Failed,
        AuditOutcome::Skipped,
        AuditOutcome::Held,
        AuditOutcome::Deferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Planned => "planned",
            AuditOutcome::Applied => "applied",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Skipped => "skipped",
            AuditOutcome::Held => "held",
            AuditOutcome::Deferred => "deferred",
        }
    }

    pub fn parse(s: &str) -> Option<AuditOutcome> {
        AuditOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One audit row as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRow {
    pub action: &'static str,
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    pub canvas_enrollment_id: Option<i64>,
    pub outcome: Option<AuditOutcome>,
    pub error: Option<String>,
    /// The operator whose `apply` makes this change.
    pub approved_by: Option<String>,
    /// For a change `apply` makes: the reviewed run's audit row.
    pub source_audit_id: Option<i64>,
}

/// A change as an earlier run recorded it, read back (by `apply`, `undo`, the resolution of interrupted runs).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordedChange {
    pub id: i64,
    pub run_id: String,
    pub action: String,
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    pub canvas_enrollment_id: Option<i64>,
}

impl RecordedChange {
    /// The columns to select, prefixed with a table alias, in the order `FromRow` reads them by name.
    pub const COLUMNS: &'static str = "a.id, a.run_id, a.action, a.user_id, a.course_id, a.section_id, \
        a.role_before, a.role_after, a.state_before, a.state_after, a.canvas_enrollment_id";

    /// A new row describing the same change (outcome and error left for the caller), pointing back at this one.
    pub fn restated(&self) -> AuditRow {
        AuditRow {
            action: ["enroll", "remove", "change_role", "change_state"]
                .into_iter()
                .find(|a| *a == self.action)
                .unwrap_or("enroll"),
            user_id: self.user_id.clone(),
            course_id: self.course_id.clone(),
            section_id: self.section_id.clone(),
            role_before: self.role_before.clone(),
            role_after: self.role_after.clone(),
            state_before: self.state_before.clone(),
            state_after: self.state_after.clone(),
            canvas_enrollment_id: self.canvas_enrollment_id,
            source_audit_id: Some(self.id),
            ..AuditRow::default()
        }
    }
}

/// The final outcome of a planned row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeUpdate {
    pub id: i64,
    pub outcome: AuditOutcome,
    pub error: Option<String>,
    pub canvas_enrollment_id: Option<i64>,
    pub new_canvas_enrollment_id: Option<i64>,
    pub http_status: Option<i32>,
    /// JSON text describing each step of a two-step change.
    pub steps: Option<String>,
}

/// Rows per statement: large enough that 60 000 planned rows take a few dozen round trips.
const CHUNK: usize = 5_000;

#[derive(Clone)]
pub struct AuditLog {
    pool: PgPool,
}

impl AuditLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Inserts rows (outcome per row, `planned` when unset) and returns their ids in order.
    pub async fn insert(
        &self,
        run_id: &str,
        dry_run: bool,
        rows: &[AuditRow],
    ) -> Result<Vec<i64>, DbError> {
        let mut ids = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(CHUNK) {
            // Ids are drawn first so that the returned order is the input order by construction.
            let chunk_ids: Vec<i64> = sqlx::query_scalar(
                "SELECT nextval('rostersync.audit_log_id_seq') FROM generate_series(1, $1)",
            )
            .bind(chunk.len() as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::query("allocating audit row ids"))?;
            let col = |f: fn(&AuditRow) -> Option<String>| chunk.iter().map(f).collect::<Vec<_>>();
            sqlx::query(
                "INSERT INTO rostersync.audit_log (id, run_id, dry_run, action, user_id, course_id, section_id, \
                 role_before, role_after, state_before, state_after, canvas_enrollment_id, outcome, error, \
                 approved_by, source_audit_id) \
                 SELECT t.id, $2, $3, t.action, t.user_id, t.course_id, t.section_id, t.role_before, t.role_after, \
                        t.state_before, t.state_after, t.eid, t.outcome, t.error, t.approved_by, t.source \
                 FROM UNNEST($1::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
                             $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[], \
                             $16::bigint[]) \
                      AS t(id, action, user_id, course_id, section_id, role_before, role_after, state_before, \
                           state_after, eid, outcome, error, approved_by, source)",
            )
            .bind(&chunk_ids)
            .bind(run_id)
            .bind(dry_run)
            .bind(chunk.iter().map(|r| r.action.to_owned()).collect::<Vec<_>>())
            .bind(col(|r| r.user_id.clone()))
            .bind(col(|r| r.course_id.clone()))
            .bind(col(|r| r.section_id.clone()))
            .bind(col(|r| r.role_before.clone()))
            .bind(col(|r| r.role_after.clone()))
            .bind(col(|r| r.state_before.clone()))
            .bind(col(|r| r.state_after.clone()))
            .bind(chunk.iter().map(|r| r.canvas_enrollment_id).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.outcome.unwrap_or(AuditOutcome::Planned).as_str().to_owned())
                    .collect::<Vec<_>>(),
            )
            .bind(col(|r| r.error.clone()))
            .bind(col(|r| r.approved_by.clone()))
            .bind(chunk.iter().map(|r| r.source_audit_id).collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map_err(DbError::query("writing audit rows"))?;
            ids.extend(chunk_ids);
        }
        Ok(ids)
    }

    /// Records final outcomes of planned rows.
    pub async fn record_outcomes(&self, updates: &[OutcomeUpdate]) -> Result<(), DbError> {
        for chunk in updates.chunks(CHUNK) {
            sqlx::query(
                "UPDATE rostersync.audit_log a SET outcome = u.outcome, error = u.error, occurred_at = now(), \
                 canvas_enrollment_id = coalesce(u.eid, a.canvas_enrollment_id), \
                 new_canvas_enrollment_id = u.new_eid, http_status = u.status, steps = u.steps::jsonb \
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::text[]) \
                      AS u(id, outcome, error, eid, new_eid, status, steps) \
                 WHERE a.id = u.id AND a.outcome = 'planned'",
            )
            .bind(chunk.iter().map(|u| u.id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.outcome.as_str().to_owned()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.error.clone()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.canvas_enrollment_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.new_canvas_enrollment_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.http_status).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.steps.clone()).collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map_err(DbError::query("recording change outcomes"))?;
        }
        Ok(())
    }
}
