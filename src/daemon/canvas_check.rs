//! The token check behind `/readyz` (issue 16): one `GET /api/v1/users/self` at start, so that no replica reports
//! ready before Canvas has accepted its token, then again every few minutes while the replica stands by. A standby
//! runs no cycles, so without this a revoked or mistyped token would only show when the leader goes away and the
//! standby takes over, the moment it is needed. The leader skips the check: its cycles say the same and more.
//!
//! The check has a client of its own (its own retry budget and counters), so it never counts against a cycle's
//! budget or `api_calls`; its requests are still counted in `rostersync_canvas_requests_total`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::health::{CanvasState, Health};
use crate::canvas::{CanvasClient, CanvasError};
use crate::openedx::{OpenEdxClient, OpenEdxClientOptions};

/// Between checks while Canvas accepts the token: one cheap GET per replica every few minutes.
pub const RECHECK_EVERY: Duration = Duration::from_secs(300);
/// The first wait after a failed check (rejected, unreachable): a rotated token or a Canvas that is back soon after
/// makes the standby ready within this long. It doubles after each failure, up to [`RECHECK_EVERY`], so that a
/// token that stays revoked costs a few requests (and a few of the client's "re-read canvas.token_file" warnings)
/// an hour, not one every few seconds.
pub const RETRY_FIRST: Duration = Duration::from_secs(10);

/// What the check asks: Canvas whether it accepts the token, or, with `target.kind = "openedx"`, Open edX whether
/// it issues a token to the client credentials and lets the application read program enrollments.
pub enum Probe {
    Canvas(Box<CanvasClient>),
    OpenEdx(Box<OpenEdxClient>),
}

/// Runs until `shutdown`: checks at once, then, while not the leader, every [`RECHECK_EVERY`] while the target
/// accepts the credentials and from [`RETRY_FIRST`] on, doubling, while it does not.
pub async fn run(client: Probe, health: Arc<Health>, shutdown: CancellationToken) {
    let mut first = true;
    let mut retry = RETRY_FIRST;
    loop {
        if first || !health.is_leader() {
            check_once(&client, &health).await;
        }
        first = false;
        let wait = if health.canvas() == CanvasState::Accepted {
            retry = RETRY_FIRST;
            RECHECK_EVERY
        } else {
            let wait = retry;
            retry = (retry * 2).min(RECHECK_EVERY);
            wait
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn check_once(probe: &Probe, health: &Health) {
    let state = match probe {
        Probe::Canvas(client) => {
            // Each check starts afresh: its own retry budget, and a rejected token file may be re-read (rotation).
            client.begin_cycle();
            match client.get_self().await {
                Ok(_) => CanvasState::Accepted,
                Err(e) => CanvasState::Refused(refusal(&e)),
            }
        }
        Probe::OpenEdx(client) => match client.check_access().await {
            Ok(()) => CanvasState::Accepted,
            Err(e) => CanvasState::Refused(format!("Open edX credentials check failed: {e}")),
        },
    };
    let before = health.set_canvas(state.clone());
    // One line per change of state, not one per check: a standby with a revoked token would otherwise log at every
    // check. The error text never carries the token (CanvasError's messages are Canvas's, or ours).
    match (&before, &state) {
        (CanvasState::Accepted, CanvasState::Accepted) => {}
        (_, CanvasState::Accepted) => match probe {
            Probe::Canvas(_) => info!(
                "Canvas accepted the token (GET /api/v1/users/self): ready as far as Canvas goes"
            ),
            Probe::OpenEdx(_) => info!(
                "Open edX issued a token and the application may read program enrollments: ready as far as Open \
                 edX goes"
            ),
        },
        (CanvasState::Refused(old), CanvasState::Refused(new)) if old == new => {}
        (_, CanvasState::Refused(why)) => warn!(
            reason = %why,
            "Canvas token check failed: this replica reports not ready until it passes (checked again in 10 s, \
             then less and less often, at least every 5 min)"
        ),
        (_, CanvasState::Unverified) => {}
    }
}

/// The `/readyz` reason for a failed check.
fn refusal(e: &CanvasError) -> String {
    const CALL: &str = "GET /api/v1/users/self";
    match e {
        CanvasError::Unauthorized { .. } | CanvasError::Token(_) => {
            format!("{e} at {CALL}: set a valid canvas.token or canvas.token_file")
        }
        e if e.means_canvas_down() => format!("Canvas unreachable at {CALL}: {e}"),
        e => format!("Canvas token check {CALL} failed: {e}"),
    }
}

/// The check's own client: the configured target and credentials, at most one retry per check (a standby needs
/// no patience: it checks again soon).
pub fn client(ctx: &crate::reconcile::CycleContext) -> Result<Probe, String> {
    let settings = &ctx.settings;
    if let Some(openedx) = &settings.openedx {
        let mut opts = OpenEdxClientOptions::new(openedx, &settings.limits);
        opts.max_retries = opts.max_retries.min(1);
        return OpenEdxClient::new(opts)
            .map(|c| Probe::OpenEdx(Box::new(c.with_metrics(ctx.metrics.clone()))))
            .map_err(|e| e.to_string());
    }
    let mut opts = crate::canvas::ClientOptions::new(
        &settings.canvas,
        &settings.limits,
        settings.sis.user_id_kind,
    );
    opts.max_retries = opts.max_retries.min(1);
    opts.cycle_retry_budget = opts.cycle_retry_budget.min(1);
    CanvasClient::new(opts, ctx.metrics.clone())
        .map(|c| Probe::Canvas(Box::new(c)))
        .map_err(|e| e.to_string())
}
