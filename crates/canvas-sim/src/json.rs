//! Canvas's JSON answer: the content type it uses and a response with a JSON body. The lowest layer of the HTTP side:
//! error answers (`errors.rs`), replies (`reply.rs`) and the request pipeline (`server.rs`) build on it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Canvas answers JSON as `application/json; charset=utf-8`.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}
