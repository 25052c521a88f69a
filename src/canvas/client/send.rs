//! One attempt at an API request: rate limit and pacer, the bearer token (re-read once from `token_file` on a 401),
//! the size-capped body, and what the answer's status means. Retrying is the caller's business (`retry`), because
//! an enrollment create must look before it sends again and other requests need not.

use std::sync::atomic::Ordering;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use url::Url;

use super::CanvasClient;
use crate::canvas::error::{CanvasError, canvas_message};
use crate::canvas::status::{Attempt, Via, classify};
use crate::config::TokenSource;

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
pub(in crate::canvas) struct Answer {
    pub(in crate::canvas) status: StatusCode,
    pub(in crate::canvas) headers: HeaderMap,
    pub(in crate::canvas) body: Vec<u8>,
}

/// What a 401 says. Canvas answers a bad, expired or missing token with 401 and a `WWW-Authenticate` challenge, and
/// (classically) a token that lacks a permission with 401 and no challenge (facts §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::canvas) enum On401 {
    /// Any 401 rejects the token: the cycle stops (enrollment reads and writes, which any usable token may make).
    Token,
    /// Only a challenged 401 rejects the token; an unchallenged one refuses this request
    /// ([`CanvasError::NotPermitted`]), as on account jobs a token may lack the permission for.
    TokenIfChallenged,
}

/// After this many failures in a row with the retry budget used up, Canvas is treated as down for the cycle.
const OPEN_CIRCUIT_AFTER: u32 = 10;

pub(super) enum TransportError {
    Http(reqwest::Error),
    TooLarge,
}

impl CanvasClient {
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
    pub(super) fn scrub(&self, text: String) -> String {
        match self.token.read() {
            Ok(t) if !t.expose_secret().is_empty() && text.contains(t.expose_secret()) => {
                text.replace(t.expose_secret(), "[REDACTED]")
            }
            _ => text,
        }
    }

    /// One attempt, with a single transparent re-read of `token_file` on a 401.
    pub(super) async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
    ) -> Result<Answer, Attempt> {
        self.attempt_as(method, url, body, On401::Token).await
    }

    /// One attempt, a 401 read as `on_401` says.
    pub(super) async fn attempt_as(
        &self,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
        on_401: On401,
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
            let result = self
                .send_once(method.clone(), url.clone(), body, on_401)
                .await;
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
        on_401: On401,
    ) -> Result<Answer, Attempt> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
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
            // The API answers JSON; a success with an HTML (or other) body is a page in front of Canvas.
            if let Some(content_type) = not_json(&answer.headers) {
                return Err(Attempt::Final(CanvasError::NotJson {
                    status: status.as_u16(),
                    content_type,
                }));
            }
            return Ok(answer);
        }
        let message = self.scrub(canvas_message(&answer.body));
        if on_401 == On401::TokenIfChallenged
            && status == StatusCode::UNAUTHORIZED
            && !answer.headers.contains_key(WWW_AUTHENTICATE)
        {
            self.pacer.on_response(
                header_f64("x-rate-limit-remaining"),
                header_f64("x-request-cost"),
            );
            return Err(Attempt::Final(CanvasError::NotPermitted {
                status: status.as_u16(),
                message,
            }));
        }
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

    async fn read_body(&self, resp: reqwest::Response) -> Result<Answer, TransportError> {
        self.read_body_capped(resp, self.opts.max_response_bytes)
            .await
    }

    pub(super) async fn read_body_capped(
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

/// The content type of an answer that says it is not JSON; `None` for JSON (any `…json…` type) or no content type.
fn not_json(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let mime = text.split(';').next().unwrap_or_default().trim();
    (!mime.is_empty() && !mime.to_ascii_lowercase().contains("json")).then(|| mime.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stated_non_json_content_type_is_not_json() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            h
        };
        assert_eq!(
            not_json(&with("text/html; charset=utf-8")),
            Some("text/html".into())
        );
        assert_eq!(not_json(&with("application/json; charset=utf-8")), None);
        assert_eq!(not_json(&with("application/json+canvas-string-ids")), None);
        assert_eq!(not_json(&HeaderMap::new()), None);
    }
}
