//! What can go wrong talking to Canvas. Messages carry Canvas's own words and never the token.

/// A failed Canvas request, after any retries it was allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanvasError {
    #[error("Canvas rejected the token ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    #[error("Canvas refused the request (403): {message}")]
    Forbidden { message: String },
    /// A 401 without a token challenge on an account job (SIS import, report): Canvas's answer to a token that lacks
    /// the permission (facts §7), not a rejected token.
    #[error("Canvas refused the request ({status}): {message}")]
    NotPermitted { status: u16, message: String },
    #[error("not found in Canvas (404): {message}")]
    NotFound { message: String },
    #[error("Canvas rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("Canvas server error ({status}) after {attempts} attempt(s): {message}")]
    Server {
        status: u16,
        message: String,
        attempts: u32,
    },
    #[error("Canvas throttled the request {attempts} time(s) (Rate Limit Exceeded)")]
    Throttled { attempts: u32 },
    #[error("Canvas request timed out after {attempts} attempt(s)")]
    Timeout { attempts: u32 },
    #[error("could not reach Canvas after {attempts} attempt(s): {message}")]
    Network { message: String, attempts: u32 },
    #[error(
        "Canvas answered {status} with a redirect to {location}; redirects are not followed so the token never goes \
         to another host (is canvas.base_url right, or is Canvas in maintenance?)"
    )]
    Redirect { status: u16, location: String },
    #[error("unexpected Canvas response: {0}")]
    Decode(String),
    /// A success status whose body is not JSON: a maintenance, login or proxy page in front of Canvas.
    #[error(
        "unexpected Canvas response: {status} with content type `{content_type}` instead of JSON (a maintenance, \
         login or proxy page?); Canvas looks unavailable, so the rest of this cycle is not attempted"
    )]
    NotJson { status: u16, content_type: String },
    #[error("incomplete Canvas listing: {0}")]
    Pagination(String),
    #[error("Canvas response is larger than canvas.max_response_bytes ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error(
        "Canvas looks unavailable: the cycle's retry budget (limits.cycle_retry_budget) is used up and requests \
         keep failing; the rest of this cycle is not attempted"
    )]
    Unavailable,
    #[error("canvas token: {0}")]
    Token(String),
    #[error("{what} did not finish within {secs} s")]
    JobTimeout { what: String, secs: u64 },
}

impl CanvasError {
    /// The HTTP status Canvas answered, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CanvasError::Unauthorized { status, .. }
            | CanvasError::Rejected { status, .. }
            | CanvasError::Server { status, .. }
            | CanvasError::Redirect { status, .. }
            | CanvasError::NotPermitted { status, .. }
            | CanvasError::NotJson { status, .. } => Some(*status),
            CanvasError::Forbidden { .. } => Some(403),
            CanvasError::NotFound { .. } => Some(404),
            CanvasError::Throttled { .. } => Some(429),
            _ => None,
        }
    }

    /// Errors that say Canvas cannot be worked with right now (token rejected, unreachable, failing, throttling),
    /// as opposed to a problem with one object: the daemon reports not ready until a cycle gets through.
    pub fn means_canvas_down(&self) -> bool {
        matches!(
            self,
            CanvasError::Unauthorized { .. }
                | CanvasError::Unavailable
                | CanvasError::Token(_)
                | CanvasError::Network { .. }
                | CanvasError::Timeout { .. }
                | CanvasError::Server { .. }
                | CanvasError::Throttled { .. }
                | CanvasError::Redirect { .. }
                | CanvasError::NotJson { .. }
        )
    }

    /// Errors that make continuing the cycle pointless or harmful (a revoked token, a Canvas that is down):
    /// the cycle stops instead of turning every remaining change into a failed request.
    pub fn ends_cycle(&self) -> bool {
        matches!(
            self,
            CanvasError::Unauthorized { .. }
                | CanvasError::Unavailable
                | CanvasError::Token(_)
                | CanvasError::NotJson { .. }
        )
    }

    /// Canvas refused a path to this token (facts §8, §9): a 401 without a token challenge, 403 or 404 on a SIS
    /// import or a provisioning report (a token without "Import SIS data" or report rights, or a Canvas without
    /// the endpoint), or a 401 on the report's file. The cycle takes the per-change or per-course path instead.
    pub fn refuses_path(&self) -> bool {
        matches!(
            self,
            CanvasError::NotPermitted { .. }
                | CanvasError::Forbidden { .. }
                | CanvasError::NotFound { .. }
                | CanvasError::Rejected { status: 401, .. }
        )
    }

    /// A short class for metrics labels and audit summaries.
    pub fn class(&self) -> &'static str {
        match self {
            CanvasError::Unauthorized { .. } => "unauthorized",
            CanvasError::Forbidden { .. } => "forbidden",
            CanvasError::NotPermitted { .. } => "not_permitted",
            CanvasError::NotFound { .. } => "not_found",
            CanvasError::Rejected { .. } => "rejected",
            CanvasError::Server { .. } => "server_error",
            CanvasError::Throttled { .. } => "throttled",
            CanvasError::Timeout { .. } => "timeout",
            CanvasError::Network { .. } => "network",
            CanvasError::Redirect { .. } => "redirect",
            CanvasError::Decode(_) => "decode",
            CanvasError::NotJson { .. } => "not_json",
            CanvasError::Pagination(_) => "pagination",
            CanvasError::TooLarge { .. } => "too_large",
            CanvasError::Unavailable => "unavailable",
            CanvasError::Token(_) => "token",
            CanvasError::JobTimeout { .. } => "job_timeout",
        }
    }
}

/// Canvas's message from an error body: `{"errors":[{"message":..}]}`, `{"errors":"..."}`, `{"errors":["..."]}`,
/// `{"message":..}` or `{"error":..}` (facts §7); otherwise the start of the body as text.
pub fn canvas_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let pick = |v: &serde_json::Value| -> Option<String> {
            match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => {
                    o.get("message").and_then(|m| m.as_str()).map(str::to_owned)
                }
                _ => None,
            }
        };
        if let Some(errors) = value.get("errors") {
            let mut messages: Vec<String> = match errors {
                serde_json::Value::Array(items) => items.iter().filter_map(pick).collect(),
                other => pick(other).into_iter().collect(),
            };
            messages.retain(|m| !m.trim().is_empty());
            if !messages.is_empty() {
                return truncate(&messages.join("; "));
            }
        }
        for key in ["message", "error"] {
            if let Some(s) = value
                .get(key)
                .and_then(|m| m.as_str())
                .filter(|s| !s.trim().is_empty())
            {
                return truncate(s);
            }
        }
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        "(empty body)".to_owned()
    } else {
        truncate(trimmed)
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 300;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_canvas_error_shape() {
        assert_eq!(
            canvas_message(br#"{"errors":[{"message":"Invalid access token."}]}"#),
            "Invalid access token."
        );
        assert_eq!(
            canvas_message(br#"{"errors":"Invalid as_user_id"}"#),
            "Invalid as_user_id"
        );
        assert_eq!(
            canvas_message(br#"{"errors":["SIS imports are not enabled"]}"#),
            "SIS imports are not enabled"
        );
        assert_eq!(
            canvas_message(br#"{"message":"Can't add an enrollment to a concluded course."}"#),
            "Can't add an enrollment to a concluded course."
        );
        assert_eq!(
            canvas_message(br#"{"error":"enrollment not inactive"}"#),
            "enrollment not inactive"
        );
        assert_eq!(
            canvas_message(b"403 Forbidden (Rate Limit Exceeded)\n"),
            "403 Forbidden (Rate Limit Exceeded)"
        );
        assert_eq!(canvas_message(b""), "(empty body)");
        assert!(canvas_message(&[b'x'; 5000]).chars().count() < 400);
    }
}
