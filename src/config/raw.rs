//! Raw settings: exactly what the file and environment may contain. Unknown keys and wrong types are rejected by
//! serde/config with the key path; defaults live here; the values are checked in [`super::validate`].

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::strict::{
    strict_bool, strict_f64, strict_i64, strict_opt_f64, strict_opt_u32, strict_u64,
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub target: RawTarget,
    pub canvas: RawCanvas,
    pub openedx: RawOpenEdx,
    pub database: RawDatabase,
    pub sis: RawSis,
    pub reconcile: RawReconcile,
    pub schedule: RawSchedule,
    pub limits: RawLimits,
    pub server: RawServer,
    pub log: RawLog,
    pub role_rules: Vec<RawRoleRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCanvas {
    pub base_url: Option<String>,
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    pub account_id: String,
    #[serde(deserialize_with = "strict_i64")]
    pub per_page: i64,
    #[serde(deserialize_with = "strict_f64")]
    pub request_timeout_secs: f64,
    #[serde(deserialize_with = "strict_bool")]
    pub allow_insecure_http: bool,
    #[serde(deserialize_with = "strict_u64")]
    pub max_response_bytes: u64,
    pub read_path: String,
    #[serde(deserialize_with = "strict_i64")]
    pub report_min_courses: i64,
    #[serde(deserialize_with = "strict_f64")]
    pub report_timeout_secs: f64,
}

impl Default for RawCanvas {
    fn default() -> Self {
        Self {
            base_url: None,
            token: None,
            token_file: None,
            account_id: "1".into(),
            per_page: 100,
            request_timeout_secs: 30.0,
            allow_insecure_http: false,
            max_response_bytes: 64 * 1024 * 1024,
            read_path: "auto".into(),
            report_min_courses: 3000,
            report_timeout_secs: 1800.0,
        }
    }
}

/// `[target]` (CONTRACT v2 "a second target"): which LMS the daemon reconciles.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTarget {
    pub kind: String,
}

impl Default for RawTarget {
    fn default() -> Self {
        Self {
            kind: "canvas".into(),
        }
    }
}

/// `[openedx]`: the Open edX LMS and its OAuth2 client credentials (required when `target.kind = "openedx"`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOpenEdx {
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    #[serde(deserialize_with = "strict_f64")]
    pub request_timeout_secs: f64,
    #[serde(deserialize_with = "strict_i64")]
    pub waiting_keepalive_days: i64,
}

impl Default for RawOpenEdx {
    fn default() -> Self {
        Self {
            base_url: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            request_timeout_secs: 30.0,
            waiting_keepalive_days: 30,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    pub url: Option<SecretString>,
    #[serde(deserialize_with = "strict_opt_u32")]
    pub max_connections: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSis {
    pub url: Option<SecretString>,
    pub enrollments_query: String,
    pub user_id_kind: String,
    #[serde(deserialize_with = "strict_bool")]
    pub manage_non_sis_users: bool,
    #[serde(deserialize_with = "strict_f64")]
    pub statement_timeout_secs: f64,
    pub notify_channel: Option<String>,
}

impl Default for RawSis {
    fn default() -> Self {
        Self {
            url: None,
            enrollments_query: DEFAULT_ENROLLMENTS_QUERY.into(),
            user_id_kind: "sis_user_id".into(),
            manage_non_sis_users: false,
            statement_timeout_secs: 300.0,
            notify_channel: None,
        }
    }
}

/// What Canvas's default bucket admits at once from empty (600 ÷ 50 up-front units = 12), less the pacer's margin
/// of half a charge: the pacer starts there and lowers it as `X-Rate-Limit-Remaining` falls (facts §5).
pub const DEFAULT_MAX_IN_FLIGHT: i64 = 11;

pub const DEFAULT_ENROLLMENTS_QUERY: &str =
    "SELECT user_id, course_id, section_id, role, status FROM sis_enrollments";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReconcile {
    pub removal: String,
    #[serde(deserialize_with = "strict_i64")]
    pub max_removals: i64,
    #[serde(deserialize_with = "strict_f64")]
    pub max_removal_ratio: f64,
    #[serde(deserialize_with = "strict_f64")]
    pub max_course_removal_ratio: f64,
    #[serde(deserialize_with = "strict_i64")]
    pub max_additions: i64,
    #[serde(deserialize_with = "strict_f64")]
    pub max_addition_ratio: f64,
    #[serde(deserialize_with = "strict_bool")]
    pub dry_run: bool,
    #[serde(deserialize_with = "strict_f64")]
    pub cycle_deadline_secs: f64,
    pub write_path: String,
    #[serde(deserialize_with = "strict_i64")]
    pub bulk_min_changes: i64,
    #[serde(deserialize_with = "strict_i64")]
    pub removal_grace_cycles: i64,
}

impl Default for RawReconcile {
    fn default() -> Self {
        Self {
            removal: "conclude".into(),
            max_removals: 500,
            max_removal_ratio: 0.10,
            max_course_removal_ratio: 0.9,
            max_additions: 500,
            max_addition_ratio: 0.5,
            dry_run: false,
            cycle_deadline_secs: 14_400.0,
            write_path: "auto".into(),
            bulk_min_changes: 2000,
            removal_grace_cycles: 1,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSchedule {
    pub cron: String,
    #[serde(deserialize_with = "strict_bool")]
    pub run_on_start: bool,
    #[serde(deserialize_with = "strict_f64")]
    pub sis_poll_secs: f64,
    /// `[[schedule.pause]]`: windows in which cycles plan and audit but change nothing.
    pub pause: Vec<RawPauseWindow>,
}

impl Default for RawSchedule {
    fn default() -> Self {
        Self {
            cron: "0 */15 * * * *".into(),
            run_on_start: true,
            sis_poll_secs: 60.0,
            pause: Vec::new(),
        }
    }
}

/// One `[[schedule.pause]]` window: TIME strings (RFC 3339 or a date), checked in [`super::validate`].
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPauseWindow {
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    #[serde(deserialize_with = "strict_opt_f64")]
    pub requests_per_second: Option<f64>,
    #[serde(deserialize_with = "strict_i64")]
    pub max_in_flight: i64,
    #[serde(deserialize_with = "strict_i64")]
    pub max_retries: i64,
    #[serde(deserialize_with = "strict_i64")]
    pub cycle_retry_budget: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            requests_per_second: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_retries: 5,
            cycle_retry_budget: 200,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9464".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub level: String,
    pub otlp_endpoint: Option<String>,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "auto".into(),
            level: "info".into(),
            otlp_endpoint: None,
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRoleRule {
    pub name: String,
    pub users_query: String,
    pub from_role: String,
    pub to_role: String,
}
