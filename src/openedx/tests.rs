//! [`OpenEdxClient`] against openedx-sim over real HTTP: the token and its renewal, pagination, batched writes
//! and their per-key results, 404s, a 500 batch, a 429 with `Retry-After`, the 403 causes, and a sentinel secret.

use std::time::Duration;

use canvas_sim::openedx::{
    COURSE_ENROLLMENTS_ROUTE, OpenEdxHandle, OpenEdxOptions, OpenEdxSeed,
    PROGRAM_ENROLLMENTS_ROUTE, SeedClient, SeedLmsUser, SeedProgram, SeedProgramEnrollment,
    TOKEN_ROUTE, spawn,
};
use canvas_sim::{FaultAction, FaultOptions, FaultRule};
use secrecy::SecretString;

use super::*;
use crate::config::ClientSecretSource;

const PROGRAM: &str = "00000000-1111-2222-3333-444444444444";
const CURRICULUM: &str = "aaaaaaaa-1111-2222-3333-444444444444";
const RUN: &str = "course-v1:MITx+6.002x+2026";
const SECRET: &str = "sentinel-client-secret-7f3a";

fn seed() -> OpenEdxSeed {
    OpenEdxSeed::default()
        .client(SeedClient::new("rostersync", SECRET, "svc"))
        .client(SeedClient::new("learner-app", SECRET, "plain"))
        .client(SeedClient::new("partner", SECRET, "svc").restricted())
        .user(SeedLmsUser::new("svc").staff())
        .user(SeedLmsUser::new("plain"))
        .program(SeedProgram::new(PROGRAM, "MITx").curriculum(CURRICULUM, &[RUN]))
}

async fn sim_with(seed: OpenEdxSeed) -> OpenEdxHandle {
    spawn(OpenEdxOptions {
        seed,
        ..OpenEdxOptions::default()
    })
    .await
    .expect("openedx-sim starts")
}

fn client_as(sim: &OpenEdxHandle, client_id: &str, secret: &str) -> OpenEdxClient {
    OpenEdxClient::new(OpenEdxClientOptions {
        base_url: Url::parse(&sim.base_url()).expect("url"),
        client_id: client_id.into(),
        client_secret: ClientSecretSource::Inline(SecretString::from(secret.to_owned())),
        request_timeout: Duration::from_secs(5),
        page_size: 100,
        max_retries: 2,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    })
    .expect("client")
}

fn client(sim: &OpenEdxHandle) -> OpenEdxClient {
    client_as(sim, "rostersync", SECRET)
}

fn program_rows(keys: impl IntoIterator<Item = String>) -> Vec<ProgramEnrollmentWrite> {
    keys.into_iter()
        .map(|student_key| ProgramEnrollmentWrite {
            student_key,
            status: ProgramStatus::Enrolled,
            curriculum_uuid: CURRICULUM.into(),
        })
        .collect()
}

#[tokio::test]
async fn one_token_is_reused_and_a_new_one_is_requested_on_a_401() {
    let sim = sim_with(seed()).await;
    let client = client(&sim);
    assert!(
        client
            .list_program_enrollments(PROGRAM)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        client
            .list_program_enrollments(PROGRAM)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(sim.count("POST", TOKEN_ROUTE), 1);
    // The LMS clock passes the JWT's `exp`: the next call gets a 401, a new token and succeeds.
    sim.advance_clock(Duration::from_secs(3602));
    assert!(
        client
            .list_program_enrollments(PROGRAM)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(sim.count("POST", TOKEN_ROUTE), 2);
    assert_eq!(sim.count("GET", PROGRAM_ENROLLMENTS_ROUTE), 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_is_renewed_before_expires_in_runs_out() {
    let sim = spawn(OpenEdxOptions {
        seed: seed(),
        jwt_expires_in: Duration::from_secs(2),
        ..OpenEdxOptions::default()
    })
    .await
    .expect("openedx-sim starts");
    let client = client(&sim);
    client
        .list_program_enrollments(PROGRAM)
        .await
        .expect("list");
    // Renewed a tenth before the 2 s run out: no request carries an expired token, so no 401.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    client
        .list_program_enrollments(PROGRAM)
        .await
        .expect("list");
    assert_eq!(sim.count("POST", TOKEN_ROUTE), 2);
    assert!(sim.requests().iter().all(|r| r.status != 401));
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_follow_next_across_pages() {
    let mut seed = seed();
    for i in 0..250 {
        seed = seed.enrollment(SeedProgramEnrollment::new(
            &format!("learner-{i:03}"),
            PROGRAM,
            CURRICULUM,
            "pending",
        ));
    }
    let sim = sim_with(seed).await;
    let rows = client(&sim)
        .list_program_enrollments(PROGRAM)
        .await
        .expect("list");
    assert_eq!(rows.len(), 250);
    assert_eq!(rows[249].student_key, "learner-249");
    assert!(!rows[0].account_exists);
    assert_eq!(sim.count("GET", PROGRAM_ENROLLMENTS_ROUTE), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn sixty_rows_are_three_puts_with_a_result_per_key_and_casings_never_share_a_batch() {
    let sim = sim_with(seed()).await;
    let client = client(&sim);
    let report = client
        .write_program_enrollments(PROGRAM, &program_rows((0..60).map(|i| format!("k{i}"))))
        .await;
    assert!(report.stopped.is_none());
    let results = report.results;
    assert_eq!(sim.count("PUT", PROGRAM_ENROLLMENTS_ROUTE), 3);
    assert_eq!(results.len(), 60);
    assert!(
        results
            .iter()
            .all(|r| r.outcome == KeyOutcome::Applied("enrolled".into()))
    );
    assert_eq!(results[59].student_key, "k59");
    let listed = client
        .list_program_enrollments(PROGRAM)
        .await
        .expect("list");
    assert_eq!(listed.len(), 60);

    sim.reset_requests();
    let rows = program_rows(["ab".to_string(), "AB".to_string(), "cd".to_string()]);
    assert_eq!(batches(&rows), vec![vec![0, 2], vec![1]]);
    let results = client
        .write_program_enrollments(PROGRAM, &rows)
        .await
        .results;
    assert_eq!(sim.count("PUT", PROGRAM_ENROLLMENTS_ROUTE), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r.outcome, KeyOutcome::Applied(_))),
        "{results:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_207_is_parsed_key_by_key() {
    let sim = sim_with(seed().enrollment(SeedProgramEnrollment::new(
        "learner-1",
        PROGRAM,
        CURRICULUM,
        "enrolled",
    )))
    .await;
    let rows = vec![
        CourseEnrollmentWrite {
            student_key: "LEARNER-1".into(),
            status: CourseStatus::Active,
            course_staff: Some(true),
        },
        CourseEnrollmentWrite {
            student_key: "stranger".into(),
            status: CourseStatus::Active,
            course_staff: None,
        },
    ];
    let results = client(&sim)
        .write_course_enrollments(PROGRAM, RUN, &rows)
        .await
        .results;
    assert_eq!(
        results,
        vec![
            KeyResult {
                student_key: "LEARNER-1".into(),
                outcome: KeyOutcome::Applied("active".into()),
            },
            KeyResult {
                student_key: "stranger".into(),
                outcome: KeyOutcome::Rejected(KeyError::NotInProgram),
            },
        ]
    );
    let listed = client(&sim)
        .list_course_enrollments(PROGRAM, RUN)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].course_staff);
    assert_eq!(sim.count("GET", COURSE_ENROLLMENTS_ROUTE), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_404_names_the_program_or_course_and_is_a_skip_reason() {
    let sim = sim_with(seed()).await;
    let client = client(&sim);
    let unknown = "99999999-1111-2222-3333-444444444444";
    let err = client
        .list_program_enrollments(unknown)
        .await
        .expect_err("404");
    assert!(
        matches!(err, OpenEdxError::ProgramNotFound { .. }),
        "{err:?}"
    );
    assert!(err.skip_reason().expect("skip").contains(unknown));
    let report = client
        .write_program_enrollments(unknown, &program_rows((0..30).map(|i| format!("k{i}"))))
        .await;
    let err = report.stopped.expect("404 stops the write");
    assert!(
        matches!(err, OpenEdxError::ProgramNotFound { .. }),
        "{err:?}"
    );
    // The first batch's 404 stops the write: the second batch is not sent, and every key is failed with the reason.
    assert_eq!(sim.count("PUT", PROGRAM_ENROLLMENTS_ROUTE), 1);
    assert_eq!(report.results.len(), 30);
    assert!(
        report
            .results
            .iter()
            .all(|r| matches!(&r.outcome, KeyOutcome::Failed(why) if why.contains(unknown)))
    );
    let err = client
        .list_course_enrollments(PROGRAM, "course-v1:MITx+Other+2026")
        .await
        .expect_err("404");
    assert!(err.skip_reason().is_some(), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_batch_answered_500_is_failed_key_by_key_and_nothing_is_applied() {
    let sim = sim_with(seed()).await;
    sim.set_faults(FaultOptions::default().with_rule(
        FaultRule::on("PUT", PROGRAM_ENROLLMENTS_ROUTE, FaultAction::status(500)).times(3),
    ));
    let client = client(&sim);
    let report = client
        .write_program_enrollments(PROGRAM, &program_rows((0..30).map(|i| format!("k{i}"))))
        .await;
    assert!(
        report.stopped.is_none(),
        "a 500 fails its batch, not the write"
    );
    let results = report.results;
    // The first batch (25 keys) is answered 500 three times (1 + 2 retries): all failed; the second is applied.
    assert_eq!(sim.count("PUT", PROGRAM_ENROLLMENTS_ROUTE), 4);
    assert!(
        results[..25]
            .iter()
            .all(|r| matches!(r.outcome, KeyOutcome::Failed(_))),
        "{results:?}"
    );
    assert!(
        results[25..]
            .iter()
            .all(|r| matches!(r.outcome, KeyOutcome::Applied(_)))
    );
    assert_eq!(
        client
            .list_program_enrollments(PROGRAM)
            .await
            .expect("list")
            .len(),
        5
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_429_waits_its_retry_after() {
    let sim = sim_with(seed()).await;
    sim.set_throttle_retry_after(Duration::from_secs(1));
    sim.set_faults(
        FaultOptions::default().with_rule(
            FaultRule::on("GET", PROGRAM_ENROLLMENTS_ROUTE, FaultAction::Throttle).nth(1),
        ),
    );
    let started = std::time::Instant::now();
    client(&sim)
        .list_program_enrollments(PROGRAM)
        .await
        .expect("list after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.count("GET", PROGRAM_ENROLLMENTS_ROUTE), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_403_says_restricted_application_or_non_staff_owner() {
    let sim = sim_with(seed()).await;
    client(&sim)
        .check_access()
        .await
        .expect("staff-owned application");
    let err = client_as(&sim, "partner", SECRET)
        .check_access()
        .await
        .expect_err("restricted");
    assert!(
        matches!(err, OpenEdxError::RestrictedApplication { .. }),
        "{err:?}"
    );
    let err = client_as(&sim, "partner", SECRET)
        .list_program_enrollments(PROGRAM)
        .await
        .expect_err("403");
    assert!(
        matches!(err, OpenEdxError::RestrictedApplication { .. }),
        "{err:?}"
    );
    assert!(err.ends_cycle());
    let err = client_as(&sim, "learner-app", SECRET)
        .list_program_enrollments(PROGRAM)
        .await
        .expect_err("403");
    assert!(
        matches!(&err, OpenEdxError::OwnerNotStaff { owner, .. } if owner == "plain"),
        "{err:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_client_secret_and_tokens_appear_in_no_error_or_debug() {
    let sim = sim_with(seed()).await;
    let wrong = format!("{SECRET}-wrong");
    let bad = client_as(&sim, "rostersync", &wrong);
    let err = bad
        .list_program_enrollments(PROGRAM)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, OpenEdxError::TokenRefused { status: 401, .. }),
        "{err:?}"
    );
    let good = client(&sim);
    good.list_program_enrollments(PROGRAM).await.expect("list");
    let restricted = client_as(&sim, "partner", SECRET);
    let forbidden = restricted
        .list_program_enrollments(PROGRAM)
        .await
        .expect_err("403");
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{bad:?}"),
        format!("{good:?}"),
        format!("{restricted:?}"),
        forbidden.to_string(),
        format!("{forbidden:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("eyJ"), "a JWT leaked: {text}");
    }
    sim.shutdown().await;
}
