//! The seed: the simulator's starting data (CONTRACT.md "Binaries").
//!
//! Over 500 lines on purpose: the JSON shape and builder of each Canvas object a seed holds, kept together as the
//! one description of the seed format (its tests included).
//!
//! One JSON object with arrays `accounts`, `users`, `courses`, `sections`, `roles`, `enrollments`,
//! `observer_links`; each element uses the field names Canvas's API uses for that object. Unknown
//! fields are ignored and missing optional fields take Canvas's defaults. Ids may be JSON numbers or
//! numeric strings (the `application/json+canvas-string-ids` form). One field is required where Canvas always
//! has a value a default would hide: an enrollment's state, `enrollment_state` (Canvas's field in Enrollment JSON;
//! `workflow_state` is read too). A seed file without it is refused with a message naming the field.
//!
//! What [`crate::sim::Store::from_seed`] adds when the seed lacks it:
//! - root account id 1 ("Simulated Canvas");
//! - the five built-in course roles, `workflow_state: built_in`, with stable ids
//!   StudentEnrollment 3, TeacherEnrollment 4, TaEnrollment 5, DesignerEnrollment 6,
//!   ObserverEnrollment 7 (the next free id if the seed already used one of those for something else);
//! - the token's own user ("Sim Admin", login `sim-admin`, next free user id) unless
//!   `token_user_id` names a seeded user;
//! - a course's default section, created the first time it is needed (facts §1).
//!
//! Rust callers can build a seed without JSON: `Seed::default().user(SeedUser::new(10, "Ada"))...`.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::model::ObserverLink;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    pub accounts: Vec<SeedAccount>,
    pub users: Vec<SeedUser>,
    pub courses: Vec<SeedCourse>,
    pub sections: Vec<SeedSection>,
    pub roles: Vec<SeedRole>,
    pub enrollments: Vec<SeedEnrollment>,
    pub observer_links: Vec<ObserverLink>,
    /// The user the admin token belongs to (`/users/self`); a "Sim Admin" user is made when absent.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "opt_id")]
    pub token_user_id: Option<u64>,
}

/// Why a seed file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("seed file {path} is not a valid seed: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("seed is inconsistent: {0}")]
    Invalid(#[from] super::errors::StoreError),
}

impl Seed {
    /// Reads and parses a seed file.
    pub fn from_file(path: &Path) -> Result<Seed, SeedError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| SeedError::Parse {
            path: shown,
            source,
        })
    }

    pub fn account(mut self, account: SeedAccount) -> Self {
        self.accounts.push(account);
        self
    }
    pub fn user(mut self, user: SeedUser) -> Self {
        self.users.push(user);
        self
    }
    pub fn course(mut self, course: SeedCourse) -> Self {
        self.courses.push(course);
        self
    }
    pub fn section(mut self, section: SeedSection) -> Self {
        self.sections.push(section);
        self
    }
    pub fn role(mut self, role: SeedRole) -> Self {
        self.roles.push(role);
        self
    }
    pub fn enrollment(mut self, enrollment: SeedEnrollment) -> Self {
        self.enrollments.push(enrollment);
        self
    }
    pub fn observer_link(mut self, observer_id: u64, student_id: u64) -> Self {
        self.observer_links.push(ObserverLink {
            observer_id,
            student_id,
        });
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedAccount {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    pub name: String,
    #[serde(deserialize_with = "opt_id")]
    pub parent_account_id: Option<u64>,
    #[serde(deserialize_with = "opt_id")]
    pub root_account_id: Option<u64>,
    pub sis_account_id: Option<String>,
    pub integration_id: Option<String>,
    pub workflow_state: Option<String>,
}

impl SeedAccount {
    pub fn new(id: u64, name: &str) -> Self {
        SeedAccount {
            id,
            name: name.to_string(),
            ..Default::default()
        }
    }
    pub fn with_parent(mut self, parent_account_id: u64) -> Self {
        self.parent_account_id = Some(parent_account_id);
        self
    }
    pub fn with_sis_account_id(mut self, sis: &str) -> Self {
        self.sis_account_id = Some(sis.to_string());
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedUser {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    pub name: String,
    pub sortable_name: Option<String>,
    pub short_name: Option<String>,
    pub sis_user_id: Option<String>,
    pub login_id: Option<String>,
    pub integration_id: Option<String>,
    /// `registered` (default), `pre_registered`, `creation_pending`.
    pub workflow_state: Option<String>,
}

impl SeedUser {
    pub fn new(id: u64, name: &str) -> Self {
        SeedUser {
            id,
            name: name.to_string(),
            ..Default::default()
        }
    }
    pub fn with_sis_user_id(mut self, sis: &str) -> Self {
        self.sis_user_id = Some(sis.to_string());
        self
    }
    pub fn with_login_id(mut self, login: &str) -> Self {
        self.login_id = Some(login.to_string());
        self
    }
    pub fn with_integration_id(mut self, integration_id: &str) -> Self {
        self.integration_id = Some(integration_id.to_string());
        self
    }
    pub fn with_sortable_name(mut self, sortable_name: &str) -> Self {
        self.sortable_name = Some(sortable_name.to_string());
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedCourse {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    pub name: String,
    pub course_code: Option<String>,
    #[serde(deserialize_with = "opt_id")]
    pub account_id: Option<u64>,
    pub sis_course_id: Option<String>,
    pub integration_id: Option<String>,
    /// `available` (default) | `unpublished` | `completed` | `deleted`.
    pub workflow_state: Option<String>,
}

impl SeedCourse {
    pub fn new(id: u64, name: &str) -> Self {
        SeedCourse {
            id,
            name: name.to_string(),
            ..Default::default()
        }
    }
    pub fn with_sis_course_id(mut self, sis: &str) -> Self {
        self.sis_course_id = Some(sis.to_string());
        self
    }
    pub fn in_account(mut self, account_id: u64) -> Self {
        self.account_id = Some(account_id);
        self
    }
    pub fn with_state(mut self, workflow_state: &str) -> Self {
        self.workflow_state = Some(workflow_state.to_string());
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedSection {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    #[serde(deserialize_with = "id")]
    pub course_id: u64,
    pub name: String,
    pub sis_section_id: Option<String>,
    pub integration_id: Option<String>,
    pub default_section: bool,
    /// `active` (default) | `deleted`.
    pub workflow_state: Option<String>,
}

impl SeedSection {
    pub fn new(id: u64, course_id: u64, name: &str) -> Self {
        SeedSection {
            id,
            course_id,
            name: name.to_string(),
            ..Default::default()
        }
    }
    pub fn with_sis_section_id(mut self, sis: &str) -> Self {
        self.sis_section_id = Some(sis.to_string());
        self
    }
    pub fn default_section(mut self) -> Self {
        self.default_section = true;
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedRole {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    /// The role's name.
    pub role: String,
    pub label: Option<String>,
    pub base_role_type: String,
    /// `active` (default for custom roles) | `inactive` | `built_in` | `deleted`.
    pub workflow_state: Option<String>,
    #[serde(deserialize_with = "opt_id")]
    pub account_id: Option<u64>,
}

impl SeedRole {
    /// A custom course role; `base_role_type` is e.g. `"StudentEnrollment"`.
    pub fn custom(id: u64, name: &str, base_role_type: &str) -> Self {
        SeedRole {
            id,
            role: name.to_string(),
            base_role_type: base_role_type.to_string(),
            ..Default::default()
        }
    }
    pub fn in_account(mut self, account_id: u64) -> Self {
        self.account_id = Some(account_id);
        self
    }
    pub fn inactive(mut self) -> Self {
        self.workflow_state = Some("inactive".to_string());
        self
    }
}

/// An enrollment as the seed gives it. In a seed file its state is required: `enrollment_state` (Canvas's field in
/// Enrollment JSON) or `workflow_state` (the model's column, the same value); a file that gives neither is refused
/// with a message naming the field, never read as `active`. Rust callers get `active` from [`SeedEnrollment::new`]
/// and [`Default`], explicitly, and change it with [`SeedEnrollment::with_state`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SeedEnrollmentJson")]
pub struct SeedEnrollment {
    /// Allocated when absent.
    pub id: Option<u64>,
    pub user_id: u64,
    /// May be omitted when `course_section_id` is given.
    pub course_id: Option<u64>,
    /// The course's default section when absent.
    pub course_section_id: Option<u64>,
    pub role_id: Option<u64>,
    /// Role name, used when `role_id` is absent.
    pub role: Option<String>,
    /// Base type; inferred from the role when absent, StudentEnrollment when neither is given.
    #[serde(rename = "type")]
    pub enrollment_type: Option<String>,
    /// `active`, `invited`, `creation_pending`, `inactive`, `completed`, `rejected` or `deleted`. Required: the store
    /// refuses an enrollment without one (the builder and [`Default`] set `active`).
    pub enrollment_state: Option<String>,
    pub associated_user_id: Option<u64>,
    pub limit_privileges_to_course_section: Option<bool>,
    pub created_by_sis: Option<bool>,
}

impl Default for SeedEnrollment {
    fn default() -> Self {
        SeedEnrollment {
            id: None,
            user_id: 0,
            course_id: None,
            course_section_id: None,
            role_id: None,
            role: None,
            enrollment_type: None,
            enrollment_state: Some(DEFAULT_BUILT_ENROLLMENT_STATE.to_string()),
            associated_user_id: None,
            limit_privileges_to_course_section: None,
            created_by_sis: None,
        }
    }
}

/// The state [`SeedEnrollment::new`] and [`SeedEnrollment::default`] give; a seed file has no such default.
pub const DEFAULT_BUILT_ENROLLMENT_STATE: &str = "active";

/// The enrollment states a seed may give (Canvas's `workflow_state` values, facts §1).
pub const ENROLLMENT_STATES: &str =
    "active, invited, creation_pending, inactive, completed, rejected or deleted";

/// A seed file's enrollment, before its state is settled.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SeedEnrollmentJson {
    #[serde(deserialize_with = "opt_id")]
    id: Option<u64>,
    #[serde(deserialize_with = "id")]
    user_id: u64,
    #[serde(deserialize_with = "opt_id")]
    course_id: Option<u64>,
    #[serde(deserialize_with = "opt_id")]
    course_section_id: Option<u64>,
    #[serde(deserialize_with = "opt_id")]
    role_id: Option<u64>,
    role: Option<String>,
    #[serde(rename = "type")]
    enrollment_type: Option<String>,
    enrollment_state: Option<String>,
    workflow_state: Option<String>,
    #[serde(deserialize_with = "opt_id")]
    associated_user_id: Option<u64>,
    limit_privileges_to_course_section: Option<bool>,
    created_by_sis: Option<bool>,
}

impl TryFrom<SeedEnrollmentJson> for SeedEnrollment {
    type Error = String;

    fn try_from(json: SeedEnrollmentJson) -> Result<Self, String> {
        let which = || {
            let mut text = match json.id {
                Some(id) => format!("enrollment {id} (user {}", json.user_id),
                None => format!("enrollment of user {}", json.user_id),
            };
            match (json.course_id, json.course_section_id) {
                (Some(course), _) => text.push_str(&format!(" in course {course}")),
                (None, Some(section)) => text.push_str(&format!(" in section {section}")),
                (None, None) => {}
            }
            if json.id.is_some() {
                text.push(')');
            }
            text
        };
        let enrollment_state = match (
            json.enrollment_state.as_deref(),
            json.workflow_state.as_deref(),
        ) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "{} gives enrollment_state `{a}` and workflow_state `{b}`; give one (`enrollment_state`, \
                     Canvas's field)",
                    which()
                ));
            }
            (Some(state), _) | (None, Some(state)) => state.to_string(),
            (None, None) => {
                return Err(format!(
                    "{} has no `enrollment_state` (Canvas's field in Enrollment JSON: {ENROLLMENT_STATES}; \
                     `workflow_state` is read too); a seed file's enrollment state is never assumed",
                    which()
                ));
            }
        };
        Ok(SeedEnrollment {
            id: json.id,
            user_id: json.user_id,
            course_id: json.course_id,
            course_section_id: json.course_section_id,
            role_id: json.role_id,
            role: json.role,
            enrollment_type: json.enrollment_type,
            enrollment_state: Some(enrollment_state),
            associated_user_id: json.associated_user_id,
            limit_privileges_to_course_section: json.limit_privileges_to_course_section,
            created_by_sis: json.created_by_sis,
        })
    }
}

impl SeedEnrollment {
    /// An `active` enrollment of the user in the course's default section, with the built-in role of its type
    /// (StudentEnrollment unless [`SeedEnrollment::with_type`] or [`SeedEnrollment::with_role_id`] says otherwise).
    pub fn new(user_id: u64, course_id: u64) -> Self {
        SeedEnrollment {
            user_id,
            course_id: Some(course_id),
            enrollment_state: Some(DEFAULT_BUILT_ENROLLMENT_STATE.to_string()),
            ..Default::default()
        }
    }
    pub fn with_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }
    pub fn in_section(mut self, section_id: u64) -> Self {
        self.course_section_id = Some(section_id);
        self
    }
    pub fn with_type(mut self, enrollment_type: &str) -> Self {
        self.enrollment_type = Some(enrollment_type.to_string());
        self
    }
    pub fn with_role_id(mut self, role_id: u64) -> Self {
        self.role_id = Some(role_id);
        self
    }
    pub fn with_state(mut self, state: &str) -> Self {
        self.enrollment_state = Some(state.to_string());
        self
    }
    pub fn observing(mut self, student_id: u64) -> Self {
        self.associated_user_id = Some(student_id);
        self
    }
}

/// An id as Canvas may send it: a JSON number, or a numeric string.
#[derive(Deserialize)]
#[serde(untagged)]
enum LooseId {
    Number(u64),
    Text(String),
}

impl LooseId {
    fn into_id<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            LooseId::Number(n) => Ok(n),
            LooseId::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("id {s:?} is not a number"))),
        }
    }
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    LooseId::deserialize(d)?.into_id()
}

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<LooseId>::deserialize(d)? {
        None => Ok(None),
        Some(loose) => loose.into_id().map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_ids_may_be_strings() {
        let seed: Seed = serde_json::from_str(
            r#"{"users":[{"id":"12","name":"Ada","avatar_url":"x","sis_user_id":"S1"}],
                "courses":[{"id":5,"name":"Math","workflow_state":"unpublished","extra":1}],
                "enrollments":[{"user_id":12,"course_id":"5","type":"TeacherEnrollment","enrollment_state":"invited"}]}"#,
        )
        .expect("seed parses");
        assert_eq!(seed.users[0].id, 12);
        assert_eq!(
            seed.courses[0].workflow_state.as_deref(),
            Some("unpublished")
        );
        assert_eq!(seed.enrollments[0].course_id, Some(5));
        assert_eq!(
            seed.enrollments[0].enrollment_type.as_deref(),
            Some("TeacherEnrollment")
        );
        assert_eq!(
            seed.enrollments[0].enrollment_state.as_deref(),
            Some("invited")
        );
    }

    #[test]
    fn an_enrollment_state_may_be_given_as_workflow_state() {
        let seed: Seed = serde_json::from_str(
            r#"{"enrollments":[{"user_id":1,"course_id":2,"workflow_state":"inactive"},
                               {"user_id":1,"course_id":3,"workflow_state":"completed","enrollment_state":"completed"}]}"#,
        )
        .expect("seed parses");
        assert_eq!(
            seed.enrollments[0].enrollment_state.as_deref(),
            Some("inactive")
        );
        assert_eq!(
            seed.enrollments[1].enrollment_state.as_deref(),
            Some("completed")
        );
    }

    #[test]
    fn a_seed_file_enrollment_without_a_state_is_refused_naming_the_field() {
        let err = serde_json::from_str::<Seed>(
            r#"{"enrollments":[{"id":7,"user_id":12,"course_id":5}]}"#,
        )
        .expect_err("no state")
        .to_string();
        assert!(err.contains("`enrollment_state`"), "{err}");
        assert!(err.contains("enrollment 7 (user 12 in course 5)"), "{err}");
        let err = serde_json::from_str::<Seed>(
            r#"{"enrollments":[{"user_id":12,"course_id":5,"enrollment_state":"active","workflow_state":"deleted"}]}"#,
        )
        .expect_err("two states")
        .to_string();
        assert!(
            err.contains("enrollment_state `active`") && err.contains("workflow_state `deleted`"),
            "{err}"
        );
    }

    #[test]
    fn built_enrollments_say_active_explicitly_and_round_trip_through_json() {
        let built = SeedEnrollment::new(1, 2);
        assert_eq!(built.enrollment_state.as_deref(), Some("active"));
        assert_eq!(
            SeedEnrollment::default().enrollment_state.as_deref(),
            Some("active")
        );
        let seed = Seed::default().enrollment(built.with_id(9).with_state("invited"));
        let text = serde_json::to_string(&seed).expect("serialises");
        let back: Seed = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, seed);
    }
}
