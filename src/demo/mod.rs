//! `rostersync demo`: the whole job on bundled defaults, with no configuration at all.
//!
//! It finds a PostgreSQL (or starts a throwaway one), creates a fresh database, starts the Canvas simulator
//! in-process, loads a sample district (the seed into the simulator, the SIS rows into `sis_enrollments`, the
//! employees into `sis_staff`), and runs the real cycle twice: the first shows its plan and applies it, the second
//! shows that nothing is left to do. Everything it started is stopped at the end unless `--keep` is given.
//!
//! This module holds the command's arguments, its error and the order of the steps; `setup` makes the database,
//! the simulator and the configuration, `progress` shows the apply's progress, and `print` writes what a person
//! reads.

mod print;
mod progress;
mod setup;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use canvas_sim::district::{self, ADULT_LEARNER, DEFAULT_RNG_SEED, District, DistrictSpec};
use canvas_sim::{self as sim, SimHandle, SimOptions};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::{LogFormat, LogSettings};
use crate::daemon::Health;
use crate::daemon::server::{ServerState, serve};
use crate::metrics::Metrics;
use crate::pgtemp::{self, PgServer};
use crate::reconcile::{self, CycleContext, CycleOptions, PreparedCycle};
use crate::store::RunStatus;
use crate::store::lock::LeaderLock;

use print::{
    Out, district_summary, per_action, print_audit, print_metrics, print_plan, print_result,
    print_second,
};
use progress::progress;
pub use setup::STAFF_RULE;
use setup::{
    DEMO_REQUEST_COST, STAFF_QUERY, demo_settings, demo_throttle, drop_database, plain_url,
};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// District size: small (~300 students), medium (~5,000), large (~20,000), or a number of students.
    #[arg(long, default_value = "small", value_name = "SIZE", value_parser = DistrictSpec::parse_size)]
    pub size: DistrictSpec,
    /// Leave the database (and a PostgreSQL the demo started) running afterwards, and print how to connect.
    #[arg(long)]
    pub keep: bool,
    /// Seed of the sample-district generator: the same seed gives the same district.
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
    out.say(
        "rostersync demo: the whole job on bundled defaults (built-in Canvas simulator, a sample district, \
         a PostgreSQL it finds or starts)\n",
    );

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

/// Everything between "database created" and cleanup.
async fn demo(args: &DemoArgs, out: Out, db_url: &str) -> Result<()> {
    let generated = Instant::now();
    let spec = args.size.clone().with_rng_seed(args.seed);
    let mut district = District::generate(&spec);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await
        .context("cannot connect to the demo database")?;
    let loaded = district::load_sis(&pool, &district)
        .await
        .context("cannot load the sample district's SIS rows")?;
    pool.close().await;
    let summary = district_summary(&district, &loaded, generated);

    // The simulator gets the seed; the district keeps its counts (its SIS rows are not read again).
    let seed = std::mem::take(&mut district.seed);
    let sim = sim::spawn(SimOptions {
        seed,
        throttle: demo_throttle(),
        ..SimOptions::default()
    })
    .await
    .context("cannot start the Canvas simulator")?;
    out.say(format_args!(
        "{:<14} simulator at {} (admin token {}; Canvas's throttle on, {} units per request)",
        "Canvas",
        sim.base_url(),
        sim::DEFAULT_TOKEN,
        DEMO_REQUEST_COST
    ));
    let result = cycles(args, out, &district, &summary, &sim, db_url).await;
    sim.shutdown().await;
    result
}

async fn cycles(
    args: &DemoArgs,
    out: Out,
    district: &District,
    summary: &str,
    sim: &SimHandle,
    db_url: &str,
) -> Result<()> {
    let settings = demo_settings(&sim.base_url(), db_url, district)?;
    let limits = settings.reconcile.clone();
    let metrics = Arc::new(Metrics::new());
    let ctx = crate::app::connect(settings, metrics.clone())
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
    out.say(format_args!(
        "{:<14} role rule `{STAFF_RULE}`: users of `{STAFF_QUERY}` get {ADULT_LEARNER} instead of StudentEnrollment\n\
         {:<14} reconcile.removal = {}, max_removal_ratio = {}, max_removals = {}",
        "Configuration",
        "",
        "conclude",
        limits.max_removal_ratio,
        limits.max_removals
    ));
    out.say(summary);

    let metrics_url = format!("http://{metrics_addr}/metrics");
    let result = run_cycles(args, out, district, &ctx, sim, db_url, &metrics_url).await;

    stop_server.cancel();
    let _ = server.await;
    ctx.db.close().await;
    ctx.sis.close().await;
    result
}

async fn run_cycles(
    args: &DemoArgs,
    out: Out,
    district: &District,
    ctx: &CycleContext,
    sim: &SimHandle,
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
        print_plan(&prepared, ctx, sim);
        let expected = district.drift.expected_planned();
        if prepared.report.planned == expected
            && prepared.report.details.sis_rows_skipped == district.drift.expected_skipped()
        {
            println!("  (the plan matches the drift injected above, kind for kind)");
        } else {
            println!(
                "  note: the injected drift predicted {}; skipped rows {}",
                per_action(&expected),
                district.drift.expected_skipped()
            );
        }
        println!("\nApplying {} changes ...", apply_count(&prepared));
    }
    let first = prepared.apply(ctx, &opts).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_result(out, &first);

    let second = reconcile::run_cycle(
        ctx,
        &CycleOptions {
            holds_lock: true,
            ..CycleOptions::default()
        },
    )
    .await;
    lock.release().await;
    print_second(out, &second);
    if !out.json {
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
    if second.status != RunStatus::Succeeded || second.planned_total() != 0 {
        bail!(
            "the second cycle ended {} with {} planned changes; the demo should have converged",
            second.status.as_str(),
            second.planned_total()
        );
    }
    Ok(())
}

/// Changes that will reach Canvas: the plan minus removals the guard holds.
fn apply_count(p: &PreparedCycle) -> usize {
    p.decision.to_make().count()
}
