//! One reconcile cycle, as four steps: read both sides into a [`Snapshot`] (`read`), decide
//! ([`crate::domain::decide::decide`], pure), make the changes (`apply`), record every outcome (`record`).
//! This module conducts them and returns a [`CycleReport`].
//!
//! The cycle is split in two so that a caller can look at the decision before it is applied (the demo prints it):
//! [`prepare`] reads and decides; [`PreparedCycle::apply`] writes. [`run_cycle`] does both.

pub mod apply;
pub mod bulk;
pub mod change;
pub mod error;
mod finish;
mod note;
pub mod pinned;
pub mod provisioning;
pub mod read;
pub mod record;
pub mod report;
mod resolve;
pub mod undo;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::Settings;
use crate::desk::pause::{self, Paused};
use crate::domain::decide::{DecideSettings, Decision, Snapshot, decide};
use crate::domain::guard::{GuardLimits, ScopedBase};
use crate::metrics::Metrics;
use crate::sis;
use crate::store::fingerprints::{CourseFingerprints, Fingerprints};
use crate::store::{RunStatus, Runs};
use crate::target::Target;

pub use change::ChangeResult;
pub use error::CycleError;
pub use record::change_row as audit_row;
pub use report::{CycleReport, Safety};

/// What a cycle needs: settings, the target (Canvas or Open edX), both databases, metrics.
#[derive(Clone)]
pub struct CycleContext {
    pub settings: Arc<Settings>,
    pub target: Target,
    pub db: PgPool,
    pub sis: PgPool,
    pub metrics: Arc<Metrics>,
}

/// Called as changes finish: (done, total).
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Clone, Default)]
pub struct CycleOptions {
    pub dry_run: bool,
    /// Cancelled on shutdown: the changes in flight finish, the rest are recorded as not attempted.
    pub cancel: CancellationToken,
    /// Cancelled when this process must stop writing at once (it lost the leader lock): the changes in flight
    /// are abandoned too (their retries end), recorded as `failed` with an error starting `interrupted:`.
    pub abort: CancellationToken,
    pub progress: Option<ProgressFn>,
    /// Whether this process holds the leader lock (only then are runs left `running` by others closed).
    pub holds_lock: bool,
    /// Cancelled when the cycle reaches `reconcile.cycle_deadline_secs` (set by [`prepare`]).
    pub deadline_reached: CancellationToken,
    /// The documented override (`reconcile --accept-removals`, an alias for "dry run, then `apply`"): make the
    /// changes the brake would hold, in this one cycle, and clear the trip. Set to the name it is recorded under.
    pub accept_removals: Option<String>,
    /// A `scope = 'courses'` run (the freshness check): only these SIS courses are read and reconciled.
    pub scope: Option<Arc<BTreeSet<String>>>,
}

/// A cycle that has read and decided, and not yet written.
pub struct PreparedCycle {
    pub snapshot: Snapshot,
    pub decision: Decision,
    pub report: CycleReport,
    started: Instant,
    deadline: Deadline,
    /// The SIS course fingerprints read before the rows (None in a dry run): recorded when the run ends.
    fingerprints: Option<Fingerprints>,
}

/// `reconcile.cycle_deadline_secs`: when it passes, the cycle stops as on shutdown (reads end the cycle, changes not
/// yet made are recorded `not attempted`), so that one huge or stuck cycle cannot hold the schedule forever.
struct Deadline {
    /// Cancelled by the deadline or by the caller's token (shutdown, lost lock).
    stop: CancellationToken,
    /// Cancelled by the deadline alone: says why the cycle stopped.
    reached: CancellationToken,
    _timer: Option<AbortOnDropHandle<()>>,
}

impl Deadline {
    fn arm(ctx: &CycleContext, opts: &CycleOptions) -> Deadline {
        let stop = opts.cancel.child_token();
        let reached = CancellationToken::new();
        let timer = ctx.settings.reconcile.cycle_deadline.map(|after| {
            let (stop, reached) = (stop.clone(), reached.clone());
            AbortOnDropHandle::new(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                reached.cancel();
                stop.cancel();
            }))
        });
        Deadline {
            stop,
            reached,
            _timer: timer,
        }
    }

    /// The caller's options, stopped by the deadline too.
    fn options(&self, opts: &CycleOptions) -> CycleOptions {
        CycleOptions {
            cancel: self.stop.clone(),
            deadline_reached: self.reached.clone(),
            ..opts.clone()
        }
    }
}

/// The settings [`decide`] reads; `sticky_trip` is the run of a trip no operator has acted on.
pub fn decide_settings(
    settings: &Settings,
    sticky_trip: Option<String>,
    scoped: Option<ScopedBase>,
) -> DecideSettings {
    DecideSettings {
        removal: settings.reconcile.removal,
        manage_non_sis_users: settings.sis.manage_non_sis_users,
        limits: GuardLimits {
            max_removals: settings.reconcile.max_removals,
            max_removal_ratio: settings.reconcile.max_removal_ratio,
            max_course_removal_ratio: settings.reconcile.max_course_removal_ratio,
            max_additions: settings.reconcile.max_additions,
            max_addition_ratio: settings.reconcile.max_addition_ratio,
        },
        sticky_trip,
        scoped,
        section_removal: crate::target::section_removal(settings),
    }
}

/// Runs one whole cycle.
pub async fn run_cycle(ctx: &CycleContext, opts: &CycleOptions) -> CycleReport {
    match prepare(ctx, opts).await {
        Ok(prepared) => prepared.apply(ctx, opts).await,
        Err(report) => report,
    }
}

/// Reads both sides and decides. On a fatal error the run is closed as failed and its report returned as `Err`.
pub async fn prepare(
    ctx: &CycleContext,
    opts: &CycleOptions,
) -> Result<PreparedCycle, CycleReport> {
    let started = Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
    // Paused (an operator's pause or a configuration window): the cycle plans and audits, and changes nothing.
    // When the pause cannot be read, the cycle must not write either: it fails before opening its run.
    let paused = pause::why_paused(&ctx.db, &ctx.settings).await;
    let paused_reason = paused
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(Paused::reason);
    ctx.metrics.paused.set(i64::from(paused_reason.is_some()));
    let dry_run = opts.dry_run || ctx.settings.reconcile.dry_run || paused_reason.is_some();
    let span = info_span!("cycle", run.id = %run_id, dry_run);
    let mut report = CycleReport::new(run_id.clone(), dry_run);
    report.details.target = ctx.settings.target.as_str();
    let runs = Runs::new(ctx.db.clone());
    ctx.target.begin_cycle();
    let scope = opts.scope.as_deref();
    if let Some(scope) = scope {
        report.details.scope = scope.iter().cloned().collect();
    }
    if let Some(reason) = &paused_reason {
        info!(parent: &span, paused = %reason, "paused: this cycle plans and audits but changes nothing in Canvas");
        report.details.paused = paused_reason.clone();
    }
    let opened = match (paused, scope) {
        (Err(e), _) => Err((e, "cannot read whether rostersync is paused")),
        (Ok(_), Some(_)) => runs
            .start_scoped(&run_id, dry_run)
            .await
            .map_err(|e| (e, "cannot open the run record")),
        (Ok(_), None) => runs
            .start(&run_id, dry_run)
            .await
            .map_err(|e| (e, "cannot open the run record")),
    };
    if let Err((e, what)) = opened {
        report.status = RunStatus::Failed;
        report.error = Some(e.to_string());
        finish::finish_metrics(ctx, &report, started);
        error!(parent: &span, error = %e, "cycle failed: {what}");
        return Err(report);
    }
    let read_and_decide = async {
        if opts.holds_lock {
            close_interrupted(ctx, &runs, &mut report).await?;
        }
        let sticky_trip = runs.open_trip().await?;
        // Read before the rows, so that a change made in between is seen again by the next check, never missed.
        // A query this cannot wrap fails the row read below with its own, clearer error; without fingerprints the
        // freshness check waits for the next full run.
        let fingerprints = async {
            if dry_run {
                return None;
            }
            let s = &ctx.settings.sis;
            match sis::course_fingerprints(&ctx.sis, &s.enrollments_query, s.statement_timeout)
                .await
            {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!(error = %e, "cannot fingerprint the SIS courses; this run records none for the freshness check");
                    None
                }
            }
        };
        // What the target is asked first (Canvas's roles) does not depend on the SIS: asked for while the SIS is
        // fingerprinted (the SIS rows, which must come after the fingerprints, are read next).
        let read_started = Instant::now();
        let (fingerprints, prefetched) = tokio::join!(fingerprints, read::prefetch(ctx));
        let snapshot =
            read::read_snapshot_prefetched(ctx, scope, &mut report, read_started, prefetched)
                .await?;
        // A scoped run read only some courses: the interrupted changes elsewhere wait for a full run.
        if opts.holds_lock && !dry_run && scope.is_none() {
            report.details.resolved_interrupted =
                resolve::resolve_interrupted(&ctx.db, &snapshot, &run_id).await?;
            ctx.metrics.unresolved_planned.set(0);
        }
        let plan_started = Instant::now();
        let scoped = match scope {
            Some(_) => Some(runs.scoped_base().await?),
            None => None,
        };
        let mut decision = decide(
            &snapshot,
            &decide_settings(&ctx.settings, sticky_trip, scoped),
        );
        report.details.plan_ms = plan_started.elapsed().as_millis() as u64;
        note::note_decision(ctx, opts, &snapshot, &mut decision, &mut report);
        Ok::<_, CycleError>((snapshot, decision, fingerprints))
    };
    let deadline = Deadline::arm(ctx, opts);
    let read_and_decide = async {
        tokio::select! {
            result = read_and_decide => result,
            () = deadline.reached.cancelled() => Err(CycleError::Deadline(
                ctx.settings.reconcile.cycle_deadline.unwrap_or_default(),
            )),
        }
    };
    match read_and_decide.instrument(span.clone()).await {
        Ok((snapshot, decision, fingerprints)) => Ok(PreparedCycle {
            snapshot,
            decision,
            report,
            started,
            deadline,
            fingerprints,
        }),
        Err(e) => {
            report.details.canvas_unavailable = e.is_canvas_down();
            error!(parent: &span, error = %e, error.kind = e.label(), "cycle failed before any change was made");
            Err(finish::end(ctx, &runs, report, Err(e), started).await)
        }
    }
}

impl PreparedCycle {
    /// Applies the decision (unless dry run), audits every change, closes the run and returns the report.
    pub async fn apply(self, ctx: &CycleContext, opts: &CycleOptions) -> CycleReport {
        let PreparedCycle {
            snapshot,
            decision,
            mut report,
            started,
            deadline,
            fingerprints,
        } = self;
        let opts = &deadline.options(opts);
        let span = info_span!("cycle", run.id = %report.run_id, dry_run = report.dry_run);
        let result = apply::apply_decision(ctx, opts, &snapshot, &decision, &mut report)
            .instrument(span.clone())
            .await;
        if deadline.reached.is_cancelled() {
            report.details.deadline_reached = true;
            report.error.get_or_insert_with(|| {
                "the cycle reached its deadline (reconcile.cycle_deadline_secs); the changes not attempted are \
                 planned again by the next cycle"
                    .into()
            });
        }
        let runs = Runs::new(ctx.db.clone());
        let report = finish::end(ctx, &runs, report, result, started).await;
        // A run that read and decided has reconciled its courses as the SIS stood (a trip holds changes for a
        // person, failed changes wait for the next full run): the freshness check starts from here.
        if let Some(read) = &fingerprints
            && report.status != RunStatus::Failed
            && let Err(e) = CourseFingerprints::new(ctx.db.clone())
                .record(&report.run_id, read, opts.scope.as_deref())
                .await
        {
            warn!(error = %e, "cannot record the SIS course fingerprints; the next freshness check may reconcile those courses again");
        }
        if let Some(by) = &opts.accept_removals
            && !report.dry_run
            && report.status != RunStatus::Failed
            && let Err(e) = runs.clear_trips(None, by).await
        {
            warn!(error = %e, "cannot record that the trip was overridden; the next cycle holds removals again");
        }
        info!(
            parent: &span,
            status = report.status.as_str(),
            applied = report.applied,
            failed = report.failed,
            skipped = report.skipped,
            api_calls = report.api_calls,
            retries = report.details.requests.retries,
            throttled = report.details.requests.throttled,
            duration_ms = report.duration_ms,
            "cycle finished"
        );
        report
    }
}

/// Closes the runs an earlier process left `running`, and says how many of their changes have no final outcome.
async fn close_interrupted(
    ctx: &CycleContext,
    runs: &Runs,
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let interrupted = runs.close_interrupted(&report.run_id).await?;
    for run in &interrupted {
        warn!(
            interrupted.run_id = %run.run_id,
            unresolved = run.unresolved_planned,
            "an earlier run was interrupted with changes whose outcome was never recorded (audit rows left \
             `planned`); they may or may not have reached Canvas, and this cycle's plan starts from Canvas as it is now"
        );
    }
    ctx.metrics
        .unresolved_planned
        .set(interrupted.iter().map(|r| r.unresolved_planned).sum());
    report.details.interrupted_runs = interrupted;
    Ok(())
}
