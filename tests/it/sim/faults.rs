//! Injected faults: scripted rules, random errors, latency, and the faults file format.

use std::time::{Duration, Instant};

use super::support::*;
use canvas_sim::{FaultAction, FaultOptions, FaultRule, SimOptions};
use serde_json::json;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";

async fn with_rule(rule: FaultRule) -> canvas_sim::SimHandle {
    start_with(SimOptions {
        seed: standard_seed(),
        faults: FaultOptions::default().with_rule(rule),
        ..SimOptions::default()
    })
    .await
}

#[tokio::test]
async fn fault_status_rule_fires_on_the_nth_matching_request_only() {
    let sim =
        with_rule(FaultRule::on("GET", COURSE_ENROLLMENTS, FaultAction::status(503)).nth(2)).await;
    let statuses: Vec<u16> = futures::future::join_all(
        (0..3).map(|_| async { get(&sim, "/courses/20/enrollments").await.status().as_u16() }),
    )
    .await;
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 200, 503]);
    assert_eq!(
        get(&sim, "/courses/20").await.status(),
        200,
        "other routes are not counted"
    );
}

#[tokio::test]
async fn fault_times_fires_for_the_first_n_requests() {
    let sim = with_rule(FaultRule::always(FaultAction::status(401)).times(2)).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&sim, "/courses/20").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 200]);
}

#[tokio::test]
async fn fault_status_uses_canvas_bodies_unless_given_one() {
    let sim = with_rule(FaultRule::always(FaultAction::status(403)).times(1)).await;
    let (status, body) = get_json(&sim, "/courses/20").await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]})
    );
    sim.set_faults(
        FaultOptions::default().with_rule(FaultRule::always(FaultAction::Status {
            status: 503,
            content_type: Some("text/html".into()),
            body: Some("<h1>down</h1>".into()),
        })),
    );
    let response = get(&sim, "/courses/20").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.expect("body"), "<h1>down</h1>");
}

#[tokio::test]
async fn fault_throttle_answers_the_configured_throttled_response() {
    let sim = with_rule(FaultRule::always(FaultAction::Throttle).times(1)).await;
    let response = get(&sim, "/courses/20").await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.text().await.expect("body"),
        "403 Forbidden (Rate Limit Exceeded)\n"
    );
    assert!(sim.requests()[0].throttled);
}

#[tokio::test]
async fn fault_apply_then_status_performs_the_write() {
    let sim = with_rule(FaultRule::on(
        "POST",
        COURSE_ENROLLMENTS,
        FaultAction::ApplyThenStatus {
            status: 502,
            content_type: None,
            body: None,
        },
    ))
    .await;
    let response = post_form(
        &sim,
        "/courses/20/enrollments",
        &[("enrollment[user_id]", "16")],
    )
    .await;
    assert_eq!(response.status(), 502);
    let created = sim.with_store(|s| {
        s.enrollments()
            .filter(|e| e.user_id == SAM && e.course_id == MATH)
            .count()
    });
    assert_eq!(created, 1);
}

#[tokio::test]
async fn fault_apply_then_hang_performs_the_write_before_the_client_gives_up() {
    let sim = with_rule(FaultRule::on(
        "POST",
        COURSE_ENROLLMENTS,
        FaultAction::ApplyThenHang(Duration::from_secs(30)),
    ))
    .await;
    let result = request(&sim, reqwest::Method::POST, "/courses/20/enrollments")
        .form(&[("enrollment[user_id]", "16")])
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    let created = sim.with_store(|s| {
        s.enrollments()
            .filter(|e| e.user_id == SAM && e.course_id == MATH)
            .count()
    });
    assert_eq!(created, 1);
    // The abandoned request is still recorded, as 499.
    for _ in 0..50 {
        if !sim.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.requests().first().map(|r| r.status), Some(499));
}

#[tokio::test]
async fn fault_hang_delays_before_handling() {
    let sim =
        with_rule(FaultRule::always(FaultAction::Hang(Duration::from_millis(300))).times(1)).await;
    let started = Instant::now();
    assert_eq!(get(&sim, "/courses/20").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn fault_body_shapes() {
    let sim = with_rule(FaultRule::always(FaultAction::HtmlBody).times(1)).await;
    let response = get(&sim, "/courses/20/enrollments").await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/html"))
    );

    sim.set_faults(
        FaultOptions::default().with_rule(FaultRule::always(FaultAction::TruncatedJson)),
    );
    let text = get(&sim, "/courses/20/enrollments")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "truncated: {text}"
    );

    sim.set_faults(
        FaultOptions::default().with_rule(FaultRule::always(FaultAction::ObjectInsteadOfArray)),
    );
    let (_, body) = get_json(&sim, "/courses/20/enrollments").await;
    assert!(body.is_object());

    sim.set_faults(
        FaultOptions::default()
            .with_rule(FaultRule::always(FaultAction::HugeBody { bytes: 300_000 })),
    );
    let bytes = get(&sim, "/courses/20/enrollments")
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(bytes.len(), 300_000);

    sim.set_faults(
        FaultOptions::default().with_rule(FaultRule::always(FaultAction::Redirect {
            location: "http://127.0.0.1:9/login".into(),
        })),
    );
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(api(&sim, "/courses/20"))
        .bearer_auth(canvas_sim::DEFAULT_TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 302);
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1:9/login")
    );
}

#[tokio::test]
async fn fault_link_edits() {
    let sim = with_rule(FaultRule::always(FaultAction::DropNextLink)).await;
    let response = get(&sim, "/courses/20/enrollments?per_page=2").await;
    assert!(links(&response).iter().all(|(rel, _)| rel != "next"));

    sim.set_faults(
        FaultOptions::default().with_rule(FaultRule::always(FaultAction::CrossHostNextLink)),
    );
    let response = get(&sim, "/courses/20/enrollments?per_page=2").await;
    let links = links(&response);
    let next = links
        .iter()
        .find(|(rel, _)| rel == "next")
        .map(|(_, u)| u.clone())
        .expect("next");
    assert!(next.starts_with("http://127.0.0.2:"), "{next}");
    assert!(
        links
            .iter()
            .find(|(rel, _)| rel == "current")
            .is_some_and(|(_, u)| u.starts_with("http://127.0.0.1:"))
    );
}

#[tokio::test]
async fn fault_slow_body_streams_at_the_given_rate() {
    let sim = with_rule(FaultRule::always(FaultAction::SlowBody {
        bytes_per_sec: 2000,
    }))
    .await;
    let started = Instant::now();
    let text = get(&sim, "/courses/20").await.text().await.expect("body");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    let expected = Duration::from_secs_f64(text.len() as f64 / 2000.0) / 2;
    assert!(
        started.elapsed() >= expected,
        "{:?} < {expected:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fault_random_errors_replay_with_the_same_seed() {
    let options = FaultOptions {
        error_rate: 0.5,
        fault_seed: 42,
        ..FaultOptions::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = start_with(SimOptions {
            seed: standard_seed(),
            faults: options.clone(),
            ..SimOptions::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(get(&sim, "/courses/20").await.status().as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&200));
    assert!(runs[0].iter().any(|s| *s == 500 || *s == 502));
    assert!(runs[0].iter().all(|s| [200, 500, 502].contains(s)));
}

#[tokio::test]
async fn fault_latency_is_added_and_write_latency_only_to_writes() {
    let options = FaultOptions {
        latency: Duration::from_millis(100),
        write_latency: Duration::from_millis(200),
        ..FaultOptions::default()
    };
    let sim = start_with(SimOptions {
        seed: standard_seed(),
        faults: options,
        ..SimOptions::default()
    })
    .await;
    let started = Instant::now();
    get(&sim, "/courses/20").await;
    let read = started.elapsed();
    let started = Instant::now();
    post_form(
        &sim,
        "/courses/20/enrollments",
        &[("enrollment[user_id]", "16")],
    )
    .await;
    let write = started.elapsed();
    assert!(
        read >= Duration::from_millis(100) && read < Duration::from_millis(300),
        "{read:?}"
    );
    assert!(write >= Duration::from_millis(300), "{write:?}");
}

#[tokio::test]
async fn faults_file_loads_with_millisecond_durations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("faults.json");
    std::fs::write(
        &path,
        r#"{"latency_ms": 5, "fault_seed": 3, "rules": [
            {"method": "POST", "route": "/api/v1/courses/:id/enrollments", "nth": 7, "action": {"Status": {"status": 503}}},
            {"path_contains": "sis_user_id:S7", "times": 2, "action": {"Hang": 5000}}]}"#,
    )
    .expect("write");
    let options = FaultOptions::from_file(&path).expect("loads");
    assert_eq!(options.latency, Duration::from_millis(5));
    assert_eq!(options.rules[0].nth, Some(7));
    assert_eq!(
        options.rules[1].action,
        FaultAction::Hang(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn fault_timeout_rate_hangs_for_hang_for_then_answers() {
    let options = FaultOptions {
        timeout_rate: 1.0,
        hang_for: Duration::from_millis(250),
        ..FaultOptions::default()
    };
    let sim = start_with(SimOptions {
        seed: standard_seed(),
        faults: options,
        ..SimOptions::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(get(&sim, "/courses/20").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A client that gives up first sees a timeout.
    let result = request(&sim, reqwest::Method::GET, "/courses/20")
        .timeout(Duration::from_millis(50))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
}

#[tokio::test]
async fn fault_latency_jitter_stays_within_bounds() {
    let options = FaultOptions {
        latency_jitter: Duration::from_millis(100),
        fault_seed: 9,
        ..FaultOptions::default()
    };
    let sim = start_with(SimOptions {
        seed: standard_seed(),
        faults: options,
        ..SimOptions::default()
    })
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        get(&sim, "/courses/20").await;
        assert!(started.elapsed() < Duration::from_millis(400));
    }
}
