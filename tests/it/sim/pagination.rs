//! Facts §3 "Pagination".

use super::support::*;
use base64::Engine;

#[tokio::test]
async fn first_page_is_page_first_with_links_current_next_first_in_order() {
    let sim = start().await;
    let response = get(&sim, &format!("/courses/{MATH}/enrollments?per_page=2")).await;
    let header = response
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .expect("Link header")
        .to_string();
    let base = api(&sim, &format!("/courses/{MATH}/enrollments"));
    let rels: Vec<String> = parse_links(&header)
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(
        rels,
        ["current", "next", "first"],
        "no prev, no last before the final page"
    );
    assert!(header.starts_with(&format!(
        "<{base}?page=first&per_page=2>; rel=\"current\",<{base}?page=bookmark:"
    )));
    assert!(!header.contains(", "), "entries joined by a bare comma");
    let (_, next) = &parse_links(&header)[1];
    let token = next
        .split("page=bookmark:")
        .nth(1)
        .and_then(|t| t.split('&').next())
        .expect("bookmark");
    assert!(!token.contains('='), "no base64 padding");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("base64url");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&decoded).is_ok(),
        "bookmark is JSON"
    );
}

#[tokio::test]
async fn following_next_walks_every_row_once_and_last_appears_only_on_the_final_page() {
    let sim = start().await;
    let mut url = api(&sim, &format!("/courses/{MATH}/enrollments?per_page=4"));
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = client()
            .get(&url)
            .bearer_auth(canvas_sim::DEFAULT_TOKEN)
            .send()
            .await
            .expect("GET");
        let links = links(&response);
        let (_, body) = json(response).await;
        seen.extend(ids(&body));
        pages += 1;
        match links.iter().find(|(rel, _)| rel == "next") {
            Some((_, next)) => {
                assert!(links.iter().all(|(rel, _)| rel != "last"));
                url = next.clone();
            }
            None => {
                let current = links
                    .iter()
                    .find(|(rel, _)| rel == "current")
                    .map(|(_, u)| u.clone());
                let last = links
                    .iter()
                    .find(|(rel, _)| rel == "last")
                    .map(|(_, u)| u.clone());
                assert_eq!(last, current, "last = current on the final page");
                break;
            }
        }
        assert!(pages < 10, "pagination terminates");
    }
    assert_eq!(pages, 2);
    seen.sort_unstable();
    assert_eq!(
        seen,
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
async fn link_urls_keep_the_query_sorted_without_paging_or_credentials() {
    let sim = start().await;
    let url = api(
        &sim,
        &format!(
            "/courses/{MATH}/enrollments?type[]=StudentEnrollment&state[]=active&state[]=invited&access_token={}&per_page=1",
            canvas_sim::DEFAULT_TOKEN
        ),
    );
    let response = client().get(url).send().await.expect("GET");
    let links = links(&response);
    let base = api(&sim, &format!("/courses/{MATH}/enrollments"));
    assert_eq!(
        links[0],
        (
            "current".to_string(),
            format!(
                "{base}?state%5B%5D=active&state%5B%5D=invited&type%5B%5D=StudentEnrollment&page=first&per_page=1"
            )
        )
    );
}

#[tokio::test]
async fn per_page_defaults_to_10_and_is_clamped_to_1_through_100() {
    let sim = start().await;
    sim.with_store(|s| {
        for n in 0..120u64 {
            s.add_user(canvas_sim::SeedUser::new(1000 + n, &format!("User {n:03}")))
                .expect("user");
            s.add_enrollment(canvas_sim::SeedEnrollment::new(1000 + n, CS))
                .expect("enrollment");
        }
    });
    for (query, expected) in [
        ("", 10),
        ("?per_page=0", 1),
        ("?per_page=500", 100),
        ("?per_page=abc", 10),
    ] {
        let (_, body) = get_json(&sim, &format!("/courses/{CS}/enrollments{query}")).await;
        assert_eq!(body.as_array().map(Vec::len), Some(expected), "{query}");
    }
}

#[tokio::test]
async fn undecodable_bookmark_is_the_first_page() {
    let sim = start().await;
    let (_, first) = get_json(&sim, &format!("/courses/{MATH}/enrollments?per_page=2")).await;
    let (status, junk) = get_json(
        &sim,
        &format!("/courses/{MATH}/enrollments?per_page=2&page=bookmark:!!!"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&junk), ids(&first));
}

#[tokio::test]
async fn numeric_page_above_one_is_rejected_on_bookmark_collections() {
    let sim = start().await;
    let (status, _) = get_json(&sim, &format!("/courses/{MATH}/enrollments?page=2")).await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&sim, &format!("/courses/{MATH}/enrollments?page=1")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn links_use_the_host_the_client_used() {
    let sim = start().await;
    let url = format!(
        "http://localhost:{}/api/v1/courses/{MATH}/enrollments",
        sim.addr().port()
    );
    let response = client()
        .get(url)
        .bearer_auth(canvas_sim::DEFAULT_TOKEN)
        .send()
        .await
        .expect("GET");
    let links = links(&response);
    assert!(
        links[0]
            .1
            .starts_with(&format!("http://localhost:{}/api/v1/", sim.addr().port())),
        "{links:?}"
    );
}

#[tokio::test]
async fn numbered_collections_have_prev_and_last() {
    let sim = start().await;
    let response = get(&sim, "/accounts/1/roles?per_page=2&page=2").await;
    let rels: Vec<String> = links(&response).into_iter().map(|(rel, _)| rel).collect();
    assert_eq!(rels, ["current", "next", "prev", "first", "last"]);
}

#[tokio::test]
async fn link_header_is_capped_keeping_next_and_last_first() {
    let sim = start().await;
    // A long query makes each link about 1.4 KB; five of them exceed the ~6 KB cap.
    let long = "x".repeat(1300);
    let response = get(
        &sim,
        &format!("/accounts/1/roles?per_page=1&page=2&filler={long}"),
    )
    .await;
    let rels: Vec<String> = links(&response).into_iter().map(|(rel, _)| rel).collect();
    assert_eq!(
        rels,
        ["current", "next", "prev", "last"],
        "first is dropped first"
    );
}
