//! The `rostersync` command line (CONTRACT.md "Commands"): parse, run, and map the outcome to an exit code.
//! Errors are printed once, as one readable line on stderr; they never carry the Canvas token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::reconcile::{CycleOptions, CycleReport, run_cycle};
use crate::store::lock::LeaderLock;
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
        /// The safety guard override: apply removals even though they exceed reconcile.max_removals or the
        /// removal ratios, for this one cycle. Look at a --dry-run first.
        #[arg(long)]
        accept_removals: bool,
    },
    /// Create or upgrade rostersync's own schema.
    Migrate,
    /// Validate the configuration, reach both databases and Canvas, and print what was checked.
    Check,
    /// The whole job on bundled defaults: built-in Canvas simulator, a sample district, a PostgreSQL it finds or starts.
    Demo(crate::demo::DemoArgs),
}

/// Exit code for fatal errors (configuration, database, Canvas auth).
pub const EXIT_FATAL: u8 = 1;

pub async fn run(cli: Cli) -> ExitCode {
    // The demo needs no configuration: it brings its own.
    if let Command::Demo(args) = cli.command {
        if let Some(path) = &cli.config {
            eprintln!(
                "note: the demo runs on bundled defaults and ignores the configuration `{}`",
                path.display()
            );
        }
        return crate::demo::run(args).await;
    }
    let Some(settings) = load(&cli.config) else {
        return ExitCode::from(EXIT_FATAL);
    };
    let _telemetry = telemetry::init(&settings.log);
    match cli.command {
        Command::Reconcile {
            dry_run,
            json,
            accept_removals,
        } => reconcile(settings, dry_run, json, accept_removals).await,
        Command::Migrate => migrate(settings).await,
        Command::Check => crate::check::run(settings).await,
        Command::Run => crate::daemon::run(settings).await,
        // Handled above; kept total without a panic path.
        Command::Demo(args) => crate::demo::run(args).await,
    }
}

fn load(path: &Option<PathBuf>) -> Option<Settings> {
    match Settings::load(path.as_deref()) {
        Ok(s) => {
            if let Some(warning) = s.canvas.token.permission_warning() {
                eprintln!("warning: {warning}");
            }
            Some(s)
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

async fn migrate(settings: Settings) -> ExitCode {
    let result = async {
        let pool = crate::store::connect("rostersync", &settings.database.url, 2).await?;
        crate::store::migrate(&pool).await
    }
    .await;
    match result {
        Ok(()) => {
            println!(
                "schema rostersync is up to date in {}",
                settings.database.url
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

async fn reconcile(
    settings: Settings,
    dry_run: bool,
    json: bool,
    accept_removals: bool,
) -> ExitCode {
    let db_url = settings.database.url.clone();
    let ctx = match app::connect(settings, Arc::new(Metrics::new())).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let dry_run = dry_run || ctx.settings.reconcile.dry_run;
    // One writer at a time: the daemon and a manual reconcile must not apply the same plan twice.
    // A process killed a moment ago still holds the lock until the server notices its connection is gone
    // (within a second), so wait a little before concluding another process is working.
    let mut lock = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match LeaderLock::try_acquire(&db_url).await {
            Ok(Some(l)) => {
                lock = Some(l);
                break;
            }
            Ok(None) if dry_run || std::time::Instant::now() >= deadline => break,
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FATAL);
            }
        }
    }
    if lock.is_none() && !dry_run {
        eprintln!(
            "error: another rostersync process holds the leader lock on {db_url} and is applying changes; \
             try again when it is done, or use --dry-run"
        );
        return ExitCode::from(EXIT_FATAL);
    }
    let opts = CycleOptions {
        dry_run,
        holds_lock: lock.is_some(),
        cancel: lock
            .as_ref()
            .map(|l| l.lost().child_token())
            .unwrap_or_default(),
        accept_removals,
        ..CycleOptions::default()
    };
    let report = run_cycle(&ctx, &opts).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    print_report(&report, json);
    ExitCode::from(report.exit_code() as u8)
}

pub fn print_report(report: &CycleReport, json: bool) {
    if json {
        match serde_json::to_string(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode the report: {e}"),
        }
        return;
    }
    let planned: Vec<String> = report
        .planned
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect();
    println!(
        "run {} {}{} in {:.1} s: planned {}; applied {}, failed {}, skipped {}; {} Canvas API calls",
        report.run_id,
        report.status.as_str(),
        if report.dry_run { " (dry run)" } else { "" },
        report.duration_ms as f64 / 1000.0,
        planned.join(", "),
        report.applied,
        report.failed,
        report.skipped,
        report.api_calls
    );
    if let Some(reason) = &report.safety.reason {
        println!("safety guard tripped: {reason}");
    }
    if let Some(error) = &report.error {
        println!("error: {error}");
    }
}
