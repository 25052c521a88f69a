//! Every error the simulated API can answer, with Canvas's exact status and body (facts §7), and why a typed store
//! change was refused ([`StoreError`], shared by `store.rs` and `seed.rs`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The one not-found message Canvas uses everywhere (§7).
pub const NOT_FOUND_MESSAGE: &str = "The specified resource does not exist.";

/// `WWW-Authenticate` value Canvas sends with 401s for bad or missing credentials (§7).
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"canvas-lms\"";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 404 `{"errors":[{"message":"The specified resource does not exist."}]}`.
    #[error("not found")]
    NotFound,
    /// 401 for a token that is not the simulator's token.
    #[error("invalid access token")]
    InvalidToken,
    /// 401 for a request without any credentials.
    #[error("no credentials")]
    Unauthenticated,
    /// A rescued `ActionController::BadRequest` and the like: generic body with an error code.
    #[error("bad request")]
    BadRequest,
    /// The enrollments controller's create errors, already joined with ", " (§1).
    #[error("{0}")]
    CreateRejected(String),
    /// The enrollments controller's `{"error": ...}` answers (reactivate, user-route state check).
    #[error("{0}")]
    EnrollmentRejected(String),
    /// `render json: record.errors, status: :bad_request` — Rails' `{"errors":{field:[{..}]}}`.
    /// The exact shape is unverified in the facts sheet (§1 "Model validation failure").
    #[error("{field} {message}")]
    RecordInvalid { field: String, message: String },
    /// Other endpoint-specific 4xx answers with a ready-made body (SIS imports, reports).
    #[error("{status}: {body}")]
    Custom { status: u16, body: Value },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidToken | ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest
            | ApiError::CreateRejected(_)
            | ApiError::EnrollmentRejected(_)
            | ApiError::RecordInvalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Custom { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
        }
    }

    pub fn body(&self) -> Value {
        match self {
            ApiError::NotFound => json!({"errors": [{"message": NOT_FOUND_MESSAGE}]}),
            ApiError::InvalidToken => json!({"errors": [{"message": "Invalid access token."}]}),
            ApiError::Unauthenticated => json!({
                "status": "unauthenticated",
                "errors": [{"message": "user authorization required"}]
            }),
            ApiError::BadRequest => {
                json!({"errors": [{"message": "An error occurred.", "error_code": "bad_request"}]})
            }
            ApiError::CreateRejected(message) => json!({"message": message}),
            ApiError::EnrollmentRejected(message) => json!({"error": message}),
            ApiError::RecordInvalid { field, message } => json!({
                "errors": {field.clone(): [{"attribute": field, "type": message, "message": message}]}
            }),
            ApiError::Custom { body, .. } => body.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = super::json::json_response(self.status(), &self.body());
        if matches!(self, ApiError::InvalidToken | ApiError::Unauthenticated) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        }
        response
    }
}

/// Why a typed store change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} already exists")]
    DuplicateId { kind: &'static str, id: u64 },
    #[error("{kind} {id} does not exist")]
    Missing { kind: &'static str, id: u64 },
    #[error("{field}: {value:?} is not a valid value")]
    InvalidValue { field: &'static str, value: String },
    #[error("{0}")]
    Inconsistent(String),
}
