//! Property tests (RELIABILITY.md #19 and #20): the pure core (`plan`, `guard`, `resolve_duplicates`, role rules)
//! is checked against what it claims for arbitrary small worlds, and every parser of outside input is fed arbitrary
//! and structure-aware input to show that it returns an error instead of panicking.
//!
//! Nothing here needs PostgreSQL or the simulator. Each property runs 256 cases by default (the module takes a few
//! seconds); for a deeper run set `PROPTEST_CASES`, e.g.
//! `PROPTEST_CASES=10000 cargo test --release --test it props::`.
//! A failing case is shrunk and saved in `tests/proptest-regressions/props.txt` so that it is replayed first next
//! time; commit that file with the fix.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use rostersync::canvas::error::canvas_message;
use rostersync::canvas::link;
use rostersync::canvas::model::{Account, Enrollment, Role, User};
use rostersync::config::{Settings, normalise_base_url, validate_cron};
use rostersync::domain::decide::{DecideSettings, Decision, SkippedSisRow, Snapshot, decide};
use rostersync::domain::guard::{GuardLimits, evaluate};
use rostersync::domain::plan::{Change, Plan, apply_to_snapshot, resolve_duplicates};
use rostersync::domain::roles::{BUILT_IN_TYPES, RoleBook, RoleInfo, RoleStatus};
use rostersync::domain::rules::{ResolvedRule, apply_role_rules};
use rostersync::domain::sis_row::{SisRow, SkipReason, SkippedRow, parse_row};
use rostersync::domain::{
    Action, DesiredEnrollment, DesiredState, EnrollmentKey, EnrollmentState, Ids, LiveEnrollment,
    RoleId, SectionKey, Sym,
};
use rostersync::domain::{RemovalPolicy, UserIdKind};

/// `cases` unless `PROPTEST_CASES` asks for another number (`with_cases` alone would ignore the variable).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const POLICIES: [RemovalPolicy; 4] = [
    RemovalPolicy::Conclude,
    RemovalPolicy::Delete,
    RemovalPolicy::Inactivate,
    RemovalPolicy::Keep,
];

// ---------------------------------------------------------------------------------------------------------------
// A small universe: 4 users, 2 courses, each with its default section and 2 SIS sections, 4 roles. Small on
// purpose, so that desired and live rows collide often (same key, same place with another role, duplicates).
// ---------------------------------------------------------------------------------------------------------------

const USERS: usize = 4;
const COURSES: usize = 2;
const ROLES: [RoleId; 4] = [RoleId(3), RoleId(4), RoleId(5), RoleId(20)];

#[derive(Debug, Clone)]
struct DesiredSpec {
    user: usize,
    course: usize,
    section: Option<usize>,
    role: usize,
    state: DesiredState,
}

#[derive(Debug, Clone)]
struct LiveSpec {
    /// `None`: a Canvas user without SIS identity (a test student, a guest).
    user: Option<usize>,
    course: usize,
    section: Option<usize>,
    role: usize,
    state: EnrollmentState,
    /// A linked observer's row (Canvas sets `associated_user_id`).
    observer_of: Option<u64>,
}

#[derive(Debug, Clone)]
struct Scenario {
    desired: Vec<DesiredSpec>,
    live: Vec<LiveSpec>,
    /// Canvas enrollment ids for the live rows, in a random order (the plan breaks ties by id).
    live_ids: Vec<u64>,
    hold: Vec<(usize, usize)>,
    manage_non_sis_users: bool,
}

fn desired_state() -> impl Strategy<Value = DesiredState> {
    prop_oneof![
        4 => Just(DesiredState::Active),
        1 => Just(DesiredState::Inactive),
        1 => Just(DesiredState::Completed),
        1 => Just(DesiredState::Deleted),
    ]
}

fn live_state() -> impl Strategy<Value = EnrollmentState> {
    prop_oneof![
        4 => Just(EnrollmentState::Active),
        1 => Just(EnrollmentState::Invited),
        1 => Just(EnrollmentState::CreationPending),
        1 => Just(EnrollmentState::Inactive),
        1 => Just(EnrollmentState::Completed),
        1 => Just(EnrollmentState::Deleted),
        1 => Just(EnrollmentState::Rejected),
        1 => Just(EnrollmentState::Unknown),
    ]
}

fn section() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![2 => Just(None), 1 => (0..2usize).prop_map(Some)]
}

fn desired_spec() -> impl Strategy<Value = DesiredSpec> {
    (
        0..USERS,
        0..COURSES,
        section(),
        0..ROLES.len(),
        desired_state(),
    )
        .prop_map(|(user, course, section, role, state)| DesiredSpec {
            user,
            course,
            section,
            role,
            state,
        })
}

fn live_spec() -> impl Strategy<Value = LiveSpec> {
    (
        prop::option::weighted(0.85, 0..USERS),
        0..COURSES,
        section(),
        0..ROLES.len(),
        live_state(),
        prop::option::weighted(0.15, 1..5u64),
    )
        .prop_map(
            |(user, course, section, role, state, observer_of)| LiveSpec {
                user,
                course,
                section,
                role,
                state,
                observer_of,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(desired_spec(), 0..14),
        prop::collection::vec(live_spec(), 0..14),
        prop::collection::vec((0..USERS, 0..COURSES), 0..3),
        any::<bool>(),
    )
        .prop_flat_map(|(desired, live, hold, manage_non_sis_users)| {
            let ids: Vec<u64> = (1..=live.len() as u64).map(|i| i * 10).collect();
            (
                Just(desired),
                Just(live),
                Just(ids).prop_shuffle(),
                Just(hold),
                Just(manage_non_sis_users),
            )
        })
        .prop_map(
            |(desired, live, live_ids, hold, manage_non_sis_users)| Scenario {
                desired,
                live,
                live_ids,
                hold,
                manage_non_sis_users,
            },
        )
}

/// A scenario turned into domain values: what a cycle has after reading both sides.
struct World {
    ids: Ids,
    /// The SIS rows as read, duplicates included.
    sis_rows: Vec<DesiredEnrollment>,
    /// After `resolve_duplicates`, as the cycle does it.
    desired: Vec<DesiredEnrollment>,
    live: Vec<LiveEnrollment>,
    hold: HashSet<(Sym, Sym)>,
    manage_non_sis_users: bool,
}

struct Names {
    users: Vec<Sym>,
    courses: Vec<Sym>,
    sections: Vec<Sym>,
}

impl Names {
    fn new(ids: &mut Ids) -> Self {
        Self {
            users: (0..USERS).map(|i| ids.intern(&format!("u{i}"))).collect(),
            courses: (0..COURSES).map(|i| ids.intern(&format!("c{i}"))).collect(),
            sections: (0..2).map(|i| ids.intern(&format!("s{i}"))).collect(),
        }
    }
    fn section(&self, s: Option<usize>) -> SectionKey {
        s.map_or(SectionKey::Default, |i| SectionKey::Sis(self.sections[i]))
    }
    fn desired(&self, d: &DesiredSpec) -> DesiredEnrollment {
        DesiredEnrollment {
            user: self.users[d.user],
            course: self.courses[d.course],
            section: self.section(d.section),
            role: ROLES[d.role],
            state: d.state,
        }
    }
}

impl World {
    fn new(s: &Scenario) -> Self {
        let mut ids = Ids::new();
        let names = Names::new(&mut ids);
        let raw: Vec<DesiredEnrollment> = s.desired.iter().map(|d| names.desired(d)).collect();
        let (desired, _) = resolve_duplicates(raw.clone());
        // Canvas keeps one row per (user, section, role, associated user), whatever its state (a deleted row is
        // restored by the next enroll), so a second row with the same key is dropped here.
        let mut seen = HashSet::new();
        let live = s
            .live
            .iter()
            .zip(&s.live_ids)
            .filter(|(l, _)| {
                l.user.is_none()
                    || seen.insert((l.user, l.course, l.section, l.role, l.observer_of))
            })
            .map(|(l, &id)| LiveEnrollment {
                id,
                user: l.user.map(|u| names.users[u]),
                canvas_user_id: 1000 + l.user.map_or(id, |u| u as u64),
                course: names.courses[l.course],
                canvas_course_id: 1 + l.course as u64,
                section: names.section(l.section),
                canvas_section_id: 1 + l.section.map_or(0, |s| s as u64 + 1),
                role: ROLES[l.role],
                state: l.state,
                associated_user_id: l.observer_of,
            })
            .collect();
        let hold = s
            .hold
            .iter()
            .map(|&(u, c)| (names.users[u], names.courses[c]))
            .collect();
        World {
            ids,
            sis_rows: raw,
            desired,
            live,
            hold,
            manage_non_sis_users: s.manage_non_sis_users,
        }
    }

    /// The production decision (`decide`) over `sis_rows`, `live` and `rules`, with this world's holds (each
    /// one a SIS row that could not be parsed, as in a cycle).
    fn decide(
        &self,
        sis_rows: &[DesiredEnrollment],
        live: &[LiveEnrollment],
        rules: &[ResolvedRule],
        policy: RemovalPolicy,
    ) -> Decision {
        decide_over(
            &self.ids,
            sis_rows,
            &self.hold,
            live,
            rules,
            policy,
            self.manage_non_sis_users,
        )
    }

    fn plan(&self, live: &[LiveEnrollment], policy: RemovalPolicy) -> Plan {
        self.decide(&self.sis_rows, live, &[], policy).plan
    }

    fn desired_keys(&self) -> HashSet<EnrollmentKey> {
        self.desired.iter().map(DesiredEnrollment::key).collect()
    }

    fn held(&self, l: &LiveEnrollment) -> bool {
        l.user.is_some_and(|u| self.hold.contains(&(u, l.course)))
    }
}

/// `decide` as a cycle calls it, after a read of these SIS rows, holds and live rows; the brake never matters here
/// (it marks changes as held, the plan stays whole).
fn decide_over(
    ids: &Ids,
    sis_rows: &[DesiredEnrollment],
    hold: &HashSet<(Sym, Sym)>,
    live: &[LiveEnrollment],
    rules: &[ResolvedRule],
    policy: RemovalPolicy,
    manage_non_sis_users: bool,
) -> Decision {
    let mut managed: Vec<Sym> = sis_rows.iter().map(|d| d.course).collect();
    managed.sort();
    managed.dedup();
    let snapshot = Snapshot {
        ids: ids.clone(),
        sis_rows: (sis_rows.len() + hold.len()) as u64,
        desired: sis_rows.to_vec(),
        skipped: hold
            .iter()
            .map(|&(user, course)| SkippedSisRow {
                row: SisRow::default(),
                skip: SkippedRow {
                    reason: SkipReason::RoleNull,
                    user: Some(user),
                    course: Some(course),
                },
            })
            .collect(),
        rules: rules.to_vec(),
        managed,
        live: live.to_vec(),
        ..Snapshot::default()
    };
    decide(
        &snapshot,
        &DecideSettings {
            removal: policy,
            manage_non_sis_users,
            limits: GuardLimits::OFF,
            sticky_trip: None,
            scoped: None,
            section_removal: None,
        },
    )
}

/// The changes of `plan` that act on live row `id`.
fn changes_on(plan: &Plan, id: u64) -> Vec<&Change> {
    plan.changes
        .iter()
        .filter(|c| c.live.is_some_and(|l| l.id == id))
        .collect()
}

/// `l` is untouched: no change acts on it, and (when a listing shows its state at all) it is still there as it was.
fn assert_untouched(
    l: &LiveEnrollment,
    plan: &Plan,
    after: &[LiveEnrollment],
    why: &str,
) -> Result<(), TestCaseError> {
    let acting = changes_on(plan, l.id);
    prop_assert!(acting.is_empty(), "{why}: {l:?} is acted on by {acting:?}");
    if EnrollmentState::LISTED.contains(&l.state) {
        prop_assert!(
            after.contains(l),
            "{why}: {l:?} changed or disappeared after apply"
        );
    }
    Ok(())
}

fn non_observer_rows_with_key(live: &[LiveEnrollment], key: EnrollmentKey) -> usize {
    live.iter()
        .filter(|l| l.associated_user_id.is_none() && l.key() == Some(key))
        .count()
}

proptest! {
    #![proptest_config(config(256))]

    /// `apply(plan(S, C), C)` plans nothing more: one cycle converges, under every removal policy.
    #[test]
    fn applying_the_plan_converges_under_every_removal_policy(s in scenario()) {
        let w = World::new(&s);
        for policy in POLICIES {
            let p = w.plan(&w.live, policy);
            let after = apply_to_snapshot(&w.live, &p, policy);
            let again = w.plan(&after, policy);
            prop_assert!(again.is_empty(), "{policy:?}: second plan {again:?}\nfirst plan {p:?}");
        }
    }

    /// After applying, every desired enrollment is live in the state the SIS asked for; a `deleted` one is absent.
    #[test]
    fn after_applying_every_desired_enrollment_is_in_its_wanted_state(s in scenario()) {
        let w = World::new(&s);
        for policy in POLICIES {
            let p = w.plan(&w.live, policy);
            let after = apply_to_snapshot(&w.live, &p, policy);
            for d in &w.desired {
                let key = d.key();
                if d.state == DesiredState::Deleted {
                    prop_assert_eq!(non_observer_rows_with_key(&after, key), 0,
                        "{:?}: deleted {:?} still listed", policy, d);
                    continue;
                }
                let want = d.state.canvas_state();
                prop_assert!(
                    after.iter().any(|l| l.associated_user_id.is_none()
                        && l.key() == Some(key)
                        && l.state == want),
                    "{:?}: {:?} not present as {:?} after {:?}", policy, d, want, p
                );
            }
        }
    }

    /// What rostersync does not manage stays exactly as it is: linked observer rows, users without SIS identity
    /// (unless `manage_non_sis_users`), held (user, course) pairs, rows in a non-removable state that the SIS does
    /// not list, and under `removal = "keep"` everything the SIS does not list.
    #[test]
    fn applying_the_plan_leaves_unmanaged_enrollments_untouched(s in scenario()) {
        let w = World::new(&s);
        let desired_keys = w.desired_keys();
        for policy in POLICIES {
            let p = w.plan(&w.live, policy);
            let after = apply_to_snapshot(&w.live, &p, policy);
            let listed_by_sis = |l: &LiveEnrollment| l.key().is_some_and(|k| desired_keys.contains(&k));
            for l in &w.live {
                if l.associated_user_id.is_some() {
                    assert_untouched(l, &p, &after, "linked observer")?;
                }
                if l.user.is_none() && !w.manage_non_sis_users {
                    assert_untouched(l, &p, &after, "user without SIS identity")?;
                }
                if w.held(l) {
                    let acting = changes_on(&p, l.id);
                    prop_assert!(
                        acting.iter().all(|c| c.action == Action::ChangeState),
                        "held pair: {:?} removed or role-changed by {:?}", l, acting
                    );
                    if !listed_by_sis(l) {
                        assert_untouched(l, &p, &after, "held pair, not listed by the SIS")?;
                    }
                }
                if !l.state.is_removable() && !listed_by_sis(l) {
                    assert_untouched(l, &p, &after, "non-removable state, not listed by the SIS")?;
                }
                if policy == RemovalPolicy::Keep && !listed_by_sis(l) {
                    assert_untouched(l, &p, &after, "removal = keep")?;
                }
            }
            if policy == RemovalPolicy::Keep {
                prop_assert_eq!(p.count(Action::Remove) + p.count(Action::ChangeRole), 0);
            }
        }
    }

    /// `plan(x, x) = ∅`: Canvas already holding exactly what the SIS asks for plans nothing, whatever rows the plan
    /// must ignore sit beside it (linked observers, users without SIS identity, unlisted rows in a non-removable
    /// state, rows under a hold).
    #[test]
    fn a_converged_state_plans_nothing(
        s in scenario(),
        noise in prop::collection::vec(live_spec(), 0..8),
    ) {
        let w = World::new(&s);
        let desired_keys = w.desired_keys();
        let mut live: Vec<LiveEnrollment> = w
            .desired
            .iter()
            .filter(|d| d.state != DesiredState::Deleted)
            .enumerate()
            .map(|(i, d)| LiveEnrollment {
                id: 1 + i as u64,
                user: Some(d.user),
                canvas_user_id: 7,
                course: d.course,
                canvas_course_id: 7,
                section: d.section,
                canvas_section_id: 7,
                role: d.role,
                state: d.state.canvas_state(),
                associated_user_id: None,
            })
            .collect();
        // Noise: keep only the rows the plan must leave alone in this configuration.
        for (next_id, n) in (1001..).zip(&noise) {
            let user = n.user.map(|u| w.ids.get(&format!("u{u}")).expect("interned"));
            let l = LiveEnrollment {
                id: next_id,
                user,
                canvas_user_id: 9,
                course: w.ids.get(&format!("c{}", n.course)).expect("interned"),
                canvas_course_id: 9,
                section: n.section.map_or(SectionKey::Default, |i| {
                    SectionKey::Sis(w.ids.get(&format!("s{i}")).expect("interned"))
                }),
                canvas_section_id: 9,
                role: ROLES[n.role],
                state: n.state,
                associated_user_id: n.observer_of,
            };
            let listed = l.key().is_some_and(|k| desired_keys.contains(&k));
            let ignored = l.associated_user_id.is_some()
                || (l.user.is_none() && !w.manage_non_sis_users)
                || (!listed && (!l.state.is_removable() || w.held(&l)));
            if ignored {
                live.push(l);
            }
        }
        for policy in POLICIES {
            let p = w.plan(&live, policy);
            prop_assert!(p.is_empty(), "{:?}: {:?}", policy, p);
        }
    }

    /// Every change is about something that exists: it acts on a row of `live` (never one it made up), a new
    /// enrollment is one the SIS asks for, no change names an enrollment absent from both sides, and every removal
    /// takes a live row in a removable state that rostersync manages.
    #[test]
    fn plans_act_only_on_live_rows_and_desired_enrollments(s in scenario()) {
        let w = World::new(&s);
        let desired: HashMap<EnrollmentKey, DesiredState> =
            w.desired.iter().map(|d| (d.key(), d.state)).collect();
        for policy in POLICIES {
            let p = w.plan(&w.live, policy);
            let mut acted_on = HashSet::new();
            for c in &p.changes {
                if let Some(l) = c.live {
                    prop_assert!(w.live.contains(&l), "{:?}: acts on a row not in live: {:?}", policy, c);
                    prop_assert!(acted_on.insert(l.id), "{:?}: row {} acted on twice", policy, l.id);
                }
                let target = |role: Option<RoleId>| {
                    c.user.zip(role).map(|(user, role)| EnrollmentKey {
                        user,
                        course: c.course,
                        section: c.section,
                        role,
                    })
                };
                match c.action {
                    Action::Enroll => {
                        prop_assert!(c.live.is_none());
                        let key = target(c.role_after);
                        let wanted = key.and_then(|k| desired.get(&k).copied());
                        prop_assert!(
                            wanted.is_some_and(|st| st != DesiredState::Deleted
                                && Some(st.canvas_state()) == c.state_after),
                            "{:?}: enroll not asked for by the SIS: {:?}", policy, c
                        );
                        prop_assert!(key.is_some_and(|k| non_observer_rows_with_key(&w.live, k) == 0),
                            "{:?}: enrolls what Canvas already has: {:?}", policy, c);
                    }
                    Action::ChangeState => {
                        let l = c.live.expect("change_state acts on a live row");
                        let key = l.key().expect("a SIS user's row");
                        prop_assert_eq!(target(c.role_after), Some(key));
                        prop_assert_eq!(desired.get(&key).map(|st| st.canvas_state()), c.state_after);
                        prop_assert!(l.associated_user_id.is_none());
                    }
                    Action::ChangeRole | Action::Remove => {
                        let l = c.live.expect("acts on a live row");
                        prop_assert!(policy != RemovalPolicy::Keep, "keep removes nothing: {:?}", c);
                        prop_assert!(l.state.is_removable(), "{:?}: takes a row in state {}", policy, l.state);
                        prop_assert!(l.associated_user_id.is_none(), "takes a linked observer row: {:?}", c);
                        prop_assert!(!w.held(&l), "takes a held row: {:?}", c);
                        prop_assert!(l.user.is_some() || w.manage_non_sis_users,
                            "takes a non-SIS user's row: {:?}", c);
                        if c.action == Action::Remove {
                            prop_assert_eq!(c.state_after, policy.resulting_state());
                        } else {
                            let key = target(c.role_after);
                            prop_assert!(key.is_some_and(|k| desired.get(&k) == Some(&DesiredState::Active)),
                                "{:?}: change_role to an enrollment the SIS does not ask for: {:?}", policy, c);
                            prop_assert!(key.is_some_and(|k| non_observer_rows_with_key(&w.live, k) == 0),
                                "{:?}: change_role creates an enrollment Canvas already has: {:?}", policy, c);
                        }
                    }
                }
            }
        }
    }

    /// The order of SIS rows does not matter: `resolve_duplicates` keeps the same enrollments with the same status
    /// (the most present one) for every permutation, reports a conflict for exactly the keys whose rows disagree, and
    /// the state after applying the plan is the same.
    #[test]
    fn resolve_duplicates_and_the_outcome_do_not_depend_on_row_order(
        (rows, shuffled) in prop::collection::vec(desired_spec(), 0..16)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        s in scenario(),
    ) {
        let mut ids = Ids::new();
        let names = Names::new(&mut ids);
        let a: Vec<_> = rows.iter().map(|d| names.desired(d)).collect();
        let b: Vec<_> = shuffled.iter().map(|d| names.desired(d)).collect();
        let (ua, ca) = resolve_duplicates(a.clone());
        let (ub, cb) = resolve_duplicates(b);
        let as_map = |u: &[DesiredEnrollment]| -> HashMap<EnrollmentKey, DesiredState> {
            u.iter().map(|d| (d.key(), d.state)).collect()
        };
        prop_assert_eq!(as_map(&ua).len(), ua.len(), "keys are unique");
        prop_assert_eq!(as_map(&ua), as_map(&ub));
        let mut expected: HashMap<EnrollmentKey, DesiredState> = HashMap::new();
        for d in &a {
            let e = expected.entry(d.key()).or_insert(d.state);
            *e = (*e).max(d.state);
        }
        prop_assert_eq!(as_map(&ua), expected, "the most present status wins");
        let conflicted = |c: &[rostersync::domain::plan::DuplicateConflict]| -> HashSet<EnrollmentKey> {
            c.iter().map(|c| c.key).collect()
        };
        let disagreeing: HashSet<EnrollmentKey> = a
            .iter()
            .filter(|d| a.iter().any(|o| o.key() == d.key() && o.state != d.state))
            .map(DesiredEnrollment::key)
            .collect();
        prop_assert_eq!(conflicted(&ca), disagreeing.clone());
        prop_assert_eq!(conflicted(&cb), disagreeing);
        prop_assert!(ca.iter().chain(&cb).all(|c| c.dropped < c.kept));

        // And through plan + apply: the same end state (ids aside) for both orders.
        let w = World::new(&s);
        let (ua, _) = resolve_duplicates(w.desired.clone());
        let mut ub = ua.clone();
        ub.reverse();
        for policy in POLICIES {
            let end = |desired: &[DesiredEnrollment]| {
                let p = w.decide(desired, &w.live, &[], policy).plan;
                let mut rows: Vec<_> = apply_to_snapshot(&w.live, &p, policy)
                    .iter()
                    .map(|l| (l.user, l.course, format!("{:?}", l.section), l.role, l.state.as_str(), l.associated_user_id))
                    .collect();
                rows.sort_by_key(|r| format!("{r:?}"));
                rows
            };
            prop_assert_eq!(end(&ua), end(&ub), "{:?}", policy);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The removal brake.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct GuardCase {
    /// (action, course, state after) of each change.
    changes: Vec<(Action, usize, Option<EnrollmentState>)>,
    /// Live enrollments listed per course (a course may be missing from the map).
    live: Vec<Option<u64>>,
    usable_sis_rows: usize,
    max_removals: u64,
    max_removal_ratio: f64,
    max_course_removal_ratio: f64,
    max_additions: u64,
    max_addition_ratio: f64,
}

const GUARD_COURSES: usize = 4;

fn ratio_limit() -> impl Strategy<Value = f64> {
    // Exact fractions hit the boundary (n/d == limit) often; the rest are arbitrary valid settings.
    prop_oneof![(0..=20u32).prop_map(|k| f64::from(k) / 20.0), 0.0..=1.0f64,]
}

fn guard_case() -> impl Strategy<Value = GuardCase> {
    let action = prop_oneof![
        4 => Just(Action::Remove),
        2 => Just(Action::Enroll),
        1 => Just(Action::ChangeRole),
        2 => Just(Action::ChangeState),
    ];
    let state_after = prop::option::of(prop_oneof![
        Just(EnrollmentState::Active),
        Just(EnrollmentState::Inactive),
        Just(EnrollmentState::Completed),
        Just(EnrollmentState::Deleted),
    ]);
    (
        prop::collection::vec((action, 0..GUARD_COURSES, state_after), 0..30),
        prop::collection::vec(prop::option::weighted(0.9, 0..25u64), GUARD_COURSES),
        prop_oneof![1 => Just(0usize), 6 => 1..100usize],
        prop_oneof![0..3u64, 0..20u64],
        ratio_limit(),
        ratio_limit(),
        (0..12u64, prop_oneof![ratio_limit(), 0.0..=3.0f64]),
    )
        .prop_map(
            |(
                changes,
                live,
                usable_sis_rows,
                max_removals,
                max_removal_ratio,
                max_course_removal_ratio,
                (max_additions, max_addition_ratio),
            )| {
                GuardCase {
                    changes,
                    live,
                    usable_sis_rows,
                    max_removals,
                    max_removal_ratio,
                    max_course_removal_ratio,
                    max_additions,
                    max_addition_ratio,
                }
            },
        )
}

/// A course is judged by the per-course ratio only from this many live enrollments on (see `guard`).
fn course_exceeds(removals: u64, live: u64, limit: f64) -> bool {
    live >= rostersync::domain::guard::MIN_COURSE_LIVE_FOR_RATIO && exceeds(removals, live, limit)
}

/// CONTRACT v2 "The brake": removals, role changes and state changes to inactive, completed or deleted.
fn takes_access_away(action: Action, state_after: Option<EnrollmentState>) -> bool {
    match action {
        Action::Remove | Action::ChangeRole => true,
        Action::ChangeState => matches!(
            state_after,
            Some(EnrollmentState::Inactive | EnrollmentState::Completed | EnrollmentState::Deleted)
        ),
        Action::Enroll => false,
    }
}

/// `removals / live` exceeds `limit`; with nothing live, any removal exceeds every limit.
fn exceeds(removals: u64, live: u64, limit: f64) -> bool {
    if live == 0 {
        removals > 0
    } else {
        removals as f64 / live as f64 > limit
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// The brake by count, ratio and course, over every change that takes access away: no trip ⇒ every limit
    /// holds; a global trip blocks every course; a per-course trip blocks exactly the courses over the course limit
    /// and no other; enrolls are held exactly when they exceed both enroll limits. And with the removal brake
    /// tripped, the changes that go ahead take no access away.
    #[test]
    fn the_guard_blocks_exactly_what_exceeds_its_limits(g in guard_case()) {
        let mut ids = Ids::new();
        let courses: Vec<Sym> = (0..GUARD_COURSES).map(|i| ids.intern(&format!("c{i}"))).collect();
        let elsewhere = ids.intern("a course with no changes");
        let plan = Plan {
            changes: g
                .changes
                .iter()
                .map(|&(action, c, state_after)| Change {
                    action,
                    user: None,
                    course: courses[c],
                    section: SectionKey::Default,
                    role_before: None,
                    role_after: None,
                    state_before: None,
                    state_after,
                    live: None,
                })
                .collect(),
        };
        let live_per_course: HashMap<Sym, u64> = g
            .live
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (courses[i], n)))
            .collect();
        let limits = GuardLimits {
            max_removals: g.max_removals,
            max_removal_ratio: g.max_removal_ratio,
            max_course_removal_ratio: g.max_course_removal_ratio,
            max_additions: g.max_additions,
            max_addition_ratio: g.max_addition_ratio,
        };
        let d = evaluate(&plan, g.usable_sis_rows, &live_per_course, &limits, |c| ids.resolve(c).to_owned());

        let away = |x: &&(Action, usize, Option<EnrollmentState>)| takes_access_away(x.0, x.2);
        let removals_in = |c: Sym| g.changes.iter().filter(away).filter(|x| courses[x.1] == c).count() as u64;
        let removals = g.changes.iter().filter(away).count() as u64;
        let enrolls = plan.count(Action::Enroll) as u64;
        let live: u64 = live_per_course.values().sum();
        let over_global = g.usable_sis_rows == 0
            || removals > g.max_removals
            || exceeds(removals, live, g.max_removal_ratio);
        prop_assert_eq!(d.global.is_some(), over_global, "{:?}", d);

        let over_additions = enrolls > g.max_additions && exceeds(enrolls, live, g.max_addition_ratio);
        prop_assert_eq!(d.additions.is_some(), over_additions, "{:?}", d);
        for c in &plan.changes {
            let held = d.holds(c);
            if c.action == Action::Enroll {
                prop_assert_eq!(held, over_additions);
            } else if !c.takes_access_away() {
                prop_assert!(!held, "a reactivation is never held: {:?}", c);
            } else if d.global.is_some() {
                prop_assert!(held, "with the brake tripped, {:?} would take access away", c);
            }
        }

        if !d.tripped() {
            prop_assert!(removals <= g.max_removals);
            prop_assert!(!exceeds(removals, live, g.max_removal_ratio));
            for &c in &courses {
                let n = live_per_course.get(&c).copied().unwrap_or(0);
                prop_assert!(!course_exceeds(removals_in(c), n, g.max_course_removal_ratio));
            }
        }
        if d.global.is_some() {
            prop_assert!(d.tripped() && d.reason().is_some());
            for &c in courses.iter().chain([&elsewhere]) {
                prop_assert!(!d.allows_removal_in(c), "global trip, yet removals allowed in {}", ids.resolve(c));
            }
        } else {
            let over: HashSet<Sym> = courses
                .iter()
                .copied()
                .filter(|&c| course_exceeds(removals_in(c), live_per_course.get(&c).copied().unwrap_or(0), g.max_course_removal_ratio))
                .collect();
            prop_assert_eq!(&d.blocked_courses, &over);
            prop_assert_eq!(d.per_course.is_some(), !over.is_empty());
            for &c in courses.iter().chain([&elsewhere]) {
                prop_assert_eq!(d.allows_removal_in(c), !over.contains(&c));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Role rules.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RuleSpec {
    users: Vec<usize>,
    from: usize,
    to: usize,
}

/// Rule users are u0..u2; u3 and up are never in a rule set.
const RULE_USERS: usize = 3;

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        prop::collection::vec(0..RULE_USERS, 0..3),
        0..ROLES.len(),
        0..ROLES.len(),
    )
        .prop_map(|(users, from, to)| RuleSpec { users, from, to })
}

/// The rules as the cycle resolves them. `from == to` can happen (two names for one role id, such as `student` and
/// `StudentEnrollment`, pass the configuration's `from_role != to_role` check).
fn resolved_rules(ids: &mut Ids, specs: &[RuleSpec]) -> Vec<ResolvedRule> {
    specs
        .iter()
        .enumerate()
        .map(|(i, r)| ResolvedRule {
            name: format!("rule{i}"),
            users: r
                .users
                .iter()
                .map(|&u| ids.intern(&format!("u{u}")))
                .collect(),
            from: ROLES[r.from],
            to: ROLES[r.to],
        })
        .collect()
}

/// Rule sets that do not loop (the cycle refuses looping ones before anything is read: `role_rule_cycle`).
fn without_loops(rules: &[ResolvedRule]) -> bool {
    let edges: Vec<(String, RoleId, RoleId)> = rules
        .iter()
        .map(|r| (r.name.clone(), r.from, r.to))
        .collect();
    rostersync::domain::rules::role_rule_cycle(&edges).is_none()
}

fn as_set(d: &[DesiredEnrollment]) -> HashSet<(EnrollmentKey, DesiredState)> {
    d.iter().map(|d| (d.key(), d.state)).collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// Rewriting is idempotent: applying the rules to their own output (with the same live rows) changes nothing
    /// further. This is what lets the next cycle see its own result as converged.
    #[test]
    fn role_rules_are_idempotent(
        s in scenario(),
        specs in prop::collection::vec(rule_spec(), 0..4)
            .prop_filter("rule sets that do not loop", |specs| {
                let mut ids = Ids::new();
                without_loops(&resolved_rules(&mut ids, specs))
            }),
    ) {
        let mut w = World::new(&s);
        let rules = resolved_rules(&mut w.ids, &specs);
        let once = apply_role_rules(w.desired.clone(), &w.live, &rules);
        let twice = apply_role_rules(once.desired.clone(), &w.live, &rules);
        prop_assert_eq!(as_set(&twice.desired), as_set(&once.desired));
        prop_assert_eq!(twice.rewritten_sis_rows, 0);
        prop_assert_eq!(twice.adopted_live, 0);
    }

    /// Role rules, then the plan, then Canvas applying it: the next cycle, from the same SIS rows and rules, plans
    /// nothing. Rules feed the plan (a live `from_role` row is adopted as `to_role`), so the rules' own output has to
    /// look converged to them.
    #[test]
    fn a_cycle_with_role_rules_converges(
        s in scenario(),
        specs in prop::collection::vec(rule_spec(), 0..4),
    ) {
        let mut w = World::new(&s);
        let rules = resolved_rules(&mut w.ids, &specs);
        let sis_rows = w.desired.clone();
        for policy in POLICIES {
            let cycle = |live: &[LiveEnrollment]| w.decide(&sis_rows, live, &rules, policy).plan;
            let first = cycle(&w.live);
            let after = apply_to_snapshot(&w.live, &first, policy);
            let second = cycle(&after);
            prop_assert!(second.is_empty(), "{:?}: second cycle plans {:?}\nfirst {:?}", policy, second, first);
        }
    }

    /// Users outside every rule set are not touched: their SIS rows come out unchanged and in order, and none of
    /// their live rows is adopted, skipped or held.
    #[test]
    fn role_rules_never_touch_users_outside_the_rule_sets(
        s in scenario(),
        specs in prop::collection::vec(rule_spec(), 0..4),
    ) {
        let mut w = World::new(&s);
        let rules = resolved_rules(&mut w.ids, &specs);
        let in_rules: HashSet<Sym> = rules.iter().flat_map(|r| r.users.iter().copied()).collect();
        let outside = |d: &&DesiredEnrollment| !in_rules.contains(&d.user);
        let out = apply_role_rules(w.desired.clone(), &w.live, &rules);
        let before: Vec<_> = w.desired.iter().filter(outside).copied().collect();
        let after: Vec<_> = out.desired.iter().filter(outside).copied().collect();
        prop_assert_eq!(before, after);
        prop_assert!(out.skipped.iter().all(|(d, _)| in_rules.contains(&d.user)));
        prop_assert!(out.conflicts.iter().all(|c| in_rules.contains(&c.user)));
        prop_assert!(out.hold.iter().all(|(u, _)| in_rules.contains(u)));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsers never panic (RELIABILITY.md #19). Each gets arbitrary input and input shaped like what it expects, so
// that the search reaches past the first syntax check.
// ---------------------------------------------------------------------------------------------------------------

/// Known sections and keys, plus near misses.
const SECTIONS: &[&str] = &[
    "target",
    "canvas",
    "openedx",
    "database",
    "sis",
    "reconcile",
    "schedule",
    "limits",
    "server",
    "log",
    "canvas2",
    "",
];
const KEYS: &[&str] = &[
    "kind",
    "client_id",
    "client_secret",
    "client_secret_file",
    "waiting_keepalive_days",
    "base_url",
    "token",
    "token_file",
    "account_id",
    "per_page",
    "request_timeout_secs",
    "allow_insecure_http",
    "max_response_bytes",
    "read_path",
    "report_min_courses",
    "report_timeout_secs",
    "url",
    "max_connections",
    "enrollments_query",
    "user_id_kind",
    "manage_non_sis_users",
    "removal",
    "max_removals",
    "max_removal_ratio",
    "max_course_removal_ratio",
    "dry_run",
    "max_additions",
    "max_addition_ratio",
    "write_path",
    "bulk_min_changes",
    "removal_grace_cycles",
    "cron",
    "run_on_start",
    "sis_poll_secs",
    "notify_channel",
    "requests_per_second",
    "max_in_flight",
    "max_retries",
    "cycle_retry_budget",
    "listen",
    "format",
    "level",
    "otlp_endpoint",
    "name",
    "users_query",
    "from_role",
    "to_role",
    "tokne",
    "a.b",
    "\"quoted key\"",
    "statement_timeout_secs",
    "cycle_deadline_secs",
    "from",
    "to",
    "reason",
];

/// A TOML value of any type, as text.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        prop::sample::select(vec![
            "nan",
            "+inf",
            "-inf",
            "-0.0",
            "1e400",
            "1e20",
            "1e-300",
            "86400.5",
            "0x7fffffffffffffff",
            "0b11",
            "0o17",
            "1_000",
            "99999999999999999999",
            "true",
            "false",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "1979-05-27",
            "\"\"",
            "\"  \"",
            "\"https://c.example.edu\"",
            "\"http://10.0.0.1\"",
            "\"https://u:p@c.example.edu\"",
            "\"https://c.example.edu/?access_token=x\"",
            "\"*/15 * * * *\"",
            "\"0 */15 * * * *\"",
            "\"0 0 0 31 2 *\"",
            "\"conclude\"",
            "\"Delete\"",
            "\"auto\"",
            "\"report\"",
            "\"sis_import\"",
            "\"Api\"",
            "\"sis_login_id\"",
            "\"postgres://x@localhost/x\"",
            "\"0.0.0.0:9464\"",
            "\"[::1]:0\"",
            "\"info,rostersync=trace\"",
            "\"[{\"",
            "'literal'",
            "'''multi\nline'''",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9 :/@?#%.*,_-]{0,30}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..3).prop_map(|v| {
                let items: Vec<String> = v.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", items.join(", "))
            }),
        ]
    })
}

/// A TOML document: sections (or `[[role_rules]]`) with keys from the schema and values of random types.
fn toml_document() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        8 => prop::sample::select(SECTIONS).prop_map(|s| format!("[{s}]")),
        1 => Just("[[role_rules]]".to_owned()),
        1 => Just("[[schedule.pause]]".to_owned()),
        1 => Just(String::new()),
    ];
    let entry = (prop::sample::select(KEYS), toml_value()).prop_map(|(k, v)| format!("{k} = {v}"));
    prop::collection::vec((header, prop::collection::vec(entry, 0..5)), 0..6).prop_map(|tables| {
        let mut doc = String::new();
        for (header, entries) in tables {
            doc.push_str(&header);
            doc.push('\n');
            for e in entries {
                doc.push_str(&e);
                doc.push('\n');
            }
        }
        doc
    })
}

/// A valid configuration with one key replaced by a random value of a random type.
fn valid_config_with_one_random_value() -> impl Strategy<Value = String> {
    (0..VALID_CONFIG_KEYS.len(), toml_value()).prop_map(|(i, value)| {
        let (section, key) = VALID_CONFIG_KEYS[i];
        valid_config_with(section, key, &value)
    })
}

/// [`VALID_CONFIG`] with `section.key` set to `value` (a key that takes another's place, such as `token_file` for
/// `token`, replaces it: the two together are an error of their own).
fn valid_config_with(section: &str, key: &str, value: &str) -> String {
    let mut doc = String::new();
    for (sec, entries) in VALID_CONFIG {
        // `[role_rules]` and `[schedule.pause]` are arrays of tables: `[[role_rules]]`.
        doc.push_str(&format!("[{sec}]\n"));
        for (k, v) in *entries {
            let swapped = SWAPPED_KEYS
                .iter()
                .any(|&(s, new, old)| s == section && s == *sec && new == key && old == *k);
            if swapped {
                doc.push_str(&format!("{key} = {value}\n"));
                continue;
            }
            let v = if *sec == section && *k == key {
                value
            } else {
                v
            };
            doc.push_str(&format!("{k} = {v}\n"));
        }
    }
    doc
}

type Table = (&'static str, &'static [(&'static str, &'static str)]);

/// `(section, key, the key of VALID_CONFIG it takes the place of)`.
const SWAPPED_KEYS: &[(&str, &str, &str)] = &[
    ("canvas", "token_file", "token"),
    ("openedx", "client_secret_file", "client_secret"),
];

/// Every key of `config/rostersync.example.toml`, each with a valid value (`token_file` takes `token`'s place, see
/// [`SWAPPED_KEYS`]). `every_example_key_is_in_the_config_property_tests` keeps the two in step.
const VALID_CONFIG: &[Table] = &[
    // `openedx`, so that the [openedx] keys are checked too (the [canvas] keys still are, see CONTRACT v2).
    ("target", &[("kind", "\"openedx\"")]),
    (
        "openedx",
        &[
            ("base_url", "\"https://lms.example.edu/\""),
            ("client_id", "\"rostersync\""),
            ("client_secret", "\"not-a-token\""),
            ("request_timeout_secs", "30"),
            ("waiting_keepalive_days", "30"),
        ],
    ),
    (
        "canvas",
        &[
            ("base_url", "\"https://district.instructure.com/api/v1\""),
            ("token", "\"not-a-token\""),
            ("account_id", "\"1\""),
            ("per_page", "100"),
            ("request_timeout_secs", "30"),
            ("allow_insecure_http", "false"),
            ("max_response_bytes", "67108864"),
            ("read_path", "\"auto\""),
            ("report_min_courses", "3000"),
            ("report_timeout_secs", "1800"),
        ],
    ),
    (
        "database",
        &[
            ("url", "\"postgres://rs@localhost/rs\""),
            ("max_connections", "8"),
        ],
    ),
    (
        "sis",
        &[
            ("url", "\"postgres://ro@localhost/sis\""),
            ("enrollments_query", "\"SELECT 1\""),
            ("user_id_kind", "\"sis_user_id\""),
            ("manage_non_sis_users", "false"),
            ("statement_timeout_secs", "300"),
            ("notify_channel", "\"sis_changed\""),
        ],
    ),
    (
        "reconcile",
        &[
            ("removal", "\"conclude\""),
            ("max_removals", "500"),
            ("max_removal_ratio", "0.1"),
            ("max_course_removal_ratio", "1.0"),
            ("max_additions", "500"),
            ("max_addition_ratio", "0.5"),
            ("dry_run", "false"),
            ("cycle_deadline_secs", "14400"),
            ("write_path", "\"auto\""),
            ("bulk_min_changes", "2000"),
            ("removal_grace_cycles", "1"),
        ],
    ),
    (
        "schedule",
        &[
            ("cron", "\"0 */15 * * * *\""),
            ("run_on_start", "true"),
            ("sis_poll_secs", "60"),
        ],
    ),
    (
        "[schedule.pause]",
        &[
            ("from", "\"2027-06-25\""),
            ("to", "\"2027-07-06T06:00:00Z\""),
            ("reason", "\"summer rollover\""),
        ],
    ),
    (
        "limits",
        &[
            ("requests_per_second", "10"),
            ("max_in_flight", "11"),
            ("max_retries", "5"),
            ("cycle_retry_budget", "200"),
        ],
    ),
    ("server", &[("listen", "\"0.0.0.0:9464\"")]),
    (
        "log",
        &[
            ("format", "\"auto\""),
            ("level", "\"info\""),
            ("otlp_endpoint", "\"http://localhost:4318\""),
        ],
    ),
    (
        "[role_rules]",
        &[
            ("name", "\"staff\""),
            ("users_query", "\"SELECT user_id FROM sis_staff\""),
            ("from_role", "\"StudentEnrollment\""),
            ("to_role", "\"Adult Learner\""),
        ],
    ),
];

const VALID_CONFIG_KEYS: &[(&str, &str)] = &[
    ("target", "kind"),
    ("openedx", "base_url"),
    ("openedx", "client_id"),
    ("openedx", "client_secret"),
    ("openedx", "client_secret_file"),
    ("openedx", "request_timeout_secs"),
    ("openedx", "waiting_keepalive_days"),
    ("canvas", "base_url"),
    ("canvas", "token"),
    ("canvas", "token_file"),
    ("canvas", "account_id"),
    ("canvas", "per_page"),
    ("canvas", "request_timeout_secs"),
    ("canvas", "allow_insecure_http"),
    ("canvas", "max_response_bytes"),
    ("canvas", "read_path"),
    ("canvas", "report_min_courses"),
    ("canvas", "report_timeout_secs"),
    ("database", "url"),
    ("database", "max_connections"),
    ("sis", "url"),
    ("sis", "enrollments_query"),
    ("sis", "user_id_kind"),
    ("sis", "manage_non_sis_users"),
    ("sis", "statement_timeout_secs"),
    ("reconcile", "removal"),
    ("reconcile", "max_removals"),
    ("reconcile", "cycle_deadline_secs"),
    ("reconcile", "max_removal_ratio"),
    ("reconcile", "max_course_removal_ratio"),
    ("reconcile", "max_additions"),
    ("reconcile", "max_addition_ratio"),
    ("reconcile", "dry_run"),
    ("reconcile", "write_path"),
    ("reconcile", "bulk_min_changes"),
    ("reconcile", "removal_grace_cycles"),
    ("schedule", "cron"),
    ("schedule", "run_on_start"),
    ("schedule", "sis_poll_secs"),
    ("[schedule.pause]", "from"),
    ("[schedule.pause]", "to"),
    ("[schedule.pause]", "reason"),
    ("sis", "notify_channel"),
    ("limits", "requests_per_second"),
    ("limits", "max_in_flight"),
    ("limits", "max_retries"),
    ("limits", "cycle_retry_budget"),
    ("server", "listen"),
    ("log", "format"),
    ("log", "level"),
    ("log", "otlp_endpoint"),
    ("[role_rules]", "name"),
    ("[role_rules]", "users_query"),
    ("[role_rules]", "from_role"),
    ("[role_rules]", "to_role"),
];

/// The property tests above know every key the example configuration documents (commented-out ones included), so
/// that a new key is fuzzed from the day it is added.
#[test]
fn every_example_key_is_in_the_config_property_tests() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/rostersync.example.toml"
    );
    let text = std::fs::read_to_string(path).expect("read the example configuration");
    let mut section = String::new();
    let mut missing = Vec::new();
    let mut seen = 0;
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            if line.starts_with("[[") {
                section = format!("[{section}]");
            }
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        seen += 1;
        if !VALID_CONFIG_KEYS.contains(&(section.as_str(), key)) {
            missing.push(format!("{section}.{key}"));
        }
        if !KEYS.contains(&key) {
            missing.push(format!("{key} (in KEYS)"));
        }
    }
    assert!(seen > 30, "only {seen} keys found in {path}");
    // The base every random value goes into is itself valid, so a refusal is the random value's.
    let base = valid_config_with("", "", "");
    let settings = Settings::from_toml_str(&base).unwrap_or_else(|e| panic!("{e}\n{base}"));
    assert_eq!(settings.role_rules.len(), 1);
    assert_eq!(settings.schedule.pauses.len(), 1);
    assert!(
        settings.openedx.is_some(),
        "the base checks the [openedx] keys too"
    );
    assert!(
        missing.is_empty(),
        "keys the config property tests do not know: {missing:?}"
    );
}

/// The keys that become a `Duration` (or, for the rate, a spacing between requests), with the range each loads
/// within: anything else must be refused naming the key.
const DURATION_KEYS: &[(&str, &str, f64, f64)] = &[
    ("canvas", "request_timeout_secs", 0.1, 3600.0),
    ("openedx", "request_timeout_secs", 0.1, 3600.0),
    ("canvas", "report_timeout_secs", 0.1, 86_400.0),
    ("sis", "statement_timeout_secs", 1.0, 86_400.0),
    ("schedule", "sis_poll_secs", 1.0, 86_400.0),
    ("reconcile", "cycle_deadline_secs", 1.0, 604_800.0),
    ("limits", "requests_per_second", 0.01, 10_000.0),
];

/// Numbers as TOML writes them, weighted to the edges: huge, tiny, negative, special, and near each range's ends.
fn toml_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        (-400i32..=400).prop_map(|e| format!("1e{e}")),
        (-400i32..=400).prop_map(|e| format!("-1.5e{e}")),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..200_000).prop_map(|n| format!("{}", f64::from(n) / 2.0)),
        prop::sample::select(vec![
            "nan",
            "+nan",
            "-nan",
            "inf",
            "+inf",
            "-inf",
            "0",
            "-0.0",
            "0.1",
            "0.09999999",
            "0.01",
            "0.00999",
            "3600",
            "3600.000001",
            "86400",
            "86400.000001",
            "10000",
            "10000.5",
            "1e20",
        ])
        .prop_map(str::to_owned),
    ]
}

/// URL-shaped text: every part optional and odd.
fn url_like() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "https://", "http://", "HTTPS://", "ftp://", "file://", "", "//", "https:", "data:",
        ]),
        prop::sample::select(vec!["", "u:p@", "@", ":@", "CANARY@"]),
        prop::sample::select(vec![
            "c.example.edu",
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1",
            "0x7f.1",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[fe80::1%25eth0]",
            "",
            "xn--nxasmq6b",
            "ex ample",
            "é.example",
            "%41.example",
            "[",
            "]",
        ]),
        prop::sample::select(vec!["", ":0", ":443", ":65535", ":65536", ":-1", ":x"]),
        "(/[a-z0-9%.]{0,6}){0,3}(/api/v1)?/?",
        prop::sample::select(vec!["", "?", "?access_token=x", "#", "#f"]),
    )
        .prop_map(|(s, cred, host, port, path, tail)| format!("{s}{cred}{host}{port}{path}{tail}"))
}

/// Cron-shaped text: 4 to 8 fields of plausible and implausible tokens.
fn cron_like() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        prop::sample::select(vec![
            "*",
            "?",
            "L",
            "W",
            "LW",
            "5L",
            "15W",
            "MON#2",
            "MON#9",
            "JAN-DEC",
            "SUN-SAT",
            "MON,FRI",
            "*/0",
            "*/1",
            "0/15",
            "59-0",
            "1-",
            "-1",
            ",",
            "#",
            "/",
            "4294967296",
            "18446744073709551616",
            "-0",
            "L-3",
            "L-99",
        ])
        .prop_map(str::to_owned),
        (0..100u32).prop_map(|n| n.to_string()),
        (0..100u32, 0..100u32, 0..100u32).prop_map(|(a, b, c)| format!("{a}-{b}/{c}")),
    ];
    prop::collection::vec(field, 4..8).prop_map(|f| f.join(" "))
}

/// Link-header-shaped text.
fn link_like() -> impl Strategy<Value = String> {
    let part = prop::sample::select(vec![
        "<",
        ">",
        ";",
        ",",
        "\"",
        "=",
        " ",
        "rel",
        "REL",
        "next",
        "last",
        "\"next\"",
        "rel=\"next\"",
        "<https://c.edu/x?page=2>",
        "é",
        "\u{0}",
        "\\\"",
        "title=\"a, b\"",
    ]);
    prop::collection::vec(part, 0..30).prop_map(|v| v.concat())
}

/// JSON-shaped bytes for the Canvas models: objects with the model's field names and values of any type.
fn canvas_json_like() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "id",
        "user_id",
        "course_id",
        "course_section_id",
        "associated_user_id",
        "type",
        "enrollment_state",
        "role",
        "role_id",
        "sis_course_id",
        "sis_section_id",
        "sis_user_id",
        "user",
        "name",
        "login_id",
        "label",
        "base_role_type",
        "workflow_state",
        "errors",
        "message",
        "error",
    ]);
    let leaf = prop::sample::select(vec![
        "null",
        "true",
        "0",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "1.5",
        "1e999",
        "\"\"",
        "\"active\"",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "[]",
        "{}",
    ])
    .prop_map(str::to_owned);
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((field.clone(), inner), 0..8).prop_map(|v| {
                let items: Vec<String> =
                    v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", items.join(","))
            }),
        ]
    });
    (value, 0..4usize).prop_map(|(v, cut)| {
        // Sometimes truncated, as a body cut off mid-transfer.
        let keep = v.len().saturating_sub(cut);
        v.chars().take(keep).collect()
    })
}

fn role_book() -> RoleBook {
    let built_in = BUILT_IN_TYPES.iter().enumerate().map(|(i, t)| RoleInfo {
        id: RoleId(3 + i as u64),
        name: (*t).into(),
        base_type: (*t).into(),
        status: RoleStatus::BuiltIn,
    });
    let custom = [
        ("Adult Learner", "StudentEnrollment", RoleStatus::Active),
        ("Retired Role", "TeacherEnrollment", RoleStatus::Inactive),
        ("Account Admin", "AccountMembership", RoleStatus::Active),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, base, status))| RoleInfo {
        id: RoleId(20 + i as u64),
        name: name.into(),
        base_type: base.into(),
        status,
    });
    RoleBook::new(built_in.chain(custom))
}

/// A SIS column: NULL, empty, padded, control characters, or plausible values.
fn sis_column() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            any::<String>(),
            prop::sample::select(vec![
                "",
                " ",
                "u1",
                " 12345 ",
                "U1",
                "a/b",
                "a.b",
                "%2F",
                "#",
                "é",
                "\u{0}",
                "a\nb",
                "\u{200b}",
                "student",
                "Student",
                "STUDENT",
                "StudentEnrollment",
                "studentenrollment",
                "Adult Learner",
                "adult learner",
                "Retired Role",
                "Account Admin",
                "active",
                "Active",
                "deleted",
                "dropped",
                "inactive",
                "completed",
            ])
            .prop_map(str::to_owned),
        ],
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn config_from_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Settings::from_toml_str(&text);
    }

    #[test]
    fn config_from_toml_with_random_keys_and_types_never_panics(doc in toml_document()) {
        let _ = Settings::from_toml_str(&doc);
    }

    /// And a wrong value is an error that names its key, never a panic, and never echoes the token.
    #[test]
    fn config_with_one_random_value_never_panics(doc in valid_config_with_one_random_value()) {
        if let Err(e) = Settings::from_toml_str(&doc) {
            let message = e.to_string();
            prop_assert!(!message.is_empty());
            prop_assert!(!message.contains("not-a-token"), "{}", message);
        }
    }

    /// Every duration-like key either loads within its range or is refused naming the key: never a panic (1e20
    /// once panicked at `Duration::from_secs_f64`), never a zero or unbounded duration.
    #[test]
    fn duration_keys_load_within_their_range_or_are_refused_naming_the_key(
        i in 0..DURATION_KEYS.len(),
        value in toml_number(),
    ) {
        let (section, key, min, max) = DURATION_KEYS[i];
        let doc = valid_config_with(section, key, &value);
        match Settings::from_toml_str(&doc) {
            Ok(s) => {
                // `None`: the key's "off" (0 for the poll and the deadline), which only 0 may mean.
                let loaded = match (section, key) {
                    ("openedx", "request_timeout_secs") => {
                        s.openedx.as_ref().map(|o| o.request_timeout.as_secs_f64())
                    }
                    (_, "request_timeout_secs") => Some(s.canvas.request_timeout.as_secs_f64()),
                    (_, "report_timeout_secs") => Some(s.canvas.report_timeout.as_secs_f64()),
                    (_, "statement_timeout_secs") => Some(s.sis.statement_timeout.as_secs_f64()),
                    (_, "sis_poll_secs") => s.schedule.sis_poll.map(|d| d.as_secs_f64()),
                    (_, "cycle_deadline_secs") => s.reconcile.cycle_deadline.map(|d| d.as_secs_f64()),
                    (_, "requests_per_second") => s.limits.requests_per_second,
                    other => panic!("no loader for {other:?}"),
                };
                match loaded {
                    Some(loaded) => prop_assert!(
                        loaded >= min * 0.999_999 && loaded <= max * 1.000_001,
                        "{}.{} = {} loaded as {}", section, key, value, loaded
                    ),
                    None => prop_assert!(
                        value.parse::<f64>().is_ok_and(|v| v == 0.0),
                        "{}.{} = {} loaded as off", section, key, value
                    ),
                }
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains(&format!("{section}.{key}")), "{} = {}: {}", key, value, message);
            }
        }
    }

    #[test]
    fn base_url_normalisation_never_panics(text in any::<String>(), url in url_like(), insecure in any::<bool>()) {
        for input in [&text, &url] {
            if let Ok(u) = normalise_base_url(input, insecure) {
                // What it accepts carries no credentials, query or fragment, and never ends in /api/v1.
                prop_assert!(u.username().is_empty() && u.password().is_none());
                prop_assert!(u.query().is_none() && u.fragment().is_none());
                prop_assert!(!u.path().trim_end_matches('/').ends_with("/api/v1"), "{}", u);
                prop_assert!(matches!(u.scheme(), "https" | "http"));
            }
        }
    }

    #[test]
    fn cron_validation_never_panics(text in any::<String>(), cron in cron_like()) {
        let _ = validate_cron(&text);
        if validate_cron(&cron).is_ok() {
            prop_assert_eq!(cron.split_whitespace().count(), 6);
        }
    }

    #[test]
    fn sis_row_parsing_never_panics(
        user_id in sis_column(),
        course_id in sis_column(),
        section_id in sis_column(),
        role in sis_column(),
        status in sis_column(),
        login in any::<bool>(),
    ) {
        let row = SisRow { user_id, course_id, section_id, role, status, curriculum_uuid: None };
        let kind = if login { UserIdKind::SisLoginId } else { UserIdKind::SisUserId };
        let mut ids = Ids::new();
        match parse_row(&row, kind, &role_book(), &mut ids) {
            Ok(d) => {
                // Never coerced: the ids are the columns as written, the status one of the four (or NULL).
                let user = row.user_id.as_deref().expect("a parsed row has a user");
                prop_assert_eq!(user, user.trim());
                prop_assert!(!user.is_empty());
                prop_assert_eq!(Some(ids.resolve(d.course)), row.course_id.as_deref());
                prop_assert!(row.status.is_none() || DesiredState::parse(row.status.as_deref().unwrap_or("")).is_some());
            }
            Err(skip) => prop_assert!(!skip.reason.to_string().is_empty()),
        }
    }

    #[test]
    fn link_header_parsing_never_panics(text in any::<String>(), shaped in link_like()) {
        for header in [&text, &shaped] {
            let links = link::parse(header);
            for rel in ["next", "last", "first", "current"] {
                if let Some(url) = link::find(&links, rel) {
                    prop_assert!(links.iter().any(|l| l.url == url));
                }
            }
        }
    }

    #[test]
    fn canvas_json_decoding_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        shaped in canvas_json_like(),
    ) {
        for body in [bytes.as_slice(), shaped.as_bytes()] {
            let _ = serde_json::from_slice::<Vec<Enrollment>>(body);
            let _ = serde_json::from_slice::<Enrollment>(body);
            let _ = serde_json::from_slice::<Vec<Role>>(body);
            let _ = serde_json::from_slice::<Role>(body);
            let _ = serde_json::from_slice::<User>(body);
            let _ = serde_json::from_slice::<Account>(body);
        }
    }

    #[test]
    fn canvas_error_message_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        shaped in canvas_json_like(),
    ) {
        for body in [bytes.as_slice(), shaped.as_bytes()] {
            // Not claimed: a non-empty message. Canvas's own empty message (`{"errors":""}`) comes through as "".
            let message = canvas_message(body);
            prop_assert!(message.chars().count() <= 301, "capped at 300 characters and an ellipsis");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Found by the properties above, kept as plain examples.
// ---------------------------------------------------------------------------------------------------------------

/// Found by `a_cycle_with_role_rules_converges` when rules were applied once, in written order: rule 1 says
/// staff1's student rows become Adult Learner, rule 2 says staff1's teacher rows become student. The SIS lists
/// staff1 as teacher; cycle 1 enrolled staff1 as student; cycle 2 adopted that student row as Adult Learner and
/// enrolled staff1 again. Fixed: rules now apply until none applies (teacher → student → Adult Learner in one
/// cycle), and a live row the SIS itself wants is never adopted through a rule.
#[test]
fn role_rules_written_against_their_chain_order_converge_in_one_cycle() {
    const STUDENT: RoleId = RoleId(3);
    const TEACHER: RoleId = RoleId(4);
    const ADULT_LEARNER: RoleId = RoleId(20);
    let mut ids = Ids::new();
    let staff1 = ids.intern("staff1");
    let course = ids.intern("STAFF-PD");
    let sis_rows = vec![DesiredEnrollment {
        user: staff1,
        course,
        section: SectionKey::Default,
        role: TEACHER,
        state: DesiredState::Active,
    }];
    let rules = [
        ResolvedRule {
            name: "staff are adult learners".into(),
            users: [staff1].into(),
            from: STUDENT,
            to: ADULT_LEARNER,
        },
        ResolvedRule {
            name: "student teachers are students".into(),
            users: [staff1].into(),
            from: TEACHER,
            to: STUDENT,
        },
    ];
    let cycle = |live: &[LiveEnrollment]| {
        decide_over(
            &ids,
            &sis_rows,
            &HashSet::new(),
            live,
            &rules,
            RemovalPolicy::Conclude,
            false,
        )
        .plan
    };
    let first = cycle(&[]);
    assert_eq!(first.len(), 1);
    assert_eq!(first.changes[0].role_after, Some(ADULT_LEARNER));
    let after = apply_to_snapshot(&[], &first, RemovalPolicy::Conclude);
    let second = cycle(&after);
    assert!(
        second.is_empty(),
        "the second cycle should plan nothing, it plans {:?}",
        second
            .changes
            .iter()
            .map(|c| (c.action, c.role_after))
            .collect::<Vec<_>>()
    );
}
