//! The seam between the cycle and the system it reconciles (CONTRACT v2 "a second target"): Canvas, or Open edX
//! program enrollments.
//!
//! The cycle's shape is the same for both: read the SIS and the target's live enrollments into one
//! [`Snapshot`](crate::domain::decide::Snapshot), decide (pure, shared: the plan, duplicates, exceptions, the
//! brake), apply with an audit row per change. What differs is behind [`Target`]: how live state is read
//! (`reconcile::read` dispatches here), how a change is made (`reconcile::apply`), and the words that describe it
//! (the role book's [`Vocabulary`](crate::domain::Vocabulary)).

pub mod openedx;

use std::sync::Arc;

use crate::canvas::{CanvasClient, RequestStats};
use crate::config::{Settings, TargetKind};
use crate::domain::{EnrollmentState, UserIdKind, Vocabulary};
use crate::openedx::OpenEdxClient;

/// The connected target.
#[derive(Clone)]
pub enum Target {
    Canvas(Arc<CanvasClient>),
    OpenEdx(Arc<OpenEdxClient>),
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Canvas(_) => TargetKind::Canvas,
            Target::OpenEdx(_) => TargetKind::OpenEdx,
        }
    }

    /// Resets the per-cycle request counters (and Canvas's retry budget).
    pub fn begin_cycle(&self) {
        match self {
            Target::Canvas(c) => c.begin_cycle(),
            Target::OpenEdx(c) => c.begin_cycle(),
        }
    }

    /// The requests made since [`Target::begin_cycle`].
    pub fn stats(&self) -> RequestStats {
        match self {
            Target::Canvas(c) => c.stats(),
            Target::OpenEdx(c) => c.stats(),
        }
    }

    /// The Canvas client, for the commands that speak only Canvas (`explain`'s lookups, `apply`, `undo`).
    pub fn canvas(&self) -> Option<&Arc<CanvasClient>> {
        match self {
            Target::Canvas(c) => Some(c),
            Target::OpenEdx(_) => None,
        }
    }
}

/// Writes a target makes besides the plan (Open edX: keep-alive writes of waiting enrollments), planned and audited
/// like the plan's changes, never braked (they give or take nothing).
pub fn extra_changes(
    snap: &crate::domain::decide::Snapshot,
    decision: &crate::domain::decide::Decision,
) -> Vec<crate::domain::plan::Change> {
    openedx::keepalive_changes(snap, decision)
}

/// The words the target's states are named in (plans, audit rows, undo).
pub fn vocabulary(settings: &Settings) -> Vocabulary {
    match settings.target {
        TargetKind::Canvas => Vocabulary::Canvas,
        TargetKind::OpenEdx => Vocabulary::OpenEdx,
    }
}

/// How SIS user ids compare with the target's: as `sis.user_id_kind` says for Canvas; Open edX's external keys
/// compare case-insensitively (facts §6.5), as login ids do.
pub fn identity_kind(settings: &Settings) -> UserIdKind {
    match settings.target {
        TargetKind::Canvas => settings.sis.user_id_kind,
        TargetKind::OpenEdx => UserIdKind::SisLoginId,
    }
}

/// The state a removal leaves an enrollment in a section (a course run, for Open edX) in, when it is not the
/// removal policy's: Open edX course access is the run enrollment's `active`/`inactive` (facts §5.2, §9.7), so an
/// unlisted run enrollment becomes `inactive` under every policy but `keep`.
pub fn section_removal(settings: &Settings) -> Option<EnrollmentState> {
    let removal = settings.reconcile.removal;
    vocabulary(settings)
        .removal_state(true, removal)
        .filter(|s| Some(*s) != removal.resulting_state())
}
