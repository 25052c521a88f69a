//! Canvas JSON as the client reads it (facts §1, §4). Fields the daemon does not use are ignored; optional ones
//! default, so a Canvas that adds or omits a field by permission does not break a cycle.

use serde::Deserialize;

use crate::domain::RoleId;
use crate::domain::roles::{RoleInfo, RoleStatus};

/// An enrollment from a list, create, delete or reactivate response.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Enrollment {
    pub id: u64,
    pub user_id: u64,
    pub course_id: u64,
    pub course_section_id: u64,
    #[serde(default)]
    pub associated_user_id: Option<u64>,
    #[serde(rename = "type", default)]
    pub enrollment_type: String,
    pub enrollment_state: String,
    #[serde(default)]
    pub role: String,
    pub role_id: u64,
    #[serde(default)]
    pub sis_course_id: Option<String>,
    #[serde(default)]
    pub sis_section_id: Option<String>,
    #[serde(default)]
    pub sis_user_id: Option<String>,
    /// Embedded in list responses only.
    #[serde(default)]
    pub user: Option<User>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sis_user_id: Option<String>,
    #[serde(default)]
    pub login_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Role {
    pub id: u64,
    pub role: String,
    #[serde(default)]
    pub label: Option<String>,
    pub base_role_type: String,
    pub workflow_state: String,
}

impl From<Role> for RoleInfo {
    fn from(r: Role) -> Self {
        RoleInfo {
            id: RoleId(r.id),
            name: r.role,
            base_type: r.base_role_type,
            status: match r.workflow_state.as_str() {
                "built_in" => RoleStatus::BuiltIn,
                "active" => RoleStatus::Active,
                _ => RoleStatus::Inactive,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_list_row_with_embedded_user_and_ignores_extra_fields() {
        let json = r#"{"id":7,"user_id":3,"course_id":1,"course_section_id":2,"associated_user_id":null,
            "type":"StudentEnrollment","enrollment_state":"active","role":"StudentEnrollment","role_id":3,
            "sis_section_id":null,"html_url":"x","grades":{"html_url":"y"},
            "user":{"id":3,"name":"A","sortable_name":"A","sis_user_id":"s1","login_id":"a@x"}}"#;
        let e: Enrollment = serde_json::from_str(json).expect("parses");
        assert_eq!(e.user.and_then(|u| u.sis_user_id).as_deref(), Some("s1"));
        assert!(serde_json::from_str::<Vec<Enrollment>>("{}").is_err());
    }
}
