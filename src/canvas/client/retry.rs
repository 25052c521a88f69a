//! The retry policy: exponential backoff with jitter, bounded per request (`limits.max_retries`) and per cycle
//! (`limits.cycle_retry_budget`), around one `send` attempt. Only idempotent calls retry blindly here;
//! an enrollment create has its own loop (`enrollments`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::BackoffBuilder;
use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use super::send::{Answer, Body, On401};
use super::{CanvasClient, decode};
use crate::canvas::error::CanvasError;
use crate::canvas::status::Attempt;

impl CanvasClient {
    pub(super) async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, CanvasError> {
        let answer = self.request(Method::GET, url, None).await?;
        decode(&answer.body, "object")
    }

    pub(super) fn backoff(&self) -> backon::ExponentialBackoff {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.opts.min_backoff)
            .with_max_delay(self.opts.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.opts.max_retries as usize)
            .build()
    }

    /// The delay before the next retry, or `None` when the request's retries or the cycle's budget are used up.
    /// Every retry of every kind of request passes here, so this is where it is logged: one debug event per retry
    /// (`RUST_LOG=rostersync=debug`), inside the cycle's span, so that the JSON line carries the run's `run.id`.
    /// `path` is the URL's path alone: a query string may carry a download's verifier.
    pub(super) fn next_delay(
        &self,
        backoff: &mut backon::ExponentialBackoff,
        reason: &'static str,
        method: &Method,
        path: &str,
    ) -> Option<Duration> {
        let delay = backoff.next()?;
        let before = self
            .retry_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .ok()?;
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        self.metrics.count_retry(reason);
        // Throttling needs the bucket to drain: at least a second.
        let delay = if reason == "throttled" {
            delay.max(Duration::from_secs(1))
        } else {
            delay
        };
        tracing::debug!(
            %method,
            path,
            reason,
            delay_ms = delay.as_millis() as u64,
            cycle_retries_left = before - 1,
            "retrying Canvas request"
        );
        Some(delay)
    }

    /// A request with the retry policy for idempotent calls (GET, PUT, DELETE).
    pub(in crate::canvas) async fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
    ) -> Result<Answer, CanvasError> {
        self.request_as(method, url, body, On401::Token).await
    }

    /// [`Self::request`], a 401 read as `on_401` says.
    pub(in crate::canvas) async fn request_as(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
        on_401: On401,
    ) -> Result<Answer, CanvasError> {
        let mut backoff = self.backoff();
        loop {
            match self
                .attempt_as(method.clone(), url.clone(), body, on_401)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable { reason, error }) => {
                    match self.next_delay(&mut backoff, reason, &method, url.path()) {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => return Err(error),
                    }
                }
            }
        }
    }
}

impl CanvasClient {
    /// Starts an account job (a SIS import, a report) with one POST that is never re-sent blindly: after an error
    /// the POST may have survived (a timeout, a 5xx, a dropped connection), `find` looks for the job first (Canvas
    /// may have started it), and only when it is not there is the POST sent again. A 401 without a token challenge
    /// refuses the job, not the token (facts §7).
    pub(in crate::canvas) async fn start_job<T, F, Fut>(
        &self,
        url: Url,
        body: Body<'_>,
        what: &str,
        mut find: F,
    ) -> Result<T, CanvasError>
    where
        T: DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, CanvasError>>,
    {
        let mut backoff = self.backoff();
        loop {
            match self
                .attempt_as(
                    Method::POST,
                    url.clone(),
                    Some(body),
                    On401::TokenIfChallenged,
                )
                .await
            {
                Ok(answer) => return decode(&answer.body, what),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable { reason, error }) => {
                    let Some(delay) =
                        self.next_delay(&mut backoff, reason, &Method::POST, url.path())
                    else {
                        return Err(error);
                    };
                    tokio::time::sleep(delay).await;
                    // A throttled request never ran; anything else may have started the job.
                    if reason != "throttled" {
                        match find().await {
                            Ok(Some(found)) => {
                                tracing::info!(
                                    job = what,
                                    reason,
                                    "the job's start was not answered, but Canvas had started it; following that one"
                                );
                                return Ok(found);
                            }
                            Ok(None) => {}
                            // Not knowing whether the job started is no licence to start another: give up with
                            // the start's own error (never a refusal, so the caller does not take another path
                            // while the job may be running).
                            Err(e) => {
                                tracing::warn!(
                                    job = what,
                                    error = %e,
                                    "cannot look for the job whose start was not answered; not starting another"
                                );
                                return Err(error);
                            }
                        }
                    }
                    tracing::debug!(
                        job = what,
                        reason,
                        "starting the job again: Canvas has no trace of it"
                    );
                }
            }
        }
    }
}
