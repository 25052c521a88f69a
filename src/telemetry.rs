//! Logging and tracing: tracing to stderr, JSON by default (one object per line, the message and the event's
//! fields at the top level), human-readable text on a terminal, and under systemd (stderr is the journal stream
//! named by `JOURNAL_STREAM`) plain text without colours or timestamps, each line prefixed with its syslog priority
//! (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug) so that `journalctl -p warning` works; `log.format` =
//! `json` or `text` overrides the choice. `RUST_LOG` overrides `log.level`. Library chatter (sqlx statements, the scheduler's INFO lines) is
//! kept at warn. OpenTelemetry spans go out over OTLP/HTTP only when an endpoint is configured (`log.otlp_endpoint`
//! or `OTEL_EXPORTER_OTLP_ENDPOINT`), so a daemon without a collector logs no export errors.

use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    Json,
    Text {
        ansi: bool,
    },
    /// systemd's journal stream: text with `<N>` syslog priority prefixes, no colours, no timestamps.
    Journal,
}

impl LogOutput {
    /// `log.format` decides when it is `json` or `text`; `auto` picks the journal format when stderr is the
    /// journal stream, text on a terminal, JSON otherwise.
    pub fn choose(format: LogFormat) -> LogOutput {
        let terminal = std::io::stderr().is_terminal();
        match format {
            LogFormat::Json => LogOutput::Json,
            LogFormat::Text => LogOutput::Text { ansi: terminal },
            LogFormat::Auto if stderr_is_journal() => LogOutput::Journal,
            LogFormat::Auto if terminal => LogOutput::Text { ansi: true },
            LogFormat::Auto => LogOutput::Json,
        }
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stdout/stderr go to the journal; it counts only if
/// stderr is still that stream (a child whose stderr was redirected inherits the variable).
pub fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.trim().parse::<u64>(), ino.trim().parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on fd 2 writes into the zeroed struct it is given.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut stat) } != 0 {
        return false;
    }
    stat.st_dev as u64 == dev && stat.st_ino as u64 == ino
}

/// The syslog priority of a level, as the journal reads it from a `<N>` line prefix (sd-daemon(3)).
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes each event with `<N>`, its syslog priority, then formats it as the inner format does.
struct JournalPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(settings: &LogSettings) -> TelemetryGuard {
    let fmt = match LogOutput::choose(settings.format) {
        // `flatten_event`: `message` and the event's fields at the top level, where log shippers (Loki, Elastic,
        // Cloud Logging) look for them, rather than under `fields`.
        LogOutput::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogOutput::Text { ansi } => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogOutput::Journal => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(false)
            .event_format(JournalPriority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false)
                    .with_target(false),
            ))
            .with_writer(std::io::stderr)
            .boxed(),
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
