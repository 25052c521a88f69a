//! Logging and tracing: tracing to stderr, JSON by default and human-readable text on a terminal (or as
//! configured); `RUST_LOG` overrides `log.level`. Library chatter (sqlx statements, the scheduler's INFO lines) is
//! kept at warn. OpenTelemetry spans go out over OTLP/HTTP only when an endpoint is configured (`log.otlp_endpoint`
//! or `OTEL_EXPORTER_OTLP_ENDPOINT`), so a daemon without a collector logs no export errors.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

const QUIET_CRATES: &str = "sqlx=warn,tokio_cron_scheduler=warn,hyper=warn,hyper_util=warn,reqwest=warn,h2=warn,rustls=warn,opentelemetry=warn";

fn filter(level: &str) -> EnvFilter {
    let directives = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => format!("{level},{QUIET_CRATES}"),
    };
    EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET_CRATES}")))
}

/// Flushes and stops the OpenTelemetry exporter when dropped (at the end of `main`).
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

fn otlp_provider(settings: &LogSettings) -> Option<SdkTracerProvider> {
    let from_env = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let configured = settings.otlp_endpoint.as_deref();
    if configured.is_none() && from_env.is_none() {
        return None;
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = configured {
        // An explicit endpoint is used as given by the exporter; the environment form gets /v1/traces appended.
        let endpoint = endpoint.trim_end_matches('/');
        let full = if endpoint.ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{endpoint}/v1/traces")
        };
        builder = builder.with_endpoint(full);
    }
    match builder.build() {
        Ok(exporter) => Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("rostersync")
                        .build(),
                )
                .build(),
        ),
        Err(e) => {
            eprintln!("warning: OpenTelemetry export disabled: {e}");
            None
        }
    }
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(settings: &LogSettings) -> TelemetryGuard {
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed()
    };
    let provider = otlp_provider(settings);
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("rostersync")));
    let installed = tracing_subscriber::registry()
        .with(filter(&settings.level))
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    TelemetryGuard {
        provider: provider.filter(|_| installed),
    }
}

/// Logging for commands that run without a configuration (the demo): warnings only unless `RUST_LOG` says more.
pub fn init_default() -> TelemetryGuard {
    init(&LogSettings {
        format: LogFormat::Auto,
        level: "warn".into(),
        otlp_endpoint: None,
    })
}
