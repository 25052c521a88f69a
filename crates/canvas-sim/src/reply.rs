//! A handler's finished answer ([`Reply`]) before it becomes an HTTP response, so that post-handler faults can still
//! edit it. Below the route table (`routes.rs`) and the job handlers (`files.rs`, `report.rs`, `sis_import.rs`),
//! which all build replies, so that none of them imports another's module to do so.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

use super::errors::{ApiError, WWW_AUTHENTICATE};
use super::json::JSON_CONTENT_TYPE;

/// A finished answer before it becomes an HTTP response (post-handler faults edit it).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: StatusCode, body: &Value) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        Reply {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    pub fn from_error(error: &ApiError) -> Reply {
        let mut reply = Reply::json(error.status(), &error.body());
        if matches!(error, ApiError::InvalidToken | ApiError::Unauthenticated) {
            reply.headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        }
        reply
    }

    pub fn paged(items: Vec<Value>, link: &str) -> Reply {
        let mut reply = Reply::json(StatusCode::OK, &Value::Array(items));
        if let Ok(value) = HeaderValue::from_str(link) {
            reply.headers.insert(header::LINK, value);
        }
        reply
    }
}
