//! Facts §1 "Create: POST (course or section route)".

use super::support::*;
use reqwest::Method;
use serde_json::json;

async fn create(
    sim: &canvas_sim::SimHandle,
    course: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    json(post_form(sim, &format!("/courses/{course}/enrollments"), form).await).await
}

#[tokio::test]
async fn create_without_parameters_says_no_parameters_given() {
    let sim = start().await;
    let (status, body) = create(&sim, "20", &[]).await;
    assert_eq!(
        (status, body),
        (400, json!({"message": "No parameters given"}))
    );
}

#[tokio::test]
async fn create_validation_messages_are_collected_in_order_and_joined() {
    let sim = start().await;
    let (status, body) = create(&sim, "20", &[("enrollment[type]", "BogusEnrollment")]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"message": "Invalid type, Can't create an enrollment without a user. Include enrollment[user_id] to create an enrollment"})
    );
    let (_, body) = create(&sim, "20", &[("enrollment[role_id]", "9999")]).await;
    assert_eq!(
        body["message"],
        "Invalid role, Can't create an enrollment without a user. Include enrollment[user_id] to create an enrollment"
    );
}

#[tokio::test]
async fn create_validation_happens_before_user_lookup() {
    let sim = start().await;
    // An unknown user would be 404, but the invalid type is reported first.
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", "99999"),
            ("enrollment[type]", "Nope"),
        ],
    )
    .await;
    assert_eq!((status, body), (400, json!({"message": "Invalid type"})));
}

#[tokio::test]
async fn create_with_inactive_role_is_rejected() {
    let sim = start().await;
    let retired = RETIRED.to_string();
    let ada = ADA.to_string();
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &ada),
            ("enrollment[role_id]", &retired),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Cannot create an enrollment with this role because it is inactive."
    );
}

#[tokio::test]
async fn create_type_must_match_the_roles_base_type() {
    let sim = start().await;
    let lab = LAB_ASSISTANT.to_string();
    let ada = ADA.to_string();
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &ada),
            ("enrollment[role_id]", &lab),
            ("enrollment[type]", "StudentEnrollment"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["message"].clone()),
        (
            400,
            json!("The specified type must match the base type for the role")
        )
    );
    // Type omitted: inferred from the role.
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &SAM.to_string()),
            ("enrollment[role_id]", &lab),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "TaEnrollment");
    assert_eq!(body["role"], "Lab Assistant");
}

#[tokio::test]
async fn create_role_of_a_sibling_account_is_an_invalid_role() {
    let sim = start().await;
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &SAM.to_string()),
            ("enrollment[role_id]", &ARTS_HELPER.to_string()),
        ],
    )
    .await;
    assert_eq!((status, body), (400, json!({"message": "Invalid role"})));
    // A role of the course's own account (Science) is valid.
    let (status, _) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &SAM.to_string()),
            ("enrollment[role_id]", &AUDITOR.to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn create_defaults_to_student_enrollment_and_answers_200_without_user() {
    let sim = start().await;
    let (status, body) = create(&sim, "20", &[("enrollment[user_id]", &SAM.to_string())]).await;
    assert_eq!(status, 200, "200, not 201");
    assert_eq!(body["type"], "StudentEnrollment");
    assert_eq!(body["role_id"], STUDENT_ROLE);
    assert!(body.get("user").is_none());
}

#[tokio::test]
async fn create_unknown_user_is_not_found() {
    let sim = start().await;
    let (status, body) = create(&sim, "20", &[("enrollment[user_id]", "sis_user_id:NOPE")]).await;
    assert_eq!(status, 404);
    assert_eq!(body.to_string(), NOT_FOUND_BODY);
}

#[tokio::test]
async fn create_section_must_be_an_active_section_of_the_course() {
    let sim = start().await;
    let sam = SAM.to_string();
    for section in [
        CS_1.to_string(),
        MATH_DELETED.to_string(),
        "sis_section_id:CS-1".to_string(),
    ] {
        let (status, _) = create(
            &sim,
            "20",
            &[
                ("enrollment[user_id]", &sam),
                ("enrollment[course_section_id]", &section),
            ],
        )
        .await;
        assert_eq!(status, 404, "section {section}");
    }
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &sam),
            ("enrollment[course_section_id]", "sis_section_id:MATH-101-B"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["course_section_id"], MATH_B);
}

#[tokio::test]
async fn create_without_section_lands_in_the_default_section_created_on_demand() {
    let sim = start().await;
    let (_, body) = create(&sim, "20", &[("enrollment[user_id]", &SAM.to_string())]).await;
    assert_eq!(body["course_section_id"], MATH_DEFAULT);
    // DRAFT has no section at all: one is created, flagged default.
    let (status, body) = create(&sim, "22", &[("enrollment[user_id]", &SAM.to_string())]).await;
    assert_eq!(status, 200);
    let section_id = body["course_section_id"].as_u64().expect("section id");
    let is_default = sim.with_store(|s| {
        s.section(section_id)
            .map(|sec| (sec.course_id, sec.default_section))
    });
    assert_eq!(is_default, Some((DRAFT, true)));
}

#[tokio::test]
async fn create_in_concluded_course_is_rejected() {
    let sim = start().await;
    let (status, body) = create(
        &sim,
        "sis_course_id:OLD",
        &[("enrollment[user_id]", &SAM.to_string())],
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "Can't add an enrollment to a concluded course."})
        )
    );
}

#[tokio::test]
async fn create_accepts_a_json_body() {
    let sim = start().await;
    let response = request(&sim, Method::POST, &format!("/courses/{MATH}/enrollments"))
        .json(&json!({"enrollment": {"user_id": SAM, "type": "StudentEnrollment", "enrollment_state": "active", "notify": false}}))
        .send()
        .await
        .expect("POST");
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["user_id"], SAM);
    assert_eq!(body["enrollment_state"], "active");
}

#[tokio::test]
async fn create_omitted_state_is_invited_in_a_published_course() {
    let sim = start().await;
    let (_, body) = create(&sim, "20", &[("enrollment[user_id]", &SAM.to_string())]).await;
    assert_eq!(body["enrollment_state"], "invited");
}

#[tokio::test]
async fn create_omitted_state_is_creation_pending_for_students_in_an_unpublished_course() {
    let sim = start().await;
    let sam = SAM.to_string();
    let (_, body) = create(&sim, "22", &[("enrollment[user_id]", &sam)]).await;
    assert_eq!(body["enrollment_state"], "creation_pending");
    let (_, body) = create(
        &sim,
        "22",
        &[
            ("enrollment[user_id]", &TESS.to_string()),
            ("enrollment[type]", "TeacherEnrollment"),
        ],
    )
    .await;
    assert_eq!(
        body["enrollment_state"], "invited",
        "teachers are never creation_pending"
    );
    let (_, body) = create(
        &sim,
        "22",
        &[
            ("enrollment[user_id]", &ADA.to_string()),
            ("enrollment[enrollment_state]", "active"),
        ],
    )
    .await;
    assert_eq!(
        body["enrollment_state"], "active",
        "an explicit active stays"
    );
}

#[tokio::test]
async fn create_same_user_section_role_revives_a_deleted_row_with_the_same_id() {
    let sim = start().await;
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", "sis_user_id:S11"),
            ("enrollment[type]", "TaEnrollment"),
            ("enrollment[enrollment_state]", "active"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], BOB_MATH_TA_DELETED);
    assert_eq!(body["enrollment_state"], "active");
    // Completed rows revive too.
    let (_, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", "sis_user_id:abc"),
            ("enrollment[enrollment_state]", "inactive"),
        ],
    )
    .await;
    assert_eq!(
        (body["id"].clone(), body["enrollment_state"].clone()),
        (json!(LOWER_MATH_COMPLETED), json!("inactive"))
    );
}

#[tokio::test]
async fn create_same_user_section_role_on_an_active_row_keeps_its_state_but_resets_limit_and_dates()
{
    let sim = start().await;
    sim.with_store(|s| {
        let row = s.enrollment_mut(ADA_MATH).expect("row");
        row.limit_privileges_to_course_section = true;
    });
    let (status, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &ADA.to_string()),
            ("enrollment[enrollment_state]", "inactive"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], ADA_MATH);
    assert_eq!(
        body["enrollment_state"], "active",
        "canvas-lms#1299: state is not changed"
    );
    assert_eq!(
        body["limit_privileges_to_course_section"], false,
        "omitted → false"
    );
    let (_, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &ADA.to_string()),
            ("enrollment[start_at]", "2030-01-02T03:04:05Z"),
        ],
    )
    .await;
    assert_eq!(body["start_at"], "2030-01-02T03:04:05Z");
}

#[tokio::test]
async fn create_different_role_id_in_same_section_makes_a_second_row() {
    let sim = start().await;
    let (_, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &ADA.to_string()),
            ("enrollment[role_id]", &AUDITOR.to_string()),
        ],
    )
    .await;
    let new_id = body["id"].as_u64().expect("id");
    assert!(![ADA_MATH, ADA_MATH_LAB].contains(&new_id));
    assert_eq!(body["course_section_id"], MATH_DEFAULT);
}

#[tokio::test]
async fn create_different_section_makes_another_row() {
    let sim = start().await;
    let (_, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &ADA.to_string()),
            ("enrollment[course_section_id]", &MATH_B.to_string()),
        ],
    )
    .await;
    assert_ne!(body["id"], ADA_MATH);
    assert_eq!(body["course_section_id"], MATH_B);
}

#[tokio::test]
async fn create_student_auto_enrolls_linked_observers_mirroring_state() {
    let sim = start().await;
    let (_, body) = create(
        &sim,
        "20",
        &[
            ("enrollment[user_id]", &SAM.to_string()),
            ("enrollment[course_section_id]", &MATH_B.to_string()),
        ],
    )
    .await;
    assert_eq!(body["enrollment_state"], "invited");
    let observer_rows: Vec<_> = sim.with_store(|s| {
        s.enrollments()
            .filter(|e| e.user_id == OLIVE && e.course_id == MATH && e.role_id == OBSERVER_ROLE)
            .map(|e| {
                (
                    e.associated_user_id,
                    e.course_section_id,
                    e.workflow_state.as_str(),
                )
            })
            .collect()
    });
    assert_eq!(
        observer_rows,
        vec![(Some(SAM), MATH_B, "active")],
        "invited becomes active for the observer"
    );
}

#[tokio::test]
async fn create_user_id_accepts_sis_login_id_case_insensitively() {
    let sim = start().await;
    let (status, body) = create(
        &sim,
        "21",
        &[("enrollment[user_id]", "sis_login_id:bob@example.edu")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["user_id"], BOB);
    let (status, body) = create(
        &sim,
        "21",
        &[("enrollment[user_id]", "sis_integration_id:INT-17")],
    )
    .await;
    assert_eq!((status, body["user_id"].clone()), (200, json!(NEW_USER)));
}

#[tokio::test]
async fn create_on_section_route_ignores_course_section_id() {
    let sim = start().await;
    let (status, body) = json(
        post_form(
            &sim,
            "/sections/sis_section_id:MATH-101-B/enrollments",
            &[
                ("enrollment[user_id]", &SAM.to_string()),
                ("enrollment[course_section_id]", &MATH_DEFAULT.to_string()),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["course_section_id"], MATH_B);
    assert_eq!(body["course_id"], MATH);
}

#[tokio::test]
async fn create_on_deleted_course_is_not_found() {
    let sim = start().await;
    let (status, _) = create(&sim, "24", &[("enrollment[user_id]", &SAM.to_string())]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn create_for_a_user_that_cannot_be_enrolled_is_not_found() {
    let sim = start().await;
    sim.with_store(|s| {
        let mut gone = canvas_sim::SeedUser::new(77, "Gone User");
        gone.workflow_state = Some("deleted".into());
        s.add_user(gone)
    })
    .expect("user");
    let (status, _) = create(&sim, "20", &[("enrollment[user_id]", "77")]).await;
    assert_eq!(status, 404);
}
