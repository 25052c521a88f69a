//! Arranging the simulated Canvas: adding accounts, users, courses, sections, roles, enrollments
//! and observer links, and changing them the way an admin would. Each checks what Canvas would
//! refuse (duplicate ids, missing parents), since seeds and tests arrange state through here.

use chrono::Utc;

use super::{ROOT_ACCOUNT_ID, Store, next_id, sortable_name_of};
use crate::errors::StoreError;
use crate::model::{
    Account, Course, CourseState, Enrollment, EnrollmentState, EnrollmentType, ObserverLink, Role,
    RoleState, Section, User,
};
use crate::seed::{SeedAccount, SeedCourse, SeedEnrollment, SeedRole, SeedSection, SeedUser};

impl Store {
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
        // No default here: the builder and `SeedEnrollment::default()` say `active` themselves, and a seed file
        // without a state is refused while it is parsed (seed.rs).
        let workflow_state = match seed.enrollment_state.as_deref() {
            None => {
                return Err(StoreError::Inconsistent(format!(
                    "enrollment of user {} has no enrollment_state (one of {})",
                    seed.user_id,
                    crate::seed::ENROLLMENT_STATES
                )));
            }
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
}
