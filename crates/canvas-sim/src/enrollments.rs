//! The Enrollments API's rules (canvas-api-facts.md §1): which rows a list returns, how a POST
//! creates, reuses or revives a row, and what conclude/delete/deactivate/reactivate do.
//!
//! The simulator's token belongs to an account admin, so every permission check passes and
//! the admin variants of each rule apply.
//!
//! This file holds the list side; how a POST creates, reuses or revives a row, and the end and
//! reactivate tasks, are in `enrollments/write.rs`.

mod write;

use super::errors::ApiError;
use super::ids::IdRef;
use super::model::{Enrollment, EnrollmentState};
use super::params::{ParamShape, Params};
use super::store::Store;
pub use write::EndTask;
pub(crate) use write::RowKey;

/// Which list route was called, with its resolved context.
#[derive(Debug, Clone, Copy)]
pub enum ListScope {
    Course(u64),
    Section { course_id: u64, section_id: u64 },
    User(u64),
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

/// Ruby `String#to_i`: the leading integer, 0 when there is none.
fn leading_integer(text: &str) -> u64 {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_to_i() {
        assert_eq!(leading_integer("12abc"), 12);
        assert_eq!(leading_integer("abc"), 0);
    }
}
