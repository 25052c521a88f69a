//! The sample-district generator: deterministic, scales, injects each drift kind the number of times it says, its
//! seed is the CONTRACT seed format, its SIS rows load with COPY, and a real cycle over it converges.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use canvas_sim::district::{
    ADULT_LEARNER, ADULT_LEARNER_ROLE_ID, District, DistrictSpec, DriftKind, SisRowOwned, load_sis,
};
use canvas_sim::{Seed, SimOptions};
use sqlx::Row;

use crate::support::*;

const STAFF_RULE: &str = "[reconcile]\nmax_removal_ratio = 0.05\n\n\
    [[role_rules]]\nname = \"staff-are-adult-learners\"\nusers_query = \"SELECT user_id FROM sis_staff\"\n\
    from_role = \"StudentEnrollment\"\nto_role = \"Adult Learner\"\n";

fn small(seed: u64) -> District {
    District::generate(&DistrictSpec::small().with_rng_seed(seed))
}

fn seed_json(d: &District) -> String {
    serde_json::to_string(&d.seed).expect("seed serialises")
}

#[test]
fn same_spec_and_seed_give_the_same_district() {
    let a = small(7);
    let b = small(7);
    assert_eq!(seed_json(&a), seed_json(&b));
    assert!(a.sis_rows().eq(b.sis_rows()), "SIS rows differ");
    assert!(a.staff_rows().eq(b.staff_rows()), "staff rows differ");
    assert_eq!(a.drift, b.drift);
    assert_eq!(a.stats, b.stats);

    let c = small(8);
    assert_ne!(
        seed_json(&a),
        seed_json(&c),
        "another generator seed gives another district"
    );
    assert!(!a.sis_rows().eq(c.sis_rows()));
}

#[test]
fn sizes_scale() {
    let mut previous = 0;
    for spec in [
        DistrictSpec::with_students(40),
        DistrictSpec::small(),
        DistrictSpec::with_students(2_000),
        DistrictSpec::medium(),
    ] {
        let d = District::generate(&spec);
        let s = &d.stats;
        assert_eq!(s.students, spec.students);
        assert_eq!(s.schools, spec.schools);
        assert_eq!(d.schools.len() as u32, spec.schools);
        assert_eq!(s.canvas_enrollments, d.seed.enrollments.len() as u64);
        assert_eq!(s.sis_rows, d.sis_rows().count() as u64);
        // Two terms of four courses, plus teachers, staff, observers and drift: 8 to 12 per student.
        let per_student = s.canvas_enrollments as f64 / f64::from(s.students);
        assert!(
            (8.0..12.0).contains(&per_student),
            "{} enrollments per student at {} students",
            per_student,
            s.students
        );
        assert!(s.canvas_enrollments > previous);
        previous = s.canvas_enrollments;
        // Ids are unique, and every enrollment points at a user, course and section of the seed.
        let users: HashSet<u64> = d.seed.users.iter().map(|u| u.id).collect();
        let sections: HashMap<u64, u64> = d
            .seed
            .sections
            .iter()
            .map(|s| (s.id, s.course_id))
            .collect();
        assert_eq!(users.len(), d.seed.users.len());
        assert_eq!(sections.len(), d.seed.sections.len());
        for e in &d.seed.enrollments {
            assert!(users.contains(&e.user_id));
            let section = e.course_section_id.expect("explicit section");
            assert_eq!(sections.get(&section).copied(), e.course_id);
        }
    }
    assert_eq!(DistrictSpec::medium().students, 5_000);
    assert_eq!(DistrictSpec::large().students, 20_000);
}

#[test]
fn sis_ids_are_unique_however_many_schools() {
    let spec = DistrictSpec {
        schools: 80,
        ..DistrictSpec::with_students(1_600)
    };
    let d = District::generate(&spec);
    let unique = |ids: Vec<&str>| {
        let n = ids.len();
        let set: HashSet<&str> = ids.into_iter().collect();
        set.len() == n
    };
    assert!(unique(d.schools.iter().map(|s| s.code.as_str()).collect()));
    assert!(unique(d.schools.iter().map(|s| s.name.as_str()).collect()));
    assert!(unique(
        d.seed
            .users
            .iter()
            .filter_map(|u| u.sis_user_id.as_deref())
            .collect()
    ));
    assert!(unique(
        d.seed
            .courses
            .iter()
            .filter_map(|c| c.sis_course_id.as_deref())
            .collect()
    ));
    assert!(unique(
        d.seed
            .sections
            .iter()
            .filter_map(|s| s.sis_section_id.as_deref())
            .collect()
    ));
    let observed = observed_drift(&d);
    for kind in DriftKind::ALL {
        assert_eq!(
            observed.get(&kind).copied().unwrap_or(0),
            d.drift.count(kind),
            "{kind:?} with 80 schools"
        );
    }
}

/// Counts each drift kind from the seed and the SIS rows themselves, independently of the generator's summary.
fn observed_drift(d: &District) -> HashMap<DriftKind, u64> {
    let users: HashMap<&str, u64> = d
        .seed
        .users
        .iter()
        .filter_map(|u| Some((u.sis_user_id.as_deref()?, u.id)))
        .collect();
    let courses: HashMap<&str, u64> = d
        .seed
        .courses
        .iter()
        .filter_map(|c| Some((c.sis_course_id.as_deref()?, c.id)))
        .collect();
    let sections: HashMap<&str, u64> = d
        .seed
        .sections
        .iter()
        .filter_map(|s| Some((s.sis_section_id.as_deref()?, s.id)))
        .collect();
    let default_section: HashMap<u64, u64> = d
        .seed
        .sections
        .iter()
        .filter(|s| s.default_section)
        .map(|s| (s.course_id, s.id))
        .collect();
    let staff: HashSet<u64> = d.staff_user_ids().map(|u| users[u]).collect();
    // Live rows by (user, section): (role, state).
    let mut live: HashMap<(u64, u64), Vec<(u64, &str)>> = HashMap::new();
    for e in &d.seed.enrollments {
        if e.associated_user_id.is_none() {
            live.entry((e.user_id, e.course_section_id.unwrap()))
                .or_default()
                .push((
                    e.role_id.unwrap(),
                    e.enrollment_state.as_deref().unwrap_or("active"),
                ));
        }
    }
    let mut listed: HashSet<(u64, u64)> = HashSet::new();
    let mut managed: HashSet<u64> = HashSet::new();
    let mut n: HashMap<DriftKind, u64> = HashMap::new();
    let good: Vec<SisRowOwned> = d.sis_rows_owned();
    for row in &good {
        let (Some(user), Some(course)) = (
            row.user_id.as_deref().and_then(|u| users.get(u)),
            row.course_id.as_deref().and_then(|c| courses.get(c)),
        ) else {
            *n.entry(DriftKind::BadSisRow).or_default() += 1;
            continue;
        };
        let valid_role = matches!(row.role.as_deref(), Some("student" | "teacher"));
        let status = row.status.as_deref().unwrap_or("active");
        if !valid_role || !["active", "inactive", "completed", "deleted"].contains(&status) {
            *n.entry(DriftKind::BadSisRow).or_default() += 1;
            continue;
        }
        managed.insert(*course);
        let section = match row.section_id.as_deref() {
            Some(s) => sections[s],
            None => default_section[course],
        };
        listed.insert((*user, section));
        let wanted_role = match (row.role.as_deref(), staff.contains(user)) {
            (Some("teacher"), _) => 4,
            (_, true) => ADULT_LEARNER_ROLE_ID,
            _ => 3,
        };
        let rows = live.get(&(*user, section)).cloned().unwrap_or_default();
        let kind = match rows.as_slice() {
            [] if status != "deleted" => Some(DriftKind::Missing),
            [(5, "active")] => Some(DriftKind::WrongRole),
            [(3, "active")] if wanted_role == ADULT_LEARNER_ROLE_ID => {
                Some(DriftKind::StaffAsStudent)
            }
            [(_, "active")] if status == "deleted" => Some(DriftKind::DroppedStillActive),
            [(_, state)] if *state != status && status != "deleted" => Some(DriftKind::WrongState),
            _ => None,
        };
        if let Some(kind) = kind {
            *n.entry(kind).or_default() += 1;
        }
    }
    for e in &d.seed.enrollments {
        let course = e.course_id.unwrap();
        if !managed.contains(&course) {
            *n.entry(DriftKind::UnmanagedCourse).or_default() += 1;
        } else if e.associated_user_id.is_some() {
            *n.entry(DriftKind::LinkedObserver).or_default() += 1;
        } else if !listed.contains(&(e.user_id, e.course_section_id.unwrap())) {
            *n.entry(DriftKind::Extra).or_default() += 1;
        }
    }
    n
}

#[test]
fn each_drift_kind_is_present_with_the_count_the_summary_gives() {
    for seed in [canvas_sim::district::DEFAULT_RNG_SEED, 1, 42] {
        let d = small(seed);
        let observed = observed_drift(&d);
        for kind in DriftKind::ALL {
            let count = d.drift.count(kind);
            assert!(count > 0, "seed {seed}: no {kind:?} injected");
            assert_eq!(
                observed.get(&kind).copied().unwrap_or(0),
                count,
                "seed {seed}: {kind:?} in the seed and SIS rows vs the summary"
            );
        }
    }
}

#[test]
fn staff_are_teachers_and_other_employees_and_never_students() {
    let d = small(3);
    let staff: HashSet<&str> = d.staff_user_ids().collect();
    assert_eq!(
        staff.len() as u32,
        d.stats.teachers + d.stats.staff,
        "one sis_staff row per employee"
    );
    assert!(
        staff
            .iter()
            .all(|u| u.starts_with('T') || u.starts_with('E'))
    );
    // Staff are listed in their staff course as students (the case the rule is for).
    let staff_rows = d
        .sis_rows()
        .filter(|r| r.course_id.is_some_and(|c| c.ends_with("-STAFF-PD")))
        .count();
    assert_eq!(staff_rows, staff.len());
    assert!(
        d.seed
            .roles
            .iter()
            .any(|r| r.id == ADULT_LEARNER_ROLE_ID && r.role == ADULT_LEARNER)
    );
}

#[tokio::test]
async fn the_seed_round_trips_through_the_contract_json_and_loads_into_the_simulator() {
    let d = small(5);
    let text = seed_json(&d);
    // Canvas's own field names (CONTRACT.md "Binaries").
    for field in [
        "\"accounts\"",
        "\"sis_user_id\"",
        "\"login_id\"",
        "\"sis_course_id\"",
        "\"course_section_id\"",
        "\"role_id\"",
        "\"associated_user_id\"",
        "\"default_section\"",
        "\"observer_links\"",
        "\"base_role_type\"",
    ] {
        assert!(text.contains(field), "seed JSON lacks {field}");
    }
    let parsed: Seed = serde_json::from_str(&text).expect("seed parses back");
    assert_eq!(parsed, d.seed);

    let sim = canvas_sim::spawn(SimOptions {
        seed: parsed,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator accepts the seed");
    let (users, enrollments, links, adult) = sim.with_store(|s| {
        (
            s.users().count(),
            s.enrollments().count(),
            s.observer_links().len(),
            s.find_role_by_name(ADULT_LEARNER).map(|r| r.id),
        )
    });
    assert_eq!(users, d.seed.users.len() + 1, "plus the token's own user");
    assert_eq!(enrollments, d.seed.enrollments.len());
    assert_eq!(links, d.stats.parents as usize);
    assert_eq!(adult, Some(ADULT_LEARNER_ROLE_ID));
    // And over HTTP: a staff course lists its members with SIS ids.
    let code = &d.schools[0].code;
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/courses/sis_course_id:{code}-STAFF-PD/enrollments?per_page=100",
            sim.base_url()
        ))
        .bearer_auth(canvas_sim::DEFAULT_TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert!(!body.as_array().expect("array").is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn load_sis_copies_every_row_exactly() {
    let d = small(9);
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let loaded = load_sis(&pool, &d).await.expect("load");
    assert_eq!(loaded.enrollment_rows, d.stats.sis_rows);
    assert_eq!(loaded.staff_rows as u32, d.stats.teachers + d.stats.staff);
    let rows: Vec<SisRowOwned> =
        sqlx::query("SELECT user_id, course_id, section_id, role, status FROM sis_enrollments")
            .fetch_all(&pool)
            .await
            .expect("read back")
            .into_iter()
            .map(|r| SisRowOwned {
                user_id: r.get(0),
                course_id: r.get(1),
                section_id: r.get(2),
                role: r.get(3),
                status: r.get(4),
            })
            .collect();
    let key = |r: &SisRowOwned| format!("{r:?}");
    let mut got: Vec<String> = rows.iter().map(key).collect();
    let mut want: Vec<String> = d.sis_rows_owned().iter().map(key).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "NULLs, empty strings and padding survive COPY");
    // Loading again replaces rather than appends.
    load_sis(&pool, &d).await.expect("reload");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sis_enrollments")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count as u64, d.stats.sis_rows);
    pool.close().await;
}

/// Enrollment rows by id: (user, role, state).
fn snapshot(env: &TestEnv) -> HashMap<u64, (u64, u64, String)> {
    env.sim.with_store(|s| {
        s.enrollments()
            .map(|e| {
                (
                    e.id,
                    (e.user_id, e.role_id, e.workflow_state.as_str().to_owned()),
                )
            })
            .collect()
    })
}

async fn converges(seed: u64) {
    let d = small(seed);
    let env = TestEnv::new(d.seed.clone()).await;
    load_sis(&env.pool, &d).await.expect("load SIS");
    let before = snapshot(&env);

    let first = env.reconcile(STAFF_RULE).await;
    assert_eq!(first.status.as_str(), "succeeded", "{first:#?}");
    assert_eq!(
        first.planned,
        d.drift.expected_planned(),
        "seed {seed}: the plan is the injected drift"
    );
    assert_eq!(first.skipped, d.drift.expected_skipped());
    assert_eq!(first.failed, 0);
    assert!(!first.safety.tripped);

    let second = env.reconcile(STAFF_RULE).await;
    assert_eq!(second.status.as_str(), "succeeded", "{second:#?}");
    assert_eq!(
        second.planned_total(),
        0,
        "seed {seed}: converged: {second:#?}"
    );

    // Staff listed as students now hold Adult Learner in their staff course; the old Student rows are concluded.
    let after = snapshot(&env);
    let audit = env.audit(&first.run_id).await;
    let staff: HashSet<&str> = d.staff_user_ids().collect();
    let staff_changes: Vec<&AuditRecord> = audit
        .iter()
        .filter(|a| a.role_after.as_deref() == Some(ADULT_LEARNER))
        .collect();
    assert_eq!(
        staff_changes
            .iter()
            .filter(|a| a.action == "change_role")
            .count() as u64,
        d.drift.staff_as_student
    );
    for a in &staff_changes {
        let user = a.user_id.as_deref().unwrap();
        assert!(staff.contains(user), "{user} is not staff: {a:?}");
        assert!(a.course_id.as_deref().unwrap().ends_with("-STAFF-PD"));
        assert_eq!(a.outcome, "applied");
        if a.action == "change_role" {
            let old = a.canvas_enrollment_id.unwrap() as u64;
            let new = a.new_canvas_enrollment_id.unwrap() as u64;
            assert_eq!(after[&old].2, "completed");
            assert_eq!(after[&new].1, ADULT_LEARNER_ROLE_ID);
            assert_eq!(after[&new].2, "active");
        }
    }
    // Real students never become Adult Learners...
    let staff_canvas_ids: HashSet<u64> = d
        .seed
        .users
        .iter()
        .filter(|u| u.sis_user_id.as_deref().is_some_and(|s| staff.contains(s)))
        .map(|u| u.id)
        .collect();
    assert!(
        after
            .values()
            .filter(|(_, role, _)| *role == ADULT_LEARNER_ROLE_ID)
            .all(|(user, _, _)| staff_canvas_ids.contains(user))
    );
    // ...and every enrollment the plan did not name is exactly as it was.
    let touched: HashSet<u64> = audit
        .iter()
        .filter_map(|a| a.canvas_enrollment_id)
        .map(|id| id as u64)
        .collect();
    for (id, was) in &before {
        if !touched.contains(id) {
            assert_eq!(&after[id], was, "enrollment {id} changed without a plan");
        }
    }
}

#[tokio::test]
async fn the_district_converges_with_staff_as_adult_learners_and_students_untouched() {
    converges(canvas_sim::district::DEFAULT_RNG_SEED).await;
}

#[tokio::test]
async fn another_generator_seed_converges_too() {
    converges(11).await;
}

/// Generation speed for the benchmark sizes: `cargo test --release --test it district::a_million -- --ignored
/// --nocapture`.
#[test]
#[ignore = "slow in debug builds; run with --release"]
fn a_million_enrollments_generate_in_seconds() {
    let started = Instant::now();
    let d = District::generate(&DistrictSpec::with_students(115_000));
    let generated = started.elapsed();
    let rows = d.sis_rows().count();
    println!(
        "{} enrollments, {} SIS rows, {} users in {:.2?} (+{:.2?} to render the rows)",
        d.stats.canvas_enrollments,
        rows,
        d.seed.users.len(),
        generated,
        started.elapsed() - generated
    );
    assert!(d.stats.canvas_enrollments >= 1_000_000);
    assert!(generated.as_secs_f64() < 10.0);
}
