//! Users, courses, sections and accounts as the client reads them, and the seed defaults.

use super::support::*;
use canvas_sim::{Seed, SimOptions};
use serde_json::json;

#[tokio::test]
async fn users_self_is_the_token_user() {
    let sim = start().await;
    let (status, body) = get_json(&sim, "/users/self").await;
    assert_eq!(status, 200);
    let token_user = sim.with_store(|s| s.token_user_id());
    assert_eq!(body["id"], token_user);
    assert_eq!(body["login_id"], "sim-admin");
}

#[tokio::test]
async fn user_json_has_sis_user_id_and_login_id() {
    let sim = start().await;
    let (_, body) = get_json(&sim, &format!("/users/{ADA}")).await;
    assert_eq!(body["sis_user_id"], "S10");
    assert_eq!(body["login_id"], "ada@example.edu");
    assert_eq!(body["sortable_name"], "Lovelace, Ada");
}

#[tokio::test]
async fn course_json_and_deleted_course_404() {
    let sim = start().await;
    let (_, body) = get_json(&sim, "/courses/sis_course_id:DRAFT").await;
    assert_eq!(body["workflow_state"], "unpublished");
    assert_eq!(body["account_id"], 1);
    let (status, _) = get_json(&sim, &format!("/courses/{GONE}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn sections_list_active_sections_of_the_course() {
    let sim = start().await;
    let (status, body) = get_json(&sim, &format!("/courses/{MATH}/sections")).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), vec![MATH_DEFAULT, MATH_B]);
    assert_eq!(body[1]["sis_section_id"], "MATH-101-B");
    assert_eq!(body[1]["course_id"], MATH);
    assert_eq!(body[1]["sis_course_id"], "MATH-101");
}

#[tokio::test]
async fn account_json_and_self_alias() {
    let sim = start().await;
    let (_, body) = get_json(&sim, "/accounts/self").await;
    assert_eq!(body["id"], 1);
    let (_, body) = get_json(&sim, &format!("/accounts/{SCIENCE}")).await;
    assert_eq!(
        (
            body["parent_account_id"].clone(),
            body["root_account_id"].clone()
        ),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn empty_seed_has_root_account_and_built_in_roles() {
    let sim = start_with(SimOptions {
        seed: Seed::default(),
        ..SimOptions::default()
    })
    .await;
    let (_, body) = get_json(&sim, "/accounts/1/roles").await;
    assert_eq!(ids(&body), vec![3, 4, 5, 6, 7]);
    let labels: Vec<&str> = body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["label"].as_str())
        .collect();
    assert_eq!(labels, ["Student", "Teacher", "TA", "Designer", "Observer"]);
}

#[tokio::test]
async fn seed_json_uses_canvas_field_names() {
    let seed: Seed = serde_json::from_value(json!({
        "users": [{"id": 1, "name": "A B", "sis_user_id": "U1", "login_id": "a@b", "avatar_url": "ignored"}],
        "courses": [{"id": 2, "name": "C", "sis_course_id": "C2", "workflow_state": "available"}],
        "sections": [{"id": 3, "course_id": 2, "name": "S", "sis_section_id": "S3", "default_section": true}],
        "roles": [{"id": 9, "role": "Helper", "base_role_type": "TaEnrollment", "workflow_state": "active", "account_id": 1}],
        "enrollments": [{"id": 4, "user_id": 1, "course_id": 2, "course_section_id": 3, "role_id": 9, "type": "TaEnrollment", "enrollment_state": "inactive"}],
        "observer_links": []
    }))
    .expect("seed");
    let sim = start_with(SimOptions {
        seed,
        ..SimOptions::default()
    })
    .await;
    let (_, body) = get_json(&sim, "/courses/2/enrollments").await;
    assert_eq!(ids(&body), vec![4]);
    assert_eq!(body[0]["role"], "Helper");
    assert_eq!(body[0]["enrollment_state"], "inactive");
}

#[tokio::test]
async fn seed_roles_named_after_their_type_are_the_built_ins() {
    let seed: Seed = serde_json::from_value(json!({
        "roles": [{"id": 13, "role": "StudentEnrollment", "base_role_type": "StudentEnrollment"}]
    }))
    .expect("seed");
    let sim = start_with(SimOptions {
        seed,
        ..SimOptions::default()
    })
    .await;
    let (_, body) = get_json(&sim, "/accounts/1/roles").await;
    assert_eq!(ids(&body), vec![4, 5, 6, 7, 13]);
    assert_eq!(body[4]["workflow_state"], "built_in");
    assert_eq!(body[4]["label"], "Student");
}

#[tokio::test]
async fn deleting_a_section_deletes_its_enrollments() {
    let sim = start().await;
    sim.with_store(|s| s.delete_section(MATH_B))
        .expect("deleted");
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?state[]=deleted&user_id={BOB}"),
    )
    .await;
    assert!(ids(&body).contains(&BOB_MATH_B));
    let (_, sections) = get_json(&sim, &format!("/courses/{MATH}/sections")).await;
    assert_eq!(ids(&sections), vec![MATH_DEFAULT]);
}

#[tokio::test]
async fn crosslisting_moves_a_section_and_its_enrollments_to_another_course() {
    let sim = start().await;
    sim.with_store(|s| s.crosslist_section(MATH_B, CS))
        .expect("moved");
    let (_, body) = get_json(&sim, "/sections/sis_section_id:MATH-101-B/enrollments").await;
    assert_eq!(ids(&body), vec![BOB_MATH_B]);
    assert_eq!(body[0]["course_id"], CS);
    let (_, sections) = get_json(&sim, &format!("/courses/{CS}/sections")).await;
    let moved = sections
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == MATH_B))
        .cloned()
        .expect("moved section");
    assert_eq!(moved["nonxlist_course_id"], MATH);
}
