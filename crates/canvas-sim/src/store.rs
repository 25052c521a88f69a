//! The in-memory Canvas: its tables, id allocation, lookups by every id form, and the typed
//! accessors tests use to arrange or inspect state. The API's enrollment and role rules live in
//! `enrollments.rs` and `roles.rs`, as further `impl Store` blocks.

use std::collections::BTreeMap;

use chrono::Utc;

use super::errors::{ApiError, StoreError};
use super::ids::IdRef;
use super::model::{
    Account, Course, CourseState, Enrollment, EnrollmentState, EnrollmentType, ObserverLink, Role,
    RoleState, Section, User,
};
use super::seed::{
    Seed, SeedAccount, SeedCourse, SeedEnrollment, SeedError, SeedRole, SeedSection, SeedUser,
};

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

    pub fn add_account(&mut self, seed: SeedAccount) -> Result<u64, StoreError> {
        let id = seed.id;
        if self.accounts.contains_key(&id) {
            return Err(StoreError::DuplicateId {
                kind: "account",
                id,
            });
        }
        let root_account_id = match seed.parent_account_id {
            None => None,
            Some(parent) => Some(
                seed.root_account_id
                    .or_else(|| {
                        self.accounts
                            .get(&parent)
                            .map(|p| p.root_account_id.unwrap_or(p.id))
                    })
                    .unwrap_or(ROOT_ACCOUNT_ID),
            ),
        };
        self.accounts.insert(
            id,
            Account {
                id,
                name: seed.name,
                parent_account_id: seed.parent_account_id,
                root_account_id,
                sis_account_id: seed.sis_account_id,
                integration_id: seed.integration_id,
                workflow_state: seed.workflow_state.unwrap_or_else(|| "active".to_string()),
                uuid: uuid::Uuid::new_v4().simple().to_string(),
            },
        );
        Ok(id)
    }

    pub fn add_user(&mut self, seed: SeedUser) -> Result<u64, StoreError> {
        let id = seed.id;
        if self.users.contains_key(&id) {
            return Err(StoreError::DuplicateId { kind: "user", id });
        }
        let sortable_name = seed
            .sortable_name
            .unwrap_or_else(|| sortable_name_of(&seed.name));
        let short_name = seed.short_name.unwrap_or_else(|| seed.name.clone());
        self.users.insert(
            id,
            User {
                id,
                name: seed.name,
                sortable_name,
                short_name,
                sis_user_id: seed.sis_user_id,
                login_id: seed.login_id,
                integration_id: seed.integration_id,
                workflow_state: seed
                    .workflow_state
                    .unwrap_or_else(|| "registered".to_string()),
                created_at: Utc::now(),
            },
        );
        Ok(id)
    }

    pub fn add_course(&mut self, seed: SeedCourse) -> Result<u64, StoreError> {
        let id = seed.id;
        if self.courses.contains_key(&id) {
            return Err(StoreError::DuplicateId { kind: "course", id });
        }
        let account_id = seed.account_id.unwrap_or(ROOT_ACCOUNT_ID);
        let account = self.accounts.get(&account_id).ok_or(StoreError::Missing {
            kind: "account",
            id: account_id,
        })?;
        let root_account_id = account.root_account_id.unwrap_or(account.id);
        let workflow_state = match seed.workflow_state.as_deref() {
            None => CourseState::Available,
            Some(text) => CourseState::parse(text).ok_or(StoreError::InvalidValue {
                field: "course.workflow_state",
                value: text.to_string(),
            })?,
        };
        self.courses.insert(
            id,
            Course {
                id,
                course_code: seed.course_code.unwrap_or_else(|| seed.name.clone()),
                name: seed.name,
                account_id,
                root_account_id,
                sis_course_id: seed.sis_course_id,
                integration_id: seed.integration_id,
                workflow_state,
                uuid: uuid::Uuid::new_v4().simple().to_string(),
                created_at: Utc::now(),
            },
        );
        Ok(id)
    }

    pub fn add_section(&mut self, seed: SeedSection) -> Result<u64, StoreError> {
        let id = seed.id;
        if self.sections.contains_key(&id) {
            return Err(StoreError::DuplicateId {
                kind: "section",
                id,
            });
        }
        if !self.courses.contains_key(&seed.course_id) {
            return Err(StoreError::Missing {
                kind: "course",
                id: seed.course_id,
            });
        }
        if seed.default_section
            && self
                .sections
                .values()
                .any(|s| s.course_id == seed.course_id && s.default_section)
        {
            return Err(StoreError::Inconsistent(format!(
                "course {} has two default sections",
                seed.course_id
            )));
        }
        self.sections.insert(
            id,
            Section {
                id,
                course_id: seed.course_id,
                name: seed.name,
                sis_section_id: seed.sis_section_id,
                integration_id: seed.integration_id,
                default_section: seed.default_section,
                nonxlist_course_id: None,
                workflow_state: seed.workflow_state.unwrap_or_else(|| "active".to_string()),
                created_at: Utc::now(),
            },
        );
        Ok(id)
    }

    pub fn add_role(&mut self, seed: SeedRole) -> Result<u64, StoreError> {
        let id = seed.id;
        if self.roles.contains_key(&id) {
            return Err(StoreError::DuplicateId { kind: "role", id });
        }
        let account_id = seed.account_id.unwrap_or(ROOT_ACCOUNT_ID);
        if !self.accounts.contains_key(&account_id) {
            return Err(StoreError::Missing {
                kind: "account",
                id: account_id,
            });
        }
        // Canvas reserves the type names for the built-in roles, so an unmarked role named after
        // its own base type is the built-in one.
        let named_like_builtin =
            EnrollmentType::parse(&seed.role).is_some() && seed.role == seed.base_role_type;
        let workflow_state = match seed.workflow_state.as_deref() {
            None if named_like_builtin => RoleState::BuiltIn,
            None => RoleState::Active,
            Some(text) => RoleState::parse(text).ok_or(StoreError::InvalidValue {
                field: "role.workflow_state",
                value: text.to_string(),
            })?,
        };
        // §4: a custom role's label is its name.
        let label = seed
            .label
            .unwrap_or_else(|| match EnrollmentType::parse(&seed.role) {
                Some(t) if workflow_state == RoleState::BuiltIn => t.label().to_string(),
                _ => seed.role.clone(),
            });
        let now = Utc::now();
        self.roles.insert(
            id,
            Role {
                id,
                name: seed.role,
                label,
                base_role_type: seed.base_role_type,
                workflow_state,
                account_id,
                created_at: now,
                updated_at: now,
            },
        );
        Ok(id)
    }

    /// Renames a role: enrollments keep their `role_id`, their `role` text changes (§4).
    pub fn rename_role(&mut self, id: u64, new_name: &str) -> Result<(), StoreError> {
        let role = self
            .roles
            .get_mut(&id)
            .ok_or(StoreError::Missing { kind: "role", id })?;
        role.name = new_name.to_string();
        role.label = new_name.to_string();
        role.updated_at = Utc::now();
        Ok(())
    }

    /// Sets a role's `workflow_state` (`active`, `inactive`, `deleted`, `built_in`).
    pub fn set_role_state(&mut self, id: u64, state: &str) -> Result<(), StoreError> {
        let parsed = RoleState::parse(state).ok_or(StoreError::InvalidValue {
            field: "role.workflow_state",
            value: state.to_string(),
        })?;
        let role = self
            .roles
            .get_mut(&id)
            .ok_or(StoreError::Missing { kind: "role", id })?;
        role.workflow_state = parsed;
        role.updated_at = Utc::now();
        Ok(())
    }

    /// Sets a course's state (`available`, `unpublished`, `completed`, `deleted`).
    pub fn set_course_state(&mut self, id: u64, state: &str) -> Result<(), StoreError> {
        let parsed = CourseState::parse(state).ok_or(StoreError::InvalidValue {
            field: "course.workflow_state",
            value: state.to_string(),
        })?;
        let course = self
            .courses
            .get_mut(&id)
            .ok_or(StoreError::Missing { kind: "course", id })?;
        course.workflow_state = parsed;
        Ok(())
    }

    /// Deletes a section; Canvas deletes its enrollments with it (§10).
    pub fn delete_section(&mut self, id: u64) -> Result<(), StoreError> {
        let section = self.sections.get_mut(&id).ok_or(StoreError::Missing {
            kind: "section",
            id,
        })?;
        section.workflow_state = "deleted".to_string();
        let now = Utc::now();
        for e in self
            .enrollments
            .values_mut()
            .filter(|e| e.course_section_id == id)
        {
            e.workflow_state = EnrollmentState::Deleted;
            e.updated_at = now;
        }
        Ok(())
    }

    /// Cross-lists a section into another course: the section and its enrollments move
    /// (`course_id` changes) and `nonxlist_course_id` keeps the original course (§10).
    pub fn crosslist_section(&mut self, id: u64, to_course_id: u64) -> Result<(), StoreError> {
        let root_account_id = self
            .courses
            .get(&to_course_id)
            .ok_or(StoreError::Missing {
                kind: "course",
                id: to_course_id,
            })?
            .root_account_id;
        let section = self.sections.get_mut(&id).ok_or(StoreError::Missing {
            kind: "section",
            id,
        })?;
        if section.nonxlist_course_id.is_none() {
            section.nonxlist_course_id = Some(section.course_id);
        }
        section.course_id = to_course_id;
        section.default_section = false;
        let now = Utc::now();
        for e in self
            .enrollments
            .values_mut()
            .filter(|e| e.course_section_id == id)
        {
            e.course_id = to_course_id;
            e.root_account_id = root_account_id;
            e.updated_at = now;
        }
        Ok(())
    }

    /// Adds an enrollment row as a seed would describe it (no Canvas side effects such as
    /// linked observers: a seed is a snapshot of Canvas, auto-created rows included).
    pub fn add_enrollment(&mut self, seed: SeedEnrollment) -> Result<u64, StoreError> {
        if !self.users.contains_key(&seed.user_id) {
            return Err(StoreError::Missing {
                kind: "user",
                id: seed.user_id,
            });
        }
        let course_id = match (seed.course_id, seed.course_section_id) {
            (Some(course_id), _) => course_id,
            (None, Some(section_id)) => {
                self.sections
                    .get(&section_id)
                    .ok_or(StoreError::Missing {
                        kind: "section",
                        id: section_id,
                    })?
                    .course_id
            }
            (None, None) => {
                return Err(StoreError::Inconsistent(format!(
                    "enrollment of user {} names neither course_id nor course_section_id",
                    seed.user_id
                )));
            }
        };
        let root_account_id = self
            .courses
            .get(&course_id)
            .ok_or(StoreError::Missing {
                kind: "course",
                id: course_id,
            })?
            .root_account_id;
        let section_id = match seed.course_section_id {
            Some(section_id) => {
                let section = self.sections.get(&section_id).ok_or(StoreError::Missing {
                    kind: "section",
                    id: section_id,
                })?;
                if section.course_id != course_id {
                    return Err(StoreError::Inconsistent(format!(
                        "section {section_id} is not in course {course_id}"
                    )));
                }
                section_id
            }
            None => self.default_section_id(course_id),
        };
        let named_type = match seed.enrollment_type.as_deref() {
            None => None,
            Some(text) => Some(EnrollmentType::parse(text).ok_or(StoreError::InvalidValue {
                field: "enrollment.type",
                value: text.to_string(),
            })?),
        };
        let role = match (seed.role_id, seed.role.as_deref()) {
            (Some(role_id), _) => self.roles.get(&role_id).ok_or(StoreError::Missing {
                kind: "role",
                id: role_id,
            })?,
            (None, Some(name)) => self
                .find_role_by_name(name)
                .ok_or(StoreError::InvalidValue {
                    field: "enrollment.role",
                    value: name.to_string(),
                })?,
            (None, None) => {
                let t = named_type.unwrap_or(EnrollmentType::Student);
                self.builtin_role(t).ok_or(StoreError::Missing {
                    kind: "role",
                    id: t.builtin_role_id(),
                })?
            }
        };
        let role_id = role.id;
        let enrollment_type = match (named_type, role.course_type()) {
            (_, None) => {
                return Err(StoreError::Inconsistent(format!(
                    "role {role_id} is not a course role"
                )));
            }
            (Some(t), Some(base)) if t != base => {
                return Err(StoreError::Inconsistent(format!(
                    "enrollment type {} does not match role {role_id}'s base type {}",
                    t.as_str(),
                    base.as_str()
                )));
            }
            (_, Some(base)) => base,
        };
        let workflow_state = match seed.enrollment_state.as_deref() {
            None => EnrollmentState::Active,
            Some(text) => EnrollmentState::parse(text).ok_or(StoreError::InvalidValue {
                field: "enrollment.enrollment_state",
                value: text.to_string(),
            })?,
        };
        let id = match seed.id {
            Some(id) if self.enrollments.contains_key(&id) => {
                return Err(StoreError::DuplicateId {
                    kind: "enrollment",
                    id,
                });
            }
            Some(id) => id,
            None => next_id(&self.enrollments),
        };
        let now = Utc::now();
        self.enrollments.insert(
            id,
            Enrollment {
                id,
                user_id: seed.user_id,
                course_id,
                course_section_id: section_id,
                root_account_id,
                role_id,
                enrollment_type,
                workflow_state,
                associated_user_id: seed.associated_user_id,
                limit_privileges_to_course_section: seed
                    .limit_privileges_to_course_section
                    .unwrap_or(false),
                start_at: None,
                end_at: None,
                created_at: now,
                updated_at: now,
                completed_at: (workflow_state == EnrollmentState::Completed).then_some(now),
                self_enrolled: false,
                sis_batch_id: None,
                created_by_sis: seed.created_by_sis.unwrap_or(false),
            },
        );
        Ok(id)
    }

    /// Links an observer to a student: later student enrollments auto-enrol the observer (§1).
    pub fn add_observer_link(
        &mut self,
        observer_id: u64,
        student_id: u64,
    ) -> Result<(), StoreError> {
        for id in [observer_id, student_id] {
            if !self.users.contains_key(&id) {
                return Err(StoreError::Missing { kind: "user", id });
            }
        }
        let link = ObserverLink {
            observer_id,
            student_id,
        };
        if !self.observer_links.contains(&link) {
            self.observer_links.push(link);
        }
        Ok(())
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
