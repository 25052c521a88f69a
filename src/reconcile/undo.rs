//! `rostersync undo RUN_ID --by NAME`: the inverse of every change one run applied, made like `apply` makes a
//! reviewed run (the same pinned-plan machinery: each change checked against live Canvas first), then the daemon is
//! paused so that the next cycle does not redo what was undone.
//!
//! The inverse of each applied change:
//! - an enroll is removed as `reconcile.removal` says (with `keep`, it stays: not undone);
//! - a removal or state change is brought back to the state before: an inactive or concluded enrollment is
//!   reactivated (the same row); a deleted one, which Canvas no longer lists, is re-created by user, section and
//!   role, and Canvas revives the same row (canvas-api-facts §1); an invitation comes back as an active enrollment;
//! - a role change is changed back: the enrollment it created is ended per policy and one in the old role is
//!   created, which revives the old row.
//!
//! An inverse whose enrollment moved since the run (changed by hand, or by a later cycle) is not made: `skipped`
//! with an error starting `conflict:`.

use sqlx::PgPool;
use tracing::{Instrument, info, info_span, warn};

use super::apply::Work;
use super::pinned::{PinnedError, follow_up, run_pinned};
use super::report::CycleReport;
use super::{CycleContext, CycleOptions};
use crate::domain::{EnrollmentState, RemovalPolicy, Vocabulary};
use crate::store::audit::RecordedChange;
use crate::store::pauses::{NewPause, Opened, Pauses};
use crate::store::{Approval, AuditOutcome, DbError, RunStatus};

/// An operator's request to reverse one run.
#[derive(Debug, Clone)]
pub struct UndoRequest {
    pub run_id: String,
    pub by: String,
    pub reason: Option<String>,
    pub dry_run: bool,
}

/// A change a run applied, as recorded, with the enrollment a role change created.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppliedChange {
    #[sqlx(flatten)]
    pub change: RecordedChange,
    pub new_canvas_enrollment_id: Option<i64>,
}

/// Reverses `request.run_id`; returns the undo run's report. The caller pauses the daemon after a real undo.
pub async fn undo_run(
    ctx: &CycleContext,
    opts: &CycleOptions,
    request: &UndoRequest,
) -> Result<CycleReport, PinnedError> {
    if request.by.trim().is_empty() {
        return Err(PinnedError::NoApprover);
    }
    check_undoable(&ctx.db, &request.run_id).await?;
    let applied = applied_rows(&ctx.db, &request.run_id).await?;
    if applied.is_empty() {
        return Err(PinnedError::NothingToUndo(request.run_id.clone()));
    }
    let removal = ctx.settings.reconcile.removal;
    let vocabulary = crate::target::vocabulary(&ctx.settings);
    let mut inverse = Vec::with_capacity(applied.len());
    let mut not_undone = Vec::new();
    for row in &applied {
        match invert(row, removal, vocabulary) {
            Ok(change) => inverse.push(change),
            Err(why) => not_undone.push((row.change.clone(), why)),
        }
    }
    let approval = Approval {
        by: request.by.clone(),
        reason: request.reason.clone(),
        source_run_id: None,
        approved_as: crate::store::runs::approved_as(&ctx.db).await?,
        undo_of: Some(request.run_id.clone()),
    };
    let span = info_span!("undo", undo_of = %request.run_id, approved_by = %request.by);
    let by = request.by.clone();
    let report = run_pinned(ctx, opts, &approval, &inverse, request.dry_run, |work| {
        conflicts(work, &not_undone, &by)
    })
    .instrument(span.clone())
    .await?;
    if !request.dry_run && report.status != RunStatus::Failed {
        pause_after(ctx, request, &report, &approval.approved_as)
            .instrument(span)
            .await?;
    }
    Ok(report)
}

/// Pauses the daemon after an undo, so that the next cycle does not redo what was undone from the same SIS rows. A
/// pause already in force is left as it is (it already holds the next cycle back).
async fn pause_after(
    ctx: &CycleContext,
    request: &UndoRequest,
    report: &CycleReport,
    paused_as: &str,
) -> Result<(), PinnedError> {
    let reason = format!(
        "undo of run {} (run {}): the next cycle would redo it from the same SIS rows; fix the SIS, review with \
         `rostersync reconcile --dry-run`, then `rostersync resume`",
        request.run_id, report.run_id
    );
    let opened = Pauses::new(ctx.db.clone())
        .open(&NewPause {
            by: &request.by,
            reason: Some(&reason),
            until: None,
            source_run_id: Some(&report.run_id),
            paused_as,
        })
        .await?;
    match opened {
        Opened::Paused(_) => info!(%reason, "paused after the undo"),
        Opened::AlreadyPaused(p) => info!(
            paused_by = %p.paused_by,
            "already paused; the pause in force holds the next cycle back"
        ),
        Opened::UntilPassed { .. } => {}
    }
    Ok(())
}

/// In an undo, a change whose enrollment moved is a conflict; and the changes with no inverse say why.
fn conflicts(work: &mut Work, not_undone: &[(RecordedChange, String)], by: &str) {
    for row in &mut work.settled {
        if let Some(e) = row.error.as_mut()
            && let Some(rest) = e.strip_prefix("stale:")
        {
            *e = format!("conflict:{rest}");
        }
    }
    for (change, why) in not_undone {
        work.settled.push(crate::store::AuditRow {
            outcome: Some(AuditOutcome::Skipped),
            error: Some(why.clone()),
            approved_by: Some(by.to_owned()),
            ..change.restated()
        });
    }
}

async fn check_undoable(db: &PgPool, run_id: &str) -> Result<(), PinnedError> {
    let run: Option<(String, bool)> =
        sqlx::query_as("SELECT status, dry_run FROM rostersync.sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(db)
            .await
            .map_err(DbError::query("reading the run to undo"))?;
    let Some((status, dry_run)) = run else {
        return Err(PinnedError::UnknownRun(run_id.to_owned()));
    };
    if status == RunStatus::Running.as_str() {
        return Err(PinnedError::StillRunning(run_id.to_owned()));
    }
    if dry_run {
        return Err(PinnedError::DryRunUndo(run_id.to_owned()));
    }
    if let Some((undo_run, by, at)) = follow_up(db, run_id, true).await? {
        return Err(PinnedError::AlreadyUndone {
            run: run_id.to_owned(),
            by,
            at,
            undo_run,
        });
    }
    Ok(())
}

async fn applied_rows(db: &PgPool, run_id: &str) -> Result<Vec<AppliedChange>, PinnedError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {}, a.new_canvas_enrollment_id FROM rostersync.audit_log a \
         WHERE a.run_id = $1 AND a.outcome = 'applied' AND NOT a.dry_run ORDER BY a.id",
        RecordedChange::COLUMNS
    )))
    .bind(run_id)
    .fetch_all(db)
    .await
    .map_err(DbError::query("reading the changes the run applied"))?)
}

/// The change that reverses `row`, described as a recorded change (so that `pin` checks it against Canvas like a
/// reviewed one); `Err` says why it has no inverse.
pub fn invert(
    row: &AppliedChange,
    removal: RemovalPolicy,
    vocabulary: Vocabulary,
) -> Result<RecordedChange, String> {
    let r = &row.change;
    // States are compared as the shared model's and named in the target's words.
    let in_section = r.section_id.is_some();
    let parse = |s: &str| vocabulary.parse_at(in_section, s);
    let name = |s: EnrollmentState| Some(vocabulary.name_at(in_section, s).to_owned());
    let base = RecordedChange {
        role_before: None,
        role_after: None,
        state_before: None,
        state_after: None,
        canvas_enrollment_id: None,
        ..r.clone()
    };
    // A Canvas invitation cannot be re-sent without notifying the user: it comes back active. (Open edX's
    // `pending` is a plain status, restored as it was.)
    let restored = |s: &Option<String>| match s.as_deref().map(parse) {
        None => name(EnrollmentState::Active),
        Some(EnrollmentState::Invited | EnrollmentState::CreationPending)
            if vocabulary.invites() =>
        {
            name(EnrollmentState::Active)
        }
        Some(_) => s.clone(),
    };
    let removed = vocabulary.removal_state(in_section, removal);
    match r.action.as_str() {
        "enroll" => {
            let Some(state) = removed else {
                return Err(
                    "not undone: reconcile.removal = keep never removes an enrollment, so the enroll stays".into(),
                );
            };
            Ok(RecordedChange {
                action: "remove".into(),
                role_before: r.role_after.clone(),
                state_before: r.state_after.clone(),
                state_after: name(state),
                canvas_enrollment_id: r.canvas_enrollment_id,
                ..base
            })
        }
        "remove" | "change_state"
            if !vocabulary.lists_deleted() && r.state_after.as_deref() == Some("deleted") =>
        {
            // Canvas no longer lists a deleted enrollment: enrolling the same user, section and role revives it.
            Ok(RecordedChange {
                action: "enroll".into(),
                role_after: r.role_before.clone(),
                state_after: restored(&r.state_before),
                ..base
            })
        }
        "remove" | "change_state" => Ok(RecordedChange {
            action: "change_state".into(),
            role_before: r.role_before.clone(),
            state_before: r.state_after.clone(),
            state_after: restored(&r.state_before),
            canvas_enrollment_id: r.canvas_enrollment_id,
            ..base
        }),
        "change_role" => {
            let Some(created) = row.new_canvas_enrollment_id else {
                return Err(
                    "not undone: the run did not record the enrollment its role change created"
                        .into(),
                );
            };
            Ok(RecordedChange {
                action: "change_role".into(),
                role_before: r.role_after.clone(),
                role_after: r.role_before.clone(),
                state_before: name(EnrollmentState::Active),
                state_after: name(EnrollmentState::Active),
                canvas_enrollment_id: Some(created),
                ..base
            })
        }
        other => {
            warn!(
                action = other,
                "an applied change of unknown action is not undone"
            );
            Err(format!("not undone: unknown action `{other}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(action: &str, states: (&str, &str), roles: (&str, &str)) -> AppliedChange {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        AppliedChange {
            change: RecordedChange {
                id: 7,
                run_id: "r".into(),
                action: action.into(),
                user_id: Some("u".into()),
                course_id: Some("C".into()),
                section_id: None,
                role_before: s(roles.0),
                role_after: s(roles.1),
                state_before: s(states.0),
                state_after: s(states.1),
                canvas_enrollment_id: Some(40),
            },
            new_canvas_enrollment_id: Some(41),
        }
    }

    #[test]
    fn each_action_has_its_inverse() {
        let conclude = RemovalPolicy::Conclude;
        let enroll = invert(
            &applied("enroll", ("", "active"), ("", "StudentEnrollment")),
            conclude,
            Vocabulary::Canvas,
        )
        .expect("enroll");
        assert_eq!(
            (
                enroll.action.as_str(),
                enroll.state_before.as_deref(),
                enroll.state_after.as_deref()
            ),
            ("remove", Some("active"), Some("completed"))
        );
        assert_eq!(enroll.role_before.as_deref(), Some("StudentEnrollment"));
        assert!(
            invert(
                &applied("enroll", ("", "active"), ("", "S")),
                RemovalPolicy::Keep,
                Vocabulary::Canvas
            )
            .is_err()
        );

        let concluded = invert(
            &applied("remove", ("active", "completed"), ("S", "")),
            conclude,
            Vocabulary::Canvas,
        )
        .expect("remove");
        assert_eq!(
            (
                concluded.action.as_str(),
                concluded.state_before.as_deref(),
                concluded.state_after.as_deref()
            ),
            ("change_state", Some("completed"), Some("active"))
        );
        assert_eq!(concluded.canvas_enrollment_id, Some(40));

        let deleted = invert(
            &applied("remove", ("invited", "deleted"), ("S", "")),
            conclude,
            Vocabulary::Canvas,
        )
        .expect("deleted");
        assert_eq!(
            (
                deleted.action.as_str(),
                deleted.role_after.as_deref(),
                deleted.state_after.as_deref()
            ),
            ("enroll", Some("S"), Some("active"))
        );
        assert_eq!(deleted.canvas_enrollment_id, None);

        let role = invert(
            &applied("change_role", ("active", "active"), ("S", "T")),
            conclude,
            Vocabulary::Canvas,
        )
        .expect("role");
        assert_eq!(
            (
                role.action.as_str(),
                role.role_before.as_deref(),
                role.role_after.as_deref()
            ),
            ("change_role", Some("T"), Some("S"))
        );
        assert_eq!(
            role.canvas_enrollment_id,
            Some(41),
            "the enrollment the role change created"
        );
        assert_eq!(role.id, 7, "points back at the undone row");
    }
}
