//! Injected faults: random errors, hangs and latency, plus scripted rules ("the 7th POST answers
//! 503") for tests and for operators replaying an incident with `--faults FILE`.
//!
//! In a faults file durations are milliseconds: `{"latency_ms": 20, "rules": [{"method": "POST",
//! "route": "/api/v1/courses/:id/enrollments", "nth": 7, "action": {"Status": {"status": 503}}},
//! {"times": 2, "action": {"Hang": 5000}}]}`. Random choices use `fault_seed`, so a run replays.

use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultOptions {
    /// Fraction of requests answered 500 or 502 (Canvas's generic error body).
    pub error_rate: f64,
    /// Fraction of requests that hang for `hang_for` before being handled.
    pub timeout_rate: f64,
    #[serde(rename = "hang_for_ms", with = "millis")]
    pub hang_for: Duration,
    /// Added to every request (inside the throttle's in-flight window).
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// A uniformly random extra of up to this much.
    #[serde(rename = "latency_jitter_ms", with = "millis")]
    pub latency_jitter: Duration,
    /// Extra latency for POST, PUT and DELETE.
    #[serde(rename = "write_latency_ms", with = "millis")]
    pub write_latency: Duration,
    pub rules: Vec<FaultRule>,
    pub fault_seed: u64,
}

impl Default for FaultOptions {
    fn default() -> Self {
        FaultOptions {
            error_rate: 0.0,
            timeout_rate: 0.0,
            hang_for: Duration::from_secs(120),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            write_latency: Duration::ZERO,
            rules: Vec::new(),
            fault_seed: 0,
        }
    }
}

/// Why a faults file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FaultsFileError {
    #[error("cannot read faults file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("faults file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

impl FaultOptions {
    pub fn from_file(path: &Path) -> Result<FaultOptions, FaultsFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FaultsFileError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| FaultsFileError::Parse {
            path: shown,
            source,
        })
    }

    /// Adds a rule (builder style).
    pub fn with_rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// A scripted fault: which requests it matches and what happens to them.
///
/// A rule counts the requests that match its `method`/`route`/`path_contains` (1-based). It fires
/// from the `nth` matching request (default the first) for `times` requests (default: once when
/// `nth` is given, every time otherwise). The first firing rule in list order wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    /// A route template, e.g. `/api/v1/courses/:id/enrollments`.
    #[serde(default)]
    pub route: Option<String>,
    /// A substring of the path and query, e.g. `sis_user_id:S7`.
    #[serde(default)]
    pub path_contains: Option<String>,
    #[serde(default)]
    pub nth: Option<u64>,
    #[serde(default)]
    pub times: Option<u64>,
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule matching every request, firing every time.
    pub fn always(action: FaultAction) -> Self {
        FaultRule {
            method: None,
            route: None,
            path_contains: None,
            nth: None,
            times: None,
            action,
        }
    }
    /// A rule for one method and route template.
    pub fn on(method: &str, route: &str, action: FaultAction) -> Self {
        FaultRule {
            method: Some(method.to_string()),
            route: Some(route.to_string()),
            ..FaultRule::always(action)
        }
    }
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }
    pub fn path_contains(mut self, needle: &str) -> Self {
        self.path_contains = Some(needle.to_string());
        self
    }

    fn matches(&self, method: &str, route: &str, path_and_query: &str) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.route.as_ref().is_none_or(|r| r == route)
            && self
                .path_contains
                .as_ref()
                .is_none_or(|needle| path_and_query.contains(needle.as_str()))
    }

    fn fires_at(&self, count: u64) -> bool {
        let first = self.nth.unwrap_or(1);
        match (self.nth, self.times) {
            (None, None) => true,
            (_, Some(times)) => count >= first && count < first.saturating_add(times),
            (Some(_), None) => count == first,
        }
    }
}

/// What a firing rule does. Durations serialize as milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FaultAction {
    /// Answer this instead of handling the request. Without a body, a Canvas-like body for the
    /// status is used (401/403 permission error, 404 not found, otherwise the generic error).
    Status {
        status: u16,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        body: Option<String>,
    },
    /// The configured throttled response.
    Throttle,
    /// Wait, then handle normally.
    Hang(#[serde(with = "millis")] Duration),
    /// Handle (the write happens), then wait before answering.
    ApplyThenHang(#[serde(with = "millis")] Duration),
    /// Handle (the write happens), then answer this instead.
    ApplyThenStatus {
        status: u16,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        body: Option<String>,
    },
    /// 200 `text/html` (a login page or proxy error page), request not handled.
    HtmlBody,
    /// Handle, then cut the JSON body in half.
    TruncatedJson,
    /// Handle, then wrap an array body in an object.
    ObjectInsteadOfArray,
    /// Handle, then remove `rel="next"` from the Link header.
    DropNextLink,
    /// Handle, then send the Link header as `link` with lowercase `rel` names. Note that hyper
    /// always writes HTTP/1 header names in lowercase, so only the value's case is observable.
    LowercaseLinkHeader,
    /// Handle, then point `rel="next"` at another host (127.0.0.2, same port): a client must not
    /// send its token there.
    CrossHostNextLink,
    /// 302 to `location`, request not handled.
    Redirect { location: String },
    /// Handle, then send the body at this rate.
    SlowBody { bytes_per_sec: u64 },
    /// 200 with a JSON array body of about this many bytes, request not handled.
    HugeBody { bytes: u64 },
}

impl FaultAction {
    /// A plain status with Canvas's body for it.
    pub fn status(status: u16) -> Self {
        FaultAction::Status {
            status,
            content_type: None,
            body: None,
        }
    }
}

/// What the pipeline must do to one request.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    pub action: Option<FaultAction>,
    /// 500 or 502 from `error_rate`.
    pub random_error: Option<u16>,
    /// `hang_for` from `timeout_rate`.
    pub random_hang: Option<Duration>,
    pub latency: Duration,
}

/// Fault options plus their per-rule counters and the seeded RNG.
#[derive(Debug)]
pub struct FaultState {
    options: FaultOptions,
    counters: Vec<u64>,
    rng: StdRng,
}

impl FaultState {
    pub fn new(options: FaultOptions) -> Self {
        let rng = StdRng::seed_from_u64(options.fault_seed);
        let counters = vec![0; options.rules.len()];
        FaultState {
            options,
            counters,
            rng,
        }
    }

    /// Counts the request against every rule and draws the random faults.
    pub fn plan(&mut self, method: &str, route: &str, path_and_query: &str) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for (rule, counter) in self.options.rules.iter().zip(self.counters.iter_mut()) {
            if !rule.matches(method, route, path_and_query) {
                continue;
            }
            *counter += 1;
            if plan.action.is_none() && rule.fires_at(*counter) {
                plan.action = Some(rule.action.clone());
            }
        }
        let o = &self.options;
        if o.error_rate > 0.0 && self.rng.random::<f64>() < o.error_rate {
            plan.random_error = Some(if self.rng.random::<bool>() { 500 } else { 502 });
        }
        if o.timeout_rate > 0.0 && self.rng.random::<f64>() < o.timeout_rate {
            plan.random_hang = Some(o.hang_for);
        }
        let mut latency = o.latency;
        if !o.latency_jitter.is_zero() {
            latency += o.latency_jitter.mul_f64(self.rng.random::<f64>());
        }
        if matches!(method, "POST" | "PUT" | "DELETE" | "PATCH") {
            latency += o.write_latency;
        }
        plan.latency = latency;
        plan
    }
}

/// Serde for a `Duration` as whole milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_times_select_matching_requests() {
        let rule = FaultRule::on("POST", "/r", FaultAction::Throttle)
            .nth(2)
            .times(2);
        let mut state = FaultState::new(FaultOptions::default().with_rule(rule));
        let fired: Vec<bool> = (0..5)
            .map(|_| state.plan("POST", "/r", "/r").action.is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
        assert!(state.plan("GET", "/r", "/r").action.is_none());
    }

    #[test]
    fn faults_file_format_round_trips() {
        let text = r#"{"latency_ms": 20, "rules": [
            {"method": "POST", "nth": 7, "action": {"Status": {"status": 503}}},
            {"times": 2, "action": {"Hang": 5000}},
            {"action": "DropNextLink"}]}"#;
        let options: FaultOptions = serde_json::from_str(text).expect("faults file parses");
        assert_eq!(options.latency, Duration::from_millis(20));
        assert_eq!(options.hang_for, Duration::from_secs(120));
        assert_eq!(
            options.rules[1].action,
            FaultAction::Hang(Duration::from_secs(5))
        );
        assert_eq!(options.rules[2].action, FaultAction::DropNextLink);
    }

    #[test]
    fn random_faults_replay_with_the_same_seed() {
        let options = FaultOptions {
            error_rate: 0.5,
            fault_seed: 7,
            ..FaultOptions::default()
        };
        let draw = |options: &FaultOptions| {
            let mut state = FaultState::new(options.clone());
            (0..20)
                .map(|_| state.plan("GET", "/", "/").random_error)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&options), draw(&options));
    }
}
