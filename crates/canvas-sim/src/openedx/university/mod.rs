//! The sample university: a deterministic generator of a university that runs Open edX programs, its SIS rows
//! (CONTRACT v2: the five columns and `curriculum_uuid`), and a live Open edX (an [`OpenEdxSeed`]) that has drifted
//! from them. `rostersync demo --target openedx` and the Open edX benchmark use it, as the sample district serves
//! the Canvas demo.
//!
//! What one [`University`] holds:
//! - programs (lowercase UUIDs, one organization), each with one active curriculum of course runs
//!   (`course-v1:StateU+DS101+2026_T1`); one core run is in every curriculum, so programs share a run;
//! - learners, each in one program and in the core run plus two or three of the program's own runs; some are course
//!   staff in a run (`role = 'staff'`); some have an LMS account behind the university's SAML provider (a user whose
//!   `social_uid` is `stateu:<key>`, so that Open edX links them when their enrollment is written), the others do not
//!   (their program enrollments are waiting ones);
//! - the live Open edX: what the SIS wants, except where drift was injected (see [`UniversityDriftKind`]). Every
//!   case is counted in [`UniversityDrift`], in the changes a correct cycle plans for it, so that a demo or test can
//!   compare a cycle's plan with [`UniversityDrift::expected_planned`] exactly.
//!
//! The drift kinds are disjoint (a learner gets at most one), and the two bad SIS rows sit next to learners without
//! drift, because a row that cannot be understood puts its learner and program on hold. A [`UniversitySpec::first_sync`]
//! university has no drift and an empty Open edX: every SIS row is to be written.
//!
//! Generation is pure: the output depends only on the [`UniversitySpec`] (the district's SplitMix64, the district's
//! names). The OAuth client is not part of it: the caller adds one with its own secret.
//!
//! Layout: this file says what to generate and counts what was generated; `generate` builds it; `sis` holds the SIS
//! rows and loads them into PostgreSQL.

mod generate;
mod sis;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use super::OpenEdxSeed;
pub use sis::{CREATE_OPENEDX_SIS_ENROLLMENTS, UniversitySisRow, load_university_sis};

/// The university's organization: every program's `authoring_org`, and the SAML provider's.
pub const ORGANIZATION: &str = "StateU";
/// The SAML provider's slug: a learner's `social_uid` is `stateu:<student key>` (facts §6.2).
pub const SAML_SLUG: &str = "stateu";
/// The staff user who owns the OAuth application rostersync uses (facts §1.6: the owner must be staff).
pub const SERVICE_USER: &str = "rostersync-service";
/// Learners per program, up to the catalog's programs.
const LEARNERS_PER_PROGRAM: u32 = 100;

/// How big a university to generate, and how much drift to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct UniversitySpec {
    /// Learners the SIS lists.
    pub learners: u32,
    /// The generator's seed: the same spec always gives the same university.
    pub rng_seed: u64,
    /// Whether Open edX already holds the university (drifted from the SIS), or is empty: a first sync.
    pub prefilled: bool,
    /// Share of learners with an LMS account (linked through SSO); the others get waiting enrollments.
    pub with_account: f64,
    /// Share of a learner's run rows where the SIS says course staff.
    pub staff: f64,
    pub drift: UniversityDriftRates,
}

/// Drift rates; each case is counted in [`UniversityDrift`].
#[derive(Debug, Clone, PartialEq)]
pub struct UniversityDriftRates {
    /// Learners admitted in the SIS whom Open edX does not have yet.
    pub new_admits: f64,
    /// Per SIS learner: a learner Open edX has whom the SIS no longer lists.
    pub unlisted: f64,
    /// Learners the SIS suspended (program `suspended`, runs `inactive`) still enrolled and active in Open edX.
    pub suspended: f64,
    /// Learners moved to another program (sharing the core run) whom Open edX still has in the old one.
    pub moved: f64,
    /// Learners Open edX lacks one course run enrollment of.
    pub missing_run: f64,
    /// Of the SIS's course staff rows (of learners without other drift): Open edX does not have them as staff.
    pub staff_unflagged: f64,
    /// Add the two SIS rows Open edX cannot take (an uppercase program UUID, a run key that does not parse).
    pub bad_rows: bool,
}

impl Default for UniversityDriftRates {
    fn default() -> Self {
        UniversityDriftRates {
            new_admits: 0.05,
            unlisted: 0.015,
            suspended: 0.01,
            moved: 0.01,
            missing_run: 0.02,
            staff_unflagged: 0.25,
            bad_rows: true,
        }
    }
}

impl UniversityDriftRates {
    /// No drift at all.
    pub fn none() -> Self {
        UniversityDriftRates {
            new_admits: 0.0,
            unlisted: 0.0,
            suspended: 0.0,
            moved: 0.0,
            missing_run: 0.0,
            staff_unflagged: 0.0,
            bad_rows: false,
        }
    }
}

impl UniversitySpec {
    /// A university of `learners` learners, already in Open edX and drifted from the SIS.
    pub fn with_learners(learners: u32) -> Self {
        UniversitySpec {
            learners,
            rng_seed: crate::district::DEFAULT_RNG_SEED,
            prefilled: true,
            with_account: 0.6,
            staff: 0.03,
            drift: UniversityDriftRates::default(),
        }
    }

    /// A university of `learners` learners on its first day with rostersync: Open edX has the programs and the
    /// accounts, and no enrollment; the SIS has no bad rows.
    pub fn first_sync(learners: u32) -> Self {
        UniversitySpec {
            prefilled: false,
            drift: UniversityDriftRates::none(),
            ..Self::with_learners(learners)
        }
    }

    pub fn with_rng_seed(mut self, rng_seed: u64) -> Self {
        self.rng_seed = rng_seed;
        self
    }

    /// About a hundred learners per program, at least two programs (a move needs two), at most the catalog's.
    pub fn programs(&self) -> u32 {
        (self.learners / LEARNERS_PER_PROGRAM).clamp(2, generate::PROGRAM_CATALOG.len() as u32)
    }
}

/// One program: what the SIS calls it and what Open edX has of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniversityProgram {
    pub uuid: String,
    pub name: String,
    /// Its one active curriculum.
    pub curriculum_uuid: String,
    /// The curriculum's runs, the shared core run first.
    pub runs: Vec<String>,
}

/// One kind of difference between the SIS and Open edX that the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UniversityDriftKind {
    NewAdmit,
    Unlisted,
    Suspended,
    Moved,
    MissingRun,
    StaffUnflagged,
    WaitingUnrecorded,
    BadSisRow,
}

impl UniversityDriftKind {
    pub const ALL: [UniversityDriftKind; 8] = [
        UniversityDriftKind::NewAdmit,
        UniversityDriftKind::Unlisted,
        UniversityDriftKind::Suspended,
        UniversityDriftKind::Moved,
        UniversityDriftKind::MissingRun,
        UniversityDriftKind::StaffUnflagged,
        UniversityDriftKind::WaitingUnrecorded,
        UniversityDriftKind::BadSisRow,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            UniversityDriftKind::NewAdmit => "learners admitted in the SIS, not in Open edX yet",
            UniversityDriftKind::Unlisted => "learners in Open edX the SIS no longer lists",
            UniversityDriftKind::Suspended => "suspended in the SIS, still enrolled in Open edX",
            UniversityDriftKind::Moved => "moved to another program sharing a run",
            UniversityDriftKind::MissingRun => "learners missing one course run enrollment",
            UniversityDriftKind::StaffUnflagged => "course staff in the SIS, not in Open edX",
            UniversityDriftKind::WaitingUnrecorded => "waiting enrollments with no write on record",
            UniversityDriftKind::BadSisRow => "SIS rows Open edX cannot take",
        }
    }

    /// What a correct cycle does about it.
    pub fn expected(self) -> &'static str {
        match self {
            UniversityDriftKind::NewAdmit => "enroll program and runs (linked or waiting)",
            UniversityDriftKind::Unlisted => "remove: program ended, runs inactive",
            UniversityDriftKind::Suspended => "change_state: program suspended, runs inactive",
            UniversityDriftKind::Moved => "remove in the old program first, enroll in the new",
            UniversityDriftKind::MissingRun => "enroll the run",
            UniversityDriftKind::StaffUnflagged => "change_role (course_staff: true)",
            UniversityDriftKind::WaitingUnrecorded => {
                "kept alive: status re-written (60-day expiry)"
            }
            UniversityDriftKind::BadSisRow => "skipped, with the reason",
        }
    }
}

/// One drift kind: how many cases (learners, or rows for bad rows and staff flags) and the changes they make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriftTally {
    pub cases: u64,
    pub enroll: u64,
    pub remove: u64,
    pub change_role: u64,
    pub change_state: u64,
}

impl DriftTally {
    /// Changes of every action.
    pub fn changes(&self) -> u64 {
        self.enroll + self.remove + self.change_role + self.change_state
    }
}

/// The drift injected, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniversityDrift {
    tallies: BTreeMap<UniversityDriftKind, DriftTally>,
}

impl UniversityDrift {
    pub fn count(&self, kind: UniversityDriftKind) -> DriftTally {
        self.tallies.get(&kind).copied().unwrap_or_default()
    }

    pub(super) fn tally(&mut self, kind: UniversityDriftKind) -> &mut DriftTally {
        self.tallies.entry(kind).or_default()
    }

    /// The first cycle's `planned` counts (`reconcile.removal = conclude`). Keep-alive writes are not in the plan:
    /// see [`UniversityDrift::expected_keepalive`].
    pub fn expected_planned(&self) -> BTreeMap<&'static str, u64> {
        let mut planned = BTreeMap::from([
            ("enroll", 0),
            ("remove", 0),
            ("change_role", 0),
            ("change_state", 0),
        ]);
        for (kind, t) in &self.tallies {
            if *kind == UniversityDriftKind::WaitingUnrecorded {
                continue;
            }
            *planned.entry("enroll").or_default() += t.enroll;
            *planned.entry("remove").or_default() += t.remove;
            *planned.entry("change_role").or_default() += t.change_role;
            *planned.entry("change_state").or_default() += t.change_state;
        }
        planned
    }

    /// The first cycle's keep-alive writes: waiting enrollments the SIS lists that no other change writes.
    pub fn expected_keepalive(&self) -> u64 {
        self.count(UniversityDriftKind::WaitingUnrecorded)
            .change_state
    }

    /// The first cycle's skipped SIS rows.
    pub fn expected_skipped(&self) -> u64 {
        self.count(UniversityDriftKind::BadSisRow).cases
    }
}

/// Sizes of what was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniversityStats {
    pub programs: u32,
    /// Distinct course runs (the shared core run once).
    pub runs: u32,
    /// Learners the SIS lists.
    pub learners: u32,
    /// Of those, with an LMS account.
    pub with_account: u32,
    /// SIS rows, the bad ones included.
    pub sis_rows: u64,
    /// SIS program rows (program enrollments the SIS wants).
    pub program_rows: u64,
    /// SIS course run rows, and of them course staff.
    pub run_rows: u64,
    pub staff_rows: u64,
    /// Open edX before the first cycle.
    pub live_program_enrollments: u64,
    pub live_course_enrollments: u64,
    pub live_waiting: u64,
}

/// A learner the SIS moved to another program while Open edX still has them in the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedLearner {
    pub student_key: String,
    /// Program UUIDs.
    pub from: String,
    pub to: String,
    /// The run both programs have, active in `from` before the move.
    pub shared_run: String,
}

/// A generated university. See the module docs.
#[derive(Debug, Clone)]
pub struct University {
    pub spec: UniversitySpec,
    /// The live Open edX, drift included, without an OAuth client (add one with [`University::with_client`]).
    pub seed: OpenEdxSeed,
    pub programs: Vec<UniversityProgram>,
    /// The learners of [`UniversityDriftKind::Moved`].
    pub moved: Vec<MovedLearner>,
    pub drift: UniversityDrift,
    pub stats: UniversityStats,
    sis: Vec<UniversitySisRow>,
    /// Lower-cased student key → the key as the SIS spells it, and the learner's name.
    names: HashMap<String, (String, String)>,
}

impl University {
    /// Generates the university `spec` describes. Pure: the same spec always gives the same university.
    pub fn generate(spec: &UniversitySpec) -> University {
        generate::Generator::new(spec).run()
    }

    /// The SIS rows, good ones first, then the bad ones.
    pub fn sis_rows(&self) -> &[UniversitySisRow] {
        &self.sis
    }

    /// A learner's name by student key (any casing).
    pub fn learner_name(&self, key: &str) -> Option<&str> {
        self.names
            .get(&key.to_lowercase())
            .map(|(_, name)| name.as_str())
    }

    /// A student key as the SIS spells it, by the key in any casing (the audit log has it lower-cased).
    pub fn student_key(&self, key: &str) -> Option<&str> {
        self.names
            .get(&key.to_lowercase())
            .map(|(key, _)| key.as_str())
    }

    /// A program's name by UUID.
    pub fn program_name(&self, uuid: &str) -> Option<&str> {
        self.programs
            .iter()
            .find(|p| p.uuid == uuid)
            .map(|p| p.name.as_str())
    }

    /// Adds the OAuth application rostersync authenticates with, owned by [`SERVICE_USER`] (staff).
    pub fn with_client(mut self, client_id: &str, client_secret: &str) -> Self {
        self.seed.oauth_clients.push(super::SeedClient::new(
            client_id,
            client_secret,
            SERVICE_USER,
        ));
        self
    }
}
