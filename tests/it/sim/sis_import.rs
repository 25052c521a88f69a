//! Facts §8 "SIS Imports" (enrollments.csv).

use super::support::*;
use canvas_sim::SimHandle;
use reqwest::Method;
use serde_json::{Value, json};

async fn upload(sim: &SimHandle, query: &str, csv: &str) -> (u16, Value) {
    let response = request(
        sim,
        Method::POST,
        &format!("/accounts/1/sis_imports?extension=csv{query}"),
    )
    .header("content-type", "text/csv")
    .body(csv.to_string())
    .send()
    .await
    .expect("POST");
    json(response).await
}

/// Polls until the import ends; returns the final JSON and the states seen.
async fn poll(sim: &SimHandle, id: u64) -> (Value, Vec<String>) {
    let mut seen = Vec::new();
    loop {
        let (_, body) = get_json(sim, &format!("/accounts/1/sis_imports/{id}")).await;
        let state = body["workflow_state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        seen.push(state.clone());
        if !matches!(state.as_str(), "created" | "importing" | "initializing") {
            return (body, seen);
        }
        assert!(seen.len() < 10, "import finishes: {seen:?}");
    }
}

async fn import(sim: &SimHandle, query: &str, csv: &str) -> Value {
    let (status, started) = upload(sim, query, csv).await;
    assert_eq!(status, 200, "{started}");
    poll(sim, started["id"].as_u64().expect("import id"))
        .await
        .0
}

fn states_of(sim: &SimHandle, user: u64, course: u64) -> Vec<(u64, u64, String)> {
    sim.with_store(|s| {
        s.enrollments()
            .filter(|e| e.user_id == user && e.course_id == course)
            .map(|e| (e.id, e.role_id, e.workflow_state.as_str().to_string()))
            .collect()
    })
}

#[tokio::test]
async fn sis_import_raw_csv_is_created_then_importing_then_imported() {
    let sim = start().await;
    let (status, started) = upload(
        &sim,
        "",
        "course_id,user_id,role,section_id,status\nMATH-101,S16,student,,active\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(started["workflow_state"], "created");
    assert_eq!(started["data"]["import_type"], "instructure_csv");
    let (done, seen) = poll(&sim, started["id"].as_u64().expect("id")).await;
    assert_eq!(seen, ["importing", "imported"]);
    assert_eq!(done["progress"], 100);
    assert_eq!(done["data"]["counts"]["enrollments"], 1);
    let row = sim.with_store(|s| {
        s.enrollments()
            .find(|e| e.user_id == SAM && e.course_id == MATH)
            .map(|e| {
                (
                    e.course_section_id,
                    e.workflow_state.as_str().to_string(),
                    e.created_by_sis,
                    e.sis_batch_id,
                )
            })
    });
    assert_eq!(
        row,
        Some((MATH_DEFAULT, "active".into(), true, started["id"].as_u64()))
    );
    // Linked observers are enrolled as with the API.
    assert_eq!(
        states_of(&sim, OLIVE, MATH)
            .iter()
            .filter(|(_, role, _)| *role == OBSERVER_ROLE)
            .count(),
        1
    );
}

#[tokio::test]
async fn sis_import_multipart_attachment() {
    let sim = start().await;
    let form = reqwest::multipart::Form::new()
        .text("import_type", "instructure_csv")
        .part(
            "attachment",
            reqwest::multipart::Part::bytes(
                b"course_id,user_id,role,status\nCS/101.11\xc3\xa9,S16,teacher,active\n".to_vec(),
            )
            .file_name("enrollments.csv")
            .mime_str("text/csv")
            .expect("mime"),
        );
    let response = request(&sim, Method::POST, "/accounts/self/sis_imports")
        .multipart(form)
        .send()
        .await
        .expect("POST");
    let (status, started) = json(response).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["csv_attachments"][0]["filename"], "enrollments.csv");
    let (done, _) = poll(&sim, started["id"].as_u64().expect("id")).await;
    assert_eq!(done["workflow_state"], "imported");
    assert_eq!(
        states_of(&sim, SAM, CS),
        vec![(states_of(&sim, SAM, CS)[0].0, 4, "active".to_string())]
    );
}

#[tokio::test]
async fn sis_import_unknown_users_and_roles_are_processing_errors() {
    let sim = start().await;
    let done = import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,NOPE,student,active\nMATH-101,S16,wizard,active\nMATH-101,S17,student,active\n",
    )
    .await;
    assert_eq!(done["workflow_state"], "imported_with_messages");
    assert_eq!(done["data"]["counts"]["enrollments"], 1);
    assert_eq!(
        done["processing_errors"],
        json!([
            [
                "sis_import.csv",
                "User not found for enrollment (User ID: NOPE, Course ID: MATH-101, Section ID: , Role: student)"
            ],
            [
                "sis_import.csv",
                "Improper role \"wizard\" for an enrollment"
            ]
        ])
    );
}

#[tokio::test]
async fn sis_import_active_is_active_never_invited() {
    let sim = start().await;
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nDRAFT,S16,student,active\n",
    )
    .await;
    assert_eq!(
        states_of(&sim, SAM, DRAFT).first().map(|r| r.2.clone()),
        Some("active".into())
    );
}

#[tokio::test]
async fn sis_import_role_by_exact_name_then_case_insensitive_short_name() {
    let sim = start().await;
    import(&sim, "", "course_id,user_id,role,status\nMATH-101,S16,Lab Assistant,active\nMATH-101,S17,TEACHER,active\n").await;
    assert_eq!(
        states_of(&sim, SAM, MATH).first().map(|r| r.1),
        Some(LAB_ASSISTANT)
    );
    assert!(
        states_of(&sim, NEW_USER, MATH)
            .iter()
            .any(|r| r.1 == 4 && r.2 == "active")
    );
}

#[tokio::test]
async fn sis_import_row_identity_includes_role_so_a_role_change_is_a_new_row() {
    let sim = start().await;
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,S10,teacher,active\n",
    )
    .await;
    let rows = states_of(&sim, ADA, MATH);
    assert!(
        rows.contains(&(ADA_MATH, 3, "active".into())),
        "the student row is untouched: {rows:?}"
    );
    assert!(rows.iter().any(|r| r.1 == 4 && r.0 != ADA_MATH));
}

#[tokio::test]
async fn sis_import_status_sets_the_state_of_an_existing_row() {
    let sim = start().await;
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,S10,student,inactive\n",
    )
    .await;
    assert!(states_of(&sim, ADA, MATH).contains(&(ADA_MATH, 3, "inactive".into())));
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,S10,student,completed\n",
    )
    .await;
    assert!(states_of(&sim, ADA, MATH).contains(&(ADA_MATH, 3, "completed".into())));
}

#[tokio::test]
async fn sis_import_deleted_last_completed_completes_only_the_last_same_role_enrollment() {
    let sim = start().await;
    // Ada has one student enrollment in MATH: it is completed, not deleted.
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,S10,student,deleted_last_completed\n",
    )
    .await;
    assert!(states_of(&sim, ADA, MATH).contains(&(ADA_MATH, 3, "completed".into())));
    // Bob has a student row in section B; a second student row in the default section is deleted.
    import(
        &sim,
        "",
        "course_id,user_id,role,section_id,status\nMATH-101,S11,student,,active\n",
    )
    .await;
    import(
        &sim,
        "",
        "course_id,user_id,role,section_id,status\nMATH-101,S11,student,,deleted_last_completed\n",
    )
    .await;
    let bob = states_of(&sim, BOB, MATH);
    assert!(
        bob.iter()
            .any(|r| r.0 != BOB_MATH_B && r.1 == 3 && r.2 == "deleted"),
        "{bob:?}"
    );
}

#[tokio::test]
async fn sis_imports_only_on_root_accounts() {
    let sim = start().await;
    let response = request(
        &sim,
        Method::POST,
        &format!("/accounts/{SCIENCE}/sis_imports?extension=csv"),
    )
    .header("content-type", "text/csv")
    .body("course_id,user_id,role,status\n")
    .send()
    .await
    .expect("POST");
    let (status, body) = json(response).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"errors": ["SIS imports can only be executed on root accounts"]})
        )
    );
}

#[tokio::test]
async fn sis_import_raw_body_must_be_utf8() {
    let sim = start().await;
    let response = request(&sim, Method::POST, "/accounts/1/sis_imports?extension=csv")
        .header("content-type", "text/csv; charset=iso-8859-1")
        .body("course_id,user_id,role,status\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn sis_import_multipart_without_attachment_is_400() {
    let sim = start().await;
    let form = reqwest::multipart::Form::new().text("import_type", "instructure_csv");
    let response = request(&sim, Method::POST, "/accounts/1/sis_imports")
        .multipart(form)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn sis_import_batch_mode_with_unknown_term_is_400() {
    let sim = start().await;
    let (status, body) = upload(
        &sim,
        "&batch_mode=true&batch_mode_term_id=99",
        "course_id,user_id,role,status\n",
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "Batch mode specified, but the given batch_mode_term_id cannot be found."})
        )
    );
}

#[tokio::test]
async fn sis_import_batch_mode_drops_unlisted_sis_enrollments_and_keeps_api_ones() {
    let sim = start().await;
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,S16,student,active\nMATH-101,S17,teacher,active\n",
    )
    .await;
    let done = import(
        &sim,
        "&batch_mode=true&batch_mode_term_id=1",
        "course_id,user_id,role,status\nMATH-101,S16,student,active\n",
    )
    .await;
    assert_eq!(done["data"]["counts"]["batch_enrollments_deleted"], 1);
    assert!(
        states_of(&sim, NEW_USER, MATH)
            .iter()
            .any(|r| r.1 == 4 && r.2 == "deleted")
    );
    assert!(
        states_of(&sim, SAM, MATH)
            .iter()
            .any(|r| r.1 == 3 && r.2 == "active")
    );
    // API-created rows survive batch mode.
    assert!(states_of(&sim, ADA, MATH).contains(&(ADA_MATH, 3, "active".into())));
}

#[tokio::test]
async fn sis_import_diffing_drops_vanished_rows_and_cannot_see_outside_changes() {
    let sim = start().await;
    let first = import(
        &sim,
        "&diffing_data_set_identifier=district",
        "course_id,user_id,role,status\nMATH-101,S16,student,active\nMATH-101,S17,teacher,active\n",
    )
    .await;
    // An admin deletes Sam's row through the API, outside the data set.
    let sam_row = states_of(&sim, SAM, MATH)
        .iter()
        .find(|r| r.1 == 3)
        .map(|r| r.0)
        .expect("sam row");
    assert_eq!(
        delete(
            &sim,
            &format!("/courses/{MATH}/enrollments/{sam_row}?task=delete")
        )
        .await
        .status(),
        200
    );
    let second = import(
        &sim,
        "&diffing_data_set_identifier=district&diffing_drop_status=completed",
        "course_id,user_id,role,status\nMATH-101,S16,student,active\n",
    )
    .await;
    assert_eq!(second["diffed_against_import_id"], first["id"]);
    assert!(
        states_of(&sim, SAM, MATH).contains(&(sam_row, 3, "deleted".into())),
        "unchanged row not re-applied"
    );
    assert!(
        states_of(&sim, NEW_USER, MATH)
            .iter()
            .any(|r| r.1 == 4 && r.2 == "completed"),
        "vanished row dropped"
    );
}

#[tokio::test]
async fn sis_import_invalid_diffing_drop_status_is_400() {
    let sim = start().await;
    let (status, _) = upload(
        &sim,
        "&diffing_data_set_identifier=x&diffing_drop_status=gone",
        "course_id,user_id,role,status\n",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sis_import_of_an_unrecognized_csv_fails_with_messages() {
    let sim = start().await;
    let done = import(&sim, "", "user_id,login_id,status\nS1,x,active\n").await;
    assert_eq!(done["workflow_state"], "failed_with_messages");
    assert_eq!(
        done["processing_errors"][0][1],
        "Couldn't find Canvas CSV import headers"
    );
}

#[tokio::test]
async fn sis_import_list_is_wrapped_in_sis_imports() {
    let sim = start().await;
    import(
        &sim,
        "",
        "course_id,user_id,role,status\nMATH-101,S16,student,active\n",
    )
    .await;
    let (status, body) = get_json(&sim, "/accounts/1/sis_imports").await;
    assert_eq!(status, 200);
    assert_eq!(body["sis_imports"].as_array().map(Vec::len), Some(1));
    sim.with_store(|s| s.finish_jobs());
}
