//! The `rostersync` command line (CONTRACT.md "Commands"): parse, run, and map the outcome to an exit code.
//! Errors are printed once, as one readable line on stderr; they never carry the Canvas token.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, DatabaseUrl, Settings};
use crate::metrics::Metrics;
use crate::reconcile::pinned::{PinnedError, Review, apply_reviewed};
use crate::reconcile::{CycleContext, CycleOptions, CycleReport, run_cycle};
use crate::store::lock::LeaderLock;
use crate::store::{DbError, RunStatus};
use crate::{app, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "rostersync",
    version,
    about = "Keeps Canvas LMS enrollments in line with the SIS, auditing every change"
)]
pub struct Cli {
    /// TOML configuration file (also `ROSTERSYNC_CONFIG`); every key can be set by `ROSTERSYNC__SECTION__KEY`.
    #[arg(long, global = true, env = "ROSTERSYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: cycles on `schedule.cron`, `/metrics`, `/healthz`, `/readyz` on `server.listen`.
    Run,
    /// One cycle now. Exit 0 all applied, 2 some changes failed, 3 safety guard tripped, 1 fatal.
    Reconcile {
        /// Plan and audit, change nothing in Canvas.
        #[arg(long)]
        dry_run: bool,
        /// Print exactly one JSON object on stdout (logs stay on stderr).
        #[arg(long)]
        json: bool,
        /// An alias for "dry run, then apply": make the changes the brake would hold, in this one cycle, and
        /// clear a trip. Prefer `reconcile --dry-run` and `apply RUN_ID --by NAME`, which make what you reviewed.
        #[arg(long)]
        accept_removals: bool,
    },
    /// Make the held changes of a tripped run, or the planned changes of a dry run, exactly as reviewed: no new SIS
    /// read; each change is checked against live Canvas first (a moved enrollment is skipped as `stale:`).
    Apply {
        /// The run to apply (`run_id` of `reconcile`).
        run_id: String,
        /// Who approved the changes; recorded on the run and on every audit row.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Why, for the run record.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Query the audit log, newest first: what happened to a user, a course or in a run, as a help desk pastes it
    /// into a ticket. Filters combine with AND. Needs only the database (no Canvas, no leader lock).
    Audit(crate::desk::audit::AuditArgs),
    /// Create or upgrade rostersync's own schema.
    Migrate,
    /// Validate the configuration, reach both databases and Canvas, and print what was checked.
    Check,
    /// The whole job on bundled defaults: built-in Canvas simulator, a sample district, a PostgreSQL it finds or starts.
    Demo(crate::demo::DemoArgs),
}

/// Exit code for fatal errors (configuration, database, Canvas auth). Only [`exit_code`] uses it.
const EXIT_FATAL: u8 = 1;

/// How long `reconcile` waits for the leader lock before concluding another process is applying changes.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// What a command did, when it could do its job.
#[derive(Debug)]
pub enum Outcome {
    /// The command did what it was asked.
    Done,
    /// One `reconcile` cycle ran and ended with this status (its report is already printed).
    Cycle(RunStatus),
}

/// Why a command could not do its job. [`exit_code`] prints each message once, as `error: …` on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] app::StartError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "another rostersync process holds the leader lock on {0} and is applying changes; \
         try again when it is done, or use --dry-run"
    )]
    LockHeld(DatabaseUrl),
    #[error(transparent)]
    Pinned(#[from] PinnedError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::StartError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error(transparent)]
    Audit(#[from] crate::desk::audit::AuditError),
    /// `check` has printed every failed check on stdout; nothing more is said on stderr.
    #[error(transparent)]
    Check(#[from] crate::check::CheckError),
}

/// The one place that turns a command's result into the process exit code (CONTRACT.md "Commands"):
/// 0 done (a cycle with everything applied), 2 some changes failed, 3 the safety guard tripped, 1 fatal.
/// A trip outranks failed changes: holding removals back is the thing an operator must act on.
pub fn exit_code(result: Result<Outcome, CommandError>) -> ExitCode {
    let code = match result {
        Ok(Outcome::Done | Outcome::Cycle(RunStatus::Succeeded)) => 0,
        Ok(Outcome::Cycle(RunStatus::Partial)) => 2,
        Ok(Outcome::Cycle(RunStatus::SafetyTripped)) => 3,
        Ok(Outcome::Cycle(RunStatus::Failed | RunStatus::Running)) => EXIT_FATAL,
        Err(CommandError::Check(_)) => EXIT_FATAL,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FATAL
        }
    };
    ExitCode::from(code)
}

pub async fn run(cli: Cli) -> ExitCode {
    exit_code(execute(cli).await)
}

async fn execute(cli: Cli) -> Result<Outcome, CommandError> {
    // The demo needs no configuration: it brings its own.
    if let Command::Demo(args) = cli.command {
        if let Some(path) = &cli.config {
            eprintln!(
                "note: the demo runs on bundled defaults and ignores the configuration `{}`",
                path.display()
            );
        }
        crate::demo::run(args).await?;
        return Ok(Outcome::Done);
    }
    let settings = load(cli.config.as_deref())?;
    let _telemetry = telemetry::init(&settings.log);
    match cli.command {
        Command::Reconcile {
            dry_run,
            json,
            accept_removals,
        } => {
            let report = reconcile(settings, dry_run, accept_removals).await?;
            print_report(&report, json);
            return Ok(Outcome::Cycle(report.status));
        }
        Command::Apply {
            run_id,
            by,
            reason,
            json,
        } => {
            let review = Review {
                run_id,
                by: by.ok_or(PinnedError::NoApprover)?,
                reason,
            };
            let report = apply(settings, &review).await?;
            print_report(&report, json);
            return Ok(Outcome::Cycle(report.status));
        }
        Command::Audit(args) => crate::desk::audit::run(&settings, &args).await?,
        Command::Migrate => migrate(settings).await?,
        Command::Check => crate::check::run(settings).await?,
        Command::Run => crate::daemon::run(settings).await?,
        // Handled above; kept total without a panic path.
        Command::Demo(args) => crate::demo::run(args).await?,
    }
    Ok(Outcome::Done)
}

fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    let settings = Settings::load(path)?;
    if let Some(warning) = settings.canvas.token.permission_warning() {
        eprintln!("warning: {warning}");
    }
    Ok(settings)
}

async fn migrate(settings: Settings) -> Result<(), CommandError> {
    let pool = crate::store::connect("rostersync", &settings.database.url, 2).await?;
    crate::store::migrate(&pool).await?;
    println!(
        "schema rostersync is up to date in {}",
        settings.database.url
    );
    Ok(())
}

async fn reconcile(
    settings: Settings,
    dry_run: bool,
    accept_removals: bool,
) -> Result<CycleReport, CommandError> {
    let dry_run = dry_run || settings.reconcile.dry_run;
    let (ctx, lock) = connect_as_writer(settings, !dry_run).await?;
    let opts = CycleOptions {
        dry_run,
        holds_lock: lock.is_some(),
        cancel: lost_token(&lock),
        // Losing the lock also abandons the changes in flight (another process may take over at once).
        abort: lost_token(&lock),
        accept_removals: accept_removals
            .then(|| format!("--accept-removals ({})", crate::store::runs::os_user())),
        ..CycleOptions::default()
    };
    let report = run_cycle(&ctx, &opts).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    Ok(report)
}

async fn apply(settings: Settings, review: &Review) -> Result<CycleReport, CommandError> {
    let (ctx, lock) = connect_as_writer(settings, true).await?;
    let opts = CycleOptions {
        holds_lock: lock.is_some(),
        cancel: lost_token(&lock),
        // Losing the lock also abandons the changes in flight (another process may take over at once).
        abort: lost_token(&lock),
        ..CycleOptions::default()
    };
    let result = apply_reviewed(&ctx, &opts, review).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    Ok(result?)
}

/// Cancelled when this process loses the leader lock (never, without one).
fn lost_token(lock: &Option<LeaderLock>) -> tokio_util::sync::CancellationToken {
    lock.as_ref()
        .map(|l| l.lost().child_token())
        .unwrap_or_default()
}

/// Connects, and takes the leader lock when the command writes: the daemon and a manual command must not write
/// at once. A command that only reads tries once and goes on without the lock when another process holds it.
async fn connect_as_writer(
    settings: Settings,
    writes: bool,
) -> Result<(CycleContext, Option<LeaderLock>), CommandError> {
    let db_url = settings.database.url.clone();
    let ctx = app::connect(settings, Arc::new(Metrics::new())).await?;
    let wait = if writes { LOCK_WAIT } else { Duration::ZERO };
    let lock = LeaderLock::acquire_within(&db_url, wait).await?;
    if lock.is_none() && writes {
        return Err(CommandError::LockHeld(db_url));
    }
    Ok((ctx, lock))
}

pub fn print_report(report: &CycleReport, json: bool) {
    if json {
        match serde_json::to_string(&report.to_json()) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode the report: {e}"),
        }
        return;
    }
    crate::plan_text::print_paged(&crate::plan_text::render(report));
}
