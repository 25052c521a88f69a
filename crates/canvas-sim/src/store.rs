//! The in-memory Canvas: its tables, id allocation, lookups by every id form, and the typed
//! accessors tests use to arrange or inspect state. The API's enrollment and role rules live in
//! `enrollments.rs` and `roles.rs`, as further `impl Store` blocks.
//! Arranging state (`add_*`, renames, state changes, cross-listing) is in `store/arrange.rs`.

mod arrange;

use std::collections::BTreeMap;

use chrono::Utc;

use super::errors::{ApiError, StoreError};
use super::ids::IdRef;
use super::model::{
    Account, Course, CourseState, Enrollment, EnrollmentType, ObserverLink, Role, RoleState,
    Section, User,
};
use super::seed::{Seed, SeedAccount, SeedError, SeedUser};

/// The root account every seed gets when it names none (CONTRACT.md, `canvas.account_id` default).
pub const ROOT_ACCOUNT_ID: u64 = 1;

#[derive(Debug, Clone, Default)]
pub struct Store {
    pub(crate) accounts: BTreeMap<u64, Account>,
    pub(crate) users: BTreeMap<u64, User>,
    pub(crate) courses: BTreeMap<u64, Course>,
    pub(crate) sections: BTreeMap<u64, Section>,
    pub(crate) roles: BTreeMap<u64, Role>,
    pub(crate) enrollments: BTreeMap<u64, Enrollment>,
    pub(crate) observer_links: Vec<ObserverLink>,
    pub(crate) token_user_id: u64,
    // Phase 2: stored files, reports and SIS imports (files.rs, report.rs, sis_import.rs).
    pub(crate) files: BTreeMap<u64, super::jobs::StoredFile>,
    pub(crate) reports: BTreeMap<u64, super::jobs::Report>,
    pub(crate) sis_imports: BTreeMap<u64, super::jobs::SisImport>,
    /// The last rows of each diffing data set: (import id, rows).
    pub(crate) diff_sets: std::collections::HashMap<String, (u64, Vec<super::jobs::CsvRow>)>,
    /// Polls a job shows as running before it completes.
    pub(crate) job_polls: u32,
}

impl Store {
    /// Builds the store from a seed, adding the root account, built-in roles and token user
    /// when missing (see `seed.rs` for the defaults).
    pub fn from_seed(seed: &Seed) -> Result<Store, SeedError> {
        let mut store = Store {
            job_polls: 1,
            ..Store::default()
        };
        for account in &seed.accounts {
            store.add_account(account.clone())?;
        }
        if !store.accounts.contains_key(&ROOT_ACCOUNT_ID) {
            store.add_account(SeedAccount::new(ROOT_ACCOUNT_ID, "Simulated Canvas"))?;
        }
        for user in &seed.users {
            store.add_user(user.clone())?;
        }
        for course in &seed.courses {
            store.add_course(course.clone())?;
        }
        for section in &seed.sections {
            store.add_section(section.clone())?;
        }
        for role in &seed.roles {
            store.add_role(role.clone())?;
        }
        store.ensure_builtin_roles();
        for enrollment in &seed.enrollments {
            store.add_enrollment(enrollment.clone())?;
        }
        for link in &seed.observer_links {
            store.add_observer_link(link.observer_id, link.student_id)?;
        }
        store.token_user_id = match seed.token_user_id {
            Some(id) if store.users.contains_key(&id) => id,
            Some(id) => return Err(StoreError::Missing { kind: "user", id }.into()),
            None => {
                let id = next_id(&store.users);
                store.add_user(SeedUser::new(id, "Sim Admin").with_login_id("sim-admin"))?;
                id
            }
        };
        Ok(store)
    }

    // ----- typed accessors (tests and the rest of the crate) -----

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }
    pub fn courses(&self) -> impl Iterator<Item = &Course> {
        self.courses.values()
    }
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.values()
    }
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }
    /// Every enrollment row, deleted ones included, in id order.
    pub fn enrollments(&self) -> impl Iterator<Item = &Enrollment> {
        self.enrollments.values()
    }
    pub fn observer_links(&self) -> &[ObserverLink] {
        &self.observer_links
    }
    pub fn account(&self, id: u64) -> Option<&Account> {
        self.accounts.get(&id)
    }
    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }
    pub fn course(&self, id: u64) -> Option<&Course> {
        self.courses.get(&id)
    }
    pub fn section(&self, id: u64) -> Option<&Section> {
        self.sections.get(&id)
    }
    pub fn role(&self, id: u64) -> Option<&Role> {
        self.roles.get(&id)
    }
    pub fn enrollment(&self, id: u64) -> Option<&Enrollment> {
        self.enrollments.get(&id)
    }
    /// Direct write access to a row, for tests that need a state no endpoint produces.
    pub fn enrollment_mut(&mut self, id: u64) -> Option<&mut Enrollment> {
        self.enrollments.get_mut(&id)
    }
    /// The user the simulator's token belongs to (`/users/self`).
    pub fn token_user_id(&self) -> u64 {
        self.token_user_id
    }
    pub fn find_user_by_sis(&self, sis_user_id: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.sis_user_id.as_deref() == Some(sis_user_id))
    }
    /// Case-insensitive, like Canvas's `sis_login_id` lookup (§2).
    pub fn find_user_by_login(&self, login_id: &str) -> Option<&User> {
        let wanted = login_id.to_lowercase();
        self.users.values().find(|u| {
            u.login_id
                .as_ref()
                .is_some_and(|l| l.to_lowercase() == wanted)
        })
    }
    pub fn find_course_by_sis(&self, sis_course_id: &str) -> Option<&Course> {
        self.courses
            .values()
            .find(|c| c.sis_course_id.as_deref() == Some(sis_course_id))
    }
    pub fn find_section_by_sis(&self, sis_section_id: &str) -> Option<&Section> {
        self.sections
            .values()
            .find(|s| s.sis_section_id.as_deref() == Some(sis_section_id))
    }
    /// A non-deleted role with exactly this name (built-ins are named after their type).
    pub fn find_role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles
            .values()
            .find(|r| r.name == name && r.workflow_state != RoleState::Deleted)
    }
    /// Enrollments of one user in one course, any state.
    pub fn enrollments_of(&self, user_id: u64, course_id: u64) -> Vec<&Enrollment> {
        self.enrollments
            .values()
            .filter(|e| e.user_id == user_id && e.course_id == course_id)
            .collect()
    }

    // ----- id allocation and internal lookups -----

    pub(crate) fn next_enrollment_id(&self) -> u64 {
        next_id(&self.enrollments)
    }

    /// The course's default section, created on demand like Canvas does (§1).
    pub(crate) fn default_section_id(&mut self, course_id: u64) -> u64 {
        if let Some(section) = self
            .sections
            .values()
            .find(|s| s.course_id == course_id && s.default_section && s.is_active())
        {
            return section.id;
        }
        let name = self
            .courses
            .get(&course_id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let id = next_id(&self.sections);
        self.sections.insert(
            id,
            Section {
                id,
                course_id,
                name,
                sis_section_id: None,
                integration_id: None,
                default_section: true,
                nonxlist_course_id: None,
                workflow_state: "active".to_string(),
                created_at: Utc::now(),
            },
        );
        id
    }

    fn ensure_builtin_roles(&mut self) {
        for t in EnrollmentType::ALL {
            if self.builtin_role(t).is_some() {
                continue;
            }
            let preferred = t.builtin_role_id();
            let id = if self.roles.contains_key(&preferred) {
                next_id(&self.roles)
            } else {
                preferred
            };
            let now = Utc::now();
            self.roles.insert(
                id,
                Role {
                    id,
                    name: t.as_str().to_string(),
                    label: t.label().to_string(),
                    base_role_type: t.as_str().to_string(),
                    workflow_state: RoleState::BuiltIn,
                    account_id: ROOT_ACCOUNT_ID,
                    created_at: now,
                    updated_at: now,
                },
            );
        }
    }

    pub(crate) fn builtin_role(&self, t: EnrollmentType) -> Option<&Role> {
        self.roles
            .values()
            .find(|r| r.is_built_in() && r.name == t.as_str())
    }

    /// The account and its ancestors, nearest first.
    pub(crate) fn account_chain(&self, account_id: u64) -> Vec<u64> {
        let mut chain = Vec::new();
        let mut next = Some(account_id);
        while let Some(id) = next {
            // A cycle in a hand-written seed must not hang a request.
            if chain.contains(&id) {
                break;
            }
            chain.push(id);
            next = self.accounts.get(&id).and_then(|a| a.parent_account_id);
        }
        chain
    }

    /// A course by any id form; deleted courses are not found (§1 "Deleted courses → 404").
    pub(crate) fn resolve_course(&self, id: &IdRef) -> Result<&Course, ApiError> {
        let course = match id {
            IdRef::Canvas(n) => self.courses.get(n),
            IdRef::Column { column, value } => match column.as_str() {
                "sis_course_id" => self.find_course_by_sis(value),
                "sis_integration_id" => self
                    .courses
                    .values()
                    .find(|c| c.integration_id.as_deref() == Some(value)),
                "uuid" => self.courses.values().find(|c| &c.uuid == value),
                _ => None,
            },
            IdRef::Special(_) => None,
        };
        course
            .filter(|c| c.workflow_state != CourseState::Deleted)
            .ok_or(ApiError::NotFound)
    }

    /// An active section by any id form, whose course is not deleted.
    pub(crate) fn resolve_section(&self, id: &IdRef) -> Result<&Section, ApiError> {
        let section = match id {
            IdRef::Canvas(n) => self.sections.get(n),
            IdRef::Column { column, value } => match column.as_str() {
                "sis_section_id" => self
                    .sections
                    .values()
                    .find(|s| s.is_active() && s.sis_section_id.as_deref() == Some(value)),
                "sis_integration_id" => self
                    .sections
                    .values()
                    .find(|s| s.is_active() && s.integration_id.as_deref() == Some(value)),
                _ => None,
            },
            IdRef::Special(_) => None,
        };
        let section = section
            .filter(|s| s.is_active())
            .ok_or(ApiError::NotFound)?;
        self.resolve_course(&IdRef::Canvas(section.course_id))?;
        Ok(section)
    }

    /// A user by any id form, `self` being the token's user (§2).
    pub(crate) fn resolve_user(&self, id: &IdRef) -> Result<&User, ApiError> {
        let user = match id {
            IdRef::Canvas(n) => self.users.get(n),
            IdRef::Special(s) if s == "self" => self.users.get(&self.token_user_id),
            IdRef::Special(_) => None,
            IdRef::Column { column, value } => match column.as_str() {
                // §2: sis_user_id is exact (case-sensitive), sis_login_id compares lowercased.
                "sis_user_id" => self.find_user_by_sis(value),
                "sis_login_id" => self.find_user_by_login(value),
                "sis_integration_id" => self
                    .users
                    .values()
                    .find(|u| u.integration_id.as_deref() == Some(value)),
                _ => None,
            },
        };
        user.ok_or(ApiError::NotFound)
    }

    /// An account by any id form; `self` and `default` name the root account (§2).
    pub(crate) fn resolve_account(&self, id: &IdRef) -> Result<&Account, ApiError> {
        let account = match id {
            IdRef::Canvas(n) => self.accounts.get(n),
            IdRef::Special(s) if s == "self" || s == "default" => {
                self.accounts.get(&ROOT_ACCOUNT_ID)
            }
            IdRef::Special(_) => None,
            IdRef::Column { column, value } => match column.as_str() {
                "sis_account_id" => self
                    .accounts
                    .values()
                    .find(|a| a.sis_account_id.as_deref() == Some(value)),
                "sis_integration_id" => self
                    .accounts
                    .values()
                    .find(|a| a.integration_id.as_deref() == Some(value)),
                "uuid" => self.accounts.values().find(|a| &a.uuid == value),
                _ => None,
            },
        };
        account
            .filter(|a| a.workflow_state != "deleted")
            .ok_or(ApiError::NotFound)
    }
}

/// "Ada Lovelace" → "Lovelace, Ada", as Canvas derives a sortable name from a full name.
fn sortable_name_of(name: &str) -> String {
    match name.trim().rsplit_once(' ') {
        Some((given, family)) => format!("{family}, {given}"),
        None => name.trim().to_string(),
    }
}

fn next_id<T>(table: &BTreeMap<u64, T>) -> u64 {
    table.keys().next_back().map_or(1, |max| max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_seed_gets_root_account_builtin_roles_and_token_user() {
        let store = Store::from_seed(&Seed::default()).expect("empty seed is valid");
        assert!(store.account(ROOT_ACCOUNT_ID).is_some());
        for t in EnrollmentType::ALL {
            let role = store.role(t.builtin_role_id()).expect("built-in role");
            assert_eq!(role.name, t.as_str());
            assert_eq!(role.workflow_state, RoleState::BuiltIn);
        }
        assert!(store.user(store.token_user_id()).is_some());
    }

    #[test]
    fn sortable_names_put_family_name_first() {
        assert_eq!(sortable_name_of("Ada Lovelace"), "Lovelace, Ada");
        assert_eq!(sortable_name_of("Plato"), "Plato");
    }
}
