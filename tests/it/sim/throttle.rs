//! Facts §5 "Request throttle".

use std::time::Duration;

use super::support::*;
use canvas_sim::{FaultOptions, SimOptions, ThrottleOptions, ThrottleStatus};

fn small_bucket(status: ThrottleStatus) -> SimOptions {
    SimOptions {
        seed: standard_seed(),
        throttle: ThrottleOptions {
            hwm: 120.0,
            up_front_cost: 50.0,
            status,
            ..ThrottleOptions::default()
        },
        // Keeps the requests in flight together.
        faults: FaultOptions {
            latency: Duration::from_millis(300),
            ..FaultOptions::default()
        },
        ..SimOptions::default()
    }
}

async fn concurrent_gets(sim: &canvas_sim::SimHandle, n: usize) -> Vec<reqwest::Response> {
    let requests = (0..n).map(|_| get(sim, "/courses/20"));
    futures::future::join_all(requests).await
}

#[tokio::test]
async fn throttle_headers_are_float_strings() {
    let sim = start().await;
    let response = get(&sim, "/courses/20").await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("x-request-cost").as_deref(), Some("1.0"));
    let remaining = header("x-rate-limit-remaining").expect("remaining header");
    assert!(remaining.contains('.'), "{remaining}");
    let value: f64 = remaining.parse().expect("float");
    assert!((598.0..=600.0).contains(&value), "{value}");
}

#[tokio::test]
async fn throttle_sequential_clients_are_not_throttled() {
    let sim = start().await;
    for _ in 0..30 {
        assert_eq!(get(&sim, "/courses/20").await.status(), 200);
    }
}

#[tokio::test]
async fn throttle_concurrent_requests_past_hwm_get_403_rate_limit_exceeded() {
    let sim = start_with(small_bucket(ThrottleStatus::Forbidden403)).await;
    let responses = concurrent_gets(&sim, 4).await;
    let mut throttled = 0;
    for response in responses {
        if response.status() == 403 {
            throttled += 1;
            let headers = response.headers().clone();
            assert_eq!(
                headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some("text/plain; charset=utf-8")
            );
            assert!(headers.get("retry-after").is_none());
            assert!(
                headers.get("x-request-cost").is_none(),
                "no cost on a throttled answer"
            );
            assert!(headers.get("x-rate-limit-remaining").is_some());
            assert_eq!(
                response.text().await.expect("body"),
                "403 Forbidden (Rate Limit Exceeded)\n"
            );
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    assert_eq!(throttled, 2, "50, 100 admitted; 150, 200 ≥ hwm 120");
    let records = sim.requests();
    assert_eq!(records.iter().filter(|r| r.throttled).count(), 2);
}

#[tokio::test]
async fn throttle_can_answer_429() {
    let sim = start_with(small_bucket(ThrottleStatus::TooManyRequests429)).await;
    let statuses: Vec<u16> = concurrent_gets(&sim, 4)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn throttle_bucket_fills_with_cost_and_leaks_at_outflow() {
    let sim = start_with(SimOptions {
        seed: standard_seed(),
        throttle: ThrottleOptions {
            hwm: 120.0,
            up_front_cost: 50.0,
            request_cost: 50.0,
            // Slow enough that a loaded machine's gaps between the first three requests (up to 0.75 s) leak
            // less than the 30 units that would let the third through.
            outflow: 40.0,
            ..ThrottleOptions::default()
        },
        ..SimOptions::default()
    })
    .await;
    assert_eq!(get(&sim, "/courses/20").await.status(), 200); // bucket ≈ 50
    assert_eq!(get(&sim, "/courses/20").await.status(), 200); // bucket ≈ 100
    assert_eq!(get(&sim, "/courses/20").await.status(), 403); // 150 ≥ 120
    tokio::time::sleep(Duration::from_millis(2000)).await; // leaks 80
    assert_eq!(get(&sim, "/courses/20").await.status(), 200);
}

#[tokio::test]
async fn throttle_disabled_still_counts_but_never_throttles() {
    let mut options = small_bucket(ThrottleStatus::Forbidden403);
    options.throttle.enabled = false;
    let sim = start_with(options).await;
    let responses = concurrent_gets(&sim, 4).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert!(responses.iter().any(|r| {
        r.headers()
            .get("x-rate-limit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v < 0.0)
    }));
}
