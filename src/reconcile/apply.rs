//! The write half of a cycle: makes the changes a [`Decision`] allows, through the API (one change at a time,
//! several in flight) or a SIS import (a big delta in one job), and records every outcome.
//!
//! Intent first: every change has its `planned` audit row before its Canvas call. A failed change is a value that
//! goes into the audit log; only a Canvas that cannot be worked with (token rejected, down) stops the rest.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use tracing::{debug, info, warn};

use super::change::{self, ChangeResult};
use super::error::CycleError;
use super::record::{self, OutcomeWriter};
use super::report::{ChangeRecord, CycleReport};
use super::{CycleContext, CycleOptions, bulk};
use crate::canvas::{CanvasClient, CanvasError};
use crate::config::WritePath;
use crate::domain::decide::{Decision, Snapshot};
use crate::domain::plan::Change;
use crate::domain::{Ids, RemovalPolicy, SectionKey, UserIdKind};
use crate::store::grace::{Deferral, RemovalGrace};
use crate::store::missing::{MissingKind, MissingRefs};
use crate::store::{AuditLog, AuditOutcome, AuditRow};
use crate::target::Target;

/// What one run makes: rows settled without a Canvas call, and the changes to make, each with its audit row.
#[derive(Default)]
pub struct Work {
    pub settled: Vec<AuditRow>,
    pub changes: Vec<(Change, AuditRow)>,
}

impl Work {
    /// The work of a decision: unplanned rows and held changes are settled; the rest is made.
    pub fn of(snap: &Snapshot, decision: &Decision) -> Work {
        let (ids, roles) = (&snap.ids, &snap.roles);
        let mut settled: Vec<AuditRow> = decision
            .unplanned
            .iter()
            .map(|u| record::unplanned_row(u, ids, roles))
            .collect();
        let brake_reason = decision.brake.reason().unwrap_or_default();
        settled.extend(
            decision
                .held()
                .map(|c| record::held_row(c, ids, roles, &brake_reason)),
        );
        let changes = decision
            .to_make()
            .map(|c| (*c, record::change_row(c, ids, roles)))
            .collect();
        Work { settled, changes }
    }
}

/// Audits what needs no call, then (unless dry run) makes the changes and records their outcomes in `report`.
pub async fn apply_decision(
    ctx: &CycleContext,
    opts: &CycleOptions,
    snap: &Snapshot,
    decision: &Decision,
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let mut work = Work::of(snap, decision);
    work.changes.extend(
        crate::target::extra_changes(snap, decision)
            .into_iter()
            .map(|c| (c, record::change_row(&c, &snap.ids, &snap.roles))),
    );
    if ctx.settings.reconcile.removal_grace_cycles > 1 {
        defer_removals(ctx, opts, snap, &mut work, report).await?;
    }
    apply_work(ctx, opts, snap, work, report).await
}

/// Flap damping (`reconcile.removal_grace_cycles`): an access-removing change is made only when that many
/// consecutive cycles decided it; until then it is settled `deferred`. A dry run shows what a cycle would defer and
/// counts nothing; a real run records the counts and forgets the changes of its courses it no longer decides.
async fn defer_removals(
    ctx: &CycleContext,
    opts: &CycleOptions,
    snap: &Snapshot,
    work: &mut Work,
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let grace = ctx.settings.reconcile.removal_grace_cycles;
    let store = RemovalGrace::new(ctx.db.clone());
    let keys: Vec<String> = work
        .changes
        .iter()
        .filter_map(|(c, _)| c.damping_key())
        .collect();
    let before = store.cycles(&keys).await.map_err(|e| {
        CycleError::Audit(format!(
            "cannot read the deferred removals, so no change is made: {e}"
        ))
    })?;
    let mut deferred: Vec<(String, String, u32)> = Vec::new();
    let mut make = Vec::with_capacity(work.changes.len());
    for (change, mut row) in std::mem::take(&mut work.changes) {
        let Some(key) = change.damping_key() else {
            make.push((change, row));
            continue;
        };
        let cycles = before.get(&key).copied().unwrap_or(0) + 1;
        if cycles >= grace {
            make.push((change, row));
            continue;
        }
        row.outcome = Some(AuditOutcome::Deferred);
        row.error = Some(format!(
            "deferred: {cycles} of {grace} cycles decided it (reconcile.removal_grace_cycles); made when {grace} \
             consecutive cycles do, never if one does not"
        ));
        deferred.push((key, snap.ids.resolve(change.course).to_owned(), cycles));
        work.settled.push(row);
    }
    work.changes = make;
    report.details.deferred = deferred.len() as u64;
    if !report.dry_run {
        let rows: Vec<Deferral<'_>> = deferred
            .iter()
            .map(|(key, course, cycles)| Deferral {
                key,
                course,
                cycles: *cycles,
            })
            .collect();
        store
            .record(&report.run_id, &rows, opts.scope.as_deref())
            .await
            .map_err(|e| {
                CycleError::Audit(format!(
                    "cannot record the deferred removals, so no change is made: {e}"
                ))
            })?;
    }
    Ok(())
}

/// Audits the settled rows, then (unless dry run) makes the changes, recording each outcome as it finishes.
pub async fn apply_work(
    ctx: &CycleContext,
    opts: &CycleOptions,
    snap: &Snapshot,
    work: Work,
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let audit = AuditLog::new(ctx.db.clone());
    let (run_id, dry_run) = (report.run_id.clone(), report.dry_run);
    let unwritten = |e: crate::store::DbError| {
        CycleError::Audit(format!(
            "cannot write the audit log, so no change is made: {e}"
        ))
    };

    let Work {
        settled,
        mut changes,
    } = work;
    if let Some(by) = &opts.accept_removals {
        for (_, row) in &mut changes {
            row.approved_by = Some(by.clone());
        }
    }
    for row in &settled {
        let outcome = row.outcome.unwrap_or(AuditOutcome::Planned);
        match outcome {
            AuditOutcome::Failed => report.failed += 1,
            AuditOutcome::Skipped => {
                report.skipped += 1;
                // An operator's change (`apply`, `undo`) that is not made says why in the printed report.
                if row.source_audit_id.is_some() {
                    report.changes.push(ChangeRecord {
                        error: row.error.clone(),
                        ..ChangeRecord::of(row, outcome, snap)
                    });
                }
            }
            AuditOutcome::Deferred => {
                report.changes.push(ChangeRecord::of(row, outcome, snap));
                ctx.metrics.count_change(row.action, outcome.as_str());
            }
            AuditOutcome::Held => {
                report.held += 1;
                report.changes.push(ChangeRecord::of(row, outcome, snap));
                ctx.metrics.count_change(row.action, outcome.as_str());
            }
            _ => {}
        }
    }
    audit
        .insert(&run_id, dry_run, &settled)
        .await
        .map_err(unwritten)?;
    drop(settled);

    let (to_apply, rows): (Vec<Change>, Vec<AuditRow>) = changes.into_iter().unzip();
    if dry_run {
        report.changes.extend(
            rows.iter()
                .map(|r| ChangeRecord::of(r, AuditOutcome::Planned, snap)),
        );
        audit
            .insert(&run_id, true, &rows)
            .await
            .map_err(|e| CycleError::Audit(format!("cannot write the audit log: {e}")))?;
        info!(
            changes = rows.len(),
            "dry run: changes planned and audited, none applied"
        );
        return Ok(());
    }
    if to_apply.is_empty() {
        return Ok(());
    }
    let audit_ids = audit
        .insert(&run_id, false, &rows)
        .await
        .map_err(unwritten)?;
    drop(rows);

    let apply_started = Instant::now();
    let total = to_apply.len() as u64;
    let jobs: Vec<(Change, i64)> = to_apply.into_iter().zip(audit_ids).collect();
    let writer = OutcomeWriter::new(audit);
    let mut tally = Tally::default();
    let ended = match &ctx.target {
        Target::Canvas(canvas) => {
            make_canvas(ctx, canvas, opts, snap, jobs, report, &writer, &mut tally).await;
            None
        }
        Target::OpenEdx(client) => {
            let (results, ended) =
                crate::target::openedx::make_changes(ctx, client, opts, snap, jobs).await;
            report.details.write_path = "api";
            let results = futures::stream::iter(results);
            record_results(ctx, opts, snap, report, results, total, &writer, &mut tally).await;
            ended
        }
    };
    let recorded = writer.drain().await;
    report.details.apply_ms = apply_started.elapsed().as_millis() as u64;
    report.details.users_not_found += tally.missing_users.len() as u64;
    ctx.metrics
        .users_not_found
        .set(report.details.users_not_found as i64);
    let missing = MissingRefs::new(ctx.db.clone());
    for (kind, ids) in [
        (MissingKind::User, &tally.missing_users),
        (MissingKind::Section, &tally.missing_sections),
    ] {
        if let Err(e) = missing.remember(kind, ids).await {
            warn!(error = %e, "cannot remember what Canvas does not have; the next cycle plans those enrolls again");
        }
    }
    if let Some(source) = tally.auth_error {
        return Err(CycleError::Canvas {
            doing: "Canvas rejected the token during the cycle: ".into(),
            source,
        });
    }
    if let Some(e) = ended {
        return Err(e);
    }
    recorded
        .map_err(|e| CycleError::Audit(format!("the audit log could not be fully written: {e}")))
}

/// Makes the changes in Canvas: the bulk part through one SIS import, the rest through the API, several at once.
#[allow(clippy::too_many_arguments)]
async fn make_canvas(
    ctx: &CycleContext,
    canvas: &CanvasClient,
    opts: &CycleOptions,
    snap: &Snapshot,
    jobs: Vec<Job>,
    report: &mut CycleReport,
    writer: &OutcomeWriter,
    tally: &mut Tally,
) {
    let (ids, roles) = (&snap.ids, &snap.roles);
    let total = jobs.len() as u64;
    let (bulk, mut api) = split_paths(ctx, opts, jobs, ids);
    // Losing the lock stops following an import (it may run on in Canvas; the next cycle reads its result).
    let abort = &opts.abort;
    let bulk_jobs: Vec<Job> = bulk.iter().map(|(job, _)| *job).collect();
    let bulk_results: Vec<(Change, i64, ChangeResult)> = tokio::select! {
        biased;
        _ = abort.cancelled() => bulk_jobs
            .into_iter()
            .map(|(change, audit_id)| (change, audit_id, interrupted()))
            .collect(),
        results = apply_bulk(ctx, canvas, bulk, &mut api) => results,
    };
    report.details.write_path = match (bulk_results.is_empty(), api.is_empty()) {
        (false, false) => "api+sis_import",
        (false, true) => "sis_import",
        _ => "api",
    };

    let stop = Stop::default();
    if let Some(e) = bulk_results
        .iter()
        .find_map(|(_, _, r)| r.ends_cycle.as_ref())
    {
        stop.trigger(e);
    }
    let removal = ctx.settings.reconcile.removal;
    let (cancel, stop) = (&opts.cancel, &stop);
    let api_results = futures::stream::iter(api)
        .map(|(change, audit_id)| async move {
            let result = if opts.deadline_reached.is_cancelled() {
                ChangeResult::skipped(
                    "not attempted: the cycle reached its deadline (reconcile.cycle_deadline_secs); the next cycle \
                     plans it again",
                )
            } else if cancel.is_cancelled() || abort.is_cancelled() {
                ChangeResult::skipped(
                    "not attempted: the cycle was stopped (shutdown, or this replica lost the leader lock)",
                )
            } else if let Some(reason) = stop.reason() {
                ChangeResult::skipped(format!("not attempted: {reason}"))
            } else {
                // Losing the lock abandons the change in flight, its retries and backoff included.
                let result = tokio::select! {
                    biased;
                    _ = abort.cancelled() => interrupted(),
                    result = change::apply_change(canvas, &change, ids, roles, removal) => result,
                };
                if let Some(e) = &result.ends_cycle {
                    stop.trigger(e);
                }
                result
            };
            (change, audit_id, result)
        })
        .buffer_unordered(ctx.settings.limits.max_in_flight as usize);
    let results = futures::stream::iter(bulk_results).chain(api_results);
    record_results(ctx, opts, snap, report, results, total, writer, tally).await;
}

/// Counts each change's outcome as it finishes and hands it to the audit writer.
#[allow(clippy::too_many_arguments)]
async fn record_results(
    ctx: &CycleContext,
    opts: &CycleOptions,
    snap: &Snapshot,
    report: &mut CycleReport,
    results: impl futures::Stream<Item = (Change, i64, ChangeResult)>,
    total: u64,
    writer: &OutcomeWriter,
    tally: &mut Tally,
) {
    let (ids, roles) = (&snap.ids, &snap.roles);
    let mut results = std::pin::pin!(results);
    let mut done = 0u64;
    while let Some((change, audit_id, result)) = results.next().await {
        done += 1;
        tally.count(ctx, report, ids, &change, &result);
        report.changes.push(ChangeRecord {
            error: result.error.clone(),
            ..ChangeRecord::of(
                &record::change_row(&change, ids, roles),
                result.outcome,
                snap,
            )
        });
        writer.push(record::outcome_update(audit_id, result));
        if let Some(progress) = &opts.progress {
            progress(done, total);
        }
    }
}

type Job = (Change, i64);

/// A change abandoned in flight because this process lost the leader lock: Canvas may or may not have made it (the
/// next cycle reads which).
fn interrupted() -> ChangeResult {
    ChangeResult {
        outcome: AuditOutcome::Failed,
        ..ChangeResult::skipped(
            "interrupted: this replica lost the leader lock while the change was in flight; the next cycle reads \
             whether Canvas made it",
        )
    }
}

/// The bulk path takes what a SIS import can name unambiguously, when there is enough of it; the rest goes through
/// the API.
fn split_paths(
    ctx: &CycleContext,
    opts: &CycleOptions,
    jobs: Vec<Job>,
    ids: &Ids,
) -> (Vec<(Job, Vec<bulk::BulkRow>)>, Vec<Job>) {
    let reconcile = &ctx.settings.reconcile;
    if reconcile.write_path == WritePath::Api || opts.cancel.is_cancelled() {
        return (Vec::new(), jobs);
    }
    let removal: RemovalPolicy = reconcile.removal;
    let mut bulk = Vec::new();
    let mut api = Vec::with_capacity(jobs.len());
    for job in jobs {
        match bulk::rows_for(&job.0, ids, removal) {
            Some(rows) => bulk.push((job, rows)),
            None => api.push(job),
        }
    }
    let enough = reconcile.write_path == WritePath::SisImport
        || bulk.len() as u64 >= reconcile.bulk_min_changes;
    // A SIS import's enrollments.csv names users by SIS user id only (facts §8: `user_id`, or
    // `user_integration_id`; no login id column): under login ids the CSV would name other users or none.
    let login_ids = ctx.settings.sis.user_id_kind != UserIdKind::SisUserId;
    if enough && login_ids && !bulk.is_empty() {
        info!(
            changes = bulk.len(),
            "not using a SIS import: sis.user_id_kind = sis_login_id, and a SIS import names users by SIS user id \
             only; every change goes through the API"
        );
    }
    if !enough || login_ids {
        api.extend(bulk.drain(..).map(|(job, _)| job));
    }
    (bulk, api)
}

/// Makes the bulk changes through one SIS import. When Canvas refuses the import (the token lacks "Import SIS
/// data", or Canvas answers 404), nothing was sent: the changes join `api`, which is said once and counted, and
/// no result comes back.
async fn apply_bulk(
    ctx: &CycleContext,
    canvas: &CanvasClient,
    bulk: Vec<(Job, Vec<bulk::BulkRow>)>,
    api: &mut Vec<Job>,
) -> Vec<(Change, i64, ChangeResult)> {
    if bulk.is_empty() {
        return Vec::new();
    }
    let (jobs, rows): (Vec<Job>, Vec<Vec<bulk::BulkRow>>) = bulk.into_iter().unzip();
    let changes: Vec<(Change, Vec<bulk::BulkRow>)> =
        jobs.iter().map(|(c, _)| *c).zip(rows).collect();
    let results = bulk::apply_bulk(
        canvas,
        &ctx.settings.canvas.account_id,
        ctx.settings.canvas.report_timeout,
        &changes,
    )
    .await;
    match results {
        Ok(results) => jobs
            .into_iter()
            .zip(results)
            .map(|((change, id), result)| (change, id, result))
            .collect(),
        Err(refused) => {
            warn!(
                changes = jobs.len(),
                error = %refused,
                "Canvas refused the SIS import (does the token's role have the \"Import SIS data\" permission?); \
                 making these changes through the API instead"
            );
            ctx.metrics.count_path_fallback("sis_import");
            api.extend(jobs);
            Vec::new()
        }
    }
}

/// Set once an error means the rest of the cycle should not be attempted; says why to the changes left.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Stop {
    fn trigger(&self, e: &CanvasError) {
        if !self.stopped.swap(true, Ordering::SeqCst)
            && let Ok(mut r) = self.reason.lock()
        {
            *r = Some(format!("the cycle stopped after: {e}"));
        }
    }

    fn reason(&self) -> Option<String> {
        if !self.stopped.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.reason
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_default(),
        )
    }
}

/// Counts outcomes into the report and metrics as they arrive.
#[derive(Default)]
struct Tally {
    /// Users and SIS sections an enroll found missing in Canvas, remembered for the next cycle.
    missing_users: Vec<String>,
    missing_sections: Vec<String>,
    auth_error: Option<CanvasError>,
}

impl Tally {
    fn count(
        &mut self,
        ctx: &CycleContext,
        report: &mut CycleReport,
        ids: &Ids,
        change: &Change,
        result: &ChangeResult,
    ) {
        let action = change.action.as_str();
        match result.outcome {
            AuditOutcome::Applied => {
                report.applied += 1;
                *report.details.applied_by_action.entry(action).or_default() += 1;
            }
            AuditOutcome::Failed => {
                report.failed += 1;
                *report.details.failed_by_action.entry(action).or_default() += 1;
                warn!(
                    action,
                    user = change.user.map(|u| ids.resolve(u)).unwrap_or("-"),
                    course.sis_id = ids.resolve(change.course),
                    status = result.http_status,
                    error = result.error.as_deref().unwrap_or(""),
                    "change failed"
                );
            }
            AuditOutcome::Skipped
            | AuditOutcome::Planned
            | AuditOutcome::Held
            | AuditOutcome::Deferred => {
                report.skipped += 1;
                if result
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("not attempted"))
                {
                    report.details.not_attempted += 1;
                }
            }
        }
        // A SIS row naming a user or section Canvas lacks is found out here the first time (later cycles skip it
        // before planning, reconcile/note.rs): the same debug line, in the cycle's span (its run.id).
        let section = match change.section {
            SectionKey::Sis(s) => Some(ids.resolve(s)),
            SectionKey::Default => None,
        };
        if result.user_not_found
            && let Some(user) = change.user
        {
            debug!(
                user.sis_id = ids.resolve(user),
                course.sis_id = ids.resolve(change.course),
                section.sis_id = section,
                reason = "user_not_found",
                "SIS row skipped: Canvas has no such user"
            );
            self.missing_users.push(ids.resolve(user).to_owned());
        }
        if result.section_not_found
            && let SectionKey::Sis(section) = change.section
        {
            debug!(
                user.sis_id = change.user.map(|u| ids.resolve(u)),
                course.sis_id = ids.resolve(change.course),
                section.sis_id = ids.resolve(section),
                reason = "section_not_found",
                "SIS row skipped: Canvas has no such section"
            );
            self.missing_sections.push(ids.resolve(section).to_owned());
        }
        if let Some(e) = &result.ends_cycle {
            report.details.canvas_unavailable = true;
            if let CanvasError::Unauthorized { .. } = e {
                self.auth_error.get_or_insert_with(|| e.clone());
            }
        }
        ctx.metrics.count_change(action, result.outcome.as_str());
    }
}
