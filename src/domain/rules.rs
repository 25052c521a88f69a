//! Role rules (`[[role_rules]]`): for the users a rule's query returns, `from_role` becomes `to_role`, both in their
//! SIS rows and in their live enrollments of managed courses (the hand-made ones the SIS does not list).
//!
//! The rewrite happens on the desired side only; the plan then sees the live `from_role` row as unlisted and the
//! `to_role` enrollment as missing in the same section, which is exactly one `change_role`.

use std::collections::{HashMap, HashSet};

use super::{DesiredEnrollment, DesiredState, LiveEnrollment, RoleId, Sym};

#[derive(Debug, Clone)]
pub struct ResolvedRule {
    pub name: String,
    pub users: HashSet<Sym>,
    pub from: RoleId,
    pub to: RoleId,
}

/// A user two rules would move from the same role to different roles. Reported and left alone, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleConflict {
    pub user: Sym,
    pub from: RoleId,
    pub first_rule: String,
    pub first_to: RoleId,
    pub second_rule: String,
    pub second_to: RoleId,
}

/// Two or more rules whose roles lead back where they started (student → teacher → student): no order of applying
/// them ends, so such a set is refused before anything is read. Returns the names of the rules in the loop.
pub fn role_rule_cycle(rules: &[(String, RoleId, RoleId)]) -> Option<Vec<String>> {
    for (start, _, _) in rules.iter().enumerate().map(|(i, r)| (i, r.1, r.2)) {
        // Follow from → to edges from this rule; coming back to its `from` is a cycle.
        let mut path = vec![start];
        let mut role = rules[start].2;
        while path.len() <= rules.len() {
            if role == rules[start].1 {
                return Some(path.iter().map(|&i| rules[i].0.clone()).collect());
            }
            match rules.iter().position(|r| r.1 == role) {
                Some(next) if !path.contains(&next) => {
                    path.push(next);
                    role = rules[next].2;
                }
                _ => break,
            }
        }
    }
    None
}

#[derive(Debug, Default)]
pub struct RuleOutcome {
    pub desired: Vec<DesiredEnrollment>,
    /// SIS rows left out because their user is in conflict (index into the input, with the conflict).
    pub skipped: Vec<(DesiredEnrollment, RuleConflict)>,
    pub conflicts: Vec<RuleConflict>,
    /// (user, course) pairs whose live enrollments must not be removed this cycle (conflicted users).
    pub hold: Vec<(Sym, Sym)>,
    pub rewritten_sis_rows: usize,
    pub adopted_live: usize,
}

/// Applies the rules: a role maps through each rule whose user set contains the user and whose `from` is the role
/// at that point, repeatedly, until no rule applies.
pub fn apply_role_rules(
    desired: Vec<DesiredEnrollment>,
    live: &[LiveEnrollment],
    rules: &[ResolvedRule],
) -> RuleOutcome {
    if rules.is_empty() {
        return RuleOutcome {
            desired,
            ..RuleOutcome::default()
        };
    }
    // Conflicts: the same user in two rules with the same `from` and different `to`.
    let mut conflicts: HashMap<(Sym, RoleId), RuleConflict> = HashMap::new();
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            if a.from != b.from || a.to == b.to {
                continue;
            }
            let (small, large) = if a.users.len() <= b.users.len() {
                (a, b)
            } else {
                (b, a)
            };
            for &user in small.users.iter().filter(|u| large.users.contains(u)) {
                conflicts
                    .entry((user, a.from))
                    .or_insert_with(|| RuleConflict {
                        user,
                        from: a.from,
                        first_rule: a.name.clone(),
                        first_to: a.to,
                        second_rule: b.name.clone(),
                        second_to: b.to,
                    });
            }
        }
    }
    // Rules apply until none applies any more, so an enrollment never ends in a role some rule moves its user
    // away from, whatever the order the rules were written in. `role_rule_cycle` refuses rule sets that loop.
    let map_role = |user: Sym, role: RoleId| -> RoleId {
        let mut current = role;
        for _ in 0..=rules.len() {
            let before = current;
            for rule in rules {
                if current == rule.from && rule.users.contains(&user) {
                    current = rule.to;
                }
            }
            if current == before {
                break;
            }
        }
        current
    };

    let mut out = RuleOutcome::default();
    let mut hold: HashSet<(Sym, Sym)> = HashSet::new();
    let mut kept = Vec::with_capacity(desired.len());
    for mut d in desired {
        if let Some(conflict) = conflicts.get(&(d.user, d.role)) {
            hold.insert((d.user, d.course));
            out.skipped.push((d, conflict.clone()));
            continue;
        }
        let role = map_role(d.user, d.role);
        if role != d.role {
            out.rewritten_sis_rows += 1;
            d.role = role;
        }
        kept.push(d);
    }

    // Live rows of rule users with a mapped role, in a removable state: the SIS does not list them, yet the rule
    // says the user keeps the enrollment under the new role.
    let mut wanted: HashSet<_> = kept.iter().map(|d| d.key()).collect();
    for l in live {
        let Some(user) = l.user else { continue };
        if l.associated_user_id.is_some() || !l.state.is_removable() {
            continue;
        }
        if conflicts.contains_key(&(user, l.role)) {
            hold.insert((user, l.course));
            continue;
        }
        // A `from_role` row becomes `to_role`; a row already in a rule's `to_role` (converted in an earlier
        // cycle, or made by hand with the right role) is kept as it is, not removed for being unlisted.
        // A live row the SIS itself wants (after the rules) is the SIS's to decide, whatever a rule would make of it.
        let own_key = crate::domain::EnrollmentKey {
            user,
            course: l.course,
            section: l.section,
            role: l.role,
        };
        if wanted.contains(&own_key) {
            continue;
        }
        let role = map_role(user, l.role);
        let already_target = rules
            .iter()
            .any(|r| r.to == l.role && r.users.contains(&user));
        if role == l.role && !already_target {
            continue;
        }
        let adopted = DesiredEnrollment {
            user,
            course: l.course,
            section: l.section,
            role,
            state: DesiredState::Active,
        };
        // Only when the SIS does not already decide this enrollment (its own state then wins).
        if wanted.insert(adopted.key()) {
            if role != l.role {
                out.adopted_live += 1;
            }
            kept.push(adopted);
        }
    }
    out.desired = kept;
    out.conflicts = conflicts.into_values().collect();
    out.conflicts.sort_by_key(|c| (c.user, c.from));
    out.hold = hold.into_iter().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EnrollmentState, Ids, SectionKey};

    const STUDENT: RoleId = RoleId(3);
    const TEACHER: RoleId = RoleId(4);
    const ADULT: RoleId = RoleId(20);

    fn live(ids: &mut Ids, id: u64, user: &str, role: RoleId) -> LiveEnrollment {
        LiveEnrollment {
            id,
            user: Some(ids.intern(user)),
            canvas_user_id: id,
            course: ids.intern("STAFF-PD"),
            canvas_course_id: 1,
            section: SectionKey::Default,
            canvas_section_id: 1,
            role,
            state: EnrollmentState::Active,
            associated_user_id: None,
        }
    }

    #[test]
    fn staff_student_rows_and_hand_made_live_rows_become_adult_learner() {
        let mut ids = Ids::new();
        let staff = ids.intern("staff1");
        let student = ids.intern("student1");
        let course = ids.intern("STAFF-PD");
        let desired = vec![
            DesiredEnrollment {
                user: staff,
                course,
                section: SectionKey::Default,
                role: STUDENT,
                state: DesiredState::Active,
            },
            DesiredEnrollment {
                user: student,
                course,
                section: SectionKey::Default,
                role: STUDENT,
                state: DesiredState::Active,
            },
        ];
        let hand_made = live(&mut ids, 9, "staff2", STUDENT);
        let rule = ResolvedRule {
            name: "staff".into(),
            users: [staff, ids.intern("staff2")].into(),
            from: STUDENT,
            to: ADULT,
        };
        let out = apply_role_rules(desired, &[hand_made], &[rule]);
        assert_eq!(out.rewritten_sis_rows, 1);
        assert_eq!(out.adopted_live, 1);
        let roles: Vec<_> = out
            .desired
            .iter()
            .map(|d| (ids.resolve(d.user).to_owned(), d.role))
            .collect();
        assert!(roles.contains(&("staff1".into(), ADULT)));
        assert!(
            roles.contains(&("student1".into(), STUDENT)),
            "real students stay students"
        );
        assert!(roles.contains(&("staff2".into(), ADULT)));
    }

    #[test]
    fn conflicting_rules_are_reported_and_the_user_is_held() {
        let mut ids = Ids::new();
        let u = ids.intern("u1");
        let course = ids.intern("STAFF-PD");
        let desired = vec![DesiredEnrollment {
            user: u,
            course,
            section: SectionKey::Default,
            role: STUDENT,
            state: DesiredState::Active,
        }];
        let rules = [
            ResolvedRule {
                name: "a".into(),
                users: [u].into(),
                from: STUDENT,
                to: ADULT,
            },
            ResolvedRule {
                name: "b".into(),
                users: [u].into(),
                from: STUDENT,
                to: TEACHER,
            },
        ];
        let out = apply_role_rules(desired, &[live(&mut ids, 1, "u1", STUDENT)], &rules);
        assert_eq!(out.conflicts.len(), 1);
        assert_eq!(out.conflicts[0].first_rule, "a");
        assert!(out.desired.is_empty());
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.hold, vec![(u, course)]);
    }

    #[test]
    fn a_rule_users_live_row_already_in_the_target_role_is_kept() {
        let mut ids = Ids::new();
        let converted = live(&mut ids, 5, "staff2", ADULT);
        let rule = ResolvedRule {
            name: "staff".into(),
            users: [ids.intern("staff2")].into(),
            from: STUDENT,
            to: ADULT,
        };
        let out = apply_role_rules(Vec::new(), &[converted], &[rule]);
        assert_eq!(
            out.desired.len(),
            1,
            "kept, so the next cycle does not remove it"
        );
        assert_eq!(out.desired[0].role, ADULT);
        assert_eq!(out.adopted_live, 0);
    }

    #[test]
    fn rules_apply_to_a_fixed_point_and_loops_are_found() {
        let mut ids = Ids::new();
        let u = ids.intern("u1");
        let ta_to_teacher = ResolvedRule {
            name: "b".into(),
            users: [u].into(),
            from: RoleId(5),
            to: TEACHER,
        };
        let teacher_to_student = ResolvedRule {
            name: "a".into(),
            users: [u].into(),
            from: TEACHER,
            to: STUDENT,
        };
        let out = apply_role_rules(
            Vec::new(),
            &[live(&mut ids, 1, "u1", RoleId(5))],
            &[teacher_to_student, ta_to_teacher],
        );
        assert_eq!(
            out.desired[0].role, STUDENT,
            "TA → teacher → student in one cycle, whatever the written order"
        );
        let rules = [
            ("a".to_owned(), STUDENT, TEACHER),
            ("b".to_owned(), TEACHER, STUDENT),
        ];
        assert_eq!(
            role_rule_cycle(&rules),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(role_rule_cycle(&rules[..1]), None);
    }
}
