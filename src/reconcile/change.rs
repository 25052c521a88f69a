//! Turns one [`Change`] into its Canvas calls (facts §1) and says how it ended. A failure is a value, never an
//! early return from the cycle.

use serde_json::json;

use crate::canvas::client::UserRef;
use crate::canvas::{CanvasClient, CanvasError, EnrollTarget};
use crate::domain::RemovalPolicy;
use crate::domain::plan::Change;
use crate::domain::roles::RoleBook;
use crate::domain::{Action, EnrollmentState, Ids, SectionKey};
use crate::store::AuditOutcome;

/// How one change ended.
#[derive(Debug, Clone)]
pub struct ChangeResult {
    pub outcome: AuditOutcome,
    pub error: Option<String>,
    pub http_status: Option<u16>,
    /// The enrollment acted on or created.
    pub enrollment_id: Option<u64>,
    /// For `change_role`: the enrollment created in the new role.
    pub new_enrollment_id: Option<u64>,
    pub steps: Option<serde_json::Value>,
    pub user_not_found: bool,
    /// The enroll's SIS section is not in Canvas.
    pub section_not_found: bool,
    /// Set when the error means the rest of the cycle should not be attempted.
    pub ends_cycle: Option<CanvasError>,
}

impl ChangeResult {
    fn applied(enrollment_id: Option<u64>) -> Self {
        Self {
            outcome: AuditOutcome::Applied,
            error: None,
            http_status: None,
            enrollment_id,
            new_enrollment_id: None,
            steps: None,
            user_not_found: false,
            section_not_found: false,
            ends_cycle: None,
        }
    }

    fn failed(error: &CanvasError) -> Self {
        Self {
            outcome: AuditOutcome::Failed,
            error: Some(error.to_string()),
            http_status: error.status(),
            enrollment_id: None,
            new_enrollment_id: None,
            steps: None,
            user_not_found: false,
            section_not_found: false,
            ends_cycle: error.ends_cycle().then(|| error.clone()),
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            outcome: AuditOutcome::Skipped,
            error: Some(reason.into()),
            http_status: None,
            enrollment_id: None,
            new_enrollment_id: None,
            steps: None,
            user_not_found: false,
            section_not_found: false,
            ends_cycle: None,
        }
    }
}

pub const USER_NOT_FOUND: &str = "user not found in Canvas";
pub const SECTION_NOT_FOUND: &str = "section not found in Canvas";

pub async fn apply_change(
    canvas: &CanvasClient,
    change: &Change,
    ids: &Ids,
    roles: &RoleBook,
    removal: RemovalPolicy,
) -> ChangeResult {
    match change.action {
        Action::Enroll => enroll(canvas, change, ids).await,
        Action::Remove => remove(canvas, change, removal).await,
        Action::ChangeState => change_state(canvas, change).await,
        Action::ChangeRole => change_role(canvas, change, roles, removal).await,
    }
}

async fn enroll(canvas: &CanvasClient, change: &Change, ids: &Ids) -> ChangeResult {
    let (Some(user), Some(role), Some(state)) =
        (change.user, change.role_after, change.state_after)
    else {
        return ChangeResult::skipped("internal: enroll without user, role or state");
    };
    let user = ids.resolve(user);
    let course = ids.resolve(change.course);
    let target = match change.section {
        SectionKey::Sis(s) => EnrollTarget::SisSection {
            sis_section_id: ids.resolve(s),
        },
        SectionKey::Default => EnrollTarget::CourseDefaultSection {
            sis_course_id: course,
        },
    };
    // Canvas creates enrollments as active or inactive; a concluded one is created active, then concluded.
    let create_state = if state == EnrollmentState::Inactive {
        "inactive"
    } else {
        "active"
    };
    let created = match canvas
        .create_enrollment(target, UserRef::Sis(user), role.0, create_state)
        .await
    {
        Ok(e) => e,
        Err(CanvasError::NotFound { message }) => {
            // 404 on create: the user, or the section, is unknown to Canvas. Tell which.
            return match canvas.get_user(UserRef::Sis(user)).await {
                Ok(None) => ChangeResult {
                    user_not_found: true,
                    http_status: Some(404),
                    ..ChangeResult::skipped(USER_NOT_FOUND)
                },
                // The course was listed this cycle: a SIS section Canvas does not have.
                Ok(Some(_)) if matches!(change.section, SectionKey::Sis(_)) => ChangeResult {
                    section_not_found: true,
                    http_status: Some(404),
                    ..ChangeResult::skipped(SECTION_NOT_FOUND)
                },
                Ok(Some(_)) => ChangeResult::failed(&CanvasError::NotFound {
                    message: format!(
                        "{message} (the user exists; the section or course was not found)"
                    ),
                }),
                Err(e) => ChangeResult::failed(&e),
            };
        }
        Err(e) => return ChangeResult::failed(&e),
    };
    match state
        .canvas_task()
        .filter(|_| state != EnrollmentState::Inactive)
    {
        None => ChangeResult::applied(Some(created.id)),
        Some(task) => match canvas
            .delete_enrollment(created.course_id, created.id, task)
            .await
        {
            Ok(_) => ChangeResult {
                steps: Some(json!({"create": "applied", task: "applied"})),
                ..ChangeResult::applied(Some(created.id))
            },
            Err(e) => ChangeResult {
                enrollment_id: Some(created.id),
                steps: Some(json!({"create": "applied", task: format!("failed: {e}")})),
                error: Some(format!(
                    "created enrollment {} but could not set it to {state}: {e}; the next cycle retries",
                    created.id
                )),
                ..ChangeResult::failed(&e)
            },
        },
    }
}

async fn remove(canvas: &CanvasClient, change: &Change, removal: RemovalPolicy) -> ChangeResult {
    let (Some(live), Some(task)) = (change.live, removal.canvas_task()) else {
        return ChangeResult::skipped(
            "internal: remove without a live enrollment or with removal = keep",
        );
    };
    match canvas
        .delete_enrollment(live.canvas_course_id, live.id, task)
        .await
    {
        Ok(Some(_)) => ChangeResult::applied(Some(live.id)),
        Ok(None) => ChangeResult {
            steps: Some(json!({ task: "already gone (404)" })),
            ..ChangeResult::applied(Some(live.id))
        },
        Err(e) => ChangeResult {
            enrollment_id: Some(live.id),
            ..ChangeResult::failed(&e)
        },
    }
}

async fn change_state(canvas: &CanvasClient, change: &Change) -> ChangeResult {
    let (Some(live), Some(to)) = (change.live, change.state_after) else {
        return ChangeResult::skipped("internal: change_state without a live enrollment");
    };
    let result = match to {
        // Reactivate works only from inactive; any other state is revived by re-POSTing the same user, section and
        // role (facts §1: the row is reused, same id).
        EnrollmentState::Active if live.state == EnrollmentState::Inactive => canvas
            .reactivate_enrollment(live.canvas_course_id, live.id)
            .await
            .map(|e| Some(e.id)),
        EnrollmentState::Active => canvas
            .create_enrollment(
                EnrollTarget::Section {
                    section_id: live.canvas_section_id,
                },
                UserRef::Canvas(live.canvas_user_id),
                live.role.0,
                "active",
            )
            .await
            .map(|e| Some(e.id)),
        other => match other.canvas_task() {
            Some(task) => canvas
                .delete_enrollment(live.canvas_course_id, live.id, task)
                .await
                .map(|_| Some(live.id)),
            None => {
                return ChangeResult::skipped(format!(
                    "cannot move an enrollment to state {other}"
                ));
            }
        },
    };
    match result {
        Ok(id) => ChangeResult::applied(id),
        Err(e) => ChangeResult {
            enrollment_id: Some(live.id),
            ..ChangeResult::failed(&e)
        },
    }
}

/// Create the new-role enrollment in the same section, then remove the old one (facts §1: no API changes a role
/// in place). If the second step fails, the user keeps both roles until the next cycle finishes the job.
async fn change_role(
    canvas: &CanvasClient,
    change: &Change,
    roles: &RoleBook,
    removal: RemovalPolicy,
) -> ChangeResult {
    let (Some(live), Some(role)) = (change.live, change.role_after) else {
        return ChangeResult::skipped("internal: change_role without a live enrollment or role");
    };
    let created = match canvas
        .create_enrollment(
            EnrollTarget::Section {
                section_id: live.canvas_section_id,
            },
            UserRef::Canvas(live.canvas_user_id),
            role.0,
            "active",
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            return ChangeResult {
                enrollment_id: Some(live.id),
                steps: Some(json!({"create": format!("failed: {e}"), "remove": "not attempted"})),
                ..ChangeResult::failed(&e)
            };
        }
    };
    let Some(task) = removal.canvas_task() else {
        return ChangeResult {
            enrollment_id: Some(live.id),
            new_enrollment_id: Some(created.id),
            steps: Some(json!({"create": "applied", "remove": "kept (reconcile.removal = keep)"})),
            ..ChangeResult::applied(Some(live.id))
        };
    };
    match canvas
        .delete_enrollment(live.canvas_course_id, live.id, task)
        .await
    {
        Ok(_) => ChangeResult {
            enrollment_id: Some(live.id),
            new_enrollment_id: Some(created.id),
            steps: Some(json!({"create": "applied", "remove": "applied"})),
            ..ChangeResult::applied(Some(live.id))
        },
        Err(e) => ChangeResult {
            enrollment_id: Some(live.id),
            new_enrollment_id: Some(created.id),
            steps: Some(json!({"create": "applied", "remove": format!("failed: {e}")})),
            error: Some(format!(
                "created enrollment {} as {}, but removing enrollment {} ({}) failed: {e}; the user is enrolled in both \
                 roles until the next cycle finishes the change",
                created.id,
                roles.name(role),
                live.id,
                roles.name(live.role)
            )),
            ..ChangeResult::failed(&e)
        },
    }
}
