//! What a Canvas HTTP status means for the request that got it: retried (throttling, 5xx) or final, and with which
//! [`CanvasError`]. Written once for API calls and file downloads, so the two cannot drift apart again.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use url::Url;

use super::error::CanvasError;

/// One failed attempt, before the retry decision.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Attempt {
    Retryable {
        reason: &'static str,
        error: CanvasError,
    },
    Final(CanvasError),
}

impl Attempt {
    /// Canvas throttled the request: it never ran, and the bucket needs time to drain.
    pub(super) fn is_throttled(&self) -> bool {
        matches!(
            self,
            Attempt::Retryable {
                error: CanvasError::Throttled { .. },
                ..
            }
        )
    }
}

/// Who was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// The REST API, with the token; redirects are never followed.
    Api,
    /// A file URL Canvas handed out, without the token; redirects are followed by hand (so one that reaches
    /// [`classify`] is one too many), and a 401 there says nothing about the token.
    Download,
}

/// Classifies an answer that is not a success (facts §5, §7). Throttling (429, or a 403 whose body says
/// `Rate Limit Exceeded`) and 5xx are retryable; any other status is final, with Canvas's `message` (already
/// scrubbed of the token).
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    message: String,
    via: Via,
) -> Attempt {
    let throttled = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && message.contains("Rate Limit Exceeded"));
    if throttled {
        return Attempt::Retryable {
            reason: "throttled",
            error: CanvasError::Throttled { attempts: 1 },
        };
    }
    let code = status.as_u16();
    match (code, via) {
        (401, Via::Api) => Attempt::Final(CanvasError::Unauthorized {
            status: code,
            message,
        }),
        (403, _) => Attempt::Final(CanvasError::Forbidden { message }),
        (404, _) => Attempt::Final(CanvasError::NotFound { message }),
        (300..=399, Via::Api) => {
            let location = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| Url::parse(l).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "an unknown location".into());
            Attempt::Final(CanvasError::Redirect {
                status: code,
                location,
            })
        }
        (500..=599, _) => Attempt::Retryable {
            reason: "server_error",
            error: CanvasError::Server {
                status: code,
                message,
                attempts: 1,
            },
        },
        _ => Attempt::Final(CanvasError::Rejected {
            status: code,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn class(code: u16, message: &str, via: Via) -> Attempt {
        let mut headers = HeaderMap::new();
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://sso.example.edu/login"),
        );
        let status = StatusCode::from_u16(code).expect("a valid status");
        classify(status, &headers, message.to_owned(), via)
    }

    #[test]
    fn throttling_and_server_errors_are_retried_on_both_paths() {
        for via in [Via::Api, Via::Download] {
            let throttled = class(429, "(empty body)", via);
            assert!(throttled.is_throttled(), "429 via {via:?}: {throttled:?}");
            let forbidden = class(403, "403 Forbidden (Rate Limit Exceeded)", via);
            assert!(forbidden.is_throttled(), "403 via {via:?}: {forbidden:?}");
            for code in [500, 502, 503, 504] {
                let answer = class(code, "boom", via);
                assert!(
                    matches!(
                        answer,
                        Attempt::Retryable {
                            reason: "server_error",
                            error: CanvasError::Server { status, .. },
                        } if status == code
                    ),
                    "{code} via {via:?}: {answer:?}"
                );
            }
        }
    }

    #[test]
    fn other_statuses_are_final_with_canvas_message() {
        for via in [Via::Api, Via::Download] {
            assert_eq!(
                class(403, "not allowed", via),
                Attempt::Final(CanvasError::Forbidden {
                    message: "not allowed".into()
                })
            );
            assert_eq!(
                class(404, "gone", via),
                Attempt::Final(CanvasError::NotFound {
                    message: "gone".into()
                })
            );
            assert_eq!(
                class(422, "bad", via),
                Attempt::Final(CanvasError::Rejected {
                    status: 422,
                    message: "bad".into()
                })
            );
        }
    }

    #[test]
    fn token_and_redirect_meanings_only_on_the_api() {
        assert_eq!(
            class(401, "Invalid access token.", Via::Api),
            Attempt::Final(CanvasError::Unauthorized {
                status: 401,
                message: "Invalid access token.".into()
            })
        );
        assert_eq!(
            class(302, "", Via::Api),
            Attempt::Final(CanvasError::Redirect {
                status: 302,
                location: "sso.example.edu".into()
            })
        );
        // A download carries no token and follows redirects itself.
        assert_eq!(
            class(401, "expired verifier", Via::Download),
            Attempt::Final(CanvasError::Rejected {
                status: 401,
                message: "expired verifier".into()
            })
        );
        assert_eq!(
            class(302, "too many hops", Via::Download),
            Attempt::Final(CanvasError::Rejected {
                status: 302,
                message: "too many hops".into()
            })
        );
    }
}
