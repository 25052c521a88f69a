//! Validation: from [`RawSettings`] to [`Settings`], whose fields are already the domain types the daemon uses.
//! Each check names the key and what is allowed.
//!
//! Over 500 lines on purpose: one function per config section plus the shared range checks, so that every key's
//! rule (and its bound) is found in this one file.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::error::{ConfigError, invalid};
use super::raw::{
    RawCanvas, RawLimits, RawOpenEdx, RawPauseWindow, RawReconcile, RawRoleRule, RawSchedule,
    RawSettings,
};
use super::secret::{ClientSecretSource, DatabaseUrl, TokenSource};
use super::{
    CanvasSettings, DatabaseSettings, LimitsSettings, LogFormat, LogSettings, OpenEdxSettings,
    PauseWindow, ReadPath, ReconcileSettings, RoleRule, ScheduleSettings, ServerSettings, Settings,
    SisSettings, TargetKind, WritePath,
};
use crate::domain::{RemovalPolicy, UserIdKind};

impl RawSettings {
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let target = one_of(
            "target.kind",
            &self.target.kind,
            &[
                ("canvas", TargetKind::Canvas),
                ("openedx", TargetKind::OpenEdx),
            ],
        )?;
        let openedx = match target {
            TargetKind::OpenEdx => Some(validate_openedx(self.openedx)?),
            TargetKind::Canvas => None,
        };
        // With Open edX, the [canvas] table is not read (nothing talks to Canvas) and may be left out.
        let canvas = match &openedx {
            Some(o)
                if self.canvas.base_url.is_none()
                    && self.canvas.token.is_none()
                    && self.canvas.token_file.is_none() =>
            {
                CanvasSettings::unused(o.base_url.clone())
            }
            _ => validate_canvas(self.canvas)?,
        };
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
            target,
            canvas,
            openedx,
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
                statement_timeout: validate_secs(
                    "sis.statement_timeout_secs",
                    self.sis.statement_timeout_secs,
                    SIS_STATEMENT_TIMEOUT_SECS,
                )?,
                notify_channel: validate_channel(self.sis.notify_channel)?,
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
    let request_timeout = validate_secs(
        "canvas.request_timeout_secs",
        raw.request_timeout_secs,
        REQUEST_TIMEOUT_SECS,
    )?;
    if raw.max_response_bytes < 1024 {
        return Err(invalid(
            "canvas.max_response_bytes",
            "must be at least 1024",
        ));
    }
    if raw.report_min_courses < 1 {
        return Err(invalid("canvas.report_min_courses", "must be 1 or more"));
    }
    let report_timeout = validate_secs(
        "canvas.report_timeout_secs",
        raw.report_timeout_secs,
        REPORT_TIMEOUT_SECS,
    )?;
    Ok(CanvasSettings {
        base_url,
        token,
        account_id: raw.account_id.trim().to_owned(),
        per_page: raw.per_page as u32,
        request_timeout,
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
        report_timeout,
    })
}

/// `[openedx]` when `target.kind = "openedx"`: every key named in its error.
fn validate_openedx(raw: RawOpenEdx) -> Result<OpenEdxSettings, ConfigError> {
    const KEY: &str = "openedx.base_url";
    let base = raw
        .base_url
        .ok_or_else(|| invalid(KEY, "is required, e.g. `https://lms.example.edu`"))?;
    let mut base_url = Url::parse(base.trim()).map_err(|e| {
        invalid(
            KEY,
            format!("is not a URL ({e}); expected e.g. `https://lms.example.edu`"),
        )
    })?;
    match base_url.scheme() {
        "https" => {}
        "http" if is_loopback(&base_url) => {}
        "http" => {
            return Err(invalid(
                KEY,
                "uses http:// to a non-loopback host; the client secret and tokens would travel in cleartext. \
                 Use https://",
            ));
        }
        other => {
            return Err(invalid(
                KEY,
                format!("scheme `{other}` is not supported; use https://"),
            ));
        }
    }
    if base_url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(KEY, "has no host"));
    }
    if !base_url.username().is_empty() || base_url.password().is_some() {
        return Err(invalid(
            KEY,
            "must not carry a user name or password; use openedx.client_id and openedx.client_secret",
        ));
    }
    if base_url.query().is_some() || base_url.fragment().is_some() {
        return Err(invalid(KEY, "must not carry a query string or fragment"));
    }
    let path = base_url.path().trim_end_matches('/').to_owned();
    base_url.set_path(&path);
    let client_id = raw
        .client_id
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            invalid(
                "openedx.client_id",
                "is required (the OAuth2 client id of a non-restricted application whose owner is staff)",
            )
        })?;
    let client_secret = match (raw.client_secret, raw.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "openedx.client_secret",
                "set either `openedx.client_secret` or `openedx.client_secret_file`, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "openedx.client_secret",
                "one of `openedx.client_secret` or `openedx.client_secret_file` is required",
            ));
        }
        (Some(secret), None) => ClientSecretSource::Inline(secret),
        (None, Some(path)) => ClientSecretSource::File(path),
    };
    // The file must be there and hold a secret at start; it is read again whenever a token is requested.
    client_secret.load()?;
    let request_timeout = validate_secs(
        "openedx.request_timeout_secs",
        raw.request_timeout_secs,
        REQUEST_TIMEOUT_SECS,
    )?;
    // Open edX deletes waiting enrollments unmodified for 60 days (facts §6.4): the keep-alive must come first.
    if !(1..=59).contains(&raw.waiting_keepalive_days) {
        return Err(invalid(
            "openedx.waiting_keepalive_days",
            format!(
                "{} is out of range; from 1 to 59 (Open edX deletes waiting enrollments after 60 days)",
                raw.waiting_keepalive_days
            ),
        ));
    }
    Ok(OpenEdxSettings {
        base_url,
        client_id,
        client_secret,
        request_timeout,
        waiting_keepalive: Duration::from_secs(raw.waiting_keepalive_days as u64 * 86_400),
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
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
            if !is_loopback(&url) && !allow_insecure_http {
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
        Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => {
            Ok(DatabaseUrl::from_secret(url))
        }
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

/// The seconds a duration-like key may take: `(min, max, what an operator reads)`. Every key that becomes a
/// [`Duration`] has one, so that no value (1e20, inf, NaN, 1e-300) reaches a conversion that panics or a zero
/// timeout.
pub type SecsRange = (f64, f64, &'static str);

/// `canvas.request_timeout_secs`: one request, body included; an hour covers the largest page of a slow Canvas.
pub const REQUEST_TIMEOUT_SECS: SecsRange = (0.1, 3600.0, "from 0.1 to 3600 (an hour)");
/// `canvas.report_timeout_secs`: the whole provisioning report; a day is far past any report Canvas finishes.
pub const REPORT_TIMEOUT_SECS: SecsRange = (0.1, 86_400.0, "from 0.1 to 86400 (a day)");
/// `sis.statement_timeout_secs`: one SIS query; a day is far past any export a cycle should wait for.
pub const SIS_STATEMENT_TIMEOUT_SECS: SecsRange = (1.0, 86_400.0, "from 1 to 86400 (a day)");
/// `schedule.sis_poll_secs` (0 = off): a day is as rare as a freshness check makes sense.
pub const SIS_POLL_SECS: SecsRange = (1.0, 86_400.0, "from 1 to 86400 (a day), or 0 for off");
/// `reconcile.cycle_deadline_secs` (0 = no deadline): a week is past any first day of term.
pub const CYCLE_DEADLINE_SECS: SecsRange =
    (1.0, 604_800.0, "from 1 to 604800 (a week), or 0 for none");

/// A number of seconds within `range`, as a [`Duration`]. The conversion is `try_from_secs_f64`, so even a value
/// the range let through by mistake is an error naming the key, never a panic.
pub fn validate_secs(
    key: &'static str,
    value: f64,
    (min, max, allowed): SecsRange,
) -> Result<Duration, ConfigError> {
    let refused = || {
        invalid(
            key,
            format!("{value:?} is not a number of seconds {allowed}"),
        )
    };
    if !value.is_finite() || value < min || value > max {
        return Err(refused());
    }
    Duration::try_from_secs_f64(value).map_err(|_| refused())
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

fn validate_count(key: &'static str, value: i64) -> Result<u64, ConfigError> {
    u64::try_from(value).map_err(|_| invalid(key, format!("{value} is negative; use 0 or more")))
}

fn validate_reconcile(raw: RawReconcile) -> Result<ReconcileSettings, ConfigError> {
    let max_removals = validate_count("reconcile.max_removals", raw.max_removals)?;
    let max_additions = validate_count("reconcile.max_additions", raw.max_additions)?;
    // An addition ratio may exceed 1 (a term whose courses are mostly new), but never be "no limit" by accident.
    if !(raw.max_addition_ratio.is_finite() && (0.0..=100.0).contains(&raw.max_addition_ratio)) {
        return Err(invalid(
            "reconcile.max_addition_ratio",
            format!(
                "{} is not a ratio between 0.0 and 100.0 (0.5 = enrolls may add half the live enrollments)",
                raw.max_addition_ratio
            ),
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
        max_removals,
        max_additions,
        max_addition_ratio: raw.max_addition_ratio,
        max_removal_ratio: validate_ratio("reconcile.max_removal_ratio", raw.max_removal_ratio)?,
        max_course_removal_ratio: validate_ratio(
            "reconcile.max_course_removal_ratio",
            raw.max_course_removal_ratio,
        )?,
        dry_run: raw.dry_run,
        cycle_deadline: match raw.cycle_deadline_secs {
            0.0 => None,
            secs => Some(validate_secs(
                "reconcile.cycle_deadline_secs",
                secs,
                CYCLE_DEADLINE_SECS,
            )?),
        },
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
        removal_grace_cycles: match u32::try_from(raw.removal_grace_cycles) {
            Ok(n @ 1..=1000) => n,
            _ => {
                return Err(invalid(
                    "reconcile.removal_grace_cycles",
                    format!(
                        "{} is out of range; use 1 (make a removal in the first cycle that decides it) to 1000",
                        raw.removal_grace_cycles
                    ),
                ));
            }
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
        sis_poll: match raw.sis_poll_secs {
            0.0 => None,
            secs => Some(validate_secs(
                "schedule.sis_poll_secs",
                secs,
                SIS_POLL_SECS,
            )?),
        },
        pauses: raw
            .pause
            .into_iter()
            .enumerate()
            .map(|(i, w)| validate_pause_window(i, w))
            .collect::<Result<_, _>>()?,
    })
}

/// `[[schedule.pause]]` entry `index`: `from` and `to` are TIME strings (the same parser as `--until`), `to` after
/// `from`, and a reason (it is what a paused cycle reports). Errors name the entry: `schedule.pause[0].to`.
fn validate_pause_window(index: usize, raw: RawPauseWindow) -> Result<PauseWindow, ConfigError> {
    let key = |field: &str| format!("schedule.pause[{index}].{field}");
    let time = |field: &str, value: &str| {
        crate::desk::time::parse_time("the value", value)
            .map_err(|e| invalid(key(field), e.to_string()))
    };
    let from = time("from", &raw.from)?;
    let to = time("to", &raw.to)?;
    if to <= from {
        return Err(invalid(
            key("to"),
            format!(
                "{} is not after `from` ({}): a window runs from `from` to a later `to`",
                raw.to.trim(),
                raw.from.trim()
            ),
        ));
    }
    let reason = raw.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(invalid(
            key("reason"),
            "is empty; say why cycles change nothing in this window (paused cycles report it)",
        ));
    }
    Ok(PauseWindow { from, to, reason })
}

/// `sis.notify_channel` goes into `LISTEN` as an identifier: a plain lowercase one, so that no quoting is needed.
fn validate_channel(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(name) = raw.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let plain = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(invalid(
            "sis.notify_channel",
            format!(
                "{name:?} is not a plain PostgreSQL channel name (lowercase letters, digits and _, at most 63, not \
                 starting with a digit)"
            ),
        ));
    }
    Ok(Some(name))
}

/// The slowest rate `limits.requests_per_second` takes: one request every 100 s.
pub const MIN_REQUESTS_PER_SECOND: f64 = 0.01;

fn validate_limits(raw: RawLimits) -> Result<LimitsSettings, ConfigError> {
    // The client spaces requests 1/rate apart (a Duration): at least one request every 100 s, so that the spacing
    // stays a sane duration, and at most 10000 a second.
    if let Some(rate) = raw.requests_per_second
        && (!rate.is_finite() || !(MIN_REQUESTS_PER_SECOND..=10_000.0).contains(&rate))
    {
        return Err(invalid(
            "limits.requests_per_second",
            format!(
                "{rate:?} is not a rate from {MIN_REQUESTS_PER_SECOND} to 10000 requests per second (leave it unset \
                 to let the adaptive pacer alone pace by Canvas's throttle headers)"
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
}
