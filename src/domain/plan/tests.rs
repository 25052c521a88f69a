//! Table tests of `plan`.
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
        section_removal: None,
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
        section_removal: None,
    });
    assert!(p.is_empty(), "{p:?}");
    let p = plan(&PlanInput {
        desired: &[],
        live: &live,
        removal: RemovalPolicy::Delete,
        manage_non_sis_users: true,
        hold: &hold,
        section_removal: None,
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
