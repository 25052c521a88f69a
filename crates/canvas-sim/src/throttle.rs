//! Canvas's request throttle (canvas-api-facts.md §5; `app/middleware/request_throttle.rb` and
//! `increment_bucket.lua`): a leaky bucket per client, charged an up-front cost while a request is
//! in flight and its real cost afterwards.
//!
//! Per request: leak `outflow × seconds since last touch` (only when the count is positive), add
//! `up_front_cost`, clamp to [0, maximum]; if the count is ≥ hwm the request is throttled;
//! afterwards add `cost − up_front_cost` (a throttled request's cost is 0) and clamp again.
//! `X-Rate-Limit-Remaining` = hwm − count after the request.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Which status a throttled request gets (§5: 403 in source, 429 on hosted Canvas since 2025-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ThrottleStatus {
    #[default]
    Forbidden403,
    TooManyRequests429,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleOptions {
    pub hwm: f64,
    pub maximum: f64,
    /// Units leaked per second.
    pub outflow: f64,
    pub up_front_cost: f64,
    /// What one request costs once it finishes (`X-Request-Cost`).
    pub request_cost: f64,
    /// When false the bucket still counts and the headers are still sent, but nothing is
    /// throttled (Canvas's "WOULD HAVE throttled" mode).
    pub enabled: bool,
    pub status: ThrottleStatus,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            hwm: 600.0,
            maximum: 800.0,
            outflow: 10.0,
            up_front_cost: 50.0,
            request_cost: 1.0,
            enabled: true,
            status: ThrottleStatus::Forbidden403,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    count: f64,
    last_touched: Instant,
}

/// All buckets, keyed by client identifier (`token:<token>` or `ip:<addr>`).
#[derive(Debug, Default)]
pub struct Throttle {
    buckets: HashMap<String, Bucket>,
}

/// The outcome of the up-front charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Throttled,
}

impl Throttle {
    fn increment(&mut self, key: &str, amount: f64, opts: &ThrottleOptions, now: Instant) -> f64 {
        let bucket = self.buckets.entry(key.to_string()).or_insert(Bucket {
            count: 0.0,
            last_touched: now,
        });
        if bucket.count > 0.0 {
            let elapsed = now
                .saturating_duration_since(bucket.last_touched)
                .as_secs_f64();
            bucket.count = (bucket.count - opts.outflow * elapsed).max(0.0);
        }
        bucket.count = (bucket.count + amount).clamp(0.0, opts.maximum.max(0.0));
        bucket.last_touched = now;
        bucket.count
    }

    /// Charges the up-front cost and decides whether the request may run.
    pub fn admit(&mut self, key: &str, opts: &ThrottleOptions) -> Admission {
        self.admit_at(key, opts, Instant::now())
    }

    fn admit_at(&mut self, key: &str, opts: &ThrottleOptions, now: Instant) -> Admission {
        let count = self.increment(key, opts.up_front_cost, opts, now);
        if opts.enabled && count >= opts.hwm {
            Admission::Throttled
        } else {
            Admission::Allowed
        }
    }

    /// Settles the request: replaces the up-front charge by `cost`; returns `X-Rate-Limit-Remaining`.
    pub fn settle(&mut self, key: &str, cost: f64, opts: &ThrottleOptions) -> f64 {
        let count = self.increment(key, cost - opts.up_front_cost, opts, Instant::now());
        opts.hwm - count
    }
}

/// Ruby's `Float#to_s`: always a decimal point (`1.0`, `549.5`).
pub fn ruby_float(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// The throttled answer: 403 `text/plain; charset=utf-8` `403 Forbidden (Rate Limit Exceeded)\n`
/// (or the 429 variant), no Retry-After (§5).
pub fn throttled_response(status: ThrottleStatus) -> Response {
    let (code, body) = match status {
        ThrottleStatus::Forbidden403 => (
            StatusCode::FORBIDDEN,
            "403 Forbidden (Rate Limit Exceeded)\n",
        ),
        ThrottleStatus::TooManyRequests429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests (Rate Limit Exceeded)\n",
        ),
    };
    let mut response = (code, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelfth_concurrent_request_is_throttled() {
        // All at one instant, so nothing leaks: 12 × 50 = 600 = hwm (§5).
        let opts = ThrottleOptions::default();
        let mut t = Throttle::default();
        let now = Instant::now();
        for _ in 0..11 {
            assert_eq!(t.admit_at("k", &opts, now), Admission::Allowed);
        }
        assert_eq!(t.admit_at("k", &opts, now), Admission::Throttled);
    }

    #[test]
    fn sequential_requests_cost_their_request_cost() {
        let opts = ThrottleOptions::default();
        let mut t = Throttle::default();
        assert_eq!(t.admit("k", &opts), Admission::Allowed);
        let remaining = t.settle("k", 1.0, &opts);
        assert!((remaining - 599.0).abs() < 0.01, "{remaining}");
    }

    #[test]
    fn floats_print_like_ruby() {
        assert_eq!(ruby_float(1.0), "1.0");
        assert_eq!(ruby_float(549.5), "549.5");
        assert_eq!(ruby_float(-200.0), "-200.0");
    }
}
