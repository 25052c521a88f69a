//! The large-account paths: live enrollments from the provisioning report, and changes through one SIS import.

use canvas_sim::Seed;

use crate::support::*;

/// A SIS row with owned ids: user, course, section, role, status.
type OwnedRow = (String, String, String, &'static str, Option<&'static str>);

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
const SECTION_ENROLLMENTS: &str = "/api/v1/sections/:id/enrollments";

/// Three courses with SIS sections; drift of each kind; one SIS user that does not exist in Canvas.
fn district() -> (Seed, Vec<OwnedRow>) {
    let mut seed = Seed::default().role(adult_learner(20));
    let mut sis = Vec::new();
    for c in 0..3u64 {
        let course_id = 100 + c;
        let course_sis = format!("K{c}");
        let section_sis = format!("K{c}-A");
        seed = seed.course(course(course_id, &course_sis)).section(section(
            200 + c,
            course_id,
            &section_sis,
        ));
        for s in 0..10u64 {
            let uid = 1000 + c * 100 + s;
            let user_sis = format!("k{c}u{s}");
            seed = seed.user(user(uid, &user_sis));
            match s {
                // enrolled and listed
                0..=5 => {
                    seed = seed.enrollment(
                        enrolled(uid, course_id, STUDENT, "active").in_section(200 + c),
                    );
                    sis.push((
                        user_sis,
                        course_sis.clone(),
                        section_sis.clone(),
                        "student",
                        None,
                    ));
                }
                // listed, missing → enroll
                6 | 7 => sis.push((
                    user_sis,
                    course_sis.clone(),
                    section_sis.clone(),
                    "student",
                    None,
                )),
                // enrolled, not listed → remove
                8 => {
                    seed = seed
                        .enrollment(enrolled(uid, course_id, STUDENT, "active").in_section(200 + c))
                }
                // wrong role → change_role; concluded but listed → change_state
                _ => {
                    seed = seed.enrollment(
                        enrolled(uid, course_id, STUDENT, "completed").in_section(200 + c),
                    );
                    sis.push((
                        user_sis,
                        course_sis.clone(),
                        section_sis.clone(),
                        "student",
                        Some("active"),
                    ));
                }
            }
        }
        // A role change in each course.
        let uid = 1000 + c * 100 + 50;
        seed = seed
            .user(user(uid, &format!("k{c}t")))
            .enrollment(enrolled(uid, course_id, STUDENT, "active").in_section(200 + c));
        sis.push((
            format!("k{c}t"),
            course_sis.clone(),
            section_sis.clone(),
            "teacher",
            None,
        ));
    }
    sis.push(("ghost".into(), "K0".into(), "K0-A".into(), "student", None));
    (seed, sis)
}

async fn env_with(seed: Seed, sis: &[OwnedRow]) -> TestEnv {
    let env = TestEnv::new(seed).await;
    env.sim.with_store(|s| s.set_job_polls(1));
    let rows: Vec<Row5<'_>> = sis
        .iter()
        .map(|(u, c, s, r, st)| (u.as_str(), c.as_str(), Some(s.as_str()), *r, *st))
        .collect();
    env.sis(&rows).await;
    env
}

const LOOSE: &str = "[reconcile]\nmax_removal_ratio = 0.5";

#[tokio::test]
async fn the_provisioning_report_read_path_plans_what_per_course_listing_plans() {
    let (seed, sis) = district();
    let by_course = env_with(seed.clone(), &sis).await;
    let dry = rostersync::reconcile::CycleOptions {
        dry_run: true,
        ..Default::default()
    };
    let expected = by_course
        .reconcile_with(&format!("read_path = \"courses\"\n{LOOSE}"), dry.clone())
        .await;
    let by_report = env_with(seed, &sis).await;
    let got = by_report
        .reconcile_with(&format!("read_path = \"report\"\n{LOOSE}"), dry)
        .await;
    assert_eq!(got.details.read_path, "report");
    assert_eq!(got.planned, expected.planned, "{got:#?}");
    assert_eq!(
        got.details.live_enrollments,
        expected.details.live_enrollments
    );
    assert_eq!(
        by_report.sim.count("GET", COURSE_ENROLLMENTS),
        0,
        "no per-course listing"
    );
    assert_eq!(
        by_report
            .sim
            .count("POST", "/api/v1/accounts/:account_id/reports/:report"),
        1
    );

    // Applied through the report path, then converged.
    let report = by_report
        .reconcile(&format!("read_path = \"report\"\n{LOOSE}"))
        .await;
    let failed: Vec<_> = by_report
        .audit(&report.run_id)
        .await
        .into_iter()
        .filter(|a| a.outcome == "failed")
        .collect();
    assert_eq!(report.failed, 0, "{failed:#?}");
    let next = by_report
        .reconcile(&format!("read_path = \"report\"\n{LOOSE}"))
        .await;
    assert_eq!(
        next.planned_total(),
        1,
        "only the user Canvas does not have: {next:#?}"
    );
}

#[tokio::test]
async fn auto_picks_the_report_when_there_are_enough_managed_courses() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env
        .reconcile(&format!("report_min_courses = 3\n{LOOSE}"))
        .await;
    assert_eq!(report.details.read_path, "report");
    let report = env
        .reconcile(&format!("report_min_courses = 4\n{LOOSE}"))
        .await;
    assert_eq!(report.details.read_path, "courses");
}

#[tokio::test]
async fn the_sis_import_write_path_applies_the_delta_and_audits_each_row() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env
        .reconcile(&format!("{LOOSE}\nwrite_path = \"sis_import\""))
        .await;
    assert_eq!(report.details.write_path, "sis_import", "{report:#?}");
    assert_eq!(report.planned["enroll"], 7);
    assert_eq!(
        (report.failed, report.details.users_not_found),
        (0, 1),
        "{report:#?}"
    );
    assert_eq!(
        env.sim
            .count("POST", "/api/v1/accounts/:account_id/sis_imports"),
        1
    );
    assert_eq!(
        env.sim.count("POST", SECTION_ENROLLMENTS) + env.sim.count("POST", COURSE_ENROLLMENTS),
        0
    );
    let audit = env.audit(&report.run_id).await;
    assert!(audit.iter().any(|a| a.user_id.as_deref() == Some("ghost")
        && a.outcome == "skipped"
        && a.error.as_deref() == Some("user not found in Canvas")));
    assert_eq!(audit.iter().filter(|a| a.outcome == "planned").count(), 0);
    // The teacher's role change: new role active, old concluded.
    let mut roles: Vec<(u64, String)> = env
        .enrollments_of(1050, 100)
        .into_iter()
        .map(|(_, r, s)| (r, s))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        vec![(STUDENT, "completed".into()), (TEACHER, "active".into())]
    );
    let next = env
        .reconcile(&format!("{LOOSE}\nwrite_path = \"sis_import\""))
        .await;
    assert_eq!(
        next.planned_total(),
        1,
        "only the missing user remains: {next:#?}"
    );
    assert_eq!(next.planned["enroll"], 1);
}

#[tokio::test]
async fn auto_writes_through_the_api_below_the_bulk_threshold() {
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env.reconcile(LOOSE).await;
    assert_eq!(report.details.write_path, "api");
    assert_eq!(
        env.sim
            .count("POST", "/api/v1/accounts/:account_id/sis_imports"),
        0
    );
    let (seed, sis) = district();
    let env = env_with(seed, &sis).await;
    let report = env
        .reconcile(&format!("{LOOSE}\nbulk_min_changes = 5"))
        .await;
    assert_eq!(report.details.write_path, "sis_import");
}
