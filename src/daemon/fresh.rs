//! Fresh within a minute: between full cycles, the leader re-reads the SIS (every `schedule.sis_poll_secs`, and at
//! once on a `NOTIFY` on `sis.notify_channel`) and reconciles only the courses whose SIS rows changed since the run
//! that last reconciled them (`rostersync.course_fingerprints`), in a run with `scope = 'courses'`.
//!
//! The SIS side is read whole (it is local and cheap, and PostgreSQL reduces it to one row per course); Canvas, the
//! expensive side, is read only for the changed courses.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::reconcile::{CycleContext, CycleOptions, CycleReport, run_cycle};
use crate::sis;
use crate::store::fingerprints::{CourseFingerprints, changed_courses};

/// Compares the SIS with the recorded fingerprints and, when courses changed, reconciles those. `None` when nothing
/// changed (or there is no baseline yet: the next full cycle takes one).
pub async fn check(
    ctx: &CycleContext,
    cancel: CancellationToken,
    abort: CancellationToken,
) -> Option<CycleReport> {
    // Paused: a scoped dry run records no fingerprints, so it would plan the same courses at every check. The full
    // cycles (on schedule.cron) plan and audit meanwhile; after the pause the next check catches up.
    match crate::desk::pause::why_paused(&ctx.db, &ctx.settings).await {
        Ok(Some(paused)) => {
            ctx.metrics.paused.set(1);
            debug!(paused = %paused.reason(), "freshness check: paused; the next full cycle plans as a dry run");
            return None;
        }
        Ok(None) => {}
        Err(e) => {
            warn!(error = %e, "freshness check: cannot read whether rostersync is paused; trying again at the next check");
            return None;
        }
    }
    let recorded = match CourseFingerprints::new(ctx.db.clone()).load().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "freshness check: cannot read the recorded course fingerprints; trying again at the next check");
            return None;
        }
    };
    if recorded.is_empty() {
        debug!(
            "freshness check: no run has recorded the SIS courses yet; the next full cycle does"
        );
        return None;
    }
    let s = &ctx.settings.sis;
    let now = match sis::course_fingerprints(&ctx.sis, &s.enrollments_query, s.statement_timeout)
        .await
    {
        Ok(now) => now,
        Err(e) => {
            warn!(error = %e, "freshness check: cannot read the SIS; trying again at the next check");
            return None;
        }
    };
    let mut changed = changed_courses(&recorded, &now);
    // Rows without a course id are skipped rows of no course: the next full cycle records them.
    changed.remove("");
    if changed.is_empty() {
        debug!(
            courses = now.len(),
            "freshness check: no SIS course changed"
        );
        return None;
    }
    info!(
        changed = changed.len(),
        courses = now.len(),
        "freshness check: SIS rows changed; reconciling those courses"
    );
    let opts = CycleOptions {
        cancel,
        abort,
        holds_lock: true,
        scope: Some(Arc::new(changed)),
        ..CycleOptions::default()
    };
    Some(run_cycle(ctx, &opts).await)
}

/// LISTENs on `channel` on the SIS database and sends a check request on every notification, until `shutdown`.
/// A lost connection is re-made (PgListener re-subscribes) and triggers a check, since a NOTIFY may have been
/// missed meanwhile.
pub async fn listen(
    sis: PgPool,
    channel: String,
    checks: mpsc::UnboundedSender<&'static str>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_secs(1);
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&sis).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = connected => match result {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, %channel, "cannot LISTEN on the SIS database (sis.notify_channel); polling meanwhile, trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                    continue;
                }
            },
        };
        info!(%channel, "listening for SIS changes (sis.notify_channel)");
        delay = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                // `try_recv` ends with None when the connection was lost (it reconnects on the next call).
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => {
                        let _ = checks.send("notify");
                    }
                    Ok(None) => {
                        warn!(%channel, "the SIS LISTEN connection was lost; re-subscribing and checking at once");
                        let _ = checks.send("notify");
                    }
                    Err(e) => {
                        warn!(error = %e, %channel, "the SIS LISTEN connection failed; re-connecting");
                        break;
                    }
                },
            }
        }
    }
}
