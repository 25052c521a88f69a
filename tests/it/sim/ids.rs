//! Facts §2 "SIS ids".

use super::support::*;

#[tokio::test]
async fn sis_course_id_names_a_course() {
    let sim = start().await;
    let (status, body) = get_json(&sim, "/courses/sis_course_id:MATH-101").await;
    assert_eq!((status, body["id"].clone()), (200, serde_json::json!(MATH)));
}

#[tokio::test]
async fn sis_ids_are_utf8_and_percent_encoded() {
    let sim = start().await;
    let (status, body) = get_json(
        &sim,
        "/courses/sis_course_id:CS%2F101%2E11%C3%A9/enrollments",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), vec![NO_LOGIN_CS, ADA_CS]);
}

#[tokio::test]
async fn hex_form_names_the_utf8_bytes() {
    let sim = start().await;
    let hex = hex::encode("CS/101.11é".as_bytes());
    let (status, body) = get_json(&sim, &format!("/courses/hex:sis_course_id:{hex}")).await;
    assert_eq!((status, body["id"].clone()), (200, serde_json::json!(CS)));
    let (status, _) = get_json(&sim, "/courses/hex:sis_course_id:abc").await;
    assert_eq!(status, 404, "odd-length hex is not found");
}

#[tokio::test]
async fn sis_user_id_is_case_sensitive() {
    let sim = start().await;
    let (_, lower) = get_json(&sim, "/users/sis_user_id:abc").await;
    let (_, upper) = get_json(&sim, "/users/sis_user_id:ABC").await;
    assert_eq!(lower["id"], LOWER_ABC);
    assert_eq!(upper["id"], UPPER_ABC);
    let (status, _) = get_json(&sim, "/users/sis_user_id:s10").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn sis_login_id_is_case_insensitive() {
    let sim = start().await;
    let (status, body) = get_json(&sim, "/users/sis_login_id:Ada@Example.EDU").await;
    assert_eq!((status, body["id"].clone()), (200, serde_json::json!(ADA)));
}

#[tokio::test]
async fn sis_integration_id_names_a_user() {
    let sim = start().await;
    let (status, body) = get_json(&sim, "/users/sis_integration_id:INT-17").await;
    assert_eq!(
        (status, body["id"].clone()),
        (200, serde_json::json!(NEW_USER))
    );
}

#[tokio::test]
async fn surrounding_whitespace_is_stripped() {
    let sim = start().await;
    let (status, body) = get_json(&sim, &format!("/courses/%20{MATH}%20")).await;
    assert_eq!((status, body["id"].clone()), (200, serde_json::json!(MATH)));
}

#[tokio::test]
async fn any_other_id_form_is_not_found_with_the_exact_body() {
    let sim = start().await;
    for id in [
        "MATH-101",
        "course_code:MATH",
        "sis_course_id:nope",
        "12345678901234567890",
    ] {
        let response = get(&sim, &format!("/courses/{id}")).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(response.text().await.expect("body"), NOT_FOUND_BODY);
    }
}

#[tokio::test]
async fn section_and_account_sis_ids() {
    let sim = start().await;
    let (status, _) = get_json(&sim, "/sections/sis_section_id:CS-1/enrollments").await;
    assert_eq!(status, 200);
    let (status, body) = get_json(&sim, "/accounts/sis_account_id:SCI").await;
    assert_eq!(
        (status, body["id"].clone()),
        (200, serde_json::json!(SCIENCE))
    );
}
