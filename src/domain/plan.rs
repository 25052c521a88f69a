//! The decision at the centre: a pure function of (desired, live) → [`Plan`].
//!
//! Rules (CONTRACT.md "What a cycle decides"):
//! - a desired enrollment found live in another state → `change_state`; missing → `enroll` (none for `deleted`);
//! - missing, while the same user has a removable live enrollment in that section with another role that nothing
//!   else claims → one `change_role` (create the new role, then remove the old);
//! - a live enrollment of a managed course that no SIS row lists, in a removable state → `remove`, unless it is a
//!   linked observer row, belongs to a user without SIS identity, or sits under a hold (a user+course whose SIS
//!   rows could not be understood: a bad row must never turn into a removal).

use std::collections::HashSet;
use std::collections::hash_map::Entry;

use super::fast::{self, FastMap};
use super::{
    Action, DesiredEnrollment, DesiredState, EnrollmentKey, EnrollmentState, LiveEnrollment,
    RoleId, SectionKey, Sym,
};
use crate::domain::RemovalPolicy;

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

impl Change {
    /// Whether making this change takes access away (CONTRACT v2 "The brake"): a removal, a role change (it ends
    /// the old enrollment), or a state change to inactive, completed or deleted.
    pub fn takes_access_away(&self) -> bool {
        match self.action {
            Action::Remove | Action::ChangeRole => true,
            Action::ChangeState => matches!(
                self.state_after,
                Some(
                    EnrollmentState::Inactive
                        | EnrollmentState::Completed
                        | EnrollmentState::Deleted
                )
            ),
            Action::Enroll => false,
        }
    }

    /// The identity of an access-removing change across cycles, for flap damping: the same action on the same
    /// enrollment with the same result. None for changes that give access (never damped).
    pub fn damping_key(&self) -> Option<String> {
        let live = self.live.filter(|_| self.takes_access_away())?;
        Some(format!(
            "{}:{}:{}:{}",
            self.action.as_str(),
            live.id,
            self.role_after.map_or(0, |r| r.0),
            self.state_after.map_or("", |s| s.as_str())
        ))
    }
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
    /// The state a removal leaves an enrollment in a section in, when it differs from `removal`'s (Open edX: a
    /// course run enrollment becomes `inactive` whatever the program's removal is).
    pub section_removal: Option<EnrollmentState>,
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
    // Compacted in place: the first row of each key moves to the front, in row order.
    let mut unique = desired;
    let mut index: FastMap<EnrollmentKey, usize> = fast::map_with_capacity(unique.len());
    let mut conflicts = Vec::new();
    let mut kept = 0;
    for row in 0..unique.len() {
        let d = unique[row];
        match index.entry(d.key()) {
            Entry::Occupied(e) => {
                let i = *e.get();
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
            Entry::Vacant(e) => {
                e.insert(kept);
                unique[kept] = d;
                kept += 1;
            }
        }
    }
    unique.truncate(kept);
    (unique, conflicts)
}

/// Live rows grouped by a key, each group in row order, without a `Vec` per group: a million small vectors were
/// most of the plan's time (their allocations, and freeing them) at S4's 1.5M enrollments.
struct Groups<K> {
    /// key → (first row, last row) of its group.
    ends: FastMap<K, (usize, usize)>,
    /// The next row of the same group (`usize::MAX`: none).
    next: Vec<usize>,
}

impl<K: std::hash::Hash + Eq> Groups<K> {
    fn new(rows: usize) -> Self {
        Groups {
            ends: fast::map_with_capacity(rows),
            next: vec![usize::MAX; rows],
        }
    }

    fn push(&mut self, key: K, row: usize) {
        match self.ends.entry(key) {
            Entry::Occupied(mut e) => {
                let (_, last) = e.get_mut();
                self.next[*last] = row;
                *last = row;
            }
            Entry::Vacant(e) => {
                e.insert((row, row));
            }
        }
    }

    /// The group's rows in row order; `None` when no row has this key.
    fn get(&self, key: &K) -> Option<GroupRows<'_>> {
        let &(first, _) = self.ends.get(key)?;
        Some(GroupRows {
            next: &self.next,
            at: first,
        })
    }
}

#[derive(Clone)]
struct GroupRows<'a> {
    next: &'a [usize],
    at: usize,
}

impl Iterator for GroupRows<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let row = self.at;
        if row == usize::MAX {
            return None;
        }
        self.at = self.next[row];
        Some(row)
    }
}

/// Decides every change that turns `live` into `desired`.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    // Linked observer rows belong to Canvas, not to the SIS (facts §10); rows without a SIS user have no key.
    let keyed = || {
        input
            .live
            .iter()
            .enumerate()
            .filter(|(_, l)| l.associated_user_id.is_none())
            .filter_map(|(i, l)| Some((i, l.key()?)))
    };
    let mut by_key: Groups<EnrollmentKey> = Groups::new(input.live.len());
    for (i, key) in keyed() {
        by_key.push(key, i);
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
        // The course's default section and teacher-made sections carry no SIS id, so they share this key: the SIS
        // row names them all ("in the course") and none is removed for being unlisted; each follows the SIS.
        // Otherwise Canvas keeps one row per key, so several is an anomaly: prefer one already in the wanted state.
        let mut claim = |i: usize| {
            matched[i] = true;
            let l = &input.live[i];
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
        };
        if d.section == SectionKey::Default {
            rows.for_each(&mut claim);
        } else {
            let first = rows.at;
            let preferred = rows
                .clone()
                .find(|&i| input.live[i].state == want)
                .unwrap_or(first);
            claim(preferred);
        }
    }
    drop(by_key);

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

    // (user, course, section) → live rows there, for role-change candidates. Only a missing active enrollment
    // looks for one, so a cycle without such (every converged one) never builds it.
    let by_place: Groups<(Sym, Sym, SectionKey)> =
        if missing.iter().any(|d| d.state == DesiredState::Active) {
            let mut by_place = Groups::new(input.live.len());
            for (i, key) in keyed() {
                by_place.push((key.user, key.course, key.section), i);
            }
            by_place
        } else {
            Groups::new(0)
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
                    rows.filter(|&i| removable(&input.live[i], &matched, i))
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
    let after = input.removal.resulting_state();
    for (i, l) in input.live.iter().enumerate() {
        if removable(l, &matched, i) {
            let after = match l.section {
                SectionKey::Sis(_) => input.section_removal.or(after),
                SectionKey::Default => after,
            };
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
                if let (Some(l), Some(state)) = (c.live, policy.resulting_state())
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
                if let (Some(state), Some(i)) = (policy.resulting_state(), position(&out, l.id)) {
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
mod tests;
