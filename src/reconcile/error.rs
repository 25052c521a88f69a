//! [`CycleError`]: why a cycle ended before it could make its changes, or could not finish recording them.
//! A failed change is never one of these: it is a value in the audit log (see `apply`).

use crate::canvas::CanvasError;
use crate::sis::SisError;
use crate::store::DbError;

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// Reading Canvas failed; `doing` says what the cycle was reading when it did.
    #[error("{doing}{source}")]
    Canvas { doing: String, source: CanvasError },
    /// Reading Open edX failed, or Open edX refused the credentials mid-cycle.
    #[error("{doing}{source}")]
    OpenEdx {
        doing: String,
        source: crate::openedx::OpenEdxError,
    },
    /// A command that speaks one target only, run with the other.
    #[error("{0}")]
    NotForTarget(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Sis(#[from] SisError),
    /// A role rule that cannot be applied (a role Canvas does not have, or rules that loop).
    #[error("{0}")]
    RoleRule(String),
    /// The provisioning report could not be read as a report.
    #[error("{0}")]
    Report(String),
    /// Settings that cannot work together for this cycle.
    #[error("{0}")]
    Settings(&'static str),
    /// Canvas lists enrollments but shows none of their users' SIS identities: the token may not see them.
    #[error(
        "Canvas listed {listed} enrollments in the managed courses and not one with a {field}: the token's account \
         role lacks the permission to see SIS ids (\"Users - view SIS ID\", and \"Users - view login IDs\" for \
         sis_login_id). Nothing is changed until it has it: every enrollment would look missing."
    )]
    IdentitiesHidden { listed: usize, field: &'static str },
    /// The cycle reached `reconcile.cycle_deadline_secs` before it could decide.
    #[error(
        "the cycle reached its deadline (reconcile.cycle_deadline_secs = {}) while reading, so no change is made",
        .0.as_secs()
    )]
    Deadline(std::time::Duration),
    /// The audit log could not be written (before the first change: nothing was made) or fully recorded.
    #[error("{0}")]
    Audit(String),
}

impl From<CanvasError> for CycleError {
    fn from(source: CanvasError) -> Self {
        CycleError::Canvas {
            doing: String::new(),
            source,
        }
    }
}

impl CycleError {
    /// A bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CycleError::Canvas { .. } => "canvas",
            CycleError::OpenEdx { .. } => "openedx",
            CycleError::NotForTarget(_) => "settings",
            CycleError::Db(_) => "db",
            CycleError::Sis(_) => "sis",
            CycleError::RoleRule(_) => "role_rule",
            CycleError::Report(_) => "report",
            CycleError::Settings(_) => "settings",
            CycleError::IdentitiesHidden { .. } => "canvas_permission",
            CycleError::Deadline(_) => "deadline",
            CycleError::Audit(_) => "audit",
        }
    }

    /// Whether Canvas itself was the problem: the daemon is then not ready until a cycle gets through.
    pub fn is_canvas_down(&self) -> bool {
        match self {
            CycleError::Canvas { source, .. } => source.means_canvas_down(),
            CycleError::OpenEdx { source, .. } => {
                matches!(
                    source,
                    crate::openedx::OpenEdxError::Network { .. }
                        | crate::openedx::OpenEdxError::Throttled { .. }
                ) || source.status().is_some_and(|s| s >= 500)
            }
            _ => false,
        }
    }
}
