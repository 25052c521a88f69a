//! The Enrollments API's rules (canvas-api-facts.md §1): which rows a list returns, how a POST
//! creates, reuses or revives a row, and what conclude/delete/deactivate/reactivate do.
//!
//! The simulator's token belongs to an account admin, so every permission check passes and
//! the admin variants of each rule apply.

use chrono::{DateTime, Utc};

use super::errors::ApiError;
use super::ids::IdRef;
use super::model::{CourseState, Enrollment, EnrollmentState, EnrollmentType};
use super::params::{ParamShape, Params, truthy};
use super::store::Store;

/// Which list route was called, with its resolved context.
#[derive(Debug, Clone, Copy)]
pub enum ListScope {
    Course(u64),
    Section { course_id: u64, section_id: u64 },
    User(u64),
}

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

/// States the admin sees on course/section routes when `state[]` is omitted: every state except
/// rejected, completed and deleted — `inactive` included (§1, canvas-lms#1723).
const ADMIN_DEFAULT_STATES: [EnrollmentState; 4] = [
    EnrollmentState::Active,
    EnrollmentState::Invited,
    EnrollmentState::CreationPending,
    EnrollmentState::Inactive,
];

/// States accepted on the user route when the caller asks about themself (§1).
const SELF_VALID_STATES: [&str; 12] = [
    "active",
    "inactive",
    "rejected",
    "invited",
    "creation_pending",
    "pending_active",
    "pending_invited",
    "completed",
    "current_and_invited",
    "current_and_future",
    "current_future_and_restricted",
    "current_and_concluded",
];

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

/// The sort key of every enrollment list: type, user sortable_name, id (§1, §3); it is also the
/// bookmark.
pub type EnrollmentSortKey = (String, String, u64);

impl Store {
    pub(crate) fn enrollment_sort_key(&self, e: &Enrollment) -> EnrollmentSortKey {
        let sortable = self
            .users
            .get(&e.user_id)
            .map(|u| u.sortable_name.to_lowercase())
            .unwrap_or_default();
        (e.enrollment_type.as_str().to_string(), sortable, e.id)
    }

    /// The rows a list route returns, sorted by type, sortable name, id.
    pub(crate) fn list_enrollments(
        &self,
        scope: ListScope,
        params: &Params,
    ) -> Result<Vec<&Enrollment>, ApiError> {
        let (course_id, section_id) = match scope {
            ListScope::Course(course_id) => (Some(course_id), None),
            ListScope::Section {
                course_id,
                section_id,
            } => (Some(course_id), Some(section_id)),
            ListScope::User(_) => (None, None),
        };
        let state_given = params.is_present("state");
        // `user_id` on a course/section route is the user route restricted to that course.
        let user_filter = match scope {
            ListScope::User(user_id) => Some(user_id),
            _ => match params.shape("user_id") {
                ParamShape::Absent => None,
                ParamShape::Scalar(raw) => {
                    let id = IdRef::parse(&raw).ok_or(ApiError::NotFound)?;
                    Some(self.resolve_user(&id)?.id)
                }
                ParamShape::Array(_) | ParamShape::Nested => return Err(ApiError::NotFound),
            },
        };
        let caller_is_user = user_filter == Some(self.token_user_id);

        let mut rows: Vec<&Enrollment> = if caller_is_user {
            self.self_enrollments(params, course_id, section_id)?
        } else {
            let condition = self.index_conditions(params, course_id)?;
            self.enrollments
                .values()
                .filter(|e| course_id.is_none_or(|c| e.course_id == c))
                .filter(|e| section_id.is_none_or(|s| e.course_section_id == s))
                .filter(|e| user_filter.is_none_or(|u| e.user_id == u))
                .filter(|e| condition.matches(e))
                .filter(|e| {
                    if state_given {
                        true
                    } else if user_filter.is_some() {
                        // The user route (and `user_id`) default to active + invited only.
                        matches!(
                            e.workflow_state,
                            EnrollmentState::Active | EnrollmentState::Invited
                        )
                    } else {
                        ADMIN_DEFAULT_STATES.contains(&e.workflow_state)
                    }
                })
                .collect()
        };
        rows.sort_by_cached_key(|e| self.enrollment_sort_key(e));
        Ok(rows)
    }

    /// The caller's own enrollments: `state[]` validated, synthetic states expanded, default
    /// current and invited (§1 "User route, caller = that user"). Dates are not simulated, so
    /// the date-based state equals the workflow state and `pending_*` match nothing.
    fn self_enrollments(
        &self,
        params: &Params,
        course_id: Option<u64>,
        section_id: Option<u64>,
    ) -> Result<Vec<&Enrollment>, ApiError> {
        let requested = params.list("state");
        let wanted: Vec<String> = if params.is_present("state") {
            for state in &requested {
                if !SELF_VALID_STATES.contains(&state.as_str()) {
                    return Err(ApiError::EnrollmentRejected(format!(
                        "Invalid state {state}"
                    )));
                }
            }
            expand_synthetic_states(&requested)
        } else {
            vec!["active".to_string(), "invited".to_string()]
        };
        let condition = self.index_conditions_without_state(params, course_id)?;
        Ok(self
            .enrollments
            .values()
            .filter(|e| {
                e.user_id == self.token_user_id && e.workflow_state != EnrollmentState::Deleted
            })
            .filter(|e| course_id.is_none_or(|c| e.course_id == c))
            .filter(|e| section_id.is_none_or(|s| e.course_section_id == s))
            .filter(|e| condition.matches(e))
            .filter(|e| wanted.iter().any(|w| w == e.workflow_state.as_str()))
            .collect())
    }

    /// `enrollment_index_conditions`: role_id[] over role[] over type[]; `state[]` compared
    /// literally (synthetic values match nothing) and must be a string or array of strings.
    fn index_conditions(
        &self,
        params: &Params,
        course_id: Option<u64>,
    ) -> Result<IndexCondition, ApiError> {
        let mut condition = self.index_conditions_without_state(params, course_id)?;
        if params.is_present("state") {
            match params.shape("state") {
                ParamShape::Scalar(s) => condition.states = Some(vec![s]),
                ParamShape::Array(values) => condition.states = Some(values),
                ParamShape::Nested | ParamShape::Absent => return Err(ApiError::BadRequest),
            }
        }
        Ok(condition)
    }

    fn index_conditions_without_state(
        &self,
        params: &Params,
        course_id: Option<u64>,
    ) -> Result<IndexCondition, ApiError> {
        let account_id = course_id
            .and_then(|c| self.courses.get(&c))
            .map_or(super::store::ROOT_ACCOUNT_ID, |c| c.account_id);
        let mut condition = IndexCondition::default();
        let mut role_ids: Vec<String> = if params.is_present("role_id") {
            params.list("role_id")
        } else {
            Vec::new()
        };
        if role_ids.is_empty() && params.is_present("role") {
            let names = params.list("role");
            let resolved: Vec<String> = names
                .iter()
                .filter_map(|name| {
                    self.course_role_by_name(account_id, name)
                        .map(|r| r.id.to_string())
                })
                .collect();
            // "role not found" → ActionController::BadRequest (§1).
            if resolved.len() != names.len() {
                return Err(ApiError::BadRequest);
            }
            role_ids = resolved;
        }
        if !role_ids.is_empty() {
            // Ruby `to_i`: a non-number becomes 0, which matches no role.
            condition.role_ids = Some(role_ids.iter().map(|r| leading_integer(r)).collect());
        } else if params.is_present("type") {
            condition.types = Some(params.list("type"));
        }
        self.add_sis_filters(params, &mut condition);
        Ok(condition)
    }

    /// `sis_user_id[]`, `sis_section_id[]`, `sis_course_id[]`, `sis_account_id[]` (§1): exact SIS
    /// ids; the admin token has read_sis, so they always apply.
    fn add_sis_filters(&self, params: &Params, condition: &mut IndexCondition) {
        if params.is_present("sis_user_id") {
            let wanted = params.list("sis_user_id");
            condition.user_ids = Some(
                self.users
                    .values()
                    .filter(|u| u.sis_user_id.as_ref().is_some_and(|s| wanted.contains(s)))
                    .map(|u| u.id)
                    .collect(),
            );
        }
        if params.is_present("sis_section_id") {
            let wanted = params.list("sis_section_id");
            condition.section_ids = Some(
                self.sections
                    .values()
                    .filter(|s| {
                        s.sis_section_id
                            .as_ref()
                            .is_some_and(|id| wanted.contains(id))
                    })
                    .map(|s| s.id)
                    .collect(),
            );
        }
        let mut course_ids: Option<Vec<u64>> = None;
        if params.is_present("sis_course_id") {
            let wanted = params.list("sis_course_id");
            course_ids = Some(
                self.courses
                    .values()
                    .filter(|c| {
                        c.sis_course_id
                            .as_ref()
                            .is_some_and(|id| wanted.contains(id))
                    })
                    .map(|c| c.id)
                    .collect(),
            );
        }
        if params.is_present("sis_account_id") {
            let wanted = params.list("sis_account_id");
            let in_accounts: Vec<u64> = self
                .courses
                .values()
                .filter(|c| {
                    self.accounts
                        .get(&c.account_id)
                        .and_then(|a| a.sis_account_id.as_ref())
                        .is_some_and(|id| wanted.contains(id))
                })
                .map(|c| c.id)
                .collect();
            course_ids = Some(match course_ids {
                Some(ids) => ids
                    .into_iter()
                    .filter(|id| in_accounts.contains(id))
                    .collect(),
                None => in_accounts,
            });
        }
        condition.course_ids = course_ids;
    }

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
                    if role.workflow_state == super::model::RoleState::Inactive {
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
            .map_or(super::store::ROOT_ACCOUNT_ID, |c| c.root_account_id);
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

/// The row filters of one list request.
#[derive(Debug, Default)]
struct IndexCondition {
    role_ids: Option<Vec<u64>>,
    types: Option<Vec<String>>,
    states: Option<Vec<String>>,
    user_ids: Option<Vec<u64>>,
    section_ids: Option<Vec<u64>>,
    course_ids: Option<Vec<u64>>,
}

impl IndexCondition {
    fn matches(&self, e: &Enrollment) -> bool {
        let within =
            |ids: &Option<Vec<u64>>, id: u64| ids.as_ref().is_none_or(|ids| ids.contains(&id));
        within(&self.user_ids, e.user_id)
            && within(&self.section_ids, e.course_section_id)
            && within(&self.course_ids, e.course_id)
            && self
                .role_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&e.role_id))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == e.enrollment_type.as_str()))
            && self
                .states
                .as_ref()
                .is_none_or(|states| states.iter().any(|s| s == e.workflow_state.as_str()))
    }
}

/// `enrollment_states_for_state_param`: synthetic states expanded (§1).
fn expand_synthetic_states(requested: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for state in requested {
        let expanded: &[&str] = match state.as_str() {
            "current_and_invited" => &["active", "invited"],
            "current_and_future" => &[
                "active",
                "invited",
                "creation_pending",
                "pending_active",
                "pending_invited",
            ],
            "current_and_concluded" => &["active", "completed"],
            "current_future_and_restricted" => &[
                "active",
                "invited",
                "creation_pending",
                "pending_active",
                "pending_invited",
                "inactive",
            ],
            other => {
                out.push(other.to_string());
                continue;
            }
        };
        out.extend(expanded.iter().map(|s| s.to_string()));
    }
    out
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

/// Ruby `String#to_i`: the leading integer, 0 when there is none.
fn leading_integer(text: &str) -> u64 {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
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

    #[test]
    fn ruby_to_i() {
        assert_eq!(leading_integer("12abc"), 12);
        assert_eq!(leading_integer("abc"), 0);
    }
}
