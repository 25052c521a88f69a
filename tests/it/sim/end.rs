//! Facts §1 "Conclude / delete / deactivate" and "Reactivate".

use super::support::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn delete_tasks_set_completed_deleted_and_inactive() {
    let sim = start().await;
    for (id, task, state) in [
        (ADA_MATH, "conclude", "completed"),
        (BOB_MATH_B, "delete", "deleted"),
        (TESS_MATH, "inactivate", "inactive"),
        (ADA_MATH_LAB, "deactivate", "inactive"),
    ] {
        let (status, body) = json(
            delete(
                &sim,
                &format!("/courses/{MATH}/enrollments/{id}?task={task}"),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{task}");
        assert_eq!(body["enrollment_state"], state, "{task}");
        assert!(body.get("user").is_none());
    }
}

#[tokio::test]
async fn delete_without_task_concludes() {
    let sim = start().await;
    let (status, body) =
        json(delete(&sim, &format!("/courses/{MATH}/enrollments/{ADA_MATH}")).await).await;
    assert_eq!(
        (status, body["enrollment_state"].clone()),
        (200, json!("completed"))
    );
}

#[tokio::test]
async fn delete_lookup_excludes_deleted_rows_so_deleting_twice_is_not_found() {
    let sim = start().await;
    let path = format!("/courses/{MATH}/enrollments/{ADA_MATH}?task=delete");
    assert_eq!(delete(&sim, &path).await.status(), 200);
    let (status, body) = json(delete(&sim, &path).await).await;
    assert_eq!(status, 404);
    assert_eq!(body.to_string(), NOT_FOUND_BODY);
}

#[tokio::test]
async fn delete_enrollment_of_another_course_is_not_found() {
    let sim = start().await;
    let (status, _) = json(
        delete(
            &sim,
            &format!("/courses/{CS}/enrollments/{ADA_MATH}?task=delete"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    let still = sim.with_store(|s| s.enrollment(ADA_MATH).map(|e| e.workflow_state.as_str()));
    assert_eq!(still, Some("active"));
}

#[tokio::test]
async fn delete_accepts_sis_course_id_for_the_course() {
    let sim = start().await;
    let (status, _) = json(
        delete(
            &sim,
            &format!("/courses/sis_course_id:MATH-101/enrollments/{ADA_MATH}?task=inactivate"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reactivate_only_from_inactive() {
    let sim = start().await;
    let path = format!("/courses/{MATH}/enrollments/{UPPER_MATH_INACTIVE}/reactivate");
    let (status, body) = json(request(&sim, Method::PUT, &path).send().await.expect("PUT")).await;
    assert_eq!(
        (status, body["enrollment_state"].clone()),
        (200, json!("active"))
    );
    let (status, body) = json(request(&sim, Method::PUT, &path).send().await.expect("PUT")).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "enrollment not inactive"}))
    );
    let completed = format!("/courses/{MATH}/enrollments/{LOWER_MATH_COMPLETED}/reactivate");
    let (status, _) = json(
        request(&sim, Method::PUT, &completed)
            .send()
            .await
            .expect("PUT"),
    )
    .await;
    assert_eq!(status, 400);
    let deleted = format!("/courses/{MATH}/enrollments/{BOB_MATH_TA_DELETED}/reactivate");
    let (status, _) = json(
        request(&sim, Method::PUT, &deleted)
            .send()
            .await
            .expect("PUT"),
    )
    .await;
    assert_eq!(status, 404, "deleted rows are not found");
}

#[tokio::test]
async fn there_is_no_update_action_for_an_enrollment() {
    let sim = start().await;
    let response = request(
        &sim,
        Method::PUT,
        &format!("/courses/{MATH}/enrollments/{ADA_MATH}"),
    )
    .form(&[("enrollment[role_id]", "4")])
    .send()
    .await
    .expect("PUT");
    assert_eq!(response.status(), 404);
}
