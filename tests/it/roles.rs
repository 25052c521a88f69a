//! Roles and identity: role rules (the staff-as-students case), custom roles by id, SIS identities as Canvas
//! compares them, sections, and what is always left alone.

use canvas_sim::{Seed, SeedRole};

use crate::support::*;

const ADULT: u64 = 20;
const SECTION_ENROLLMENTS: &str = "/api/v1/sections/:id/enrollments";
const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
const ENROLLMENT: &str = "/api/v1/courses/:course_id/enrollments/:id";

/// With the brake loosened: converting two of a handful of live enrollments is most of them, and these tests are
/// about the rules, not the brake.
const STAFF_RULE: &str = r#"
[reconcile]
max_removal_ratio = 1.0
[[role_rules]]
name = "staff-are-adult-learners"
users_query = "SELECT user_id FROM sis_staff"
from_role = "StudentEnrollment"
to_role = "Adult Learner"
"#;

/// Everett: a staff PD course where staff were enrolled as students (one listed by the SIS, one by hand), a real
/// student aide in the same course, and a regular class.
fn everett() -> Seed {
    Seed::default()
        .role(adult_learner(ADULT))
        .user(user(1, "staff-ann"))
        .user(user(2, "staff-bob"))
        .user(user(3, "aide-cal"))
        .user(user(4, "stu-dee"))
        .course(course(100, "STAFF-PD-1"))
        .course(course(101, "ENG-9"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(2, 100, STUDENT, "active"))
        .enrollment(enrolled(3, 100, STUDENT, "active"))
        .enrollment(enrolled(1, 101, TEACHER, "active"))
        .enrollment(enrolled(4, 101, STUDENT, "active"))
}

async fn everett_env() -> TestEnv {
    let env = TestEnv::new(everett()).await;
    sqlx::query("CREATE TABLE sis_staff (user_id text)")
        .execute(&env.pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO sis_staff VALUES ('staff-ann'), ('staff-bob')")
        .execute(&env.pool)
        .await
        .expect("insert");
    env.sis(&[
        ("staff-ann", "STAFF-PD-1", None, "student", None),
        ("aide-cal", "STAFF-PD-1", None, "student", None),
        ("staff-ann", "ENG-9", None, "teacher", None),
        ("stu-dee", "ENG-9", None, "student", None),
    ])
    .await;
    env
}

fn roles_in(env: &TestEnv, user: u64, course: u64) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = env
        .enrollments_of(user, course)
        .into_iter()
        .map(|(_, role, state)| (role, state))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn everett_staff_students_become_adult_learners_and_real_students_stay() {
    let env = everett_env().await;
    let report = env.reconcile(STAFF_RULE).await;
    assert_eq!(report.status.as_str(), "succeeded", "{report:#?}");
    assert_eq!(
        report.planned["change_role"], 2,
        "ann (SIS row) and bob (hand-made): {report:#?}"
    );
    assert_eq!(report.planned_total(), 2);
    assert_eq!(
        roles_in(&env, 1, 100),
        vec![(STUDENT, "completed".into()), (ADULT, "active".into())]
    );
    assert_eq!(
        roles_in(&env, 2, 100),
        vec![(STUDENT, "completed".into()), (ADULT, "active".into())]
    );
    assert_eq!(
        roles_in(&env, 3, 100),
        vec![(STUDENT, "active".into())],
        "the student aide stays a student"
    );
    assert_eq!(
        roles_in(&env, 1, 101),
        vec![(TEACHER, "active".into())],
        "ann teaches ENG-9 as before"
    );
    assert_eq!(roles_in(&env, 4, 101), vec![(STUDENT, "active".into())]);
    // A role change costs exactly one create and one remove at Canvas.
    assert_eq!(env.sim.count("POST", SECTION_ENROLLMENTS), 2);
    assert_eq!(env.sim.count("DELETE", ENROLLMENT), 2);
    assert_eq!(env.sim.count("POST", COURSE_ENROLLMENTS), 0);
    let audit = env.audit(&report.run_id).await;
    for row in &audit {
        assert_eq!(row.action, "change_role");
        assert_eq!(row.role_before.as_deref(), Some("StudentEnrollment"));
        assert_eq!(row.role_after.as_deref(), Some("Adult Learner"));
        assert!(
            row.canvas_enrollment_id.is_some() && row.new_canvas_enrollment_id.is_some(),
            "{row:?}"
        );
    }
    let writes = env.writes();
    let second = env.reconcile(STAFF_RULE).await;
    assert_eq!(second.planned_total(), 0, "{second:#?}");
    assert_eq!(env.writes(), writes);
}

#[tokio::test]
async fn a_failed_second_step_leaves_both_roles_and_the_next_cycle_finishes() {
    use canvas_sim::{FaultAction, FaultOptions, FaultRule, SimOptions};
    let seed = Seed::default()
        .role(adult_learner(ADULT))
        .user(user(1, "staff-ann"))
        .user(user(3, "aide-cal"))
        .course(course(100, "STAFF-PD-1"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(3, 100, STUDENT, "active"));
    let env = TestEnv::with_options(SimOptions {
        seed,
        faults: FaultOptions::default().with_rule(
            FaultRule::on("DELETE", ENROLLMENT, FaultAction::Status {
                status: 400,
                content_type: Some("application/json".into()),
                body: Some(r#"{"errors":[{"message":"An error occurred.","error_code":"bad_request"}]}"#.into()),
            })
            .nth(1),
        ),
        ..SimOptions::default()
    })
    .await;
    sqlx::query("CREATE TABLE sis_staff (user_id text)")
        .execute(&env.pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO sis_staff VALUES ('staff-ann')")
        .execute(&env.pool)
        .await
        .expect("insert");
    env.sis(&[
        ("staff-ann", "STAFF-PD-1", None, "student", None),
        ("aide-cal", "STAFF-PD-1", None, "student", None),
    ])
    .await;
    // Next cycle's removal of the old role is 1 of 3 live enrollments: STAFF_RULE allows it.
    let report = env.reconcile(STAFF_RULE).await;
    assert_eq!(report.failed, 1, "{report:#?}");
    let audit = env.audit(&report.run_id).await;
    let failed = audit
        .iter()
        .find(|a| a.outcome == "failed")
        .expect("failed row");
    assert_eq!(failed.action, "change_role");
    assert!(failed.new_canvas_enrollment_id.is_some());
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("enrolled in both roles")),
        "{failed:?}"
    );
    assert_eq!(
        roles_in(&env, 1, 100),
        vec![(STUDENT, "active".into()), (ADULT, "active".into())]
    );
    let next = env.reconcile(STAFF_RULE).await;
    assert_eq!(
        next.planned["remove"], 1,
        "the old role is removed next cycle: {next:#?}"
    );
    assert_eq!(
        roles_in(&env, 1, 100),
        vec![(STUDENT, "completed".into()), (ADULT, "active".into())]
    );
}

#[tokio::test]
async fn a_renamed_custom_role_is_still_the_same_role() {
    let env = everett_env().await;
    env.reconcile(STAFF_RULE).await;
    env.sim
        .with_store(|s| s.rename_role(ADULT, "Staff Learner").expect("rename"));
    let rule = STAFF_RULE.replace("Adult Learner", "Staff Learner");
    let report = env.reconcile(&rule).await;
    assert_eq!(
        report.planned_total(),
        0,
        "matching is by role_id: {report:#?}"
    );
}

#[tokio::test]
async fn a_rule_naming_an_inactive_or_missing_role_is_fatal_and_changes_nothing() {
    let env = everett_env().await;
    env.sim
        .with_store(|s| s.set_role_state(ADULT, "inactive").expect("inactivate"));
    let out = env.cli(&["reconcile", "--json"], STAFF_RULE).await;
    assert_eq!(out.status.code(), Some(1));
    let json = json_report(&out);
    let error = json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("staff-are-adult-learners") && error.contains("inactive"),
        "{error}"
    );
    assert_eq!(env.writes(), 0);
    let out = env
        .cli(
            &["check"],
            &STAFF_RULE.replace("Adult Learner", "Adult Lerner"),
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("role `Adult Lerner` does not exist"),
        "{stdout}"
    );
}

#[tokio::test]
async fn two_rules_that_disagree_about_a_user_are_reported_not_guessed() {
    let env = everett_env().await;
    let rules = format!(
        "{STAFF_RULE}\n[[role_rules]]\nname = \"ann-teaches\"\nusers_query = \"SELECT 'staff-ann'::text\"\nfrom_role = \"student\"\nto_role = \"teacher\"\n"
    );
    let report = env.reconcile(&rules).await;
    assert_eq!(report.details.role_rule_conflicts, 1);
    assert_eq!(
        roles_in(&env, 1, 100),
        vec![(STUDENT, "active".into())],
        "ann is left as she is"
    );
    assert_eq!(
        roles_in(&env, 2, 100),
        vec![(STUDENT, "completed".into()), (ADULT, "active".into())]
    );
    let audit = env.audit(&report.run_id).await;
    assert!(audit.iter().any(|a| {
        a.user_id.as_deref() == Some("staff-ann")
            && a.outcome == "skipped"
            && a.error
                .as_deref()
                .is_some_and(|e| e.contains("ann-teaches"))
    }));
}

#[tokio::test]
async fn login_ids_match_case_insensitively() {
    let seed = Seed::default()
        .user(user(1, "s1").with_login_id("Jane.Doe@District.EDU"))
        .user(user(2, "s2").with_login_id("sam@district.edu"))
        .course(course(100, "MATH"))
        .enrollment(enrolled(1, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("jane.doe@district.edu", "MATH", None, "student", None),
        ("SAM@District.edu", "MATH", None, "student", None),
    ])
    .await;
    let extra = "[sis]\nuser_id_kind = \"sis_login_id\"";
    let report = env.reconcile(extra).await;
    assert_eq!(
        report.planned["enroll"], 1,
        "jane matched despite case; sam enrolled: {report:#?}"
    );
    assert_eq!(report.planned["remove"], 0);
    assert_eq!(roles_in(&env, 2, 100), vec![(STUDENT, "active".into())]);
    assert_eq!(env.reconcile(extra).await.planned_total(), 0);
}

#[tokio::test]
async fn sis_user_ids_are_case_sensitive() {
    let seed = Seed::default()
        .user(user(1, "ABC"))
        .user(user(2, "abc"))
        .course(course(100, "MATH"))
        .enrollment(enrolled(1, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("ABC", "MATH", None, "student", None),
        ("abc", "MATH", None, "student", None),
    ])
    .await;
    let report = env.reconcile("").await;
    assert_eq!(report.planned["enroll"], 1);
    assert_eq!(
        roles_in(&env, 2, 100),
        vec![(STUDENT, "active".into())],
        "abc is another user"
    );
}

#[tokio::test]
async fn sis_ids_with_slashes_dots_percent_spaces_and_accents_work_in_urls() {
    let odd_user = "d.o'neil/2024 %é";
    let odd_course = "CS/101.11é";
    let odd_section = "CS/101.11é #2";
    let seed = Seed::default()
        .user(user(1, odd_user))
        .user(user(2, "plain"))
        .course(course(100, odd_course))
        .section(section(300, 100, odd_section))
        .course(course(101, "CS"))
        .section(section(301, 101, "CS 101"))
        .enrollment(enrolled(2, 100, STUDENT, "active").in_section(300));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        (odd_user, odd_course, Some(odd_section), "student", None),
        ("plain", odd_course, Some(odd_section), "student", None),
    ])
    .await;
    let report = env.reconcile("").await;
    assert_eq!(
        (report.planned["enroll"], report.applied, report.failed),
        (1, 1, 0),
        "{report:#?}"
    );
    let placed = env.sim.with_store(|s| {
        s.enrollments_of(1, 100)
            .first()
            .map(|e| e.course_section_id)
    });
    assert_eq!(placed, Some(300), "the right section, not a look-alike");
    assert!(
        env.enrollments_of(1, 101).is_empty(),
        "`CS/101` never resolved to course `CS`"
    );
    assert_eq!(env.reconcile("").await.planned_total(), 0);
}

#[tokio::test]
async fn a_section_move_enrolls_in_the_new_section_and_removes_the_old() {
    let seed = Seed::default()
        .user(user(1, "mover"))
        .user(user(2, "stayer"))
        .course(course(100, "BIO"))
        .section(section(200, 100, "BIO-A"))
        .section(section(201, 100, "BIO-B"))
        .enrollment(enrolled(1, 100, STUDENT, "active").in_section(200))
        .enrollment(enrolled(2, 100, STUDENT, "active").in_section(200));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("mover", "BIO", Some("BIO-B"), "student", None),
        ("stayer", "BIO", Some("BIO-A"), "student", None),
    ])
    .await;
    let report = env.reconcile("[reconcile]\nmax_removal_ratio = 0.5").await;
    assert_eq!(
        (report.planned["enroll"], report.planned["remove"]),
        (1, 1),
        "{report:#?}"
    );
    let rows = env.sim.with_store(|s| {
        let mut v: Vec<(u64, String)> = s
            .enrollments_of(1, 100)
            .into_iter()
            .map(|e| (e.course_section_id, e.workflow_state.as_str().to_owned()))
            .collect();
        v.sort();
        v
    });
    assert_eq!(
        rows,
        vec![(200, "completed".into()), (201, "active".into())]
    );
}

#[tokio::test]
async fn null_section_means_the_default_section_and_coexists_with_a_named_one() {
    let seed = Seed::default()
        .user(user(1, "u1"))
        .course(course(100, "HIST"))
        .section(section(200, 100, "HIST-A"))
        .enrollment(enrolled(1, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("u1", "HIST", None, "student", None),
        ("u1", "HIST", Some("HIST-A"), "student", None),
    ])
    .await;
    let report = env.reconcile("").await;
    assert_eq!(
        report.planned["enroll"], 1,
        "only the named section is missing: {report:#?}"
    );
    assert_eq!(report.planned["remove"], 0);
    assert_eq!(env.enrollments_of(1, 100).len(), 2);
    assert_eq!(env.reconcile("").await.planned_total(), 0);
}

#[tokio::test]
async fn observers_unmanaged_courses_and_non_sis_users_are_left_alone() {
    let seed = Seed::default()
        .user(user(1, "kid"))
        .user(user(2, "parent"))
        .user(canvas_sim::SeedUser::new(3, "Test Student"))
        .course(course(100, "MATH"))
        .course(course(101, "CLUB-UNMANAGED"))
        .observer_link(2, 1)
        .enrollment(enrolled(3, 100, STUDENT, "active"))
        .enrollment(enrolled(1, 101, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[("kid", "MATH", None, "student", None)]).await;
    let report = env.reconcile("").await;
    assert_eq!(report.planned["enroll"], 1);
    // Canvas auto-enrolled the linked observer.
    let observer_rows = env.enrollments_of(2, 100);
    assert_eq!(
        observer_rows.len(),
        1,
        "linked observer auto-created: {observer_rows:?}"
    );
    let second = env.reconcile("").await;
    assert_eq!(
        second.planned_total(),
        0,
        "observer, test student and unmanaged course untouched: {second:#?}"
    );
    assert_eq!(roles_in(&env, 3, 100), vec![(STUDENT, "active".into())]);
    assert_eq!(roles_in(&env, 1, 101), vec![(STUDENT, "active".into())]);
    assert_eq!(env.enrollments_of(2, 100)[0].2, "active");
}

#[tokio::test]
async fn roles_are_read_once_per_cycle_and_custom_roles_resolve_by_name() {
    let seed = everett().role(SeedRole::custom(21, "Co-Teacher", "TeacherEnrollment"));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("stu-dee", "ENG-9", None, "student", None),
        ("staff-bob", "ENG-9", None, "Co-Teacher", None),
    ])
    .await;
    sqlx::query("CREATE TABLE sis_staff (user_id text)")
        .execute(&env.pool)
        .await
        .expect("create");
    let report = env.reconcile("[reconcile]\nmax_removal_ratio = 0.5").await;
    assert_eq!(env.sim.count("GET", "/api/v1/accounts/:id/roles"), 1);
    assert_eq!(report.planned["enroll"], 1);
    assert_eq!(roles_in(&env, 2, 101), vec![(21, "active".into())]);
}
