//! Interrupted changes, resolved: a run killed between a Canvas call and its outcome leaves `planned` audit rows.
//! The next leader's cycle reads Canvas anyway; for each such row it records what actually happened, as a new audit
//! row of its own run that points at the old one (`source_audit_id`): `applied` when Canvas shows the change made,
//! `failed` (`interrupted: ...`) when it does not. Every change of every run then ends with a final outcome, and the
//! old rows are never updated (CONTRACT "Tables").

use std::collections::HashMap;

use sqlx::PgPool;
use tracing::info;

use super::error::CycleError;
use crate::domain::decide::Snapshot;
use crate::domain::{EnrollmentKey, EnrollmentState, LiveEnrollment, SectionKey};
use crate::store::audit::RecordedChange;
use crate::store::{AuditLog, AuditOutcome, AuditRow, DbError};

/// Records the final outcome of every unresolved change of earlier runs, from Canvas as `snap` shows it. Returns
/// how many were resolved. The caller holds the leader lock, so no other process is making those changes.
pub async fn resolve_interrupted(
    db: &PgPool,
    snap: &Snapshot,
    run_id: &str,
) -> Result<u64, CycleError> {
    let rows: Vec<RecordedChange> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM rostersync.audit_log a \
         WHERE a.outcome = 'planned' AND NOT a.dry_run AND a.run_id <> $1 \
           AND NOT EXISTS (SELECT 1 FROM rostersync.audit_log b WHERE b.source_audit_id = a.id \
                           AND b.run_id <> a.run_id AND b.outcome IN ('applied', 'failed')) \
           AND EXISTS (SELECT 1 FROM rostersync.sync_runs r WHERE r.id = a.run_id AND r.status <> 'running') \
         ORDER BY a.id",
        RecordedChange::COLUMNS
    )))
    .bind(run_id)
    .fetch_all(db)
    .await
    .map_err(DbError::query("reading interrupted changes"))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let index = snap.live_index();
    let (by_id, by_key) = (&index.by_id, &index.by_key);
    let resolutions: Vec<AuditRow> = rows
        .iter()
        .map(|row| {
            let (outcome, error) = match made(row, snap, by_id, by_key) {
                Ok(()) => (
                    AuditOutcome::Applied,
                    format!(
                        "resolved: run {} was interrupted after this change; Canvas shows it made",
                        row.run_id
                    ),
                ),
                Err(why) => (
                    AuditOutcome::Failed,
                    format!(
                        "interrupted: run {} ended before recording it; {why}",
                        row.run_id
                    ),
                ),
            };
            AuditRow {
                outcome: Some(outcome),
                error: Some(error),
                ..row.restated()
            }
        })
        .collect();
    let applied = resolutions
        .iter()
        .filter(|r| r.outcome == Some(AuditOutcome::Applied))
        .count();
    AuditLog::new(db.clone())
        .insert(run_id, false, &resolutions)
        .await
        .map_err(|e| CycleError::Audit(format!("cannot record interrupted changes: {e}")))?;
    info!(
        resolved = resolutions.len(),
        applied,
        failed = resolutions.len() - applied,
        "changes of interrupted runs resolved from Canvas as it is now"
    );
    Ok(resolutions.len() as u64)
}

/// Whether Canvas shows the row's change made; `Err` says what it shows instead.
fn made(
    row: &RecordedChange,
    snap: &Snapshot,
    by_id: &HashMap<u64, &LiveEnrollment>,
    by_key: &HashMap<EnrollmentKey, &LiveEnrollment>,
) -> Result<(), String> {
    let ids = &snap.ids;
    let course = row
        .course_id
        .as_deref()
        .and_then(|c| ids.get(c))
        .filter(|c| snap.managed.contains(c) && !snap.courses_not_found.contains(c))
        .ok_or("its course is not read this cycle, so it was not checked")?;
    let (vocabulary, in_section) = (snap.roles.vocabulary(), row.section_id.is_some());
    let state = |s: &Option<String>| s.as_deref().map(|s| vocabulary.parse_at(in_section, s));
    let after = state(&row.state_after);
    let section = match row.section_id.as_deref() {
        None => Some(SectionKey::Default),
        Some(s) => ids.get(s).map(SectionKey::Sis),
    };
    let new_role_row = || {
        let key = EnrollmentKey {
            user: ids.get(row.user_id.as_deref()?)?,
            course,
            section: section?,
            role: snap.roles.id_named(row.role_after.as_deref()?)?,
        };
        by_key.get(&key).copied()
    };
    let old_row = || by_id.get(&(row.canvas_enrollment_id? as u64)).copied();
    // A listing leaves out deleted rows: absent is "deleted" for a change that deletes.
    let ended = |want: Option<EnrollmentState>| match old_row() {
        Some(l) => Some(l.state) == want,
        None => want == Some(EnrollmentState::Deleted),
    };
    match row.action.as_str() {
        "enroll" => match new_role_row() {
            Some(l) if Some(l.state) == after => Ok(()),
            Some(l) => Err(format!(
                "the enrollment is {}, not {}",
                l.state,
                row.state_after.as_deref().unwrap_or("?")
            )),
            None => Err("the enrollment is not in Canvas".into()),
        },
        "change_role" => {
            let created = new_role_row().is_some_and(|l| l.state == EnrollmentState::Active);
            let old_ended = old_row().is_none_or(|l| !l.state.is_removable());
            match (created, old_ended) {
                (true, true) => Ok(()),
                (true, false) => {
                    Err("the new role was created, the old enrollment is still there".into())
                }
                _ => Err("the new role is not in Canvas".into()),
            }
        }
        _ if ended(after) => Ok(()),
        _ => Err(match old_row() {
            Some(l) => format!("the enrollment is {}", l.state),
            None => "the enrollment is no longer listed".into(),
        }),
    }
}
