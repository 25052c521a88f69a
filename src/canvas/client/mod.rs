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
//! - Writes that time out are not blindly resent: the enrollment is looked up first (Canvas may have applied it).
//! - Redirects are never followed (the token must not travel to an SSO or maintenance host); pagination links
//!   are followed only on the configured origin.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use backon::BackoffBuilder;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, LINK};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::error::{CanvasError, canvas_message};
use super::link;
use super::model::{Account, Enrollment, Role, User};
use super::pacer::Pacer;
use super::path::{encode_segment, sis_segment};
use super::status::{Attempt, Via, classify};
use crate::config::{CanvasSettings, LimitsSettings, TokenSource};
use crate::domain::UserIdKind;
use crate::metrics::Metrics;

/// Everything the client needs from the settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: Url,
    pub token: TokenSource,
    pub per_page: u32,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
    pub requests_per_second: f64,
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

/// Where a new enrollment goes: a course's default section, or a section (facts §1: POST on the section route
/// takes the section's course).
#[derive(Debug, Clone, Copy)]
pub enum EnrollTarget<'a> {
    CourseDefaultSection { sis_course_id: &'a str },
    SisSection { sis_section_id: &'a str },
    Section { section_id: u64 },
}

/// Who is enrolled: by SIS identity (per `sis.user_id_kind`) or by Canvas id.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    Sis(&'a str),
    Canvas(u64),
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

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    gets: AtomicU64,
    writes: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

/// What a request sends.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Form(&'a [(String, String)]),
    /// A raw upload (a SIS import's CSV).
    Raw {
        content_type: &'static str,
        bytes: &'a [u8],
    },
}

/// A response that made it back: status, the headers the client reads, and the body (size-capped).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

/// After this many failures in a row with the retry budget used up, Canvas is treated as down for the cycle.
const OPEN_CIRCUIT_AFTER: u32 = 10;

pub struct CanvasClient {
    http: reqwest::Client,
    opts: ClientOptions,
    token: RwLock<SecretString>,
    token_reloaded: AtomicBool,
    auth_failed: AtomicBool,
    limiter: DefaultDirectRateLimiter,
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
        let period = Duration::from_secs_f64(1.0 / opts.requests_per_second.max(0.0001));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Ok(Self {
            http,
            limiter: RateLimiter::direct(quota),
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
        for c in [
            &self.counters.requests,
            &self.counters.gets,
            &self.counters.writes,
            &self.counters.retries,
            &self.counters.throttled,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub fn stats(&self) -> RequestStats {
        RequestStats {
            requests: self.counters.requests.load(Ordering::SeqCst),
            gets: self.counters.gets.load(Ordering::SeqCst),
            writes: self.counters.writes.load(Ordering::SeqCst),
            retries: self.counters.retries.load(Ordering::SeqCst),
            throttled: self.counters.throttled.load(Ordering::SeqCst),
        }
    }

    /// The current adaptive in-flight limit.
    pub fn in_flight_limit(&self) -> u32 {
        self.pacer.limit()
    }

    // --- endpoints -----------------------------------------------------------------------------------------------

    pub(super) fn api_url(&self, path: &str) -> Result<Url, CanvasError> {
        let base = self.opts.base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/api/v1/{path}"))
            .map_err(|e| CanvasError::Decode(format!("cannot build a Canvas URL: {e}")))
    }

    fn user_segment(&self, user: UserRef<'_>) -> String {
        match user {
            UserRef::Sis(id) => sis_segment(self.opts.user_id_kind.canvas_prefix(), id),
            UserRef::Canvas(id) => id.to_string(),
        }
    }

    fn user_param(&self, user: UserRef<'_>) -> String {
        match user {
            UserRef::Sis(id) => format!("{}:{id}", self.opts.user_id_kind.canvas_prefix()),
            UserRef::Canvas(id) => id.to_string(),
        }
    }

    /// `GET /users/self`: is the token accepted?
    pub async fn get_self(&self) -> Result<User, CanvasError> {
        let url = self.api_url("users/self")?;
        self.get_json(url).await
    }

    /// `GET /accounts/:id`: can the token read the account?
    pub async fn get_account(&self, account_id: &str) -> Result<Account, CanvasError> {
        let url = self.api_url(&format!("accounts/{}", encode_account(account_id)))?;
        self.get_json(url).await
    }

    /// Every course role of the account, active and inactive, with those inherited from parent accounts (facts §4:
    /// built-ins are included when `active` is requested).
    pub async fn list_roles(&self, account_id: &str) -> Result<Vec<Role>, CanvasError> {
        let mut url = self.api_url(&format!("accounts/{}/roles", encode_account(account_id)))?;
        url.query_pairs_mut()
            .append_pair("state[]", "active")
            .append_pair("state[]", "inactive")
            .append_pair("show_inherited", "true")
            .append_pair("per_page", &self.opts.per_page.to_string());
        self.list_all(url).await
    }

    /// Every enrollment of a course in the given states, in one paginated listing. `Ok(None)` when Canvas has no
    /// such course (404).
    pub async fn list_course_enrollments(
        &self,
        sis_course_id: &str,
        states: &[&str],
    ) -> Result<Option<Vec<Enrollment>>, CanvasError> {
        let mut url = self.api_url(&format!(
            "courses/{}/enrollments",
            sis_segment("sis_course_id", sis_course_id)
        ))?;
        {
            let mut q = url.query_pairs_mut();
            for s in states {
                q.append_pair("state[]", s);
            }
            q.append_pair("per_page", &self.opts.per_page.to_string());
        }
        match self.list_all(url).await {
            Ok(rows) => Ok(Some(rows)),
            Err(CanvasError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A user's enrollments in the given states (admin caller: literal states, facts §1).
    pub async fn list_user_enrollments(
        &self,
        user: UserRef<'_>,
        states: &[&str],
    ) -> Result<Vec<Enrollment>, CanvasError> {
        let mut url = self.api_url(&format!("users/{}/enrollments", self.user_segment(user)))?;
        {
            let mut q = url.query_pairs_mut();
            for s in states {
                q.append_pair("state[]", s);
            }
            q.append_pair("per_page", &self.opts.per_page.to_string());
        }
        self.list_all(url).await
    }

    /// `GET /users/:id`; `Ok(None)` when Canvas has no such user.
    pub async fn get_user(&self, user: UserRef<'_>) -> Result<Option<User>, CanvasError> {
        let url = self.api_url(&format!("users/{}", self.user_segment(user)))?;
        match self.get_json(url).await {
            Ok(u) => Ok(Some(u)),
            Err(CanvasError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates (or, for a row Canvas already has in another state, revives) an enrollment: `enrollment_state` as
    /// given (facts §10: omitting it would leave the user `invited`), `notify=false`.
    ///
    /// A POST that times out or gets a 5xx may still have been applied, so before it is sent again the user's
    /// enrollments are read back; if the enrollment is there in the wanted state, that is the answer.
    pub async fn create_enrollment(
        &self,
        target: EnrollTarget<'_>,
        user: UserRef<'_>,
        role_id: u64,
        state: &str,
    ) -> Result<Enrollment, CanvasError> {
        let path = match target {
            EnrollTarget::CourseDefaultSection { sis_course_id } => format!(
                "courses/{}/enrollments",
                sis_segment("sis_course_id", sis_course_id)
            ),
            EnrollTarget::SisSection { sis_section_id } => format!(
                "sections/{}/enrollments",
                sis_segment("sis_section_id", sis_section_id)
            ),
            EnrollTarget::Section { section_id } => format!("sections/{section_id}/enrollments"),
        };
        let url = self.api_url(&path)?;
        let form = vec![
            ("enrollment[user_id]".to_owned(), self.user_param(user)),
            ("enrollment[role_id]".to_owned(), role_id.to_string()),
            ("enrollment[enrollment_state]".to_owned(), state.to_owned()),
            ("enrollment[notify]".to_owned(), "false".to_owned()),
        ];
        let mut backoff = self.backoff();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .attempt(Method::POST, url.clone(), Some(Body::Form(&form)))
                .await
            {
                Ok(answer) => return decode(&answer.body, "enrollment"),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable { reason, error }) => {
                    let Some(delay) = self.next_delay(&mut backoff, reason) else {
                        return Err(error);
                    };
                    tracing::debug!(
                        attempts,
                        reason,
                        delay_ms = delay.as_millis() as u64,
                        "retrying enrollment create"
                    );
                    tokio::time::sleep(delay).await;
                    // Throttled requests never ran; anything else may have been applied.
                    if reason != "throttled"
                        && let Some(found) = self.find_created(target, user, role_id, state).await?
                    {
                        tracing::info!(
                            enrollment.id = found.id,
                            "enrollment create had been applied before the error"
                        );
                        return Ok(found);
                    }
                }
            }
        }
    }

    async fn find_created(
        &self,
        target: EnrollTarget<'_>,
        user: UserRef<'_>,
        role_id: u64,
        state: &str,
    ) -> Result<Option<Enrollment>, CanvasError> {
        let rows = self.list_user_enrollments(user, &[state]).await?;
        Ok(rows.into_iter().find(|e| {
            e.role_id == role_id
                && e.enrollment_state == state
                && e.associated_user_id.is_none()
                && match target {
                    EnrollTarget::CourseDefaultSection { sis_course_id } => {
                        e.sis_course_id.as_deref() == Some(sis_course_id)
                            && e.sis_section_id.is_none()
                    }
                    EnrollTarget::SisSection { sis_section_id } => {
                        e.sis_section_id.as_deref() == Some(sis_section_id)
                    }
                    EnrollTarget::Section { section_id } => e.course_section_id == section_id,
                }
        }))
    }

    /// `DELETE /courses/:course_id/enrollments/:id?task=` (conclude, delete, inactivate). `Ok(None)` when Canvas
    /// no longer has it (404: already gone, facts §1 "deleting twice → 404").
    pub async fn delete_enrollment(
        &self,
        course_id: u64,
        enrollment_id: u64,
        task: &str,
    ) -> Result<Option<Enrollment>, CanvasError> {
        let mut url = self.api_url(&format!("courses/{course_id}/enrollments/{enrollment_id}"))?;
        url.query_pairs_mut().append_pair("task", task);
        match self.request(Method::DELETE, url, None).await {
            Ok(answer) => decode(&answer.body, "enrollment").map(Some),
            Err(CanvasError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /courses/:course_id/enrollments/:id/reactivate` (only from `inactive`, facts §1).
    pub async fn reactivate_enrollment(
        &self,
        course_id: u64,
        enrollment_id: u64,
    ) -> Result<Enrollment, CanvasError> {
        let url = self.api_url(&format!(
            "courses/{course_id}/enrollments/{enrollment_id}/reactivate"
        ))?;
        let answer = self.request(Method::PUT, url, None).await?;
        decode(&answer.body, "enrollment")
    }

    // --- transport -----------------------------------------------------------------------------------------------

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, CanvasError> {
        let answer = self.request(Method::GET, url, None).await?;
        decode(&answer.body, "object")
    }

    /// Follows `rel="next"` until it is absent, refusing anything that would make the listing silently partial.
    pub async fn list_all<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, CanvasError> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen = std::collections::HashSet::new();
        let mut page = 0usize;
        loop {
            page += 1;
            let answer = self.request(Method::GET, url.clone(), None).await?;
            let items: Vec<T> = decode(&answer.body, "array")?;
            let full_page = items.len() >= self.opts.per_page as usize;
            out.extend(items);
            let links = answer
                .headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(link::parse)
                .collect::<Vec<_>>();
            match link::find(&links, "next") {
                Some(next) => {
                    let next = self.same_origin(next)?;
                    if !seen.insert(next.to_string()) {
                        return Err(CanvasError::Pagination(format!(
                            "page {page} links back to a page already read; stopping instead of looping"
                        )));
                    }
                    url = next;
                }
                None => {
                    // On the final page Canvas sends `last` = `current` (facts §3). A full page without `next`
                    // whose `last` is missing or points elsewhere means the listing was cut short.
                    if full_page {
                        let last = link::find(&links, "last");
                        let current = link::find(&links, "current");
                        let consistent = match (last, current) {
                            (Some(l), Some(c)) => l == c,
                            (Some(_), None) => true,
                            (None, _) => false,
                        };
                        if !consistent {
                            return Err(CanvasError::Pagination(format!(
                                "page {page} is full ({} rows) but has no rel=\"next\" link and its rel=\"last\" \
                                 does not mark it as the final page",
                                self.opts.per_page
                            )));
                        }
                    }
                    return Ok(out);
                }
            }
        }
    }

    fn same_origin(&self, link: &str) -> Result<Url, CanvasError> {
        let url = Url::parse(link)
            .or_else(|_| self.opts.base_url.join(link))
            .map_err(|_| {
                CanvasError::Pagination(format!("unparsable rel=\"next\" link `{link}`"))
            })?;
        let base = &self.opts.base_url;
        if url.scheme() != base.scheme()
            || url.host_str().map(str::to_ascii_lowercase)
                != base.host_str().map(str::to_ascii_lowercase)
            || url.port_or_known_default() != base.port_or_known_default()
        {
            return Err(CanvasError::Pagination(format!(
                "rel=\"next\" points to another origin ({}://{}); it is not followed, the token would be sent there",
                url.scheme(),
                url.host_str().unwrap_or("?")
            )));
        }
        Ok(url)
    }

    fn backoff(&self) -> backon::ExponentialBackoff {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.opts.min_backoff)
            .with_max_delay(self.opts.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.opts.max_retries as usize)
            .build()
    }

    /// The delay before the next retry, or `None` when the request's retries or the cycle's budget are used up.
    fn next_delay(
        &self,
        backoff: &mut backon::ExponentialBackoff,
        reason: &'static str,
    ) -> Option<Duration> {
        let delay = backoff.next()?;
        let took = self
            .retry_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_ok();
        if !took {
            return None;
        }
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        self.metrics.count_retry(reason);
        // Throttling needs the bucket to drain: at least a second.
        Some(if reason == "throttled" {
            delay.max(Duration::from_secs(1))
        } else {
            delay
        })
    }

    /// A request with the retry policy for idempotent calls (GET, PUT, DELETE).
    pub(super) async fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
    ) -> Result<Answer, CanvasError> {
        let mut backoff = self.backoff();
        loop {
            match self.attempt(method.clone(), url.clone(), body).await {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable { reason, error }) => {
                    match self.next_delay(&mut backoff, reason) {
                        Some(delay) => {
                            tracing::debug!(%method, path = url.path(), reason, delay_ms = delay.as_millis() as u64, "retrying Canvas request");
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(error),
                    }
                }
            }
        }
    }

    fn bearer(&self) -> Result<HeaderValue, CanvasError> {
        let token = self
            .token
            .read()
            .map_err(|_| CanvasError::Token("token lock poisoned".into()))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| {
                CanvasError::Token(
                    "the token contains characters not allowed in an HTTP header".into(),
                )
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Scrubs the token out of any text that could end up in a log or the audit log.
    fn scrub(&self, text: String) -> String {
        match self.token.read() {
            Ok(t) if !t.expose_secret().is_empty() && text.contains(t.expose_secret()) => {
                text.replace(t.expose_secret(), "[REDACTED]")
            }
            _ => text,
        }
    }

    /// One attempt, with a single transparent re-read of `token_file` on a 401.
    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
    ) -> Result<Answer, Attempt> {
        if self.auth_failed.load(Ordering::SeqCst) {
            return Err(Attempt::Final(CanvasError::Unauthorized {
                status: 401,
                message: "the token was rejected earlier in this cycle".into(),
            }));
        }
        if self.retry_budget.load(Ordering::SeqCst) == 0
            && self.consecutive_failures.load(Ordering::SeqCst) >= OPEN_CIRCUIT_AFTER
        {
            return Err(Attempt::Final(CanvasError::Unavailable));
        }
        loop {
            let result = self.send_once(method.clone(), url.clone(), body).await;
            match result {
                Err(Attempt::Final(CanvasError::Unauthorized { status, message })) => {
                    if matches!(self.opts.token, TokenSource::File(_))
                        && !self.token_reloaded.swap(true, Ordering::SeqCst)
                        && self.reload_token()
                    {
                        tracing::warn!(
                            "Canvas rejected the token; re-read canvas.token_file and trying once more"
                        );
                        continue;
                    }
                    self.auth_failed.store(true, Ordering::SeqCst);
                    let hint = match &self.opts.token {
                        TokenSource::File(path) => {
                            format!(" (token read from `{}`)", path.display())
                        }
                        TokenSource::Inline(_) => String::new(),
                    };
                    return Err(Attempt::Final(CanvasError::Unauthorized {
                        status,
                        message: format!("{message}{hint}"),
                    }));
                }
                Err(Attempt::Retryable { reason, error }) => {
                    self.consecutive_failures.fetch_add(1, Ordering::SeqCst);
                    return Err(Attempt::Retryable { reason, error });
                }
                other => {
                    if other.is_ok() {
                        self.consecutive_failures.store(0, Ordering::SeqCst);
                    }
                    return other;
                }
            }
        }
    }

    fn reload_token(&self) -> bool {
        match self.opts.token.load() {
            Ok(new) => match self.token.write() {
                Ok(mut t) => {
                    *t = new;
                    true
                }
                Err(_) => false,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot re-read the canvas token file");
                false
            }
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
    ) -> Result<Answer, Attempt> {
        self.limiter.until_ready().await;
        let permit = self.pacer.acquire().await;
        self.metrics
            .in_flight_limit
            .set(i64::from(self.pacer.limit()));
        let bearer = self.bearer().map_err(Attempt::Final)?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, bearer)
            .header(ACCEPT, "application/json");
        match body {
            Some(Body::Form(form)) => req = req.form(form),
            Some(Body::Raw {
                content_type,
                bytes,
            }) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes.to_vec());
            }
            None => {}
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if method == Method::GET {
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
        }
        let result = match req.send().await {
            Ok(resp) => self.read_body(resp).await,
            Err(e) => Err(TransportError::Http(e)),
        };
        drop(permit);
        let answer = match result {
            Ok(answer) => answer,
            Err(TransportError::TooLarge) => {
                self.metrics.count_request(method.as_str(), "error");
                return Err(Attempt::Final(CanvasError::TooLarge {
                    limit: self.opts.max_response_bytes,
                }));
            }
            Err(TransportError::Http(e)) => {
                let timeout = e.is_timeout();
                self.metrics
                    .count_request(method.as_str(), if timeout { "timeout" } else { "error" });
                if timeout {
                    return Err(Attempt::Retryable {
                        reason: "timeout",
                        error: CanvasError::Timeout { attempts: 1 },
                    });
                }
                let message = self.scrub(e.without_url().to_string());
                return Err(Attempt::Retryable {
                    reason: "network",
                    error: CanvasError::Network {
                        message,
                        attempts: 1,
                    },
                });
            }
        };
        let status = answer.status;
        self.metrics.count_request(method.as_str(), status.as_str());
        let header_f64 = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if status.is_success() {
            self.pacer.on_response(
                header_f64("x-rate-limit-remaining"),
                header_f64("x-request-cost"),
            );
            return Ok(answer);
        }
        let message = self.scrub(canvas_message(&answer.body));
        let attempt = classify(status, &answer.headers, message, Via::Api);
        if attempt.is_throttled() {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            self.pacer.on_throttled();
        } else {
            self.pacer.on_response(
                header_f64("x-rate-limit-remaining"),
                header_f64("x-request-cost"),
            );
        }
        Err(attempt)
    }

    /// Downloads a file Canvas handed out (a report's `attachment.url`, authorised by its verifier), WITHOUT the
    /// token: such URLs may point at a files host, and the admin token must never go there. Redirects are followed
    /// by hand, only to http(s), and still without the token. Retried like any read.
    pub(super) async fn download(&self, url: Url, limit: u64) -> Result<Vec<u8>, CanvasError> {
        let mut backoff = self.backoff();
        let mut url = url;
        let mut redirects = 0;
        loop {
            self.limiter.until_ready().await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
            let result = match self.http.get(url.clone()).send().await {
                Ok(resp) => self.read_body_capped(resp, limit).await,
                Err(e) => Err(TransportError::Http(e)),
            };
            let (reason, error) = match result {
                Ok(answer) if answer.status.is_success() => {
                    self.metrics.count_request("GET", answer.status.as_str());
                    return Ok(answer.body);
                }
                Ok(answer) if answer.status.is_redirection() && redirects < 5 => {
                    self.metrics.count_request("GET", answer.status.as_str());
                    redirects += 1;
                    let next = answer
                        .headers
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| url.join(l).ok())
                        .filter(|u| matches!(u.scheme(), "http" | "https"));
                    match next {
                        Some(next) => {
                            url = next;
                            continue;
                        }
                        None => {
                            return Err(CanvasError::Decode(
                                "a file download redirected nowhere usable".into(),
                            ));
                        }
                    }
                }
                Ok(answer) => {
                    self.metrics.count_request("GET", answer.status.as_str());
                    let message = self.scrub(canvas_message(&answer.body));
                    let attempt = classify(answer.status, &answer.headers, message, Via::Download);
                    // A throttle is counted; the pacer is not told (the files host is not the API's bucket).
                    if attempt.is_throttled() {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    match attempt {
                        Attempt::Retryable { reason, error } => (reason, error),
                        Attempt::Final(error) => return Err(error),
                    }
                }
                Err(TransportError::TooLarge) => {
                    self.metrics.count_request("GET", "error");
                    return Err(CanvasError::TooLarge { limit });
                }
                Err(TransportError::Http(e)) if e.is_timeout() => {
                    self.metrics.count_request("GET", "timeout");
                    ("timeout", CanvasError::Timeout { attempts: 1 })
                }
                Err(TransportError::Http(e)) => {
                    self.metrics.count_request("GET", "error");
                    let message = self.scrub(e.without_url().to_string());
                    (
                        "network",
                        CanvasError::Network {
                            message,
                            attempts: 1,
                        },
                    )
                }
            };
            match self.next_delay(&mut backoff, reason) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            }
        }
    }

    async fn read_body(&self, resp: reqwest::Response) -> Result<Answer, TransportError> {
        self.read_body_capped(resp, self.opts.max_response_bytes)
            .await
    }

    async fn read_body_capped(
        &self,
        mut resp: reqwest::Response,
        limit: u64,
    ) -> Result<Answer, TransportError> {
        let status = resp.status();
        let headers = resp.headers().clone();
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(TransportError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(TransportError::Http)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(TransportError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

enum TransportError {
    Http(reqwest::Error),
    TooLarge,
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
