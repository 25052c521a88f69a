//! The `openedx-sim` command line (CONTRACT v2 "a second target"): `openedx-sim --listen 127.0.0.1:0 --seed FILE`
//! prints `listening on http://ADDR` as its first stdout line, then serves until SIGINT/SIGTERM. The binary is a shim
//! in the rostersync package (`src/bin/openedx-sim.rs`), like canvas-sim's.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use super::{OpenEdxOptions, OpenEdxSeed, ReplicaLag, spawn_at};
use crate::FaultOptions;

#[derive(Debug, Parser)]
#[command(
    name = "openedx-sim",
    about = "An Open edX program-enrollment API simulator"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed JSON file (oauth_clients, users, programs, program_enrollments, program_course_enrollments).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Latency added to every request.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Extra latency for POST/PUT/PATCH/DELETE.
    #[arg(long)]
    write_latency_ms: Option<u64>,
    /// Fraction of requests answered 500/502 (nothing applied).
    #[arg(long)]
    error_rate: Option<f64>,
    /// Fraction of requests that hang before answering.
    #[arg(long)]
    timeout_rate: Option<f64>,
    /// Faults JSON file (canvas-sim's format, plus `"replica_lag": {"ms": N, "reads": N}`); flags override it.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Seed for the random faults.
    #[arg(long)]
    fault_seed: Option<u64>,
    /// A write stays invisible to reads for this long (the read replica lags).
    #[arg(long)]
    replica_lag_ms: Option<u64>,
    /// A write stays invisible to this many reads.
    #[arg(long)]
    replica_lag_reads: Option<u32>,
    /// Lifetime of issued JWTs (`expires_in`).
    #[arg(long, default_value_t = 3600)]
    jwt_expires_in_secs: u64,
    /// Token requests per minute per client IP (0 = unlimited).
    #[arg(long, default_value_t = 120)]
    token_rate_per_minute: u32,
    /// Waiting enrollments unmodified this many days are deleted (0 = never).
    #[arg(long, default_value_t = 60)]
    waiting_expiry_days: u64,
    /// `Retry-After` seconds of an injected 429.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
}

#[derive(Debug, Default, Deserialize)]
struct FaultsFileExtras {
    #[serde(default)]
    replica_lag: Option<ReplicaLag>,
}

fn replica_lag_in(path: &Path) -> Result<Option<ReplicaLag>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read faults file {}: {e}", path.display()))?;
    let extras: FaultsFileExtras = serde_json::from_str(&text)
        .map_err(|e| format!("faults file {} is not valid: {e}", path.display()))?;
    Ok(extras.replica_lag)
}

fn options(args: &Args) -> Result<OpenEdxOptions, String> {
    let seed = match &args.seed {
        Some(path) => OpenEdxSeed::from_file(path).map_err(|e| e.to_string())?,
        None => OpenEdxSeed::default(),
    };
    let (mut faults, mut replica_lag) = match &args.faults {
        Some(path) => (
            FaultOptions::from_file(path).map_err(|e| e.to_string())?,
            replica_lag_in(path)?.unwrap_or_default(),
        ),
        None => (FaultOptions::default(), ReplicaLag::default()),
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
    if let Some(ms) = args.replica_lag_ms {
        replica_lag.after = Duration::from_millis(ms);
    }
    if let Some(reads) = args.replica_lag_reads {
        replica_lag.reads = reads;
    }
    Ok(OpenEdxOptions {
        seed,
        faults,
        replica_lag,
        jwt_expires_in: Duration::from_secs(args.jwt_expires_in_secs),
        token_requests_per_minute: (args.token_rate_per_minute > 0)
            .then_some(args.token_rate_per_minute),
        waiting_expiry: (args.waiting_expiry_days > 0)
            .then(|| Duration::from_secs(args.waiting_expiry_days * 24 * 3600)),
        throttle_retry_after: Duration::from_secs(args.retry_after_secs),
        ..OpenEdxOptions::default()
    })
}

/// Parses the command line, serves until SIGINT/SIGTERM, and returns the process exit code.
#[tokio::main]
pub async fn main() -> ExitCode {
    let args = Args::parse();
    let opts = match options(&args) {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("openedx-sim: {message}");
            return ExitCode::from(1);
        }
    };
    let sim = match spawn_at(args.listen, opts).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("openedx-sim: {error}");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "listening on {}", sim.base_url())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        eprintln!("openedx-sim: cannot write to stdout");
    }
    crate::cli::wait_for_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_options() {
        let args = Args::parse_from([
            "openedx-sim",
            "--replica-lag-reads",
            "2",
            "--token-rate-per-minute",
            "0",
            "--waiting-expiry-days",
            "0",
            "--latency-ms",
            "5",
        ]);
        let opts = options(&args).expect("options");
        assert_eq!(opts.replica_lag, ReplicaLag::reads(2));
        assert_eq!(opts.token_requests_per_minute, None);
        assert_eq!(opts.waiting_expiry, None);
        assert_eq!(opts.faults.latency, Duration::from_millis(5));
        assert_eq!(opts.jwt_expires_in, Duration::from_secs(3600));
    }
}
