//! Leadership among replicas: whoever holds the PostgreSQL advisory lock applies changes; the others stand by and
//! try again every few seconds and at every tick, so they take over within one tick of the leader's death.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::DatabaseUrl;
use crate::metrics::Metrics;
use crate::store::lock::LeaderLock;

const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// After losing the lock, stay out of the race for a while: whatever cut this replica off (a terminated backend, a
/// network partition) may still be going on, and a standby should get the chance to take over cleanly.
const STAND_DOWN_AFTER_LOSS: Duration = Duration::from_secs(10);

pub struct Leadership {
    url: DatabaseUrl,
    lock: Option<LeaderLock>,
    metrics: Arc<Metrics>,
    lost_at: Option<std::time::Instant>,
}

impl Leadership {
    pub fn new(url: DatabaseUrl, metrics: Arc<Metrics>) -> Self {
        metrics.leader.set(0);
        Self {
            url,
            lock: None,
            metrics,
            lost_at: None,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.lock.is_some()
    }

    /// Leader now? Drops a lost lock (a terminated backend or a dead connection loses it) and takes the lock if
    /// it is free.
    pub async fn ensure(&mut self) -> bool {
        if self.lock.as_ref().is_some_and(|l| !l.is_held()) {
            warn!(
                stand_down_secs = STAND_DOWN_AFTER_LOSS.as_secs(),
                "leader lock lost (connection to the database gone or terminated); standing down before trying again"
            );
            self.lock = None;
            self.lost_at = Some(std::time::Instant::now());
        }
        let standing_down = self
            .lost_at
            .is_some_and(|t| t.elapsed() < STAND_DOWN_AFTER_LOSS);
        if self.lock.is_none() && !standing_down {
            match tokio::time::timeout(DB_TIMEOUT, LeaderLock::try_acquire(&self.url)).await {
                Ok(Ok(Some(lock))) => {
                    info!("leader lock acquired: this replica applies changes");
                    self.lock = Some(lock);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => warn!(error = %e, "cannot try the leader lock"),
                Err(_) => warn!("timed out trying the leader lock"),
            }
        }
        self.metrics.leader.set(i64::from(self.lock.is_some()));
        self.lock.is_some()
    }

    /// A token for a cycle: cancelled when the lock is lost (and cancellable on its own for shutdown).
    pub fn cycle_token(&self) -> tokio_util::sync::CancellationToken {
        match &self.lock {
            Some(lock) => lock.lost().child_token(),
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
