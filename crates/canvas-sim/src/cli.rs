//! The `canvas-sim` command line: a Canvas REST simulator that follows `canvas-api-facts.md`, quirks included.
//!
//! Prints `listening on http://ADDR` as its first stdout line, then serves until SIGINT/SIGTERM
//! (CONTRACT.md "Binaries"). The binary target is a shim in the rostersync package (`src/bin/canvas-sim.rs`; the
//! root Cargo.toml says why) that calls [`main`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::{FaultOptions, Seed, SimOptions, ThrottleOptions, ThrottleStatus, spawn_at};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ThrottleStatusArg {
    #[value(name = "403")]
    Forbidden,
    #[value(name = "429")]
    TooManyRequests,
}

#[derive(Debug, Parser)]
#[command(
    name = "canvas-sim",
    version,
    about = "A Canvas LMS REST API simulator"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed JSON file (accounts, users, courses, sections, roles, enrollments, observer_links).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// The one admin token accepted.
    #[arg(long, env = "CANVAS_SIM_TOKEN", default_value = crate::DEFAULT_TOKEN, hide_env_values = true)]
    token: String,
    /// Status of a throttled answer.
    #[arg(long, value_enum, default_value = "403")]
    throttle_status: ThrottleStatusArg,
    /// Throttle high-water mark.
    #[arg(long)]
    hwm: Option<f64>,
    /// Throttle leak rate, units per second.
    #[arg(long)]
    outflow: Option<f64>,
    /// Cost charged per finished request.
    #[arg(long)]
    request_cost: Option<f64>,
    /// Cost charged while a request is in flight.
    #[arg(long)]
    up_front_cost: Option<f64>,
    /// Count but never throttle.
    #[arg(long)]
    no_throttle: bool,
    /// Latency added to every request.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Extra latency for POST/PUT/DELETE.
    #[arg(long)]
    write_latency_ms: Option<u64>,
    /// Fraction of requests answered 500/502.
    #[arg(long)]
    error_rate: Option<f64>,
    /// Fraction of requests that hang before answering.
    #[arg(long)]
    timeout_rate: Option<f64>,
    /// Faults JSON file (see `canvas_sim::FaultOptions`); flags override its values.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Seed for the random faults.
    #[arg(long)]
    fault_seed: Option<u64>,
}

fn options(args: &Args) -> Result<SimOptions, String> {
    let seed = match &args.seed {
        Some(path) => Seed::from_file(path).map_err(|e| e.to_string())?,
        None => Seed::default(),
    };
    let mut faults = match &args.faults {
        Some(path) => FaultOptions::from_file(path).map_err(|e| e.to_string())?,
        None => FaultOptions::default(),
    };
    if let Some(ms) = args.latency_ms {
        faults.latency = Duration::from_millis(ms);
    }
    if let Some(ms) = args.write_latency_ms {
        faults.write_latency = Duration::from_millis(ms);
    }
    if let Some(rate) = args.error_rate {
        faults.error_rate = rate;
    }
    if let Some(rate) = args.timeout_rate {
        faults.timeout_rate = rate;
    }
    if let Some(seed) = args.fault_seed {
        faults.fault_seed = seed;
    }
    let defaults = ThrottleOptions::default();
    let throttle = ThrottleOptions {
        hwm: args.hwm.unwrap_or(defaults.hwm),
        outflow: args.outflow.unwrap_or(defaults.outflow),
        request_cost: args.request_cost.unwrap_or(defaults.request_cost),
        up_front_cost: args.up_front_cost.unwrap_or(defaults.up_front_cost),
        enabled: !args.no_throttle,
        status: match args.throttle_status {
            ThrottleStatusArg::Forbidden => ThrottleStatus::Forbidden403,
            ThrottleStatusArg::TooManyRequests => ThrottleStatus::TooManyRequests429,
        },
        ..defaults
    };
    Ok(SimOptions {
        token: args.token.clone(),
        throttle,
        faults,
        seed,
    })
}

pub(crate) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Parses the command line, serves until SIGINT/SIGTERM, and returns the process exit code.
#[tokio::main]
pub async fn main() -> ExitCode {
    let args = Args::parse();
    let opts = match options(&args) {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("canvas-sim: {message}");
            return ExitCode::from(1);
        }
    };
    let sim = match spawn_at(args.listen, opts).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("canvas-sim: {error}");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "listening on {}", sim.base_url())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        eprintln!("canvas-sim: cannot write to stdout");
    }
    wait_for_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}
