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

/// `GET /sections/:id` (what a client reads to learn a section's course): the Section JSON Canvas returns, by Canvas
/// id or `sis_section_id:`; a deleted or unknown section is Canvas's 404.
#[tokio::test]
async fn section_json_by_id_and_by_sis_section_id() {
    let sim = start().await;
    for path in [
        format!("/sections/{MATH_B}"),
        "/sections/sis_section_id:MATH-101-B".to_string(),
        "/sections/sis_section_id:MATH-101-B.json".to_string(),
        format!("/courses/{MATH}/sections/{MATH_B}"),
        "/courses/sis_course_id:MATH-101/sections/sis_section_id:MATH-101-B".to_string(),
    ] {
        let (status, body) = get_json(&sim, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["id"], MATH_B, "{path}");
        assert_eq!(body["course_id"], MATH, "{path}");
        assert_eq!(body["name"], "Math 101 B", "{path}");
        assert_eq!(body["sis_section_id"], "MATH-101-B", "{path}");
        assert_eq!(body["sis_course_id"], "MATH-101", "{path}");
        for field in [
            "integration_id",
            "sis_import_id",
            "start_at",
            "end_at",
            "restrict_enrollments_to_section_dates",
            "nonxlist_course_id",
        ] {
            assert!(body.get(field).is_some(), "{path}: no `{field}` in {body}");
        }
    }
    // A section of another course, and a default section without a SIS id.
    let (status, body) = get_json(&sim, "/sections/sis_section_id:CS-1").await;
    assert_eq!((status, body["course_id"].clone()), (200, json!(CS)));
    let (status, body) = get_json(&sim, &format!("/sections/{MATH_DEFAULT}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["sis_section_id"], serde_json::Value::Null);
    for missing in [
        format!("/sections/{MATH_DELETED}"),
        "/sections/sis_section_id:MATH-OLD".to_string(),
        "/sections/sis_section_id:math-101-b".to_string(),
        "/sections/999".to_string(),
        format!("/courses/{CS}/sections/{MATH_B}"),
        format!("/courses/{GONE}/sections/{MATH_B}"),
    ] {
        let response = get(&sim, &missing).await;
        assert_eq!(response.status(), 404, "{missing}");
        assert_eq!(
            response.text().await.expect("body"),
            NOT_FOUND_BODY,
            "{missing}"
        );
    }
}

/// A crosslisted section answers with its new course and keeps the old one in `nonxlist_course_id`.
#[tokio::test]
async fn section_json_follows_a_crosslisted_section() {
    let sim = start().await;
    sim.with_store(|s| s.crosslist_section(MATH_B, CS))
        .expect("crosslisted");
    let (status, body) = get_json(&sim, "/sections/sis_section_id:MATH-101-B").await;
    assert_eq!(status, 200);
    assert_eq!(body["course_id"], CS);
    assert_eq!(body["nonxlist_course_id"], MATH);
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

/// A seed enrollment's state comes from `enrollment_state` (Canvas's field) or `workflow_state`, and a seed
/// without either is refused naming the field, never read as `active`.
#[tokio::test]
async fn seed_enrollment_state_is_read_and_never_assumed() {
    let seed: Seed = serde_json::from_value(json!({
        "users": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}],
        "courses": [{"id": 5, "name": "C"}],
        "enrollments": [
            {"id": 10, "user_id": 1, "course_id": 5, "enrollment_state": "invited"},
            {"id": 11, "user_id": 2, "course_id": 5, "workflow_state": "inactive"}
        ]
    }))
    .expect("seed");
    let sim = start_with(SimOptions {
        seed,
        ..SimOptions::default()
    })
    .await;
    let (_, body) = get_json(&sim, "/courses/5/enrollments").await;
    let mut states: Vec<(u64, String)> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().expect("id"),
                e["enrollment_state"].as_str().expect("state").to_string(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec![(10, "invited".to_string()), (11, "inactive".to_string())]
    );

    let err = serde_json::from_value::<Seed>(json!({
        "enrollments": [{"id": 12, "user_id": 1, "course_id": 5}]
    }))
    .expect_err("an enrollment without a state")
    .to_string();
    assert!(err.contains("`enrollment_state`"), "{err}");
    assert!(err.contains("enrollment 12"), "{err}");
    // And through the file loader, as the binary reads it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seed.json");
    std::fs::write(
        &path,
        r#"{"users":[{"id":1,"name":"A"}],"courses":[{"id":5,"name":"C"}],"enrollments":[{"user_id":1,"course_id":5}]}"#,
    )
    .expect("write");
    let err = Seed::from_file(&path).expect_err("refused").to_string();
    assert!(
        err.contains("is not a valid seed") && err.contains("`enrollment_state`"),
        "{err}"
    );
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
