//! Putting a decision into the cycle's report and log, and the operator's override of the brake.

use tracing::{debug, error, info, warn};

use super::report::{CycleReport, Safety};
use super::{CycleContext, CycleOptions};
use crate::domain::Action;
use crate::domain::decide::{Decision, Snapshot, Unplanned};
use crate::domain::{DesiredEnrollment, Ids, SectionKey};
use crate::metrics::ReasonLabels;

/// Puts the decision in the report and the log; applies the operator's override of the brake.
pub fn note_decision(
    ctx: &CycleContext,
    opts: &CycleOptions,
    snap: &Snapshot,
    decision: &mut Decision,
    report: &mut CycleReport,
) {
    let (ids, roles) = (&snap.ids, &snap.roles);
    let settings = &ctx.settings;
    report.details.role_rule_rewrites = decision.role_rule_rewrites;
    report.details.live_giving_access = decision.live_giving_access;
    report.details.excepted = decision.excepted;
    for u in &decision.unplanned {
        log_skipped(ids, u);
        let reason = match u {
            Unplanned::CourseNotFound(_) => "course_not_found",
            Unplanned::SectionNotFound(_) => "section_not_found",
            Unplanned::UserNotFound(_) => {
                report.details.users_not_found += 1;
                "user_not_found"
            }
            Unplanned::SkippedRow(_) | Unplanned::RuleConflict(..) => continue,
        };
        ctx.metrics
            .skipped_rows
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
    report.details.role_rule_conflicts = decision.rule_conflicts.len() as u64;
    for c in &decision.rule_conflicts {
        warn!(
            user = ids.resolve(c.user),
            rule.first = %c.first_rule,
            rule.second = %c.second_rule,
            "role rules disagree for this user ({} → {} or {}); their enrollments with that role are left as they are",
            roles.name(c.from),
            roles.name(c.first_to),
            roles.name(c.second_to)
        );
    }
    report.details.duplicate_rows_resolved = decision.duplicates.len() as u64;
    if let Some(first) = decision.duplicates.first() {
        warn!(
            count = decision.duplicates.len(),
            example.user = ids.resolve(first.key.user),
            example.course = ids.resolve(first.key.course),
            kept = ?first.kept,
            dropped = ?first.dropped,
            "SIS rows name the same enrollment with different statuses; the most present status wins \
             (active > inactive > completed > deleted)"
        );
    }
    for c in &decision.plan.changes {
        if let Some(n) = report.planned.get_mut(c.action.as_str()) {
            *n += 1;
        }
    }
    let count = |action: Action| report.planned.get(action.as_str()).copied().unwrap_or(0);
    let [enroll, removals, change_role, change_state] = Action::ALL.map(count);
    if opts.accept_removals.is_some()
        && let Some(reason) = decision.brake.reason()
    {
        warn!(
            removals,
            "safety guard overridden by --accept-removals, removals will be applied: {reason}"
        );
        report.safety.reason = Some(format!("overridden by --accept-removals: {reason}"));
        decision.release_brake();
    }
    if let Some(reason) = decision.brake.reason() {
        report.safety = Safety {
            tripped: true,
            reason: Some(reason.clone()),
        };
        error!(
            removals,
            live = snap.live.len(),
            max_removals = settings.reconcile.max_removals,
            max_removal_ratio = settings.reconcile.max_removal_ratio,
            "safety guard tripped: {reason}"
        );
    }
    info!(
        enroll,
        remove = removals,
        change_role,
        change_state,
        excepted = decision.excepted,
        live = snap.live.len(),
        courses = snap.managed.len(),
        plan_ms = report.details.plan_ms,
        "plan computed"
    );
}

/// One debug event per SIS row the cycle skips (`RUST_LOG=rostersync=debug`), with the ids and the reason; it is
/// emitted inside the cycle's span, so the line carries the run's `run.id`. Debug, not info: a district may have
/// thousands of such rows every cycle, and their audit rows and `rostersync_sis_rows_skipped_total` say as much.
fn log_skipped(ids: &Ids, unplanned: &Unplanned) {
    let skipped_desired = |d: &DesiredEnrollment, reason: &'static str, why: &str| {
        let section = match d.section {
            SectionKey::Sis(s) => Some(ids.resolve(s)),
            SectionKey::Default => None,
        };
        debug!(
            user.sis_id = ids.resolve(d.user),
            course.sis_id = ids.resolve(d.course),
            section.sis_id = section,
            reason,
            "SIS row skipped: {why}"
        );
    };
    match unplanned {
        Unplanned::SkippedRow(s) => debug!(
            user.sis_id = s.row.user_id.as_deref(),
            course.sis_id = s.row.course_id.as_deref(),
            section.sis_id = s.row.section_id.as_deref(),
            reason = s.skip.reason.label(),
            error = %s.skip.reason,
            "SIS row skipped: it cannot be understood"
        ),
        Unplanned::CourseNotFound(d) => {
            skipped_desired(d, "course_not_found", "Canvas has no such course")
        }
        Unplanned::UserNotFound(d) => {
            skipped_desired(d, "user_not_found", "Canvas has no such user")
        }
        Unplanned::SectionNotFound(d) => {
            skipped_desired(d, "section_not_found", "Canvas has no such section")
        }
        Unplanned::RuleConflict(d, _) => skipped_desired(
            d,
            "role_rule_conflict",
            "two role rules disagree about this user",
        ),
    }
}
