//! Facts §4 "Roles API".

use super::support::*;
use serde_json::json;

fn names(body: &serde_json::Value) -> Vec<String> {
    body.as_array()
        .expect("array")
        .iter()
        .map(|r| r["role"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn roles_default_to_active_with_built_ins() {
    let sim = start().await;
    let (status, body) = get_json(&sim, "/accounts/1/roles?per_page=100").await;
    assert_eq!(status, 200);
    assert_eq!(
        names(&body),
        [
            "StudentEnrollment",
            "TeacherEnrollment",
            "TaEnrollment",
            "DesignerEnrollment",
            "ObserverEnrollment",
            "Lab Assistant"
        ]
    );
    assert_eq!(
        ids(&body)[..5],
        [3, 4, 5, 6, 7],
        "built-in role ids are stable"
    );
}

#[tokio::test]
async fn roles_inactive_state_lists_no_built_ins() {
    let sim = start().await;
    let (_, body) = get_json(&sim, "/accounts/1/roles?state[]=inactive").await;
    assert_eq!(names(&body), ["Retired"]);
    let (_, body) = get_json(
        &sim,
        "/accounts/1/roles?state[]=active&state[]=inactive&per_page=100",
    )
    .await;
    assert_eq!(body.as_array().map(Vec::len), Some(7));
}

#[tokio::test]
async fn roles_show_inherited_adds_parent_account_roles() {
    let sim = start().await;
    let (_, own) = get_json(&sim, &format!("/accounts/{SCIENCE}/roles?per_page=100")).await;
    assert_eq!(names(&own)[5..], ["Auditor"]);
    let (_, inherited) = get_json(
        &sim,
        &format!("/accounts/{SCIENCE}/roles?show_inherited=true&per_page=100"),
    )
    .await;
    assert_eq!(names(&inherited)[5..], ["Lab Assistant", "Auditor"]);
}

#[tokio::test]
async fn role_json_has_documented_fields_and_labels() {
    let sim = start().await;
    let (status, role) = get_json(&sim, &format!("/accounts/1/roles/{TA_ROLE}")).await;
    assert_eq!(status, 200);
    assert_eq!(role["role"], "TaEnrollment");
    assert_eq!(role["label"], "TA");
    assert_eq!(role["base_role_type"], "TaEnrollment");
    assert_eq!(role["workflow_state"], "built_in");
    assert_eq!(role["is_account_role"], false);
    for field in [
        "id",
        "created_at",
        "last_updated_at",
        "permissions",
        "account",
    ] {
        assert!(role.get(field).is_some(), "{field}");
    }
    let (_, custom) = get_json(&sim, &format!("/accounts/1/roles/{LAB_ASSISTANT}")).await;
    assert_eq!(
        (custom["label"].clone(), custom["workflow_state"].clone()),
        (json!("Lab Assistant"), json!("active"))
    );
    let (status, _) = get_json(&sim, &format!("/accounts/1/roles/{ARTS_HELPER}")).await;
    assert_eq!(
        status, 404,
        "a sub-account's role is not in the root's chain"
    );
}

#[tokio::test]
async fn renaming_a_role_changes_enrollment_role_text_but_not_role_id() {
    let sim = start().await;
    sim.with_store(|s| s.rename_role(LAB_ASSISTANT, "Lab Helper"))
        .expect("renamed");
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?role_id[]={LAB_ASSISTANT}"),
    )
    .await;
    assert_eq!(body[0]["role"], "Lab Helper");
    assert_eq!(body[0]["role_id"], LAB_ASSISTANT);
    assert_eq!(body[0]["id"], ADA_MATH_LAB);
}

#[tokio::test]
async fn an_inactivated_role_refuses_new_enrollments() {
    let sim = start().await;
    sim.with_store(|s| s.set_role_state(LAB_ASSISTANT, "inactive"))
        .expect("state set");
    let (status, body) = json(
        post_form(
            &sim,
            &format!("/courses/{MATH}/enrollments"),
            &[
                ("enrollment[user_id]", "16"),
                ("enrollment[role]", "Lab Assistant"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Cannot create an enrollment with this role because it is inactive."
    );
}
