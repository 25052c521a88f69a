//! The one decision of a cycle: `decide(&Snapshot, &DecideSettings) -> Decision`.
//!
//! Pure and synchronous: no I/O, no clock, no logging. The cycle reads both sides into a [`Snapshot`] at its edge,
//! calls [`decide`], and applies what the [`Decision`] says. Tests, the benchmark and the demo call this same
//! function, so what they check is what the daemon does.
//!
//! The order is fixed and each step feeds the next: exceptions take their users' rows out of the plan input, role
//! rules rewrite the desired side (and say which users to hold), duplicates are resolved (the most present status
//! wins), the plan compares desired with live, and the brake judges the plan.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::fast::{self, FastMap};
use super::guard::{self, GuardDecision, GuardLimits, ScopedBase, Trip};
use super::plan::{self, Change, DuplicateConflict, Plan, PlanInput};
use super::roles::RoleBook;
use super::rules::{self, ResolvedRule, RuleConflict};
use super::sis_row::{SisRow, SkippedRow};
use super::{
    DesiredEnrollment, EnrollmentKey, Ids, LiveEnrollment, RemovalPolicy, SectionKey, Sym,
};

/// Everything a cycle read, in domain form: the SIS side (parsed rows, rows that could not be parsed, role-rule
/// users) and the Canvas side (roles, live enrollments of the managed courses, courses Canvas does not have).
#[derive(Default)]
pub struct Snapshot {
    /// The interned ids every `Sym` in the snapshot (and in its decision) refers to.
    pub ids: Ids,
    pub roles: RoleBook,
    /// SIS rows read, parsed or not.
    pub sis_rows: u64,
    /// The SIS rows that parsed, in read order (duplicates included: `decide` resolves them).
    pub desired: Vec<DesiredEnrollment>,
    /// The SIS rows that did not parse, with the reason.
    pub skipped: Vec<SkippedSisRow>,
    /// Role rules with their roles resolved and their users read.
    pub rules: Vec<ResolvedRule>,
    /// Courses named by at least one usable SIS row, sorted.
    pub managed: Vec<Sym>,
    /// Live enrollments of the managed courses.
    pub live: Vec<LiveEnrollment>,
    /// Managed courses Canvas answered 404 for.
    pub courses_not_found: HashSet<Sym>,
    /// Users' names as Canvas listings showed them (user identity → name), for plans a person reads.
    pub names: HashMap<Sym, Sym>,
    /// Users SIS rows name that Canvas does not have (looked up this cycle).
    pub users_not_in_canvas: HashSet<Sym>,
    /// SIS sections SIS rows name that Canvas does not have (looked up this cycle).
    pub sections_not_in_canvas: HashSet<Sym>,
    /// In a run limited to some courses: the usable SIS rows of the other courses (read, parsed, not kept).
    pub usable_rows_outside_scope: u64,
    /// Active exceptions (CONTRACT v2): (user, course) whose enrollments the plan leaves exactly as they are;
    /// course `None` = every course. Users are interned as the SIS rows' identities are (`user_identity`).
    pub exceptions: HashSet<(Sym, Option<Sym>)>,
    /// With `target.kind = "openedx"`: what writing to Open edX needs beyond the shared model.
    pub openedx: Option<Box<super::openedx_row::OpenEdxSide>>,
}

/// Live enrollments found by Canvas id and by user + section + role: how a recorded change finds its enrollment.
pub struct LiveIndex<'a> {
    pub by_id: HashMap<u64, &'a LiveEnrollment>,
    pub by_key: HashMap<EnrollmentKey, &'a LiveEnrollment>,
}

impl Snapshot {
    pub fn live_index(&self) -> LiveIndex<'_> {
        LiveIndex {
            by_id: self.live.iter().map(|l| (l.id, l)).collect(),
            by_key: self
                .live
                .iter()
                .filter_map(|l| Some((l.key()?, l)))
                .collect(),
        }
    }

    /// Whether an active exception leaves this user's enrollments in this course alone.
    pub fn is_excepted(&self, user: Sym, course: Sym) -> bool {
        !self.exceptions.is_empty()
            && (self.exceptions.contains(&(user, None))
                || self.exceptions.contains(&(user, Some(course))))
    }

    /// The Canvas name of the user with this SIS identity, if a listing showed it.
    pub fn user_name(&self, user_id: &str) -> Option<String> {
        let user = self.ids.get(user_id)?;
        self.names
            .get(&user)
            .map(|n| self.ids.resolve(*n).to_owned())
    }
}

/// A SIS row that could not be understood, as read, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSisRow {
    pub row: SisRow,
    pub skip: SkippedRow,
}

/// The settings `decide` depends on, and nothing else.
#[derive(Debug, Clone)]
pub struct DecideSettings {
    pub removal: RemovalPolicy,
    /// Also remove unlisted enrollments of users who have no SIS identity (test students, guests).
    pub manage_non_sis_users: bool,
    pub limits: GuardLimits,
    /// The run of an earlier trip no operator has acted on: it holds every change that takes access away.
    pub sticky_trip: Option<String>,
    /// Set for a run limited to some courses: what its brake counts with its own changes (see [`ScopedBase`]).
    pub scoped: Option<ScopedBase>,
    /// The target's state for a removal in a section, when not `removal`'s (see [`PlanInput::section_removal`]).
    pub section_removal: Option<crate::domain::EnrollmentState>,
}

/// Something decided without a Canvas call: it gets an audit row and never reaches Canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Unplanned {
    /// A SIS row that did not parse (skipped).
    SkippedRow(SkippedSisRow),
    /// A SIS row of a course Canvas does not have (skipped; never a reason to remove).
    CourseNotFound(DesiredEnrollment),
    /// A SIS row of a user Canvas does not have (skipped until the account exists).
    UserNotFound(DesiredEnrollment),
    /// A SIS row of a SIS section Canvas does not have (skipped until the section exists).
    SectionNotFound(DesiredEnrollment),
    /// A SIS row of a user two role rules disagree about (skipped; the user is held).
    RuleConflict(DesiredEnrollment, RuleConflict),
}

/// What one cycle will do, and why. A plain value: it serialises (with its snapshot's `Ids`) and can be stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Decision {
    /// Every change that turns live into desired, sorted by course, user and enrollment.
    pub plan: Plan,
    /// The brake's verdict on the plan.
    pub brake: GuardDecision,
    /// Rows settled without a Canvas call, in the order they are audited.
    pub unplanned: Vec<Unplanned>,
    /// SIS rows naming one enrollment with different statuses.
    pub duplicates: Vec<DuplicateConflict>,
    /// Users two role rules would move to different roles.
    pub rule_conflicts: Vec<RuleConflict>,
    /// SIS rows rewritten plus live rows adopted by role rules.
    pub role_rule_rewrites: u64,
    /// Usable SIS rows (the brake's empty-SIS test).
    pub usable_rows: u64,
    /// Active or invited live enrollments in managed courses: the brake's ratios' denominator. Excepted
    /// enrollments are not counted: the brake judges only what the plan may touch.
    #[serde(default)]
    pub live_giving_access: u64,
    /// The changes the plan would have made but for active exceptions (not planned, not braked, not audited).
    #[serde(default)]
    pub excepted: u64,
}

impl Decision {
    /// Whether the brake holds this change back.
    pub fn is_held(&self, change: &Change) -> bool {
        self.brake.holds(change)
    }

    /// The changes to make, in plan order.
    pub fn to_make(&self) -> impl Iterator<Item = &Change> {
        self.plan.changes.iter().filter(|c| !self.is_held(c))
    }

    /// The changes the brake holds, in plan order.
    pub fn held(&self) -> impl Iterator<Item = &Change> {
        self.plan.changes.iter().filter(|c| self.is_held(c))
    }

    /// Lifts the brake (the operator's documented override). Returns the reason it had tripped, if it had.
    pub fn release_brake(&mut self) -> Option<String> {
        let reason = self.brake.reason();
        self.brake = GuardDecision::default();
        reason
    }
}

/// Role rules → duplicates → plan → brake.
pub fn decide(snapshot: &Snapshot, settings: &DecideSettings) -> Decision {
    let mut unplanned: Vec<Unplanned> = snapshot
        .skipped
        .iter()
        .cloned()
        .map(Unplanned::SkippedRow)
        .collect();
    // A row that could not be understood never turns into a removal of that user in that course.
    let mut hold: HashSet<(Sym, Sym)> = snapshot
        .skipped
        .iter()
        .filter_map(|s| Some((s.skip.user?, s.skip.course?)))
        .collect();

    // Rows naming a course or user Canvas does not have are out of the plan: they never count towards removals,
    // and their user is held in that course.
    let mut desired = Vec::with_capacity(snapshot.desired.len());
    for d in &snapshot.desired {
        if snapshot.courses_not_found.contains(&d.course) {
            unplanned.push(Unplanned::CourseNotFound(*d));
        } else if snapshot.users_not_in_canvas.contains(&d.user) {
            unplanned.push(Unplanned::UserNotFound(*d));
            hold.insert((d.user, d.course));
        } else if matches!(d.section, SectionKey::Sis(s) if snapshot.sections_not_in_canvas.contains(&s))
        {
            unplanned.push(Unplanned::SectionNotFound(*d));
            hold.insert((d.user, d.course));
        } else {
            desired.push(*d);
        }
    }

    // Exceptions: their users' rows and enrollments in that scope leave the plan input, so nothing is planned for
    // them and the brake never counts them. The subset is planned on its own only to say what was left undone.
    let (desired, excepted_desired): (Vec<_>, Vec<_>) = if snapshot.exceptions.is_empty() {
        (desired, Vec::new())
    } else {
        desired
            .into_iter()
            .partition(|d| !snapshot.is_excepted(d.user, d.course))
    };
    let (live, excepted_live): (Cow<'_, [LiveEnrollment]>, Vec<LiveEnrollment>) =
        if snapshot.exceptions.is_empty() {
            (Cow::Borrowed(&snapshot.live), Vec::new())
        } else {
            let (kept, excepted) = snapshot
                .live
                .iter()
                .copied()
                .partition(|l: &LiveEnrollment| {
                    !l.user.is_some_and(|u| snapshot.is_excepted(u, l.course))
                });
            (Cow::Owned(kept), excepted)
        };
    let excepted = count_excepted(
        excepted_desired,
        &excepted_live,
        &snapshot.rules,
        settings,
        &hold,
    );

    let ruled = rules::apply_role_rules(desired, &live, &snapshot.rules);
    unplanned.extend(
        ruled
            .skipped
            .into_iter()
            .map(|(d, c)| Unplanned::RuleConflict(d, c)),
    );
    hold.extend(ruled.hold.iter().copied());
    let (desired, duplicates) = plan::resolve_duplicates(ruled.desired);

    let plan = plan::plan(&PlanInput {
        desired: &desired,
        live: &live,
        removal: settings.removal,
        manage_non_sis_users: settings.manage_non_sis_users,
        hold: &hold,
        section_removal: settings.section_removal,
    });

    let mut live_per_course: FastMap<Sym, u64> = fast::map_with_capacity(snapshot.managed.len());
    live_per_course.extend(
        snapshot
            .managed
            .iter()
            .filter(|c| !snapshot.courses_not_found.contains(c))
            .map(|c| (*c, 0)),
    );
    // The ratios' denominator: enrollments that give access now.
    for l in live.iter().filter(|l| l.state.is_removable()) {
        *live_per_course.entry(l.course).or_default() += 1;
    }
    let usable_rows = snapshot.desired.len();
    let live_giving_access = live_per_course.values().sum();
    // A scoped run's SIS is empty only when the whole SIS is (a course whose rows all went is just unmanaged).
    let usable_sis = usable_rows + snapshot.usable_rows_outside_scope as usize;
    let mut brake = guard::evaluate_scoped(
        &plan,
        usable_sis,
        &live_per_course,
        &settings.limits,
        settings.scoped.as_ref(),
        |c| snapshot.ids.resolve(c).to_owned(),
    );
    if brake.global.is_none()
        && let Some(run_id) = &settings.sticky_trip
    {
        brake.global = Some(Trip::Sticky {
            run_id: run_id.clone(),
        });
    }

    Decision {
        plan,
        brake,
        unplanned,
        duplicates,
        rule_conflicts: ruled.conflicts,
        role_rule_rewrites: (ruled.rewritten_sis_rows + ruled.adopted_live) as u64,
        usable_rows: usable_rows as u64,
        live_giving_access,
        excepted,
    }
}

/// How many changes the plan would make for the excepted rows and enrollments: the same steps (role rules,
/// duplicates, plan) over that small subset alone, whose result is counted and dropped.
fn count_excepted(
    desired: Vec<DesiredEnrollment>,
    live: &[LiveEnrollment],
    rules: &[ResolvedRule],
    settings: &DecideSettings,
    hold: &HashSet<(Sym, Sym)>,
) -> u64 {
    if desired.is_empty() && live.is_empty() {
        return 0;
    }
    let ruled = rules::apply_role_rules(desired, live, rules);
    let mut hold = hold.clone();
    hold.extend(ruled.hold.iter().copied());
    let (desired, _) = plan::resolve_duplicates(ruled.desired);
    plan::plan(&PlanInput {
        desired: &desired,
        live,
        removal: settings.removal,
        manage_non_sis_users: settings.manage_non_sis_users,
        hold: &hold,
        section_removal: settings.section_removal,
    })
    .len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::roles::{BUILT_IN_TYPES, RoleInfo, RoleStatus};
    use crate::domain::sis_row::{IdColumn, SkipReason};
    use crate::domain::{Action, DesiredState, EnrollmentState, RoleId};

    const STUDENT: RoleId = RoleId(3);

    fn settings() -> DecideSettings {
        DecideSettings {
            removal: RemovalPolicy::Conclude,
            manage_non_sis_users: false,
            limits: GuardLimits {
                max_removals: 500,
                max_removal_ratio: 0.5,
                max_course_removal_ratio: 1.0,
                ..GuardLimits::OFF
            },
            sticky_trip: None,
            scoped: None,
            section_removal: None,
        }
    }

    fn snapshot() -> Snapshot {
        let mut ids = Ids::new();
        let course = ids.intern("C1");
        let gone = ids.intern("C404");
        let [u1, u2, u3] = ["u1", "u2", "u3"].map(|u| ids.intern(u));
        let desired = |user, course| DesiredEnrollment {
            user,
            course,
            section: SectionKey::Default,
            role: STUDENT,
            state: DesiredState::Active,
        };
        let live = |id, user| LiveEnrollment {
            id,
            user: Some(user),
            canvas_user_id: id,
            course,
            canvas_course_id: 1,
            section: SectionKey::Default,
            canvas_section_id: 1,
            role: STUDENT,
            state: EnrollmentState::Active,
            associated_user_id: None,
        };
        Snapshot {
            roles: RoleBook::new(BUILT_IN_TYPES.iter().enumerate().map(|(i, t)| RoleInfo {
                id: RoleId(3 + i as u64),
                name: (*t).into(),
                base_type: (*t).into(),
                status: RoleStatus::BuiltIn,
            })),
            sis_rows: 4,
            desired: vec![desired(u1, course), desired(u1, gone)],
            skipped: vec![SkippedSisRow {
                row: SisRow {
                    user_id: Some("u3".into()),
                    course_id: Some("C1".into()),
                    ..SisRow::default()
                },
                skip: SkippedRow {
                    reason: SkipReason::Null(IdColumn::SectionId),
                    user: Some(u3),
                    course: Some(course),
                },
            }],
            rules: Vec::new(),
            managed: vec![course, gone],
            live: vec![live(1, u2), live(2, u3)],
            courses_not_found: [gone].into(),
            names: HashMap::new(),
            users_not_in_canvas: HashSet::new(),
            sections_not_in_canvas: HashSet::new(),
            usable_rows_outside_scope: 0,
            exceptions: HashSet::new(),
            openedx: None,
            ids,
        }
    }

    #[test]
    fn exceptions_take_their_users_out_of_the_plan_and_the_brake_and_are_counted() {
        let mut snap = snapshot();
        let sym = |s: &str| snap.ids.get(s).expect("interned");
        let (u1, u2, c1, c404) = (sym("u1"), sym("u2"), sym("C1"), sym("C404"));
        // An exception for another course leaves the plan as it is.
        snap.exceptions = [(u2, Some(c404))].into();
        let d = decide(&snap, &settings());
        assert_eq!(d.plan.len(), 2);
        assert_eq!(d.excepted, 0);
        assert_eq!(d.live_giving_access, 2);

        // u2 excepted in C1: its removal is neither planned nor braked; u1 excepted everywhere: no enroll.
        snap.exceptions = [(u2, Some(c1)), (u1, None)].into();
        let mut tight = settings();
        tight.limits.max_removals = 0;
        let d = decide(&snap, &tight);
        assert!(d.plan.is_empty(), "{:?}", d.plan);
        assert_eq!(d.excepted, 2, "the enroll of u1 and the removal of u2");
        assert!(!d.brake.tripped(), "an excepted removal is not counted");
        assert_eq!(
            d.live_giving_access, 1,
            "u3's enrollment only: the excepted one is not the brake's"
        );
        // The row of a course Canvas lacks is still settled without a call (an audit row, nothing in Canvas).
        assert!(
            d.unplanned
                .iter()
                .any(|u| matches!(u, Unplanned::CourseNotFound(r) if r.user == u1))
        );

        // Without the exceptions the same snapshot trips the brake on u2's removal.
        snap.exceptions.clear();
        let d = decide(&snap, &tight);
        assert!(d.brake.tripped());
        assert_eq!(d.excepted, 0);
    }

    #[test]
    fn a_scoped_run_counts_what_scoped_runs_made_since_the_last_full_run_against_the_district() {
        let snap = snapshot();
        let scoped = |removals_made, district_live| DecideSettings {
            scoped: Some(ScopedBase {
                removals_made,
                enrolls_made: 0,
                district_live,
            }),
            ..settings()
        };
        // Its own course alone: 1 removal of 2 live is over the 0.5 ratio... of the district's 1000 it is not.
        assert!(!decide(&snap, &scoped(0, 1000)).brake.tripped());
        // 499 made since plus this one is max_removals exactly; one more made trips it.
        assert!(!decide(&snap, &scoped(499, 1000)).brake.tripped());
        assert!(matches!(
            decide(&snap, &scoped(500, 1000)).brake.global,
            Some(Trip::MaxRemovals { removals: 501, .. })
        ));
        // The district's ratio, not the course's: 400 made + 1 of 800 is over 0.5.
        assert!(matches!(
            decide(&snap, &scoped(400, 800)).brake.global,
            Some(Trip::MaxRatio {
                removals: 401,
                live: 800,
                ..
            })
        ));
        // A scoped run whose courses lost every row is not an empty SIS while other courses have rows.
        let mut empty = snapshot();
        empty.desired.clear();
        empty.usable_rows_outside_scope = 10;
        assert!(decide(&empty, &scoped(0, 1000)).brake.global.is_none());
        empty.usable_rows_outside_scope = 0;
        assert_eq!(
            decide(&empty, &scoped(0, 1000)).brake.global,
            Some(Trip::EmptySis)
        );
    }

    #[test]
    fn skipped_rows_hold_their_user_and_missing_courses_are_settled_without_a_call() {
        let snap = snapshot();
        let d = decide(&snap, &settings());
        // u1 enrolled in C1; u2 removed; u3 held by its skipped row; the C404 row settled, not planned.
        let actions: Vec<(Action, &str)> = d
            .plan
            .changes
            .iter()
            .map(|c| (c.action, snap.ids.resolve(c.user.expect("user"))))
            .collect();
        assert_eq!(
            actions,
            vec![(Action::Enroll, "u1"), (Action::Remove, "u2")]
        );
        assert!(matches!(d.unplanned[0], Unplanned::SkippedRow(_)));
        assert!(matches!(d.unplanned[1], Unplanned::CourseNotFound(_)));
        assert_eq!(d.usable_rows, 2);
        assert!(!d.brake.tripped(), "1 removal of 2 live is within 0.5");
    }

    #[test]
    fn a_tripped_brake_holds_removals_only_and_can_be_released() {
        let snap = snapshot();
        let mut tight = settings();
        tight.limits.max_removals = 0;
        let mut d = decide(&snap, &tight);
        assert!(d.brake.tripped());
        assert_eq!(d.held().count(), 1);
        assert!(d.to_make().all(|c| c.action == Action::Enroll));
        assert!(d.release_brake().is_some());
        assert_eq!(d.to_make().count(), 2);
    }

    #[test]
    fn a_decision_round_trips_through_serde_with_its_ids() {
        let snap = snapshot();
        let d = decide(&snap, &settings());
        let text = serde_json::to_string(&(&snap.ids, &d)).expect("serialise");
        let (ids, back): (Ids, Decision) = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(back.plan, d.plan);
        assert_eq!(back.unplanned, d.unplanned);
        let c = back.plan.changes[0];
        assert_eq!(ids.resolve(c.course), "C1");
    }
}
