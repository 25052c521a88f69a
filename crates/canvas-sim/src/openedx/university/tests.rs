use super::*;
use crate::openedx::replica::ReplicaLag;
use crate::openedx::store::{OpenEdxStore, StoreSettings};

fn store(u: &University) -> OpenEdxStore {
    let settings = StoreSettings {
        jwt_expires_in: chrono::Duration::hours(1),
        waiting_expiry: None,
        retirement_salt: "s".into(),
    };
    OpenEdxStore::from_seed(&u.seed, settings, ReplicaLag::default()).expect("the seed loads")
}

#[test]
fn the_same_spec_gives_the_same_university() {
    let spec = UniversitySpec::with_learners(300).with_rng_seed(7);
    let (a, b) = (University::generate(&spec), University::generate(&spec));
    assert_eq!(a.seed, b.seed);
    assert_eq!(a.sis_rows(), b.sis_rows());
    assert_eq!(a.drift, b.drift);
    let other = University::generate(&spec.clone().with_rng_seed(8));
    assert_ne!(a.seed, other.seed);
}

#[test]
fn a_small_university_has_every_drift_kind_and_a_seed_openedx_sim_loads() {
    let u = University::generate(&UniversitySpec::with_learners(300));
    assert_eq!(u.stats.programs, 3);
    for kind in UniversityDriftKind::ALL {
        assert!(u.drift.count(kind).cases > 0, "{kind:?}: {:?}", u.drift);
    }
    assert_eq!(u.drift.expected_skipped(), 2);
    for p in &u.programs {
        assert_eq!(
            uuid::Uuid::parse_str(&p.uuid)
                .unwrap()
                .hyphenated()
                .to_string(),
            p.uuid
        );
        assert!(p.runs.iter().all(|r| r.starts_with("course-v1:StateU+")));
        assert_eq!(p.runs[0], u.programs[0].runs[0], "the core run is shared");
    }
    assert!(u.stats.with_account > 0 && u.stats.with_account < u.stats.learners);
    assert!(u.stats.staff_rows > 0);
    let s = store(&u);
    assert_eq!(
        s.tables().program_enrollments().count() as u64,
        u.stats.live_program_enrollments
    );
    assert_eq!(
        s.tables()
            .program_enrollments()
            .filter(|e| e.username.is_none())
            .count() as u64,
        u.stats.live_waiting
    );
    // The bad rows: an uppercase program UUID and a run key in the old slash form.
    let bad: Vec<&UniversitySisRow> = u.sis_rows().iter().rev().take(2).collect();
    assert!(
        bad.iter()
            .any(|r| r.course_id.chars().any(|c| c.is_ascii_uppercase()))
    );
    assert!(
        bad.iter()
            .any(|r| r.section_id.as_deref().is_some_and(|s| s.contains('/')))
    );
    for m in &u.moved {
        assert_ne!(m.from, m.to);
        for program in [&m.from, &m.to] {
            let p = u
                .programs
                .iter()
                .find(|p| &p.uuid == program)
                .expect("a program");
            assert!(p.runs.contains(&m.shared_run), "both programs have the run");
        }
    }
    assert_eq!(
        u.moved.len() as u64,
        u.drift.count(UniversityDriftKind::Moved).cases
    );
    assert_eq!(u.learner_name("su000001"), u.learner_name("SU000001"));
    assert!(u.learner_name("SU000001").is_some());
    assert_eq!(u.student_key("su000001"), Some("SU000001"));
}

#[test]
fn the_removals_stay_under_the_demo_brake_at_every_named_size() {
    for learners in [300, 5_000, 20_000] {
        let u = University::generate(&UniversitySpec::with_learners(learners));
        let p = u.drift.expected_planned();
        // What the brake counts: removals, role changes and changes to an inactive state, over live enrollments.
        let removals = p["remove"] + p["change_role"] + p["change_state"];
        let live = u.stats.live_program_enrollments + u.stats.live_course_enrollments;
        assert!(
            (removals as f64) < 0.05 * live as f64,
            "{learners}: {removals} of {live}"
        );
    }
}

#[test]
fn a_first_sync_has_an_empty_openedx_and_only_good_rows() {
    let u = University::generate(&UniversitySpec::first_sync(1_000));
    assert_eq!(u.stats.live_program_enrollments, 0);
    assert!(u.seed.program_enrollments.is_empty() && u.seed.program_course_enrollments.is_empty());
    assert_eq!(u.stats.program_rows, 1_000);
    assert_eq!(u.stats.sis_rows, u.stats.program_rows + u.stats.run_rows);
    assert_eq!(u.drift, UniversityDrift::default());
    assert!(
        u.sis_rows()
            .iter()
            .all(|r| r.course_id == r.course_id.to_lowercase())
    );
}
