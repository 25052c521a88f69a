//! The simulated Canvas's rows: accounts, users, courses, sections, roles, enrollments.
//!
//! Field names follow Canvas's own columns so that the seed file, the JSON and the store read alike.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The five built-in course enrollment types (canvas-api-facts.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EnrollmentType {
    #[serde(rename = "StudentEnrollment")]
    Student,
    #[serde(rename = "TeacherEnrollment")]
    Teacher,
    #[serde(rename = "TaEnrollment")]
    Ta,
    #[serde(rename = "DesignerEnrollment")]
    Designer,
    #[serde(rename = "ObserverEnrollment")]
    Observer,
}

impl EnrollmentType {
    pub const ALL: [EnrollmentType; 5] = [
        EnrollmentType::Student,
        EnrollmentType::Teacher,
        EnrollmentType::Ta,
        EnrollmentType::Designer,
        EnrollmentType::Observer,
    ];

    /// The Canvas type name, which is also the built-in role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentType::Student => "StudentEnrollment",
            EnrollmentType::Teacher => "TeacherEnrollment",
            EnrollmentType::Ta => "TaEnrollment",
            EnrollmentType::Designer => "DesignerEnrollment",
            EnrollmentType::Observer => "ObserverEnrollment",
        }
    }

    /// The built-in role's label (§4).
    pub fn label(self) -> &'static str {
        match self {
            EnrollmentType::Student => "Student",
            EnrollmentType::Teacher => "Teacher",
            EnrollmentType::Ta => "TA",
            EnrollmentType::Designer => "Designer",
            EnrollmentType::Observer => "Observer",
        }
    }

    /// Lowercase short name used by SIS CSV and the provisioning report (§8, §9).
    pub fn short_name(self) -> &'static str {
        match self {
            EnrollmentType::Student => "student",
            EnrollmentType::Teacher => "teacher",
            EnrollmentType::Ta => "ta",
            EnrollmentType::Designer => "designer",
            EnrollmentType::Observer => "observer",
        }
    }

    /// Exact type name, as Canvas compares it.
    pub fn parse(name: &str) -> Option<EnrollmentType> {
        EnrollmentType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The stable id this simulator gives the built-in role of this type (documented in `seed.rs`).
    pub fn builtin_role_id(self) -> u64 {
        match self {
            EnrollmentType::Student => 3,
            EnrollmentType::Teacher => 4,
            EnrollmentType::Ta => 5,
            EnrollmentType::Designer => 6,
            EnrollmentType::Observer => 7,
        }
    }
}

/// An enrollment's raw `workflow_state` (§1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    Active,
    Invited,
    CreationPending,
    Deleted,
    Rejected,
    Completed,
    Inactive,
}

impl EnrollmentState {
    pub const ALL: [EnrollmentState; 7] = [
        EnrollmentState::Active,
        EnrollmentState::Invited,
        EnrollmentState::CreationPending,
        EnrollmentState::Deleted,
        EnrollmentState::Rejected,
        EnrollmentState::Completed,
        EnrollmentState::Inactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Active => "active",
            EnrollmentState::Invited => "invited",
            EnrollmentState::CreationPending => "creation_pending",
            EnrollmentState::Deleted => "deleted",
            EnrollmentState::Rejected => "rejected",
            EnrollmentState::Completed => "completed",
            EnrollmentState::Inactive => "inactive",
        }
    }

    pub fn parse(name: &str) -> Option<EnrollmentState> {
        EnrollmentState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A course's state as the API names it (`claimed`/`created` are shown as `unpublished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourseState {
    Available,
    Unpublished,
    Completed,
    Deleted,
}

impl CourseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CourseState::Available => "available",
            CourseState::Unpublished => "unpublished",
            CourseState::Completed => "completed",
            CourseState::Deleted => "deleted",
        }
    }

    /// Accepts the API names plus Canvas's internal `created`/`claimed` for unpublished.
    pub fn parse(name: &str) -> Option<CourseState> {
        match name {
            "available" => Some(CourseState::Available),
            "unpublished" | "created" | "claimed" => Some(CourseState::Unpublished),
            "completed" => Some(CourseState::Completed),
            "deleted" => Some(CourseState::Deleted),
            _ => None,
        }
    }
}

/// A role's `workflow_state` (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleState {
    Active,
    Inactive,
    BuiltIn,
    Deleted,
}

impl RoleState {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleState::Active => "active",
            RoleState::Inactive => "inactive",
            RoleState::BuiltIn => "built_in",
            RoleState::Deleted => "deleted",
        }
    }

    pub fn parse(name: &str) -> Option<RoleState> {
        match name {
            "active" => Some(RoleState::Active),
            "inactive" => Some(RoleState::Inactive),
            "built_in" => Some(RoleState::BuiltIn),
            "deleted" => Some(RoleState::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: u64,
    pub name: String,
    pub parent_account_id: Option<u64>,
    pub root_account_id: Option<u64>,
    pub sis_account_id: Option<String>,
    pub integration_id: Option<String>,
    pub workflow_state: String,
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub sortable_name: String,
    pub short_name: String,
    pub sis_user_id: Option<String>,
    pub login_id: Option<String>,
    pub integration_id: Option<String>,
    /// `registered` unless the seed says otherwise; observers of registered users start active (§1).
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    pub id: u64,
    pub name: String,
    pub course_code: String,
    pub account_id: u64,
    pub root_account_id: u64,
    pub sis_course_id: Option<String>,
    pub integration_id: Option<String>,
    pub workflow_state: CourseState,
    pub uuid: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: u64,
    pub course_id: u64,
    pub name: String,
    pub sis_section_id: Option<String>,
    pub integration_id: Option<String>,
    pub default_section: bool,
    /// `active` or `deleted`.
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    /// The course a cross-listed section came from (§10 "Cross-listing").
    pub nonxlist_course_id: Option<u64>,
}

impl Section {
    pub fn is_active(&self) -> bool {
        self.workflow_state != "deleted"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub id: u64,
    /// The role's name (`role` in the JSON); built-ins are named after their type.
    pub name: String,
    pub label: String,
    /// A course enrollment type, or e.g. `AccountMembership` for account roles.
    pub base_role_type: String,
    pub workflow_state: RoleState,
    pub account_id: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Role {
    /// The enrollment type of a course role; `None` for account roles.
    pub fn course_type(&self) -> Option<EnrollmentType> {
        EnrollmentType::parse(&self.base_role_type)
    }

    pub fn is_built_in(&self) -> bool {
        self.workflow_state == RoleState::BuiltIn
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub id: u64,
    pub user_id: u64,
    pub course_id: u64,
    pub course_section_id: u64,
    pub root_account_id: u64,
    pub role_id: u64,
    pub enrollment_type: EnrollmentType,
    pub workflow_state: EnrollmentState,
    pub associated_user_id: Option<u64>,
    pub limit_privileges_to_course_section: bool,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub self_enrolled: bool,
    /// The SIS batch that last wrote the row (`sis_import_id`); cleared when an API re-POST revives it.
    pub sis_batch_id: Option<u64>,
    /// Whether a SIS import created the row (provisioning report's `created_by_sis`, §9).
    pub created_by_sis: bool,
}

/// An observer linked to a student: Canvas auto-enrols the observer wherever the student is enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserverLink {
    pub observer_id: u64,
    pub student_id: u64,
}
