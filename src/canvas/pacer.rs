//! The adaptive in-flight limit (AIMD) that keeps Canvas's leaky bucket (facts §5) busy without overflowing it.
//!
//! Canvas charges every request an up-front 50 units and refunds the difference when it ends; the bucket drains
//! 10 units/s and throttles at the high-water mark (600 by default). The only signals are `X-Rate-Limit-Remaining`
//! and throttled answers, so the limit grows by one per window of successful responses (additive increase) and
//! halves when the remaining quota runs low or a request is throttled (multiplicative decrease), never above
//! `limits.max_in_flight` and never below one. When the quota is nearly gone, new requests also wait for the
//! bucket to drain instead of being sent to be refused.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Canvas's default drain rate (facts §5), used to estimate how long a near-empty quota takes to recover.
const OUTFLOW_PER_SEC: f64 = 10.0;
/// Canvas's up-front cost per request (facts §5).
const UP_FRONT_COST: f64 = 50.0;

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: u32,
    /// Highest `X-Rate-Limit-Remaining` seen: an estimate of the bucket's high-water mark.
    high_water: f64,
    pause_until: Option<Instant>,
    last_decrease: Option<Instant>,
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
                high_water: 600.0,
                pause_until: None,
                last_decrease: None,
            }),
            notify: Notify::new(),
        }
    }

    /// The current limit, rounded down.
    pub fn limit(&self) -> u32 {
        self.state
            .lock()
            .map(|s| s.limit.floor() as u32)
            .unwrap_or(1)
    }

    /// Waits for a slot under the current limit (and for a pause to end).
    pub async fn acquire(&self) -> PacerPermit<'_> {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let Ok(mut s) = self.state.lock() else {
                    // A poisoned lock only means another task panicked mid-update; carry on unpaced.
                    return PacerPermit { pacer: self };
                };
                let now = Instant::now();
                match s.pause_until {
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        if s.in_flight < (s.limit.floor() as u32).max(1) {
                            s.in_flight += 1;
                            return PacerPermit { pacer: self };
                        }
                        None
                    }
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    // Re-check periodically too: a pause may be set and expire without a notification.
                    let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
                }
            }
        }
    }

    /// Feeds back a response's throttle headers.
    pub fn on_response(&self, remaining: Option<f64>, cost: Option<f64>) {
        let Ok(mut s) = self.state.lock() else { return };
        let Some(remaining) = remaining.filter(|r| r.is_finite()) else {
            // No headers (e.g. a Canvas without Redis): grow slowly towards the configured cap.
            Self::increase(&mut s, self.max);
            return;
        };
        s.high_water = s.high_water.max(remaining + cost.unwrap_or(0.0));
        let low = (s.high_water * 0.25).max(2.0 * UP_FRONT_COST);
        if remaining < low {
            Self::decrease(&mut s);
            if remaining < 2.0 * UP_FRONT_COST {
                // Wait until the bucket has drained enough for the up-front charge of the requests in flight.
                let deficit = 2.0 * UP_FRONT_COST - remaining;
                let until = Instant::now() + Duration::from_secs_f64(deficit / OUTFLOW_PER_SEC);
                s.pause_until = Some(s.pause_until.map_or(until, |p| p.max(until)));
            }
        } else {
            Self::increase(&mut s, self.max);
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// A throttled answer: halve the limit and pause long enough for a few requests' worth to drain.
    pub fn on_throttled(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        Self::decrease(&mut s);
        let until = Instant::now() + Duration::from_secs_f64(UP_FRONT_COST * 2.0 / OUTFLOW_PER_SEC);
        s.pause_until = Some(s.pause_until.map_or(until, |p| p.max(until)));
    }

    fn increase(s: &mut State, max: u32) {
        s.limit = (s.limit + 1.0 / s.limit.max(1.0)).min(f64::from(max));
    }

    fn decrease(s: &mut State) {
        // At most one halving per half second: the responses of one window all carry the same news.
        let now = Instant::now();
        if s.last_decrease
            .is_some_and(|t| now - t < Duration::from_millis(500))
        {
            return;
        }
        s.last_decrease = Some(now);
        s.limit = (s.limit / 2.0).max(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_halves_on_low_quota_and_grows_back() {
        let p = Pacer::new(8);
        assert_eq!(p.limit(), 8);
        p.on_response(Some(100.0), Some(1.0));
        assert_eq!(p.limit(), 4);
        p.on_throttled(); // within the cooldown: no second halving
        assert_eq!(p.limit(), 4);
        for _ in 0..40 {
            p.on_response(Some(590.0), Some(1.0));
        }
        assert_eq!(
            p.limit(),
            8,
            "additive increase back to the cap, never above"
        );
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
