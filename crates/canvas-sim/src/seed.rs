//! The seed: the simulator's starting data (CONTRACT.md "Binaries").
//!
//! One JSON object with arrays `accounts`, `users`, `courses`, `sections`, `roles`, `enrollments`,
//! `observer_links`; each element uses the field names Canvas's API uses for that object. Unknown
//! fields are ignored and missing optional fields take Canvas's defaults. Ids may be JSON numbers or
//! numeric strings (the `application/json+canvas-string-ids` form).
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedEnrollment {
    /// Allocated when absent.
    #[serde(deserialize_with = "opt_id")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "id")]
    pub user_id: u64,
    /// May be omitted when `course_section_id` is given.
    #[serde(deserialize_with = "opt_id")]
    pub course_id: Option<u64>,
    /// The course's default section when absent.
    #[serde(deserialize_with = "opt_id")]
    pub course_section_id: Option<u64>,
    #[serde(deserialize_with = "opt_id")]
    pub role_id: Option<u64>,
    /// Role name, used when `role_id` is absent.
    pub role: Option<String>,
    /// Base type; inferred from the role when absent, StudentEnrollment when neither is given.
    #[serde(rename = "type")]
    pub enrollment_type: Option<String>,
    /// `active` when absent.
    pub enrollment_state: Option<String>,
    #[serde(deserialize_with = "opt_id")]
    pub associated_user_id: Option<u64>,
    pub limit_privileges_to_course_section: Option<bool>,
    pub created_by_sis: Option<bool>,
}

impl SeedEnrollment {
    pub fn new(user_id: u64, course_id: u64) -> Self {
        SeedEnrollment {
            user_id,
            course_id: Some(course_id),
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
                "enrollments":[{"user_id":12,"course_id":"5","type":"TeacherEnrollment"}]}"#,
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
    }
}
