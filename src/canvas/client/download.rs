//! Files Canvas hands out (a report's attachment): fetched without the token and outside the API's pacer, since
//! they may live on another host with a bucket of its own.

use std::sync::atomic::Ordering;

use url::Url;

use super::CanvasClient;
use super::send::TransportError;
use crate::canvas::error::{CanvasError, canvas_message};
use crate::canvas::status::{Attempt, Via, classify};

impl CanvasClient {
    /// Downloads a file Canvas handed out (a report's `attachment.url`, authorised by its verifier), WITHOUT the
    /// token: such URLs may point at a files host, and the admin token must never go there. Redirects are followed
    /// by hand, only to http(s), and still without the token. Retried like any read.
    pub(in crate::canvas) async fn download(
        &self,
        url: Url,
        limit: u64,
    ) -> Result<Vec<u8>, CanvasError> {
        let mut backoff = self.backoff();
        let mut url = url;
        let mut redirects = 0;
        loop {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
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
            match self.next_delay(&mut backoff, reason, &reqwest::Method::GET, url.path()) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            }
        }
    }
}
