//! The HTTP pipeline of openedx-sim: record → latency and scripted/random faults → the view (token endpoint with
//! its per-IP rate limit, or a program-enrollment view after the scheduled waiting expiry) → post-handler faults.
//! Recording, fault rules and latency are canvas-sim's own (`recorder.rs`, `faults.rs`); only the answers differ.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::oauth::{self, NO_PERMISSION, NOT_PROVIDED, TokenLimiter};
use super::routes::{self, Call, Endpoint, developer_error, html_reply};
use super::store::OpenEdxStore;
use crate::faults::{FaultAction, FaultState};
use crate::recorder::{Recorder, RequestRecord};
use crate::reply::Reply;
use crate::server::lock;

/// The `route` recorded for a request no template matches.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Shared state of one running openedx-sim.
pub(crate) struct App {
    pub store: Mutex<OpenEdxStore>,
    pub faults: Mutex<FaultState>,
    pub recorder: Arc<Recorder>,
    pub token_limiter: Mutex<TokenLimiter>,
    /// `Retry-After` of an injected 429.
    pub retry_after: Mutex<Duration>,
}

/// DRF's `Throttled` through the mixin (facts §7.3): 429, the developer message and `Retry-After` in whole seconds.
pub(crate) fn throttled(retry_after: Duration) -> Reply {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut reply = developer_error(
        StatusCode::TOO_MANY_REQUESTS,
        json!(format!(
            "Request was throttled. Expected available in {secs} seconds."
        )),
    );
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        reply.headers.insert(header::RETRY_AFTER, value);
    }
    reply
}

/// What Open edX (or the proxy in front of it) answers with this status.
fn canned(
    status: u16,
    content_type: Option<&str>,
    body: Option<&str>,
    retry_after: Duration,
) -> Reply {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut reply = match (status, body) {
        (429, None) => return throttled(retry_after),
        (_, Some(body)) => {
            let mut reply = html_reply(code, body);
            reply.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            reply
        }
        (401, None) => developer_error(code, json!(NOT_PROVIDED)),
        (403, None) => developer_error(code, json!(NO_PERMISSION)),
        (404, None) => developer_error(code, json!("Not found.")),
        // Django's plain 500 page: a 500 means the whole batch was rolled back (facts §7.4).
        (500, None) => html_reply(code, "<h1>Server Error (500)</h1>"),
        (_, None) => html_reply(
            code,
            &format!(
                "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>",
                reason = code.canonical_reason().unwrap_or("Error")
            ),
        ),
    };
    if let Some(content_type) = content_type
        && let Ok(value) = HeaderValue::from_str(content_type)
    {
        reply.headers.insert(header::CONTENT_TYPE, value);
    }
    reply
}

fn into_response(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

/// The single axum handler.
pub(crate) async fn serve_request(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_string();
    let uri = request.uri().clone();
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let route = routes::match_route(uri.path());
    let template = route.as_ref().map_or(UNMATCHED_ROUTE, |r| r.template);
    let headers = request.headers().clone();
    let record = app.recorder.start(RequestRecord {
        method: method.clone(),
        route: template.to_string(),
        path_and_query: path_and_query.clone(),
        status: 499,
        started,
        finished: started,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        throttled: false,
    });
    let plan = lock(&app.faults).plan(&method, template, &path_and_query);
    let retry_after = *lock(&app.retry_after);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }

    // Pre-handler faults: the request is not handled (nothing is written).
    let early = match &plan.action {
        Some(FaultAction::Throttle) => Some(throttled(retry_after)),
        Some(FaultAction::Status {
            status,
            content_type,
            body,
        }) => Some(canned(
            *status,
            content_type.as_deref(),
            body.as_deref(),
            retry_after,
        )),
        Some(FaultAction::Hang(duration)) => {
            tokio::time::sleep(*duration).await;
            None
        }
        Some(FaultAction::HtmlBody) => Some(html_reply(
            StatusCode::OK,
            "<!DOCTYPE html><html><head><title>Sign in | Open edX</title></head><body></body></html>",
        )),
        Some(FaultAction::Redirect { location }) => {
            let mut reply = html_reply(StatusCode::FOUND, "");
            if let Ok(value) = HeaderValue::from_str(location) {
                reply.headers.insert(header::LOCATION, value);
            }
            Some(reply)
        }
        _ => None,
    };
    if let Some(hang) = plan.random_hang {
        tokio::time::sleep(hang).await;
    }
    let early = early.or_else(|| {
        plan.random_error
            .map(|status| canned(status, None, None, retry_after))
    });
    if let Some(reply) = early {
        let throttled = reply.status == StatusCode::TOO_MANY_REQUESTS;
        record.finish(reply.status, throttled);
        return into_response(reply);
    }

    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => Bytes::new(),
    };
    let origin = format!(
        "http://{}",
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let reply = match &route {
        None => routes::unmatched(),
        Some(route) if route.endpoint == Endpoint::Token => {
            if lock(&app.token_limiter).admit(peer.ip()) {
                let mut store = lock(&app.store);
                oauth::token_endpoint(&mut store, &method, &headers, &body, &origin)
            } else {
                oauth::rate_limited()
            }
        }
        Some(route) => {
            let call = Call {
                route,
                method: &method,
                query: uri.query().unwrap_or_default(),
                path: uri.path(),
                headers: &headers,
                body: &body,
                origin: &origin,
            };
            let mut store = lock(&app.store);
            store.run_scheduled_expiry();
            routes::handle(&mut store, &call)
        }
    };

    // Post-handler faults: the request was handled (a write happened).
    let reply = match &plan.action {
        Some(FaultAction::ApplyThenHang(duration)) => {
            tokio::time::sleep(*duration).await;
            reply
        }
        Some(FaultAction::ApplyThenStatus {
            status,
            content_type,
            body,
        }) => canned(
            *status,
            content_type.as_deref(),
            body.as_deref(),
            retry_after,
        ),
        Some(FaultAction::TruncatedJson) => {
            let mut reply = reply;
            reply.body = reply.body.slice(..reply.body.len() / 2);
            reply
        }
        Some(FaultAction::DropNextLink) => edit_next(reply, |_| None),
        Some(FaultAction::CrossHostNextLink) => edit_next(reply, |next| {
            Some(next.replacen("://127.0.0.1", "://127.0.0.2", 1).replacen(
                "://localhost",
                "://127.0.0.2",
                1,
            ))
        }),
        _ => reply,
    };
    let throttled = reply.status == StatusCode::TOO_MANY_REQUESTS;
    record.finish(reply.status, throttled);
    let mut response = into_response(reply);
    if response.status() == StatusCode::NO_CONTENT {
        *response.body_mut() = Body::empty();
    }
    response
}

/// Rewrites (or, with `None`, nulls) a page's `next` URL in place, keeping the rest of the body as rendered.
fn edit_next(mut reply: Reply, edit: impl FnOnce(&str) -> Option<String>) -> Reply {
    let Ok(Value::Object(page)) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    let Some(Value::String(next)) = page.get("next") else {
        return reply;
    };
    let old = format!("\"next\":{}", Value::String(next.clone()));
    let new = format!("\"next\":{}", edit(next).map_or(Value::Null, Value::String));
    let text = String::from_utf8_lossy(&reply.body).replacen(&old, &new, 1);
    reply.body = Bytes::from(text);
    reply
}
