//! Typed settings: a TOML file and/or `ROSTERSYNC__SECTION__KEY` variables, defaults, and validation at load.
//!
//! Loading happens in two steps so that every error names the key: serde reads [`RawSettings`] (unknown keys and
//! wrong types are rejected by serde/config, with the key path), then [`RawSettings::validate`] checks the values
//! and produces [`Settings`], whose fields are already the domain types the rest of the daemon uses.

mod error;
mod raw;
mod secret;
mod strict;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use crate::domain::{RemovalPolicy, UserIdKind};
pub use error::ConfigError;
use error::load_error;
pub use raw::{
    DEFAULT_ENROLLMENTS_QUERY, RawCanvas, RawDatabase, RawLimits, RawLog, RawOpenEdx,
    RawPauseWindow, RawReconcile, RawRoleRule, RawSchedule, RawServer, RawSettings, RawSis,
    RawTarget,
};
pub use secret::{ClientSecretSource, DatabaseUrl, TokenSource};
pub use validate::{normalise_base_url, validate_cron};

/// The environment prefix: `ROSTERSYNC__CANVAS__TOKEN` sets `canvas.token`.
pub const ENV_PREFIX: &str = "ROSTERSYNC";

/// How live enrollments are read (facts §9): one listing per managed course, or the account's provisioning report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadPath {
    /// The report when there are at least `canvas.report_min_courses` managed courses (and users are matched by
    /// `sis_user_id`, which the report carries), else per-course listings.
    #[default]
    Auto,
    Courses,
    Report,
}

/// How changes are written (facts §8): one API call per change, or one SIS import of exactly the delta rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritePath {
    /// A SIS import when at least `reconcile.bulk_min_changes` changes can go that way, else the API.
    #[default]
    Auto,
    Api,
    SisImport,
}

/// `target.kind` (CONTRACT v2 "a second target"): the LMS the daemon reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    #[default]
    Canvas,
    OpenEdx,
}

impl TargetKind {
    /// The name in the configuration, `audit_log.target` and `sync_runs.target`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Canvas => "canvas",
            TargetKind::OpenEdx => "openedx",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON, or human-readable text when stderr is a terminal.
    #[default]
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub target: TargetKind,
    /// Required for `target.kind = "canvas"`; with `openedx` the `[canvas]` table may be left out, and then these
    /// settings are inert (see [`CanvasSettings::unused`]): nothing talks to Canvas.
    pub canvas: CanvasSettings,
    /// `Some` exactly when `target.kind = "openedx"` (the `[openedx]` keys are then required and checked); with
    /// `canvas` an `[openedx]` table may be present and is checked for types only.
    pub openedx: Option<OpenEdxSettings>,
    pub database: DatabaseSettings,
    pub sis: SisSettings,
    pub reconcile: ReconcileSettings,
    pub schedule: ScheduleSettings,
    pub limits: LimitsSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub role_rules: Vec<RoleRule>,
}

#[derive(Debug, Clone)]
pub struct CanvasSettings {
    /// Normalised: scheme + host (+ port) + optional path prefix, no trailing slash, no `/api/v1`.
    pub base_url: Url,
    pub token: TokenSource,
    pub account_id: String,
    pub per_page: u32,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
    pub read_path: ReadPath,
    pub report_min_courses: u64,
    pub report_timeout: Duration,
}

impl CanvasSettings {
    /// The settings of a Canvas nothing talks to (`target.kind = "openedx"` without a `[canvas]` table): the
    /// defaults, an empty token, and the Open edX address, so that no stray request could go anywhere else.
    pub fn unused(base_url: Url) -> Self {
        Self {
            base_url,
            token: TokenSource::Inline(secrecy::SecretString::from(String::new())),
            account_id: "1".into(),
            per_page: 100,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            read_path: ReadPath::Courses,
            report_min_courses: u64::MAX,
            report_timeout: Duration::from_secs(60),
        }
    }
}

/// `[openedx]`: the Open edX LMS (openedx-api-facts.md §1).
#[derive(Debug, Clone)]
pub struct OpenEdxSettings {
    /// The LMS root: scheme + host (+ port) + optional path prefix, no trailing slash.
    pub base_url: Url,
    pub client_id: String,
    /// Never printed: `Debug` shows `[REDACTED]`.
    pub client_secret: ClientSecretSource,
    pub request_timeout: Duration,
    /// A waiting program enrollment is re-written after this long, before Open edX's 60-day expiry (facts §6.4).
    pub waiting_keepalive: Duration,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct SisSettings {
    /// `None` = the daemon's own database.
    pub url: Option<DatabaseUrl>,
    pub enrollments_query: String,
    pub user_id_kind: UserIdKind,
    pub manage_non_sis_users: bool,
    /// Every SIS query is cancelled after this long (a stuck SIS must not hold the cycle forever).
    pub statement_timeout: Duration,
    /// A channel on the SIS database whose `NOTIFY` triggers the freshness check at once.
    pub notify_channel: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    pub removal: RemovalPolicy,
    pub max_removals: u64,
    pub max_removal_ratio: f64,
    pub max_course_removal_ratio: f64,
    /// Enrolls are held when there are more than this many and they exceed `max_addition_ratio`.
    pub max_additions: u64,
    pub max_addition_ratio: f64,
    pub dry_run: bool,
    /// A cycle stops cleanly after this long (reads end the cycle; changes not yet made are recorded as not
    /// attempted). `None`: no deadline.
    pub cycle_deadline: Option<Duration>,
    pub write_path: WritePath,
    pub bulk_min_changes: u64,
    /// An access-removing change is made only when this many consecutive cycles decided it (flap damping).
    pub removal_grace_cycles: u32,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub cron: String,
    pub run_on_start: bool,
    /// Between full cycles, re-read the SIS this often and reconcile the courses whose rows changed; `None` = off.
    pub sis_poll: Option<Duration>,
    /// `[[schedule.pause]]`, in the order written.
    pub pauses: Vec<PauseWindow>,
}

/// A `[[schedule.pause]]` window: from `from` (included) to `to` (excluded), cycles run as dry runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: String,
}

impl PauseWindow {
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.from <= now && now < self.to
    }
}

#[derive(Debug, Clone)]
pub struct LimitsSettings {
    /// A static cap on Canvas calls per second; `None` = the adaptive pacer alone.
    pub requests_per_second: Option<f64>,
    pub max_in_flight: u32,
    pub max_retries: u32,
    pub cycle_retry_budget: u32,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RoleRule {
    pub name: String,
    pub users_query: String,
    pub from_role: String,
    pub to_role: String,
}

impl Settings {
    /// Loads from an optional TOML file, then `ROSTERSYNC__SECTION__KEY` variables, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`], with the environment given explicitly (tests) or taken from the process (`None`).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        let mut text = None;
        if let Some(path) = file {
            let content = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Load(format!("cannot read config file `{}`: {e}", path.display()))
            })?;
            builder =
                builder.add_source(config::File::from_str(&content, config::FileFormat::Toml));
            text = Some(content);
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(env);
        builder = builder.add_source(environment);
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| load_error(&e, text.as_deref()))?;
        raw.validate()
    }

    /// Parses a TOML document (no environment). Used by `check`-style tests and the fuzz targets.
    pub fn from_toml_str(toml: &str) -> Result<Settings, ConfigError> {
        let raw: RawSettings = config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| load_error(&e, Some(toml)))?;
        raw.validate()
    }

    /// The SIS database URL (`sis.url`, else `database.url`).
    pub fn sis_url(&self) -> &DatabaseUrl {
        self.sis.url.as_ref().unwrap_or(&self.database.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [canvas]
        base_url = "https://district.instructure.com/"
        token = "sentinel-token-123"
        [database]
        url = "postgres://rs:pw@localhost/rs"
    "#;

    #[test]
    fn minimal_file_gets_contract_defaults() {
        let s = Settings::from_toml_str(MINIMAL).expect("valid");
        assert_eq!(
            s.canvas.base_url.as_str(),
            "https://district.instructure.com/"
        );
        assert_eq!(s.canvas.account_id, "1");
        assert_eq!(s.canvas.per_page, 100);
        assert_eq!(s.canvas.request_timeout, Duration::from_secs(30));
        assert_eq!(s.reconcile.removal, RemovalPolicy::Conclude);
        assert_eq!(s.reconcile.max_removals, 500);
        assert!((s.reconcile.max_removal_ratio - 0.10).abs() < 1e-12);
        assert!(!s.reconcile.dry_run);
        assert_eq!(s.schedule.cron, "0 */15 * * * *");
        assert!(s.schedule.run_on_start);
        assert_eq!(s.limits.max_in_flight, 11);
        assert_eq!(s.limits.requests_per_second, None);
        assert_eq!(s.schedule.sis_poll, Some(Duration::from_secs(60)));
        assert_eq!(s.server.listen.to_string(), "0.0.0.0:9464");
        assert_eq!(s.sis.enrollments_query, DEFAULT_ENROLLMENTS_QUERY);
        assert_eq!(s.sis.user_id_kind, UserIdKind::SisUserId);
        assert_eq!(s.sis_url().expose(), "postgres://rs:pw@localhost/rs");
    }

    #[test]
    fn debug_of_settings_redacts_token_and_password() {
        let s = Settings::from_toml_str(MINIMAL).expect("valid");
        let debug = format!("{s:?}");
        assert!(!debug.contains("sentinel-token-123"), "{debug}");
        assert!(!debug.contains(":pw@"), "{debug}");
    }

    fn with(extra: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml_str(&format!("{MINIMAL}\n{extra}"))
    }

    /// MINIMAL with `section.key = value` (in MINIMAL's own `[canvas]` table for a canvas key).
    fn with_key(section: &str, key: &str, value: &str) -> Result<Settings, ConfigError> {
        if section == "canvas" {
            Settings::from_toml_str(
                &MINIMAL.replace("[canvas]", &format!("[canvas]\n{key} = {value}")),
            )
        } else {
            with(&format!("[{section}]\n{key} = {value}"))
        }
    }

    #[test]
    fn ratio_out_of_range_nan_or_text_is_rejected_naming_the_key() {
        for bad in ["1.5", "-0.1", "nan", "\"20%\""] {
            let err = with(&format!("[reconcile]\nmax_removal_ratio = {bad}"))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("max_removal_ratio"), "{bad}: {err}");
        }
    }

    /// `(section, key, refused values, loading values with their seconds)`.
    type DurationCase = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [(&'static str, f64)],
    );

    /// Every duration-like key is bounded: a value out of range (1e20 once panicked at `Duration::from_secs_f64`,
    /// exit 101) is an error naming the key and the range; the edges of the range load.
    #[test]
    fn duration_keys_are_bounded_naming_the_key_and_the_range() {
        let cases: &[DurationCase] = &[
            (
                "canvas",
                "request_timeout_secs",
                &[
                    "1e20", "1e300", "3600.5", "inf", "-inf", "nan", "0", "-1", "1e-300", "0.09",
                ],
                &[("0.1", 0.1), ("30", 30.0), ("3600", 3600.0)],
            ),
            (
                "canvas",
                "report_timeout_secs",
                &[
                    "1e20", "1e300", "86401", "inf", "-inf", "nan", "0", "-0.0", "-1", "1e-300",
                    "0.09",
                ],
                &[("0.1", 0.1), ("1800", 1800.0), ("86400", 86_400.0)],
            ),
        ];
        for (section, key, bad, good) in cases {
            let full = format!("{section}.{key}");
            for value in *bad {
                let err = with_key(section, key, value).expect_err(value).to_string();
                assert!(err.contains(&full), "{full} = {value}: {err}");
                assert!(
                    err.contains("seconds from 0.1 to"),
                    "{full} = {value}: {err}"
                );
            }
            for (value, secs) in *good {
                let s = with_key(section, key, value)
                    .unwrap_or_else(|e| panic!("{full} = {value}: {e}"));
                let got = if *key == "request_timeout_secs" {
                    s.canvas.request_timeout
                } else {
                    s.canvas.report_timeout
                };
                assert_eq!(got, Duration::from_secs_f64(*secs), "{full} = {value}");
            }
        }
        for bad in ["1e-300", "0.001", "0", "10001", "nan", "inf"] {
            let err = with(&format!("[limits]\nrequests_per_second = {bad}"))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("limits.requests_per_second"), "{bad}: {err}");
        }
        for good in ["0.01", "10", "10000"] {
            with(&format!("[limits]\nrequests_per_second = {good}"))
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn pause_windows_load_as_times_and_errors_name_the_entry() {
        let s = with(
            "[[schedule.pause]]\nfrom = \"2026-07-01\"\nto = \"2026-07-15T06:00:00+02:00\"\nreason = \"summer rollover\"\n\
             [[schedule.pause]]\nfrom = 2026-12-24\nto = 2026-12-27\nreason = \"winter\"",
        )
        .expect("valid windows");
        let w = &s.schedule.pauses;
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].from.to_rfc3339(), "2026-07-01T00:00:00+00:00");
        assert_eq!(w[0].to.to_rfc3339(), "2026-07-15T04:00:00+00:00");
        assert_eq!(w[0].reason, "summer rollover");
        assert_eq!(w[1].to.to_rfc3339(), "2026-12-27T00:00:00+00:00");
        assert!(with("").expect("none").schedule.pauses.is_empty());

        let second = |body: &str| {
            with(&format!(
                "[[schedule.pause]]\nfrom = \"2026-01-01\"\nto = \"2026-01-02\"\nreason = \"a\"\n\
                 [[schedule.pause]]\n{body}"
            ))
            .expect_err(body)
            .to_string()
        };
        for (body, key) in [
            (
                "from = \"2026-07-15\"\nto = \"2026-07-01\"\nreason = \"x\"",
                "schedule.pause[1].to",
            ),
            (
                "from = \"2026-07-01\"\nto = \"2026-07-01\"\nreason = \"x\"",
                "schedule.pause[1].to",
            ),
            (
                "from = \"July 1st\"\nto = \"2026-07-15\"\nreason = \"x\"",
                "schedule.pause[1].from",
            ),
            (
                "from = \"2026-07-01\"\nto = \"2026-13-01\"\nreason = \"x\"",
                "schedule.pause[1].to",
            ),
            (
                "from = \"2026-07-01\"\nto = \"2026-07-15\"\nreason = \"  \"",
                "schedule.pause[1].reason",
            ),
        ] {
            let err = second(body);
            assert!(err.contains(&format!("`{key}`")), "{body}: {err}");
        }
        for (body, word) in [
            ("from = \"2026-07-01\"\nto = \"2026-07-15\"", "reason"),
            (
                "from = \"2026-07-01\"\nto = \"2026-07-15\"\nreason = \"x\"\nuntil = \"2026-08-01\"",
                "until",
            ),
        ] {
            let err = second(body);
            assert!(err.contains(word), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_removal_policy_is_rejected() {
        for bad in ["\"Delete\"", "\"purge\""] {
            let err = with(&format!("[reconcile]\nremoval = {bad}"))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("removal"), "{err}");
            assert!(err.contains("conclude"), "{err}");
        }
    }

    #[test]
    fn unknown_key_is_rejected_naming_it() {
        let err = with("[canvas2]\nx = 1").expect_err("unknown").to_string();
        assert!(err.contains("canvas2"), "{err}");
        let err = Settings::from_toml_str(&MINIMAL.replace("token =", "tokne ="))
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("tokne"), "{err}");
        assert!(!err.contains("sentinel-token-123"), "{err}");
    }

    #[test]
    fn five_field_cron_says_six_are_expected() {
        let err = with("[schedule]\ncron = \"*/15 * * * *\"")
            .expect_err("5 fields")
            .to_string();
        assert!(err.contains("schedule.cron") && err.contains("6"), "{err}");
        let err = with("[schedule]\ncron = \"0 99 * * * *\"")
            .expect_err("bad minute")
            .to_string();
        assert!(err.contains("schedule.cron"), "{err}");
    }

    #[test]
    fn token_and_token_file_together_or_neither_is_an_error() {
        let both = MINIMAL.replace(
            "token = \"sentinel-token-123\"",
            "token = \"sentinel-token-123\"\ntoken_file = \"/tmp/x\"",
        );
        let err = Settings::from_toml_str(&both)
            .expect_err("both")
            .to_string();
        assert!(
            err.contains("token_file") && !err.contains("sentinel"),
            "{err}"
        );
        let neither = MINIMAL.replace("token = \"sentinel-token-123\"", "");
        let err = Settings::from_toml_str(&neither)
            .expect_err("neither")
            .to_string();
        assert!(err.contains("canvas.token"), "{err}");
        let empty = MINIMAL.replace("\"sentinel-token-123\"", "\"  \"");
        let err = Settings::from_toml_str(&empty)
            .expect_err("empty")
            .to_string();
        assert!(err.contains("canvas token is empty"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_bad_bool_is_an_error() {
        let env = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let s = Settings::load_with_env(
            None,
            env(&[
                ("ROSTERSYNC__CANVAS__BASE_URL", "https://c.example.edu"),
                ("ROSTERSYNC__CANVAS__TOKEN", "t"),
                ("ROSTERSYNC__DATABASE__URL", "postgres://localhost/x"),
                ("ROSTERSYNC__CANVAS__PER_PAGE", "50"),
                ("ROSTERSYNC__RECONCILE__DRY_RUN", "true"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.canvas.per_page, 50);
        assert!(s.reconcile.dry_run);
        let err = Settings::load_with_env(
            None,
            env(&[
                ("ROSTERSYNC__CANVAS__BASE_URL", "https://c.example.edu"),
                ("ROSTERSYNC__CANVAS__TOKEN", "t"),
                ("ROSTERSYNC__DATABASE__URL", "postgres://localhost/x"),
                ("ROSTERSYNC__RECONCILE__DRY_RUN", "maybe"),
            ]),
        )
        .expect_err("bad bool")
        .to_string();
        assert!(err.contains("dry_run"), "{err}");
    }

    const OPENEDX: &str = r#"
        [target]
        kind = "openedx"
        [openedx]
        base_url = "https://lms.example.edu/"
        client_id = "rostersync"
        client_secret = "sentinel-client-secret-456"
    "#;

    #[test]
    fn target_defaults_to_canvas_and_openedx_keys_are_optional_then() {
        let s = Settings::from_toml_str(MINIMAL).expect("valid");
        assert_eq!(s.target, TargetKind::Canvas);
        assert!(s.openedx.is_none());
        // An incomplete [openedx] table is not checked with kind = canvas.
        let s = with("[openedx]\nclient_id = \"x\"").expect("valid");
        assert!(s.openedx.is_none());
        let err = with("[target]\nkind = \"moodle\"")
            .expect_err("unknown kind")
            .to_string();
        assert!(
            err.contains("target.kind") && err.contains("openedx"),
            "{err}"
        );
    }

    #[test]
    fn openedx_keys_load_with_contract_defaults_and_the_secret_is_never_printed() {
        let s = with(OPENEDX).expect("valid");
        assert_eq!(s.target, TargetKind::OpenEdx);
        let o = s.openedx.as_ref().expect("openedx settings");
        assert_eq!(o.base_url.as_str(), "https://lms.example.edu/");
        assert_eq!(o.client_id, "rostersync");
        assert_eq!(o.request_timeout, Duration::from_secs(30));
        assert_eq!(o.waiting_keepalive, Duration::from_secs(30 * 86_400));
        let debug = format!("{s:?}");
        assert!(!debug.contains("sentinel-client-secret-456"), "{debug}");
        use secrecy::ExposeSecret;
        assert_eq!(
            o.client_secret.load().expect("secret").expose_secret(),
            "sentinel-client-secret-456"
        );
    }

    #[test]
    fn openedx_errors_name_the_key_and_never_the_secret() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "base_url = \"https://lms.example.edu/\"\n",
                "",
                "openedx.base_url",
            ),
            ("client_id = \"rostersync\"\n", "", "openedx.client_id"),
            (
                "client_secret = \"sentinel-client-secret-456\"\n",
                "",
                "openedx.client_secret",
            ),
            (
                "",
                "client_secret_file = \"/nonexistent/secret\"\n",
                "openedx.client_secret",
            ),
            (
                "",
                "request_timeout_secs = 0\n",
                "openedx.request_timeout_secs",
            ),
            (
                "",
                "waiting_keepalive_days = 60\n",
                "openedx.waiting_keepalive_days",
            ),
            (
                "",
                "waiting_keepalive_days = 0\n",
                "openedx.waiting_keepalive_days",
            ),
            (
                "base_url = \"https://lms.example.edu/\"\n",
                "base_url = \"http://lms.example.edu\"\n",
                "openedx.base_url",
            ),
            (
                "base_url = \"https://lms.example.edu/\"\n",
                "base_url = \"https://u:p@lms.example.edu\"\n",
                "openedx.base_url",
            ),
        ];
        for (remove, add, key) in cases {
            let doc = OPENEDX
                .replacen(remove, "", 1)
                .replace("[openedx]\n", &format!("[openedx]\n{add}"));
            let err = with(&doc).expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains("sentinel-client-secret-456"), "{err}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-a-file\n").expect("write");
        let doc = OPENEDX.replace(
            "client_secret = \"sentinel-client-secret-456\"",
            &format!("client_secret_file = \"{}\"", path.display()),
        );
        let s = with(&doc).expect("file form");
        use secrecy::ExposeSecret;
        let o = s.openedx.expect("openedx");
        assert_eq!(
            o.client_secret.load().expect("load").expose_secret(),
            "from-a-file"
        );
        // Without a [canvas] table (nothing talks to Canvas).
        let alone = format!("{OPENEDX}\n[database]\nurl = \"postgres://rs:pw@localhost/rs\"\n");
        let s = Settings::from_toml_str(&alone).expect("openedx without [canvas]");
        assert_eq!(s.target, TargetKind::OpenEdx);
        // ...but a half-written [canvas] table is still an error, not silently unused.
        let half = format!("{alone}[canvas]\nbase_url = \"https://x.instructure.com\"\n");
        assert!(Settings::from_toml_str(&half).is_err());
        // Loopback http is allowed (the simulator).
        with(&OPENEDX.replace("https://lms.example.edu/", "http://127.0.0.1:8000"))
            .expect("loopback");
    }
}
