//! Typed settings: a TOML file and/or `ROSTERSYNC__SECTION__KEY` variables, defaults, and validation at load.
//!
//! Loading happens in two steps so that every error names the key: serde reads [`RawSettings`] (unknown keys and
//! wrong types are rejected by serde/config, with the key path), then [`RawSettings::validate`] checks the values
//! and produces [`Settings`], whose fields are already the domain types the rest of the daemon uses.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// The environment prefix: `ROSTERSYNC__CANVAS__TOKEN` sets `canvas.token`.
pub const ENV_PREFIX: &str = "ROSTERSYNC";

/// A configuration problem. Messages name the key and what is allowed, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("configuration: cannot read {key} `{path}`: {source}")]
    File {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A loader error without the source lines the TOML parser quotes (they may hold the token or a database password):
/// the line number stays, and the key on that line is named from the text, never its value.
fn load_error(e: &config::ConfigError, source: Option<&str>) -> ConfigError {
    let full = e.to_string();
    let mut kept: Vec<&str> = full
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('|')
                || t.split_once('|')
                    .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit())))
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    let line_no = full
        .split("at line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let mut located = String::new();
    if let (Some(n), Some(text)) = (line_no, source) {
        let mut section = String::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            }
            if i + 1 == n {
                if t.starts_with('[') {
                    located = format!("table [{section}]");
                } else if let Some((key, _)) = t.split_once('=') {
                    let key = key.trim().trim_matches('"');
                    if !key.is_empty() && key.len() < 100 && !key.contains(char::is_whitespace) {
                        located = if section.is_empty() {
                            key.to_owned()
                        } else {
                            format!("{section}.{key}")
                        };
                    }
                }
                break;
            }
        }
    }
    // Number overflows come without a position: find the literal that does not fit.
    if located.is_empty()
        && (full.contains("overflow") || full.contains("too large"))
        && let Some(text) = source
    {
        let mut section = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
                continue;
            }
            let Some((key, value)) = t.split_once('=') else {
                continue;
            };
            let value = value
                .split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .replace('_', "");
            let numeric = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            let float = value.contains(['.', 'e', 'E']);
            let fits = if float {
                value.parse::<f64>().is_ok_and(f64::is_finite)
            } else {
                value.parse::<i64>().is_ok()
            };
            if numeric && !fits {
                let key = key.trim();
                located = if section.is_empty() {
                    key.to_owned()
                } else {
                    format!("{section}.{key}")
                };
                break;
            }
        }
    }
    if kept.is_empty() {
        kept.push("the configuration could not be parsed");
    }
    let mut message = kept.join(": ");
    if located.starts_with("table ") {
        message.push_str(&format!(" ({located})"));
    } else if !located.is_empty() {
        message.push_str(&format!(" (key `{located}`; the value is not shown)"));
    }
    ConfigError::Load(message)
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// What `reconcile.removal` does to a live enrollment the SIS no longer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemovalPolicy {
    #[default]
    Conclude,
    Delete,
    Inactivate,
    Keep,
}

impl RemovalPolicy {
    /// The `task` parameter of `DELETE /courses/:id/enrollments/:id` (facts §1), or `None` for `keep`.
    pub fn canvas_task(self) -> Option<&'static str> {
        match self {
            RemovalPolicy::Conclude => Some("conclude"),
            RemovalPolicy::Delete => Some("delete"),
            RemovalPolicy::Inactivate => Some("inactivate"),
            RemovalPolicy::Keep => None,
        }
    }
}

/// How the SIS `user_id` column names a Canvas user (facts §2: `sis_user_id` is case-sensitive,
/// `sis_login_id` compares lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserIdKind {
    #[default]
    SisUserId,
    SisLoginId,
}

impl UserIdKind {
    pub fn canvas_prefix(self) -> &'static str {
        match self {
            UserIdKind::SisUserId => "sis_user_id",
            UserIdKind::SisLoginId => "sis_login_id",
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON, or human-readable text when stderr is a terminal.
    #[default]
    Auto,
    Json,
    Text,
}

/// Numbers are taken as written: `max_removal_ratio = true` must not become 1.0 (no brake), `max_removals = 1.9`
/// must not become 2. Integers are accepted where a fraction is expected; nothing else converts.
fn strict_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct StrictF64;
    impl Visitor<'_> for StrictF64 {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<f64, E> {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<f64, E> {
            Err(E::invalid_type(Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(StrictF64)
}

fn strict_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct StrictI64;
    impl Visitor<'_> for StrictI64 {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<i64, E> {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<i64, E> {
            Err(E::invalid_type(Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(StrictI64)
}

fn strict_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = strict_i64(d)?;
    u64::try_from(v).map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Signed(v),
            &"a whole number of 0 or more",
        )
    })
}

fn strict_opt_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = strict_i64(d)?;
    u32::try_from(v).map(Some).map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Signed(v),
            &"a whole number from 0 to 4294967295",
        )
    })
}

/// Booleans from a file or the environment: true/false, yes/no, on/off, 1/0, in any case. Anything else
/// ("maybe", "2", an empty string) is an error naming the key, never a silent `false`.
fn strict_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct StrictBool;
    impl Visitor<'_> for StrictBool {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false (also yes/no, on/off, 1/0)")
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(Unexpected::Signed(v), &self)),
            }
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
            }
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_any(StrictBool)
}

// ---------------------------------------------------------------------------------------------------------------
// Raw settings: exactly what the file and environment may contain.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub canvas: RawCanvas,
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
}

impl Default for RawSis {
    fn default() -> Self {
        Self {
            url: None,
            enrollments_query: DEFAULT_ENROLLMENTS_QUERY.into(),
            user_id_kind: "sis_user_id".into(),
            manage_non_sis_users: false,
        }
    }
}

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
    #[serde(deserialize_with = "strict_bool")]
    pub dry_run: bool,
    pub write_path: String,
    #[serde(deserialize_with = "strict_i64")]
    pub bulk_min_changes: i64,
}

impl Default for RawReconcile {
    fn default() -> Self {
        Self {
            removal: "conclude".into(),
            max_removals: 500,
            max_removal_ratio: 0.10,
            max_course_removal_ratio: 0.9,
            dry_run: false,
            write_path: "auto".into(),
            bulk_min_changes: 2000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSchedule {
    pub cron: String,
    #[serde(deserialize_with = "strict_bool")]
    pub run_on_start: bool,
}

impl Default for RawSchedule {
    fn default() -> Self {
        Self {
            cron: "0 */15 * * * *".into(),
            run_on_start: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    #[serde(deserialize_with = "strict_f64")]
    pub requests_per_second: f64,
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
            requests_per_second: 10.0,
            max_in_flight: 4,
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

// ---------------------------------------------------------------------------------------------------------------
// Validated settings.
// ---------------------------------------------------------------------------------------------------------------

/// Where the Canvas token comes from. The file form is re-read when Canvas rejects the token (rotation).
#[derive(Clone)]
pub enum TokenSource {
    Inline(SecretString),
    File(PathBuf),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Inline(_) => f.write_str("Inline([REDACTED])"),
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl TokenSource {
    /// Reads the token. A file's single trailing newline (as `kubectl create secret --from-file` leaves it) is
    /// stripped; an empty token is an error. The value never appears in the error.
    pub fn load(&self) -> Result<SecretString, ConfigError> {
        match self {
            TokenSource::Inline(secret) => {
                if secret.expose_secret().trim().is_empty() {
                    return Err(invalid("canvas.token", "canvas token is empty"));
                }
                Ok(secret.clone())
            }
            TokenSource::File(path) => {
                let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
                    key: "canvas.token_file",
                    path: path.clone(),
                    source,
                })?;
                let token = raw
                    .strip_suffix("\r\n")
                    .or_else(|| raw.strip_suffix('\n'))
                    .unwrap_or(&raw);
                if token.trim().is_empty() {
                    return Err(invalid(
                        "canvas.token_file",
                        format!("canvas token is empty (file `{}`)", path.display()),
                    ));
                }
                if token.contains(['\n', '\r']) || token != token.trim() {
                    return Err(invalid(
                        "canvas.token_file",
                        format!(
                            "the token in `{}` has surrounding whitespace or several lines; it must hold only the \
                             token (one trailing newline is allowed)",
                            path.display()
                        ),
                    ));
                }
                Ok(SecretString::from(token.to_owned()))
            }
        }
    }

    /// Policy for token files readable by group or others: warn (like systemd-creds' "insecure" notice) but run,
    /// because Kubernetes Secret volumes default to 0644 and refusing them would break the shipped manifests.
    pub fn permission_warning(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let TokenSource::File(path) = self else {
            return None;
        };
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "canvas.token_file `{}` is readable by group or others (mode {:o}); restrict it to 0400 or 0600",
                path.display(),
                mode & 0o777
            )
        })
    }
}

/// A PostgreSQL URL. Its password is a secret: `Display` shows the URL without it.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(self.expose()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("****"));
                }
                let without_query = url
                    .as_str()
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                f.write_str(&without_query)
            }
            Err(_) => f.write_str("<unparsable database url>"),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub canvas: CanvasSettings,
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
}

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    pub removal: RemovalPolicy,
    pub max_removals: u64,
    pub max_removal_ratio: f64,
    pub max_course_removal_ratio: f64,
    pub dry_run: bool,
    pub write_path: WritePath,
    pub bulk_min_changes: u64,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub cron: String,
    pub run_on_start: bool,
}

#[derive(Debug, Clone)]
pub struct LimitsSettings {
    pub requests_per_second: f64,
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

impl RawSettings {
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let canvas = validate_canvas(self.canvas)?;
        let database_url = self
            .database
            .url
            .ok_or_else(|| invalid("database.url", "is required (a postgres:// URL)"))?;
        let database_url = validate_pg_url("database.url", database_url)?;
        let sis_url = self
            .sis
            .url
            .map(|u| validate_pg_url("sis.url", u))
            .transpose()?;
        if self.sis.enrollments_query.trim().is_empty() {
            return Err(invalid("sis.enrollments_query", "must not be empty"));
        }
        let reconcile = validate_reconcile(self.reconcile)?;
        let schedule = validate_schedule(self.schedule)?;
        let limits = validate_limits(self.limits)?;
        let listen = self.server.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "`{}` is not an address with a port, e.g. `0.0.0.0:9464`",
                    self.server.listen
                ),
            )
        })?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "`{}` is not a level or filter (e.g. `info`, `debug`, `rostersync=debug`)",
                    self.log.level
                ),
            ));
        }
        let mut role_rules = Vec::with_capacity(self.role_rules.len());
        for (i, rule) in self.role_rules.into_iter().enumerate() {
            role_rules.push(validate_rule(i, rule)?);
        }
        Ok(Settings {
            canvas,
            database: DatabaseSettings {
                url: database_url,
                max_connections: self.database.max_connections.unwrap_or(8).max(2),
            },
            sis: SisSettings {
                url: sis_url,
                enrollments_query: self.sis.enrollments_query,
                user_id_kind: one_of(
                    "sis.user_id_kind",
                    &self.sis.user_id_kind,
                    &[
                        ("sis_user_id", UserIdKind::SisUserId),
                        ("sis_login_id", UserIdKind::SisLoginId),
                    ],
                )?,
                manage_non_sis_users: self.sis.manage_non_sis_users,
            },
            reconcile,
            schedule,
            limits,
            server: ServerSettings { listen },
            log: LogSettings {
                format: one_of(
                    "log.format",
                    &self.log.format,
                    &[
                        ("auto", LogFormat::Auto),
                        ("json", LogFormat::Json),
                        ("text", LogFormat::Text),
                    ],
                )?,
                level: self.log.level,
                otlp_endpoint: self.log.otlp_endpoint.filter(|s| !s.trim().is_empty()),
            },
            role_rules,
        })
    }
}

fn validate_canvas(raw: RawCanvas) -> Result<CanvasSettings, ConfigError> {
    let base = raw.base_url.ok_or_else(|| {
        invalid(
            "canvas.base_url",
            "is required, e.g. `https://district.instructure.com`",
        )
    })?;
    let base_url = normalise_base_url(&base, raw.allow_insecure_http)?;
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "canvas.token",
                "set either `canvas.token` or `canvas.token_file`, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "canvas.token",
                "one of `canvas.token` or `canvas.token_file` is required",
            ));
        }
        (Some(token), None) => {
            if token.expose_secret().trim().is_empty() {
                return Err(invalid("canvas.token", "canvas token is empty"));
            }
            TokenSource::Inline(token)
        }
        (None, Some(path)) => {
            // The file must be there and hold a token at start; it is read again whenever Canvas rejects the token.
            let source = TokenSource::File(path);
            source.load()?;
            source
        }
    };
    if raw.account_id.trim().is_empty() {
        return Err(invalid(
            "canvas.account_id",
            "must not be empty (the root account id, usually `1`)",
        ));
    }
    if !(1..=100).contains(&raw.per_page) {
        return Err(invalid(
            "canvas.per_page",
            format!("{} is out of range; Canvas allows 1 to 100", raw.per_page),
        ));
    }
    if !raw.request_timeout_secs.is_finite()
        || raw.request_timeout_secs < 0.1
        || raw.request_timeout_secs > 3600.0
    {
        return Err(invalid(
            "canvas.request_timeout_secs",
            "must be a number of seconds from 0.1 to 3600",
        ));
    }
    if raw.max_response_bytes < 1024 {
        return Err(invalid(
            "canvas.max_response_bytes",
            "must be at least 1024",
        ));
    }
    if raw.report_min_courses < 1 {
        return Err(invalid("canvas.report_min_courses", "must be 1 or more"));
    }
    if !raw.report_timeout_secs.is_finite() || raw.report_timeout_secs <= 0.0 {
        return Err(invalid(
            "canvas.report_timeout_secs",
            "must be a number of seconds above 0",
        ));
    }
    Ok(CanvasSettings {
        base_url,
        token,
        account_id: raw.account_id.trim().to_owned(),
        per_page: raw.per_page as u32,
        request_timeout: Duration::from_secs_f64(raw.request_timeout_secs),
        max_response_bytes: raw.max_response_bytes,
        read_path: one_of(
            "canvas.read_path",
            &raw.read_path,
            &[
                ("auto", ReadPath::Auto),
                ("courses", ReadPath::Courses),
                ("report", ReadPath::Report),
            ],
        )?,
        report_min_courses: raw.report_min_courses as u64,
        report_timeout: Duration::from_secs_f64(raw.report_timeout_secs),
    })
}

/// Accepts `https://host[:port][/prefix]`, strips a trailing `/` and `/api/v1` (so requests never go to
/// `/api/v1/api/v1/...`), and refuses what would leak the admin token: cleartext HTTP to a non-loopback host
/// (unless `canvas.allow_insecure_http`), credentials in the URL, a query string or a fragment.
pub fn normalise_base_url(input: &str, allow_insecure_http: bool) -> Result<Url, ConfigError> {
    const KEY: &str = "canvas.base_url";
    let mut url = Url::parse(input.trim()).map_err(|e| {
        invalid(
            KEY,
            format!("is not a URL ({e}); expected e.g. `https://district.instructure.com`"),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback && !allow_insecure_http {
                return Err(invalid(
                    KEY,
                    "uses http:// to a non-loopback host; the admin token would travel in cleartext. Use https:// \
                     or set `canvas.allow_insecure_http = true`",
                ));
            }
        }
        other => {
            return Err(invalid(
                KEY,
                format!("scheme `{other}` is not supported; use https://"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(KEY, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            KEY,
            "must not carry a user name or password; use canvas.token",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            KEY,
            "must not carry a query string or fragment (e.g. ?access_token=); use canvas.token",
        ));
    }
    let mut path = url.path().trim_end_matches('/').to_owned();
    if let Some(stripped) = path.strip_suffix("/api/v1") {
        path = stripped.trim_end_matches('/').to_owned();
    }
    url.set_path(&path);
    Ok(url)
}

fn validate_pg_url(key: &'static str, url: SecretString) -> Result<DatabaseUrl, ConfigError> {
    let text = url.expose_secret();
    if text.trim().is_empty() {
        return Err(invalid(key, "is empty; expected a postgres:// URL"));
    }
    match Url::parse(text) {
        Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => Ok(DatabaseUrl(url)),
        Ok(parsed) => Err(invalid(
            key,
            format!(
                "scheme `{}` is not postgres:// or postgresql://",
                parsed.scheme()
            ),
        )),
        Err(e) => Err(invalid(
            key,
            format!("is not a URL ({e}); expected postgres://user@host:5432/db"),
        )),
    }
}

/// Exact, case-sensitive choice among documented values: `removal = "Delete"` must never fall back to anything.
fn one_of<T: Copy>(
    key: &'static str,
    value: &str,
    allowed: &[(&str, T)],
) -> Result<T, ConfigError> {
    allowed
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            invalid(
                key,
                format!("`{value}` is not one of: {}", names.join(", ")),
            )
        })
}

fn validate_ratio(key: &'static str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            format!("{value} is not a fraction between 0.0 and 1.0 (e.g. 0.10 for 10%)"),
        ))
    }
}

fn validate_reconcile(raw: RawReconcile) -> Result<ReconcileSettings, ConfigError> {
    if raw.max_removals < 0 {
        return Err(invalid(
            "reconcile.max_removals",
            format!("{} is negative; use 0 or more", raw.max_removals),
        ));
    }
    Ok(ReconcileSettings {
        removal: one_of(
            "reconcile.removal",
            &raw.removal,
            &[
                ("conclude", RemovalPolicy::Conclude),
                ("delete", RemovalPolicy::Delete),
                ("inactivate", RemovalPolicy::Inactivate),
                ("keep", RemovalPolicy::Keep),
            ],
        )?,
        max_removals: raw.max_removals as u64,
        max_removal_ratio: validate_ratio("reconcile.max_removal_ratio", raw.max_removal_ratio)?,
        max_course_removal_ratio: validate_ratio(
            "reconcile.max_course_removal_ratio",
            raw.max_course_removal_ratio,
        )?,
        dry_run: raw.dry_run,
        write_path: one_of(
            "reconcile.write_path",
            &raw.write_path,
            &[
                ("auto", WritePath::Auto),
                ("api", WritePath::Api),
                ("sis_import", WritePath::SisImport),
            ],
        )?,
        bulk_min_changes: if raw.bulk_min_changes < 1 {
            return Err(invalid("reconcile.bulk_min_changes", "must be 1 or more"));
        } else {
            raw.bulk_min_changes as u64
        },
    })
}

/// Six fields, seconds first. A five-field crontab line is the most likely mistake, so it gets its own message;
/// tokio-cron-scheduler would only say `ParseSchedule`.
pub fn validate_cron(expr: &str) -> Result<(), ConfigError> {
    const KEY: &str = "schedule.cron";
    let fields = expr.split_whitespace().count();
    if fields == 5 {
        return Err(invalid(
            KEY,
            format!(
                "`{expr}` has 5 fields; rostersync expects 6, seconds first (e.g. `0 */15 * * * *` for every 15 minutes)"
            ),
        ));
    }
    if fields != 6 {
        return Err(invalid(
            KEY,
            format!(
                "`{expr}` has {fields} fields; expected 6: `sec min hour day-of-month month day-of-week` (e.g. `0 */15 * * * *`)"
            ),
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| invalid(KEY, format!("`{expr}` is not a valid schedule: {e}")))?;
    Ok(())
}

fn validate_schedule(raw: RawSchedule) -> Result<ScheduleSettings, ConfigError> {
    validate_cron(&raw.cron)?;
    Ok(ScheduleSettings {
        cron: raw.cron.trim().to_owned(),
        run_on_start: raw.run_on_start,
    })
}

fn validate_limits(raw: RawLimits) -> Result<LimitsSettings, ConfigError> {
    if !raw.requests_per_second.is_finite()
        || raw.requests_per_second <= 0.0
        || raw.requests_per_second > 10_000.0
    {
        return Err(invalid(
            "limits.requests_per_second",
            format!(
                "{} is not a rate above 0 and at most 10000",
                raw.requests_per_second
            ),
        ));
    }
    if !(1..=256).contains(&raw.max_in_flight) {
        return Err(invalid(
            "limits.max_in_flight",
            format!("{} is out of range; use 1 to 256", raw.max_in_flight),
        ));
    }
    if !(0..=20).contains(&raw.max_retries) {
        return Err(invalid(
            "limits.max_retries",
            format!("{} is out of range; use 0 to 20", raw.max_retries),
        ));
    }
    if raw.cycle_retry_budget < 0 {
        return Err(invalid("limits.cycle_retry_budget", "must be 0 or more"));
    }
    Ok(LimitsSettings {
        requests_per_second: raw.requests_per_second,
        max_in_flight: raw.max_in_flight as u32,
        max_retries: raw.max_retries as u32,
        cycle_retry_budget: raw.cycle_retry_budget as u32,
    })
}

fn validate_rule(index: usize, raw: RawRoleRule) -> Result<RoleRule, ConfigError> {
    let name = raw.name.trim().to_owned();
    let label = if name.is_empty() {
        format!("role_rules[{index}]")
    } else {
        format!("role rule `{name}`")
    };
    if name.is_empty() {
        return Err(invalid(
            "role_rules.name",
            format!("{label}: name is empty"),
        ));
    }
    if raw.users_query.trim().is_empty() {
        return Err(invalid(
            "role_rules.users_query",
            format!("{label}: users_query is empty"),
        ));
    }
    for (key, value) in [
        ("role_rules.from_role", &raw.from_role),
        ("role_rules.to_role", &raw.to_role),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(key, format!("{label}: role is empty")));
        }
    }
    if raw.from_role == raw.to_role {
        return Err(invalid(
            "role_rules.to_role",
            format!("{label}: from_role and to_role are the same"),
        ));
    }
    Ok(RoleRule {
        name,
        users_query: raw.users_query,
        from_role: raw.from_role,
        to_role: raw.to_role,
    })
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
        assert_eq!(s.limits.max_in_flight, 4);
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

    #[test]
    fn base_url_api_v1_suffix_is_stripped() {
        let url = normalise_base_url("https://c.example.edu/api/v1/", false).expect("ok");
        assert_eq!(url.as_str(), "https://c.example.edu/");
        let url = normalise_base_url("https://c.example.edu/canvas/api/v1", false).expect("ok");
        assert_eq!(url.as_str(), "https://c.example.edu/canvas");
    }

    #[test]
    fn base_url_refuses_cleartext_credentials_and_query() {
        for bad in [
            "http://canvas.example.edu",
            "https://user:pass@canvas.example.edu",
            "https://canvas.example.edu/?access_token=abc",
            "ftp://canvas.example.edu",
            "not a url",
        ] {
            let err = normalise_base_url(bad, false).expect_err(bad).to_string();
            assert!(err.contains("canvas.base_url"), "{err}");
            assert!(!err.contains("abc") || bad.contains("not a url"), "{err}");
        }
        assert!(normalise_base_url("http://127.0.0.1:8080", false).is_ok());
        assert!(normalise_base_url("http://canvas.example.edu", true).is_ok());
    }

    fn with(extra: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml_str(&format!("{MINIMAL}\n{extra}"))
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
    fn token_file_trailing_newline_is_stripped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").expect("write");
        let token = TokenSource::File(path.clone()).load().expect("load");
        assert_eq!(token.expose_secret(), "abc123");
        std::fs::write(&path, "\n").expect("write");
        let err = TokenSource::File(path)
            .load()
            .expect_err("empty")
            .to_string();
        assert!(err.contains("empty"), "{err}");
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

    #[test]
    fn database_url_display_hides_password() {
        let url = DatabaseUrl::new("postgres://rs:secretpw@db.example:5432/rs?sslmode=require");
        let shown = url.to_string();
        assert!(!shown.contains("secretpw"), "{shown}");
        assert!(shown.contains("db.example:5432/rs"), "{shown}");
    }
}
