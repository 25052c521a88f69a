//! Facts §1 "List parameters" and "Enrollment JSON".

use super::support::*;
use serde_json::json;

#[tokio::test]
async fn list_default_states_for_admin_exclude_completed_and_deleted() {
    let sim = start().await;
    let (status, body) = get_json(&sim, &format!("/courses/{MATH}/enrollments?per_page=100")).await;
    assert_eq!(status, 200);
    // inactive and creation_pending included; completed, deleted and rejected left out (#1723).
    assert_eq!(
        id_set(&body),
        vec![
            ADA_MATH,
            BOB_MATH_B,
            TESS_MATH,
            UPPER_MATH_INACTIVE,
            NEW_MATH_PENDING,
            ADA_MATH_LAB
        ]
    );
}

#[tokio::test]
async fn list_sorted_by_type_then_sortable_name_then_id() {
    let sim = start().await;
    let (_, body) = get_json(&sim, &format!("/courses/{MATH}/enrollments?per_page=100")).await;
    // Students: Baker, Case, Lovelace, New; then TaEnrollment; then TeacherEnrollment.
    assert_eq!(
        ids(&body),
        vec![
            BOB_MATH_B,
            UPPER_MATH_INACTIVE,
            ADA_MATH,
            NEW_MATH_PENDING,
            ADA_MATH_LAB,
            TESS_MATH
        ]
    );
}

#[tokio::test]
async fn list_state_is_compared_literally_to_workflow_state() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?state[]=completed&state[]=deleted&state[]=rejected"),
    )
    .await;
    assert_eq!(
        id_set(&body),
        vec![
            LOWER_MATH_COMPLETED,
            BOB_MATH_TA_DELETED,
            OLIVE_MATH_REJECTED
        ]
    );
    let (_, body) = get_json(&sim, &format!("/courses/{MATH}/enrollments?state=inactive")).await;
    assert_eq!(
        ids(&body),
        vec![UPPER_MATH_INACTIVE],
        "a plain string is accepted too"
    );
}

#[tokio::test]
async fn list_synthetic_or_unknown_state_matches_nothing_on_course_route() {
    let sim = start().await;
    for state in ["current_and_future", "current_and_invited", "bogus"] {
        let (status, body) = get_json(
            &sim,
            &format!("/courses/{MATH}/enrollments?state[]={state}"),
        )
        .await;
        assert_eq!((status, body), (200, json!([])), "state {state}");
    }
    let (status, body) = get_json(
        &sim,
        &format!("/sections/{MATH_B}/enrollments?state[]=current_and_future"),
    )
    .await;
    assert_eq!((status, body), (200, json!([])));
}

#[tokio::test]
async fn list_state_must_be_string_or_array_of_strings() {
    let sim = start().await;
    let (status, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?state[foo]=active"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errors": [{"message": "An error occurred.", "error_code": "bad_request"}]})
    );
}

#[tokio::test]
async fn list_type_filter_uses_base_types() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?type[]=TaEnrollment&type[]=TeacherEnrollment"),
    )
    .await;
    assert_eq!(id_set(&body), vec![TESS_MATH, ADA_MATH_LAB]);
}

#[tokio::test]
async fn list_type_is_ignored_when_role_or_role_id_given() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?type[]=TeacherEnrollment&role[]=Lab%20Assistant"),
    )
    .await;
    assert_eq!(ids(&body), vec![ADA_MATH_LAB]);
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?type[]=TeacherEnrollment&role_id[]={STUDENT_ROLE}"),
    )
    .await;
    assert_eq!(
        id_set(&body),
        vec![ADA_MATH, BOB_MATH_B, UPPER_MATH_INACTIVE, NEW_MATH_PENDING]
    );
}

#[tokio::test]
async fn list_role_id_wins_over_role() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?role[]=StudentEnrollment&role_id[]={TEACHER_ROLE}"),
    )
    .await;
    assert_eq!(ids(&body), vec![TESS_MATH]);
}

#[tokio::test]
async fn list_unresolved_role_name_is_400() {
    let sim = start().await;
    let (status, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?role[]=Nonexistent"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["message"], "An error occurred.");
    // Names are case-sensitive (§4).
    let (status, _) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?role[]=lab%20assistant"),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn list_user_id_filters_to_one_user_with_active_and_invited_default() {
    let sim = start().await;
    let (_, body) = get_json(&sim, &format!("/courses/{MATH}/enrollments?user_id={ADA}")).await;
    assert_eq!(id_set(&body), vec![ADA_MATH, ADA_MATH_LAB]);
    // The default is active + invited only: the inactive row is not listed without state[].
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?user_id={UPPER_ABC}"),
    )
    .await;
    assert_eq!(body, json!([]));
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?user_id=sis_user_id:ABC&state[]=inactive"),
    )
    .await;
    assert_eq!(ids(&body), vec![UPPER_MATH_INACTIVE]);
    let (status, _) = get_json(&sim, &format!("/courses/{MATH}/enrollments?user_id=999")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn list_section_route_resolves_section_and_takes_its_course() {
    let sim = start().await;
    let (_, body) = get_json(&sim, "/sections/sis_section_id:MATH-101-B/enrollments").await;
    assert_eq!(ids(&body), vec![BOB_MATH_B]);
    assert_eq!(body[0]["course_id"], MATH);
    let (status, _) = get_json(&sim, &format!("/sections/{MATH_DELETED}/enrollments")).await;
    assert_eq!(status, 404, "a deleted section is not found");
}

#[tokio::test]
async fn list_user_route_for_admin_defaults_to_active_and_invited_and_states_are_literal() {
    let sim = start().await;
    let (_, body) = get_json(&sim, &format!("/users/{ADA}/enrollments")).await;
    assert_eq!(id_set(&body), vec![ADA_MATH, ADA_MATH_LAB, ADA_CS]);
    let (_, body) = get_json(&sim, "/users/sis_user_id:S11/enrollments").await;
    assert_eq!(ids(&body), vec![BOB_MATH_B]);
    let (_, body) = get_json(&sim, &format!("/users/{BOB}/enrollments?state[]=deleted")).await;
    assert_eq!(ids(&body), vec![BOB_MATH_TA_DELETED]);
    let (status, body) = get_json(
        &sim,
        &format!("/users/{ADA}/enrollments?state[]=current_and_invited"),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!([])),
        "synthetic states match nothing for an admin caller"
    );
}

#[tokio::test]
async fn list_user_route_for_self_validates_state() {
    let sim = start().await;
    let (status, body) = get_json(&sim, "/users/self/enrollments?state[]=bogus").await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": "Invalid state bogus"}));
    let (status, body) = get_json(&sim, "/users/self/enrollments?state[]=current_and_future").await;
    assert_eq!((status, body), (200, json!([])));
}

#[tokio::test]
async fn list_one_row_per_enrollment_two_roles_are_two_rows() {
    let sim = start().await;
    let (_, body) = get_json(&sim, &format!("/courses/{MATH}/enrollments?user_id={ADA}")).await;
    let rows = body.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["user_id"] == ADA));
}

#[tokio::test]
async fn list_embeds_user_with_admin_sis_fields() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?type[]=TeacherEnrollment"),
    )
    .await;
    let user = &body[0]["user"];
    assert_eq!(user["id"], TESS);
    assert_eq!(user["name"], "Tess Teacher");
    assert_eq!(user["sortable_name"], "Teacher, Tess");
    assert_eq!(user["short_name"], "Tess Teacher");
    assert_eq!(user["sis_user_id"], "T15");
    for field in ["created_at", "integration_id", "login_id"] {
        assert!(user.get(field).is_some(), "user.{field} present");
    }
}

#[tokio::test]
async fn enrollment_json_has_every_documented_field() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?user_id={ADA}&type[]=StudentEnrollment"),
    )
    .await;
    let row = &body[0];
    for field in [
        "id",
        "root_account_id",
        "user_id",
        "course_id",
        "course_section_id",
        "associated_user_id",
        "limit_privileges_to_course_section",
        "created_at",
        "updated_at",
        "start_at",
        "end_at",
        "type",
        "enrollment_state",
        "role",
        "role_id",
        "html_url",
        "sis_account_id",
        "sis_course_id",
        "course_integration_id",
        "sis_section_id",
        "section_integration_id",
        "sis_user_id",
        "sis_import_id",
    ] {
        assert!(row.get(field).is_some(), "{field} missing from {row}");
    }
    assert_eq!(row["id"], ADA_MATH);
    assert_eq!(row["root_account_id"], 1);
    assert_eq!(row["course_section_id"], MATH_DEFAULT);
    assert_eq!(row["type"], "StudentEnrollment");
    assert_eq!(
        row["role"], "StudentEnrollment",
        "built-in roles are named after their type"
    );
    assert_eq!(row["role_id"], STUDENT_ROLE);
    assert_eq!(row["enrollment_state"], "active");
    assert_eq!(row["sis_course_id"], "MATH-101");
    assert_eq!(row["sis_account_id"], "SCI");
    assert_eq!(row["sis_user_id"], "S10");
    assert!(
        row["html_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/courses/{MATH}/users/{ADA}")))
    );
}

#[tokio::test]
async fn enrollment_role_is_custom_role_name_and_type_is_base_type() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?role_id[]={LAB_ASSISTANT}"),
    )
    .await;
    assert_eq!(body[0]["role"], "Lab Assistant");
    assert_eq!(body[0]["type"], "TaEnrollment");
    assert_eq!(body[0]["role_id"], LAB_ASSISTANT);
}

#[tokio::test]
async fn enrollment_state_is_deleted_when_section_is_deleted() {
    let sim = start().await;
    sim.with_store(|store| {
        store
            .add_enrollment(
                canvas_sim::SeedEnrollment::new(SAM, MATH)
                    .with_id(500)
                    .in_section(MATH_DELETED),
            )
            .expect("row added");
    });
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?user_id={SAM}&state[]=active"),
    )
    .await;
    assert_eq!(ids(&body), vec![500], "matched on the raw workflow_state");
    assert_eq!(body[0]["enrollment_state"], "deleted");
}

#[tokio::test]
async fn deleted_course_is_not_found() {
    let sim = start().await;
    let (status, body) = get_json(&sim, &format!("/courses/{GONE}/enrollments")).await;
    assert_eq!(status, 404);
    assert_eq!(body.to_string(), NOT_FOUND_BODY);
}

#[tokio::test]
async fn show_enrollment_on_account_route_has_no_user() {
    let sim = start().await;
    let (status, body) = get_json(
        &sim,
        &format!("/accounts/1/enrollments/{BOB_MATH_TA_DELETED}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["enrollment_state"], "deleted");
    assert!(body.get("user").is_none());
    let (status, _) = get_json(&sim, "/accounts/1/enrollments/99999").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn json_suffix_is_optional() {
    let sim = start().await;
    let (status, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments.json?per_page=100"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(6));
}

#[tokio::test]
async fn ids_are_json_integers() {
    let sim = start().await;
    let (_, body) = get_json(&sim, &format!("/courses/{MATH}/enrollments")).await;
    for row in body.as_array().expect("array") {
        for field in [
            "id",
            "user_id",
            "course_id",
            "course_section_id",
            "role_id",
            "root_account_id",
        ] {
            assert!(row[field].is_u64(), "{field} is an integer in {row}");
        }
    }
}

#[tokio::test]
async fn list_sis_filters_match_exact_sis_ids() {
    let sim = start().await;
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?sis_user_id[]=S10&sis_user_id[]=S11"),
    )
    .await;
    assert_eq!(id_set(&body), vec![ADA_MATH, BOB_MATH_B, ADA_MATH_LAB]);
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?sis_user_id[]=s10"),
    )
    .await;
    assert_eq!(body, json!([]), "sis_user_id is case-sensitive");
    let (_, body) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?sis_section_id[]=MATH-101-B"),
    )
    .await;
    assert_eq!(ids(&body), vec![BOB_MATH_B]);
    let (_, body) = get_json(
        &sim,
        &format!("/users/{ADA}/enrollments?sis_course_id[]=CS/101.11%C3%A9"),
    )
    .await;
    assert_eq!(ids(&body), vec![ADA_CS]);
    let (_, body) = get_json(
        &sim,
        &format!("/users/{ADA}/enrollments?sis_account_id[]=SCI"),
    )
    .await;
    assert_eq!(id_set(&body), vec![ADA_MATH, ADA_MATH_LAB]);
}
