//! [`CanvasClient`]: every Canvas call goes through here, so pacing, retries, pagination, token handling and
//! request accounting are written once.
//!
//! - Auth: `Authorization: Bearer`, marked sensitive; the token lives in a `SecretString`. With `token_file`, a 401
//!   re-reads the file once (rotation) before the cycle fails.
//! - Pace: a governor rate limit (`limits.requests_per_second`) and the adaptive in-flight limit ([`Pacer`]).
//! - Retries: throttling (429, or 403 whose body says `Rate Limit Exceeded`, facts §5), 5xx, timeouts and
//!   connection errors, with exponential backoff and jitter, bounded per request (`limits.max_retries`) and per
//!   cycle (`limits.cycle_retry_budget`). Any other 4xx is returned at once with Canvas's message. What a status
//!   means is decided once, in `status::classify`, for API calls and file downloads alike.
//! - Writes that time out are not blindly resent: the enrollment (or the SIS import or report a job start began) is
//!   looked up first, since Canvas may have applied it.
//! - A success that is not JSON (a maintenance, login or proxy page in front of Canvas) is `NotJson`: Canvas
//!   unavailable, the cycle stops. On account jobs a 401 without `WWW-Authenticate` refuses the job, not the token.
//! - Redirects are never followed (the token must not travel to an SSO or maintenance host); pagination links
//!   are followed only on the configured origin.
//!
//! The client is one type whose methods are spread over modules that each own one thing: one attempt on the wire
//! (`send`), the retry policy around it (`retry`), paginated listings (`listing`), token-less file downloads
//! (`download`), enrollment reads and writes (`enrollments`), and user, account and role reads (`users`).

mod download;
mod enrollments;
mod listing;
mod retry;
mod send;
mod users;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::CanvasError;
use super::pacer::Pacer;
use super::path::{encode_segment, sis_segment};
use crate::config::{CanvasSettings, LimitsSettings, TokenSource};
use crate::domain::UserIdKind;
use crate::metrics::Metrics;
pub use enrollments::EnrollTarget;
pub use send::Body;
pub(in crate::canvas) use send::On401;
pub use users::UserRef;

/// Everything the client needs from the settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: Url,
    pub token: TokenSource,
    pub per_page: u32,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
    pub requests_per_second: Option<f64>,
    pub max_in_flight: u32,
    pub max_retries: u32,
    pub cycle_retry_budget: u32,
    pub user_id_kind: UserIdKind,
    /// First retry delay; doubles per retry up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl ClientOptions {
    pub fn new(canvas: &CanvasSettings, limits: &LimitsSettings, user_id_kind: UserIdKind) -> Self {
        Self {
            base_url: canvas.base_url.clone(),
            token: canvas.token.clone(),
            per_page: canvas.per_page,
            request_timeout: canvas.request_timeout,
            max_response_bytes: canvas.max_response_bytes,
            requests_per_second: limits.requests_per_second,
            max_in_flight: limits.max_in_flight,
            max_retries: limits.max_retries,
            cycle_retry_budget: limits.cycle_retry_budget,
            user_id_kind,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Requests made since the last [`CanvasClient::begin_cycle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    pub requests: u64,
    pub gets: u64,
    pub writes: u64,
    pub retries: u64,
    pub throttled: u64,
}

/// The live counts behind [`RequestStats`], shared by the Canvas and Open edX clients.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub gets: AtomicU64,
    pub writes: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
}

impl Counters {
    /// Starts counting a new cycle.
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.gets,
            &self.writes,
            &self.retries,
            &self.throttled,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub fn stats(&self) -> RequestStats {
        RequestStats {
            requests: self.requests.load(Ordering::SeqCst),
            gets: self.gets.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            retries: self.retries.load(Ordering::SeqCst),
            throttled: self.throttled.load(Ordering::SeqCst),
        }
    }
}

pub struct CanvasClient {
    http: reqwest::Client,
    opts: ClientOptions,
    token: RwLock<SecretString>,
    token_reloaded: AtomicBool,
    auth_failed: AtomicBool,
    limiter: Option<DefaultDirectRateLimiter>,
    pacer: Pacer,
    metrics: Arc<Metrics>,
    counters: Counters,
    retry_budget: AtomicU32,
    consecutive_failures: AtomicU32,
}

impl std::fmt::Debug for CanvasClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanvasClient")
            .field("base_url", &self.opts.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl CanvasClient {
    pub fn new(opts: ClientOptions, metrics: Arc<Metrics>) -> Result<Self, CanvasError> {
        let token = opts
            .token
            .load()
            .map_err(|e| CanvasError::Token(e.to_string()))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(opts.request_timeout)
            .connect_timeout(opts.request_timeout.min(Duration::from_secs(10)))
            .user_agent(format!(
                "rostersync/{} (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ))
            .build()
            .map_err(|e| CanvasError::Network {
                message: format!("cannot build the HTTP client: {e}"),
                attempts: 0,
            })?;
        // Unset, the pacer alone paces (by `X-Rate-Limit-Remaining`); set, a static cap on top of it.
        let limiter = opts.requests_per_second.map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate.max(0.0001));
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::MIN);
            RateLimiter::direct(quota)
        });
        Ok(Self {
            http,
            limiter,
            pacer: Pacer::new(opts.max_in_flight),
            retry_budget: AtomicU32::new(opts.cycle_retry_budget),
            token: RwLock::new(token),
            token_reloaded: AtomicBool::new(false),
            auth_failed: AtomicBool::new(false),
            metrics,
            counters: Counters::default(),
            consecutive_failures: AtomicU32::new(0),
            opts,
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Resets the per-cycle state: retry budget, request counters, the auth-failed latch and token re-read.
    pub fn begin_cycle(&self) {
        self.retry_budget
            .store(self.opts.cycle_retry_budget, Ordering::SeqCst);
        self.consecutive_failures.store(0, Ordering::SeqCst);
        self.auth_failed.store(false, Ordering::SeqCst);
        self.token_reloaded.store(false, Ordering::SeqCst);
        self.counters.reset();
    }

    pub fn stats(&self) -> RequestStats {
        self.counters.stats()
    }

    /// The current adaptive in-flight limit.
    pub fn in_flight_limit(&self) -> u32 {
        self.pacer.limit()
    }

    pub(super) fn api_url(&self, path: &str) -> Result<Url, CanvasError> {
        let base = self.opts.base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/api/v1/{path}"))
            .map_err(|e| CanvasError::Decode(format!("cannot build a Canvas URL: {e}")))
    }
}

pub(super) fn encode_account(account_id: &str) -> String {
    // `self`, numeric ids and `sis_account_id:X` forms all pass through; the value after a colon is escaped.
    match account_id.split_once(':') {
        Some((column, value)) => sis_segment(column, value),
        None => encode_segment(account_id),
    }
}

pub(super) fn decode<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, CanvasError> {
    serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).replace(['\n', '\r'], " ");
        CanvasError::Decode(format!("expected a JSON {expected}, got `{start}` ({e})"))
    })
}
