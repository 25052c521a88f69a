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
//!
//! Layout: `spec` says what to generate, `generate` builds the seed (one school in `school`, the enrollments and
//! the drift injected into them in `drift`, the names in `names`), `sis` holds the SIS rows and loads them into
//! PostgreSQL, and `summary` counts what was generated.

mod drift;
mod generate;
mod names;
mod school;
mod sis;
mod spec;
mod summary;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::Seed;
use generate::Generator;
// The sample university (openedx-sim) is dressed and drawn the same way.
pub(crate) use generate::Rng;
pub(crate) use names::{FIRST_NAMES, LAST_NAMES};
pub(crate) use sis::copy_rows;
pub use sis::{
    CREATE_SIS_ENROLLMENTS, CREATE_SIS_STAFF, LoadedSis, SisRowOwned, SisRowRef, StaffRow, load_sis,
};
use sis::{SisEntry, StaffEntry};
pub use spec::{DistrictSpec, DriftRates};
pub use summary::{DistrictStats, DriftKind, DriftSummary};

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

/// A school: a Canvas sub-account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct School {
    pub code: String,
    pub name: String,
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

impl District {
    /// Generates the district `spec` describes. Pure: the same spec always gives the same district.
    pub fn generate(spec: &DistrictSpec) -> District {
        Generator::new(spec).run()
    }

    /// A user's display name by SIS user id (linear; for a handful of look-ups).
    pub fn user_name(&self, sis_user_id: &str) -> Option<&str> {
        self.seed
            .users
            .iter()
            .find(|u| u.sis_user_id.as_deref() == Some(sis_user_id))
            .map(|u| u.name.as_str())
    }
}
