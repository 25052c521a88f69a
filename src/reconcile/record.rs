//! Recording a cycle in the audit log: the row of each decided change, and each change's outcome as it finishes.
//!
//! Rows describe changes in SIS terms (user, course and section ids, role names), the way an operator searches
//! for them; a change the SIS could not name (a user without SIS identity) is named by its Canvas user id.

use std::time::{Duration, Instant};

use tracing::error;

use super::change::ChangeResult;
use crate::domain::decide::Unplanned;
use crate::domain::plan::Change;
use crate::domain::roles::RoleBook;
use crate::domain::{Action, Ids, SectionKey};
use crate::store::audit::OutcomeUpdate;
use crate::store::{AuditLog, AuditOutcome, AuditRow};

/// The audit row of a decided change (outcome unset: `planned`).
pub fn change_row(change: &Change, ids: &Ids, roles: &RoleBook) -> AuditRow {
    let user_id = match (change.user, change.live) {
        (Some(u), _) => Some(ids.resolve(u).to_owned()),
        (None, Some(l)) => Some(format!("canvas_user_id:{}", l.canvas_user_id)),
        (None, None) => None,
    };
    AuditRow {
        action: change.action.as_str(),
        user_id,
        course_id: Some(ids.resolve(change.course).to_owned()),
        section_id: section_text(ids, change.section),
        role_before: change.role_before.map(|r| roles.name(r)),
        role_after: change.role_after.map(|r| roles.name(r)),
        state_before: change.state_before.map(|s| s.as_str().to_owned()),
        state_after: change.state_after.map(|s| s.as_str().to_owned()),
        canvas_enrollment_id: change.live.map(|l| l.id as i64),
        ..AuditRow::default()
    }
}

/// The audit row of a change the brake holds back.
pub fn held_row(change: &Change, ids: &Ids, roles: &RoleBook, reason: &str) -> AuditRow {
    AuditRow {
        outcome: Some(AuditOutcome::Held),
        error: Some(format!("held by the safety guard: {reason}")),
        ..change_row(change, ids, roles)
    }
}

/// The audit row of something settled without a Canvas call.
pub fn unplanned_row(unplanned: &Unplanned, ids: &Ids, roles: &RoleBook) -> AuditRow {
    match unplanned {
        Unplanned::SkippedRow(s) => AuditRow {
            action: Action::Enroll.as_str(),
            user_id: s.row.user_id.clone(),
            course_id: s.row.course_id.clone(),
            section_id: s.row.section_id.clone(),
            role_after: s.row.role.clone(),
            state_after: s.row.status.clone(),
            outcome: Some(AuditOutcome::Skipped),
            error: Some(format!("SIS row skipped: {}", s.skip.reason)),
            ..AuditRow::default()
        },
        Unplanned::CourseNotFound(d) => AuditRow {
            action: Action::Enroll.as_str(),
            user_id: Some(ids.resolve(d.user).to_owned()),
            course_id: Some(ids.resolve(d.course).to_owned()),
            section_id: section_text(ids, d.section),
            role_after: Some(roles.name(d.role)),
            state_after: Some(d.state.canvas_state().as_str().to_owned()),
            outcome: Some(AuditOutcome::Failed),
            error: Some("course not found in Canvas (404)".into()),
            ..AuditRow::default()
        },
        Unplanned::RuleConflict(d, c) => AuditRow {
            action: Action::ChangeRole.as_str(),
            user_id: Some(ids.resolve(d.user).to_owned()),
            course_id: Some(ids.resolve(d.course).to_owned()),
            section_id: section_text(ids, d.section),
            role_before: Some(roles.name(d.role)),
            outcome: Some(AuditOutcome::Skipped),
            error: Some(format!(
                "role rules `{}` and `{}` disagree for this user ({} → {} or {}); nothing guessed",
                c.first_rule,
                c.second_rule,
                roles.name(c.from),
                roles.name(c.first_to),
                roles.name(c.second_to)
            )),
            ..AuditRow::default()
        },
    }
}

pub fn section_text(ids: &Ids, section: SectionKey) -> Option<String> {
    match section {
        SectionKey::Sis(s) => Some(ids.resolve(s).to_owned()),
        SectionKey::Default => None,
    }
}

/// The final outcome of one change, for its `planned` row.
pub fn outcome_update(audit_id: i64, result: ChangeResult) -> OutcomeUpdate {
    OutcomeUpdate {
        id: audit_id,
        outcome: result.outcome,
        error: result.error,
        canvas_enrollment_id: result.enrollment_id.map(|i| i as i64),
        new_canvas_enrollment_id: result.new_enrollment_id.map(|i| i as i64),
        http_status: result.http_status.map(i32::from),
        steps: result.steps.map(|s| s.to_string()),
    }
}

/// Writes change outcomes in batches while the changes go on.
///
/// A failed write keeps the outcomes queued for the next one: a database restart mid-cycle delays the audit, it
/// does not lose it, and applying goes on (the `planned` rows already hold the intent).
pub struct OutcomeWriter {
    audit: AuditLog,
    pending: Vec<OutcomeUpdate>,
    last_flush: Instant,
    error: Option<String>,
}

/// Outcomes queued before a write is due.
const BATCH: usize = 500;
/// The longest an outcome waits in the queue while changes go on.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long [`OutcomeWriter::drain`] keeps trying (a restarting database is usually back in seconds).
const DRAIN_FOR: Duration = Duration::from_secs(20);

impl OutcomeWriter {
    pub fn new(audit: AuditLog) -> Self {
        Self {
            audit,
            pending: Vec::new(),
            last_flush: Instant::now(),
            error: None,
        }
    }

    pub fn push(&mut self, update: OutcomeUpdate) {
        self.pending.push(update);
    }

    /// Writes the queue when a batch is full or it has waited long enough.
    pub async fn flush(&mut self) {
        if self.pending.len() < BATCH && self.last_flush.elapsed() < MAX_WAIT {
            return;
        }
        match self.audit.record_outcomes(&self.pending).await {
            Ok(()) => self.pending.clear(),
            Err(e) => {
                error!(error = %e, queued = self.pending.len(), "cannot record change outcomes yet; will retry");
                self.error = Some(e.to_string());
            }
        }
        self.last_flush = Instant::now();
    }

    /// Writes what is left, retrying for a while. Err when outcomes could not be written (they stay `planned`
    /// and the next run reports them) or an earlier write failed and nothing since has proved the log writable.
    pub async fn drain(mut self) -> Result<(), String> {
        let mut delay = Duration::from_millis(250);
        let give_up = Instant::now() + DRAIN_FOR;
        while !self.pending.is_empty() {
            match self.audit.record_outcomes(&self.pending).await {
                Ok(()) => {
                    self.pending.clear();
                    self.error = None;
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                    if Instant::now() >= give_up {
                        error!(error = %e, unrecorded = self.pending.len(), "cannot record change outcomes; their audit rows stay `planned` and the next run reports them");
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
