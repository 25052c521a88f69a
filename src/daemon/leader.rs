//! Leadership among replicas: whoever holds the PostgreSQL advisory lock applies changes; the others stand by and
//! try again every few seconds and at every tick, so they take over within one tick of the leader's death.
//!
//! The timing argument that keeps two replicas from writing at once is in the README (*Replicas*): a leader that
//! stops hearing from the database fences itself within T1 ([`lock::PROBE_TIMEOUT`]); the server frees the lock
//! only after T2 ([`lock::SERVER_IDLE_TIMEOUT`], well above T1), and a standby cannot have it before then. The one
//! case the server cannot order is a failover (a promoted server never saw the old session): a standby that takes
//! the lock on another server than the one it last saw it held on waits [`FAILOVER_FENCE`] from that sighting
//! before its first write. Any takeover from a holder seen lately pauses [`TAKEOVER_PAUSE`] first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::DatabaseUrl;
use crate::metrics::Metrics;
use crate::store::lock::{self, LeaderLock, ServerInstance, TryLock};

const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// After losing the lock, stay out of the race for a while: whatever cut this replica off (a terminated backend, a
/// network partition) may still be going on, and a standby should get the chance to take over cleanly.
const STAND_DOWN_AFTER_LOSS: Duration = Duration::from_secs(10);
/// A standby that last saw the lock held on one server and takes it on another (a failover) makes no write until
/// this long after that sighting: by then the old leader, cut off from its server at the latest at the sighting,
/// has fenced itself (T1 = [`lock::PROBE_TIMEOUT`]) — with room for the standby's own retry interval.
pub const FAILOVER_FENCE: Duration =
    Duration::from_secs(lock::PROBE_TIMEOUT.as_secs() + LEADERSHIP_RETRY.as_secs() + 2);
/// How often leadership is re-checked and a standby tries the lock.
pub const LEADERSHIP_RETRY: Duration = Duration::from_secs(2);
/// A standby that takes over from a holder it saw a moment ago makes its first write no sooner than this after
/// taking the lock, so that the two replicas' writes are never in the same second.
pub const TAKEOVER_PAUSE: Duration = Duration::from_secs(1);

// The timing argument (README, *Replicas*), checked at build time: the server frees the lock of a silent leader
// (T2) well after that leader has fenced itself (T1), and a failover takeover waits out T1 and a retry interval.
const _: () = assert!(lock::SERVER_IDLE_TIMEOUT.as_secs() >= lock::PROBE_TIMEOUT.as_secs() + 10);
const _: () =
    assert!(FAILOVER_FENCE.as_secs() > lock::PROBE_TIMEOUT.as_secs() + LEADERSHIP_RETRY.as_secs());

pub struct Leadership {
    url: DatabaseUrl,
    lock: Option<LeaderLock>,
    metrics: Arc<Metrics>,
    lost_at: Option<Instant>,
    /// When and on which server another session was last seen holding the lock.
    last_seen_held: Option<(Instant, ServerInstance)>,
    /// No write before this (a takeover across a failover).
    writes_from: Option<Instant>,
}

impl Leadership {
    pub fn new(url: DatabaseUrl, metrics: Arc<Metrics>) -> Self {
        metrics.leader.set(0);
        Self {
            url,
            lock: None,
            metrics,
            lost_at: None,
            last_seen_held: None,
            writes_from: None,
        }
    }

    /// Holds the lock (it may still be waiting out [`FAILOVER_FENCE`] before writing).
    pub fn is_leader(&self) -> bool {
        self.lock.is_some()
    }

    /// May this replica write now? Drops a lost lock (a terminated backend, a dead or silent connection loses it)
    /// and takes the lock if it is free; true only for a leader past any failover fence.
    pub async fn ensure(&mut self) -> bool {
        if self.lock.as_ref().is_some_and(|l| !l.is_held()) {
            warn!(
                stand_down_secs = STAND_DOWN_AFTER_LOSS.as_secs(),
                "leader lock lost (connection to the database gone, silent or terminated); standing down before trying again"
            );
            self.lock = None;
            self.writes_from = None;
            self.lost_at = Some(Instant::now());
        }
        let standing_down = self
            .lost_at
            .is_some_and(|t| t.elapsed() < STAND_DOWN_AFTER_LOSS);
        if self.lock.is_none() && !standing_down {
            match tokio::time::timeout(DB_TIMEOUT, LeaderLock::try_lock(&self.url)).await {
                Ok(Ok(TryLock::Acquired(lock, instance))) => {
                    let now = Instant::now();
                    self.writes_from = first_write_at(self.last_seen_held.as_ref(), &instance, now);
                    let failover = self
                        .last_seen_held
                        .as_ref()
                        .is_some_and(|(_, on)| *on != instance);
                    match self.writes_from {
                        Some(t) if failover => warn!(
                            wait_ms = t.saturating_duration_since(now).as_millis() as u64,
                            "leader lock acquired on another database server than the one it was last seen held on (a failover): waiting for the old leader to have fenced itself before writing"
                        ),
                        Some(t) => info!(
                            wait_ms = t.saturating_duration_since(now).as_millis() as u64,
                            "leader lock acquired from the previous leader: this replica applies changes after a short pause"
                        ),
                        None => info!("leader lock acquired: this replica applies changes"),
                    }
                    self.lock = Some(lock);
                }
                Ok(Ok(TryLock::Held(instance))) => {
                    self.last_seen_held = Some((Instant::now(), instance));
                }
                Ok(Err(e)) => warn!(error = %e, "cannot try the leader lock"),
                Err(_) => warn!("timed out trying the leader lock"),
            }
        }
        self.metrics.leader.set(i64::from(self.lock.is_some()));
        self.may_write()
    }

    fn may_write(&self) -> bool {
        self.lock.as_ref().is_some_and(LeaderLock::is_held)
            && self.writes_from.is_none_or(|t| Instant::now() >= t)
    }

    /// A token for a cycle: cancelled when the lock is lost (and cancellable on its own for shutdown).
    pub fn cycle_token(&self) -> tokio_util::sync::CancellationToken {
        self.lost_token().child_token()
    }

    /// Cancelled when the lock is lost (a fresh, never-cancelled token without a lock).
    pub fn lost_token(&self) -> tokio_util::sync::CancellationToken {
        match &self.lock {
            Some(lock) => lock.lost(),
            None => tokio_util::sync::CancellationToken::new(),
        }
    }

    pub async fn release(&mut self) {
        if let Some(lock) = self.lock.take() {
            let _ = tokio::time::timeout(DB_TIMEOUT, lock.release()).await;
            info!("leader lock released");
        }
        self.metrics.leader.set(0);
    }
}

/// When a replica that just took the lock on `now_on` may first write: at once on a first start (no holder seen
/// lately); [`TAKEOVER_PAUSE`] from now after taking over from a holder seen lately on this server (its session has
/// just ended: its last request has a moment to settle in Canvas); and not before [`FAILOVER_FENCE`] after the
/// sighting when that was on another server (a failover).
fn first_write_at(
    last_seen_held: Option<&(Instant, ServerInstance)>,
    now_on: &ServerInstance,
    now: Instant,
) -> Option<Instant> {
    let (seen, on) = last_seen_held?;
    let fence = *seen + FAILOVER_FENCE;
    if fence <= now {
        return None;
    }
    let pause = now + TAKEOVER_PAUSE;
    Some(if on == now_on {
        pause
    } else {
        pause.max(fence)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(s: &str) -> ServerInstance {
        ServerInstance(s.into())
    }

    #[test]
    fn a_first_start_writes_at_once() {
        assert_eq!(first_write_at(None, &server("a"), Instant::now()), None);
    }

    #[test]
    fn a_takeover_on_the_same_server_pauses_a_moment() {
        let now = Instant::now();
        let seen = (now, server("a"));
        assert_eq!(
            first_write_at(Some(&seen), &server("a"), now),
            Some(now + TAKEOVER_PAUSE)
        );
    }

    #[test]
    fn a_takeover_across_a_failover_waits_out_the_old_leaders_fence() {
        let now = Instant::now();
        let until = first_write_at(Some(&(now, server("a"))), &server("b"), now);
        assert_eq!(until, Some(now + FAILOVER_FENCE));
    }

    #[test]
    fn an_old_sighting_does_not_delay_a_takeover() {
        let seen = Instant::now();
        let later = seen + FAILOVER_FENCE + Duration::from_secs(1);
        assert_eq!(
            first_write_at(Some(&(seen, server("a"))), &server("b"), later),
            None
        );
    }
}
