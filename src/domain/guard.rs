//! The brake. Enrolments are cheap to add back; taking access away is what a bad SIS export turns into a
//! district-wide outage. So every change that takes access away (a removal, a role change — it ends the old
//! enrollment — and a state change to inactive, completed or deleted) counts against the limits; an empty SIS
//! result takes nothing away; too many such changes (by count, by ratio, or within one course) hold every one of
//! them they cover, while enrolls and reactivations still go ahead. Enrolls have a brake of their own, so that an
//! export that enrols everyone everywhere is held for a person to look at too.
//!
//! Ratios are over the live enrollments that give access now (active, invited, creation pending): counting
//! concluded ones would weaken the brake with every conclusion of the term.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;

use super::fast::FastMap;
use super::plan::{Change, Plan};
use super::{Action, Sym};

/// Courses with fewer live enrollments than this are not judged by the per-course ratio: in a course of three, one
/// drop is a third, and that is ordinary churn rather than a broken export.
pub const MIN_COURSE_LIVE_FOR_RATIO: u64 = 5;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct GuardLimits {
    pub max_removals: u64,
    pub max_removal_ratio: f64,
    pub max_course_removal_ratio: f64,
    /// Enrolls are held when they exceed both this count and [`GuardLimits::max_addition_ratio`].
    pub max_additions: u64,
    pub max_addition_ratio: f64,
}

impl GuardLimits {
    /// Limits that never trip (tests and the benchmark's baseline, which make every change they plan).
    pub const OFF: GuardLimits = GuardLimits {
        max_removals: u64::MAX,
        max_removal_ratio: f64::INFINITY,
        max_course_removal_ratio: f64::INFINITY,
        max_additions: u64::MAX,
        max_addition_ratio: f64::INFINITY,
    };
}

/// Why the brake tripped. `Display` is the log line an operator reads. "Removals" are every change that takes
/// access away.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Trip {
    EmptySis,
    MaxRemovals {
        removals: u64,
        limit: u64,
    },
    MaxRatio {
        removals: u64,
        live: u64,
        limit: f64,
    },
    CourseRatio {
        courses: Vec<(String, u64, u64)>,
        limit: f64,
    },
    MaxAdditions {
        additions: u64,
        live: u64,
        limit: u64,
        ratio_limit: f64,
    },
    /// An earlier cycle tripped and no operator has acted on it yet (RELIABILITY.md promise 4).
    Sticky {
        run_id: String,
    },
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trip::EmptySis => write!(
                f,
                "the SIS query returned no usable rows; nothing is removed on an empty SIS result"
            ),
            Trip::MaxRemovals { removals, limit } => write!(
                f,
                "{removals} removals exceed reconcile.max_removals = {limit} (removals, role changes and \
                 conclusions count); none of them was made"
            ),
            Trip::MaxRatio {
                removals,
                live,
                limit,
            } => write!(
                f,
                "{removals} removals of {live} active or invited enrollments in managed courses ({:.1}%) exceed \
                 reconcile.max_removal_ratio = {limit} ({:.1}%; removals, role changes and conclusions count); \
                 none of them was made",
                ratio(*removals, *live) * 100.0,
                limit * 100.0
            ),
            Trip::CourseRatio { courses, limit } => {
                write!(
                    f,
                    "{} course(s) would lose more than reconcile.max_course_removal_ratio = {limit} of their \
                     enrollments; their removals were held: ",
                    courses.len()
                )?;
                for (i, (course, removals, live)) in courses.iter().take(5).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{course} ({removals} of {live})")?;
                }
                if courses.len() > 5 {
                    write!(f, ", and {} more", courses.len() - 5)?;
                }
                Ok(())
            }
            Trip::MaxAdditions {
                additions,
                live,
                limit,
                ratio_limit,
            } => write!(
                f,
                "{additions} enrolls exceed reconcile.max_additions = {limit} and are {:.0}% of the {live} active or \
                 invited enrollments in managed courses (reconcile.max_addition_ratio = {ratio_limit}); no enroll \
                 was made",
                ratio(*additions, *live) * 100.0
            ),
            Trip::Sticky { run_id } => write!(
                f,
                "run {run_id} tripped the brake and no operator has acted on it yet, so every change that takes \
                 access away is held (review it, then `rostersync apply` the latest tripped run, or \
                 `rostersync resume`)"
            ),
        }
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        if n == 0 { 0.0 } else { f64::INFINITY }
    } else {
        n as f64 / d as f64
    }
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct GuardDecision {
    /// Set when every change that takes access away is held.
    pub global: Option<Trip>,
    /// Set when only some courses' access-removing changes are held.
    pub per_course: Option<Trip>,
    pub blocked_courses: HashSet<Sym>,
    /// Set when every enroll is held.
    pub additions: Option<Trip>,
}

impl GuardDecision {
    pub fn tripped(&self) -> bool {
        self.global.is_some() || self.per_course.is_some() || self.additions.is_some()
    }

    /// The reason to report: every trip, the global one first.
    pub fn reason(&self) -> Option<String> {
        let reasons: Vec<String> = [&self.global, &self.per_course, &self.additions]
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Whether a change that takes access away may go ahead in `course`.
    pub fn allows_removal_in(&self, course: Sym) -> bool {
        self.global.is_none() && !self.blocked_courses.contains(&course)
    }

    /// Whether the brake holds this change back. Enrolls and reactivations are held only by the enroll brake.
    pub fn holds(&self, change: &Change) -> bool {
        if change.takes_access_away() {
            !self.allows_removal_in(change.course)
        } else {
            change.action == Action::Enroll && self.additions.is_some()
        }
    }
}

/// Decides the brake for one plan.
/// `usable_sis_rows`: rows that parsed; `live_per_course`: live enrollments that give access now (active, invited,
/// creation pending), per managed course.
pub fn evaluate<S: BuildHasher>(
    plan: &Plan,
    usable_sis_rows: usize,
    live_per_course: &HashMap<Sym, u64, S>,
    limits: &GuardLimits,
    course_name: impl Fn(Sym) -> String,
) -> GuardDecision {
    evaluate_scoped(
        plan,
        usable_sis_rows,
        live_per_course,
        limits,
        None,
        course_name,
    )
}

/// What a run limited to some courses (`scope = 'courses'`) is judged against, so that its brake is never weaker
/// than a full run's: the changes the scoped runs since the last full run made count with its own, and its ratios
/// are taken over the whole district as that full run saw it (its own courses would make the same removals a
/// bigger share, which is stricter still, but would stop a student dropping one class of eight).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScopedBase {
    /// Access-removing changes applied by scoped runs since the last full run.
    pub removals_made: u64,
    /// Enrolls applied by scoped runs since the last full run.
    pub enrolls_made: u64,
    /// Active or invited live enrollments in managed courses at the last full run (0: unknown, use this run's).
    pub district_live: u64,
}

/// [`evaluate`], for a scoped run when `base` is set.
pub fn evaluate_scoped<S: BuildHasher>(
    plan: &Plan,
    usable_sis_rows: usize,
    live_per_course: &HashMap<Sym, u64, S>,
    limits: &GuardLimits,
    base: Option<&ScopedBase>,
    course_name: impl Fn(Sym) -> String,
) -> GuardDecision {
    let mut decision = GuardDecision::default();
    let removals_by_course = plan.changes.iter().filter(|c| c.takes_access_away()).fold(
        FastMap::<Sym, u64>::default(),
        |mut m, c| {
            *m.entry(c.course).or_default() += 1;
            m
        },
    );
    let base = base.copied().unwrap_or_default();
    let removals: u64 = removals_by_course.values().sum::<u64>() + base.removals_made;
    let live = match base.district_live {
        0 => live_per_course.values().sum(),
        district => district,
    };

    decision.global = if usable_sis_rows == 0 {
        Some(Trip::EmptySis)
    } else if removals > limits.max_removals {
        Some(Trip::MaxRemovals {
            removals,
            limit: limits.max_removals,
        })
    } else if ratio(removals, live) > limits.max_removal_ratio {
        Some(Trip::MaxRatio {
            removals,
            live,
            limit: limits.max_removal_ratio,
        })
    } else {
        None
    };

    if decision.global.is_none() {
        let mut courses: Vec<(Sym, u64, u64)> = removals_by_course
            .iter()
            .filter_map(|(&course, &n)| {
                let live = live_per_course.get(&course).copied().unwrap_or(0);
                (live >= MIN_COURSE_LIVE_FOR_RATIO
                    && ratio(n, live) > limits.max_course_removal_ratio)
                    .then_some((course, n, live))
            })
            .collect();
        if !courses.is_empty() {
            courses.sort_by_key(|&(c, n, _)| (std::cmp::Reverse(n), c));
            decision.blocked_courses = courses.iter().map(|&(c, _, _)| c).collect();
            decision.per_course = Some(Trip::CourseRatio {
                courses: courses
                    .into_iter()
                    .map(|(c, n, l)| (course_name(c), n, l))
                    .collect(),
                limit: limits.max_course_removal_ratio,
            });
        }
    }

    let additions = plan.count(Action::Enroll) as u64 + base.enrolls_made;
    if additions > limits.max_additions && ratio(additions, live) > limits.max_addition_ratio {
        decision.additions = Some(Trip::MaxAdditions {
            additions,
            live,
            limit: limits.max_additions,
            ratio_limit: limits.max_addition_ratio,
        });
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RemovalPolicy;
    use crate::domain::plan::{PlanInput, plan};
    use crate::domain::{EnrollmentState, Ids, LiveEnrollment, RoleId, SectionKey};

    fn removals(ids: &mut Ids, course: &str, n: u64, keep: u64) -> (Plan, HashMap<Sym, u64>) {
        let c = ids.intern(course);
        let live: Vec<_> = (0..n + keep)
            .map(|i| LiveEnrollment {
                id: i + 1,
                user: Some(ids.intern(&format!("u{i}"))),
                canvas_user_id: i,
                course: c,
                canvas_course_id: 1,
                section: SectionKey::Default,
                canvas_section_id: 1,
                role: RoleId(3),
                state: EnrollmentState::Active,
                associated_user_id: None,
            })
            .collect();
        let desired: Vec<_> = live[n as usize..]
            .iter()
            .map(|l| crate::domain::DesiredEnrollment {
                user: l.user.unwrap_or(c),
                course: c,
                section: SectionKey::Default,
                role: RoleId(3),
                state: crate::domain::DesiredState::Active,
            })
            .collect();
        let p = plan(&PlanInput {
            desired: &desired,
            live: &live,
            removal: RemovalPolicy::Conclude,
            manage_non_sis_users: false,
            hold: &HashSet::new(),
            section_removal: None,
        });
        (p, [(c, n + keep)].into())
    }

    fn limits(max: u64, ratio: f64) -> GuardLimits {
        GuardLimits {
            max_removals: max,
            max_removal_ratio: ratio,
            max_course_removal_ratio: 1.0,
            ..GuardLimits::OFF
        }
    }

    #[test]
    fn thresholds_are_inclusive_limits() {
        let mut ids = Ids::new();
        let (p, live) = removals(&mut ids, "c", 25, 75);
        assert!(
            !evaluate(&p, 75, &live, &limits(25, 0.25), |_| String::new()).tripped(),
            "exactly at both"
        );
        let d = evaluate(&p, 75, &live, &limits(24, 0.9), |_| String::new());
        assert_eq!(
            d.global,
            Some(Trip::MaxRemovals {
                removals: 25,
                limit: 24
            })
        );
        let d = evaluate(&p, 75, &live, &limits(500, 0.2), |_| String::new());
        assert!(matches!(
            d.global,
            Some(Trip::MaxRatio {
                removals: 25,
                live: 100,
                ..
            })
        ));
        assert!(d.reason().is_some_and(|r| r.contains("25 removals of 100")));
    }

    #[test]
    fn empty_sis_trips_even_with_nothing_to_remove() {
        let d = evaluate(
            &Plan::default(),
            0,
            &HashMap::new(),
            &limits(500, 0.1),
            |_| String::new(),
        );
        assert_eq!(d.global, Some(Trip::EmptySis));
    }

    #[test]
    fn per_course_ratio_blocks_only_that_course() {
        let mut ids = Ids::new();
        let (p, live) = removals(&mut ids, "c", 20, 0);
        let l = GuardLimits {
            max_removals: 500,
            max_removal_ratio: 1.0,
            max_course_removal_ratio: 0.5,
            ..GuardLimits::OFF
        };
        let d = evaluate(&p, 10, &live, &l, |_| "COURSE-1".into());
        assert!(d.global.is_none());
        assert!(d.tripped());
        let c = ids.intern("c");
        assert!(!d.allows_removal_in(c));
        assert!(d.allows_removal_in(ids.intern("other")));
        assert!(
            d.reason()
                .is_some_and(|r| r.contains("COURSE-1 (20 of 20)"))
        );
    }
}
