//! The HTTP pipeline every request goes through, in Canvas's order: record → throttle (up-front
//! charge) → latency and scripted/random faults → authentication → endpoint → post-handler faults
//! → throttle settlement and headers. The throttle and the record are settled even when the client
//! hangs up mid-request (a dropped future), as Canvas's `ensure` block does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::errors::ApiError;
use super::faults::{FaultAction, FaultPlan, FaultState};
use super::params::Params;
use super::recorder::{Recorder, RequestRecord};
use super::reply::Reply;
use super::routes::{self, Call, UNMATCHED_ROUTE};
use super::store::Store;
use super::throttle::{Admission, Throttle, ThrottleOptions, ruby_float, throttled_response};

/// Bodies above this are refused rather than buffered.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Shared state of one running simulator.
pub(crate) struct App {
    pub store: Mutex<Store>,
    pub token: Mutex<String>,
    pub throttle_options: ThrottleOptions,
    pub throttle: Mutex<Throttle>,
    pub faults: Mutex<FaultState>,
    pub recorder: Arc<Recorder>,
}

/// Locks a mutex, ignoring poisoning: a panicked test closure must not wedge the simulator.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settles the throttle bucket when dropped, so a hung-up request still pays (§5).
struct InFlight {
    app: Arc<App>,
    key: String,
    settled: bool,
}

impl InFlight {
    /// Returns `X-Rate-Limit-Remaining`.
    fn settle(mut self, cost: f64) -> f64 {
        self.settled = true;
        lock(&self.app.throttle).settle(&self.key, cost, &self.app.throttle_options)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.settled {
            let cost = self.app.throttle_options.request_cost;
            lock(&self.app.throttle).settle(&self.key, cost, &self.app.throttle_options);
        }
    }
}

/// The single axum handler: every request comes here.
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
    let route = routes::match_route(&method, uri.path());
    let template = route.as_ref().map_or(UNMATCHED_ROUTE, |r| r.template);
    let headers = request.headers().clone();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let record = app.recorder.start(RequestRecord {
        method: method.clone(),
        route: template.to_string(),
        path_and_query: path_and_query.clone(),
        // 499 (client closed request) unless the request finishes.
        status: 499,
        started,
        finished: started,
        user_agent,
        throttled: false,
    });

    let query = Params::from_urlencoded(uri.query().unwrap_or_default());
    let header_token = bearer_token(&headers);
    // §5: the bucket is keyed on the token (header or query string), else the client address.
    let bucket_key = match header_token
        .clone()
        .or_else(|| query.get("access_token").map(str::to_string))
    {
        Some(token) => format!("token:{token}"),
        None => format!("ip:{}", peer.ip()),
    };
    let plan = lock(&app.faults).plan(&method, template, &path_and_query);

    let options = app.throttle_options.clone();
    let admission = lock(&app.throttle).admit(&bucket_key, &options);
    let in_flight = InFlight {
        app: app.clone(),
        key: bucket_key,
        settled: false,
    };
    if admission == Admission::Throttled {
        // A throttled answer costs (almost) nothing: Canvas measures CPU and DB time.
        let remaining = in_flight.settle(0.0);
        let mut response = throttled_response(options.status);
        insert_header(
            response.headers_mut(),
            "x-rate-limit-remaining",
            &ruby_float(remaining),
        );
        record.finish(response.status(), true);
        return response;
    }

    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let (response, throttled) =
        run_request(&app, request, route, &query, header_token, &plan).await;
    let remaining = in_flight.settle(if throttled { 0.0 } else { options.request_cost });
    let mut response = response;
    if !throttled {
        insert_header(
            response.headers_mut(),
            "x-request-cost",
            &ruby_float(options.request_cost),
        );
    }
    insert_header(
        response.headers_mut(),
        "x-rate-limit-remaining",
        &ruby_float(remaining),
    );
    record.finish(response.status(), throttled);
    response
}

/// Faults, authentication, the endpoint, post-handler faults. Returns the response and whether
/// it is a (scripted) throttled answer.
async fn run_request(
    app: &Arc<App>,
    request: Request,
    route: Option<routes::RouteMatch>,
    query: &Params,
    header_token: Option<String>,
    plan: &FaultPlan,
) -> (Response, bool) {
    let origin = format!(
        "http://{}",
        request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // Pre-handler faults.
    match &plan.action {
        Some(FaultAction::Throttle) => {
            return (throttled_response(app.throttle_options.status), true);
        }
        Some(FaultAction::Status {
            status,
            content_type,
            body,
        }) => {
            return (
                canned_status(*status, content_type.as_deref(), body.as_deref()),
                false,
            );
        }
        Some(FaultAction::Hang(duration)) => tokio::time::sleep(*duration).await,
        Some(FaultAction::HtmlBody) => return (html_page(), false),
        Some(FaultAction::Redirect { location }) => {
            let mut response = StatusCode::FOUND.into_response();
            if let Ok(value) = HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return (response, false);
        }
        Some(FaultAction::HugeBody { bytes }) => return (huge_body(*bytes), false),
        _ => {}
    }
    if let Some(hang) = plan.random_hang {
        tokio::time::sleep(hang).await;
    }
    if let Some(status) = plan.random_error {
        return (canned_status(status, None, None), false);
    }

    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return (
                reply_response(Reply::from_error(&ApiError::BadRequest)),
                false,
            );
        }
    };
    let body_params = body_params(content_type.as_deref(), &body);
    let params = query.clone().merged_with(body_params);

    // §0/§7: a Bearer header, else an `access_token` parameter.
    let token = header_token.or_else(|| params.get("access_token").map(str::to_string));
    let authenticated = token
        .as_deref()
        .is_some_and(|t| t == lock(&app.token).as_str());
    let public = route.as_ref().is_some_and(|r| r.endpoint.is_public());
    let reply = match (token, route) {
        (None, _) if !public => Reply::from_error(&ApiError::Unauthenticated),
        (Some(_), _) if !authenticated && !public => Reply::from_error(&ApiError::InvalidToken),
        (_, None) => Reply::from_error(&ApiError::NotFound),
        (_, Some(route)) => {
            let call = Call {
                route: &route,
                params: &params,
                origin: &origin,
                body: &body,
                content_type: content_type.as_deref(),
                authenticated,
            };
            let mut store = lock(&app.store);
            routes::handle(&mut store, &call).unwrap_or_else(|e| Reply::from_error(&e))
        }
    };

    // Post-handler faults.
    let reply = match &plan.action {
        Some(FaultAction::ApplyThenHang(duration)) => {
            tokio::time::sleep(*duration).await;
            reply
        }
        Some(FaultAction::ApplyThenStatus {
            status,
            content_type,
            body,
        }) => {
            return (
                canned_status(*status, content_type.as_deref(), body.as_deref()),
                false,
            );
        }
        Some(FaultAction::TruncatedJson) => {
            let mut reply = reply;
            reply.body = reply.body.slice(..reply.body.len() / 2);
            reply
        }
        Some(FaultAction::ObjectInsteadOfArray) => object_instead_of_array(reply),
        Some(FaultAction::DropNextLink) => edit_link(reply, |entries| {
            entries.retain(|e| !e.ends_with("rel=\"next\""));
        }),
        Some(FaultAction::LowercaseLinkHeader) => reply,
        Some(FaultAction::CrossHostNextLink) => edit_link(reply, |entries| {
            for entry in entries.iter_mut().filter(|e| e.ends_with("rel=\"next\"")) {
                *entry = entry.replacen("://127.0.0.1", "://127.0.0.2", 1).replacen(
                    "://localhost",
                    "://127.0.0.2",
                    1,
                );
            }
        }),
        Some(FaultAction::SlowBody { bytes_per_sec }) => {
            return (slow_body(reply, *bytes_per_sec), false);
        }
        _ => reply,
    };
    (reply_response(reply), false)
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Form bodies and JSON bodies become parameters; anything else (CSV, zip) does not.
fn body_params(content_type: Option<&str>, body: &Bytes) -> Params {
    let mime = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if body.is_empty() {
        return Params::default();
    }
    match mime.as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(value) => Params::from_json(&value),
            Err(_) => Params::default(),
        },
        "application/x-www-form-urlencoded" | "" => match std::str::from_utf8(body) {
            Ok(text) => Params::from_urlencoded(text),
            Err(_) => Params::default(),
        },
        _ => Params::default(),
    }
}

fn insert_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn reply_response(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

/// A status with the body Canvas (or its proxy) would send for it.
fn canned_status(status: u16, content_type: Option<&str>, body: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let default_body = match status {
        401 | 403 => {
            json!({"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]})
        }
        404 => ApiError::NotFound.body(),
        _ => {
            json!({"errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}]})
        }
    };
    let body = body.map_or_else(|| default_body.to_string(), str::to_string);
    let mut response = (code, body).into_response();
    let content_type = content_type.unwrap_or(super::json::JSON_CONTENT_TYPE);
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn html_page() -> Response {
    let mut response = (
        StatusCode::OK,
        "<!DOCTYPE html><html><head><title>Log In to Canvas</title></head><body><form action=\"/login/canvas\"></form></body></html>",
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn object_instead_of_array(mut reply: Reply) -> Reply {
    if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&reply.body) {
        reply.body = Bytes::from(json!({"items": items}).to_string());
    }
    reply
}

/// Rewrites the Link header's entries.
fn edit_link(mut reply: Reply, edit: impl FnOnce(&mut Vec<String>)) -> Reply {
    if let Some(link) = reply
        .headers
        .get(header::LINK)
        .and_then(|v| v.to_str().ok())
    {
        let mut entries: Vec<String> = link.split(',').map(str::to_string).collect();
        edit(&mut entries);
        match HeaderValue::from_str(&entries.join(",")) {
            Ok(value) if !entries.is_empty() => {
                reply.headers.insert(header::LINK, value);
            }
            _ => {
                reply.headers.remove(header::LINK);
            }
        }
    }
    reply
}

/// Sends the reply's body in tenth-of-a-second slices at `bytes_per_sec`.
fn slow_body(reply: Reply, bytes_per_sec: u64) -> Response {
    let chunk = usize::try_from((bytes_per_sec / 10).max(1)).unwrap_or(usize::MAX);
    let stream = futures::stream::unfold(
        (reply.body.clone(), 0usize),
        move |(body, offset)| async move {
            if offset >= body.len() {
                return None;
            }
            if offset > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let end = offset.saturating_add(chunk).min(body.len());
            Some((
                Ok::<Bytes, std::io::Error>(body.slice(offset..end)),
                (body, end),
            ))
        },
    );
    let mut headers = reply.headers;
    headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = reply.status;
    *response.headers_mut() = headers;
    response
}

/// 200 with an (empty, whitespace-padded) JSON array of about `bytes` bytes, streamed.
fn huge_body(bytes: u64) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let padding = bytes.saturating_sub(2);
    let stream = futures::stream::unfold(0u64, move |sent| async move {
        if sent > padding + 1 {
            return None;
        }
        let piece = if sent == 0 {
            Bytes::from_static(b"[")
        } else if sent > padding {
            Bytes::from_static(b"]")
        } else {
            let n = (padding + 1 - sent).min(CHUNK);
            Bytes::from(vec![b' '; usize::try_from(n).unwrap_or(0)])
        };
        let next = sent + (piece.len() as u64).max(1);
        Some((Ok::<Bytes, std::io::Error>(piece), next))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::json::JSON_CONTENT_TYPE),
    );
    response
}
