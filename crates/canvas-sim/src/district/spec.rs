//! What to generate: the district's size and the drift rates, with the named sizes the command line accepts.

use std::fmt;

use serde::Serialize;

use super::DEFAULT_RNG_SEED;

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
/// [`DriftSummary`](super::DriftSummary).
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

impl fmt::Display for DistrictSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} students in {} schools, {} courses per term, seed {}",
            self.students, self.schools, self.courses_per_term, self.rng_seed
        )
    }
}
