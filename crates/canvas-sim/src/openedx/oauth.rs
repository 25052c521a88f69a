//! The OAuth2 side (facts §1): the client-credentials token endpoint with `token_type=jwt`, and the authentication
//! and permission every program-enrollment view runs — `JwtAuthentication`, then `BearerAuthentication`, then
//! "staff owner of a non-restricted application". JWTs are JWT-shaped but checked by lookup among the issued tokens
//! (no signature): an unknown one is "Error decoding token.".

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::routes::{developer_error, html_reply, ordered_json};
use super::store::{IssuedToken, OpenEdxStore};
use crate::params::Params;
use crate::reply::Reply;

/// DOT's default opaque-token lifetime (facts §1.3, unverified).
const OPAQUE_EXPIRES_IN_SECS: i64 = 36_000;
/// `JWT_AUTH['JWT_LEEWAY']` (facts §1.3).
const JWT_LEEWAY_SECS: i64 = 1;
/// LMS DEFAULT_SCOPES (facts §1.3; the exact default string is unverified).
const DEFAULT_SCOPE: &str = "read write email profile";

pub const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
pub const NO_PERMISSION: &str = "You do not have permission to perform this action.";

/// Who a request's token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principal {
    pub username: String,
    pub is_staff: bool,
    pub restricted_jwt: bool,
}

fn oauth_error(status: StatusCode, error: &str) -> Reply {
    let mut reply = Reply::json(status, &json!({"error": error}));
    no_store(&mut reply.headers);
    reply
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Client credentials from the form, else from HTTP Basic (oauthlib's alternative, unverified for LMS).
fn client_credentials(form: &Params, headers: &HeaderMap) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) {
        return Some((id.to_string(), secret.to_string()));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8()
        .ok()?;
    let secret = percent_encoding::percent_decode_str(secret)
        .decode_utf8()
        .ok()?;
    Some((id.into_owned(), secret.into_owned()))
}

fn random_token(len: usize) -> String {
    let mut text = String::new();
    while text.len() < len {
        text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    text.truncate(len);
    text
}

/// `POST /oauth2/access_token` (facts §1.2–§1.4).
pub(crate) fn token_endpoint(
    store: &mut OpenEdxStore,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
    origin: &str,
) -> Reply {
    if method != "POST" {
        let mut reply = Reply::json(StatusCode::METHOD_NOT_ALLOWED, &Value::Null);
        reply.body = Default::default();
        reply
            .headers
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return reply;
    }
    let form = Params::from_urlencoded(std::str::from_utf8(body).unwrap_or_default());
    match form.get("grant_type") {
        Some("client_credentials") => {}
        Some(_) | None => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let Some((client_id, secret)) = client_credentials(&form, headers) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let Some(client) = store
        .clients
        .get(&client_id)
        .filter(|c| c.client_secret == secret)
        .cloned()
    else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let jwt = form
        .get("token_type")
        .or_else(|| headers.get("x-token-type").and_then(|v| v.to_str().ok()))
        .is_some_and(|t| t.eq_ignore_ascii_case("jwt"));
    let scope = form
        .get("scope")
        .map_or(DEFAULT_SCOPE.to_string(), str::to_string);
    let now = store.now();
    let owner = store.users.get(&client.owner_username).cloned();
    let (access_token, expires_in, token_type) = if jwt {
        let expires_in = store.settings.jwt_expires_in.num_seconds();
        let claims = json!({
            "aud": "openedx-sim",
            "exp": now.timestamp() + expires_in,
            "grant_type": "client_credentials",
            "iat": now.timestamp(),
            "iss": format!("{origin}/oauth2"),
            "preferred_username": client.owner_username,
            "scopes": scope.split_whitespace().collect::<Vec<_>>(),
            "version": "1.2.0",
            "sub": hex::encode(client.owner_username.as_bytes()),
            "filters": [],
            "is_restricted": client.restricted,
            "email_verified": true,
            "email": owner.as_ref().map(|u| u.email.clone()).unwrap_or_default(),
            "administrator": owner.as_ref().is_some_and(|u| u.is_staff),
            "superuser": false,
        });
        let alg = if client.restricted { "RS512" } else { "HS256" };
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(random_token(43)),
        );
        (token, expires_in, "JWT")
    } else {
        (random_token(30), OPAQUE_EXPIRES_IN_SECS, "Bearer")
    };
    // A RestrictedApplication's opaque tokens are born expired (facts §1.4).
    let expires_at = if client.restricted && !jwt {
        chrono::DateTime::UNIX_EPOCH
    } else {
        now + chrono::Duration::seconds(expires_in)
    };
    store.tokens.insert(
        access_token.clone(),
        IssuedToken {
            client_id: client.client_id.clone(),
            jwt,
            restricted: client.restricted,
            expires_at,
        },
    );
    let body = ordered_json(&[
        ("access_token", json!(access_token)),
        ("expires_in", json!(expires_in)),
        ("token_type", json!(token_type)),
        ("scope", json!(scope)),
    ]);
    let mut reply = Reply::json(StatusCode::OK, &Value::Null);
    reply.body = body.into();
    no_store(&mut reply.headers);
    reply
}

fn unauthorized(detail: Value) -> Reply {
    developer_error(StatusCode::UNAUTHORIZED, detail)
}

fn bearer_error(code: &str, message: &str) -> Reply {
    unauthorized(json!({"error_code": code, "developer_message": message}))
}

/// The views' authentication classes in order (facts §1.5, §1.7): JWT, then Bearer, then (no) session.
pub(crate) fn authenticate(
    store: &OpenEdxStore,
    headers: &HeaderMap,
) -> Result<Principal, Box<Reply>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Box::new(unauthorized(json!(NOT_PROVIDED))));
    };
    let text = String::from_utf8_lossy(value.as_bytes()).to_string();
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.is_empty() {
        return Err(Box::new(unauthorized(json!(NOT_PROVIDED))));
    }
    let now = store.now();
    // drf-jwt: the prefix is compared first, then the number of parts.
    if parts[0].eq_ignore_ascii_case("jwt") {
        match parts.len() {
            1 => {
                return Err(Box::new(unauthorized(json!(
                    "Invalid Authorization header. No credentials provided."
                ))));
            }
            2 => {}
            _ => {
                return Err(Box::new(unauthorized(json!(
                    "Invalid Authorization header. Credentials string should not contain spaces."
                ))));
            }
        }
        let Some(token) = store.tokens.get(parts[1]).filter(|t| t.jwt) else {
            return Err(Box::new(unauthorized(json!("Error decoding token."))));
        };
        if now > token.expires_at + chrono::Duration::seconds(JWT_LEEWAY_SECS) {
            return Err(Box::new(unauthorized(json!("Token has expired."))));
        }
        return Ok(principal(store, token));
    }
    // BearerAuthentication: the number of parts is checked before the scheme.
    if parts.len() == 1 {
        return Err(Box::new(bearer_error(
            "token_not_provided",
            "Invalid token header. No credentials provided.",
        )));
    }
    if parts.len() > 2 {
        return Err(Box::new(bearer_error(
            "token_malformed",
            "Invalid token header. Token string should not contain spaces.",
        )));
    }
    if !parts[0].eq_ignore_ascii_case("bearer") {
        return Err(Box::new(unauthorized(json!(NOT_PROVIDED))));
    }
    // A JWT sent as Bearer is not a DOT token.
    let Some(token) = store.tokens.get(parts[1]).filter(|t| !t.jwt) else {
        return Err(Box::new(bearer_error(
            "token_nonexistent",
            "The provided access token does not match any valid tokens.",
        )));
    };
    if token.expires_at < now {
        return Err(Box::new(bearer_error(
            "token_expired",
            "The provided access token has expired and is no longer valid.",
        )));
    }
    Ok(principal(store, token))
}

/// The application's owner (`request.client.user`); an owner the LMS lacks is created non-staff, as
/// JwtAuthentication's `get_or_create` does.
fn principal(store: &OpenEdxStore, token: &IssuedToken) -> Principal {
    let username = store
        .clients
        .get(&token.client_id)
        .map(|c| c.owner_username.clone())
        .unwrap_or_default();
    let is_staff = store.users.get(&username).is_some_and(|u| u.is_staff);
    Principal {
        username,
        is_staff,
        restricted_jwt: token.jwt && token.restricted,
    }
}

/// `JWT_RESTRICTED_APPLICATION_OR_USER_ACCESS` as it works on these views (facts §1.6): a restricted application's
/// JWT never has the (undeclared) scope, so only a staff owner of a non-restricted application passes.
pub(crate) fn authorize(principal: &Principal) -> Result<(), Box<Reply>> {
    if principal.restricted_jwt || !principal.is_staff {
        return Err(Box::new(developer_error(
            StatusCode::FORBIDDEN,
            json!(NO_PERMISSION),
        )));
    }
    Ok(())
}

/// django-ratelimit on the token view: `RATELIMIT_RATE = '120/m'` per client IP (facts §1.8).
#[derive(Debug, Default)]
pub(crate) struct TokenLimiter {
    pub per_minute: Option<u32>,
    hits: HashMap<IpAddr, VecDeque<Instant>>,
}

impl TokenLimiter {
    pub fn new(per_minute: Option<u32>) -> Self {
        TokenLimiter {
            per_minute,
            hits: HashMap::new(),
        }
    }

    /// Counts one request from `ip`; `false` when it is over the rate.
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let Some(limit) = self.per_minute else {
            return true;
        };
        let now = Instant::now();
        let hits = self.hits.entry(ip).or_default();
        while hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            hits.pop_front();
        }
        hits.push_back(now);
        hits.len() <= limit as usize
    }
}

/// A django-ratelimit block: `Ratelimited` is a PermissionDenied, Django's plain 403 page (status and body
/// unverified, facts §1.8), no Retry-After.
pub(crate) fn rate_limited() -> Reply {
    html_reply(StatusCode::FORBIDDEN, "<h1>403 Forbidden</h1>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_limiter_blocks_over_the_rate_per_ip() {
        let mut limiter = TokenLimiter::new(Some(2));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(limiter.admit(a));
        assert!(limiter.admit(a));
        assert!(!limiter.admit(a));
        assert!(limiter.admit(b));
        assert!(TokenLimiter::new(None).admit(a));
    }
}
