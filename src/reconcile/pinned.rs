//! A pinned plan: the changes one run decided and did not make (held by the brake, or planned by a dry run),
//! made later exactly as a person reviewed them (`rostersync apply`). There is no new SIS read; each change is
//! checked against live Canvas first, and one whose enrollment moved since the run saw it is not made (`stale:`).
//!
//! A change is matched to its enrollment by what the run recorded: the Canvas enrollment id for a change to an
//! existing enrollment, the user + section + role for an enroll. A change Canvas already shows as made (an earlier
//! `apply` that was interrupted made it) is not made twice.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use sqlx::PgPool;
use tracing::{Instrument, info, info_span, warn};

use super::apply::{Work, apply_work};
use super::error::CycleError;
use super::report::CycleReport;
use super::{CycleContext, CycleOptions, finish, read};
use crate::canvas::CanvasClient;
use crate::domain::decide::Snapshot;
use crate::domain::plan::Change;
use crate::domain::roles::{RoleBook, RoleInfo};
use crate::domain::sis_row::user_identity;
use crate::domain::{Action, EnrollmentKey, LiveEnrollment, SectionKey, Sym};
use crate::store::audit::RecordedChange;
use crate::store::{Approval, AuditOutcome, AuditRow, DbError, RunStatus, Runs};
use crate::target::Target;

/// An operator's go-ahead for one reviewed run.
#[derive(Debug, Clone)]
pub struct Review {
    pub run_id: String,
    pub by: String,
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PinnedError {
    #[error(
        "run `{0}` is unknown; the run id is printed by `reconcile` (and is `run_id` in `--json` and \
         rostersync.sync_runs.id)"
    )]
    UnknownRun(String),
    #[error(
        "run {run} was already applied by {by} at {at} (run {apply_run}); each reviewed run is applied once. \
         Run `rostersync reconcile --dry-run` for a fresh plan"
    )]
    AlreadyApplied {
        run: String,
        by: String,
        at: String,
        apply_run: String,
    },
    #[error(
        "run {run} is neither tripped nor a dry run (status {status}): only the held changes of a tripped run or \
         the planned changes of a dry run can be applied. Run `rostersync reconcile --dry-run` and apply that run"
    )]
    NotReviewable { run: String, status: String },
    #[error(
        "run {run} is the plan of `undo {undone}`, not a cycle: make it with `rostersync undo {undone} --by NAME`"
    )]
    UndoPlan { run: String, undone: String },
    #[error("run {0} has not finished yet; try again once it has")]
    StillRunning(String),
    #[error(
        "run {0} is a dry run: it changed nothing, so there is nothing to undo (to make its changes, `rostersync \
         apply {0}`)"
    )]
    DryRunUndo(String),
    #[error(
        "run {0} applied no change, so there is nothing to undo; `rostersync audit --run {0}` shows its rows"
    )]
    NothingToUndo(String),
    #[error(
        "run {run} was already undone by {by} at {at} (run {undo_run}); to reverse the undo, `rostersync undo \
         {undo_run}`"
    )]
    AlreadyUndone {
        run: String,
        by: String,
        at: String,
        undo_run: String,
    },
    #[error("--by needs a name: who approved these changes")]
    NoApprover,
    #[error(
        "rostersync is {reason}: `apply` changes nothing while paused. To make run {run}'s changes, {how}, then \
         apply it"
    )]
    Paused {
        reason: String,
        how: String,
        run: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Makes the reviewed run's changes that are still to make, as a new run, and returns its report.
pub async fn apply_reviewed(
    ctx: &CycleContext,
    opts: &CycleOptions,
    review: &Review,
) -> Result<CycleReport, PinnedError> {
    if review.by.trim().is_empty() {
        return Err(PinnedError::NoApprover);
    }
    if let Some(paused) = crate::desk::pause::why_paused(&ctx.db, &ctx.settings).await? {
        return Err(PinnedError::Paused {
            reason: paused.reason(),
            how: paused.how_to_end(),
            run: review.run_id.clone(),
        });
    }
    let source = check_reviewable(&ctx.db, &review.run_id).await?;
    let rows = pinned_rows(&ctx.db, &review.run_id, source.dry_run).await?;
    let approval = Approval {
        by: review.by.clone(),
        reason: review.reason.clone(),
        source_run_id: Some(review.run_id.clone()),
        approved_as: crate::store::runs::approved_as(&ctx.db).await?,
        undo_of: None,
    };
    let span = info_span!("apply", source.run_id = %review.run_id, approved_by = %review.by);
    let report = run_pinned(ctx, opts, &approval, &rows, false, |_| {})
        .instrument(span.clone())
        .await?;
    let runs = Runs::new(ctx.db.clone());
    if source.tripped && report.status != RunStatus::Failed {
        // The operator acted on the trip: later cycles decide afresh.
        if let Err(e) = runs.clear_trips(Some(&review.run_id), &review.by).await {
            warn!(parent: &span, error = %e, "cannot record that the trip was acted on; the next cycle still holds removals");
        }
    }
    info!(parent: &span, status = report.status.as_str(), applied = report.applied, failed = report.failed, skipped = report.skipped, "apply finished");
    Ok(report)
}

/// Opens a run for an operator's changes (`apply`, `undo`), checks each against Canvas as it is now (`pin`), lets
/// the caller adjust what is not made (`adjust`), makes the rest (or, in a dry run, plans them) and closes the run.
pub(super) async fn run_pinned(
    ctx: &CycleContext,
    opts: &CycleOptions,
    approval: &Approval,
    rows: &[RecordedChange],
    dry_run: bool,
    adjust: impl FnOnce(&mut Work),
) -> Result<CycleReport, PinnedError> {
    let started = Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
    let runs = Runs::new(ctx.db.clone());
    runs.start_approved(&run_id, dry_run, Some(approval))
        .await?;
    let mut report = CycleReport::new(run_id, dry_run);
    report.details.target = ctx.settings.target.as_str();
    report.details.undo_of = approval.undo_of.clone();
    ctx.target.begin_cycle();
    for row in rows {
        if let Some(n) = report.planned.get_mut(row.action.as_str()) {
            *n += 1;
        }
    }
    let result = async {
        let (snap, mut work) = pin(ctx, rows, &approval.by).await?;
        adjust(&mut work);
        info!(
            run.id = %report.run_id,
            changes = work.changes.len(),
            not_made = work.settled.len(),
            dry_run,
            "making the operator's changes"
        );
        apply_work(ctx, opts, &snap, work, &mut report).await
    }
    .await;
    Ok(finish::end(ctx, &runs, report, result, started).await)
}

struct Source {
    dry_run: bool,
    /// The run tripped the brake: applying it is the operator acting on the trip.
    tripped: bool,
}

async fn check_reviewable(db: &PgPool, run_id: &str) -> Result<Source, PinnedError> {
    let run: Option<(String, bool, Option<String>)> =
        sqlx::query_as("SELECT status, dry_run, undo_of FROM rostersync.sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(db)
            .await
            .map_err(DbError::query("reading the reviewed run"))?;
    let Some((status, dry_run, undo_of)) = run else {
        return Err(PinnedError::UnknownRun(run_id.to_owned()));
    };
    if dry_run && let Some(undone) = undo_of {
        return Err(PinnedError::UndoPlan {
            run: run_id.to_owned(),
            undone,
        });
    }
    if status == RunStatus::Running.as_str() {
        return Err(PinnedError::StillRunning(run_id.to_owned()));
    }
    let tripped = status == RunStatus::SafetyTripped.as_str();
    if !(tripped || dry_run && status == RunStatus::Succeeded.as_str()) {
        return Err(PinnedError::NotReviewable {
            run: run_id.to_owned(),
            status,
        });
    }
    let source = Source { dry_run, tripped };
    // An apply that finished has made (or tried) every change; one that was interrupted has not, and a second
    // apply makes what is left.
    if let Some((apply_run, by, at)) = follow_up(db, run_id, false).await? {
        return Err(PinnedError::AlreadyApplied {
            run: run_id.to_owned(),
            by,
            at,
            apply_run,
        });
    }
    Ok(source)
}

/// The operator's run that made (`undo` false: an `apply`) or reversed (`undo` true) run `run_id` and finished:
/// its id, who approved it and when it ended (UTC). One that was interrupted does not count: it is run again.
pub(super) async fn follow_up(
    db: &PgPool,
    run_id: &str,
    undo: bool,
) -> Result<Option<(String, String, String)>, DbError> {
    let done: Option<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, approved_by, to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM rostersync.sync_runs \
         WHERE (CASE WHEN $2 THEN undo_of ELSE source_run_id END) = $1 AND NOT dry_run \
           AND status IN ('succeeded', 'partial') \
         ORDER BY started_at LIMIT 1",
    )
    .bind(run_id)
    .bind(undo)
    .fetch_optional(db)
    .await
    .map_err(DbError::query("looking for an earlier apply or undo of the run"))?;
    Ok(done.map(|(id, by, at)| (id, by.unwrap_or_default(), at)))
}

/// The changes a person reviewed: every change a dry run printed (planned or held), or the held changes of a tripped
/// run; less those an earlier (interrupted) apply already settled.
async fn pinned_rows(
    db: &PgPool,
    run_id: &str,
    dry_run: bool,
) -> Result<Vec<RecordedChange>, PinnedError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM rostersync.audit_log a \
         WHERE a.run_id = $1 AND a.dry_run = $2 \
           AND (a.outcome = 'held' OR (a.dry_run AND a.outcome = 'planned')) \
           AND NOT EXISTS (SELECT 1 FROM rostersync.audit_log b \
                           JOIN rostersync.sync_runs r ON r.id = b.run_id \
                           WHERE b.source_audit_id = a.id AND r.source_run_id = $1 \
                             AND b.outcome IN ('applied', 'skipped')) \
         ORDER BY a.id",
        RecordedChange::COLUMNS
    )))
    .bind(run_id)
    .bind(dry_run)
    .fetch_all(db)
    .await
    .map_err(DbError::query("reading the reviewed changes"))?)
}

/// Reads the affected courses from Canvas and turns each pinned row into a change to make, or a row that says why
/// it is not made.
async fn pin(
    ctx: &CycleContext,
    rows: &[RecordedChange],
    by: &str,
) -> Result<(Snapshot, Work), CycleError> {
    let settings = &ctx.settings;
    let mut snap = match &ctx.target {
        Target::Canvas(canvas) => pin_canvas(ctx, canvas, rows).await?,
        Target::OpenEdx(client) => {
            // Open edX needs what only the SIS says to write a change (the key's casing, a new program
            // enrollment's curriculum): the SIS rows of the affected programs are read for that, not re-decided.
            let programs: BTreeSet<String> =
                rows.iter().filter_map(|r| r.course_id.clone()).collect();
            let runs: Vec<(String, String)> = rows
                .iter()
                .filter_map(|r| Some((r.course_id.clone()?, r.section_id.clone()?)))
                .collect();
            let mut scratch = CycleReport::new(String::new(), true);
            crate::target::openedx::read_snapshot_with(
                ctx,
                client,
                Some(&programs),
                &mut scratch,
                &runs,
            )
            .await?
        }
    };

    // Everything the rows name, so that a change into an empty section or for a user not yet in the course is
    // still named.
    for row in rows {
        for id in [&row.user_id, &row.section_id].into_iter().flatten() {
            snap.ids.intern(id);
        }
    }
    // An exception added since the review holds its user's enrollments here too.
    let excepted =
        read::read_exceptions(ctx, &snap.ids, crate::target::identity_kind(settings)).await?;
    let index = snap.live_index();
    let (by_id, by_key) = (&index.by_id, &index.by_key);
    let mut work = Work::default();
    for row in rows {
        let stamp = |r: AuditRow| AuditRow {
            approved_by: Some(by.to_owned()),
            source_audit_id: Some(row.id),
            ..r
        };
        let user = row.user_id.as_deref().and_then(|u| {
            snap.ids
                .get(&user_identity(u, crate::target::identity_kind(settings)))
        });
        let course = row.course_id.as_deref().and_then(|c| snap.ids.get(c));
        if let Some(user) = user
            && (excepted.contains(&(user, None)) || excepted.contains(&(user, course)))
        {
            work.settled.push(stamp(AuditRow {
                outcome: Some(AuditOutcome::Skipped),
                error: Some(
                    "excepted: an exception holds this user's enrollments here (`rostersync except list`)".into(),
                ),
                ..row.restated()
            }));
            continue;
        }
        match pin_one(row, &snap, by_id, by_key) {
            Ok(change) => {
                let audit = stamp(super::record::change_row(&change, &snap.ids, &snap.roles));
                work.changes.push((change, audit));
            }
            Err(why) => work.settled.push(stamp(AuditRow {
                outcome: Some(AuditOutcome::Skipped),
                error: Some(why),
                ..row.restated()
            })),
        }
    }
    Ok((snap, work))
}

/// The affected courses as Canvas lists them now, with Canvas's roles.
async fn pin_canvas(
    ctx: &CycleContext,
    canvas: &CanvasClient,
    rows: &[RecordedChange],
) -> Result<Snapshot, CycleError> {
    let settings = &ctx.settings;
    let mut snap = Snapshot::default();
    let roles = canvas.list_roles(&settings.canvas.account_id).await?;
    snap.roles = RoleBook::new(roles.into_iter().map(RoleInfo::from));
    let mut courses: Vec<Sym> = rows
        .iter()
        .filter_map(|r| r.course_id.as_deref())
        .map(|c| snap.ids.intern(c))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    courses.sort();
    let (live, missing) = read::read_courses(
        ctx,
        &courses,
        &mut snap.ids,
        &mut snap.roles,
        &mut snap.names,
        settings.sis.user_id_kind,
    )
    .await?;
    snap.live = live;
    snap.managed = courses;
    snap.courses_not_found = missing;
    Ok(snap)
}

/// The change to make for one reviewed row, checked against Canvas as it is now; `Err` says why it is not made.
fn pin_one(
    row: &RecordedChange,
    snap: &Snapshot,
    by_id: &HashMap<u64, &LiveEnrollment>,
    by_key: &HashMap<EnrollmentKey, &LiveEnrollment>,
) -> Result<Change, String> {
    let (ids, roles) = (&snap.ids, &snap.roles);
    let action = Action::ALL
        .into_iter()
        .find(|a| a.as_str() == row.action)
        .ok_or_else(|| format!("stale: unknown action `{}`", row.action))?;
    let course = row
        .course_id
        .as_deref()
        .and_then(|c| ids.get(c))
        .ok_or("stale: the run recorded no course")?;
    if snap.courses_not_found.contains(&course) {
        return Err("stale: the course is no longer in Canvas".into());
    }
    let section = match row.section_id.as_deref().and_then(|s| ids.get(s)) {
        None => SectionKey::Default,
        Some(s) => SectionKey::Sis(s),
    };
    let vocabulary = roles.vocabulary();
    let state = |s: &Option<String>| s.as_deref().map(|s| vocabulary.parse_state(section, s));
    let (state_before, state_after) = (state(&row.state_before), state(&row.state_after));
    let role_after = match row.role_after.as_deref() {
        Some(name) => Some(
            roles
                .id_named(name)
                .ok_or_else(|| format!("stale: role `{name}` is no longer in Canvas"))?,
        ),
        None => None,
    };
    let user = row.user_id.as_deref().and_then(|u| ids.get(u));

    if action == Action::Enroll {
        let role = role_after.ok_or("stale: the run recorded no role")?;
        let user_id = row.user_id.as_deref().unwrap_or_default();
        let user = user.ok_or("stale: the run recorded no user")?;
        // Canvas keeps one row per user, section and role: if it is there now, it was made or changed since.
        let existing = by_key.get(&EnrollmentKey {
            user,
            course,
            section,
            role,
        });
        return match existing {
            Some(l) if Some(l.state) == state_after => Err(format!(
                "already made: {user_id} is enrolled in this section as reviewed (enrollment {})",
                l.id
            )),
            Some(l) => Err(format!(
                "stale: {user_id} now has enrollment {} here in state {}, which the reviewed run did not see",
                l.id, l.state
            )),
            None => Ok(Change {
                action,
                user: Some(user),
                course,
                section,
                role_before: None,
                role_after: Some(role),
                state_before: None,
                state_after,
                live: None,
            }),
        };
    }

    let id = row
        .canvas_enrollment_id
        .ok_or("stale: the run recorded no enrollment")? as u64;
    let Some(live) = by_id.get(&id).copied() else {
        return Err(format!(
            "stale: enrollment {id} is no longer listed in the course (deleted or moved since the review)"
        ));
    };
    let role_now = roles.name(live.role);
    if Some(&role_now) != row.role_before.as_ref() {
        return Err(format!(
            "stale: enrollment {id} now has role {role_now}, the reviewed run saw {}",
            row.role_before.as_deref().unwrap_or("none")
        ));
    }
    if Some(live.state) != state_before {
        let done = match action {
            Action::ChangeRole => false,
            _ => Some(live.state) == state_after,
        };
        return Err(if done {
            format!(
                "already made: enrollment {id} is {} as reviewed",
                live.state
            )
        } else {
            format!(
                "stale: enrollment {id} is now {}, the reviewed run saw {}",
                live.state,
                row.state_before.as_deref().unwrap_or("none")
            )
        });
    }
    Ok(Change {
        action,
        user: user.or(live.user),
        course,
        section: live.section,
        role_before: Some(live.role),
        role_after,
        state_before: Some(live.state),
        state_after,
        live: Some(*live),
    })
}
