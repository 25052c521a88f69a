//! The adaptive pacer that keeps Canvas's leaky bucket (facts §5) busy without overflowing it.
//!
//! Canvas charges every request an up-front 50 units and settles its real cost when it ends; the bucket drains at
//! a rate the client cannot see (10 units/s by default) and throttles at the high-water mark (600 by default). The
//! only signals are `X-Rate-Limit-Remaining` and throttled answers. Two controls react to them, both
//! additive-increase / multiplicative-decrease:
//! - the number of requests in flight (never above `limits.max_in_flight`, never below one), which bounds the
//!   up-front charge held at once;
//! - the spacing between request starts, which bounds the rate, and so converges on the drain rate when the
//!   bucket is the limit: it widens while the remaining quota is low and narrows while it is plentiful.
//!
//! A throttled answer halves the concurrency, doubles the spacing and pauses new requests briefly.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Canvas's up-front cost per request (facts §5).
const UP_FRONT_COST: f64 = 50.0;
/// Reactions to one signal are rate-limited: the responses of one window all carry the same news.
const COOLDOWN: Duration = Duration::from_millis(300);
const MIN_SPACING: Duration = Duration::from_millis(5);
const MAX_SPACING: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: u32,
    /// Minimum time between request starts; zero while the bucket is far from full.
    spacing: Duration,
    next_start: Instant,
    /// Highest `X-Rate-Limit-Remaining` + cost seen: an estimate of the bucket's high-water mark.
    high_water: f64,
    pause_until: Option<Instant>,
    last_decrease: Option<Instant>,
    /// The previous observation: when, and the bucket's count net of other requests' up-front charges.
    last_observation: Option<(Instant, f64)>,
    /// Smoothed estimate of the bucket's drain rate (units/s) and of a request's cost.
    drain_rate: Option<f64>,
    mean_cost: f64,
}

#[derive(Debug)]
pub struct Pacer {
    max: u32,
    state: Mutex<State>,
    notify: Notify,
}

/// Held while a request is in flight; dropping it lets the next one go.
pub struct PacerPermit<'a> {
    pacer: &'a Pacer,
}

impl Drop for PacerPermit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pacer.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.pacer.notify.notify_waiters();
    }
}

impl Pacer {
    pub fn new(max_in_flight: u32) -> Self {
        let max = max_in_flight.max(1);
        Self {
            max,
            state: Mutex::new(State {
                limit: f64::from(max),
                in_flight: 0,
                spacing: Duration::ZERO,
                next_start: Instant::now(),
                high_water: 600.0,
                pause_until: None,
                last_decrease: None,
                last_observation: None,
                drain_rate: None,
                mean_cost: 1.0,
            }),
            notify: Notify::new(),
        }
    }

    /// The current in-flight limit, rounded down.
    pub fn limit(&self) -> u32 {
        self.state
            .lock()
            .map(|s| s.limit.floor() as u32)
            .unwrap_or(1)
    }

    /// The current spacing between request starts.
    pub fn spacing(&self) -> Duration {
        self.state.lock().map(|s| s.spacing).unwrap_or_default()
    }

    /// Waits for a slot under the current limit, for a pause to end, and for the spacing since the last start.
    pub async fn acquire(&self) -> PacerPermit<'_> {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let Ok(mut s) = self.state.lock() else {
                    // A poisoned lock only means another task panicked mid-update; carry on unpaced.
                    return PacerPermit { pacer: self };
                };
                let now = Instant::now();
                let not_before = match s.pause_until {
                    Some(until) if until > s.next_start => until,
                    _ => s.next_start,
                };
                if not_before > now {
                    Some(not_before - now)
                } else if s.in_flight < (s.limit.floor() as u32).max(1) {
                    s.in_flight += 1;
                    s.next_start = now + s.spacing;
                    return PacerPermit { pacer: self };
                } else {
                    None
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
                }
            }
        }
    }

    /// Feeds back a successful (or non-throttled) response's throttle headers.
    pub fn on_response(&self, remaining: Option<f64>, cost: Option<f64>) {
        let Ok(mut s) = self.state.lock() else { return };
        let Some(remaining) = remaining.filter(|r| r.is_finite()) else {
            // No headers (a Canvas without Redis has no throttle): grow towards the configured cap.
            Self::increase(&mut s, self.max);
            return;
        };
        let cost = cost
            .filter(|c| c.is_finite() && *c >= 0.0)
            .unwrap_or(s.mean_cost);
        s.mean_cost = 0.8 * s.mean_cost + 0.2 * cost;
        s.high_water = s.high_water.max(remaining + cost);
        Self::observe_drain(&mut s, remaining, cost);
        // Keep the remaining quota in a band just above what a few requests in flight need up front.
        let low = (s.high_water * 0.3).max(3.0 * UP_FRONT_COST);
        let plenty = low + UP_FRONT_COST;
        if remaining < low {
            Self::decrease(&mut s, false);
        } else if remaining > plenty {
            Self::increase(&mut s, self.max);
        } else if let Some(sustainable) = Self::sustainable_spacing(&s) {
            // In the band: the rate the bucket drains at is the rate to send at.
            s.spacing = sustainable;
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Estimates the drain rate from consecutive responses: between two of them the bucket gained this request's
    /// cost and lost `drain × Δt`; up-front charges of requests still in flight are taken out of both readings.
    fn observe_drain(s: &mut State, remaining: f64, cost: f64) {
        let now = Instant::now();
        let net = (s.high_water - remaining) - UP_FRONT_COST * f64::from(s.in_flight);
        // Near an empty bucket the count is clamped at zero and says nothing about the drain.
        let informative = remaining < s.high_water * 0.9;
        if let Some((then, previous)) = s.last_observation {
            let dt = (now - then).as_secs_f64();
            if informative && dt >= 0.02 {
                let drain = (previous + cost - net) / dt;
                if drain.is_finite() && drain > 0.0 && drain < 100_000.0 {
                    s.drain_rate = Some(s.drain_rate.map_or(drain, |d| 0.8 * d + 0.2 * drain));
                }
            }
        }
        s.last_observation = Some((now, net));
    }

    fn sustainable_spacing(s: &State) -> Option<Duration> {
        let drain = s.drain_rate?;
        let seconds = s.mean_cost / drain;
        seconds
            .is_finite()
            .then(|| Duration::from_secs_f64(seconds.clamp(0.0, MAX_SPACING.as_secs_f64())))
    }

    /// A throttled answer: back off harder and pause long enough for a couple of requests' worth to drain.
    pub fn on_throttled(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        Self::decrease(&mut s, true);
        let until = Instant::now() + Duration::from_secs(1);
        s.pause_until = Some(s.pause_until.map_or(until, |p| p.max(until)));
    }

    fn increase(s: &mut State, max: u32) {
        s.limit = (s.limit + 1.0 / s.limit.max(1.0)).min(f64::from(max));
        s.spacing = if s.spacing <= MIN_SPACING {
            Duration::ZERO
        } else {
            s.spacing.mul_f64(0.8)
        };
    }

    fn decrease(s: &mut State, throttled: bool) {
        let now = Instant::now();
        if !throttled && s.last_decrease.is_some_and(|t| now - t < COOLDOWN) {
            return;
        }
        s.last_decrease = Some(now);
        s.limit = (s.limit / 2.0).max(1.0);
        let factor = if throttled { 2.0 } else { 1.5 };
        // Slower than the estimated drain, so the bucket empties; without an estimate, widen geometrically.
        let floor = Self::sustainable_spacing(s).map_or(MIN_SPACING * 4, |d| d.mul_f64(1.25));
        s.spacing = s
            .spacing
            .mul_f64(factor)
            .max(floor)
            .clamp(MIN_SPACING, MAX_SPACING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_and_spacing_react_to_low_quota_and_recover() {
        let p = Pacer::new(8);
        assert_eq!(p.limit(), 8);
        assert_eq!(p.spacing(), Duration::ZERO);
        p.on_response(Some(100.0), Some(1.0));
        assert_eq!(p.limit(), 4);
        assert!(p.spacing() >= MIN_SPACING);
        p.on_response(Some(90.0), Some(1.0)); // within the cooldown: no second halving
        assert_eq!(p.limit(), 4);
        for _ in 0..60 {
            p.on_response(Some(590.0), Some(1.0));
        }
        assert_eq!(
            p.limit(),
            8,
            "additive increase back to the cap, never above"
        );
        assert_eq!(p.spacing(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_throttle_halves_the_limit_and_pauses() {
        let p = Pacer::new(8);
        p.on_throttled();
        assert_eq!(p.limit(), 4);
        let started = Instant::now();
        let _permit = p.acquire().await;
        assert!(started.elapsed() >= Duration::from_millis(900), "paused");
    }

    #[tokio::test]
    async fn permits_never_exceed_the_limit() {
        let p = std::sync::Arc::new(Pacer::new(2));
        let a = p.acquire().await;
        let _b = p.acquire().await;
        let p2 = p.clone();
        let third = tokio::spawn(async move {
            let _c = p2.acquire().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished());
        drop(a);
        tokio::time::timeout(Duration::from_secs(2), third)
            .await
            .expect("third permit after a release")
            .expect("task");
    }
}
