//! Building a university: the catalog, the learners the SIS lists (each with at most one drift kind), then the SIS
//! rows and the live Open edX from them, counting every injected difference in the changes it calls for.

use std::collections::HashSet;

use super::sis::UniversitySisRow;
use super::{
    MovedLearner, ORGANIZATION, SAML_SLUG, SERVICE_USER, University, UniversityDrift,
    UniversityDriftKind, UniversityProgram, UniversitySpec, UniversityStats,
};
use crate::district::{FIRST_NAMES, LAST_NAMES, Rng};
use crate::openedx::{
    OpenEdxSeed, SeedCurriculum, SeedLmsUser, SeedProgram, SeedProgramCourseEnrollment,
    SeedProgramEnrollment, SeedSamlProvider,
};

/// Programs the university may run: name, course code prefix, and four courses of its own.
pub(super) const PROGRAM_CATALOG: [(&str, &str, [&str; 4]); 12] = [
    ("Master of Data Science", "DS", ["101", "102", "201", "202"]),
    (
        "Master of Public Health",
        "PH",
        ["110", "120", "210", "220"],
    ),
    (
        "MicroMasters in Supply Chain",
        "SC",
        ["100", "200", "300", "400"],
    ),
    (
        "Master of Cybersecurity",
        "CY",
        ["101", "150", "201", "250"],
    ),
    ("Master of Finance", "FIN", ["500", "510", "520", "530"]),
    ("Master of Education", "ED", ["600", "610", "620", "630"]),
    ("Nursing Informatics", "NI", ["101", "102", "103", "104"]),
    ("Urban Planning", "UP", ["210", "220", "230", "240"]),
    ("Applied Statistics", "STAT", ["401", "402", "403", "404"]),
    ("Marketing Analytics", "MKT", ["301", "302", "303", "304"]),
    (
        "Artificial Intelligence",
        "AI",
        ["501", "502", "503", "504"],
    ),
    ("Climate Science", "CLIM", ["101", "201", "301", "401"]),
];
/// The run every curriculum has: programs share it, so a learner can move between two programs in one run.
const CORE_COURSE: &str = "WRIT500";
const RUN: &str = "2026_T1";
/// Own runs a learner takes besides the core run: 2 or 3 of the program's 4.
const MIN_OWN_RUNS: u32 = 2;

fn run_key(code: &str) -> String {
    format!("course-v1:{ORGANIZATION}+{code}+{RUN}")
}

/// A lowercase, hyphenated random (v4) UUID drawn from the generator.
fn uuid(rng: &mut Rng) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// What a SIS learner's live state is, relative to the SIS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InSync,
    NewAdmit,
    Suspended,
    /// In the SIS's program; Open edX still has the learner in `from`, in the core run.
    Moved {
        from: usize,
    },
    /// Open edX lacks the learner's run at this index of `runs`.
    MissingRun(usize),
}

struct Learner {
    key: String,
    /// With an LMS account: its username (linked through `stateu:<key>`).
    username: Option<String>,
    program: usize,
    /// (index into the program's runs, course staff).
    runs: Vec<(usize, bool)>,
    kind: Kind,
}

pub(super) struct Generator<'s> {
    spec: &'s UniversitySpec,
    rng: Rng,
    programs: Vec<UniversityProgram>,
    learners: Vec<Learner>,
    seed: OpenEdxSeed,
    sis: Vec<UniversitySisRow>,
    drift: UniversityDrift,
    stats: UniversityStats,
    /// (student key, name) of everyone generated, the unlisted learners included.
    names: Vec<(String, String)>,
    moved: Vec<MovedLearner>,
}

impl<'s> Generator<'s> {
    pub(super) fn new(spec: &'s UniversitySpec) -> Self {
        Generator {
            spec,
            rng: Rng(spec.rng_seed ^ 0x0ED5_0000_0000_0000),
            programs: Vec::new(),
            learners: Vec::new(),
            seed: OpenEdxSeed::default(),
            sis: Vec::new(),
            drift: UniversityDrift::default(),
            stats: UniversityStats::default(),
            names: Vec::new(),
            moved: Vec::new(),
        }
    }

    pub(super) fn run(mut self) -> University {
        self.catalog();
        self.seed.users.push(SeedLmsUser::new(SERVICE_USER).staff());
        self.seed.saml_providers.push(SeedSamlProvider {
            slug: SAML_SLUG.to_owned(),
            organization: ORGANIZATION.to_owned(),
        });
        for i in 0..self.spec.learners {
            let learner = self.learner(i);
            self.learners.push(learner);
        }
        self.sis_and_live();
        self.unlisted();
        self.bad_rows();
        let names = self
            .names
            .iter()
            .map(|(key, name)| (key.to_lowercase(), (key.clone(), name.clone())))
            .collect();
        self.stats.programs = self.programs.len() as u32;
        self.stats.runs = self
            .programs
            .iter()
            .flat_map(|p| &p.runs)
            .collect::<HashSet<_>>()
            .len() as u32;
        self.stats.learners = self.spec.learners;
        self.stats.sis_rows = self.sis.len() as u64;
        University {
            spec: self.spec.clone(),
            seed: self.seed,
            programs: self.programs,
            moved: self.moved,
            drift: self.drift,
            stats: self.stats,
            sis: self.sis,
            names,
        }
    }

    /// The programs, each with one active curriculum: the core run first, then its own four.
    fn catalog(&mut self) {
        for (name, prefix, codes) in PROGRAM_CATALOG.iter().take(self.spec.programs() as usize) {
            let mut runs = vec![run_key(CORE_COURSE)];
            runs.extend(codes.iter().map(|c| run_key(&format!("{prefix}{c}"))));
            let program = UniversityProgram {
                uuid: uuid(&mut self.rng),
                name: (*name).to_owned(),
                curriculum_uuid: uuid(&mut self.rng),
                runs,
            };
            self.seed.programs.push(SeedProgram {
                uuid: program.uuid.clone(),
                authoring_org: Some(ORGANIZATION.to_owned()),
                curricula: vec![SeedCurriculum {
                    uuid: program.curriculum_uuid.clone(),
                    is_active: true,
                    course_runs: program.runs.clone(),
                }],
            });
            self.programs.push(program);
        }
    }

    /// A person: a student key, a name, and an LMS account with the spec's chance (its username).
    fn person(&mut self, number: u32) -> (String, Option<String>) {
        let key = format!("SU{number:06}");
        let first = self.rng.pick(FIRST_NAMES);
        let last = self.rng.pick(LAST_NAMES);
        let username = self.rng.chance(self.spec.with_account).then(|| {
            format!(
                "{}.{}{number}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            )
        });
        if let Some(username) = &username {
            self.seed
                .users
                .push(SeedLmsUser::new(username).with_social_uid(&format!("{SAML_SLUG}:{key}")));
        }
        self.names.push((key.clone(), format!("{first} {last}")));
        (key, username)
    }

    fn learner(&mut self, i: u32) -> Learner {
        let (key, username) = self.person(i + 1);
        self.stats.with_account += u32::from(username.is_some());
        let program = self.rng.below(self.programs.len() as u32) as usize;
        let own = self.programs[program].runs.len() - 1;
        let take = (MIN_OWN_RUNS + self.rng.below(2)) as usize;
        let mut runs = vec![(0, self.rng.chance(self.spec.staff))];
        let start = self.rng.below(own as u32) as usize;
        for k in 0..take.min(own) {
            runs.push((1 + (start + k) % own, self.rng.chance(self.spec.staff)));
        }
        let kind = self.kind(program, runs.len());
        Learner {
            key,
            username,
            program,
            runs,
            kind,
        }
    }

    /// At most one drift kind per learner. In a first sync every learner is new to Open edX (and that is not drift).
    fn kind(&mut self, program: usize, runs: usize) -> Kind {
        if !self.spec.prefilled {
            return Kind::NewAdmit;
        }
        let d = &self.spec.drift;
        let roll = self.rng.unit();
        let mut edge = d.new_admits;
        if roll < edge {
            return Kind::NewAdmit;
        }
        edge += d.suspended;
        if roll < edge {
            return Kind::Suspended;
        }
        edge += d.moved;
        if roll < edge {
            let others = self.programs.len() - 1;
            let from = (program + 1 + self.rng.below(others as u32) as usize) % self.programs.len();
            return Kind::Moved { from };
        }
        edge += d.missing_run;
        if roll < edge {
            return Kind::MissingRun(self.rng.below(runs as u32) as usize);
        }
        Kind::InSync
    }

    /// The SIS rows of every learner, and Open edX as the drift leaves it.
    fn sis_and_live(&mut self) {
        // What a cycle lists: each program the SIS names, and each (program, run) it names. Only there can a live
        // enrollment the SIS does not list be seen, and so removed.
        let managed: HashSet<usize> = self.learners.iter().map(|l| l.program).collect();
        let named: HashSet<(usize, usize)> = self
            .learners
            .iter()
            .flat_map(|l| l.runs.iter().map(move |(r, _)| (l.program, *r)))
            .collect();
        let learners = std::mem::take(&mut self.learners);
        for l in &learners {
            let program = &self.programs[l.program];
            let suspended = l.kind == Kind::Suspended;
            self.sis.push(UniversitySisRow {
                user_id: l.key.clone(),
                course_id: program.uuid.clone(),
                section_id: None,
                role: Some("learner"),
                status: Some(if suspended { "suspended" } else { "enrolled" }),
                curriculum_uuid: Some(program.curriculum_uuid.clone()),
            });
            for (r, staff) in &l.runs {
                self.stats.run_rows += 1;
                self.stats.staff_rows += u64::from(*staff);
                self.sis.push(UniversitySisRow {
                    user_id: l.key.clone(),
                    course_id: program.uuid.clone(),
                    section_id: Some(program.runs[*r].clone()),
                    role: Some(if *staff { "staff" } else { "learner" }),
                    status: Some(if suspended { "inactive" } else { "active" }),
                    curriculum_uuid: None,
                });
            }
            self.stats.program_rows += 1;

            let runs = l.runs.len() as u64;
            match l.kind {
                Kind::NewAdmit => {
                    if self.spec.prefilled {
                        let t = self.drift.tally(UniversityDriftKind::NewAdmit);
                        t.cases += 1;
                        t.enroll += 1 + runs;
                    }
                    continue;
                }
                Kind::Moved { from } => {
                    let t = self.drift.tally(UniversityDriftKind::Moved);
                    t.cases += 1;
                    t.enroll += 1 + runs;
                    t.remove +=
                        u64::from(managed.contains(&from)) + u64::from(named.contains(&(from, 0)));
                    // Open edX still has the learner in the old program, active in the core run.
                    self.live(l, from, &[(0, false)]);
                    let (to, old) = (&self.programs[l.program], &self.programs[from]);
                    let moved = MovedLearner {
                        student_key: l.key.clone(),
                        from: old.uuid.clone(),
                        to: to.uuid.clone(),
                        shared_run: to.runs[0].clone(),
                    };
                    self.moved.push(moved);
                    continue;
                }
                Kind::Suspended => {
                    let t = self.drift.tally(UniversityDriftKind::Suspended);
                    t.cases += 1;
                    t.change_state += 1 + runs;
                }
                Kind::MissingRun(_) => {
                    let t = self.drift.tally(UniversityDriftKind::MissingRun);
                    t.cases += 1;
                    t.enroll += 1;
                }
                Kind::InSync => {}
            }
            let mut live_runs: Vec<(usize, bool)> = Vec::with_capacity(l.runs.len());
            for (i, &(r, staff)) in l.runs.iter().enumerate() {
                if l.kind == Kind::MissingRun(i) {
                    continue;
                }
                let unflagged = staff
                    && l.kind == Kind::InSync
                    && self.rng.chance(self.spec.drift.staff_unflagged);
                if unflagged {
                    let t = self.drift.tally(UniversityDriftKind::StaffUnflagged);
                    t.cases += 1;
                    t.change_role += 1;
                }
                live_runs.push((r, staff && !unflagged));
            }
            // A waiting enrollment that no change of the plan writes is re-written: rostersync has no record of
            // ever writing it, so it cannot know how close Open edX's 60-day expiry is.
            if l.username.is_none() && l.kind != Kind::Suspended {
                let t = self.drift.tally(UniversityDriftKind::WaitingUnrecorded);
                t.cases += 1;
                t.change_state += 1;
            }
            self.live(l, l.program, &live_runs);
        }
        self.learners = learners;
    }

    /// A live program enrollment (`enrolled`, linked when the learner has an account) and its active run enrollments.
    fn live(&mut self, l: &Learner, program: usize, runs: &[(usize, bool)]) {
        let p = &self.programs[program];
        let mut pe = SeedProgramEnrollment::new(&l.key, &p.uuid, &p.curriculum_uuid, "enrolled");
        pe.username = l.username.clone();
        self.stats.live_waiting += u64::from(l.username.is_none());
        self.stats.live_program_enrollments += 1;
        self.seed.program_enrollments.push(pe);
        for &(r, staff) in runs {
            let mut pce = SeedProgramCourseEnrollment::new(&l.key, &p.uuid, &p.runs[r], "active");
            pce.course_staff = staff;
            self.seed.program_course_enrollments.push(pce);
            self.stats.live_course_enrollments += 1;
        }
    }

    /// Learners Open edX has whom the SIS no longer lists (graduated, withdrawn): in a program, active in the core
    /// run and one of their own.
    fn unlisted(&mut self) {
        if !self.spec.prefilled || self.spec.drift.unlisted <= 0.0 {
            return;
        }
        let count = (f64::from(self.spec.learners) * self.spec.drift.unlisted)
            .round()
            .max(1.0) as u32;
        let managed: HashSet<usize> = self.learners.iter().map(|l| l.program).collect();
        let named: HashSet<(usize, usize)> = self
            .learners
            .iter()
            .flat_map(|l| l.runs.iter().map(move |(r, _)| (l.program, *r)))
            .collect();
        for j in 0..count {
            let (key, username) = self.person(self.spec.learners + j + 1);
            let program = self.rng.below(self.programs.len() as u32) as usize;
            let own = 1 + self.rng.below(self.programs[program].runs.len() as u32 - 1) as usize;
            let learner = Learner {
                key,
                username,
                program,
                runs: vec![(0, false), (own, false)],
                kind: Kind::InSync,
            };
            let t = self.drift.tally(UniversityDriftKind::Unlisted);
            t.cases += 1;
            t.remove += u64::from(managed.contains(&program))
                + learner
                    .runs
                    .iter()
                    .filter(|(r, _)| named.contains(&(program, *r)))
                    .count() as u64;
            self.live(&learner, program, &learner.runs);
        }
    }

    /// Two rows Open edX cannot take, next to learners without drift who have an account (a bad row puts its
    /// learner and program on hold, and that must change nothing the plan decides): the program's UUID in
    /// uppercase, and a run in the old slash form of course keys.
    fn bad_rows(&mut self) {
        if !self.spec.drift.bad_rows {
            return;
        }
        let hosts: Vec<(String, usize)> = self
            .learners
            .iter()
            .filter(|l| l.kind == Kind::InSync && l.username.is_some())
            .take(2)
            .map(|l| (l.key.clone(), l.program))
            .collect();
        let mut hosts = hosts.into_iter();
        if let Some((key, program)) = hosts.next() {
            let p = &self.programs[program];
            self.sis.push(UniversitySisRow {
                user_id: key,
                course_id: p.uuid.to_uppercase(),
                section_id: None,
                role: Some("learner"),
                status: Some("enrolled"),
                curriculum_uuid: Some(p.curriculum_uuid.clone()),
            });
            self.drift.tally(UniversityDriftKind::BadSisRow).cases += 1;
        }
        if let Some((key, program)) = hosts.next() {
            let p = &self.programs[program];
            let (_, prefix, codes) = PROGRAM_CATALOG[program];
            self.sis.push(UniversitySisRow {
                user_id: key,
                course_id: p.uuid.clone(),
                section_id: Some(format!("{ORGANIZATION}/{prefix}{}/{RUN}", codes[0])),
                role: Some("learner"),
                status: Some("active"),
                curriculum_uuid: None,
            });
            self.drift.tally(UniversityDriftKind::BadSisRow).cases += 1;
        }
    }
}
