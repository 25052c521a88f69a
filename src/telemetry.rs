//! Logging: tracing to stderr, JSON by default and human-readable text on a terminal (or as configured).
//! `RUST_LOG` overrides `log.level`. Library chatter (sqlx statements, the scheduler's INFO lines) is kept at warn.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

const QUIET_CRATES: &str = "sqlx=warn,tokio_cron_scheduler=warn,hyper=warn,hyper_util=warn,reqwest=warn,h2=warn,rustls=warn";

fn filter(level: &str) -> EnvFilter {
    let directives = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => format!("{level},{QUIET_CRATES}"),
    };
    EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET_CRATES}")))
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(settings: &LogSettings) {
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter(&settings.level));
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    drop(result);
}

/// Logging for commands that run before (or without) a configuration: text on a terminal, JSON otherwise.
pub fn init_default() {
    init(&LogSettings {
        format: LogFormat::Auto,
        level: "info".into(),
        otlp_endpoint: None,
    });
}
