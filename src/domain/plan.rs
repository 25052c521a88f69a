//! The decision at the centre: a pure function of (desired, live) → [`Plan`].
//!
//! Rules (CONTRACT.md "What a cycle decides"):
//! - a desired enrollment found live in another state → `change_state`; missing → `enroll` (none for `deleted`);
//! - missing, while the same user has a removable live enrollment in that section with another role that nothing
//!   else claims → one `change_role` (create the new role, then remove the old);
//! - a live enrollment of a managed course that no SIS row lists, in a removable state → `remove`, unless it is a
//!   linked observer row, belongs to a user without SIS identity, or sits under a hold (a user+course whose SIS
//!   rows could not be understood: a bad row must never turn into a removal).

use std::collections::{HashMap, HashSet};

use super::{
    Action, DesiredEnrollment, DesiredState, EnrollmentKey, EnrollmentState, LiveEnrollment,
    RoleId, SectionKey, Sym,
};
use crate::config::RemovalPolicy;

/// One decided change. `live` is the enrollment it acts on (for `change_role`, the old one); `None` for `enroll`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub action: Action,
    pub user: Option<Sym>,
    pub course: Sym,
    pub section: SectionKey,
    pub role_before: Option<RoleId>,
    pub role_after: Option<RoleId>,
    pub state_before: Option<EnrollmentState>,
    pub state_after: Option<EnrollmentState>,
    pub live: Option<LiveEnrollment>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn len(&self) -> usize {
        self.changes.len()
    }
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

pub struct PlanInput<'a> {
    /// Unique by key (see [`resolve_duplicates`]).
    pub desired: &'a [DesiredEnrollment],
    /// Live enrollments of managed courses.
    pub live: &'a [LiveEnrollment],
    pub removal: RemovalPolicy,
    /// Also remove unlisted enrollments of users who have no SIS identity (test students, guests).
    pub manage_non_sis_users: bool,
    /// (user, course) pairs never removed from this cycle.
    pub hold: &'a HashSet<(Sym, Sym)>,
}

/// The state `reconcile.removal` leaves a removed enrollment in.
pub fn removal_state(policy: RemovalPolicy) -> Option<EnrollmentState> {
    match policy {
        RemovalPolicy::Conclude => Some(EnrollmentState::Completed),
        RemovalPolicy::Delete => Some(EnrollmentState::Deleted),
        RemovalPolicy::Inactivate => Some(EnrollmentState::Inactive),
        RemovalPolicy::Keep => None,
    }
}

/// Two SIS rows for the same enrollment that disagree on status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DuplicateConflict {
    pub key: EnrollmentKey,
    pub kept: DesiredState,
    pub dropped: DesiredState,
}

/// Makes desired enrollments unique by key. When rows disagree, the most present status wins
/// (active > inactive > completed > deleted): a stale extra row must not take a student's access away, and the
/// choice does not depend on row order, so it cannot flap between cycles.
pub fn resolve_duplicates(
    desired: Vec<DesiredEnrollment>,
) -> (Vec<DesiredEnrollment>, Vec<DuplicateConflict>) {
    let mut index: HashMap<EnrollmentKey, usize> = HashMap::with_capacity(desired.len());
    let mut unique: Vec<DesiredEnrollment> = Vec::with_capacity(desired.len());
    let mut conflicts = Vec::new();
    for d in desired {
        match index.get(&d.key()) {
            Some(&i) => {
                let existing = unique[i].state;
                if existing != d.state {
                    let (kept, dropped) = if d.state > existing {
                        unique[i].state = d.state;
                        (d.state, existing)
                    } else {
                        (existing, d.state)
                    };
                    conflicts.push(DuplicateConflict {
                        key: d.key(),
                        kept,
                        dropped,
                    });
                }
            }
            None => {
                index.insert(d.key(), unique.len());
                unique.push(d);
            }
        }
    }
    (unique, conflicts)
}

/// Decides every change that turns `live` into `desired`.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut by_key: HashMap<EnrollmentKey, Vec<usize>> = HashMap::with_capacity(input.live.len());
    // (user, course, section) → live rows there, for role-change candidates.
    let mut by_place: HashMap<(Sym, Sym, SectionKey), Vec<usize>> =
        HashMap::with_capacity(input.live.len());
    for (i, l) in input.live.iter().enumerate() {
        // Linked observer rows belong to Canvas, not to the SIS (facts §10).
        if l.associated_user_id.is_some() {
            continue;
        }
        if let Some(key) = l.key() {
            by_key.entry(key).or_default().push(i);
            by_place
                .entry((key.user, key.course, key.section))
                .or_default()
                .push(i);
        }
    }

    let mut matched = vec![false; input.live.len()];
    let mut changes = Vec::new();
    let mut missing: Vec<&DesiredEnrollment> = Vec::new();

    // Pass 1: exact matches, so that no live row is taken as a role-change source while another desired row wants
    // it exactly.
    for d in input.desired {
        let Some(rows) = by_key.get(&d.key()) else {
            missing.push(d);
            continue;
        };
        let want = d.state.canvas_state();
        // Prefer a row already in the wanted state; Canvas keeps one row per key, so several is an anomaly.
        let chosen = rows
            .iter()
            .copied()
            .find(|&i| input.live[i].state == want)
            .unwrap_or(rows[0]);
        matched[chosen] = true;
        let l = &input.live[chosen];
        if l.state != want {
            changes.push(Change {
                action: Action::ChangeState,
                user: Some(d.user),
                course: d.course,
                section: d.section,
                role_before: Some(l.role),
                role_after: Some(d.role),
                state_before: Some(l.state),
                state_after: Some(want),
                live: Some(*l),
            });
        }
    }

    let removable = |l: &LiveEnrollment, matched: &[bool], i: usize| -> bool {
        !matched[i]
            && input.removal != RemovalPolicy::Keep
            && l.state.is_removable()
            && l.associated_user_id.is_none()
            && match l.user {
                Some(user) => !input.hold.contains(&(user, l.course)),
                None => input.manage_non_sis_users,
            }
    };

    // Pass 2: missing enrollments become a role change when an unclaimed removable row sits in their place.
    for d in missing {
        if d.state == DesiredState::Deleted {
            continue;
        }
        let candidate = if d.state == DesiredState::Active {
            by_place
                .get(&(d.user, d.course, d.section))
                .and_then(|rows| {
                    rows.iter()
                        .copied()
                        .filter(|&i| removable(&input.live[i], &matched, i))
                        .min_by_key(|&i| input.live[i].id)
                })
        } else {
            None
        };
        match candidate {
            Some(i) => {
                matched[i] = true;
                let l = &input.live[i];
                changes.push(Change {
                    action: Action::ChangeRole,
                    user: Some(d.user),
                    course: d.course,
                    section: d.section,
                    role_before: Some(l.role),
                    role_after: Some(d.role),
                    state_before: Some(l.state),
                    state_after: Some(EnrollmentState::Active),
                    live: Some(*l),
                });
            }
            None => changes.push(Change {
                action: Action::Enroll,
                user: Some(d.user),
                course: d.course,
                section: d.section,
                role_before: None,
                role_after: Some(d.role),
                state_before: None,
                state_after: Some(d.state.canvas_state()),
                live: None,
            }),
        }
    }

    // Pass 3: what nothing claimed.
    let after = removal_state(input.removal);
    for (i, l) in input.live.iter().enumerate() {
        if removable(l, &matched, i) {
            changes.push(Change {
                action: Action::Remove,
                user: l.user,
                course: l.course,
                section: l.section,
                role_before: Some(l.role),
                role_after: None,
                state_before: Some(l.state),
                state_after: after,
                live: Some(*l),
            });
        }
    }

    changes.sort_by_key(|c| {
        (
            c.course,
            c.user,
            c.live.map(|l| l.id).unwrap_or(0),
            c.role_after,
            c.action,
        )
    });
    Plan { changes }
}

/// A model of what Canvas does when a plan is applied in full (facts §1): used by the table and property tests
/// to check that applying a plan converges. New enrollments get ids above every existing one.
pub fn apply_to_snapshot(
    live: &[LiveEnrollment],
    plan: &Plan,
    policy: RemovalPolicy,
) -> Vec<LiveEnrollment> {
    let mut out: Vec<LiveEnrollment> = live.to_vec();
    let mut next_id = live.iter().map(|l| l.id).max().unwrap_or(0) + 1;
    let position = |out: &[LiveEnrollment], id: u64| out.iter().position(|l| l.id == id);
    for c in &plan.changes {
        match c.action {
            Action::Enroll => {
                let (Some(user), Some(role), Some(state)) = (c.user, c.role_after, c.state_after)
                else {
                    continue;
                };
                out.push(LiveEnrollment {
                    id: next_id,
                    user: Some(user),
                    canvas_user_id: 0,
                    course: c.course,
                    canvas_course_id: 0,
                    section: c.section,
                    canvas_section_id: 0,
                    role,
                    state,
                    associated_user_id: None,
                });
                next_id += 1;
            }
            Action::ChangeState => {
                if let (Some(l), Some(state)) = (c.live, c.state_after)
                    && let Some(i) = position(&out, l.id)
                {
                    out[i].state = state;
                }
            }
            Action::Remove => {
                if let (Some(l), Some(state)) = (c.live, removal_state(policy))
                    && let Some(i) = position(&out, l.id)
                {
                    out[i].state = state;
                }
            }
            Action::ChangeRole => {
                let (Some(l), Some(role)) = (c.live, c.role_after) else {
                    continue;
                };
                out.push(LiveEnrollment {
                    id: next_id,
                    role,
                    state: EnrollmentState::Active,
                    ..l
                });
                next_id += 1;
                if let (Some(state), Some(i)) = (removal_state(policy), position(&out, l.id)) {
                    out[i].state = state;
                }
            }
        }
    }
    // A listing only returns the states we request.
    out.retain(|l| EnrollmentState::LISTED.contains(&l.state));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Ids;

    struct World {
        ids: Ids,
        next_id: u64,
    }

    const STUDENT: RoleId = RoleId(3);
    const TEACHER: RoleId = RoleId(4);
    const ADULT: RoleId = RoleId(20);

    impl World {
        fn new() -> Self {
            Self {
                ids: Ids::new(),
                next_id: 100,
            }
        }
        fn want(
            &mut self,
            user: &str,
            course: &str,
            role: RoleId,
            state: DesiredState,
        ) -> DesiredEnrollment {
            DesiredEnrollment {
                user: self.ids.intern(user),
                course: self.ids.intern(course),
                section: SectionKey::Default,
                role,
                state,
            }
        }
        fn live(
            &mut self,
            user: &str,
            course: &str,
            role: RoleId,
            state: EnrollmentState,
        ) -> LiveEnrollment {
            self.next_id += 1;
            LiveEnrollment {
                id: self.next_id,
                user: Some(self.ids.intern(user)),
                canvas_user_id: 1,
                course: self.ids.intern(course),
                canvas_course_id: 1,
                section: SectionKey::Default,
                canvas_section_id: 1,
                role,
                state,
                associated_user_id: None,
            }
        }
    }

    fn run(desired: &[DesiredEnrollment], live: &[LiveEnrollment], removal: RemovalPolicy) -> Plan {
        plan(&PlanInput {
            desired,
            live,
            removal,
            manage_non_sis_users: false,
            hold: &HashSet::new(),
        })
    }

    fn actions(p: &Plan) -> Vec<Action> {
        p.changes.iter().map(|c| c.action).collect()
    }

    /// Each drift kind, as a table: (SIS wants, Canvas has) → the one change expected.
    #[test]
    fn each_drift_kind_gives_one_change() {
        use DesiredState as D;
        use EnrollmentState as S;
        type Row = (
            Option<(RoleId, D)>,
            Option<(RoleId, S)>,
            Option<Action>,
            Option<S>,
        );
        let table: Vec<(&str, Row)> = vec![
            (
                "missing → enroll",
                (
                    Some((STUDENT, D::Active)),
                    None,
                    Some(Action::Enroll),
                    Some(S::Active),
                ),
            ),
            (
                "missing inactive → enroll inactive",
                (
                    Some((STUDENT, D::Inactive)),
                    None,
                    Some(Action::Enroll),
                    Some(S::Inactive),
                ),
            ),
            (
                "missing deleted → nothing",
                (Some((STUDENT, D::Deleted)), None, None, None),
            ),
            (
                "extra active → remove",
                (
                    None,
                    Some((STUDENT, S::Active)),
                    Some(Action::Remove),
                    Some(S::Completed),
                ),
            ),
            (
                "extra invited → remove",
                (
                    None,
                    Some((STUDENT, S::Invited)),
                    Some(Action::Remove),
                    Some(S::Completed),
                ),
            ),
            (
                "extra creation_pending → remove",
                (
                    None,
                    Some((STUDENT, S::CreationPending)),
                    Some(Action::Remove),
                    Some(S::Completed),
                ),
            ),
            (
                "extra completed → left",
                (None, Some((STUDENT, S::Completed)), None, None),
            ),
            (
                "extra inactive → left",
                (None, Some((STUDENT, S::Inactive)), None, None),
            ),
            (
                "extra unknown state → left",
                (None, Some((STUDENT, S::Unknown)), None, None),
            ),
            (
                "wrong role → change_role",
                (
                    Some((ADULT, D::Active)),
                    Some((STUDENT, S::Active)),
                    Some(Action::ChangeRole),
                    Some(S::Active),
                ),
            ),
            (
                "completed but active wanted → change_state",
                (
                    Some((STUDENT, D::Active)),
                    Some((STUDENT, S::Completed)),
                    Some(Action::ChangeState),
                    Some(S::Active),
                ),
            ),
            (
                "invited but active wanted → change_state",
                (
                    Some((STUDENT, D::Active)),
                    Some((STUDENT, S::Invited)),
                    Some(Action::ChangeState),
                    Some(S::Active),
                ),
            ),
            (
                "active but inactive wanted → change_state",
                (
                    Some((STUDENT, D::Inactive)),
                    Some((STUDENT, S::Active)),
                    Some(Action::ChangeState),
                    Some(S::Inactive),
                ),
            ),
            (
                "active but completed wanted → change_state",
                (
                    Some((STUDENT, D::Completed)),
                    Some((STUDENT, S::Active)),
                    Some(Action::ChangeState),
                    Some(S::Completed),
                ),
            ),
            (
                "active but deleted wanted → change_state",
                (
                    Some((STUDENT, D::Deleted)),
                    Some((STUDENT, S::Active)),
                    Some(Action::ChangeState),
                    Some(S::Deleted),
                ),
            ),
            (
                "inactive and inactive wanted → nothing",
                (
                    Some((STUDENT, D::Inactive)),
                    Some((STUDENT, S::Inactive)),
                    None,
                    None,
                ),
            ),
            (
                "converged → nothing",
                (
                    Some((TEACHER, D::Active)),
                    Some((TEACHER, S::Active)),
                    None,
                    None,
                ),
            ),
        ];
        for (name, (want, have, action, state_after)) in table {
            let mut w = World::new();
            let desired: Vec<_> = want
                .iter()
                .map(|&(r, s)| w.want("u1", "c1", r, s))
                .collect();
            let live: Vec<_> = have
                .iter()
                .map(|&(r, s)| w.live("u1", "c1", r, s))
                .collect();
            let p = run(&desired, &live, RemovalPolicy::Conclude);
            assert_eq!(
                actions(&p),
                action.into_iter().collect::<Vec<_>>(),
                "{name}"
            );
            if let Some(c) = p.changes.first() {
                assert_eq!(c.state_after, state_after, "{name}");
            }
            let after = apply_to_snapshot(&live, &p, RemovalPolicy::Conclude);
            assert!(
                run(&desired, &after, RemovalPolicy::Conclude).is_empty(),
                "{name}: not idempotent"
            );
        }
    }

    #[test]
    fn removal_policy_sets_the_state_left_behind_and_keep_removes_nothing() {
        for (policy, expected) in [
            (RemovalPolicy::Conclude, Some(EnrollmentState::Completed)),
            (RemovalPolicy::Delete, Some(EnrollmentState::Deleted)),
            (RemovalPolicy::Inactivate, Some(EnrollmentState::Inactive)),
        ] {
            let mut w = World::new();
            let live = [w.live("u1", "c1", STUDENT, EnrollmentState::Active)];
            let p = run(&[], &live, policy);
            assert_eq!(p.changes[0].state_after, expected);
        }
        let mut w = World::new();
        let desired = [w.want("u1", "c1", ADULT, DesiredState::Active)];
        let live = [
            w.live("u1", "c1", STUDENT, EnrollmentState::Active),
            w.live("u2", "c1", STUDENT, EnrollmentState::Active),
        ];
        let p = run(&desired, &live, RemovalPolicy::Keep);
        assert_eq!(
            actions(&p),
            vec![Action::Enroll],
            "keep: no removal and no role change"
        );
    }

    #[test]
    fn exact_match_wins_over_role_change_source() {
        // SIS wants u1 as both teacher and student; Canvas has the student row only.
        let mut w = World::new();
        let desired = [
            w.want("u1", "c1", TEACHER, DesiredState::Active),
            w.want("u1", "c1", STUDENT, DesiredState::Active),
        ];
        let live = [w.live("u1", "c1", STUDENT, EnrollmentState::Active)];
        let p = run(&desired, &live, RemovalPolicy::Conclude);
        assert_eq!(actions(&p), vec![Action::Enroll]);
        assert_eq!(p.changes[0].role_after, Some(TEACHER));
    }

    #[test]
    fn linked_observers_non_sis_users_and_held_pairs_are_never_removed() {
        let mut w = World::new();
        let mut observer = w.live("obs", "c1", RoleId(7), EnrollmentState::Active);
        observer.associated_user_id = Some(42);
        let mut test_student = w.live("x", "c1", STUDENT, EnrollmentState::Active);
        test_student.user = None;
        let held = w.live("held", "c1", STUDENT, EnrollmentState::Active);
        let hold: HashSet<_> = [(w.ids.intern("held"), w.ids.intern("c1"))].into();
        let live = [observer, test_student, held];
        let p = plan(&PlanInput {
            desired: &[],
            live: &live,
            removal: RemovalPolicy::Delete,
            manage_non_sis_users: false,
            hold: &hold,
        });
        assert!(p.is_empty(), "{p:?}");
        let p = plan(&PlanInput {
            desired: &[],
            live: &live,
            removal: RemovalPolicy::Delete,
            manage_non_sis_users: true,
            hold: &hold,
        });
        assert_eq!(
            actions(&p),
            vec![Action::Remove],
            "only the non-SIS user when configured"
        );
        assert_eq!(p.changes[0].user, None);
    }

    #[test]
    fn section_move_is_enroll_plus_remove() {
        let mut w = World::new();
        let s1 = w.ids.intern("S1");
        let s2 = w.ids.intern("S2");
        let mut d = w.want("u1", "c1", STUDENT, DesiredState::Active);
        d.section = SectionKey::Sis(s2);
        let mut l = w.live("u1", "c1", STUDENT, EnrollmentState::Active);
        l.section = SectionKey::Sis(s1);
        let p = run(&[d], &[l], RemovalPolicy::Conclude);
        let mut got = actions(&p);
        got.sort();
        assert_eq!(got, vec![Action::Enroll, Action::Remove]);
        let after = apply_to_snapshot(&[l], &p, RemovalPolicy::Conclude);
        assert!(run(&[d], &after, RemovalPolicy::Conclude).is_empty());
    }

    #[test]
    fn duplicates_resolve_to_the_most_present_status_in_any_order() {
        let mut w = World::new();
        let a = w.want("u1", "c1", STUDENT, DesiredState::Active);
        let d = w.want("u1", "c1", STUDENT, DesiredState::Deleted);
        for rows in [vec![a, d], vec![d, a]] {
            let (unique, conflicts) = resolve_duplicates(rows);
            assert_eq!(unique.len(), 1);
            assert_eq!(unique[0].state, DesiredState::Active);
            assert_eq!(conflicts.len(), 1);
            assert_eq!(conflicts[0].dropped, DesiredState::Deleted);
        }
    }

    #[test]
    fn plan_of_converged_state_is_empty_and_order_is_deterministic() {
        let mut w = World::new();
        let mut desired = Vec::new();
        let mut live = Vec::new();
        for i in 0..50 {
            let u = format!("u{i}");
            desired.push(w.want(&u, "c1", STUDENT, DesiredState::Active));
            live.push(w.live(&u, "c1", STUDENT, EnrollmentState::Active));
        }
        assert!(run(&desired, &live, RemovalPolicy::Conclude).is_empty());
        live.truncate(25);
        let a = run(&desired, &live, RemovalPolicy::Conclude);
        let b = run(&desired, &live, RemovalPolicy::Conclude);
        assert_eq!(a, b);
        assert_eq!(a.count(Action::Enroll), 25);
    }
}
