//! What `/readyz` says about Canvas: whether this replica has seen Canvas accept its token. Two sources feed it: the
//! cycles the leader runs, and the token check ([`super::canvas_check`]) that every replica runs at start and a
//! standby repeats while it runs no cycles. Until one of them has got through, the replica is not ready: a standby
//! with a revoked token would otherwise look healthy until the moment it takes over.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::reconcile::CycleReport;

/// What this replica last learned about Canvas and its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanvasState {
    /// Nothing yet: the first token check has not answered.
    Unverified,
    /// Canvas accepted the token and answered.
    Accepted,
    /// Canvas rejected the token or could not be reached; why, in words safe to serve (no token).
    Refused(String),
}

/// Health facts the HTTP server reads.
#[derive(Debug)]
pub struct Health {
    canvas: Mutex<CanvasState>,
    /// Whether this replica holds the leader lock (then its cycles, not the token check, keep `canvas` current).
    leader: AtomicBool,
}

impl Health {
    /// A replica that has not heard from Canvas yet: not ready.
    pub fn unverified() -> Self {
        Self {
            canvas: Mutex::new(CanvasState::Unverified),
            leader: AtomicBool::new(false),
        }
    }

    /// For a process whose cycles start at once against a Canvas it trusts (the demo's own simulator).
    pub fn accepted() -> Self {
        Self {
            canvas: Mutex::new(CanvasState::Accepted),
            leader: AtomicBool::new(false),
        }
    }

    pub fn canvas(&self) -> CanvasState {
        self.canvas
            .lock()
            .map(|s| s.clone())
            .unwrap_or(CanvasState::Unverified)
    }

    /// Records what a token check or a cycle found; returns the state it replaced.
    pub fn set_canvas(&self, state: CanvasState) -> CanvasState {
        match self.canvas.lock() {
            Ok(mut s) => std::mem::replace(&mut *s, state),
            Err(_) => CanvasState::Unverified,
        }
    }

    /// A cycle that found the token rejected or Canvas unreachable makes the replica not ready until one gets
    /// through (or, on a standby, until the token check passes).
    pub fn record_cycle(&self, report: &CycleReport) {
        self.set_canvas(if report.details.canvas_unavailable {
            CanvasState::Refused(
                "the last cycle found the Canvas token rejected or Canvas unreachable".to_owned(),
            )
        } else {
            CanvasState::Accepted
        });
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    /// Why this replica is not ready as far as Canvas goes, or `None` when it is.
    pub fn canvas_problem(&self) -> Option<String> {
        match self.canvas() {
            CanvasState::Accepted => None,
            CanvasState::Unverified => Some(
                "Canvas token not verified yet (the first GET /api/v1/users/self has not answered)"
                    .to_owned(),
            ),
            CanvasState::Refused(why) => Some(why),
        }
    }
}
