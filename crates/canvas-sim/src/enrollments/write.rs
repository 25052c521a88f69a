//! How a POST creates, reuses or revives an enrollment row, what conclude/delete/deactivate and
//! reactivate do, and the default state of a new row (canvas-api-facts.md §1). Kept apart from the
//! list rules because the two share only the row type.

use chrono::{DateTime, Utc};

use crate::errors::ApiError;
use crate::ids::IdRef;
use crate::model::{CourseState, Enrollment, EnrollmentState, EnrollmentType};
use crate::params::{ParamShape, Params, truthy};
use crate::store::Store;

/// `task` of `DELETE /courses/:course_id/enrollments/:id` (§1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndTask {
    Conclude,
    Delete,
    Deactivate,
}

impl EndTask {
    /// `delete`, `inactivate`/`deactivate`; anything else (or nothing) concludes, as the
    /// controller's `else # 'conclude'` branch does.
    pub fn from_param(task: Option<&str>) -> EndTask {
        match task {
            Some("delete") => EndTask::Delete,
            Some("inactivate" | "deactivate") => EndTask::Deactivate,
            _ => EndTask::Conclude,
        }
    }
}

/// Error messages of the create action, in the order Canvas checks them (§1).
mod create_messages {
    pub const NO_PARAMETERS: &str = "No parameters given";
    pub const BAD_TYPE: &str = "Invalid type";
    pub const BAD_ROLE: &str = "Invalid role";
    pub const INACTIVE_ROLE: &str =
        "Cannot create an enrollment with this role because it is inactive.";
    pub const BASE_TYPE_MISMATCH: &str = "The specified type must match the base type for the role";
    pub const MISSING_USER: &str = "Can't create an enrollment without a user. Include enrollment[user_id] to create an enrollment";
    pub const CONCLUDED_COURSE: &str = "Can't add an enrollment to a concluded course.";
}

impl Store {
    /// `POST /courses/:id/enrollments` and `POST /sections/:id/enrollments` (§1). Returns the id of
    /// the created, revived or unchanged enrollment.
    pub(crate) fn create_enrollment(
        &mut self,
        course_id: u64,
        route_section_id: Option<u64>,
        params: &Params,
    ) -> Result<u64, ApiError> {
        use create_messages::*;
        let course = self
            .courses
            .get(&course_id)
            .ok_or(ApiError::NotFound)?
            .clone();
        let enrollment = match params.shape("enrollment") {
            ParamShape::Nested => params.hash("enrollment"),
            _ => Default::default(),
        };

        // Validation, all messages collected, before any permission or lookup (§1).
        let mut errors: Vec<&str> = Vec::new();
        let mut resolved: Option<(EnrollmentType, u64)> = None;
        if enrollment.is_empty() {
            errors.push(NO_PARAMETERS);
        } else {
            let mut enrollment_type = enrollment.get("type").filter(|t| !t.is_empty()).cloned();
            let role = if let Some(role_id) = enrollment.get("role_id") {
                self.role_by_id_for_account(course.account_id, role_id)
            } else if let Some(name) = enrollment.get("role") {
                self.course_role_by_name(course.account_id, name)
            } else {
                let name = enrollment_type
                    .get_or_insert_with(|| "StudentEnrollment".to_string())
                    .clone();
                let builtin = EnrollmentType::parse(&name).and_then(|t| self.builtin_role(t));
                if builtin.is_none() {
                    errors.push(BAD_TYPE);
                }
                builtin
            };
            match role.filter(|r| r.course_type().is_some()) {
                Some(role) => {
                    let base = role.base_role_type.clone();
                    let wanted = enrollment_type.unwrap_or_else(|| base.clone());
                    if role.workflow_state == crate::model::RoleState::Inactive {
                        errors.push(INACTIVE_ROLE);
                    } else if wanted != base {
                        errors.push(BASE_TYPE_MISMATCH);
                    } else if let Some(t) = role.course_type() {
                        resolved = Some((t, role.id));
                    }
                }
                None if errors.is_empty() => errors.push(BAD_ROLE),
                None => {}
            }
            if enrollment
                .get("user_id")
                .is_none_or(|u| u.trim().is_empty())
            {
                errors.push(MISSING_USER);
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::CreateRejected(errors.join(", ")));
        }
        let Some((enrollment_type, role_id)) = resolved else {
            return Err(ApiError::CreateRejected(BAD_ROLE.to_string()));
        };

        // Section: the route's, else an active section of this course, else the default one.
        let explicit_section = match route_section_id {
            Some(id) => Some(id),
            None => match enrollment
                .get("course_section_id")
                .filter(|s| !s.trim().is_empty())
            {
                None => None,
                Some(raw) => {
                    let id = IdRef::parse(raw).ok_or(ApiError::NotFound)?;
                    let section = self.resolve_section(&id)?;
                    if section.course_id != course_id {
                        return Err(ApiError::NotFound);
                    }
                    Some(section.id)
                }
            },
        };
        let user_ref = enrollment
            .get("user_id")
            .map(String::as_str)
            .unwrap_or_default();
        let user = self
            .resolve_user(&IdRef::parse(user_ref).ok_or(ApiError::NotFound)?)?
            .clone();
        // A user that cannot be enrolled (deleted) is "not found" too (§1).
        if user.workflow_state == "deleted" {
            return Err(ApiError::NotFound);
        }

        // Concluded course: allowed only to move a user already in the course into a section.
        if course.workflow_state == CourseState::Completed
            && !(explicit_section.is_some()
                && self
                    .enrollments
                    .values()
                    .any(|e| e.user_id == user.id && e.course_id == course_id))
        {
            return Err(ApiError::CreateRejected(CONCLUDED_COURSE.to_string()));
        }

        let associated_user_id = match enrollment
            .get("associated_user_id")
            .filter(|a| !a.trim().is_empty())
        {
            Some(raw) if enrollment_type == EnrollmentType::Observer => {
                let observed = self
                    .resolve_user(&IdRef::parse(raw).ok_or(ApiError::NotFound)?)?
                    .id;
                if observed == user.id {
                    return Err(ApiError::RecordInvalid {
                        field: "associated_user_id".into(),
                        message: "Cannot observe yourself".into(),
                    });
                }
                Some(observed)
            }
            _ => None,
        };
        let requested_state = match enrollment
            .get("enrollment_state")
            .filter(|s| !s.trim().is_empty())
        {
            None => None,
            Some(raw) => Some(EnrollmentState::parse(raw.trim()).ok_or(
                ApiError::RecordInvalid {
                    field: "workflow_state".into(),
                    message: "is invalid".into(),
                },
            )?),
        };
        let state = initial_state(
            requested_state,
            enrollment_type,
            course.workflow_state == CourseState::Available,
            user.workflow_state == "registered",
        );
        let section_id = match explicit_section {
            Some(id) => id,
            None => self.default_section_id(course_id),
        };
        let attributes = RowAttributes {
            limit_privileges_to_course_section: enrollment
                .get("limit_privileges_to_course_section")
                .is_some_and(|v| truthy(v)),
            start_at: enrollment.get("start_at").and_then(|v| parse_time(v)),
            end_at: enrollment.get("end_at").and_then(|v| parse_time(v)),
            self_enrolled: enrollment.get("self_enrolled").is_some_and(|v| truthy(v)),
        };
        let key = RowKey {
            user_id: user.id,
            course_id,
            section_id,
            enrollment_type,
            role_id,
            associated_user_id,
        };
        let (id, state_changed) = self.enroll(key, state, attributes, None);
        if state_changed && enrollment_type == EnrollmentType::Student {
            self.enroll_linked_observers(id);
        }
        Ok(id)
    }

    /// Course#enroll_user with allow_multiple_enrollments: reuse the row with the same user, type,
    /// role, associated user and section (deleted rows included) unless it is active; an active
    /// row keeps its state but takes the new dates and section limit (§1, canvas-lms#1299).
    /// Returns the row id and whether its state was set.
    pub(crate) fn enroll(
        &mut self,
        key: RowKey,
        state: EnrollmentState,
        attributes: RowAttributes,
        sis_batch_id: Option<u64>,
    ) -> (u64, bool) {
        let now = Utc::now();
        let existing = self
            .enrollments
            .values()
            .find(|e| {
                e.user_id == key.user_id
                    && e.course_id == key.course_id
                    && e.course_section_id == key.section_id
                    && e.enrollment_type == key.enrollment_type
                    && e.role_id == key.role_id
                    && e.associated_user_id == key.associated_user_id
            })
            .map(|e| e.id);
        if let Some(id) = existing
            && let Some(row) = self.enrollments.get_mut(&id)
        {
            let revive = row.workflow_state != EnrollmentState::Active;
            if revive {
                if row.workflow_state == EnrollmentState::Deleted {
                    row.sis_batch_id = None;
                }
                row.workflow_state = state;
                row.completed_at = (state == EnrollmentState::Completed).then_some(now);
            }
            if sis_batch_id.is_some() {
                row.sis_batch_id = sis_batch_id;
            }
            row.limit_privileges_to_course_section = attributes.limit_privileges_to_course_section;
            row.start_at = attributes.start_at;
            row.end_at = attributes.end_at;
            row.self_enrolled = attributes.self_enrolled;
            row.updated_at = now;
            return (id, revive);
        }
        let id = self.next_enrollment_id();
        let root_account_id = self
            .courses
            .get(&key.course_id)
            .map_or(crate::store::ROOT_ACCOUNT_ID, |c| c.root_account_id);
        self.enrollments.insert(
            id,
            Enrollment {
                id,
                user_id: key.user_id,
                course_id: key.course_id,
                course_section_id: key.section_id,
                root_account_id,
                role_id: key.role_id,
                enrollment_type: key.enrollment_type,
                workflow_state: state,
                associated_user_id: key.associated_user_id,
                limit_privileges_to_course_section: attributes.limit_privileges_to_course_section,
                start_at: attributes.start_at,
                end_at: attributes.end_at,
                created_at: now,
                updated_at: now,
                completed_at: (state == EnrollmentState::Completed).then_some(now),
                self_enrolled: attributes.self_enrolled,
                sis_batch_id,
                created_by_sis: sis_batch_id.is_some(),
            },
        );
        (id, true)
    }

    /// Enrolment of a student enrols each linked observer in the same section, with
    /// `associated_user_id` set and the student's state (invited becomes active) (§1,
    /// enrollment.rb create_linked_enrollments).
    pub(crate) fn enroll_linked_observers(&mut self, student_enrollment_id: u64) {
        let Some(student_row) = self.enrollments.get(&student_enrollment_id).cloned() else {
            return;
        };
        let Some(observer_role_id) = self.builtin_role(EnrollmentType::Observer).map(|r| r.id)
        else {
            return;
        };
        let observers: Vec<u64> = self
            .observer_links
            .iter()
            .filter(|l| l.student_id == student_row.user_id && l.observer_id != student_row.user_id)
            .map(|l| l.observer_id)
            .collect();
        let state = match student_row.workflow_state {
            EnrollmentState::Invited => EnrollmentState::Active,
            other => other,
        };
        for observer_id in observers {
            let key = RowKey {
                user_id: observer_id,
                course_id: student_row.course_id,
                section_id: student_row.course_section_id,
                enrollment_type: EnrollmentType::Observer,
                role_id: observer_role_id,
                associated_user_id: Some(student_row.user_id),
            };
            let attributes = RowAttributes {
                limit_privileges_to_course_section: student_row.limit_privileges_to_course_section,
                start_at: student_row.start_at,
                end_at: student_row.end_at,
                self_enrolled: false,
            };
            self.enroll(key, state, attributes, None);
        }
    }

    /// Finds an enrollment the way `@context.enrollments.find(id)` does: in this course, not
    /// deleted, numeric id only.
    fn live_enrollment_in_course(&self, course_id: u64, raw_id: &str) -> Result<u64, ApiError> {
        let id = IdRef::parse(raw_id)
            .and_then(|i| i.canvas_id())
            .ok_or(ApiError::NotFound)?;
        self.enrollments
            .get(&id)
            .filter(|e| e.course_id == course_id && e.workflow_state != EnrollmentState::Deleted)
            .map(|e| e.id)
            .ok_or(ApiError::NotFound)
    }

    /// `DELETE /courses/:course_id/enrollments/:id?task=...` (§1).
    pub(crate) fn end_enrollment(
        &mut self,
        course_id: u64,
        raw_id: &str,
        task: EndTask,
    ) -> Result<u64, ApiError> {
        let id = self.live_enrollment_in_course(course_id, raw_id)?;
        let now = Utc::now();
        if let Some(row) = self.enrollments.get_mut(&id) {
            match task {
                EndTask::Conclude => {
                    row.workflow_state = EnrollmentState::Completed;
                    row.completed_at = Some(now);
                }
                EndTask::Delete => row.workflow_state = EnrollmentState::Deleted,
                EndTask::Deactivate => row.workflow_state = EnrollmentState::Inactive,
            }
            row.updated_at = now;
        }
        Ok(id)
    }

    /// `PUT /courses/:course_id/enrollments/:id/reactivate`: inactive → active only (§1).
    pub(crate) fn reactivate_enrollment(
        &mut self,
        course_id: u64,
        raw_id: &str,
    ) -> Result<u64, ApiError> {
        let id = self.live_enrollment_in_course(course_id, raw_id)?;
        let row = self.enrollments.get_mut(&id).ok_or(ApiError::NotFound)?;
        if row.workflow_state != EnrollmentState::Inactive {
            return Err(ApiError::EnrollmentRejected(
                "enrollment not inactive".into(),
            ));
        }
        row.workflow_state = EnrollmentState::Active;
        row.updated_at = Utc::now();
        Ok(id)
    }
}

/// What identifies an enrollment row for reuse (§1 "Same user + section + role_id").
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowKey {
    pub user_id: u64,
    pub course_id: u64,
    pub section_id: u64,
    pub enrollment_type: EnrollmentType,
    pub role_id: u64,
    pub associated_user_id: Option<u64>,
}

/// Attributes a POST always (re)writes, even on an active row it otherwise leaves alone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowAttributes {
    pub limit_privileges_to_course_section: bool,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub self_enrolled: bool,
}

/// Default state of a new enrollment (Course#enroll_user, §1): an observer who is a registered
/// user starts active; otherwise invited in a published course, creation_pending in an
/// unpublished one; teachers, TAs and designers are never creation_pending; students and
/// observers are never invited in an unpublished course. An explicit `active` stays.
pub(crate) fn initial_state(
    requested: Option<EnrollmentState>,
    enrollment_type: EnrollmentType,
    course_published: bool,
    user_registered: bool,
) -> EnrollmentState {
    let mut state = requested.unwrap_or_else(|| {
        if enrollment_type == EnrollmentType::Observer && user_registered {
            EnrollmentState::Active
        } else if course_published {
            EnrollmentState::Invited
        } else {
            EnrollmentState::CreationPending
        }
    });
    match enrollment_type {
        EnrollmentType::Teacher | EnrollmentType::Ta | EnrollmentType::Designer => {
            if state == EnrollmentState::CreationPending {
                state = EnrollmentState::Invited;
            }
        }
        EnrollmentType::Student | EnrollmentType::Observer => {
            if state == EnrollmentState::Invited && !course_published {
                state = EnrollmentState::CreationPending;
            }
        }
    }
    state
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_states_follow_course_publication_and_type() {
        use EnrollmentState::*;
        use EnrollmentType::*;
        assert_eq!(initial_state(None, Student, true, true), Invited);
        assert_eq!(initial_state(None, Student, false, true), CreationPending);
        assert_eq!(initial_state(None, Teacher, false, true), Invited);
        assert_eq!(initial_state(None, Observer, false, true), Active);
        assert_eq!(initial_state(None, Observer, false, false), CreationPending);
        assert_eq!(initial_state(Some(Active), Student, false, true), Active);
        assert_eq!(
            initial_state(Some(Invited), Student, false, true),
            CreationPending
        );
    }
}
