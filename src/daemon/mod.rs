//! `rostersync run`: the long-running daemon.
//!
//! One loop owns everything that changes: schedule ticks arrive on a channel (tokio-cron-scheduler only sends
//! them), leadership is refreshed on a short interval, and signals end the loop. A tick starts a cycle only on the
//! leader and only when the previous cycle has finished (otherwise it is logged and counted as skipped). On
//! SIGTERM/SIGINT the running cycle is cancelled: the changes in flight finish, the rest are recorded as not
//! attempted, the run row is closed, and the process exits 0. Losing the leader lock is harsher: the changes in
//! flight are abandoned as well (their retries end), so no write follows the loss.

mod canvas_check;
mod fresh;
pub mod health;
pub mod leader;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::app;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::reconcile::{CycleContext, CycleOptions, CycleReport, run_cycle};
pub use health::Health;
use leader::Leadership;

/// How often leadership is re-checked (and, on a standby, re-tried).
const LEADERSHIP_INTERVAL: Duration = leader::LEADERSHIP_RETRY;
/// How long shutdown waits for the changes in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(45);
/// How long a cycle whose replica lost the leader lock may take to wind down (record what it can) before it is
/// dropped. Its Canvas writes stop at once; what bounds this is a database that no longer answers (a partition
/// sends no RST, and a query would wait for TCP to give up, minutes later). Rows it could not finish stay
/// `planned`, its run stays `running`: the next leader resolves both.
const LOST_LOCK_GRACE: Duration = Duration::from_secs(15);

/// Why the daemon could not start. Once it runs, nothing ends it but a signal.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Connect(#[from] app::StartError),
    #[error("cannot listen on {listen} (server.listen): {source}")]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("schedule.cron `{cron}`: {source}")]
    Schedule {
        cron: String,
        source: tokio_cron_scheduler::JobSchedulerError,
    },
}

pub async fn run(settings: Settings) -> Result<(), StartError> {
    let metrics = Arc::new(Metrics::new());
    let listen = settings.server.listen;
    let cron = settings.schedule.cron.clone();
    let run_on_start = settings.schedule.run_on_start;
    let db_url = settings.database.url.clone();
    let ctx = match app::connect(settings, metrics.clone()).await {
        Ok(ctx) => ctx,
        Err(e) => {
            error!(error = %e, "cannot start");
            return Err(e.into());
        }
    };
    // Not ready until Canvas has accepted the token: the check below at once, or a cycle.
    let health = Arc::new(Health::unverified());
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, %listen, "cannot listen");
            return Err(StartError::Listen { listen, source: e });
        }
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        server::ServerState {
            metrics: metrics.clone(),
            db: ctx.db.clone(),
            sis: ctx.sis.clone(),
            health: health.clone(),
        },
        shutdown.clone(),
    ));
    match canvas_check::client(&ctx) {
        Ok(client) => {
            tokio::spawn(canvas_check::run(client, health.clone(), shutdown.clone()));
        }
        // app::connect built the same client a moment ago, so this is next to impossible; a replica that cannot
        // check Canvas stays unverified (not ready) rather than ready unchecked.
        Err(e) => error!(error = %e, "cannot build the Canvas token check's client"),
    }
    info!(%listen, schedule = %cron, "rostersync started");

    let (tick_tx, mut ticks) = mpsc::unbounded_channel::<&'static str>();
    let mut scheduler = match start_scheduler(&cron, tick_tx.clone()).await {
        Ok(s) => s,
        Err(source) => return Err(StartError::Schedule { cron, source }),
    };
    if run_on_start {
        let _ = tick_tx.send("start");
    }
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    let mut leadership = Leadership::new(db_url, metrics.clone());
    let mut leadership_timer = tokio::time::interval(LEADERSHIP_INTERVAL);
    let mut current: Option<Running> = None;
    // A tick that came while this replica held the lock but could not start it yet (the wait after a takeover, or
    // a freshness run in progress): it runs as soon as it can.
    let mut deferred_tick: Option<&'static str> = None;
    // A freshness check asked for (poll or NOTIFY) while a cycle ran: it runs after.
    let mut pending_check = false;
    let watchdog_every = watchdog_interval();
    let mut watchdog_timer =
        tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    let mut signals = Signals::new();
    let sis_poll = ctx.settings.schedule.sis_poll;
    let mut poll_timer = {
        let every = sis_poll.unwrap_or(Duration::from_secs(3600));
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    };
    let (checks_tx, mut checks) = mpsc::unbounded_channel::<&'static str>();
    if let Some(channel) = ctx.settings.sis.notify_channel.clone() {
        tokio::spawn(fresh::listen(
            ctx.sis.clone(),
            channel,
            checks_tx.clone(),
            shutdown.clone(),
        ));
    }

    loop {
        let start_check = tokio::select! {
            signal = signals.recv() => {
                info!(signal, "shutting down: the changes in flight finish, the rest wait for the next start");
                break;
            }
            Some(origin) = ticks.recv() => {
                if let Some(running) = &current && !running.handle.is_finished() {
                    if running.check {
                        // A freshness run is short: the full cycle follows it instead of being skipped.
                        deferred_tick = Some(origin);
                    } else {
                        metrics.skipped_ticks.inc();
                        warn!(tick = origin, "schedule tick skipped: the previous cycle is still running");
                    }
                    continue;
                }
                if let Some(running) = current.take() {
                    finish(running.handle, &health).await;
                }
                if !leadership.ensure().await {
                    if leadership.is_leader() {
                        info!(tick = origin, "leader, but not writing yet: waiting after a takeover for the previous leader to have stopped; the cycle runs after the wait");
                        deferred_tick = Some(origin);
                    } else {
                        info!(tick = origin, "standby: another replica holds the leader lock");
                    }
                    continue;
                }
                deferred_tick = None;
                current = Some(Running::cycle(&ctx, &leadership));
                false
            }
            _ = poll_timer.tick(), if sis_poll.is_some() => true,
            Some(origin) = checks.recv() => {
                debug!(trigger = origin, "freshness check requested");
                true
            }
            _ = leadership_timer.tick() => {
                if current.as_ref().is_some_and(|r| r.handle.is_finished())
                    && let Some(running) = current.take()
                {
                    finish(running.handle, &health).await;
                }
                let was_leader = leadership.is_leader();
                let may_write = leadership.ensure().await;
                if was_leader && !leadership.is_leader() && let Some(running) = &current {
                    error!("leader lock lost: stopping the running cycle's writes");
                    running.cancel.cancel();
                }
                if !leadership.is_leader() {
                    deferred_tick = None;
                    pending_check = false;
                }
                if may_write && current.is_none() && let Some(origin) = deferred_tick.take() {
                    info!(tick = origin, "running the tick that came during the wait after a takeover or a freshness run");
                    current = Some(Running::cycle(&ctx, &leadership));
                    pending_check = false;
                }
                std::mem::take(&mut pending_check)
            }
            _ = watchdog_timer.tick(), if watchdog_every.is_some() => {
                notify_systemd(&[sd_notify::NotifyState::Watchdog]);
                false
            }
        };
        // The token check runs only while this replica stands by (the leader's cycles keep /readyz current).
        health.set_leader(leadership.is_leader());
        if start_check {
            if current.as_ref().is_some_and(|r| !r.handle.is_finished()) {
                pending_check = true;
                continue;
            }
            if let Some(running) = current.take() {
                finish(running.handle, &health).await;
            }
            if leadership.ensure().await {
                current = Some(Running::check(&ctx, &leadership));
            }
        }
    }

    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    let _ = scheduler.shutdown().await;
    if let Some(Running { handle, cancel, .. }) = current.take() {
        cancel.cancel();
        match tokio::time::timeout(SHUTDOWN_GRACE, handle).await {
            Ok(Ok(Some(report))) => {
                info!(run.id = %report.run_id, status = report.status.as_str(), "last cycle closed")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => error!(error = %e, "cycle task ended abnormally"),
            Err(_) => error!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "cycle did not finish within the shutdown grace period"
            ),
        }
    }
    leadership.release().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    info!("rostersync stopped");
    Ok(())
}

async fn start_scheduler(
    cron: &str,
    ticks: mpsc::UnboundedSender<&'static str>,
) -> Result<JobScheduler, tokio_cron_scheduler::JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new(cron, move |_, _| {
        let _ = ticks.send("cron");
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}

/// The cycle or freshness run in progress.
struct Running {
    handle: JoinHandle<Option<CycleReport>>,
    /// Stops new changes (shutdown, or the lock lost).
    cancel: CancellationToken,
    /// A freshness check (and its scoped run), not a full cycle.
    check: bool,
}

impl Running {
    fn cycle(ctx: &CycleContext, leadership: &Leadership) -> Running {
        Self::spawn(ctx, leadership, false)
    }

    fn check(ctx: &CycleContext, leadership: &Leadership) -> Running {
        Self::spawn(ctx, leadership, true)
    }

    /// `cancel` stops new changes (shutdown, or the lock lost); `abort` (the lock lost) also abandons those in
    /// flight, and after [`LOST_LOCK_GRACE`] the whole task.
    fn spawn(ctx: &CycleContext, leadership: &Leadership, check: bool) -> Running {
        let cancel = leadership.cycle_token();
        let abort = leadership.lost_token();
        let (ctx, task_cancel) = (ctx.clone(), cancel.clone());
        let handle = tokio::spawn(async move {
            let work = async {
                if check {
                    fresh::check(&ctx, task_cancel, abort.clone()).await
                } else {
                    let opts = CycleOptions {
                        cancel: task_cancel,
                        abort: abort.clone(),
                        holds_lock: true,
                        ..CycleOptions::default()
                    };
                    Some(run_cycle(&ctx, &opts).await)
                }
            };
            tokio::select! {
                report = work => report,
                _ = async {
                    abort.cancelled().await;
                    tokio::time::sleep(LOST_LOCK_GRACE).await;
                } => {
                    error!(
                        grace_secs = LOST_LOCK_GRACE.as_secs(),
                        "the cycle of a replica that lost the leader lock did not wind down in time (the database does not answer); dropped it: the next leader resolves its `planned` changes and closes its run"
                    );
                    None
                }
            }
        });
        Running {
            handle,
            cancel,
            check,
        }
    }
}

async fn finish(handle: JoinHandle<Option<CycleReport>>, health: &Health) {
    if let Ok(Some(report)) = handle.await {
        record_health(&report, health);
    }
}

fn record_health(report: &CycleReport, health: &Health) {
    health.record_cycle(report);
}

fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_secs(1)))
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let _ = sd_notify::notify(false, state);
    }
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn recv(&mut self) -> &'static str {
        let term = async {
            match &mut self.term {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match &mut self.int {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => "SIGTERM",
            _ = int => "SIGINT",
        }
    }
}
