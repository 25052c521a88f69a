//! openedx-sim over real HTTP (reqwest): the token flow, pagination, batch writes and their per-key statuses, the
//! 413 after validation, case-insensitive keys, waiting enrollments and the lagging read replica
//! (openedx-api-facts.md §1–§7).

use std::time::Duration;

use crate::openedx::{
    COURSE_ENROLLMENTS_ROUTE, OpenEdxHandle, OpenEdxOptions, OpenEdxSeed,
    PROGRAM_ENROLLMENTS_ROUTE, ReplicaLag, SeedClient, SeedLmsUser, SeedProgram,
    SeedProgramEnrollment, TOKEN_ROUTE, spawn,
};
use crate::{FaultAction, FaultOptions, FaultRule};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PROGRAM: &str = "00000000-1111-2222-3333-444444444444";
const CURRICULUM: &str = "aaaaaaaa-1111-2222-3333-444444444444";
const RUN: &str = "course-v1:MITx+6.002x+2026";
const LETTERS_PROGRAM: &str = "abcdef00-1111-2222-3333-444444444444";

fn seed() -> OpenEdxSeed {
    OpenEdxSeed::default()
        .client(SeedClient::new("rostersync", "s3cret", "svc"))
        .client(SeedClient::new("learner-app", "x", "plain"))
        .client(SeedClient::new("partner", "y", "svc").restricted())
        .user(SeedLmsUser::new("svc").staff())
        .user(SeedLmsUser::new("plain"))
        .user(SeedLmsUser::new("ada").with_social_uid("mit-idp:ADA-1"))
        .program(SeedProgram::new(PROGRAM, "MITx").curriculum(CURRICULUM, &[RUN]))
        .program(SeedProgram::new(LETTERS_PROGRAM, "MITx"))
}

async fn sim_with(options: OpenEdxOptions) -> OpenEdxHandle {
    spawn(options).await.expect("openedx-sim starts")
}

async fn sim() -> OpenEdxHandle {
    sim_with(OpenEdxOptions {
        seed: seed(),
        ..OpenEdxOptions::default()
    })
    .await
}

async fn token(sim: &OpenEdxHandle, client: &str, secret: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/oauth2/access_token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("token_type", "jwt"),
        ])
        .send()
        .await
        .expect("token request")
}

async fn jwt(sim: &OpenEdxHandle) -> String {
    let body: Value = token(sim, "rostersync", "s3cret")
        .await
        .json()
        .await
        .expect("json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn programs_url(sim: &OpenEdxHandle) -> String {
    format!(
        "{}/api/program_enrollments/v1/programs/{PROGRAM}/enrollments/",
        sim.base_url()
    )
}

fn course_url(sim: &OpenEdxHandle) -> String {
    format!(
        "{}/api/program_enrollments/v1/programs/{PROGRAM}/courses/{RUN}/enrollments/",
        sim.base_url()
    )
}

async fn send(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header("Authorization", format!("JWT {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn program_rows(keys: impl IntoIterator<Item = String>, status: &str) -> Value {
    Value::Array(
        keys.into_iter()
            .map(|k| json!({"student_key": k, "status": status, "curriculum_uuid": CURRICULUM}))
            .collect(),
    )
}

#[tokio::test]
async fn token_flow_gives_a_jwt_and_bad_or_expired_tokens_get_401() {
    let sim = sim().await;
    let response = token(&sim, "rostersync", "s3cret").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "JWT");
    assert_eq!(body["expires_in"], 3600);
    let jwt = body["access_token"].as_str().expect("token").to_string();
    assert_eq!(jwt.split('.').count(), 3, "JWT-shaped");

    let (status, _) = send(reqwest::Method::GET, &programs_url(&sim), &jwt, None).await;
    assert_eq!(status, StatusCode::OK);

    // A wrong secret: 401 invalid_client.
    let response = token(&sim, "rostersync", "wrong").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "invalid_client"})
    );

    // No credentials, an unknown JWT, a JWT sent as Bearer.
    let anonymous = reqwest::get(programs_url(&sim)).await.expect("get");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().get("www-authenticate").is_none());
    assert_eq!(
        anonymous.json::<Value>().await.expect("json"),
        json!({"developer_message": "Authentication credentials were not provided."})
    );
    let (status, body) = send(reqwest::Method::GET, &programs_url(&sim), "a.b.c", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"developer_message": "Error decoding token."}));
    let bearer = reqwest::Client::new()
        .get(programs_url(&sim))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("get");
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bearer.json::<Value>().await.expect("json")["developer_message"]["error_code"],
        "token_nonexistent"
    );

    // An hour later the JWT has expired.
    sim.advance_clock(Duration::from_secs(3602));
    let (status, body) = send(reqwest::Method::GET, &programs_url(&sim), &jwt, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"developer_message": "Token has expired."}));
    assert_eq!(sim.count("POST", TOKEN_ROUTE), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restricted_application_or_a_non_staff_owner_gets_403() {
    let sim = sim().await;
    for (client, secret) in [("learner-app", "x"), ("partner", "y")] {
        let body: Value = token(&sim, client, secret)
            .await
            .json()
            .await
            .expect("json");
        let token = body["access_token"].as_str().expect("token");
        let (status, body) = send(reqwest::Method::GET, &programs_url(&sim), token, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{client}");
        assert_eq!(
            body,
            json!({"developer_message": "You do not have permission to perform this action."})
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_paginate_with_next_until_null() {
    let sim = sim().await;
    let token = jwt(&sim).await;
    for batch in 0..3 {
        let keys = (0..25).map(|i| format!("learner-{:03}", batch * 25 + i));
        let (status, _) = send(
            reqwest::Method::POST,
            &programs_url(&sim),
            &token,
            Some(program_rows(keys, "pending")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut url = format!("{}?page_size=20", programs_url(&sim));
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = send(reqwest::Method::GET, &url, &token, None).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        if pages > 1 {
            assert!(page["previous"].is_string());
        }
        for row in page["results"].as_array().expect("results") {
            assert_eq!(row["account_exists"], false);
            assert_eq!(row["username"], "");
            seen.push(row["student_key"].as_str().expect("key").to_string());
        }
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.contains("page_size=20") && next.contains("cursor="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 75);
    let expected: Vec<String> = (0..75).map(|i| format!("learner-{i:03}")).collect();
    assert_eq!(seen, expected, "ordered by id, each once");
    let (status, body) = send(
        reqwest::Method::GET,
        &format!("{}?cursor=%%%", programs_url(&sim)),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"developer_message": "Invalid cursor"}));
    assert_eq!(sim.count("GET", PROGRAM_ENROLLMENTS_ROUTE), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_put_of_25_keys_answers_each_key_and_26_keys_are_413_after_validation() {
    let sim = sim().await;
    let token = jwt(&sim).await;
    let keys: Vec<String> = (0..25).map(|i| format!("k{i}")).collect();
    let (status, body) = send(
        reqwest::Method::PUT,
        &programs_url(&sim),
        &token,
        Some(program_rows(keys.clone(), "enrolled")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let map = body.as_object().expect("a flat per-key map");
    assert_eq!(map.len(), 25);
    assert!(keys.iter().all(|k| map[k] == "enrolled"));

    let many: Vec<String> = (0..26).map(|i| format!("k{i}")).collect();
    let (status, body) = send(
        reqwest::Method::PUT,
        &programs_url(&sim),
        &token,
        Some(program_rows(many.clone(), "ended")),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!("25 enrollments requested, but limit is 26."));
    assert!(
        sim.with_store(|s| s
            .program_enrollment(PROGRAM, "k0")
            .map(|e| e.status.clone()))
            == Some("enrolled".to_string()),
        "nothing written"
    );

    // 26 items with an invalid one: the 400 comes first.
    let mut rows = program_rows(many, "ended");
    rows[3] = json!({"status": "ended", "curriculum_uuid": CURRICULUM});
    let (status, body) = send(
        reqwest::Method::PUT,
        &programs_url(&sim),
        &token,
        Some(rows),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["developer_message"][3],
        json!({"student_key": ["This field is required."]})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn mixed_results_are_207_and_all_errors_422() {
    let sim = sim().await;
    let token = jwt(&sim).await;
    let url = programs_url(&sim);
    send(
        reqwest::Method::POST,
        &url,
        &token,
        Some(program_rows(["user-1".into(), "user-3".into()], "pending")),
    )
    .await;
    let (status, body) = send(
        reqwest::Method::PATCH,
        &url,
        &token,
        Some(json!([
            {"student_key": "user-1", "status": "new"},
            {"student_key": "user-3", "status": "canceled"},
            {"student_key": "user-who-is-not-in-program", "status": "enrolled"}
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        body,
        json!({"user-1": "invalid-status", "user-3": "canceled", "user-who-is-not-in-program": "not-in-program"})
    );
    let (status, body) = send(
        reqwest::Method::POST,
        &url,
        &token,
        Some(program_rows(["001".into(), "001".into()], "enrolled")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"001": "duplicated"}));

    // Course writes: one learner in the program, one not.
    let (status, body) = send(
        reqwest::Method::PUT,
        &course_url(&sim),
        &token,
        Some(
            json!([{"student_key": "user-1", "status": "active", "course_staff": true},
                    {"student_key": "learner-2", "status": "active"}]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        body,
        json!({"user-1": "active", "learner-2": "not-in-program"})
    );
    let (status, page) = send(reqwest::Method::GET, &course_url(&sim), &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["results"],
        json!([{"student_key": "user-1", "status": "active", "account_exists": false,
                "curriculum_uuid": CURRICULUM, "course_staff": true}])
    );
    assert_eq!(sim.count("PUT", COURSE_ENROLLMENTS_ROUTE), 1);

    // 404s with error codes.
    let unknown = url.replace("00000000-1111", "99999999-1111");
    let (status, body) = send(reqwest::Method::GET, &unknown, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], "program_does_not_exist");
    let lowercase = format!(
        "{}/api/program_enrollments/v1/programs/{LETTERS_PROGRAM}/enrollments/",
        sim.base_url()
    );
    let (status, _) = send(reqwest::Method::GET, &lowercase, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let uppercase = lowercase.replace(LETTERS_PROGRAM, &LETTERS_PROGRAM.to_uppercase());
    let (status, body) = send(reqwest::Method::GET, &uppercase, &token, None).await;
    assert_eq!(
        (status, &body["error_code"]),
        (StatusCode::NOT_FOUND, &json!("program_does_not_exist")),
        "an uppercase UUID is not in the catalog cache"
    );
    let other_run = course_url(&sim).replace(RUN, "course-v1:MITx+Other+2026");
    let (status, body) = send(reqwest::Method::GET, &other_run, &token, None).await;
    assert_eq!(
        (status, &body["error_code"]),
        (StatusCode::NOT_FOUND, &json!("course_does_not_exist"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn keys_are_case_insensitive_and_answers_echo_the_request_casing() {
    let sim = sim().await;
    let token = jwt(&sim).await;
    let url = programs_url(&sim);
    send(
        reqwest::Method::POST,
        &url,
        &token,
        Some(program_rows(["learner-1".into()], "pending")),
    )
    .await;
    let (status, body) = send(
        reqwest::Method::PATCH,
        &url,
        &token,
        Some(json!([{"student_key": "leaRNER-1", "status": "enrolled"}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"leaRNER-1": "enrolled"}));
    let (_, page) = send(reqwest::Method::GET, &url, &token, None).await;
    let rows = page["results"].as_array().expect("results");
    assert_eq!(rows.len(), 1, "the same row");
    assert_eq!(
        rows[0]["student_key"], "learner-1",
        "the first casing is kept"
    );
    assert_eq!(rows[0]["status"], "enrolled");
    let (status, body) = send(
        reqwest::Method::POST,
        &url,
        &token,
        Some(program_rows(["LEARNER-1".into()], "enrolled")),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"LEARNER-1": "conflict"})
        )
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn waiting_enrollments_have_no_user_link_on_sso_and_expire_after_60_days() {
    let sim = sim().await;
    let token = jwt(&sim).await;
    let url = programs_url(&sim);
    let (status, _) = send(
        reqwest::Method::PUT,
        &url,
        &token,
        Some(program_rows(
            ["ADA-1".into(), "bob-2".into(), "cy-3".into()],
            "enrolled",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = send(reqwest::Method::GET, &url, &token, None).await;
    let by_key = |page: &Value, key: &str| {
        page["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["student_key"] == key)
            .cloned()
    };
    let ada = by_key(&page, "ADA-1").expect("ada");
    assert_eq!(
        (ada["account_exists"].clone(), ada["username"].clone()),
        (json!(true), json!("ada"))
    );
    let bob = by_key(&page, "bob-2").expect("bob");
    assert_eq!(
        (
            bob["account_exists"].clone(),
            bob["username"].clone(),
            bob["email"].clone()
        ),
        (json!(false), json!(""), json!(""))
    );

    // bob signs in through SSO: his waiting enrollment is linked.
    sim.with_store(|s| {
        s.add_user(SeedLmsUser::new("bob"));
        assert_eq!(s.link_social_auth("bob", "mit-idp:BOB-2"), 1);
    });
    // 59 days on, cy-3 is kept alive by a PATCH; 2 days later the expiry deletes only what was not.
    sim.advance_clock(Duration::from_secs(59 * 86_400));
    let token = jwt(&sim).await;
    let (status, _) = send(
        reqwest::Method::PATCH,
        &url,
        &token,
        Some(json!([{"student_key": "cy-3", "status": "enrolled"}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    sim.advance_clock(Duration::from_secs(2 * 86_400));
    let token = jwt(&sim).await;
    let (_, page) = send(reqwest::Method::GET, &url, &token, None).await;
    assert_eq!(
        by_key(&page, "bob-2").map(|r| r["username"].clone()),
        Some(json!("bob"))
    );
    assert!(by_key(&page, "cy-3").is_some(), "kept alive");
    assert!(by_key(&page, "ADA-1").is_some(), "linked");

    // A seeded waiting enrollment last modified 61 days ago is gone.
    let sim2 = sim_with(OpenEdxOptions {
        seed: seed().enrollment(SeedProgramEnrollment {
            modified: Some(chrono::Utc::now() - chrono::Duration::days(61)),
            ..SeedProgramEnrollment::new("old", PROGRAM, CURRICULUM, "pending")
        }),
        ..OpenEdxOptions::default()
    })
    .await;
    let token2 = jwt(&sim2).await;
    let (_, page) = send(reqwest::Method::GET, &programs_url(&sim2), &token2, None).await;
    assert_eq!(page["results"], json!([]));
    sim.shutdown().await;
    sim2.shutdown().await;
}

#[tokio::test]
async fn the_read_replica_lags_a_write_for_n_reads_or_n_ms() {
    let sim = sim_with(OpenEdxOptions {
        seed: seed(),
        replica_lag: ReplicaLag::reads(2),
        ..OpenEdxOptions::default()
    })
    .await;
    let token = jwt(&sim).await;
    let url = programs_url(&sim);
    send(
        reqwest::Method::PUT,
        &url,
        &token,
        Some(program_rows(["late".into()], "pending")),
    )
    .await;
    let mut counts = Vec::new();
    for _ in 0..3 {
        let (_, page) = send(reqwest::Method::GET, &url, &token, None).await;
        counts.push(page["results"].as_array().map_or(0, Vec::len));
    }
    assert_eq!(counts, [0, 0, 1], "hidden from two reads");
    // Writes read the primary: a POST right away conflicts.
    let (status, _) = send(
        reqwest::Method::POST,
        &url,
        &token,
        Some(program_rows(["late".into()], "pending")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    sim.set_replica_lag(ReplicaLag::millis(150));
    send(
        reqwest::Method::PUT,
        &url,
        &token,
        Some(program_rows(["later".into()], "pending")),
    )
    .await;
    let (_, page) = send(reqwest::Method::GET, &url, &token, None).await;
    assert_eq!(page["results"].as_array().map_or(0, Vec::len), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, page) = send(reqwest::Method::GET, &url, &token, None).await;
    assert_eq!(page["results"].as_array().map_or(0, Vec::len), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_per_route_a_429_with_retry_after_and_a_500_that_applies_nothing() {
    let sim = sim().await;
    let token = jwt(&sim).await;
    sim.set_throttle_retry_after(Duration::from_secs(37));
    sim.set_faults(
        FaultOptions::default()
            .with_rule(
                FaultRule::on("GET", PROGRAM_ENROLLMENTS_ROUTE, FaultAction::Throttle).nth(1),
            )
            .with_rule(
                FaultRule::on("PUT", PROGRAM_ENROLLMENTS_ROUTE, FaultAction::status(500)).nth(1),
            ),
    );
    let response = reqwest::Client::new()
        .get(programs_url(&sim))
        .header("Authorization", format!("JWT {token}"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "37");
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"developer_message": "Request was throttled. Expected available in 37 seconds."})
    );
    let (status, _) = send(
        reqwest::Method::PUT,
        &programs_url(&sim),
        &token,
        Some(program_rows(["x".into()], "enrolled")),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(sim.with_store(|s| s.program_enrollment(PROGRAM, "x").is_none()));
    let (status, _) = send(reqwest::Method::GET, &programs_url(&sim), &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let records = sim.requests();
    assert_eq!(records.iter().filter(|r| r.status == 429).count(), 1);
    assert!(records.iter().all(|r| r.finished >= r.started));
    sim.shutdown().await;
}
