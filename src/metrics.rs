//! Every Prometheus metric the daemon exposes, in one place (CONTRACT.md "Metrics"). One [`Metrics`] value is built
//! at start-up and passed down; nothing is global. Labels are bounded: never a user, course or enrollment id.
//!
//! Besides the `rostersync_*` families: the standard `process_*` ones ([`process`]), `rostersync_build_info`, and
//! every `_total` family whose label values are known in advance present at 0 from the start, so that
//! `increase()` sees the first failure after a restart (no `unless ... offset` trick in the alerts).

mod exposition;
mod process;

pub use exposition::{CLASSIC_CONTENT_TYPE, Format, OPENMETRICS_CONTENT_TYPE};
pub use process::{ProcStat, ProcessCollector, parse_stat};

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::domain::Action;
use crate::store::{AuditOutcome, RunStatus};

/// The `reason` values of `rostersync_sis_rows_skipped_total`: `SkipReason::label` (rows that cannot be
/// understood) and the reasons a row names what Canvas lacks (`reconcile/note.rs`).
pub const SKIP_REASONS: [&str; 8] = [
    "bad_user_id",
    "bad_course_id",
    "bad_section_id",
    "bad_role",
    "bad_status",
    "course_not_found",
    "section_not_found",
    "user_not_found",
];

/// The `reason` values of `rostersync_canvas_retries_total` (`CanvasError::class`).
pub const RETRY_REASONS: [&str; 4] = ["throttled", "server_error", "timeout", "network"];

/// The `path` values of `rostersync_path_fallbacks_total`.
pub const FALLBACK_PATHS: [&str; 2] = ["sis_import", "report"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: String,
}

/// One series at a time: the run an operator has to review. Not a per-object id, so it stays bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub run_id: String,
}

pub struct Metrics {
    registry: Registry,
    pub cycles: Family<OutcomeLabels, Counter>,
    pub changes: Family<ChangeLabels, Counter>,
    pub canvas_requests: Family<RequestLabels, Counter>,
    pub canvas_retries: Family<ReasonLabels, Counter>,
    pub cycle_duration: Histogram,
    pub last_success: Gauge<f64, AtomicU64>,
    pub safety_trips: Counter,
    pub safety_tripped: Gauge,
    pub tripped_run: Family<RunLabels, Gauge>,
    pub held_changes: Gauge,
    pub leader: Gauge,
    pub skipped_ticks: Counter,
    pub skipped_rows: Family<ReasonLabels, Counter>,
    pub users_not_found: Gauge,
    pub unresolved_planned: Gauge,
    pub in_flight_limit: Gauge,
    pub path_fallbacks: Family<PathLabels, Counter>,
    pub paused: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let cycles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rostersync_cycles",
            "Reconcile cycles by outcome (succeeded, partial, failed, safety_tripped)",
            cycles.clone(),
        );
        let changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "rostersync_changes",
            "Changes by action and final outcome",
            changes.clone(),
        );
        let canvas_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "rostersync_canvas_requests",
            "Requests to the target (Canvas, or Open edX with target.kind = openedx) by method and HTTP status (or timeout/error), retries included",
            canvas_requests.clone(),
        );
        let canvas_retries = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rostersync_canvas_retries",
            "Requests to the target retried, by reason (throttled, server_error, timeout, network)",
            canvas_retries.clone(),
        );
        let cycle_duration = Histogram::new([
            1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
        ]);
        registry.register(
            "rostersync_cycle_duration_seconds",
            "Wall time of reconcile cycles",
            cycle_duration.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "rostersync_last_success_timestamp_seconds",
            "Unix time of the last cycle that ended succeeded (or partial: it ran to the end)",
            last_success.clone(),
        );
        let safety_trips = Counter::default();
        registry.register(
            "rostersync_safety_trips",
            "Cycles in which the removal safety guard tripped",
            safety_trips.clone(),
        );
        let safety_tripped = Gauge::default();
        registry.register(
            "rostersync_safety_tripped",
            "1 while the last cycle's safety guard was tripped (stays until a cycle applies without tripping)",
            safety_tripped.clone(),
        );
        let tripped_run = Family::<RunLabels, Gauge>::default();
        registry.register(
            "rostersync_tripped_run_info",
            "1 for the latest tripped run (the one to review and `rostersync apply`); absent when nothing is held",
            tripped_run.clone(),
        );
        let held_changes = Gauge::default();
        registry.register(
            "rostersync_held_changes",
            "Changes the brake held in the last cycle (made by `rostersync apply` of that run)",
            held_changes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "rostersync_leader",
            "1 on the replica that holds the leader lock and applies changes",
            leader.clone(),
        );
        let skipped_ticks = Counter::default();
        registry.register(
            "rostersync_skipped_ticks",
            "Schedule ticks skipped because the previous cycle was still running",
            skipped_ticks.clone(),
        );
        let skipped_rows = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rostersync_sis_rows_skipped",
            "SIS rows skipped, by reason class",
            skipped_rows.clone(),
        );
        let users_not_found = Gauge::default();
        registry.register(
            "rostersync_users_not_found",
            "SIS rows of the last cycle whose user does not exist in Canvas yet (retried every cycle)",
            users_not_found.clone(),
        );
        let unresolved_planned = Gauge::default();
        registry.register(
            "rostersync_unresolved_planned_changes",
            "Audit rows left `planned` by an interrupted earlier run, as seen by the last cycle",
            unresolved_planned.clone(),
        );
        let in_flight_limit = Gauge::default();
        registry.register(
            "rostersync_canvas_in_flight_limit",
            "Current adaptive limit on concurrent Canvas requests",
            in_flight_limit.clone(),
        );
        let path_fallbacks = Family::<PathLabels, Counter>::default();
        registry.register(
            "rostersync_path_fallbacks",
            "Times Canvas refused a bulk path (401/403/404) and the cycle took the per-change or per-course one, by \
             path (sis_import, report)",
            path_fallbacks.clone(),
        );
        let paused = Gauge::default();
        registry.register(
            "rostersync_paused",
            "1 while rostersync is paused (`rostersync pause`, or a [[schedule.pause]] window): cycles plan and audit \
             but change nothing. Set at the start of each cycle",
            paused.clone(),
        );
        registry.register(
            "rostersync_build",
            "The version and git commit this binary was built from (always 1)",
            Info::new(BuildLabels {
                version: crate::VERSION.to_owned(),
                commit: crate::GIT_COMMIT.to_owned(),
            }),
        );
        registry.register_collector(Box::new(ProcessCollector::default()));
        let metrics = Self {
            registry,
            cycles,
            changes,
            canvas_requests,
            canvas_retries,
            cycle_duration,
            last_success,
            safety_trips,
            safety_tripped,
            tripped_run,
            held_changes,
            leader,
            skipped_ticks,
            skipped_rows,
            users_not_found,
            unresolved_planned,
            in_flight_limit,
            path_fallbacks,
            paused,
        };
        metrics.create_known_series();
        metrics
    }

    /// Every series whose label values are known in advance, at 0: a counter that appears only with its first
    /// increment makes `increase()` miss that increment (the series had no earlier sample to compare with).
    /// `rostersync_canvas_requests_total{method,status}` is left out: its status values are Canvas's to choose.
    fn create_known_series(&self) {
        // `get_or_create` returns a read guard on the family: dropped at once, the series stays.
        for status in [
            RunStatus::Succeeded,
            RunStatus::Partial,
            RunStatus::Failed,
            RunStatus::SafetyTripped,
        ] {
            drop(self.cycles.get_or_create(&OutcomeLabels {
                outcome: status.as_str().to_owned(),
            }));
        }
        for action in Action::ALL {
            for outcome in AuditOutcome::ALL {
                drop(self.changes.get_or_create(&ChangeLabels {
                    action: action.as_str().to_owned(),
                    outcome: outcome.as_str().to_owned(),
                }));
            }
        }
        for reason in RETRY_REASONS {
            drop(self.canvas_retries.get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            }));
        }
        for reason in SKIP_REASONS {
            drop(self.skipped_rows.get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            }));
        }
        for path in FALLBACK_PATHS {
            drop(self.path_fallbacks.get_or_create(&PathLabels {
                path: path.to_owned(),
            }));
        }
    }

    /// OpenMetrics text, as served on `/metrics` by default.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The text in the format a scraper asked for ([`Format::negotiate`]).
    pub fn encode_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.encode(),
            Format::Classic => exposition::to_classic(&self.encode()),
        }
    }

    pub fn count_request(&self, method: &str, status: &str) {
        self.canvas_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn count_retry(&self, reason: &str) {
        self.canvas_retries
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Canvas refused `path` (`sis_import` or `report`) and the cycle fell back to the API or the listings.
    pub fn count_path_fallback(&self, path: &str) {
        self.path_fallbacks
            .get_or_create(&PathLabels {
                path: path.to_owned(),
            })
            .inc();
    }

    pub fn count_change(&self, action: &str, outcome: &str) {
        self.changes
            .get_or_create(&ChangeLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
