//! Recording a cycle in the audit log: the row of each decided change, and each change's outcome as it finishes.
//!
//! Rows describe changes in SIS terms (user, course and section ids, role names), the way an operator searches
//! for them; a change the SIS could not name (a user without SIS identity) is named by its Canvas user id.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::error;

use super::change::ChangeResult;
use crate::domain::decide::Unplanned;
use crate::domain::plan::Change;
use crate::domain::roles::RoleBook;
use crate::domain::{Action, DesiredEnrollment, Ids, SectionKey};
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
        state_before: change
            .state_before
            .map(|s| roles.state_name(change.section, s).to_owned()),
        state_after: change
            .state_after
            .map(|s| roles.state_name(change.section, s).to_owned()),
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
            error: Some(format!(
                "SIS row skipped: course `{}` is not in {} (404); nothing is planned for it until it is",
                ids.resolve(d.course),
                roles.vocabulary().system()
            )),
            ..desired_row(d, ids, roles)
        },
        Unplanned::SectionNotFound(d) => AuditRow {
            error: Some(format!(
                "SIS row skipped: section `{}` is not in {} (404); it is enrolled once the section exists",
                section_text(ids, d.section).unwrap_or_default(),
                roles.vocabulary().system()
            )),
            ..desired_row(d, ids, roles)
        },
        Unplanned::UserNotFound(d) => AuditRow {
            error: Some(format!(
                "SIS row skipped: user `{}` is not in Canvas (404); it is enrolled once the account exists",
                ids.resolve(d.user)
            )),
            ..desired_row(d, ids, roles)
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

/// A skipped SIS row that parsed: what it asked for.
fn desired_row(d: &DesiredEnrollment, ids: &Ids, roles: &RoleBook) -> AuditRow {
    AuditRow {
        action: Action::Enroll.as_str(),
        user_id: Some(ids.resolve(d.user).to_owned()),
        course_id: Some(ids.resolve(d.course).to_owned()),
        section_id: section_text(ids, d.section),
        role_after: Some(roles.name(d.role)),
        state_after: Some(
            roles
                .state_name(d.section, d.state.canvas_state())
                .to_owned(),
        ),
        outcome: Some(AuditOutcome::Skipped),
        ..AuditRow::default()
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

/// Writes each change's outcome as soon as it finishes, on a task of its own so that applying never waits for
/// the database: whatever finished while the previous write was in flight goes in the next one.
///
/// A failed write keeps the outcomes queued and is retried: a database restart mid-cycle delays the audit, it
/// does not lose it, and applying goes on (the `planned` rows already hold the intent).
pub struct OutcomeWriter {
    queue: mpsc::UnboundedSender<OutcomeUpdate>,
    task: JoinHandle<Result<(), String>>,
}

/// How long [`OutcomeWriter::drain`] keeps retrying once the changes are done (a restarting database is usually
/// back in seconds).
const DRAIN_FOR: Duration = Duration::from_secs(20);

impl OutcomeWriter {
    pub fn new(audit: AuditLog) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        Self {
            queue,
            task: tokio::spawn(write_outcomes(audit, pending)),
        }
    }

    /// Hands one outcome to the writer.
    pub fn push(&self, update: OutcomeUpdate) {
        // The task only ends after the queue closes (in `drain`), so the send cannot fail before.
        let _ = self.queue.send(update);
    }

    /// Waits until every outcome is written. Err when some could not be (their audit rows stay `planned`, and
    /// the next cycle resolves them from Canvas).
    pub async fn drain(self) -> Result<(), String> {
        drop(self.queue);
        self.task
            .await
            .unwrap_or_else(|e| Err(format!("the audit writer stopped: {e}")))
    }
}

async fn write_outcomes(
    audit: AuditLog,
    mut queue: mpsc::UnboundedReceiver<OutcomeUpdate>,
) -> Result<(), String> {
    let mut pending: Vec<OutcomeUpdate> = Vec::new();
    let mut delay = Duration::from_millis(250);
    let mut give_up: Option<Instant> = None;
    loop {
        if pending.is_empty() {
            match queue.recv().await {
                Some(update) => pending.push(update),
                None => return Ok(()),
            }
        }
        while let Ok(update) = queue.try_recv() {
            pending.push(update);
        }
        match audit.record_outcomes(&pending).await {
            Ok(()) => {
                pending.clear();
                delay = Duration::from_millis(250);
            }
            Err(e) => {
                if queue.is_closed()
                    && Instant::now() >= *give_up.get_or_insert_with(|| Instant::now() + DRAIN_FOR)
                {
                    error!(error = %e, unrecorded = pending.len(), "cannot record change outcomes; their audit rows stay `planned` and the next cycle resolves them from Canvas");
                    return Err(e.to_string());
                }
                error!(error = %e, queued = pending.len(), "cannot record change outcomes yet; will retry");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(4));
            }
        }
    }
}
