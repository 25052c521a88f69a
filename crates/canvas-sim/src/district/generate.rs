//! The generator's machinery: its own RNG, the id scheme of the seed, and the builders every school and
//! enrollment goes through, so that ids and seed rows are made in one place.

use super::names::{FIRST_NAMES, LAST_NAMES};
use super::sis::{SisEntry, SisRole, SisRowOwned, SisStatus, StaffEntry};
use super::{
    ADULT_LEARNER, ADULT_LEARNER_ROLE_ID, District, DistrictSpec, DistrictStats, DriftSummary,
    ROOT_ACCOUNT_ID, SECTIONS_PER_COURSE, School, TERMS, Term,
};
use crate::{Seed, SeedAccount, SeedCourse, SeedEnrollment, SeedRole, SeedSection, SeedUser};

/// A Canvas enrollment state the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Active,
    Inactive,
    Completed,
    Deleted,
}

impl State {
    /// Always named: a seed file's enrollment state is required (seed.rs), and the generated seed is written to one.
    fn seed_text(self) -> Option<String> {
        match self {
            State::Active => Some("active".to_owned()),
            State::Inactive => Some("inactive".to_owned()),
            State::Completed => Some("completed".to_owned()),
            State::Deleted => Some("deleted".to_owned()),
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and ours, so the district never changes under a dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u32) as usize]
    }
}

pub(super) fn user_canvas_id(index: u32) -> u64 {
    1_000 + u64::from(index)
}
fn course_canvas_id(index: u32) -> u64 {
    100 + u64::from(index)
}
fn section_canvas_id(index: u32) -> u64 {
    500 + u64::from(index)
}
pub(super) fn account_canvas_id(school: u32) -> u64 {
    2 + u64::from(school)
}

/// One term's course block in a school: courses `first_course..+count`, course `c`'s sections at
/// `first_section + c * SECTIONS_PER_COURSE ..`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TermBlock {
    pub(super) term: Term,
    pub(super) first_course: u32,
    pub(super) first_section: u32,
    pub(super) count: u32,
}

impl TermBlock {
    pub(super) fn course(&self, c: u32) -> u32 {
        self.first_course + c
    }
    pub(super) fn section(&self, c: u32, k: u32) -> u32 {
        self.first_section + c * SECTIONS_PER_COURSE + k
    }
}

pub(super) struct Generator<'s> {
    pub(super) spec: &'s DistrictSpec,
    pub(super) rng: Rng,
    pub(super) seed: Seed,
    pub(super) schools: Vec<School>,
    pub(super) drift: DriftSummary,
    pub(super) stats: DistrictStats,
    sis: Vec<SisEntry>,
    pub(super) bad_rows: Vec<SisRowOwned>,
    pub(super) staff: Vec<StaffEntry>,
    /// This school's current-term student enrollments in step with the SIS: (student, course, section).
    pub(super) clean: Vec<(u32, u32, u32)>,
    /// Whether the SIS names course `i` (for `live_in_managed`).
    managed: Vec<bool>,
    pub(super) next_student: u32,
    pub(super) next_teacher: u32,
    pub(super) next_staff: u32,
    pub(super) next_parent: u32,
}

impl<'s> Generator<'s> {
    pub(super) fn new(spec: &'s DistrictSpec) -> Self {
        let students = spec.students as usize;
        // About nine enrollments and one SIS row per enrollment per student: reserve once.
        let per_student = (spec.courses_per_term as usize * TERMS.len()) + 2;
        let mut seed = Seed::default();
        seed.users.reserve(students + students / 2 + 64);
        seed.enrollments.reserve(students * per_student + 1_024);
        Generator {
            spec,
            rng: Rng(spec.rng_seed ^ 0x5EED_D157_0000_0000),
            seed,
            schools: Vec::new(),
            drift: DriftSummary::default(),
            stats: DistrictStats::default(),
            sis: Vec::with_capacity(students * per_student + 1_024),
            bad_rows: Vec::new(),
            staff: Vec::new(),
            clean: Vec::new(),
            managed: Vec::new(),
            next_student: 100_001,
            next_teacher: 10_001,
            next_staff: 50_001,
            next_parent: 500_001,
        }
    }

    pub(super) fn run(mut self) -> District {
        self.seed.accounts.push(SeedAccount {
            id: ROOT_ACCOUNT_ID,
            name: "Springfield Unified School District".into(),
            sis_account_id: Some("SUSD".into()),
            ..SeedAccount::default()
        });
        self.seed.roles.push(
            SeedRole::custom(ADULT_LEARNER_ROLE_ID, ADULT_LEARNER, "StudentEnrollment")
                .in_account(ROOT_ACCOUNT_ID),
        );
        let schools = self.spec.schools.max(1);
        for school in 0..schools {
            let students =
                self.spec.students / schools + u32::from(school < self.spec.students % schools);
            self.school(school, students);
        }
        self.stats.schools = schools;
        self.stats.terms = TERMS.len() as u32;
        self.stats.sis_rows = (self.sis.len() + self.bad_rows.len()) as u64;
        self.stats.canvas_enrollments = self.seed.enrollments.len() as u64;
        let managed = &self.managed;
        self.stats.live_in_managed = self
            .seed
            .enrollments
            .iter()
            .filter(|e| {
                e.enrollment_state.as_deref() != Some("deleted")
                    && e.course_id
                        .is_some_and(|c| managed[(c - course_canvas_id(0)) as usize])
            })
            .count() as u64;
        District {
            spec: self.spec.clone(),
            seed: self.seed,
            schools: self.schools,
            drift: self.drift,
            stats: self.stats,
            sis: self.sis,
            bad_rows: self.bad_rows,
            staff: self.staff,
        }
    }

    pub(super) fn user(&mut self, sis_user_id: String, first: &str, last: &str) -> u32 {
        let index = self.seed.users.len() as u32;
        let login_id = sis_user_id.to_ascii_lowercase();
        self.seed.users.push(SeedUser {
            id: user_canvas_id(index),
            name: format!("{first} {last}"),
            sortable_name: Some(format!("{last}, {first}")),
            sis_user_id: Some(sis_user_id),
            login_id: Some(login_id),
            ..SeedUser::default()
        });
        index
    }

    pub(super) fn person(&mut self, prefix: char, number: u32, width: usize) -> u32 {
        let first = self.rng.pick(FIRST_NAMES);
        let last = self.rng.pick(LAST_NAMES);
        self.user(format!("{prefix}{number:0width$}"), first, last)
    }

    /// A course; `managed` when the SIS names it.
    pub(super) fn course(
        &mut self,
        school: u32,
        name: String,
        code: &str,
        sis: Option<String>,
        managed: bool,
    ) -> u32 {
        let index = self.seed.courses.len() as u32;
        self.managed.push(managed);
        self.seed.courses.push(SeedCourse {
            id: course_canvas_id(index),
            name,
            course_code: Some(code.to_owned()),
            account_id: Some(account_canvas_id(school)),
            sis_course_id: sis,
            ..SeedCourse::default()
        });
        index
    }

    pub(super) fn section(&mut self, course: u32, name: String, sis: Option<String>) -> u32 {
        let index = self.seed.sections.len() as u32;
        self.seed.sections.push(SeedSection {
            id: section_canvas_id(index),
            course_id: course_canvas_id(course),
            name,
            default_section: sis.is_none(),
            sis_section_id: sis,
            ..SeedSection::default()
        });
        index
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn enroll(
        &mut self,
        user: u32,
        course: u32,
        section: u32,
        role_id: u64,
        state: State,
        observing: Option<u32>,
        by_sis: bool,
    ) {
        let id = self.seed.enrollments.len() as u64 + 1;
        self.seed.enrollments.push(SeedEnrollment {
            id: Some(id),
            user_id: user_canvas_id(user),
            course_id: Some(course_canvas_id(course)),
            course_section_id: Some(section_canvas_id(section)),
            role_id: Some(role_id),
            enrollment_state: state.seed_text(),
            associated_user_id: observing.map(user_canvas_id),
            created_by_sis: Some(by_sis),
            ..SeedEnrollment::default()
        });
    }

    pub(super) fn sis_row(
        &mut self,
        user: u32,
        course: u32,
        section: u32,
        role: SisRole,
        status: SisStatus,
    ) {
        self.sis.push(SisEntry {
            user,
            course,
            section,
            role,
            status,
        });
    }
}
