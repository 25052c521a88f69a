//! The `rostersync` command line (CONTRACT.md "Commands"): parse, run, and map the outcome to an exit code.
//! Errors are printed once, as one readable line on stderr; they never carry the Canvas token.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, DatabaseUrl, Settings};
use crate::desk::pause::PauseError;
use crate::metrics::Metrics;
use crate::reconcile::pinned::{PinnedError, Review, apply_reviewed};
use crate::reconcile::undo::{UndoRequest, undo_run};
use crate::reconcile::{CycleContext, CycleOptions, CycleReport, run_cycle};
use crate::store::lock::LeaderLock;
use crate::store::{DbError, RunStatus};
use crate::{app, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "rostersync",
    version = crate::LONG_VERSION,
    about = "Keeps Canvas LMS enrollments in line with the SIS, auditing every change"
)]
pub struct Cli {
    /// TOML configuration file (also `ROSTERSYNC_CONFIG`; without either, /etc/rostersync/rostersync.toml when it
    /// exists); every key can be set by `ROSTERSYNC__SECTION__KEY`.
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
    /// Why this user's enrollments are as they are: SIS rows (skipped ones with the reason), role rules, Canvas
    /// enrollments, what a cycle would do now and why, and the audit history. Changes nothing.
    Explain {
        /// The user's SIS id (as `sis.user_id_kind` names users).
        #[arg(long, value_name = "ID")]
        user: String,
        /// Only this SIS course.
        #[arg(long, value_name = "ID")]
        course: Option<String>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Reverse what one run applied: each inverse checked against live Canvas first (a moved enrollment is a
    /// `conflict:`), recorded like `apply`; then the daemon is paused so that the next cycle does not redo it.
    Undo {
        /// The run to reverse (`run_id` of `reconcile`, or a run in `rostersync audit`).
        run_id: String,
        /// Who decided it; recorded on the run and on every audit row.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Why, for the run record.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Print the inverse plan (checked against Canvas) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Enrollments rostersync never touches: `except add`, `except list`, `except remove`.
    Except {
        #[command(subcommand)]
        command: crate::desk::except::ExceptCommand,
    },
    /// Pause: until `resume` (or --until), every cycle plans and audits but changes nothing, and `apply` is refused.
    Pause {
        /// Who pauses; recorded with the pause and shown by every paused cycle.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Why, shown by every paused cycle.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// End the pause by itself at this time: RFC 3339 (2026-12-01T07:00:00Z) or a date (midnight UTC).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// End the pause (and clear the brake's sticky trip): the next cycle changes Canvas again.
    Resume {
        /// Who resumes; recorded with the pause it ends.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Query the audit log, newest first: what happened to a user, a course or in a run, as a help desk pastes it
    /// into a ticket. Filters combine with AND. Needs only the database (no Canvas, no leader lock).
    Audit(crate::desk::audit::AuditArgs),
    /// Create or upgrade rostersync's own schema.
    Migrate,
    /// Validate the configuration, reach both databases and Canvas, and print what was checked.
    Check,
    /// The whole job on bundled defaults: a built-in simulator (Canvas, or Open edX with `--target openedx`), a sample
    /// district (or university), a PostgreSQL it finds or starts.
    Demo(crate::demo::DemoArgs),
    /// Print the shell completion script, e.g. `rostersync completions bash > /etc/bash_completion.d/rostersync`.
    /// Needs no configuration.
    Completions {
        /// bash, zsh, fish (also elvish, powershell).
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `rostersync man > /usr/share/man/man1/rostersync.1`. Needs no
    /// configuration.
    Man,
}

/// Exit code for fatal errors (configuration, database, Canvas auth). Only [`exit_code`] uses it.
const EXIT_FATAL: u8 = 1;

/// Exit code for a command line that cannot be parsed (sysexits.h `EX_USAGE`): distinct from 2 ("some changes
/// failed"), so that a cron wrapper never mistakes a typo for a partial sync. Only [`exit_code`] uses it.
const EXIT_USAGE: u8 = 64;

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
    /// The command line could not be parsed (or `--help`/`--version` was asked for): clap's own message.
    #[error("{0}")]
    Usage(clap::Error),
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
    Explain(#[from] crate::desk::explain::ExplainError),
    #[error(transparent)]
    Except(#[from] crate::desk::except::ExceptError),
    #[error(transparent)]
    Pause(#[from] PauseError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::StartError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error(transparent)]
    Audit(#[from] crate::desk::audit::AuditError),
    /// stdout could not be written (a closed pipe, a full disk).
    #[error("cannot write to stdout: {0}")]
    Output(std::io::Error),
    /// `check` has printed every failed check on stdout; nothing more is said on stderr.
    #[error(transparent)]
    Check(#[from] crate::check::CheckError),
}

/// The one place that turns a command's result into the process exit code (CONTRACT.md "Commands"):
/// 0 done (a cycle with everything applied), 2 some changes failed, 3 the safety guard tripped, 1 fatal,
/// 64 a command line that cannot be parsed (`--help` and `--version` print and exit 0).
/// A trip outranks failed changes: holding removals back is the thing an operator must act on.
pub fn exit_code(result: Result<Outcome, CommandError>) -> ExitCode {
    let code = match result {
        Err(CommandError::Usage(e)) => {
            // clap prints help and version on stdout, errors (with usage and a hint) on stderr.
            let _ = e.print();
            if e.use_stderr() { EXIT_USAGE } else { 0 }
        }
        Ok(Outcome::Done | Outcome::Cycle(RunStatus::Succeeded)) => 0,
        Ok(Outcome::Cycle(RunStatus::Partial)) => 2,
        Ok(Outcome::Cycle(RunStatus::SafetyTripped)) => 3,
        Ok(Outcome::Cycle(RunStatus::Failed | RunStatus::Running)) => EXIT_FATAL,
        Err(CommandError::Check(_)) => EXIT_FATAL,
        Err(e) => {
            eprintln!("{}error: {e}", journal_priority(3));
            EXIT_FATAL
        }
    };
    ExitCode::from(code)
}

impl Cli {
    /// Parses the process's arguments; a usage error (or `--help`/`--version`) is a [`CommandError::Usage`] for
    /// [`exit_code`], never clap's own `exit(2)`.
    pub fn parse_args() -> Result<Cli, CommandError> {
        Cli::try_parse().map_err(CommandError::Usage)
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    exit_code(execute(cli).await)
}

async fn execute(cli: Cli) -> Result<Outcome, CommandError> {
    // What the command line says about itself needs no configuration (the Docker build runs `man` with none).
    match cli.command {
        Command::Completions { shell } => {
            crate::manual::write_completions(shell, &mut std::io::stdout().lock());
            return Ok(Outcome::Done);
        }
        Command::Man => {
            crate::manual::write_man_page(&mut std::io::stdout().lock())
                .map_err(CommandError::Output)?;
            return Ok(Outcome::Done);
        }
        _ => {}
    }
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
        Command::Explain { user, course, json } => {
            let ctx = app::connect(settings, Arc::new(Metrics::new())).await?;
            let e = crate::desk::explain::explain(&ctx, &user, course.as_deref()).await?;
            if json {
                match serde_json::to_string(&e) {
                    Ok(s) => println!("{s}"),
                    Err(err) => eprintln!("error: cannot encode the explanation: {err}"),
                }
            } else {
                crate::plan_text::print_paged(&crate::desk::explain::render(&e));
            }
        }
        Command::Undo {
            run_id,
            by,
            reason,
            dry_run,
            json,
        } => {
            let request = UndoRequest {
                run_id,
                by: by.ok_or(PinnedError::NoApprover)?,
                reason,
                dry_run,
            };
            let report = undo(settings, &request).await?;
            print_report(&report, json);
            if !request.dry_run && report.status != RunStatus::Failed {
                eprintln!(
                    "rostersync is paused so that the next cycle does not redo the undo: cycles plan and change \
                     nothing until `rostersync resume --by NAME`"
                );
            }
            return Ok(Outcome::Cycle(report.status));
        }
        Command::Except { command } => crate::desk::except::run(settings, command).await?,
        Command::Pause { by, reason, until } => println!(
            "{}",
            crate::desk::pause::pause(
                &settings,
                by.as_deref(),
                reason.as_deref(),
                until.as_deref()
            )
            .await?
        ),
        Command::Resume { by } => println!(
            "{}",
            crate::desk::pause::resume(&settings, by.as_deref()).await?
        ),
        Command::Audit(args) => crate::desk::audit::run(&settings, &args).await?,
        Command::Migrate => migrate(settings).await?,
        Command::Check => crate::check::run(settings).await?,
        Command::Run => crate::daemon::run(settings).await?,
        // Handled above; kept total without a panic path.
        Command::Demo(args) => crate::demo::run(args).await?,
        Command::Completions { .. } | Command::Man => {}
    }
    Ok(Outcome::Done)
}

/// `<N>` (a syslog priority) when stderr is systemd's journal stream, so that the lines printed outside the log
/// subscriber (the final error, the start-up warning) carry their priority too; nothing elsewhere.
fn journal_priority(priority: u8) -> String {
    if telemetry::stderr_is_journal() {
        format!("<{priority}>")
    } else {
        String::new()
    }
}

/// The packaged location of the configuration, read when neither `--config` nor `ROSTERSYNC_CONFIG` names a file
/// and it exists (as `/etc/<program>/<program>.toml` is for most daemons).
pub const DEFAULT_CONFIG: &str = "/etc/rostersync/rostersync.toml";

/// The configuration file to read: the one named, else `default` when it exists, else none (the environment and
/// the defaults alone, CONTRACT.md "Configuration").
pub fn config_file(named: Option<&Path>, default: &Path) -> Option<PathBuf> {
    match named {
        Some(path) => Some(path.to_owned()),
        None => default.is_file().then(|| default.to_owned()),
    }
}

fn load(named: Option<&Path>) -> Result<Settings, ConfigError> {
    let path = config_file(named, Path::new(DEFAULT_CONFIG));
    let settings = Settings::load(path.as_deref())?;
    if let Some(warning) = settings.canvas.token.permission_warning() {
        eprintln!("{}warning: {warning}", journal_priority(4));
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
        accept_removals: accept_removals
            .then(|| format!("--accept-removals ({})", crate::store::runs::os_user())),
        ..writer_options(&lock)
    };
    let report = run_cycle(&ctx, &opts).await;
    release(lock).await;
    Ok(report)
}

async fn apply(settings: Settings, review: &Review) -> Result<CycleReport, CommandError> {
    let (ctx, lock) = connect_as_writer(settings, true).await?;
    let result = apply_reviewed(&ctx, &writer_options(&lock), review).await;
    release(lock).await;
    Ok(result?)
}

async fn undo(settings: Settings, request: &UndoRequest) -> Result<CycleReport, CommandError> {
    let (ctx, lock) = connect_as_writer(settings, !request.dry_run).await?;
    let result = undo_run(&ctx, &writer_options(&lock), request).await;
    release(lock).await;
    Ok(result?)
}

/// The options of a one-shot command's run: losing the lock (if it holds one) stops new changes and abandons those
/// in flight (another process may take over at once).
fn writer_options(lock: &Option<LeaderLock>) -> CycleOptions {
    CycleOptions {
        holds_lock: lock.is_some(),
        cancel: lost_token(lock),
        abort: lost_token(lock),
        ..CycleOptions::default()
    }
}

async fn release(lock: Option<LeaderLock>) {
    if let Some(lock) = lock {
        lock.release().await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_read_only_when_none_is_named_and_it_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let default = dir.path().join("rostersync.toml");
        let named = dir.path().join("other.toml");
        assert_eq!(
            config_file(None, &default),
            None,
            "absent: env and defaults alone"
        );
        std::fs::write(&default, "").expect("write");
        assert_eq!(config_file(None, &default), Some(default.clone()));
        assert_eq!(config_file(Some(&named), &default), Some(named.clone()));
        // A directory at that path is not a configuration file.
        let as_dir = dir.path().join("d");
        std::fs::create_dir(&as_dir).expect("mkdir");
        assert_eq!(config_file(None, &as_dir), None);
    }
}
