//! The openedx-sim seed (CONTRACT v2 "a second target"): one JSON object with arrays `oauth_clients`, `users`,
//! `programs`, `program_enrollments` and `program_course_enrollments`. Unknown fields are ignored. Three optional
//! arrays the contract does not name let a test arrange more of the LMS: `saml_providers` (`slug`, `organization`;
//! without any, a `social_uid`'s slug counts as a provider of every organization), `courses` (course run keys the
//! LMS has outside every curriculum) and `course_enrollments` (plain LMS enrollments: `username`, `course_key`,
//! `mode`, `is_active`). A program enrollment may carry `modified` (RFC 3339) to start the waiting-expiry clock
//! in the past; a client may be `restricted` (a RestrictedApplication, facts §1.4).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Everything an openedx-sim starts with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenEdxSeed {
    pub oauth_clients: Vec<SeedClient>,
    pub users: Vec<SeedLmsUser>,
    pub programs: Vec<SeedProgram>,
    pub program_enrollments: Vec<SeedProgramEnrollment>,
    pub program_course_enrollments: Vec<SeedProgramCourseEnrollment>,
    pub saml_providers: Vec<SeedSamlProvider>,
    pub courses: Vec<String>,
    pub course_enrollments: Vec<SeedCourseEnrollment>,
}

/// An OAuth2 application (django-oauth-toolkit), owned by an LMS user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedClient {
    pub client_id: String,
    pub client_secret: String,
    pub owner_username: String,
    /// A RestrictedApplication: its JWTs say `is_restricted` and get 403; its opaque tokens are born expired.
    #[serde(default)]
    pub restricted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedLmsUser {
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub is_staff: bool,
    /// `"<saml slug>:<external key>"`: the learner's UserSocialAuth uid (facts §2.6, §6.2).
    #[serde(default)]
    pub social_uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedProgram {
    /// The catalog cache key: compared as written (facts §2.2: an uppercase UUID in a URL is a 404).
    pub uuid: String,
    #[serde(default)]
    pub authoring_org: Option<String>,
    #[serde(default)]
    pub curricula: Vec<SeedCurriculum>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedCurriculum {
    pub uuid: String,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub course_runs: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedProgramEnrollment {
    pub student_key: String,
    pub program_uuid: String,
    pub curriculum_uuid: String,
    pub status: String,
    /// The linked LMS user; null = a waiting enrollment.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedProgramCourseEnrollment {
    pub student_key: String,
    pub program_uuid: String,
    pub course_key: String,
    pub status: String,
    #[serde(default)]
    pub course_staff: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSamlProvider {
    pub slug: String,
    pub organization: String,
}

/// A plain LMS course enrollment (`student_courseenrollment`), e.g. a pre-existing `verified` one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedCourseEnrollment {
    pub username: String,
    pub course_key: String,
    pub mode: String,
    #[serde(default = "yes")]
    pub is_active: bool,
}

/// Why a seed could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OpenEdxSeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("seed file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("seed: {0}")]
    Invalid(String),
}

impl OpenEdxSeed {
    pub fn from_file(path: &Path) -> Result<OpenEdxSeed, OpenEdxSeedError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| OpenEdxSeedError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| OpenEdxSeedError::Parse {
            path: shown,
            source,
        })
    }

    pub fn client(mut self, client: SeedClient) -> Self {
        self.oauth_clients.push(client);
        self
    }
    pub fn user(mut self, user: SeedLmsUser) -> Self {
        self.users.push(user);
        self
    }
    pub fn program(mut self, program: SeedProgram) -> Self {
        self.programs.push(program);
        self
    }
    pub fn enrollment(mut self, enrollment: SeedProgramEnrollment) -> Self {
        self.program_enrollments.push(enrollment);
        self
    }
    pub fn course_enrollment(mut self, enrollment: SeedProgramCourseEnrollment) -> Self {
        self.program_course_enrollments.push(enrollment);
        self
    }
}

impl SeedClient {
    pub fn new(client_id: &str, client_secret: &str, owner_username: &str) -> Self {
        SeedClient {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            owner_username: owner_username.to_string(),
            restricted: false,
        }
    }
    pub fn restricted(mut self) -> Self {
        self.restricted = true;
        self
    }
}

impl SeedLmsUser {
    pub fn new(username: &str) -> Self {
        SeedLmsUser {
            username: username.to_string(),
            email: format!("{username}@example.edu"),
            is_staff: false,
            social_uid: None,
        }
    }
    pub fn staff(mut self) -> Self {
        self.is_staff = true;
        self
    }
    pub fn with_social_uid(mut self, uid: &str) -> Self {
        self.social_uid = Some(uid.to_string());
        self
    }
}

impl SeedProgram {
    pub fn new(uuid: &str, authoring_org: &str) -> Self {
        SeedProgram {
            uuid: uuid.to_string(),
            authoring_org: Some(authoring_org.to_string()),
            curricula: Vec::new(),
        }
    }
    /// Adds an active curriculum with these course runs.
    pub fn curriculum(mut self, uuid: &str, course_runs: &[&str]) -> Self {
        self.curricula.push(SeedCurriculum {
            uuid: uuid.to_string(),
            is_active: true,
            course_runs: course_runs.iter().map(|r| r.to_string()).collect(),
        });
        self
    }
}

impl SeedProgramEnrollment {
    pub fn new(student_key: &str, program_uuid: &str, curriculum_uuid: &str, status: &str) -> Self {
        SeedProgramEnrollment {
            student_key: student_key.to_string(),
            program_uuid: program_uuid.to_string(),
            curriculum_uuid: curriculum_uuid.to_string(),
            status: status.to_string(),
            username: None,
            modified: None,
        }
    }
    pub fn linked_to(mut self, username: &str) -> Self {
        self.username = Some(username.to_string());
        self
    }
}

impl SeedProgramCourseEnrollment {
    pub fn new(student_key: &str, program_uuid: &str, course_key: &str, status: &str) -> Self {
        SeedProgramCourseEnrollment {
            student_key: student_key.to_string(),
            program_uuid: program_uuid.to_string(),
            course_key: course_key.to_string(),
            status: status.to_string(),
            course_staff: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_seed_parses_and_ignores_unknown_fields() {
        let text = r#"{
          "oauth_clients": [{"client_id": "c", "client_secret": "s", "owner_username": "svc", "note": 1}],
          "users": [{"username": "svc", "email": "svc@x", "is_staff": true, "social_uid": null},
                    {"username": "ada", "email": "ada@x", "is_staff": false, "social_uid": "idp:K1"}],
          "programs": [{"uuid": "00000000-1111-2222-3333-444444444444", "authoring_org": "MITx",
            "curricula": [{"uuid": "aaaaaaaa-1111-2222-3333-444444444444", "is_active": true,
                           "course_runs": ["course-v1:MITx+A+1"]}]}],
          "program_enrollments": [{"student_key": "K1", "program_uuid": "00000000-1111-2222-3333-444444444444",
            "curriculum_uuid": "aaaaaaaa-1111-2222-3333-444444444444", "status": "enrolled", "username": "ada"}],
          "program_course_enrollments": [{"student_key": "K1", "program_uuid": "00000000-1111-2222-3333-444444444444",
            "course_key": "course-v1:MITx+A+1", "status": "active", "course_staff": false}],
          "extra": []
        }"#;
        let seed: OpenEdxSeed = serde_json::from_str(text).expect("seed parses");
        assert_eq!(seed.oauth_clients[0].owner_username, "svc");
        assert_eq!(seed.users[1].social_uid.as_deref(), Some("idp:K1"));
        assert!(seed.programs[0].curricula[0].is_active);
        assert_eq!(seed.program_enrollments[0].username.as_deref(), Some("ada"));
        assert_eq!(seed.program_course_enrollments[0].status, "active");
    }
}
