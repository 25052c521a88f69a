//! The JSON of the program-enrollment API (openedx-api-facts.md §2–§4): what is read, what is written, and the
//! per-key result of a write.

use serde::{Deserialize, Serialize};

/// A program enrollment as `GET programs/{uuid}/enrollments/` lists it (facts §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProgramEnrollment {
    /// The stored casing (facts §6.5); compare case-insensitively.
    pub student_key: String,
    pub status: String,
    /// `false`: a waiting enrollment (no LMS account linked yet).
    pub account_exists: bool,
    pub curriculum_uuid: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
}

/// A program-course enrollment as `GET programs/{uuid}/courses/{run}/enrollments/` lists it (facts §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CourseEnrollment {
    pub student_key: String,
    pub status: String,
    pub account_exists: bool,
    pub curriculum_uuid: String,
    #[serde(default)]
    pub course_staff: bool,
}

/// A page of a cursor-paginated listing (facts §4.3).
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub next: Option<String>,
    pub results: Vec<T>,
}

/// Program enrollment statuses (facts §2.4): bookkeeping only, course access is the course enrollment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramStatus {
    Enrolled,
    Pending,
    Suspended,
    Canceled,
    Ended,
}

/// Course enrollment statuses (facts §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CourseStatus {
    Active,
    Inactive,
}

/// One row of a program-enrollment PUT (facts §2.4: `student_key`, not `external_user_key`; `curriculum_uuid`
/// is required on PUT, and never changes an existing enrollment's curriculum, facts §2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramEnrollmentWrite {
    pub student_key: String,
    pub status: ProgramStatus,
    pub curriculum_uuid: String,
}

/// One row of a program-course-enrollment PUT (facts §3.2). `course_staff` is sent only when set: omitted leaves
/// the role alone, `false` removes it (facts §3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CourseEnrollmentWrite {
    pub student_key: String,
    pub status: CourseStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course_staff: Option<bool>,
}

/// Something with a `student_key`, written in batches.
pub trait Keyed {
    fn student_key(&self) -> &str;
}

impl Keyed for ProgramEnrollmentWrite {
    fn student_key(&self) -> &str {
        &self.student_key
    }
}

impl Keyed for CourseEnrollmentWrite {
    fn student_key(&self) -> &str {
        &self.student_key
    }
}

/// A per-key error result of a write (facts §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Duplicated,
    InvalidStatus,
    Conflict,
    NotInProgram,
    NotFound,
    IllegalOperation,
    InternalError,
    /// A value outside the facts' vocabulary, kept as sent.
    Other(String),
}

impl KeyError {
    fn parse(value: &str) -> Self {
        match value {
            "duplicated" => KeyError::Duplicated,
            "invalid-status" => KeyError::InvalidStatus,
            "conflict" => KeyError::Conflict,
            "not-in-program" => KeyError::NotInProgram,
            "not-found" => KeyError::NotFound,
            "illegal-operation" => KeyError::IllegalOperation,
            "internal-error" => KeyError::InternalError,
            other => KeyError::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            KeyError::Duplicated => "duplicated",
            KeyError::InvalidStatus => "invalid-status",
            KeyError::Conflict => "conflict",
            KeyError::NotInProgram => "not-in-program",
            KeyError::NotFound => "not-found",
            KeyError::IllegalOperation => "illegal-operation",
            KeyError::InternalError => "internal-error",
            KeyError::Other(s) => s,
        }
    }
}

/// What happened to one key of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Written: the key's new status (facts §2.7 "OK set").
    Applied(String),
    /// Open edX answered an error for this key; the rest of its batch may have been applied (207/422).
    Rejected(KeyError),
    /// The key's batch failed as a whole (a 500 rolls the request back, facts §7.4; or retries ran out): nothing
    /// of it was applied, retry next cycle.
    Failed(String),
}

impl KeyOutcome {
    /// A per-key result value: an OK status of `ok_set`, else an error (facts §2.7).
    pub(super) fn parse(value: &str, ok_set: &[&str]) -> Self {
        if ok_set.contains(&value) {
            KeyOutcome::Applied(value.to_owned())
        } else {
            KeyOutcome::Rejected(KeyError::parse(value))
        }
    }
}

/// One key's result, in the order the keys were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyResult {
    /// The key as the caller gave it.
    pub student_key: String,
    pub outcome: KeyOutcome,
}

/// Program write results: the OK set of facts §2.7.
pub(super) const PROGRAM_OK: &[&str] = &["enrolled", "pending", "suspended", "canceled", "ended"];
/// Course write results: the OK set of facts §3.3.
pub(super) const COURSE_OK: &[&str] = &["active", "inactive"];
