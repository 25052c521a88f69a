//! Facts §0 and §7: authentication and error bodies.

use super::support::*;
use serde_json::json;

#[tokio::test]
async fn invalid_token_is_401_invalid_access_token_with_www_authenticate() {
    let sim = start().await;
    let response = client()
        .get(api(&sim, "/courses/20"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"canvas-lms\"")
    );
    let (_, body) = json(response).await;
    assert_eq!(
        body,
        json!({"errors": [{"message": "Invalid access token."}]})
    );
}

#[tokio::test]
async fn missing_credentials_is_401_user_authorization_required() {
    let sim = start().await;
    let response = client()
        .get(api(&sim, "/courses/20"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("www-authenticate").is_some());
    let (_, body) = json(response).await;
    assert_eq!(
        body,
        json!({"status": "unauthenticated", "errors": [{"message": "user authorization required"}]})
    );
}

#[tokio::test]
async fn access_token_query_parameter_is_accepted() {
    let sim = start().await;
    let url = api(
        &sim,
        &format!("/courses/20?access_token={}", canvas_sim::DEFAULT_TOKEN),
    );
    assert_eq!(client().get(url).send().await.expect("GET").status(), 200);
}

#[tokio::test]
async fn token_rotation_accepts_only_the_new_token() {
    let sim = start().await;
    sim.set_token("rotated");
    assert_eq!(get(&sim, "/courses/20").await.status(), 401);
    let response = client()
        .get(api(&sim, "/courses/20"))
        .bearer_auth("rotated")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn not_found_body_is_exact_for_unknown_routes_and_objects() {
    let sim = start().await;
    for path in ["/courses/999", "/no/such/route", "/users/999"] {
        let response = get(&sim, path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(response.text().await.expect("body"), NOT_FOUND_BODY);
    }
}

#[tokio::test]
async fn requests_are_recorded_with_route_templates_in_arrival_order() {
    let sim = start().await;
    get(
        &sim,
        "/courses/sis_course_id:MATH-101/enrollments?per_page=1",
    )
    .await;
    post_form(
        &sim,
        "/courses/20/enrollments",
        &[("enrollment[user_id]", "16")],
    )
    .await;
    let response = client()
        .get(api(&sim, "/users/self"))
        .header("user-agent", "probe/1")
        .bearer_auth("bad")
        .send()
        .await;
    assert!(response.is_ok());
    let records = sim.requests();
    let summary: Vec<(&str, &str, u16)> = records
        .iter()
        .map(|r| (r.method.as_str(), r.route.as_str(), r.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/api/v1/courses/:id/enrollments", 200),
            ("POST", "/api/v1/courses/:id/enrollments", 200),
            ("GET", "/api/v1/users/self", 401),
        ]
    );
    assert_eq!(
        records[0].path_and_query,
        "/api/v1/courses/sis_course_id:MATH-101/enrollments?per_page=1"
    );
    assert_eq!(records[2].user_agent.as_deref(), Some("probe/1"));
    assert!(records.iter().all(|r| r.finished >= r.started));
    assert_eq!(sim.count("POST", "/api/v1/courses/:id/enrollments"), 1);
    sim.reset_requests();
    assert!(sim.requests().is_empty());
}
