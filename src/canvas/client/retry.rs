//! The retry policy: exponential backoff with jitter, bounded per request (`limits.max_retries`) and per cycle
//! (`limits.cycle_retry_budget`), around one `send` attempt. Only idempotent calls retry blindly here;
//! an enrollment create has its own loop (`enrollments`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::BackoffBuilder;
use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use super::send::{Answer, Body};
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
    pub(super) fn next_delay(
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
    pub(in crate::canvas) async fn request(
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
}
