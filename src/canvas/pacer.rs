//! The adaptive pacer that keeps Canvas's leaky bucket (facts §5) busy without overflowing it.
//!
//! Canvas charges every request 50 units up front and settles its real cost when it ends; the bucket drains at a
//! rate the client cannot see (10 units/s by default) and throttles a request that would take it to the high-water
//! mark (600 by default). Every response says `X-Rate-Limit-Remaining`, which includes the up-front charges of the
//! requests still in flight. Subtracting our own in-flight charges gives the bucket's *settled* level, and the
//! pacer steers by it:
//! - concurrency: as many up-front charges as Canvas admits above the settled level, less a margin of half a
//!   charge (11 from an empty default bucket), never above `limits.max_in_flight`; it grows back one step per
//!   window (additive increase);
//! - rate: no spacing between request starts while the settled level is low; at the estimated drain rate
//!   (cost ÷ drain, measured from consecutive responses) in the middle band; wider above it.
//!
//! A throttled answer halves the concurrency, doubles the spacing and pauses new requests for a second.

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
    ///
    /// `X-Rate-Limit-Remaining` counts the up-front charge of every request still in flight, which Canvas refunds
    /// when they end; the pacer subtracts its own in-flight charges to see the bucket's *settled* level, and
    /// steers by that: concurrency from the room above it, the request rate from how high it stands.
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
        let settled = (s.high_water - remaining - UP_FRONT_COST * f64::from(s.in_flight)).max(0.0);
        Self::observe_drain(&mut s, settled, cost);

        // Concurrency: Canvas admits the n-th request in flight while settled + 50·n < hwm, so n is the largest
        // whole number below (hwm − settled) / 50. The margin covers what this response could not count: costs
        // settled since, and requests of ours that started after Canvas computed the figure (half a charge).
        let margin = UP_FRONT_COST / 2.0 + 2.0 * s.mean_cost;
        let room = ((s.high_water - settled - margin) / UP_FRONT_COST).ceil() - 1.0;
        let target = room.clamp(1.0, f64::from(self.max));
        s.limit = if target < s.limit {
            target
        } else {
            (s.limit + 1.0 / s.limit.max(1.0)).min(target)
        };
        // Rate: free while the bucket is low; at the drain rate in the middle band; slower above it.
        if settled > s.high_water * 0.6 {
            Self::decrease(&mut s, false);
        } else if settled > s.high_water * 0.3 {
            if let Some(sustainable) = Self::sustainable_spacing(&s) {
                s.spacing = sustainable;
            }
        } else {
            s.spacing = if s.spacing <= MIN_SPACING {
                Duration::ZERO
            } else {
                s.spacing.mul_f64(0.8)
            };
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Estimates the drain rate from consecutive responses: between two of them the settled level gained this
    /// request's cost and lost `drain × Δt`.
    fn observe_drain(s: &mut State, settled: f64, cost: f64) {
        let now = Instant::now();
        // Near an empty bucket the level is clamped at zero and says nothing about the drain.
        let informative = settled > s.high_water * 0.05;
        if let Some((then, previous)) = s.last_observation {
            let dt = (now - then).as_secs_f64();
            if informative && dt >= 0.02 {
                let drain = (previous + cost - settled) / dt;
                if drain.is_finite() && drain > 0.0 && drain < 100_000.0 {
                    s.drain_rate = Some(s.drain_rate.map_or(drain, |d| 0.8 * d + 0.2 * drain));
                }
            }
        }
        s.last_observation = Some((now, settled));
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

    /// Slower: wider spacing (and, after a throttled answer, half the concurrency).
    fn decrease(s: &mut State, throttled: bool) {
        let now = Instant::now();
        if !throttled && s.last_decrease.is_some_and(|t| now - t < COOLDOWN) {
            return;
        }
        s.last_decrease = Some(now);
        if throttled {
            s.limit = (s.limit / 2.0).max(1.0);
        }
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
    async fn concurrency_follows_the_room_above_the_settled_level_and_rate_follows_the_level() {
        let p = Pacer::new(8);
        assert_eq!(p.limit(), 8);
        assert_eq!(p.spacing(), Duration::ZERO);
        // 500 of 600 settled: room for one request's up-front charge, and slower starts.
        p.on_response(Some(100.0), Some(1.0));
        assert_eq!(p.limit(), 1);
        assert!(p.spacing() >= MIN_SPACING);
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
    async fn in_flight_up_front_charges_are_not_counted_as_consumption() {
        let p = std::sync::Arc::new(Pacer::new(11));
        let held: Vec<_> = futures::future::join_all((0..8).map(|_| p.acquire())).await;
        // 8 requests in flight hold 400 of 600 up front; the settled level is 10.
        p.on_response(Some(190.0), Some(0.1));
        assert!(p.limit() >= 10, "limit {}", p.limit());
        assert_eq!(p.spacing(), Duration::ZERO);
        drop(held);
    }

    #[tokio::test]
    async fn concurrency_is_what_canvas_admits_above_the_settled_level() {
        // Canvas admits the n-th request in flight while settled + 50·n < 600.
        for (remaining, admitted) in [
            (600.0, 11),
            (590.0, 11),
            (540.0, 10),
            (500.0, 9),
            (480.0, 9),
            // Settled 130 would admit 9, but not with the margin.
            (470.0, 8),
        ] {
            let p = Pacer::new(11);
            p.on_response(Some(remaining), Some(0.1));
            assert_eq!(p.limit(), admitted, "remaining {remaining}");
        }
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
