//! The sample district: a deterministic generator of a realistic school district, its SIS rows, and a live Canvas
//! that has drifted from them. `rostersync demo`, the tests and the benchmarks all use it.
//!
//! What one [`District`] holds:
//! - schools (one Canvas sub-account each), two terms (a concluded fall term and the current spring term), courses
//!   with two sections each, students, teachers, non-teaching staff, parents, and per school a staff course whose
//!   members the SIS lists as students (the case the `Adult Learner` role rule exists for);
//! - the SIS: one row per enrollment the SIS wants, plus a few rows that cannot be understood
//!   ([`District::sis_rows`]), and the staff list ([`District::staff_rows`]) a role rule selects from;
//! - the live Canvas as a simulator [`Seed`] (CONTRACT.md seed format): what the SIS wants, except where drift was
//!   injected. Every injected drift is counted in [`DriftSummary`], so a test can compare a cycle's plan with
//!   [`DriftSummary::expected_planned`] exactly.
//!
//! The drift kinds are disjoint by construction (one SIS enrollment gets at most one), and bad SIS rows are only
//! added next to enrollments without drift, because a bad row puts its user and course on hold (no removal, no role
//! change there) and would otherwise change what the plan decides.
//!
//! Generation is pure and deterministic: the output depends only on the [`DistrictSpec`]. It uses its own
//! SplitMix64, so a `rand` upgrade cannot change the sample district. SIS rows are kept as 16-byte index records and
//! rendered as borrowed strings on the way out, so a million-enrollment district costs little beyond its seed.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sqlx::PgPool;

use crate::{
    ObserverLink, Seed, SeedAccount, SeedCourse, SeedEnrollment, SeedRole, SeedSection, SeedUser,
};

/// An owned SIS row: the same five text columns (`user_id course_id section_id role status`, CONTRACT.md) the
/// cycle reads. Plain on purpose: this crate imports nothing of rostersync; code that feeds rows to rostersync's
/// parser converts field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SisRowOwned {
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
}

/// The custom course role staff get in their staff course (base type StudentEnrollment).
pub const ADULT_LEARNER: &str = "Adult Learner";
/// Its Canvas role id in the generated seed (the built-in course roles are 3..=7).
pub const ADULT_LEARNER_ROLE_ID: u64 = 10;
/// The generator seed used when none is given.
pub const DEFAULT_RNG_SEED: u64 = 2026;

const STUDENT_ROLE_ID: u64 = 3;
const TEACHER_ROLE_ID: u64 = 4;
const TA_ROLE_ID: u64 = 5;
const OBSERVER_ROLE_ID: u64 = 7;
const ROOT_ACCOUNT_ID: u64 = 1;
const SECTIONS_PER_COURSE: u32 = 2;
const SECTIONS_PER_TEACHER: u32 = 5;
/// `SisEntry::section` for "the course's default section" (SIS `section_id` NULL).
const DEFAULT_SECTION: u32 = u32::MAX;

/// The two terms: the fall term is over (the SIS says `completed`), the spring term is current.
const TERMS: [Term; 2] = [
    Term {
        code: "2025FA",
        concluded: true,
    },
    Term {
        code: "2026SP",
        concluded: false,
    },
];

#[derive(Debug, Clone, Copy)]
struct Term {
    code: &'static str,
    concluded: bool,
}

// ---------------------------------------------------------------------------------------------------------------
// The spec
// ---------------------------------------------------------------------------------------------------------------

/// How big a district to generate, and how much drift to inject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistrictSpec {
    pub students: u32,
    pub schools: u32,
    /// Courses each student takes per term.
    pub courses_per_term: u32,
    /// Students per section, on average.
    pub section_size: u32,
    /// The generator's seed: the same spec and seed always give the same district.
    pub rng_seed: u64,
    pub drift: DriftRates,
}

impl DistrictSpec {
    /// About 300 students: the demo's default, a few thousand enrollments.
    pub fn small() -> Self {
        Self::with_students(300)
    }
    /// About 5,000 students (~45,000 enrollments).
    pub fn medium() -> Self {
        Self::with_students(5_000)
    }
    /// About 20,000 students (~180,000 enrollments).
    pub fn large() -> Self {
        Self::with_students(20_000)
    }

    /// A district of `students` students: one school per 800 students (at least two), four courses per term.
    /// About 9 enrollments per student, so ~115,000 students make a million enrollments.
    pub fn with_students(students: u32) -> Self {
        DistrictSpec {
            students,
            schools: students.div_ceil(800).max(2).min(students.max(1)),
            courses_per_term: 4,
            section_size: 25,
            rng_seed: DEFAULT_RNG_SEED,
            drift: DriftRates::default(),
        }
    }

    pub fn with_rng_seed(mut self, rng_seed: u64) -> Self {
        self.rng_seed = rng_seed;
        self
    }

    /// `small`, `medium`, `large`, or a number of students.
    pub fn parse_size(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "small" => Ok(Self::small()),
            "medium" => Ok(Self::medium()),
            "large" => Ok(Self::large()),
            other => match other.replace(['_', ','], "").parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Self::with_students(n)),
                _ => Err(format!(
                    "`{text}` is not a size: use small (~300 students), medium (~5,000), large (~20,000), \
                     or a number of students"
                )),
            },
        }
    }
}

/// Drift rates. Each applies to the enrollments named in its doc; every injected case is counted in
/// [`DriftSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftRates {
    /// Current-term SIS enrollments (students, teachers, staff-course members) Canvas lacks → `enroll`.
    pub missing: f64,
    /// Per student: a hand-made enrollment in a current course the SIS does not give them → `remove`.
    pub extra: f64,
    /// Per school: a student enrolled by hand in the staff course → `remove`.
    pub student_in_staff_course: f64,
    /// Current-term student enrollments Canvas has as a TA → `change_role`.
    pub student_as_ta: f64,
    /// Current-term teacher enrollments Canvas has as a TA → `change_role`.
    pub teacher_as_ta: f64,
    /// Staff-course members Canvas has as StudentEnrollment instead of Adult Learner → `change_role` (role rule).
    pub staff_as_student: f64,
    /// Enrollments in the wrong state: current ones inactive or concluded, concluded-term ones still active →
    /// `change_state`.
    pub wrong_state: f64,
    /// Current-term student enrollments the SIS has dropped (status `deleted`).
    pub dropped: f64,
    /// Of the dropped ones: still active in Canvas → `change_state`.
    pub dropped_still_active: f64,
    /// Current-term student enrollments the SIS has suspended (status `inactive`).
    pub suspended: f64,
    /// Of the suspended ones: still active in Canvas → `change_state`.
    pub suspended_still_active: f64,
    /// Students with a parent linked as observer (Canvas enrols the parent alongside; never removed).
    pub observed_students: f64,
    /// Per school: SIS rows that cannot be understood (one of each of five defects in turn), each next to an
    /// enrollment that is otherwise in step → skipped.
    pub bad_rows_per_school: u32,
}

impl Default for DriftRates {
    fn default() -> Self {
        DriftRates {
            missing: 0.02,
            extra: 0.08,
            student_in_staff_course: 0.5,
            student_as_ta: 0.005,
            teacher_as_ta: 0.06,
            staff_as_student: 0.3,
            wrong_state: 0.012,
            dropped: 0.03,
            dropped_still_active: 0.4,
            suspended: 0.015,
            suspended_still_active: 0.2,
            observed_students: 0.3,
            bad_rows_per_school: 5,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What was generated
// ---------------------------------------------------------------------------------------------------------------

/// One kind of difference between the SIS and Canvas that the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    Missing,
    Extra,
    WrongRole,
    StaffAsStudent,
    WrongState,
    DroppedStillActive,
    UnmanagedCourse,
    LinkedObserver,
    BadSisRow,
}

impl DriftKind {
    pub const ALL: [DriftKind; 9] = [
        DriftKind::Missing,
        DriftKind::Extra,
        DriftKind::WrongRole,
        DriftKind::StaffAsStudent,
        DriftKind::WrongState,
        DriftKind::DroppedStillActive,
        DriftKind::UnmanagedCourse,
        DriftKind::LinkedObserver,
        DriftKind::BadSisRow,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            DriftKind::Missing => "in the SIS, missing in Canvas",
            DriftKind::Extra => "hand-made in a SIS course, not in the SIS",
            DriftKind::WrongRole => "TA where the SIS says student or teacher",
            DriftKind::StaffAsStudent => "staff as students in their staff course",
            DriftKind::WrongState => "wrong state (e.g. still active after the term)",
            DriftKind::DroppedStillActive => "dropped in the SIS, still active in Canvas",
            DriftKind::UnmanagedCourse => "hand-made, in courses the SIS never mentions",
            DriftKind::LinkedObserver => "parents Canvas enrolled as linked observers",
            DriftKind::BadSisRow => "SIS rows that cannot be understood",
        }
    }

    /// What a correct cycle does about it: an audit action, or what happens instead.
    pub fn expected(self) -> &'static str {
        match self {
            DriftKind::Missing => "enroll",
            DriftKind::Extra => "remove",
            DriftKind::WrongRole | DriftKind::StaffAsStudent => "change_role",
            DriftKind::WrongState | DriftKind::DroppedStillActive => "change_state",
            DriftKind::UnmanagedCourse | DriftKind::LinkedObserver => "left alone",
            DriftKind::BadSisRow => "skipped",
        }
    }
}

/// How many of each drift kind were injected (`linked_observers` and `unmanaged` count enrollments).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriftSummary {
    pub missing: u64,
    pub extra: u64,
    pub wrong_role: u64,
    pub staff_as_student: u64,
    pub wrong_state: u64,
    pub dropped_still_active: u64,
    pub unmanaged: u64,
    pub linked_observers: u64,
    pub bad_sis_rows: u64,
}

impl DriftSummary {
    pub fn count(&self, kind: DriftKind) -> u64 {
        match kind {
            DriftKind::Missing => self.missing,
            DriftKind::Extra => self.extra,
            DriftKind::WrongRole => self.wrong_role,
            DriftKind::StaffAsStudent => self.staff_as_student,
            DriftKind::WrongState => self.wrong_state,
            DriftKind::DroppedStillActive => self.dropped_still_active,
            DriftKind::UnmanagedCourse => self.unmanaged,
            DriftKind::LinkedObserver => self.linked_observers,
            DriftKind::BadSisRow => self.bad_sis_rows,
        }
    }

    fn bump(&mut self, kind: DriftKind) {
        let n = match kind {
            DriftKind::Missing => &mut self.missing,
            DriftKind::Extra => &mut self.extra,
            DriftKind::WrongRole => &mut self.wrong_role,
            DriftKind::StaffAsStudent => &mut self.staff_as_student,
            DriftKind::WrongState => &mut self.wrong_state,
            DriftKind::DroppedStillActive => &mut self.dropped_still_active,
            DriftKind::UnmanagedCourse => &mut self.unmanaged,
            DriftKind::LinkedObserver => &mut self.linked_observers,
            DriftKind::BadSisRow => &mut self.bad_sis_rows,
        };
        *n += 1;
    }

    /// The first cycle's `planned` counts, with the `staff-are-adult-learners` role rule configured.
    pub fn expected_planned(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::from([
            ("enroll", self.missing),
            ("remove", self.extra),
            ("change_role", self.wrong_role + self.staff_as_student),
            ("change_state", self.wrong_state + self.dropped_still_active),
        ])
    }

    /// The first cycle's `skipped` count (the bad SIS rows).
    pub fn expected_skipped(&self) -> u64 {
        self.bad_sis_rows
    }
}

/// Sizes of what was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DistrictStats {
    pub schools: u32,
    pub terms: u32,
    /// Courses the SIS names (term courses and staff courses).
    pub courses: u32,
    /// Sections of those courses (a staff course's default section included).
    pub sections: u32,
    /// Courses the SIS never mentions (teacher sandboxes, clubs).
    pub unmanaged_courses: u32,
    pub students: u32,
    pub teachers: u32,
    /// Non-teaching staff.
    pub staff: u32,
    /// Parents, linked to a student as observers.
    pub parents: u32,
    /// SIS rows, the bad ones included.
    pub sis_rows: u64,
    /// Canvas enrollment rows in the seed, every state.
    pub canvas_enrollments: u64,
    /// Canvas enrollments in SIS-named courses that a cycle lists (every state but deleted).
    pub live_in_managed: u64,
}

/// A school: a Canvas sub-account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct School {
    pub code: String,
    pub name: String,
}

/// One SIS row, borrowed from the district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SisRowRef<'a> {
    pub user_id: Option<&'a str>,
    pub course_id: Option<&'a str>,
    pub section_id: Option<&'a str>,
    pub role: Option<&'a str>,
    pub status: Option<&'a str>,
}

impl<'a> SisRowRef<'a> {
    pub fn to_owned_row(&self) -> SisRowOwned {
        SisRowOwned {
            user_id: self.user_id.map(str::to_owned),
            course_id: self.course_id.map(str::to_owned),
            section_id: self.section_id.map(str::to_owned),
            role: self.role.map(str::to_owned),
            status: self.status.map(str::to_owned),
        }
    }

    fn fields(self) -> [Option<&'a str>; 5] {
        [
            self.user_id,
            self.course_id,
            self.section_id,
            self.role,
            self.status,
        ]
    }
}

/// One row of the `sis_staff` table: every employee (teachers included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffRow<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub title: &'a str,
    pub school: &'a str,
}

/// A generated district. See the module docs.
#[derive(Debug, Clone)]
pub struct District {
    pub spec: DistrictSpec,
    /// The live Canvas, drift included.
    pub seed: Seed,
    pub schools: Vec<School>,
    pub drift: DriftSummary,
    pub stats: DistrictStats,
    sis: Vec<SisEntry>,
    bad_rows: Vec<SisRowOwned>,
    staff: Vec<StaffEntry>,
}

/// A SIS row as indexes into the seed (16 bytes instead of five strings).
#[derive(Debug, Clone, Copy)]
struct SisEntry {
    user: u32,
    course: u32,
    /// Index into `seed.sections`, or `DEFAULT_SECTION`.
    section: u32,
    role: SisRole,
    status: SisStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SisRole {
    Student,
    Teacher,
}

impl SisRole {
    fn text(self) -> &'static str {
        match self {
            SisRole::Student => "student",
            SisRole::Teacher => "teacher",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SisStatus {
    Null,
    Active,
    Inactive,
    Completed,
    Deleted,
}

impl SisStatus {
    fn text(self) -> Option<&'static str> {
        match self {
            SisStatus::Null => None,
            SisStatus::Active => Some("active"),
            SisStatus::Inactive => Some("inactive"),
            SisStatus::Completed => Some("completed"),
            SisStatus::Deleted => Some("deleted"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct StaffEntry {
    user: u32,
    title: &'static str,
    school: u32,
}

/// A Canvas enrollment state the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Inactive,
    Completed,
    Deleted,
}

impl State {
    /// `None` is Canvas's default (active), so that the common case allocates nothing.
    fn seed_text(self) -> Option<String> {
        match self {
            State::Active => None,
            State::Inactive => Some("inactive".to_owned()),
            State::Completed => Some("completed".to_owned()),
            State::Deleted => Some("deleted".to_owned()),
        }
    }
}

impl District {
    /// Generates the district `spec` describes. Pure: the same spec always gives the same district.
    pub fn generate(spec: &DistrictSpec) -> District {
        Generator::new(spec).run()
    }

    /// The SIS rows (good ones first, then the bad ones), as borrowed strings.
    pub fn sis_rows(&self) -> impl Iterator<Item = SisRowRef<'_>> + '_ {
        self.sis
            .iter()
            .map(move |e| self.render(e))
            .chain(self.bad_rows.iter().map(|r| SisRowRef {
                user_id: r.user_id.as_deref(),
                course_id: r.course_id.as_deref(),
                section_id: r.section_id.as_deref(),
                role: r.role.as_deref(),
                status: r.status.as_deref(),
            }))
    }

    /// The SIS rows as owned values (tests; prefer [`District::sis_rows`] for big districts).
    pub fn sis_rows_owned(&self) -> Vec<SisRowOwned> {
        self.sis_rows().map(|r| r.to_owned_row()).collect()
    }

    /// The `sis_staff` rows: every employee, teachers included.
    pub fn staff_rows(&self) -> impl Iterator<Item = StaffRow<'_>> + '_ {
        self.staff.iter().map(move |s| {
            let user = &self.seed.users[s.user as usize];
            StaffRow {
                user_id: user.sis_user_id.as_deref().unwrap_or_default(),
                name: &user.name,
                title: s.title,
                school: &self.schools[s.school as usize].code,
            }
        })
    }

    /// The SIS user ids of every employee: what the `staff-are-adult-learners` rule selects.
    pub fn staff_user_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.staff_rows().map(|s| s.user_id)
    }

    /// A user's display name by SIS user id (linear; for a handful of look-ups).
    pub fn user_name(&self, sis_user_id: &str) -> Option<&str> {
        self.seed
            .users
            .iter()
            .find(|u| u.sis_user_id.as_deref() == Some(sis_user_id))
            .map(|u| u.name.as_str())
    }

    fn render(&self, e: &SisEntry) -> SisRowRef<'_> {
        SisRowRef {
            user_id: self.seed.users[e.user as usize].sis_user_id.as_deref(),
            course_id: self.seed.courses[e.course as usize]
                .sis_course_id
                .as_deref(),
            section_id: if e.section == DEFAULT_SECTION {
                None
            } else {
                self.seed.sections[e.section as usize]
                    .sis_section_id
                    .as_deref()
            },
            role: Some(e.role.text()),
            status: e.status.text(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and ours, so the district never changes under a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u32) as usize]
    }
}

fn user_canvas_id(index: u32) -> u64 {
    1_000 + u64::from(index)
}
fn course_canvas_id(index: u32) -> u64 {
    100 + u64::from(index)
}
fn section_canvas_id(index: u32) -> u64 {
    500 + u64::from(index)
}
fn account_canvas_id(school: u32) -> u64 {
    2 + u64::from(school)
}

/// One term's course block in a school: courses `first_course..+count`, course `c`'s sections at
/// `first_section + c * SECTIONS_PER_COURSE ..`.
#[derive(Debug, Clone, Copy)]
struct TermBlock {
    term: Term,
    first_course: u32,
    first_section: u32,
    count: u32,
}

impl TermBlock {
    fn course(&self, c: u32) -> u32 {
        self.first_course + c
    }
    fn section(&self, c: u32, k: u32) -> u32 {
        self.first_section + c * SECTIONS_PER_COURSE + k
    }
}

struct Generator<'s> {
    spec: &'s DistrictSpec,
    rng: Rng,
    seed: Seed,
    schools: Vec<School>,
    drift: DriftSummary,
    stats: DistrictStats,
    sis: Vec<SisEntry>,
    bad_rows: Vec<SisRowOwned>,
    staff: Vec<StaffEntry>,
    /// This school's current-term student enrollments in step with the SIS: (student, course, section).
    clean: Vec<(u32, u32, u32)>,
    /// Whether the SIS names course `i` (for `live_in_managed`).
    managed: Vec<bool>,
    next_student: u32,
    next_teacher: u32,
    next_staff: u32,
    next_parent: u32,
}

impl<'s> Generator<'s> {
    fn new(spec: &'s DistrictSpec) -> Self {
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

    fn run(mut self) -> District {
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

    // ----- objects -----

    fn user(&mut self, sis_user_id: String, first: &str, last: &str) -> u32 {
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

    fn person(&mut self, prefix: char, number: u32, width: usize) -> u32 {
        let first = self.rng.pick(FIRST_NAMES);
        let last = self.rng.pick(LAST_NAMES);
        self.user(format!("{prefix}{number:0width$}"), first, last)
    }

    /// A course; `managed` when the SIS names it.
    fn course(
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

    fn section(&mut self, course: u32, name: String, sis: Option<String>) -> u32 {
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
    fn enroll(
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

    fn sis_row(&mut self, user: u32, course: u32, section: u32, role: SisRole, status: SisStatus) {
        self.sis.push(SisEntry {
            user,
            course,
            section,
            role,
            status,
        });
    }

    // ----- one school -----

    fn school(&mut self, school: u32, students: u32) {
        let kind = SchoolKind::for_index(school);
        let base = SCHOOL_NAMES[school as usize % SCHOOL_NAMES.len()];
        let round = school as usize / SCHOOL_NAMES.len();
        let code = self.school_code(base, kind, round);
        let name = if round > 0 {
            format!("{base} {} {}", kind.name_suffix(), round + 1)
        } else {
            format!("{base} {}", kind.name_suffix())
        };
        self.seed.accounts.push(SeedAccount {
            id: account_canvas_id(school),
            name: name.clone(),
            parent_account_id: Some(ROOT_ACCOUNT_ID),
            root_account_id: Some(ROOT_ACCOUNT_ID),
            sis_account_id: Some(format!("SCH-{code}")),
            ..SeedAccount::default()
        });
        self.schools.push(School {
            code: code.clone(),
            name: name.clone(),
        });

        let catalog = kind.catalog();
        let seats = self.spec.section_size.max(1) * SECTIONS_PER_COURSE;
        // Enough courses for every student to take `courses_per_term` of them, even in a tiny school.
        let courses_per_term = (students * self.spec.courses_per_term)
            .div_ceil(seats)
            .max(self.spec.courses_per_term)
            .max(1);
        let sections_per_term = courses_per_term * SECTIONS_PER_COURSE;

        // Employees: teachers for every section of a term, and some non-teaching staff.
        let teacher_count = sections_per_term.div_ceil(SECTIONS_PER_TEACHER);
        let teachers: Vec<u32> = (0..teacher_count)
            .map(|_| {
                let n = self.next_teacher;
                self.next_teacher += 1;
                let user = self.person('T', n, 5);
                self.staff.push(StaffEntry {
                    user,
                    title: "Teacher",
                    school,
                });
                user
            })
            .collect();
        let staff_count = (students / 40).max(3);
        let mut employees = teachers.clone();
        for i in 0..staff_count {
            let n = self.next_staff;
            self.next_staff += 1;
            let user = self.person('E', n, 5);
            self.staff.push(StaffEntry {
                user,
                title: STAFF_TITLES[i as usize % STAFF_TITLES.len()],
                school,
            });
            employees.push(user);
        }
        self.stats.teachers += teacher_count;
        self.stats.staff += staff_count;

        // Courses and sections per term; each section's teacher teaches it.
        let mut blocks = Vec::with_capacity(TERMS.len());
        for term in TERMS {
            let first_course = self.seed.courses.len() as u32;
            let first_section = self.seed.sections.len() as u32;
            for c in 0..courses_per_term {
                let (subject_code, subject) = catalog[c as usize % catalog.len()];
                let round = c as usize / catalog.len();
                let (course_code, title) = if round == 0 {
                    (subject_code.to_owned(), subject.to_owned())
                } else {
                    (
                        format!("{subject_code}-{}", round + 1),
                        format!("{subject} {}", round + 1),
                    )
                };
                let sis = format!("{code}-{course_code}-{}", term.code);
                let course = self.course(
                    school,
                    format!("{title} ({})", term_name(term)),
                    &course_code,
                    Some(sis.clone()),
                    true,
                );
                for k in 0..SECTIONS_PER_COURSE {
                    self.section(
                        course,
                        format!("{title} — Section {:02}", k + 1),
                        Some(format!("{sis}-{:02}", k + 1)),
                    );
                }
            }
            let block = TermBlock {
                term,
                first_course,
                first_section,
                count: courses_per_term,
            };
            for c in 0..courses_per_term {
                for k in 0..SECTIONS_PER_COURSE {
                    let j = c * SECTIONS_PER_COURSE + k;
                    let teacher = teachers[((j / SECTIONS_PER_TEACHER) % teacher_count) as usize];
                    self.teacher_enrollment(teacher, &block, c, k);
                }
            }
            blocks.push(block);
        }
        self.stats.courses += courses_per_term * TERMS.len() as u32 + 1;
        self.stats.sections += sections_per_term * TERMS.len() as u32 + 1;

        // The staff course: everyone employed, listed by the SIS as students, in the default section.
        let staff_course = self.course(
            school,
            format!("{name} Staff Professional Development"),
            "STAFF-PD",
            Some(format!("{code}-STAFF-PD")),
            true,
        );
        let staff_section = self.section(staff_course, format!("{name} Staff"), None);
        for &user in &employees {
            self.staff_course_enrollment(user, staff_course, staff_section);
        }

        // Students.
        self.clean.clear();
        let mut roster = Vec::with_capacity(students as usize);
        let mut chosen = Vec::with_capacity(self.spec.courses_per_term as usize);
        for _ in 0..students {
            let n = self.next_student;
            self.next_student += 1;
            let student = self.person('S', n, 6);
            roster.push(student);
            let parent = if self.rng.chance(self.spec.drift.observed_students) {
                let n = self.next_parent;
                self.next_parent += 1;
                let last = self.seed.users[student as usize]
                    .sortable_name
                    .as_deref()
                    .and_then(|s| s.split(", ").next())
                    .unwrap_or("Parent")
                    .to_owned();
                let first = self.rng.pick(FIRST_NAMES);
                let parent = self.user(format!("P{n:06}"), first, &last);
                self.seed.observer_links.push(ObserverLink {
                    observer_id: user_canvas_id(parent),
                    student_id: user_canvas_id(student),
                });
                self.stats.parents += 1;
                Some(parent)
            } else {
                None
            };
            for block in &blocks {
                let k = self.spec.courses_per_term.min(block.count);
                chosen.clear();
                while (chosen.len() as u32) < k {
                    let c = self.rng.below(block.count);
                    if !chosen.contains(&c) {
                        chosen.push(c);
                    }
                }
                for &c in &chosen {
                    let section = self.rng.below(SECTIONS_PER_COURSE);
                    self.student_enrollment(student, parent, block, c, section);
                }
                // A hand-made enrollment in a current course the SIS does not give this student.
                if !block.term.concluded
                    && block.count > k
                    && self.rng.chance(self.spec.drift.extra)
                {
                    let c = loop {
                        let c = self.rng.below(block.count);
                        if !chosen.contains(&c) {
                            break c;
                        }
                    };
                    let section = block.section(c, self.rng.below(SECTIONS_PER_COURSE));
                    self.enroll(
                        student,
                        block.course(c),
                        section,
                        STUDENT_ROLE_ID,
                        State::Active,
                        None,
                        false,
                    );
                    self.drift.bump(DriftKind::Extra);
                }
            }
        }
        self.stats.students += students;

        // A student added to the staff course by hand.
        if !roster.is_empty() && self.rng.chance(self.spec.drift.student_in_staff_course) {
            let student = roster[self.rng.below(roster.len() as u32) as usize];
            self.enroll(
                student,
                staff_course,
                staff_section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::Extra);
        }

        // Bad SIS rows, next to enrollments without drift (a bad row holds its user and course).
        let clean = std::mem::take(&mut self.clean);
        let mut used = Vec::new();
        let bad = (self.spec.drift.bad_rows_per_school as usize).min(clean.len());
        while used.len() < bad {
            let i = self.rng.below(clean.len() as u32) as usize;
            if !used.contains(&i) {
                used.push(i);
                let (student, course, section) = clean[i];
                self.bad_row(student, course, section);
            }
        }
        self.clean = clean;

        self.unmanaged_courses(school, &code, &teachers, &roster);
    }

    /// A short code no other school has: `LHS`, else `LIHS`, ..., with the round number for repeated names.
    fn school_code(&self, base: &str, kind: SchoolKind, round: usize) -> String {
        let letters: String = base.chars().filter(char::is_ascii_alphabetic).collect();
        let round = if round > 0 {
            (round + 1).to_string()
        } else {
            String::new()
        };
        let taken = |code: &str| self.schools.iter().any(|s| s.code == code);
        for len in 1..=letters.len() {
            let code = format!(
                "{}{}{round}",
                letters[..len].to_ascii_uppercase(),
                kind.code_suffix()
            );
            if !taken(&code) {
                return code;
            }
        }
        let mut n = self.schools.len();
        loop {
            let code = format!("S{n}{}", kind.code_suffix());
            if !taken(&code) {
                return code;
            }
            n += 1;
        }
    }

    fn teacher_enrollment(&mut self, teacher: u32, block: &TermBlock, c: u32, k: u32) {
        let course = block.course(c);
        let section = block.section(c, k);
        if block.term.concluded {
            self.sis_row(
                teacher,
                course,
                section,
                SisRole::Teacher,
                SisStatus::Completed,
            );
            self.enroll(
                teacher,
                course,
                section,
                TEACHER_ROLE_ID,
                State::Completed,
                None,
                true,
            );
            return;
        }
        self.sis_row(
            teacher,
            course,
            section,
            SisRole::Teacher,
            SisStatus::Active,
        );
        let spec = self.spec;
        let drift = &spec.drift;
        let roll = self.rng.unit();
        if roll < drift.missing {
            self.drift.bump(DriftKind::Missing);
        } else if roll < drift.missing + drift.teacher_as_ta {
            self.enroll(
                teacher,
                course,
                section,
                TA_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::WrongRole);
        } else {
            self.enroll(
                teacher,
                course,
                section,
                TEACHER_ROLE_ID,
                State::Active,
                None,
                true,
            );
        }
    }

    fn staff_course_enrollment(&mut self, user: u32, course: u32, section: u32) {
        self.sis_row(
            user,
            course,
            DEFAULT_SECTION,
            SisRole::Student,
            SisStatus::Null,
        );
        let spec = self.spec;
        let drift = &spec.drift;
        let roll = self.rng.unit();
        if roll < drift.missing {
            self.drift.bump(DriftKind::Missing);
        } else if roll < drift.missing + drift.staff_as_student {
            self.enroll(
                user,
                course,
                section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::StaffAsStudent);
        } else {
            self.enroll(
                user,
                course,
                section,
                ADULT_LEARNER_ROLE_ID,
                State::Active,
                None,
                false,
            );
        }
    }

    fn student_enrollment(
        &mut self,
        student: u32,
        parent: Option<u32>,
        block: &TermBlock,
        c: u32,
        k: u32,
    ) {
        let course = block.course(c);
        let section = block.section(c, k);
        let spec = self.spec;
        let d = &spec.drift;
        if block.term.concluded {
            self.sis_row(
                student,
                course,
                section,
                SisRole::Student,
                SisStatus::Completed,
            );
            if self.rng.chance(d.wrong_state) {
                // The term ended, but nobody concluded this one.
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Active,
                    None,
                    true,
                );
                self.drift.bump(DriftKind::WrongState);
            } else {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Completed,
                    None,
                    true,
                );
            }
            return;
        }
        let status_roll = self.rng.unit();
        if status_roll < d.dropped {
            self.sis_row(
                student,
                course,
                section,
                SisRole::Student,
                SisStatus::Deleted,
            );
            if self.rng.chance(d.dropped_still_active) {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Active,
                    None,
                    true,
                );
                self.drift.bump(DriftKind::DroppedStillActive);
            } else {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Deleted,
                    None,
                    true,
                );
            }
            return;
        }
        if status_roll < d.dropped + d.suspended {
            self.sis_row(
                student,
                course,
                section,
                SisRole::Student,
                SisStatus::Inactive,
            );
            if self.rng.chance(d.suspended_still_active) {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Active,
                    None,
                    true,
                );
                self.drift.bump(DriftKind::WrongState);
            } else {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Inactive,
                    None,
                    true,
                );
            }
            return;
        }
        // Most exports spell "active" out; some leave it NULL.
        let status = if self.rng.chance(0.1) {
            SisStatus::Null
        } else {
            SisStatus::Active
        };
        self.sis_row(student, course, section, SisRole::Student, status);
        let roll = self.rng.unit();
        if roll < d.missing {
            self.drift.bump(DriftKind::Missing);
        } else if roll < d.missing + d.student_as_ta {
            self.enroll(
                student,
                course,
                section,
                TA_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::WrongRole);
        } else if roll < d.missing + d.student_as_ta + d.wrong_state {
            let state = if self.rng.chance(0.5) {
                State::Inactive
            } else {
                State::Completed
            };
            self.enroll(student, course, section, STUDENT_ROLE_ID, state, None, true);
            self.drift.bump(DriftKind::WrongState);
        } else {
            // In step with the SIS: the parent observes it, and a bad duplicate row may sit next to it.
            self.enroll(
                student,
                course,
                section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                true,
            );
            if let Some(parent) = parent {
                self.enroll(
                    parent,
                    course,
                    section,
                    OBSERVER_ROLE_ID,
                    State::Active,
                    Some(student),
                    false,
                );
                self.drift.bump(DriftKind::LinkedObserver);
            }
            self.clean.push((student, course, section));
        }
    }

    /// A SIS row for an enrollment that is otherwise in step, with one defect the cycle must skip.
    fn bad_row(&mut self, student: u32, course: u32, section: u32) {
        let user = self.seed.users[student as usize].sis_user_id.clone();
        let course_id = self.seed.courses[course as usize].sis_course_id.clone();
        let section_id = self.seed.sections[section as usize].sis_section_id.clone();
        let mut row = SisRowOwned {
            user_id: user,
            course_id,
            section_id,
            role: Some("student".into()),
            status: Some("active".into()),
        };
        match self.drift.bad_sis_rows % 5 {
            // Not a role Canvas has (a TA is `ta`, or `TaEnrollment`).
            0 => row.role = Some("Teaching Assistant".into()),
            1 => row.status = Some("dropped".into()),
            2 => row.user_id = row.user_id.map(|u| format!("{u} ")),
            3 => row.user_id = None,
            _ => row.course_id = Some(String::new()),
        }
        self.bad_rows.push(row);
        self.drift.bump(DriftKind::BadSisRow);
    }

    /// Teacher sandboxes (no SIS id) and a club course (a SIS id the SIS never uses), with hand-made enrollments.
    fn unmanaged_courses(&mut self, school: u32, code: &str, teachers: &[u32], roster: &[u32]) {
        let sandboxes = (teachers.len() / 4).max(1);
        for &teacher in teachers.iter().take(sandboxes) {
            let teacher_name = self.seed.users[teacher as usize].name.clone();
            let course = self.course(
                school,
                format!("Sandbox: {teacher_name}"),
                "SANDBOX",
                None,
                false,
            );
            let section = self.section(course, format!("Sandbox: {teacher_name}"), None);
            self.enroll(
                teacher,
                course,
                section,
                TEACHER_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::UnmanagedCourse);
            self.hand_made_students(roster, 3, course, section);
        }
        let club_teacher = teachers[self.rng.below(teachers.len() as u32) as usize];
        let course = self.course(
            school,
            "Robotics Club".into(),
            "CLUB",
            Some(format!("{code}-CLUB-ROBOTICS")),
            false,
        );
        let section = self.section(course, "Robotics Club".into(), None);
        self.enroll(
            club_teacher,
            course,
            section,
            TEACHER_ROLE_ID,
            State::Active,
            None,
            false,
        );
        self.drift.bump(DriftKind::UnmanagedCourse);
        self.hand_made_students(roster, 8, course, section);
        self.stats.unmanaged_courses += sandboxes as u32 + 1;
    }

    fn hand_made_students(&mut self, roster: &[u32], count: usize, course: u32, section: u32) {
        if roster.is_empty() {
            return;
        }
        let start = self.rng.below(roster.len() as u32) as usize;
        for i in 0..count.min(roster.len()) {
            let student = roster[(start + i) % roster.len()];
            self.enroll(
                student,
                course,
                section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::UnmanagedCourse);
        }
    }
}

fn term_name(term: Term) -> String {
    let (year, season) = term.code.split_at(4);
    let season = match season {
        "FA" => "Fall",
        "SP" => "Spring",
        other => other,
    };
    format!("{season} {year}")
}

#[derive(Debug, Clone, Copy)]
enum SchoolKind {
    High,
    Middle,
    Elementary,
}

impl SchoolKind {
    fn for_index(i: u32) -> Self {
        match i % 3 {
            0 => SchoolKind::High,
            1 => SchoolKind::Middle,
            _ => SchoolKind::Elementary,
        }
    }
    fn code_suffix(self) -> &'static str {
        match self {
            SchoolKind::High => "HS",
            SchoolKind::Middle => "MS",
            SchoolKind::Elementary => "ES",
        }
    }
    fn name_suffix(self) -> &'static str {
        match self {
            SchoolKind::High => "High School",
            SchoolKind::Middle => "Middle School",
            SchoolKind::Elementary => "Elementary School",
        }
    }
    fn catalog(self) -> &'static [(&'static str, &'static str)] {
        match self {
            SchoolKind::High => &[
                ("ALG1", "Algebra I"),
                ("ENG9", "English 9"),
                ("BIO", "Biology"),
                ("WHIST", "World History"),
                ("GEOM", "Geometry"),
                ("ENG10", "English 10"),
                ("CHEM", "Chemistry"),
                ("USHIST", "U.S. History"),
                ("SPAN1", "Spanish I"),
                ("CS1", "Intro to Computer Science"),
                ("ART1", "Studio Art"),
                ("PE", "Physical Education"),
                ("ALG2", "Algebra II"),
                ("PHYS", "Physics"),
                ("FREN1", "French I"),
                ("BAND", "Concert Band"),
            ],
            SchoolKind::Middle => &[
                ("MATH7", "Math 7"),
                ("ELA7", "English Language Arts 7"),
                ("SCI7", "Life Science"),
                ("SS7", "Ancient Civilizations"),
                ("MATH8", "Math 8"),
                ("ELA8", "English Language Arts 8"),
                ("SCI8", "Physical Science"),
                ("SS8", "U.S. History to 1877"),
                ("ART", "Art"),
                ("PE", "Physical Education"),
                ("CHOIR", "Choir"),
                ("TECH", "Design & Technology"),
            ],
            SchoolKind::Elementary => &[
                ("HR4", "Grade 4 Homeroom"),
                ("HR5", "Grade 5 Homeroom"),
                ("READ", "Reading Workshop"),
                ("STEM", "STEM Lab"),
                ("ART", "Art"),
                ("MUSIC", "Music"),
                ("PE", "Physical Education"),
                ("LIB", "Library"),
            ],
        }
    }
}

#[rustfmt::skip]
const SCHOOL_NAMES: &[&str] = &[
    "Lincoln", "Washington", "Jefferson", "Roosevelt", "Franklin", "Madison", "Hamilton", "Kennedy", "Adams",
    "Monroe", "Garfield", "Wilson", "Edison", "Carver", "Whitman", "Dewey", "Parks", "Tubman", "Chavez", "Keller",
    "Curie", "Sequoyah",
];

const STAFF_TITLES: &[&str] = &[
    "Counselor",
    "Librarian",
    "Instructional Aide",
    "Nurse",
    "Assistant Principal",
    "Office Manager",
    "Principal",
    "Speech Therapist",
];

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Sofia", "Ethan", "Isabella", "Lucas", "Mia", "Mateo", "Amara",
    "Elijah", "Chloe", "James", "Priya", "Benjamin", "Zoe", "Daniel", "Aaliyah", "Henry", "Layla",
    "Samuel", "Nora", "Diego", "Hannah", "Omar", "Grace", "Caleb", "Leah", "Isaac", "Fatima",
    "Jack", "Emily", "Kai", "Ruby", "Wyatt", "Aria", "Julian", "Hazel", "Leo", "Mei", "Gabriel",
    "Naomi", "Owen", "Ines", "Theo", "Lucia", "Adrian", "Yara", "Miles", "Sara", "Jonah", "Keisha",
    "Arjun", "Elena", "Tomas", "Abigail", "Ezra", "Camila", "Malik",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Garcia", "Nguyen", "Brown", "Martinez", "Patel", "Kim", "Davis", "Rodriguez", "Wilson",
    "Lopez", "Chen", "Anderson", "Thomas", "Hernandez", "Moore", "Okafor", "Jackson", "Martin", "Lee", "Perez",
    "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "Wright", "Scott", "Torres", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Yamamoto", "Novak", "Haddad", "Kowalski", "Osei", "Silva",
    "Ivanova", "Murphy", "Cohen", "Singh", "Reyes", "Bauer",
];

impl fmt::Display for DistrictSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} students in {} schools, {} courses per term, seed {}",
            self.students, self.schools, self.courses_per_term, self.rng_seed
        )
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading the SIS side into PostgreSQL
// ---------------------------------------------------------------------------------------------------------------

/// The SIS tables `load_sis` creates (CONTRACT.md: text columns `user_id course_id section_id role status`).
pub const CREATE_SIS_ENROLLMENTS: &str = "CREATE TABLE IF NOT EXISTS sis_enrollments \
     (user_id text, course_id text, section_id text, role text, status text)";
pub const CREATE_SIS_STAFF: &str = "CREATE TABLE IF NOT EXISTS sis_staff \
     (user_id text PRIMARY KEY, name text NOT NULL, title text NOT NULL, school text NOT NULL)";

/// What [`load_sis`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedSis {
    pub enrollment_rows: u64,
    pub staff_rows: u64,
}

/// Bytes buffered before each COPY message.
const COPY_CHUNK: usize = 1 << 20;

/// Creates `sis_enrollments` and `sis_staff` if missing, empties them, and streams the district's rows in with
/// `COPY ... FROM STDIN` (text format), a megabyte at a time.
pub async fn load_sis(pool: &PgPool, district: &District) -> Result<LoadedSis, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(CREATE_SIS_ENROLLMENTS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(CREATE_SIS_STAFF).execute(&mut *conn).await?;
    sqlx::query("TRUNCATE sis_enrollments, sis_staff")
        .execute(&mut *conn)
        .await?;
    let enrollment_rows = copy_rows(
        &mut conn,
        "COPY sis_enrollments (user_id, course_id, section_id, role, status) FROM STDIN",
        district.sis_rows().map(|r| r.fields()),
    )
    .await?;
    let staff_rows = copy_rows(
        &mut conn,
        "COPY sis_staff (user_id, name, title, school) FROM STDIN",
        district
            .staff_rows()
            .map(|s| [Some(s.user_id), Some(s.name), Some(s.title), Some(s.school)]),
    )
    .await?;
    Ok(LoadedSis {
        enrollment_rows,
        staff_rows,
    })
}

async fn copy_rows<'a, const N: usize>(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    rows: impl Iterator<Item = [Option<&'a str>; N]>,
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 4_096);
    let mut count = 0u64;
    for fields in rows {
        write_copy_row(&mut buf, &fields);
        count += 1;
        if buf.len() >= COPY_CHUNK {
            let sent = copy.send(buf.as_slice()).await.map(|_| ());
            if let Err(e) = sent {
                let _ = copy.abort(e.to_string()).await;
                return Err(e);
            }
            buf.clear();
        }
    }
    if !buf.is_empty() {
        let sent = copy.send(buf.as_slice()).await.map(|_| ());
        if let Err(e) = sent {
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
    }
    copy.finish().await?;
    Ok(count)
}

/// One line of COPY text format: tab-separated, `\N` for NULL, backslash escapes.
fn write_copy_row(buf: &mut Vec<u8>, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        match field {
            None => buf.extend_from_slice(b"\\N"),
            Some(text) => {
                for &b in text.as_bytes() {
                    match b {
                        b'\\' => buf.extend_from_slice(b"\\\\"),
                        b'\t' => buf.extend_from_slice(b"\\t"),
                        b'\n' => buf.extend_from_slice(b"\\n"),
                        b'\r' => buf.extend_from_slice(b"\\r"),
                        _ => buf.push(b),
                    }
                }
            }
        }
    }
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_and_nulls() {
        let mut buf = Vec::new();
        write_copy_row(&mut buf, &[Some("a\tb"), None, Some("c\\d\n"), Some("")]);
        assert_eq!(buf, b"a\\tb\t\\N\tc\\\\d\\n\t\n");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(DistrictSpec::parse_size("small").unwrap().students, 300);
        assert_eq!(DistrictSpec::parse_size("Medium").unwrap().students, 5_000);
        assert_eq!(DistrictSpec::parse_size("large").unwrap().students, 20_000);
        assert_eq!(
            DistrictSpec::parse_size("120_000").unwrap().students,
            120_000
        );
        assert!(DistrictSpec::parse_size("0").is_err());
        assert!(DistrictSpec::parse_size("huge").is_err());
    }

    #[test]
    fn rng_is_splitmix64() {
        // Reference values of SplitMix64 seeded with 0 (the first outputs of the published algorithm).
        let mut rng = Rng(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn tiny_districts_are_well_formed() {
        for students in [1, 2, 7, 30] {
            let d = District::generate(&DistrictSpec::with_students(students));
            assert_eq!(d.stats.students, students);
            assert!(d.sis_rows().count() > 0);
            for row in d.sis_rows().take(d.sis.len()) {
                assert!(row.user_id.is_some() && row.course_id.is_some());
            }
        }
    }
}
