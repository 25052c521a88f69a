//! The operator's choices that the pure core decides with: what a removal does in Canvas, and how an SIS user id
//! names a Canvas user. Parsed from the configuration in `config::validate`; used by `plan`, `sis_row` and the cycle.

use super::EnrollmentState;

/// What `reconcile.removal` does to a live enrollment the SIS no longer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemovalPolicy {
    #[default]
    Conclude,
    Delete,
    Inactivate,
    Keep,
}

impl RemovalPolicy {
    /// The value as `reconcile.removal` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalPolicy::Conclude => "conclude",
            RemovalPolicy::Delete => "delete",
            RemovalPolicy::Inactivate => "inactivate",
            RemovalPolicy::Keep => "keep",
        }
    }

    /// The state a removal leaves the enrollment in, or `None` for `keep`. The Canvas task and the SIS-import
    /// status of a removal follow from it ([`EnrollmentState::canvas_task`], [`EnrollmentState::sis_import_status`]).
    pub fn resulting_state(self) -> Option<EnrollmentState> {
        match self {
            RemovalPolicy::Conclude => Some(EnrollmentState::Completed),
            RemovalPolicy::Delete => Some(EnrollmentState::Deleted),
            RemovalPolicy::Inactivate => Some(EnrollmentState::Inactive),
            RemovalPolicy::Keep => None,
        }
    }

    /// The `task` parameter of `DELETE /courses/:id/enrollments/:id` (facts §1), or `None` for `keep`.
    pub fn canvas_task(self) -> Option<&'static str> {
        self.resulting_state()
            .and_then(EnrollmentState::canvas_task)
    }
}

/// How the SIS `user_id` column names a Canvas user (facts §2: `sis_user_id` is case-sensitive,
/// `sis_login_id` compares lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserIdKind {
    #[default]
    SisUserId,
    SisLoginId,
}

impl UserIdKind {
    pub fn canvas_prefix(self) -> &'static str {
        match self {
            UserIdKind::SisUserId => "sis_user_id",
            UserIdKind::SisLoginId => "sis_login_id",
        }
    }
}
