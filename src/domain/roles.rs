//! Role names → Canvas `role_id`s, from one Roles API listing per cycle (facts §4).
//!
//! A SIS row or rule may name a role as a type (`StudentEnrollment`), a short name in any case (`student`), or a
//! custom role's exact name. Everything after resolution compares `role_id`s, so renaming a custom role in Canvas
//! changes nothing here.

use std::collections::HashMap;

use super::{EnrollmentState, RoleId, SectionKey, Vocabulary};

/// Open edX's two course roles (facts §3.5): a learner, or course staff (`course_staff: true`). A program
/// enrollment is always a learner's.
pub const OPENEDX_LEARNER: RoleId = RoleId(1);
pub const OPENEDX_STAFF: RoleId = RoleId(2);

/// The five built-in course role types (facts §4).
pub const BUILT_IN_TYPES: [&str; 5] = [
    "StudentEnrollment",
    "TeacherEnrollment",
    "TaEnrollment",
    "DesignerEnrollment",
    "ObserverEnrollment",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleStatus {
    BuiltIn,
    Active,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub id: RoleId,
    /// Canvas `role`: the type name for built-ins, the custom name (= label) otherwise.
    pub name: String,
    pub base_type: String,
    pub status: RoleStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error(
        "role `{0}` does not exist in the Canvas account (expected a type such as StudentEnrollment, a short name such as student, or a custom course role's exact name)"
    )]
    NotFound(String),
    #[error(
        "role `{0}` is inactive in Canvas; Canvas refuses new enrollments with an inactive role"
    )]
    Inactive(String),
    #[error("built-in role {0} is missing from the Canvas roles listing")]
    BuiltInMissing(&'static str),
    #[error("role `{0}` is an account role, not a course role")]
    NotCourseRole(String),
}

#[derive(Debug, Default, Clone)]
pub struct RoleBook {
    by_id: HashMap<RoleId, RoleInfo>,
    built_in: HashMap<&'static str, RoleId>,
    custom_active: HashMap<String, RoleId>,
    custom_inactive: HashMap<String, RoleId>,
    /// The target's names of states (the book names the target's roles, so it names its states too).
    vocabulary: Vocabulary,
}

fn short_name_type(spec: &str) -> Option<&'static str> {
    match spec.to_ascii_lowercase().as_str() {
        "student" => Some("StudentEnrollment"),
        "teacher" => Some("TeacherEnrollment"),
        "ta" => Some("TaEnrollment"),
        "designer" => Some("DesignerEnrollment"),
        "observer" => Some("ObserverEnrollment"),
        _ => None,
    }
}

impl RoleBook {
    /// Builds the book from a roles listing. Account-level roles (base type `AccountMembership`) are kept out.
    pub fn new(roles: impl IntoIterator<Item = RoleInfo>) -> Self {
        let mut book = RoleBook::default();
        let mut roles: Vec<RoleInfo> = roles.into_iter().collect();
        // Lowest id first, so that a name defined in both a parent and the root account resolves the same way
        // every cycle.
        roles.sort_by_key(|r| r.id);
        for role in roles {
            if !BUILT_IN_TYPES.contains(&role.base_type.as_str()) {
                continue;
            }
            match role.status {
                RoleStatus::BuiltIn => {
                    if let Some(t) = BUILT_IN_TYPES.iter().find(|t| **t == role.name) {
                        book.built_in.entry(t).or_insert(role.id);
                    }
                }
                RoleStatus::Active => {
                    book.custom_active
                        .entry(role.name.clone())
                        .or_insert(role.id);
                }
                RoleStatus::Inactive => {
                    book.custom_inactive
                        .entry(role.name.clone())
                        .or_insert(role.id);
                }
            }
            book.by_id.insert(role.id, role);
        }
        book
    }

    /// Open edX's roles, `learner` and `staff`, and its names of states.
    pub fn openedx() -> Self {
        let mut book = RoleBook::new([
            RoleInfo {
                id: OPENEDX_LEARNER,
                name: "learner".into(),
                base_type: "StudentEnrollment".into(),
                status: RoleStatus::Active,
            },
            RoleInfo {
                id: OPENEDX_STAFF,
                name: "staff".into(),
                base_type: "TeacherEnrollment".into(),
                status: RoleStatus::Active,
            },
        ]);
        book.vocabulary = Vocabulary::OpenEdx;
        book
    }

    pub fn vocabulary(&self) -> Vocabulary {
        self.vocabulary
    }

    /// The target's name of a state at a place (see [`Vocabulary::state_name`]).
    pub fn state_name(&self, section: SectionKey, state: EnrollmentState) -> &'static str {
        self.vocabulary.state_name(section, state)
    }

    /// Resolves a role as the SIS or a rule names it.
    pub fn resolve(&self, spec: &str) -> Result<RoleId, RoleError> {
        let built_in_type = BUILT_IN_TYPES
            .iter()
            .copied()
            .find(|t| *t == spec)
            .or_else(|| short_name_type(spec));
        if let Some(t) = built_in_type {
            return self
                .built_in
                .get(t)
                .copied()
                .ok_or(RoleError::BuiltInMissing(t));
        }
        if let Some(id) = self.custom_active.get(spec) {
            return Ok(*id);
        }
        if self.custom_inactive.contains_key(spec) {
            return Err(RoleError::Inactive(spec.to_owned()));
        }
        Err(RoleError::NotFound(spec.to_owned()))
    }

    /// Records a role seen on a live enrollment but absent from the listing (e.g. a sub-account's custom role),
    /// so it can be named in the audit log.
    pub fn learn(&mut self, id: RoleId, name: &str, base_type: &str) {
        self.by_id.entry(id).or_insert_with(|| RoleInfo {
            id,
            name: name.to_owned(),
            base_type: base_type.to_owned(),
            status: RoleStatus::Active,
        });
    }

    /// The role an audit row names ([`RoleBook::name`]), active or not: the lowest id with that name, or the id of
    /// a `role_id:N` name.
    pub fn id_named(&self, name: &str) -> Option<RoleId> {
        if let Some(id) = name.strip_prefix("role_id:").and_then(|n| n.parse().ok()) {
            return Some(RoleId(id));
        }
        self.by_id
            .values()
            .filter(|r| r.name == name)
            .map(|r| r.id)
            .min()
    }

    pub fn get(&self, id: RoleId) -> Option<&RoleInfo> {
        self.by_id.get(&id)
    }

    /// The name written to the audit log: the Canvas role name, or `role_id:N` for a role never seen.
    pub fn name(&self, id: RoleId) -> String {
        self.by_id
            .get(&id)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("role_id:{id}"))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> RoleBook {
        let mut roles: Vec<RoleInfo> = BUILT_IN_TYPES
            .iter()
            .enumerate()
            .map(|(i, t)| RoleInfo {
                id: RoleId(3 + i as u64),
                name: (*t).to_owned(),
                base_type: (*t).to_owned(),
                status: RoleStatus::BuiltIn,
            })
            .collect();
        roles.push(RoleInfo {
            id: RoleId(20),
            name: "Adult Learner".into(),
            base_type: "StudentEnrollment".into(),
            status: RoleStatus::Active,
        });
        roles.push(RoleInfo {
            id: RoleId(21),
            name: "Retired Role".into(),
            base_type: "TeacherEnrollment".into(),
            status: RoleStatus::Inactive,
        });
        roles.push(RoleInfo {
            id: RoleId(22),
            name: "Account Admin".into(),
            base_type: "AccountMembership".into(),
            status: RoleStatus::Active,
        });
        RoleBook::new(roles)
    }

    #[test]
    fn type_names_short_names_in_any_case_and_custom_names_resolve() {
        let b = book();
        assert_eq!(b.resolve("StudentEnrollment"), Ok(RoleId(3)));
        for spec in ["student", "Student", "STUDENT"] {
            assert_eq!(b.resolve(spec), Ok(RoleId(3)), "{spec}");
        }
        assert_eq!(b.resolve("ta"), Ok(RoleId(5)));
        assert_eq!(b.resolve("Adult Learner"), Ok(RoleId(20)));
    }

    #[test]
    fn custom_names_are_case_sensitive_inactive_and_account_roles_are_refused() {
        let b = book();
        assert_eq!(
            b.resolve("adult learner"),
            Err(RoleError::NotFound("adult learner".into()))
        );
        assert_eq!(
            b.resolve("Retired Role"),
            Err(RoleError::Inactive("Retired Role".into()))
        );
        assert!(b.resolve("Account Admin").is_err());
        assert!(b.resolve("studentenrollment").is_err());
    }

    #[test]
    fn names_for_the_audit_log() {
        let mut b = book();
        assert_eq!(b.name(RoleId(3)), "StudentEnrollment");
        assert_eq!(b.name(RoleId(99)), "role_id:99");
        b.learn(RoleId(99), "Sub Role", "StudentEnrollment");
        assert_eq!(b.name(RoleId(99)), "Sub Role");
    }
}
