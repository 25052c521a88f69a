//! Facts §9 "Provisioning report".

use super::support::*;
use canvas_sim::{SeedEnrollment, SimHandle};
use serde_json::Value;

const COLUMNS: &str = "canvas_course_id,course_id,canvas_user_id,user_id,role,role_id,canvas_section_id,section_id,status,canvas_associated_user_id,associated_user_id,created_by_sis,base_role_type,limit_section_privileges,canvas_enrollment_id";

/// Starts a report, polls it to completion, downloads the CSV through `file_url`.
async fn run_report(
    sim: &SimHandle,
    report: &str,
    parameters: &[(&str, &str)],
) -> (Value, Vec<csv::StringRecord>, String) {
    let (status, started) =
        json(post_form(sim, &format!("/accounts/1/reports/{report}"), parameters).await).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "created");
    let id = started["id"].as_u64().expect("report id");
    let mut seen = vec![];
    let done = loop {
        let (_, polled) = get_json(sim, &format!("/accounts/1/reports/{report}/{id}")).await;
        seen.push(polled["status"].as_str().unwrap_or_default().to_string());
        if polled["status"] == "complete" || polled["status"] == "error" {
            break polled;
        }
        assert!(seen.len() < 10, "report finishes: {seen:?}");
    };
    assert_eq!(seen, ["running", "complete"]);
    let file_url = done["file_url"].as_str().expect("file_url").to_string();
    let response = client()
        .get(&file_url)
        .bearer_auth(canvas_sim::DEFAULT_TOKEN)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .collect::<Vec<_>>()
        .join(",");
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (done, rows, header)
}

fn by_enrollment(rows: &[csv::StringRecord]) -> Vec<(u64, String, String)> {
    rows.iter()
        .map(|r| {
            (
                r[14].parse().unwrap_or(0),
                r[4].to_string(),
                r[8].to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn provisioning_report_enrollments_csv_has_the_listed_columns_and_default_rows() {
    let sim = start().await;
    let (done, rows, header) = run_report(
        &sim,
        "provisioning_csv",
        &[("parameters[enrollments]", "true")],
    )
    .await;
    assert_eq!(header, COLUMNS);
    assert!(
        done["attachment"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("verifier="))
    );
    let got = by_enrollment(&rows);
    // Default: no completed, no deleted; creation_pending shows as invited; users without a
    // login (NO_LOGIN) are skipped; custom roles by name, built-ins lowercase.
    assert_eq!(
        got,
        vec![
            (ADA_MATH, "student".into(), "active".into()),
            (BOB_MATH_B, "student".into(), "invited".into()),
            (TESS_MATH, "teacher".into(), "active".into()),
            (UPPER_MATH_INACTIVE, "student".into(), "inactive".into()),
            (OLIVE_MATH_REJECTED, "student".into(), "rejected".into()),
            (NEW_MATH_PENDING, "student".into(), "invited".into()),
            (ADA_MATH_LAB, "Lab Assistant".into(), "active".into()),
            (ADA_CS, "student".into(), "active".into()),
        ]
    );
    let ada = &rows[0];
    assert_eq!(&ada[0], "20");
    assert_eq!(&ada[1], "MATH-101");
    assert_eq!(&ada[3], "S10");
    assert_eq!(&ada[5], "3");
    assert_eq!(&ada[11], "false");
    assert_eq!(&ada[12], "StudentEnrollment");
    assert_eq!(&rows[1][7], "MATH-101-B");
}

#[tokio::test]
async fn provisioning_report_include_deleted_adds_completed_and_sis_created_deleted_rows() {
    let sim = start().await;
    sim.with_store(|s| {
        let mut row = SeedEnrollment::new(SAM, MATH)
            .with_id(600)
            .with_state("deleted");
        row.created_by_sis = Some(true);
        s.add_enrollment(row).expect("row");
    });
    let (_, rows, _) = run_report(
        &sim,
        "provisioning_csv",
        &[
            ("parameters[enrollments]", "true"),
            ("parameters[include_deleted]", "true"),
        ],
    )
    .await;
    let got = by_enrollment(&rows);
    assert!(got.contains(&(LOWER_MATH_COMPLETED, "student".into(), "concluded".into())));
    assert!(got.contains(&(600, "student".into(), "deleted".into())));
    assert!(
        !got.iter().any(|(id, _, _)| *id == BOB_MATH_TA_DELETED),
        "API-deleted rows stay out"
    );
}

#[tokio::test]
async fn provisioning_report_created_by_sis_limits_to_sis_rows() {
    let sim = start().await;
    sim.with_store(|s| {
        let mut row = SeedEnrollment::new(SAM, MATH).with_id(601);
        row.created_by_sis = Some(true);
        s.add_enrollment(row).expect("row");
    });
    let (_, rows, _) = run_report(
        &sim,
        "provisioning_csv",
        &[
            ("parameters[enrollments]", "true"),
            ("parameters[created_by_sis]", "true"),
        ],
    )
    .await;
    assert_eq!(
        by_enrollment(&rows),
        vec![(601, "student".into(), "active".into())]
    );
    assert_eq!(&rows[0][11], "true");
}

#[tokio::test]
async fn provisioning_report_file_url_redirects_to_a_verifier_url() {
    let sim = start().await;
    sim.with_store(|s| s.set_job_polls(0));
    let (_, started) = json(
        post_form(
            &sim,
            "/accounts/1/reports/provisioning_csv",
            &[("parameters[enrollments]", "1")],
        )
        .await,
    )
    .await;
    let id = started["id"].as_u64().expect("id");
    let (_, done) = get_json(&sim, &format!("/accounts/1/reports/provisioning_csv/{id}")).await;
    assert_eq!(
        done["status"], "complete",
        "zero polls: the first poll completes it"
    );
    let file_url = done["file_url"].as_str().expect("file_url");
    assert!(file_url.contains("/accounts/1/files/") && file_url.ends_with("/download"));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = no_redirects
        .get(file_url)
        .bearer_auth(canvas_sim::DEFAULT_TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 302);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    // The verifier URL works without a token.
    let response = client().get(&location).send().await.expect("GET");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/csv"))
    );
}

#[tokio::test]
async fn unknown_report_is_not_found() {
    let sim = start().await;
    let (status, _) = json(
        post_form(
            &sim,
            "/accounts/1/reports/nope_csv",
            &[("parameters[enrollments]", "true")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_reports_of_a_type_and_the_available_reports_are_listed() {
    let sim = start().await;
    for _ in 0..2 {
        let (status, _) = json(
            post_form(
                &sim,
                "/accounts/1/reports/provisioning_csv",
                &[("parameters[enrollments]", "true")],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, listed) = get_json(&sim, "/accounts/1/reports/provisioning_csv").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(ids(&listed), [2, 1], "newest first");
    assert_eq!(listed[0]["parameters"]["enrollments"], "true");
    assert!(listed[0]["created_at"].is_string());
    let (status, _) = get_json(&sim, "/accounts/1/reports/no_such_report").await;
    assert_eq!(status, 404);
    let (status, available) = get_json(&sim, "/accounts/1/reports").await;
    assert_eq!(status, 200);
    assert!(
        available
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["report"] == "provisioning_csv")),
        "{available}"
    );
}
