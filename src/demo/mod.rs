//! `rostersync demo`: the whole job on bundled defaults, with no configuration at all.
//!
//! It finds a PostgreSQL (or starts a throwaway one), creates a fresh database, starts a simulator in-process with a
//! generated sample, and runs the real cycle twice: the first shows its plan and applies it, the second shows that
//! nothing is left to do. Everything it started is stopped at the end unless `--keep` is given. The sample is a
//! school district in the Canvas simulator (`--target canvas`, the default: the seed into the simulator, the SIS
//! rows into `sis_enrollments`, the employees into `sis_staff`), or a university in openedx-sim (`--target openedx`:
//! programs and course runs, the SIS rows with `curriculum_uuid`).
//!
//! This module holds the command's arguments, its error and the order of the steps both targets share (database,
//! metrics endpoint, the two cycles, cleanup); `canvas` and `openedx` make each target's sample, simulator and
//! configuration; `setup` the database and the configurations, `progress` shows the apply's progress, and `print`
//! writes what a person reads.

mod canvas;
mod openedx;
mod print;
mod progress;
mod setup;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use canvas_sim::district::{DEFAULT_RNG_SEED, DistrictSpec};
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{LogFormat, LogSettings, Settings};
use crate::daemon::Health;
use crate::daemon::server::{ServerState, serve};
use crate::metrics::Metrics;
use crate::pgtemp::{self, PgServer};
use crate::reconcile::{self, CycleContext, CycleOptions, PreparedCycle};
use crate::store::RunStatus;
use crate::store::lock::LeaderLock;

use print::{Out, print_audit, print_metrics, print_result, print_second};
use progress::progress;
pub use setup::STAFF_RULE;
use setup::{drop_database, plain_url};

/// The LMS the demo reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoTarget {
    /// A sample school district in the bundled Canvas simulator.
    Canvas,
    /// A sample university's program enrollments in the bundled Open edX simulator (openedx-sim).
    Openedx,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The LMS: canvas (a sample district) or openedx (a sample university's programs).
    #[arg(long, value_enum, default_value = "canvas", value_name = "TARGET")]
    pub target: DemoTarget,
    /// Sample size: small (~300 students or learners), medium (~5,000), large (~20,000), or a number of them.
    #[arg(long, default_value = "small", value_name = "SIZE", value_parser = DistrictSpec::parse_size)]
    pub size: DistrictSpec,
    /// Leave the database (and a PostgreSQL the demo started) running afterwards, and print how to connect.
    #[arg(long)]
    pub keep: bool,
    /// Seed of the sample generator: the same seed gives the same district (or university).
    #[arg(long, default_value_t = DEFAULT_RNG_SEED, value_name = "U64")]
    pub seed: u64,
    /// Print the two cycle reports as JSON lines instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Stop at the plan: run the first cycle as a dry run and print it as `reconcile --dry-run` does, the way an
    /// operator reviews a plan before `apply`.
    #[arg(long)]
    pub dry_run: bool,
}

/// Logging for the demo: warnings only, as text on stderr, unless `RUST_LOG` asks for more.
pub fn init_quiet() {
    crate::telemetry::init(&LogSettings {
        format: LogFormat::Text,
        level: "warn".into(),
        otlp_endpoint: None,
    });
}

/// Why the demo did not finish: its PostgreSQL could not be set up, or the run failed or did not converge.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Postgres(#[from] pgtemp::PgError),
    #[error("cannot create database {name} on the {server}: {source}")]
    CreateDatabase {
        name: String,
        server: String,
        source: pgtemp::PgError,
    },
    /// The whole chain, on one line.
    #[error("{0:#}")]
    Run(anyhow::Error),
}

/// Runs the demo. `Ok` when both cycles ran and the second had nothing to do; an error when something could not
/// be set up or the run did not converge (the message says which).
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    init_quiet();
    let started = Instant::now();
    let out = Out { json: args.json };
    out.say(match args.target {
        DemoTarget::Canvas => {
            "rostersync demo: the whole job on bundled defaults (built-in Canvas simulator, a sample district, \
             a PostgreSQL it finds or starts)\n"
        }
        DemoTarget::Openedx => {
            "rostersync demo --target openedx: the whole job on bundled defaults (built-in Open edX simulator, a \
             sample university's program enrollments, a PostgreSQL it finds or starts)\n"
        }
    });

    let server = pgtemp::find_or_start().await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("rostersync_demo_{}", &suffix[..8]);
    let db_url = match server.create_database(&db_name).await {
        Ok(url) => url,
        Err(source) => {
            return Err(DemoError::CreateDatabase {
                server: server.describe(),
                name: db_name,
                source,
            });
        }
    };
    out.say(format_args!(
        "{:<14} {}, database {db_name}",
        "PostgreSQL",
        server.describe()
    ));

    // Ctrl-C still cleans up: the demo's work is dropped, then the database and cluster go as usual.
    let result = tokio::select! {
        result = demo(&args, out, &db_url) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; cleaning up")),
    };

    let link = plain_url(&db_url);
    if args.keep {
        out.say(format_args!(
            "\nKept: database {db_name} stays; connect with  psql '{link}'"
        ));
        match server {
            PgServer::Temp(temp) => {
                let stop = temp.keep();
                out.say(format_args!(
                    "The throwaway PostgreSQL keeps running; stop and remove it with:\n  {stop}"
                ));
            }
            PgServer::Existing { .. } => {}
        }
    } else {
        if let PgServer::Existing { .. } = &server
            && let Err(e) = drop_database(&server, &db_name).await
        {
            eprintln!("warning: could not drop the demo database {db_name}: {e}");
        }
        drop(server);
    }

    match result {
        Ok(()) => {
            out.say(format_args!(
                "\nDemo finished in {:.1} s.",
                started.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Err(e) => Err(DemoError::Run(e)),
    }
}

/// Everything between "database created" and cleanup: the target's sample, simulator and cycles.
async fn demo(args: &DemoArgs, out: Out, db_url: &str) -> Result<()> {
    match args.target {
        DemoTarget::Canvas => canvas::demo(args, out, db_url).await,
        DemoTarget::Openedx => openedx::demo(args, out, db_url).await,
    }
}

/// What a target's demo hands to the shared steps: its settings, the lines that introduce it, and how its plan is
/// shown (with whether it matches the drift the sample injected).
struct Sample<'a> {
    settings: Settings,
    /// Printed after the metrics endpoint: the configuration and the sample's summary.
    intro: String,
    show_plan: &'a (dyn Fn(&PreparedCycle, &CycleContext) + Sync),
    /// Printed after the second cycle: what the LMS holds now, when the target has something to show.
    show_after: Option<&'a (dyn Fn() + Sync)>,
}

/// Connects, serves /metrics while the cycles run, runs them, and closes everything again.
async fn cycles(args: &DemoArgs, out: Out, sample: Sample<'_>, db_url: &str) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let ctx = crate::app::connect(sample.settings.clone(), metrics.clone())
        .await
        .context("cannot prepare the demo database")?;

    // /metrics (and /healthz, /readyz) while the demo runs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a port for /metrics")?;
    let metrics_addr = listener.local_addr()?;
    let stop_server = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        ServerState {
            metrics,
            db: ctx.db.clone(),
            sis: ctx.sis.clone(),
            health: Arc::new(Health::accepted()),
        },
        stop_server.clone(),
    ));
    out.say(format_args!(
        "{:<14} http://{metrics_addr}/metrics (served while the demo runs)",
        "Metrics"
    ));
    out.say(&sample.intro);

    let metrics_url = format!("http://{metrics_addr}/metrics");
    let result = run_cycles(args, out, &sample, &ctx, db_url, &metrics_url).await;

    stop_server.cancel();
    let _ = server.await;
    ctx.db.close().await;
    ctx.sis.close().await;
    result
}

async fn run_cycles(
    args: &DemoArgs,
    out: Out,
    sample: &Sample<'_>,
    ctx: &CycleContext,
    db_url: &str,
    metrics_url: &str,
) -> Result<()> {
    let lock = LeaderLock::try_acquire(&ctx.settings.database.url)
        .await
        .context("cannot take the leader lock")?
        .context("another process holds the leader lock on the demo database")?;

    if args.dry_run {
        let opts = CycleOptions {
            dry_run: true,
            holds_lock: true,
            ..CycleOptions::default()
        };
        let report = reconcile::run_cycle(ctx, &opts).await;
        lock.release().await;
        crate::cli::print_report(&report, out.json);
        return Ok(());
    }
    let (progress, bar) = progress(out);
    let opts = CycleOptions {
        holds_lock: true,
        progress,
        ..CycleOptions::default()
    };
    let prepared = match reconcile::prepare(ctx, &opts).await {
        Ok(p) => p,
        Err(report) => {
            lock.release().await;
            bail!(
                "the first cycle failed before planning: {}",
                report.error.unwrap_or_default()
            );
        }
    };
    if !out.json {
        (sample.show_plan)(&prepared, ctx);
        println!("\nApplying {} changes ...", apply_count(&prepared));
    }
    let first = prepared.apply(ctx, &opts).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let target = ctx.target.kind();
    print_result(out, &first, target);

    let second = reconcile::run_cycle(
        ctx,
        &CycleOptions {
            holds_lock: true,
            ..CycleOptions::default()
        },
    )
    .await;
    lock.release().await;
    print_second(out, &second, target);
    if !out.json {
        if let Some(show_after) = sample.show_after {
            show_after();
        }
        print_metrics(metrics_url).await;
    }
    if out.json {
        for report in [&first, &second] {
            println!("{}", serde_json::to_string(report)?);
        }
    }
    print_audit(out, db_url, &first, &second, args.keep);

    if first.status != RunStatus::Succeeded {
        bail!(
            "the first cycle ended {}{}",
            first.status.as_str(),
            first
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let writes = second.details.requests.writes;
    if second.status != RunStatus::Succeeded || second.planned_total() != 0 || writes != 0 {
        bail!(
            "the second cycle ended {} with {} planned changes and {writes} writes; the demo should have converged",
            second.status.as_str(),
            second.planned_total(),
        );
    }
    Ok(())
}

/// Changes that will reach the LMS: the plan minus removals the guard holds, plus a target's own writes (Open
/// edX's keep-alives).
fn apply_count(p: &PreparedCycle) -> usize {
    p.decision.to_make().count() + crate::target::extra_changes(&p.snapshot, &p.decision).len()
}
