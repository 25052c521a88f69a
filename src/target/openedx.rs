//! Open edX program enrollments behind the target seam (CONTRACT v2 "a second target", openedx-api-facts.md §9).
//!
//! The shared model holds: a program is a "course" (its UUID), a course run a "section" (its key), the program
//! enrollment itself sits in the default place, and states are named by [`Vocabulary::OpenEdx`]. What only Open
//! edX needs travels in the snapshot's [`OpenEdxSide`]. Here:
//! - reading: each managed program's enrollments, and each (program, run) the SIS names, into live enrollments;
//!   rows Open edX cannot take (no curriculum for a creation, a retired learner, a run it refuses) are skipped;
//! - writing: PUT batches of at most 25 keys, one result per key. Order matters (facts §3.3: one active run
//!   enrollment per learner across programs): every run deactivation first, then program enrollments (a run
//!   enrollment needs its program enrollment), then run activations;
//! - keeping waiting enrollments alive: a re-write of the same status before Open edX's 60-day expiry (§6.4).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::domain::decide::{Decision, SkippedSisRow, Snapshot};
use crate::domain::openedx_row::{LiveRecord, OpenEdxSide, OpenEdxSkip, parse_openedx_row};
use crate::domain::plan::Change;
use crate::domain::roles::{OPENEDX_LEARNER, OPENEDX_STAFF, RoleBook};
use crate::domain::sis_row::{SisRow, SkipReason, SkippedRow};
use crate::domain::{
    Action, DesiredEnrollment, DesiredState, EnrollmentState, Ids, LiveEnrollment, SectionKey, Sym,
    UserIdKind, Vocabulary,
};
use crate::metrics::ReasonLabels;
use crate::openedx::{
    CourseEnrollmentWrite, CourseStatus, KeyError, KeyOutcome, OpenEdxClient, OpenEdxError,
    ProgramEnrollmentWrite, ProgramStatus, WriteReport,
};
use crate::reconcile::read::{managed_courses, read_exceptions, read_rules, read_sis_rows};
use crate::reconcile::report::CycleReport;
use crate::reconcile::{ChangeResult, CycleContext, CycleError, CycleOptions};
use crate::store::AuditOutcome;
use crate::store::openedx_learners::OpenEdxLearners;

/// Facts §6.6: a retired learner's key.
const RETIRED_PREFIX: &str = "retired_external_key_";

/// A stable id for an Open edX enrollment, which has none in the API: the audit log's enrollment id and the flap
/// damping key must be the same every cycle. 63 bits, so it fits the audit log's bigint.
fn stable_id(program: &str, run: Option<&str>, key_lower: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(program.as_bytes())
        .chain_update([0])
        .chain_update(run.unwrap_or_default().as_bytes())
        .chain_update([0])
        .chain_update(key_lower.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes) >> 1
}

/// One enrollment as a program or run listing showed it.
struct Listed<'a> {
    program: Sym,
    uuid: &'a str,
    /// The run (interned, and its key), for a run enrollment.
    run: Option<(Sym, &'a str)>,
    staff: bool,
    key: String,
    status: &'a str,
    curriculum: String,
    waiting: bool,
}

impl Listed<'_> {
    /// Into the shared model (a live enrollment under a stable id) and the Open edX side; retired keys are left out
    /// (never a removal candidate, facts §6.6).
    fn record(self, ids: &mut Ids, live: &mut Vec<LiveEnrollment>, side: &mut OpenEdxSide) {
        if self.key.starts_with(RETIRED_PREFIX) {
            return;
        }
        let lower = self.key.to_lowercase();
        let id = stable_id(self.uuid, self.run.map(|(_, k)| k), &lower);
        let section = self
            .run
            .map_or(SectionKey::Default, |(r, _)| SectionKey::Sis(r));
        live.push(LiveEnrollment {
            id,
            user: Some(ids.intern(&lower)),
            canvas_user_id: 0,
            course: self.program,
            canvas_course_id: 0,
            section,
            canvas_section_id: 0,
            role: if self.staff {
                OPENEDX_STAFF
            } else {
                OPENEDX_LEARNER
            },
            state: Vocabulary::OpenEdx.parse_state(section, self.status),
            associated_user_id: None,
        });
        side.live.insert(
            id,
            LiveRecord {
                student_key: self.key,
                curriculum: self.curriculum,
                waiting: self.waiting,
            },
        );
    }
}

/// Reads the SIS rows and Open edX's program and run enrollments into a snapshot.
pub async fn read_snapshot(
    ctx: &CycleContext,
    client: &OpenEdxClient,
    scope: Option<&BTreeSet<String>>,
    report: &mut CycleReport,
) -> Result<Snapshot, CycleError> {
    read_snapshot_with(ctx, client, scope, report, &[]).await
}

/// [`read_snapshot`], also reading the run enrollments of `extra_runs` (program, run key): the runs of an
/// operator's recorded changes (`apply`, `undo`).
pub async fn read_snapshot_with(
    ctx: &CycleContext,
    client: &OpenEdxClient,
    scope: Option<&BTreeSet<String>>,
    report: &mut CycleReport,
    extra_runs: &[(String, String)],
) -> Result<Snapshot, CycleError> {
    let started = Instant::now();
    let mut snap = Snapshot {
        roles: RoleBook::openedx(),
        ..Snapshot::default()
    };
    snap.rules = read_rules(ctx, &snap.roles, &mut snap.ids).await?;
    let mut side = OpenEdxSide::default();
    {
        let (keys, curricula) = (&mut side.sis_keys, &mut side.curricula);
        read_sis_rows(ctx, scope, &mut snap, report, |row, ids| {
            let parsed = parse_openedx_row(row, ids)?;
            let d = parsed.desired;
            keys.entry(d.user).or_insert(parsed.student_key);
            if let (SectionKey::Default, Some(c)) = (d.section, parsed.curriculum) {
                curricula.entry((d.user, d.course)).or_insert(c);
            }
            Ok(d)
        })
        .await?;
    }
    snap.managed = managed_courses(&snap);
    report.details.managed_courses = snap.managed.len() as u64;
    report.details.read_path = "programs";

    let concurrency = (ctx.settings.limits.max_in_flight as usize).max(1);
    let programs: Vec<(Sym, String)> = snap
        .managed
        .iter()
        .map(|p| (*p, snap.ids.resolve(*p).to_owned()))
        .collect();
    let mut listings = futures::stream::iter(programs.clone())
        .map(|(sym, uuid)| async move {
            let result = client.list_program_enrollments(&uuid).await;
            (sym, uuid, result)
        })
        .buffer_unordered(concurrency);
    let mut program_rows = Vec::new();
    while let Some((program, uuid, result)) = listings.next().await {
        match result {
            Ok(rows) => program_rows.push((program, uuid, rows)),
            Err(e @ OpenEdxError::ProgramNotFound { .. }) => {
                warn!(program = %uuid, error = %e, "program not in the LMS catalog; its SIS rows are skipped");
                snap.courses_not_found.insert(program);
            }
            Err(source) => {
                return Err(CycleError::OpenEdx {
                    doing: format!(
                        "reading the enrollments of program {uuid} failed, so no change is made this cycle: "
                    ),
                    source,
                });
            }
        }
    }
    drop(listings);

    // The runs of each program Open edX has that the SIS names, or that rostersync read before (a run the SIS
    // dropped altogether still has enrollments to deactivate): their run enrollments are read.
    let learners = OpenEdxLearners::new(ctx.db.clone());
    let program_names: Vec<String> = programs.iter().map(|(_, u)| u.clone()).collect();
    let mut runs: BTreeSet<(Sym, Sym)> = snap
        .desired
        .iter()
        .filter_map(|d| match d.section {
            SectionKey::Sis(run) => Some((d.course, run)),
            SectionKey::Default => None,
        })
        .collect();
    let remembered_runs = learners.runs(&program_names).await?;
    for (program, run) in remembered_runs.iter().chain(extra_runs) {
        if let Some(program) = snap.ids.get(program)
            && snap.managed.binary_search(&program).is_ok()
        {
            runs.insert((program, snap.ids.intern(run)));
        }
    }
    runs.retain(|(program, _)| !snap.courses_not_found.contains(program));
    let runs: Vec<(Sym, Sym, String, String)> = runs
        .into_iter()
        .map(|(p, r)| {
            (
                p,
                r,
                snap.ids.resolve(p).to_owned(),
                snap.ids.resolve(r).to_owned(),
            )
        })
        .collect();
    let mut listings = futures::stream::iter(runs)
        .map(|(program, run, uuid, key)| async move {
            let result = client.list_course_enrollments(&uuid, &key).await;
            (program, run, uuid, key, result)
        })
        .buffer_unordered(concurrency);
    let mut run_rows = Vec::new();
    let mut refused: HashMap<(Sym, Sym), String> = HashMap::new();
    while let Some((program, run, uuid, key, result)) = listings.next().await {
        match result {
            Ok(rows) => run_rows.push((program, run, uuid, key, rows)),
            Err(e) if e.skip_reason().is_some() => {
                warn!(program = %uuid, course_run = %key, error = %e, "Open edX refuses this course run; its SIS rows are skipped");
                refused.insert((program, run), e.skip_reason().unwrap_or_default());
            }
            Err(source) => {
                return Err(CycleError::OpenEdx {
                    doing: format!(
                        "reading the enrollments of course run {key} in program {uuid} failed, so no change is made \
                         this cycle: "
                    ),
                    source,
                });
            }
        }
    }
    drop(listings);
    let read_runs: Vec<(String, String)> = run_rows
        .iter()
        .map(|(_, _, uuid, key, _)| (uuid.clone(), key.clone()))
        .filter(|r| !remembered_runs.contains(r))
        .collect();
    learners.remember_runs(&read_runs).await?;

    let mut live = Vec::new();
    let mut linked = Vec::new();
    for (program, uuid, rows) in program_rows {
        for r in rows {
            if r.account_exists && !r.student_key.starts_with(RETIRED_PREFIX) {
                linked.push((uuid.clone(), r.student_key.to_lowercase()));
            }
            let listed = Listed {
                program,
                uuid: &uuid,
                run: None,
                staff: false,
                key: r.student_key,
                status: &r.status,
                curriculum: r.curriculum_uuid,
                waiting: !r.account_exists,
            };
            listed.record(&mut snap.ids, &mut live, &mut side);
        }
    }
    for (program, run, uuid, key, rows) in run_rows {
        for r in rows {
            let listed = Listed {
                program,
                uuid: &uuid,
                run: Some((run, &key)),
                staff: r.course_staff,
                key: r.student_key,
                status: &r.status,
                curriculum: r.curriculum_uuid,
                waiting: !r.account_exists,
            };
            listed.record(&mut snap.ids, &mut live, &mut side);
        }
    }
    snap.live = live;

    let learners = OpenEdxLearners::new(ctx.db.clone());
    let remembered = learners
        .load(&programs.into_iter().map(|(_, u)| u).collect::<Vec<_>>())
        .await?;
    let new_linked: Vec<(String, String)> = linked
        .into_iter()
        .filter(|k| !remembered.get(k).is_some_and(|r| r.seen_linked))
        .collect();
    learners.seen_linked(&new_linked).await?;

    skip_what_cannot_be_written(ctx, &mut snap, &side, &remembered, &refused, report);
    side.keepalive_due = keepalive_due(ctx, &snap, &side, &remembered);

    // Keys compare lower-cased, as `sis_login_id` identities do.
    snap.exceptions = read_exceptions(ctx, &snap.ids, UserIdKind::SisLoginId).await?;
    snap.openedx = Some(Box::new(side));
    report.details.read_ms = started.elapsed().as_millis() as u64;
    report.details.live_enrollments = snap.live.len() as u64;
    report.details.courses_not_found = snap.courses_not_found.len() as u64;
    info!(
        programs = snap.managed.len(),
        live = snap.live.len(),
        "Open edX enrollments read"
    );
    Ok(snap)
}

/// Moves the SIS rows Open edX cannot take into the skipped rows: a program enrollment to create without a
/// curriculum, a retired learner (with the learner's run rows), a run Open edX refuses.
fn skip_what_cannot_be_written(
    ctx: &CycleContext,
    snap: &mut Snapshot,
    side: &OpenEdxSide,
    remembered: &HashMap<(String, String), crate::store::openedx_learners::Remembered>,
    refused: &HashMap<(Sym, Sym), String>,
    report: &mut CycleReport,
) {
    let live_programs: HashMap<(Sym, Sym), &str> = snap
        .live
        .iter()
        .filter(|l| l.section == SectionKey::Default)
        .filter_map(|l| {
            let curriculum = side.live.get(&l.id).map_or("", |r| r.curriculum.as_str());
            Some(((l.user?, l.course), curriculum))
        })
        .collect();
    let mut blocked: HashMap<(Sym, Sym), OpenEdxSkip> = HashMap::new();
    // Rows that stay (their status is reconciled) with something to say: a curriculum the SIS changed, which the
    // API cannot change (facts §2.5) and rostersync does not pretend to.
    let mut noted: Vec<(DesiredEnrollment, OpenEdxSkip)> = Vec::new();
    for d in &snap.desired {
        let place = (d.user, d.course);
        if d.section != SectionKey::Default || snap.courses_not_found.contains(&d.course) {
            continue;
        }
        if let Some(live) = live_programs.get(&place) {
            if let Some(sis) = side.curricula.get(&place)
                && sis != live
            {
                noted.push((
                    *d,
                    OpenEdxSkip::CurriculumChange {
                        sis: sis.clone(),
                        live: (*live).to_owned(),
                    },
                ));
            }
            continue;
        }
        let key = (
            snap.ids.resolve(d.course).to_owned(),
            snap.ids.resolve(d.user).to_owned(),
        );
        if remembered.get(&key).is_some_and(|r| r.seen_linked) {
            blocked.insert(place, OpenEdxSkip::Retired);
        } else if d.state != DesiredState::Deleted && !side.curricula.contains_key(&place) {
            blocked.insert(place, OpenEdxSkip::NoCurriculum);
        }
    }
    let mut skipped = noted;
    let mut kept = Vec::with_capacity(snap.desired.len());
    for d in std::mem::take(&mut snap.desired) {
        let skip = match (blocked.get(&(d.user, d.course)), d.section) {
            (Some(reason), _) => Some(reason.clone()),
            (None, SectionKey::Sis(run)) => refused
                .get(&(d.course, run))
                .map(|r| OpenEdxSkip::RunRefused(r.clone())),
            (None, SectionKey::Default) => None,
        };
        match skip {
            Some(reason) => skipped.push((d, reason)),
            None => kept.push(d),
        }
    }
    snap.desired = kept;
    for (d, reason) in skipped {
        // A note on a row that stays must not hold the learner's other enrollments the way a skipped row does.
        let holds = !matches!(reason, OpenEdxSkip::CurriculumChange { .. });
        ctx.metrics
            .skipped_rows
            .get_or_create(&ReasonLabels {
                reason: reason.label().to_owned(),
            })
            .inc();
        let (ids, roles) = (&snap.ids, &snap.roles);
        snap.skipped.push(SkippedSisRow {
            row: SisRow {
                user_id: Some(
                    side.sis_keys
                        .get(&d.user)
                        .cloned()
                        .unwrap_or_else(|| ids.resolve(d.user).to_owned()),
                ),
                course_id: Some(ids.resolve(d.course).to_owned()),
                section_id: match d.section {
                    SectionKey::Sis(r) => Some(ids.resolve(r).to_owned()),
                    SectionKey::Default => None,
                },
                role: Some(roles.name(d.role)),
                status: Some(
                    roles
                        .state_name(d.section, d.state.canvas_state())
                        .to_owned(),
                ),
                curriculum_uuid: side.curricula.get(&(d.user, d.course)).cloned(),
            },
            skip: SkippedRow {
                reason: SkipReason::OpenEdx(reason),
                user: holds.then_some(d.user),
                course: holds.then_some(d.course),
            },
        });
    }
    report.details.sis_rows_skipped = snap.skipped.len() as u64;
}

/// Live waiting program enrollments the SIS still lists, not written for `openedx.waiting_keepalive_days`.
fn keepalive_due(
    ctx: &CycleContext,
    snap: &Snapshot,
    side: &OpenEdxSide,
    remembered: &HashMap<(String, String), crate::store::openedx_learners::Remembered>,
) -> Vec<u64> {
    let Some(after) = ctx
        .settings
        .openedx
        .as_ref()
        .and_then(|o| chrono::Duration::from_std(o.waiting_keepalive).ok())
    else {
        return Vec::new();
    };
    let due_before = chrono::Utc::now() - after;
    let listed: HashSet<(Sym, Sym)> = snap
        .desired
        .iter()
        .filter(|d| d.section == SectionKey::Default)
        .map(|d| (d.user, d.course))
        .collect();
    let mut due: Vec<u64> = snap
        .live
        .iter()
        .filter(|l| l.section == SectionKey::Default)
        .filter(|l| side.live.get(&l.id).is_some_and(|r| r.waiting))
        .filter(|l| l.user.is_some_and(|u| listed.contains(&(u, l.course))))
        .filter(|l| {
            let key = (
                snap.ids.resolve(l.course).to_owned(),
                l.user
                    .map(|u| snap.ids.resolve(u).to_owned())
                    .unwrap_or_default(),
            );
            remembered
                .get(&key)
                .and_then(|r| r.written_at)
                .is_none_or(|at| at <= due_before)
        })
        .map(|l| l.id)
        .collect();
    due.sort_unstable();
    due
}

/// The keep-alive writes a cycle makes besides its plan: the same status again, for the waiting enrollments due
/// (those the plan already writes are not written twice).
pub fn keepalive_changes(snap: &Snapshot, decision: &Decision) -> Vec<Change> {
    let Some(side) = snap.openedx.as_deref() else {
        return Vec::new();
    };
    let planned: HashSet<u64> = decision
        .plan
        .changes
        .iter()
        .filter_map(|c| c.live.map(|l| l.id))
        .collect();
    let by_id: HashMap<u64, &LiveEnrollment> = snap.live.iter().map(|l| (l.id, l)).collect();
    side.keepalive_due
        .iter()
        .filter(|id| !planned.contains(id))
        .filter_map(|id| by_id.get(id))
        .filter(|l| !l.user.is_some_and(|u| snap.is_excepted(u, l.course)))
        .map(|l| Change {
            action: Action::ChangeState,
            user: l.user,
            course: l.course,
            section: l.section,
            role_before: Some(l.role),
            role_after: Some(l.role),
            state_before: Some(l.state),
            state_after: Some(l.state),
            live: Some(**l),
        })
        .collect()
}

/// Whether a change is a keep-alive write (the same state again).
fn is_keepalive(change: &Change) -> bool {
    change.action == Action::ChangeState && change.state_before == change.state_after
}

/// One key's write, in the form its endpoint takes.
enum Write {
    Program(ProgramEnrollmentWrite),
    Course(CourseEnrollmentWrite),
}

/// Where a write goes: its phase (run deactivations, program enrollments, run activations), program and run.
type Destination = (u8, Sym, Option<Sym>);

/// The writes to one destination, each with its change and audit row id.
type Group = (Destination, Vec<(Change, i64, Write)>);

fn program_status(state: EnrollmentState) -> Option<ProgramStatus> {
    Some(match state {
        EnrollmentState::Active => ProgramStatus::Enrolled,
        EnrollmentState::Invited => ProgramStatus::Pending,
        EnrollmentState::Inactive => ProgramStatus::Suspended,
        EnrollmentState::Deleted => ProgramStatus::Canceled,
        EnrollmentState::Completed => ProgramStatus::Ended,
        _ => return None,
    })
}

/// The write a change needs, or why it cannot be made.
fn write_for(
    change: &Change,
    snap: &Snapshot,
    side: &OpenEdxSide,
) -> Result<(Destination, Write), String> {
    let ids = &snap.ids;
    let live = change.live.and_then(|l| side.live.get(&l.id));
    let key = change
        .user
        .and_then(|u| side.sis_keys.get(&u).cloned())
        .or_else(|| live.map(|l| l.student_key.clone()))
        .or_else(|| change.user.map(|u| ids.resolve(u).to_owned()))
        .ok_or("no student key")?;
    let state = change
        .state_after
        .ok_or("the change names no resulting status")?;
    match change.section {
        SectionKey::Default => {
            let status = program_status(state)
                .ok_or_else(|| format!("state `{state}` has no Open edX program status"))?;
            let curriculum = match (live, change.user) {
                (Some(l), _) => l.curriculum.clone(),
                (None, Some(u)) => side
                    .curricula
                    .get(&(u, change.course))
                    .cloned()
                    .ok_or_else(|| OpenEdxSkip::NoCurriculum.to_string())?,
                (None, None) => return Err(OpenEdxSkip::NoCurriculum.to_string()),
            };
            Ok((
                (1, change.course, None),
                Write::Program(ProgramEnrollmentWrite {
                    student_key: key,
                    status,
                    curriculum_uuid: curriculum,
                }),
            ))
        }
        SectionKey::Sis(run) => {
            let (status, phase) = match (change.action, state) {
                (Action::Remove, _) | (_, EnrollmentState::Inactive) => (CourseStatus::Inactive, 0),
                (_, EnrollmentState::Active) => (CourseStatus::Active, 2),
                (_, other) => return Err(format!("state `{other}` has no Open edX course status")),
            };
            // Facts §3.5, §9.8: `course_staff` is sent only when the SIS makes someone staff, or when it says
            // learner for someone Open edX lists as staff; otherwise it is left out and roles are left alone.
            let course_staff = match change.action {
                Action::ChangeRole => Some(change.role_after == Some(OPENEDX_STAFF)),
                Action::Enroll if change.role_after == Some(OPENEDX_STAFF) => Some(true),
                _ => None,
            };
            Ok((
                (phase, change.course, Some(run)),
                Write::Course(CourseEnrollmentWrite {
                    student_key: key,
                    status,
                    course_staff,
                }),
            ))
        }
    }
}

fn result(
    outcome: AuditOutcome,
    error: Option<String>,
    id: Option<u64>,
    steps: serde_json::Value,
) -> ChangeResult {
    ChangeResult {
        outcome,
        error,
        http_status: None,
        enrollment_id: id,
        new_enrollment_id: None,
        steps: Some(steps),
        user_not_found: false,
        section_not_found: false,
        ends_cycle: None,
    }
}

/// What an operator reads for a key Open edX refused (facts §7.2).
fn refusal(error: &KeyError, course: bool) -> String {
    let why = match error {
        KeyError::Conflict if course => {
            "the learner has an active enrollment in this course run through another program (facts §3.3: it must \
             be deactivated there first); tried again next cycle"
        }
        KeyError::Conflict => "the enrollment exists and was not changed",
        KeyError::NotInProgram => "the learner has no enrollment in this program",
        KeyError::Duplicated => "the key was sent twice in one request",
        KeyError::InvalidStatus => "Open edX does not accept this status",
        KeyError::NotFound => "the course enrollment does not exist",
        _ => "Open edX refused this key",
    };
    format!("Open edX answered `{}` for this key: {why}", error.as_str())
}

/// Makes the changes in Open edX, phase by phase, and says how each ended; the error, if Open edX refused the
/// credentials or the application on the way (the rest is then not attempted).
pub async fn make_changes(
    ctx: &CycleContext,
    client: &OpenEdxClient,
    opts: &CycleOptions,
    snap: &Snapshot,
    jobs: Vec<(Change, i64)>,
) -> (Vec<(Change, i64, ChangeResult)>, Option<CycleError>) {
    let empty = OpenEdxSide::default();
    let side = snap.openedx.as_deref().unwrap_or(&empty);
    let ids = &snap.ids;
    let mut done = Vec::with_capacity(jobs.len());
    let mut groups: BTreeMap<Destination, Vec<(Change, i64, Write)>> = BTreeMap::new();
    for (change, audit_id) in jobs {
        match write_for(&change, snap, side) {
            Ok((to, write)) => groups
                .entry(to)
                .or_default()
                .push((change, audit_id, write)),
            Err(reason) => done.push((
                change,
                audit_id,
                ChangeResult::skipped(format!("not made: {reason}")),
            )),
        }
    }
    let mut ended: Option<CycleError> = None;
    let mut written: Vec<(String, String)> = Vec::new();
    let concurrency = (ctx.settings.limits.max_in_flight as usize).max(1);
    let mut phases: [Vec<Group>; 3] = Default::default();
    for (to, items) in groups {
        phases[usize::from(to.0).min(2)].push((to, items));
    }
    for batch in phases {
        if let Some(reason) = not_attempted(opts, ended.as_ref()) {
            for (_, items) in batch {
                done.extend(
                    items
                        .into_iter()
                        .map(|(c, id, _)| (c, id, ChangeResult::skipped(reason.clone()))),
                );
            }
            continue;
        }
        let mut writes = futures::stream::iter(batch)
            .map(|((_, program, run), items)| async move {
                let uuid = ids.resolve(program);
                let sent = async {
                    match run {
                        None => {
                            let rows: Vec<ProgramEnrollmentWrite> = items
                                .iter()
                                .filter_map(|(_, _, w)| match w {
                                    Write::Program(p) => Some(p.clone()),
                                    Write::Course(_) => None,
                                })
                                .collect();
                            client.write_program_enrollments(uuid, &rows).await
                        }
                        Some(run) => {
                            let rows: Vec<CourseEnrollmentWrite> = items
                                .iter()
                                .filter_map(|(_, _, w)| match w {
                                    Write::Course(c) => Some(c.clone()),
                                    Write::Program(_) => None,
                                })
                                .collect();
                            client
                                .write_course_enrollments(uuid, ids.resolve(run), &rows)
                                .await
                        }
                    }
                };
                // Losing the lock abandons the writes in flight.
                let answer = tokio::select! {
                    biased;
                    _ = opts.abort.cancelled() => None,
                    report = sent => Some(report),
                };
                (program, run, items, answer)
            })
            .buffer_unordered(concurrency);
        while let Some((program, run, items, answer)) = writes.next().await {
            let uuid = ids.resolve(program);
            let Some(WriteReport { results, stopped }) = answer else {
                done.extend(items.into_iter().map(|(c, id, _)| {
                    let interrupted = ChangeResult {
                        outcome: AuditOutcome::Failed,
                        ..ChangeResult::skipped(
                            "interrupted: this replica lost the leader lock while the write was in flight; the next \
                             cycle reads whether Open edX made it",
                        )
                    };
                    (c, id, interrupted)
                }));
                continue;
            };
            let skip_reason = stopped.as_ref().and_then(OpenEdxError::skip_reason);
            for ((change, audit_id, write), key_result) in items.into_iter().zip(results) {
                let (sent, key) = match &write {
                    Write::Program(p) => (
                        json!({"status": p.status, "curriculum_uuid": p.curriculum_uuid}),
                        &p.student_key,
                    ),
                    Write::Course(c) => (
                        json!({"status": c.status, "course_staff": c.course_staff}),
                        &c.student_key,
                    ),
                };
                let lower = key.to_lowercase();
                let id = change
                    .live
                    .map(|l| l.id)
                    .unwrap_or_else(|| stable_id(uuid, run.map(|r| ids.resolve(r)), &lower));
                let mut steps = json!({"sent": sent, "answer": null});
                if is_keepalive(&change) {
                    steps["keepalive"] = json!(true);
                }
                let outcome = match key_result.outcome {
                    KeyOutcome::Applied(status) => {
                        steps["answer"] = json!(status);
                        if run.is_none() {
                            written.push((uuid.to_owned(), lower));
                        }
                        result(AuditOutcome::Applied, None, Some(id), steps)
                    }
                    KeyOutcome::Rejected(error) => {
                        steps["answer"] = json!(error.as_str());
                        result(
                            AuditOutcome::Failed,
                            Some(refusal(&error, run.is_some())),
                            Some(id),
                            steps,
                        )
                    }
                    KeyOutcome::Failed(message) => match &skip_reason {
                        Some(reason) => {
                            result(AuditOutcome::Skipped, Some(reason.clone()), Some(id), steps)
                        }
                        None => result(
                            AuditOutcome::Failed,
                            Some(format!(
                                "{message}; nothing of this request was applied, tried again next cycle"
                            )),
                            Some(id),
                            steps,
                        ),
                    },
                };
                done.push((change, audit_id, outcome));
            }
            if let Some(e) = stopped.filter(OpenEdxError::ends_cycle)
                && ended.is_none()
            {
                ended = Some(CycleError::OpenEdx {
                    doing: "Open edX refused the cycle's credentials while writing: ".into(),
                    source: e,
                });
            }
        }
    }
    if let Err(e) = OpenEdxLearners::new(ctx.db.clone()).written(&written).await {
        warn!(error = %e, "cannot record when the program enrollments were written; waiting ones may be re-written early");
    }
    (done, ended)
}

/// Why the writes of a phase are not attempted, if they are not.
fn not_attempted(opts: &CycleOptions, ended: Option<&CycleError>) -> Option<String> {
    if opts.deadline_reached.is_cancelled() {
        Some(
            "not attempted: the cycle reached its deadline (reconcile.cycle_deadline_secs); the next cycle plans it \
             again"
                .into(),
        )
    } else if opts.cancel.is_cancelled() || opts.abort.is_cancelled() {
        Some(
            "not attempted: the cycle was stopped (shutdown, or this replica lost the leader lock)"
                .into(),
        )
    } else {
        ended.map(|e| format!("not attempted: the cycle stopped after: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_are_the_same_every_cycle_and_fit_a_bigint() {
        let a = stable_id("p", Some("course-v1:a+b+c"), "learner-1");
        assert_eq!(a, stable_id("p", Some("course-v1:a+b+c"), "learner-1"));
        assert_ne!(a, stable_id("p", None, "learner-1"));
        assert!(a <= i64::MAX as u64);
    }

    #[test]
    fn program_statuses_cover_every_state_a_plan_asks_for() {
        for s in [
            EnrollmentState::Active,
            EnrollmentState::Invited,
            EnrollmentState::Inactive,
            EnrollmentState::Deleted,
            EnrollmentState::Completed,
        ] {
            assert!(program_status(s).is_some(), "{s}");
        }
    }
}
