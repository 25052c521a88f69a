//! Closing a run: its final status from the cycle's result, the run record (retried: the next run closes it as
//! interrupted when even that fails), and the cycle metrics.

use std::time::Instant;

use tracing::error;

use super::CycleContext;
use super::error::CycleError;
use super::report::CycleReport;
use crate::store::{RunStatus, Runs};

/// Closes the run with its final status and counts, and updates the cycle metrics.
pub async fn end(
    ctx: &CycleContext,
    runs: &Runs,
    mut report: CycleReport,
    result: Result<(), CycleError>,
    started: Instant,
) -> CycleReport {
    report.details.requests = ctx.target.stats();
    report.api_calls = report.details.requests.requests;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.status = match &result {
        Err(e) => {
            report.error = Some(e.to_string());
            RunStatus::Failed
        }
        Ok(()) if report.safety.tripped => RunStatus::SafetyTripped,
        Ok(()) if report.failed > 0 || report.details.deadline_reached => RunStatus::Partial,
        Ok(()) => RunStatus::Succeeded,
    };
    close_run(runs, &report).await;
    finish_metrics(ctx, &report, started);
    report
}

async fn close_run(runs: &Runs, report: &CycleReport) {
    let counts = serde_json::to_value(report).unwrap_or_default();
    let mut attempt = 0;
    while let Err(e) = runs
        .finish(
            &report.run_id,
            report.status,
            &counts,
            report.error.as_deref(),
        )
        .await
    {
        attempt += 1;
        if attempt < 6 {
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
            continue;
        }
        error!(run.id = %report.run_id, error = %e, "cannot close the run record; the next run closes it as interrupted");
        break;
    }
}

pub fn finish_metrics(ctx: &CycleContext, report: &CycleReport, started: Instant) {
    let m = &ctx.metrics;
    m.cycles
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: report.status.as_str().to_owned(),
        })
        .inc();
    m.cycle_duration.observe(started.elapsed().as_secs_f64());
    // Only a full run vouches that Canvas as a whole matches the SIS (a scoped one read some courses).
    if matches!(report.status, RunStatus::Succeeded | RunStatus::Partial)
        && report.details.scope.is_empty()
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        m.last_success.set(now);
    }
    if report.safety.tripped {
        m.safety_trips.inc();
        m.safety_tripped.set(1);
        if !report.dry_run {
            m.tripped_run.clear();
            m.tripped_run
                .get_or_create(&crate::metrics::RunLabels {
                    run_id: report.run_id.clone(),
                })
                .set(1);
        }
        m.held_changes.set(report.held as i64);
    } else if report.status != RunStatus::Failed {
        m.safety_tripped.set(0);
        m.tripped_run.clear();
        m.held_changes.set(0);
    }
}
