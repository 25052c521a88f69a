//! Canvas's JSON shapes for the objects the simulator serves (the JSON response itself is `json.rs`).
//! Ids are JSON integers (§0); timestamps are ISO 8601 UTC like Rails renders them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::model::{
    Account, Course, CourseState, Enrollment, EnrollmentState, EnrollmentType, Role, Section, User,
};
use super::store::Store;

pub fn time(t: &DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn opt_time(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map_or(Value::Null, time)
}

/// Enrollment JSON as an account admin sees it (§1 "Enrollment JSON"): the always-present fields,
/// the SIS fields, activity fields, `grades` for students, and `user` when `with_user` (lists).
pub fn enrollment_json(store: &Store, e: &Enrollment, base_url: &str, with_user: bool) -> Value {
    let course = store.course(e.course_id);
    let section = store.section(e.course_section_id);
    let user = store.user(e.user_id);
    let role = store.role(e.role_id);
    // §1: `enrollment_state` is the raw workflow_state, except "deleted" when the course or
    // section is deleted.
    let course_deleted = course.is_some_and(|c| c.workflow_state == CourseState::Deleted);
    let section_deleted = section.is_some_and(|s| !s.is_active());
    let state = if course_deleted || section_deleted {
        EnrollmentState::Deleted
    } else {
        e.workflow_state
    };
    let account = course.and_then(|c| store.account(c.account_id));
    let mut json = json!({
        "id": e.id,
        "root_account_id": e.root_account_id,
        "user_id": e.user_id,
        "course_id": e.course_id,
        "course_section_id": e.course_section_id,
        "associated_user_id": e.associated_user_id,
        "limit_privileges_to_course_section": e.limit_privileges_to_course_section,
        "created_at": time(&e.created_at),
        "updated_at": time(&e.updated_at),
        "start_at": opt_time(&e.start_at),
        "end_at": opt_time(&e.end_at),
        "type": e.enrollment_type.as_str(),
        "enrollment_state": state.as_str(),
        // §1/§4: `role` is the role's current name; built-ins are named after their type.
        "role": role.map_or_else(|| e.enrollment_type.as_str().to_string(), |r| r.name.clone()),
        "role_id": e.role_id,
        "html_url": format!("{base_url}/courses/{}/users/{}", e.course_id, e.user_id),
        "sis_account_id": account.and_then(|a| a.sis_account_id.clone()),
        "sis_course_id": course.and_then(|c| c.sis_course_id.clone()),
        "course_integration_id": course.and_then(|c| c.integration_id.clone()),
        "sis_section_id": section.and_then(|s| s.sis_section_id.clone()),
        "section_integration_id": section.and_then(|s| s.integration_id.clone()),
        "sis_user_id": user.and_then(|u| u.sis_user_id.clone()),
        "sis_import_id": e.sis_batch_id,
        "last_activity_at": Value::Null,
        "last_attended_at": Value::Null,
        "total_activity_time": 0,
    });
    if let Value::Object(map) = &mut json {
        if e.enrollment_type == EnrollmentType::Student {
            map.insert(
                "grades".into(),
                json!({
                    "html_url": format!("{base_url}/courses/{}/grades/{}", e.course_id, e.user_id),
                    "current_grade": null, "current_score": null,
                    "final_grade": null, "final_score": null,
                    "unposted_current_score": null, "unposted_final_score": null,
                }),
            );
        }
        if with_user && let Some(user) = user {
            map.insert("user".into(), embedded_user_json(user));
        }
    }
    json
}

/// The `user` embedded in enrollment lists (§1), admin fields included.
pub fn embedded_user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "created_at": time(&u.created_at),
        "sortable_name": u.sortable_name,
        "short_name": u.short_name,
        "sis_user_id": u.sis_user_id,
        "integration_id": u.integration_id,
        "sis_import_id": Value::Null,
        "login_id": u.login_id,
    })
}

/// `GET /users/:id` and `/users/self`.
pub fn user_json(u: &User) -> Value {
    let mut json = embedded_user_json(u);
    if let Value::Object(map) = &mut json {
        map.insert("locale".into(), Value::Null);
        map.insert("effective_locale".into(), json!("en"));
    }
    json
}

pub fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "uuid": a.uuid,
        "parent_account_id": a.parent_account_id,
        "root_account_id": a.root_account_id,
        "workflow_state": a.workflow_state,
        "default_time_zone": "Etc/UTC",
        "sis_account_id": a.sis_account_id,
        "integration_id": a.integration_id,
        "sis_import_id": Value::Null,
    })
}

pub fn course_json(c: &Course) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "course_code": c.course_code,
        "account_id": c.account_id,
        "root_account_id": c.root_account_id,
        "uuid": c.uuid,
        "sis_course_id": c.sis_course_id,
        "integration_id": c.integration_id,
        "sis_import_id": Value::Null,
        "workflow_state": c.workflow_state.as_str(),
        "created_at": time(&c.created_at),
        "start_at": Value::Null,
        "end_at": Value::Null,
        "enrollment_term_id": 1,
        "default_view": "modules",
        "is_public": false,
    })
}

pub fn section_json(store: &Store, s: &Section) -> Value {
    json!({
        "id": s.id,
        "course_id": s.course_id,
        "name": s.name,
        "start_at": Value::Null,
        "end_at": Value::Null,
        "created_at": time(&s.created_at),
        "restrict_enrollments_to_section_dates": Value::Null,
        "nonxlist_course_id": s.nonxlist_course_id,
        "sis_section_id": s.sis_section_id,
        "sis_course_id": store.course(s.course_id).and_then(|c| c.sis_course_id.clone()),
        "integration_id": s.integration_id,
        "sis_import_id": Value::Null,
    })
}

/// Role JSON (§4 `lib/api/v1/role.rb`): `permissions` is left empty.
pub fn role_json(store: &Store, r: &Role) -> Value {
    json!({
        "id": r.id,
        "role": r.name,
        "label": r.label,
        "base_role_type": r.base_role_type,
        "workflow_state": r.workflow_state.as_str(),
        "is_account_role": r.course_type().is_none(),
        "created_at": time(&r.created_at),
        "last_updated_at": time(&r.updated_at),
        "permissions": Map::new(),
        "account": store.account(r.account_id).map(account_json),
    })
}
