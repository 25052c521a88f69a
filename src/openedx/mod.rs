//! The Open edX target (CONTRACT v2 "a second target"): [`OpenEdxClient`] speaks the program-enrollment API as
//! `openedx-api-facts.md` describes it.
//!
//! - Auth (facts §1): an OAuth2 client-credentials token with `token_type=jwt`, sent as `Authorization: JWT ...`
//!   (marked sensitive). A new token is requested before `expires_in` runs out and once on a 401. The secret and
//!   the tokens live in `SecretString`s and never reach an error, a log line or `Debug`.
//! - A 403 says which of the two causes it is (facts §1.6): the JWT's `is_restricted` claim tells a restricted
//!   application from an owner without `is_staff`.
//! - Retries: 5xx, timeouts and connection errors with exponential backoff and jitter (backon, as the Canvas
//!   client), bounded by `limits.max_retries`; a 429 waits its `Retry-After` (facts §7.3). PUT is an idempotent
//!   upsert (facts §2.5), so a write is retried like a read; a batch whose retries run out is `Failed` key by key
//!   (a 500 rolls the whole request back, facts §7.4), and the other batches go on.
//! - Reads follow the cursor `next` until null, only on the configured origin (facts §4.3).
//! - Writes are PUTs of at most 25 rows (facts §7.5), split here, never two casings of one key in one batch
//!   (facts §6.5); the per-key map is parsed on 200, 207 and 422 (facts §2.7).

mod error;
mod model;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use base64::Engine;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::canvas::client::Counters;
use crate::config::{ClientSecretSource, LimitsSettings, OpenEdxSettings};
use crate::metrics::Metrics;
pub use error::OpenEdxError;
use model::{COURSE_OK, PROGRAM_OK, Page};
pub use model::{
    CourseEnrollment, CourseEnrollmentWrite, CourseStatus, KeyError, KeyOutcome, KeyResult, Keyed,
    ProgramEnrollment, ProgramEnrollmentWrite, ProgramStatus,
};

/// Facts §7.5: `MAX_ENROLLMENT_RECORDS = 25` rows per write.
pub const MAX_BATCH: usize = 25;
/// Facts §4.3: no `max_page_size`, so any positive size is honoured; 500 keeps pages few and bodies small.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// A `Retry-After` longer than this is not waited for: the call fails as throttled.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Everything the client needs from the settings.
#[derive(Debug, Clone)]
pub struct OpenEdxClientOptions {
    pub base_url: Url,
    pub client_id: String,
    pub client_secret: ClientSecretSource,
    pub request_timeout: Duration,
    pub page_size: u32,
    pub max_retries: u32,
    /// First retry delay; doubles per retry up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl OpenEdxClientOptions {
    pub fn new(openedx: &OpenEdxSettings, limits: &LimitsSettings) -> Self {
        Self {
            base_url: openedx.base_url.clone(),
            client_id: openedx.client_id.clone(),
            client_secret: openedx.client_secret.clone(),
            request_timeout: openedx.request_timeout,
            page_size: DEFAULT_PAGE_SIZE,
            max_retries: limits.max_retries,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The results of a write: one per key, in the order given. `stopped` is the program-wide error (404 program or
/// course, 401, 403, the secret) that ended the write early: the keys of the batches not sent are `Failed` with it,
/// while batches sent before it keep their own results (nothing is half-recorded). The cycle turns a 404 into
/// skipped rows ([`OpenEdxError::skip_reason`]) and ends on [`OpenEdxError::ends_cycle`].
#[derive(Debug)]
pub struct WriteReport {
    pub results: Vec<KeyResult>,
    pub stopped: Option<OpenEdxError>,
}

/// A JWT and when to replace it.
struct Token {
    jwt: SecretString,
    /// Some seconds before `expires_in` runs out, so that no request carries a token that expires on the way.
    renew_at: Instant,
}

/// The Open edX program-enrollment API client. `Debug` shows the LMS and the client id, never a secret.
pub struct OpenEdxClient {
    opts: OpenEdxClientOptions,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
    counters: Counters,
    /// The daemon's registry: the target's requests and retries go into the same families as Canvas's
    /// (CONTRACT v2: metrics work for both targets).
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for OpenEdxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenEdxClient")
            .field("base_url", &self.opts.base_url.as_str())
            .field("client_id", &self.opts.client_id)
            .finish_non_exhaustive()
    }
}

/// One answer that is not a transport error: status and body.
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<u64>,
}

/// How one attempt ended.
enum Attempt {
    Done(Answer),
    /// 401: the token is dropped; one new token and one more try.
    Unauthorized(String),
    /// Try again after `wait` (at least; the backoff may add more), or give up with `error`.
    Retry {
        wait: Option<Duration>,
        error: OpenEdxError,
        /// The `reason` label of `rostersync_canvas_retries_total`.
        reason: &'static str,
    },
    Fail(OpenEdxError),
}

impl OpenEdxClient {
    pub fn new(opts: OpenEdxClientOptions) -> Result<Self, OpenEdxError> {
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
            .map_err(|e| OpenEdxError::Network {
                method: "-".into(),
                path: "-".into(),
                message: format!("cannot build the HTTP client: {e}"),
                attempts: 0,
            })?;
        Ok(Self {
            opts,
            http,
            token: tokio::sync::Mutex::new(None),
            counters: Counters::default(),
            metrics: None,
        })
    }

    /// Counts requests and retries in the daemon's metrics as well as per cycle.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sends one request and reads its answer whole; it is counted for the cycle, and in the metrics by status (or
    /// `timeout`/`error`).
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<Answer, Attempt> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                response.text().await.map(|body| Answer {
                    status,
                    body,
                    retry_after,
                })
            }
            Err(e) => Err(e),
        };
        let counted = match &result {
            Ok(answer) => answer.status.to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "error".to_owned(),
        };
        if let Some(metrics) = &self.metrics {
            metrics.count_request(method, &counted);
        }
        result.map_err(|e| transport_attempt(&e, method, path))
    }

    /// Starts counting a new cycle's requests.
    pub fn begin_cycle(&self) {
        self.counters.reset();
    }

    /// The requests since [`OpenEdxClient::begin_cycle`] (token requests included).
    pub fn stats(&self) -> crate::canvas::RequestStats {
        self.counters.stats()
    }

    /// `{base}/api/program_enrollments/v1/programs/{uuid}/enrollments/` (facts §2.1).
    fn program_url(&self, program_uuid: &str) -> Url {
        self.api_url(&["programs", program_uuid, "enrollments", ""])
    }

    /// `{base}/api/program_enrollments/v1/programs/{uuid}/courses/{run}/enrollments/` (facts §3.1).
    fn course_url(&self, program_uuid: &str, course_key: &str) -> Url {
        self.api_url(&[
            "programs",
            program_uuid,
            "courses",
            course_key,
            "enrollments",
            "",
        ])
    }

    fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.opts.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["api", "program_enrollments", "v1"])
                .extend(segments);
        }
        url
    }

    /// A valid JWT: the cached one, or a new one from the token endpoint (facts §1.2–§1.3).
    async fn token(&self) -> Result<SecretString, Attempt> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.jwt.clone());
        }
        *slot = None;
        let secret = self
            .opts
            .client_secret
            .load()
            .map_err(|e| Attempt::Fail(OpenEdxError::Secret(e.to_string())))?;
        let mut url = self.opts.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["oauth2", "access_token"]);
        }
        let path = url.path().to_owned();
        let request = self.http.post(url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", self.opts.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("token_type", "jwt"),
        ]);
        let answer = self.exchange(request, "POST", &path).await?;
        match answer.status {
            200 => {}
            400 | 401 => {
                return Err(Attempt::Fail(OpenEdxError::TokenRefused {
                    client_id: self.opts.client_id.clone(),
                    status: answer.status,
                }));
            }
            _ => return Err(status_attempt(answer, "POST", &path)),
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            access_token: SecretString,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let parsed: TokenAnswer = serde_json::from_str(&answer.body).map_err(|e| {
            Attempt::Fail(OpenEdxError::Decode {
                path: path.clone(),
                message: format!("token answer: {e}"),
            })
        })?;
        // Facts §1.3: always the returned `expires_in` (default 3600 s); renew a tenth early, at most a minute.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        let jwt = parsed.access_token;
        *slot = Some(Token {
            jwt: jwt.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(jwt)
    }

    /// Drops the cached token so that the next call requests a new one.
    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// One try: a token, the request, the answer classified.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Attempt {
        let path = url.path().to_owned();
        let jwt = match self.token().await {
            Ok(jwt) => jwt,
            Err(attempt) => return attempt,
        };
        let mut auth = match HeaderValue::from_str(&format!("JWT {}", jwt.expose_secret())) {
            Ok(value) => value,
            Err(_) => {
                return Attempt::Fail(OpenEdxError::Decode {
                    path,
                    message: "the token endpoint answered a token that is not a header value"
                        .into(),
                });
            }
        };
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        match *method {
            Method::GET => &self.counters.gets,
            _ => &self.counters.writes,
        }
        .fetch_add(1, Ordering::Relaxed);
        let answer = match self.exchange(request, method.as_str(), &path).await {
            Ok(answer) => answer,
            Err(attempt) => return attempt,
        };
        match answer.status {
            200..=299 | 422 => Attempt::Done(answer),
            401 => Attempt::Unauthorized(developer_message(&answer.body)),
            403 => Attempt::Fail(self.forbidden(&jwt)),
            _ => status_attempt(answer, method.as_str(), &path),
        }
    }

    /// Facts §1.6: which of the two causes of a 403 it is, from the JWT's own claims.
    fn forbidden(&self, jwt: &SecretString) -> OpenEdxError {
        let claims = jwt
            .expose_secret()
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload.trim_end_matches('='))
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        let restricted = claims
            .as_ref()
            .and_then(|c| c["is_restricted"].as_bool())
            .unwrap_or(false);
        if restricted {
            OpenEdxError::RestrictedApplication {
                client_id: self.opts.client_id.clone(),
            }
        } else {
            let owner = claims
                .as_ref()
                .and_then(|c| c["preferred_username"].as_str())
                .unwrap_or("(unknown)")
                .to_owned();
            OpenEdxError::OwnerNotStaff {
                client_id: self.opts.client_id.clone(),
                owner,
            }
        }
    }

    /// A request with the retry policy: one new token on a 401, `Retry-After` on a 429, backoff on 5xx and
    /// transport errors, bounded by `max_retries`.
    async fn request(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, OpenEdxError> {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.opts.min_backoff)
            .with_max_delay(self.opts.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.opts.max_retries as usize)
            .build();
        let mut reauthenticated = false;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.attempt(&method, url, body).await {
                Attempt::Done(answer) => return Ok(answer),
                Attempt::Fail(error) => return Err(error),
                Attempt::Unauthorized(message) => {
                    self.forget_token().await;
                    if reauthenticated {
                        return Err(OpenEdxError::Unauthorized {
                            path: url.path().to_owned(),
                            message,
                        });
                    }
                    reauthenticated = true;
                }
                Attempt::Retry {
                    wait,
                    mut error,
                    reason,
                } => {
                    if let OpenEdxError::Network { attempts: n, .. } = &mut error {
                        *n = attempts;
                    }
                    let Some(delay) = backoff.next() else {
                        return Err(error);
                    };
                    let delay = match wait {
                        Some(wait) if wait > MAX_RETRY_AFTER => return Err(error),
                        Some(wait) => {
                            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                            wait
                        }
                        None => delay,
                    };
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    if let Some(metrics) = &self.metrics {
                        metrics.count_retry(reason);
                    }
                    tracing::debug!(
                        %method,
                        path = url.path(),
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "retrying Open edX request"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Maps a program/course 404 to its typed error (facts §2.2, §3.1).
    fn not_found(
        &self,
        answer: &Answer,
        program_uuid: &str,
        course_key: Option<&str>,
    ) -> Option<OpenEdxError> {
        if answer.status != 404 {
            return None;
        }
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let course = || course_key.unwrap_or_default().to_owned();
        match body["error_code"].as_str()? {
            "program_does_not_exist" => Some(OpenEdxError::ProgramNotFound {
                program_uuid: program_uuid.to_owned(),
            }),
            "invalid_course_key" => Some(OpenEdxError::InvalidCourseKey {
                course_key: course(),
            }),
            "course_does_not_exist" => Some(OpenEdxError::CourseNotFound {
                course_key: course(),
            }),
            "course_not_in_program" => Some(OpenEdxError::CourseNotInProgram {
                program_uuid: program_uuid.to_owned(),
                course_key: course(),
            }),
            _ => None,
        }
    }

    /// Every page of a listing, following `next` until null (facts §4.3).
    async fn list<T: DeserializeOwned>(
        &self,
        mut url: Url,
        program_uuid: &str,
        course_key: Option<&str>,
    ) -> Result<Vec<T>, OpenEdxError> {
        url.query_pairs_mut()
            .append_pair("page_size", &self.opts.page_size.to_string());
        let mut all = Vec::new();
        loop {
            let answer = self.request(Method::GET, &url, None).await?;
            if let Some(error) = self.not_found(&answer, program_uuid, course_key) {
                return Err(error);
            }
            if answer.status != 200 {
                return Err(http_error(&answer, "GET", url.path()));
            }
            let page: Page<T> =
                serde_json::from_str(&answer.body).map_err(|e| OpenEdxError::Decode {
                    path: url.path().to_owned(),
                    message: e.to_string(),
                })?;
            all.extend(page.results);
            let Some(next) = page.next else {
                return Ok(all);
            };
            let next_url = Url::parse(&next).ok().filter(|n| {
                n.origin() == self.opts.base_url.origin()
                    && n.path()
                        .starts_with(self.opts.base_url.path().trim_end_matches('/'))
            });
            url = next_url.ok_or(OpenEdxError::ForeignNext { next })?;
        }
    }

    /// `check`: a token is issued and the application may read program enrollments (not restricted, owner
    /// staff). Probes a program that cannot exist: Open edX checks permission before the program (facts §1.6,
    /// §2.2), so its 404 `program_does_not_exist` means the credentials and the application are fine.
    pub async fn check_access(&self) -> Result<(), OpenEdxError> {
        match self
            .list_program_enrollments("00000000-0000-0000-0000-000000000000")
            .await
        {
            Ok(_) | Err(OpenEdxError::ProgramNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every program enrollment of a program, waiting and linked, any status (facts §4.1).
    pub async fn list_program_enrollments(
        &self,
        program_uuid: &str,
    ) -> Result<Vec<ProgramEnrollment>, OpenEdxError> {
        self.list(self.program_url(program_uuid), program_uuid, None)
            .await
    }

    /// Every course enrollment of a program in one course run, any status (facts §4.2).
    pub async fn list_course_enrollments(
        &self,
        program_uuid: &str,
        course_key: &str,
    ) -> Result<Vec<CourseEnrollment>, OpenEdxError> {
        self.list(
            self.course_url(program_uuid, course_key),
            program_uuid,
            Some(course_key),
        )
        .await
    }

    /// PUT (create or update) program enrollments, in batches of at most 25. One result per key, in the order
    /// given; see [`WriteReport`] for a write stopped by a program-wide error.
    pub async fn write_program_enrollments(
        &self,
        program_uuid: &str,
        items: &[ProgramEnrollmentWrite],
    ) -> WriteReport {
        self.write(
            self.program_url(program_uuid),
            program_uuid,
            None,
            items,
            PROGRAM_OK,
        )
        .await
    }

    /// PUT (create or update) a program's course enrollments in one run, in batches of at most 25.
    pub async fn write_course_enrollments(
        &self,
        program_uuid: &str,
        course_key: &str,
        items: &[CourseEnrollmentWrite],
    ) -> WriteReport {
        self.write(
            self.course_url(program_uuid, course_key),
            program_uuid,
            Some(course_key),
            items,
            COURSE_OK,
        )
        .await
    }

    async fn write<T: Serialize + Keyed>(
        &self,
        url: Url,
        program_uuid: &str,
        course_key: Option<&str>,
        items: &[T],
        ok_set: &[&str],
    ) -> WriteReport {
        let mut outcomes: Vec<Option<KeyOutcome>> = vec![None; items.len()];
        let mut stopped: Option<OpenEdxError> = None;
        for batch in batches(items) {
            let rows: Vec<&T> = batch.iter().map(|&i| &items[i]).collect();
            let batch_outcomes = match &stopped {
                // A program-wide error: the batches not sent are failed with it, never half-recorded.
                Some(error) => failed(&rows, &error.to_string()),
                None => match self
                    .put_batch(&url, program_uuid, course_key, &rows, ok_set)
                    .await
                {
                    Ok(batch_outcomes) => batch_outcomes,
                    Err(error) => {
                        let batch_outcomes = failed(&rows, &error.to_string());
                        stopped = Some(error);
                        batch_outcomes
                    }
                },
            };
            for (&index, outcome) in batch.iter().zip(batch_outcomes) {
                outcomes[index] = Some(outcome);
            }
        }
        let results = items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| KeyResult {
                student_key: item.student_key().to_owned(),
                outcome: outcome.unwrap_or_else(|| KeyOutcome::Failed("not sent".into())),
            })
            .collect();
        WriteReport { results, stopped }
    }

    /// One PUT of one batch: its per-key outcomes, or the program-wide error that stops the write (404 program or
    /// course, 401, 403, the secret). Other failures (500 after retries, 429, timeouts, 400) fail the batch's keys.
    async fn put_batch<T: Serialize + Keyed>(
        &self,
        url: &Url,
        program_uuid: &str,
        course_key: Option<&str>,
        rows: &[&T],
        ok_set: &[&str],
    ) -> Result<Vec<KeyOutcome>, OpenEdxError> {
        let body = match serde_json::to_value(rows) {
            Ok(body) => body,
            Err(e) => return Ok(failed(rows, &format!("cannot encode the batch: {e}"))),
        };
        match self.request(Method::PUT, url, Some(&body)).await {
            Ok(answer) => {
                if let Some(error) = self.not_found(&answer, program_uuid, course_key) {
                    return Err(error);
                }
                Ok(match answer.status {
                    200 | 207 | 422 => per_key(&answer.body, rows, ok_set),
                    // An empty body answers 204; batches are never empty.
                    _ => failed(rows, &http_error(&answer, "PUT", url.path()).to_string()),
                })
            }
            Err(error) if error.ends_cycle() => Err(error),
            Err(error) => Ok(failed(rows, &error.to_string())),
        }
    }
}

/// Splits `items` into batches of at most [`MAX_BATCH`] indices, never two keys equal case-insensitively in one
/// batch (facts §6.5: Open edX would answer `duplicated` and drop both): a repeated key goes into a later batch,
/// so the rows of one key are written in the order given.
fn batches<T: Keyed>(items: &[T]) -> Vec<Vec<usize>> {
    let mut batches: Vec<(Vec<usize>, HashSet<String>)> = Vec::new();
    // The first batch a key may still go into: after the last batch that holds it.
    let mut earliest: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let key = item.student_key().to_lowercase();
        let from = earliest.get(&key).copied().unwrap_or(0);
        let slot = (from..batches.len())
            .find(|&b| batches[b].0.len() < MAX_BATCH && !batches[b].1.contains(&key));
        let slot = slot.unwrap_or_else(|| {
            batches.push((Vec::new(), HashSet::new()));
            batches.len() - 1
        });
        batches[slot].0.push(index);
        batches[slot].1.insert(key.clone());
        earliest.insert(key, slot + 1);
    }
    batches.into_iter().map(|(batch, _)| batch).collect()
}

/// The per-key map of a 200/207/422 (facts §2.7), matched case-insensitively: answers echo the request casing,
/// but `conflict` rows carry the stored casing (facts §6.5).
fn per_key<T: Keyed>(body: &str, rows: &[&T], ok_set: &[&str]) -> Vec<KeyOutcome> {
    let Ok(map) = serde_json::from_str::<HashMap<String, String>>(body) else {
        return failed(rows, "the answer is not a per-key result map");
    };
    let lowered: HashMap<String, &str> = map
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.as_str()))
        .collect();
    rows.iter()
        .map(|row| {
            let key = row.student_key();
            match map
                .get(key)
                .map(String::as_str)
                .or_else(|| lowered.get(&key.to_lowercase()).copied())
            {
                Some(value) => KeyOutcome::parse(value, ok_set),
                None => KeyOutcome::Failed("Open edX answered no result for this key".into()),
            }
        })
        .collect()
}

fn failed<T>(rows: &[T], reason: &str) -> Vec<KeyOutcome> {
    rows.iter()
        .map(|_| KeyOutcome::Failed(reason.to_owned()))
        .collect()
}

fn transport_attempt(e: &reqwest::Error, method: &str, path: &str) -> Attempt {
    // Without the URL: it is the configured one, and `path` names it.
    let (message, reason) = if e.is_timeout() {
        ("timed out".to_owned(), "timeout")
    } else if e.is_connect() {
        ("cannot connect".to_owned(), "network")
    } else {
        (e.without_url_message(), "network")
    };
    Attempt::Retry {
        wait: None,
        reason,
        error: OpenEdxError::Network {
            method: method.to_owned(),
            path: path.to_owned(),
            message,
            attempts: 0,
        },
    }
}

/// 429 and 5xx are retried; anything else is returned as it is (the caller maps 404s).
fn status_attempt(answer: Answer, method: &str, path: &str) -> Attempt {
    match answer.status {
        429 => Attempt::Retry {
            wait: Some(Duration::from_secs(answer.retry_after.unwrap_or(1))),
            reason: "throttled",
            error: OpenEdxError::Throttled {
                method: method.to_owned(),
                path: path.to_owned(),
                retry_after_secs: answer.retry_after,
            },
        },
        500..=599 => Attempt::Retry {
            wait: None,
            reason: "server_error",
            error: http_error(&answer, method, path),
        },
        404 => Attempt::Done(answer),
        _ => Attempt::Fail(http_error(&answer, method, path)),
    }
}

fn http_error(answer: &Answer, method: &str, path: &str) -> OpenEdxError {
    OpenEdxError::Http {
        method: method.to_owned(),
        path: path.to_owned(),
        status: answer.status,
        message: developer_message(&answer.body),
    }
}

/// Open edX's `developer_message` (facts §1.7), or the start of a non-JSON body.
fn developer_message(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = match &value["developer_message"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => body.chars().take(200).collect(),
        other => other.to_string(),
    };
    message.chars().take(300).collect()
}

/// `reqwest::Error` display without the URL.
trait WithoutUrl {
    fn without_url_message(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_message(&self) -> String {
        let mut inner = std::error::Error::source(self);
        let mut message = String::from("request failed");
        while let Some(e) = inner {
            message = e.to_string();
            inner = e.source();
        }
        message
    }
}
