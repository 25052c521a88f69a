//! What the demo prints: the sample district (the university's summary is `openedx.rs`'s), the first cycle's plan
//! with examples, the results of both cycles, a few metrics and where the audit log is. Everything but the JSON
//! reports goes through [`Out`], which `--json` silences.

use std::fmt::Write as _;
use std::time::Instant;

use canvas_sim::district::{self, District, DriftKind};

use crate::config::TargetKind;
use crate::domain::Action;
use crate::reconcile::{self, CycleContext, CycleReport, PreparedCycle};
use crate::store::{AuditOutcome, AuditRow};

use super::setup::plain_url;

/// Examples shown per action in the plan summary.
const EXAMPLES: usize = 4;

/// Human output on stdout, silenced by `--json`.
#[derive(Clone, Copy)]
pub(super) struct Out {
    pub(super) json: bool,
}

impl Out {
    pub(super) fn say(&self, text: impl std::fmt::Display) {
        if !self.json {
            println!("{text}");
        }
    }
}

pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn district_summary(
    d: &District,
    loaded: &district::LoadedSis,
    started: Instant,
) -> String {
    let s = &d.stats;
    let schools = if d.schools.len() <= 3 {
        format!(
            " ({})",
            d.schools
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nSample district (generator seed {}, made in {:.2} s): {} schools{schools}, {} terms",
        d.spec.rng_seed,
        started.elapsed().as_secs_f64(),
        s.schools,
        s.terms
    );
    let _ = writeln!(
        text,
        "  {} students, {} teachers, {} other staff, {} parents linked as observers",
        thousands(s.students.into()),
        thousands(s.teachers.into()),
        thousands(s.staff.into()),
        thousands(s.parents.into())
    );
    let _ = writeln!(
        text,
        "  {} courses with {} sections in the SIS (one staff course per school), {} more only in Canvas",
        thousands(s.courses.into()),
        thousands(s.sections.into()),
        thousands(s.unmanaged_courses.into())
    );
    let _ = writeln!(
        text,
        "  SIS: {} rows in sis_enrollments, {} employees in sis_staff",
        thousands(loaded.enrollment_rows),
        thousands(loaded.staff_rows)
    );
    let _ = writeln!(
        text,
        "  Canvas: {} enrollments, drifted from the SIS on purpose:",
        thousands(s.canvas_enrollments)
    );
    for kind in DriftKind::ALL {
        let _ = writeln!(
            text,
            "    {:<48} {:>7}   expect: {}",
            kind.describe(),
            thousands(d.drift.count(kind)),
            kind.expected()
        );
    }
    text.trim_end().to_owned()
}

/// "a → b", "a" when unchanged, "— → a" when new.
///
/// Not `crate::plan_text::arrow`: that one leaves a missing side empty ("→ a", "b →", ""), while the demo's
/// columns show it as "—" ("— → StudentEnrollment" for an enroll, "StudentEnrollment → —" for a removal).
fn arrow(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a == b => b.to_owned(),
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (None, Some(a)) => format!("— → {a}"),
        (Some(b), None) => format!("{b} → —"),
        (None, None) => "—".to_owned(),
    }
}

fn quoted(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) => format!("\"{v}\""),
    }
}

/// The LMS, as the result lines name it.
fn lms(target: TargetKind) -> &'static str {
    match target {
        TargetKind::Canvas => "Canvas",
        TargetKind::OpenEdx => "Open edX",
    }
}

/// How one target's plan reads: what each action means there, what an enrollment without a section is, and who a
/// user id is.
pub(super) struct PlanWords<'a> {
    blurb: fn(Action) -> &'static str,
    /// The section column of an enrollment without one: Canvas's default section, Open edX's program enrollment.
    no_section: &'static str,
    /// What the places are: Canvas courses, Open edX programs.
    places: &'static str,
    /// Whether a skipped row shows its `section_id` (an Open edX run key can be what is wrong with it).
    skipped_section: bool,
    /// The user column for a user id: the id and the person's name.
    who: &'a dyn Fn(&str) -> String,
}

impl<'a> PlanWords<'a> {
    pub(super) fn canvas(who: &'a dyn Fn(&str) -> String) -> Self {
        PlanWords {
            blurb: |action| match action {
                Action::Enroll => "in the SIS, not in Canvas",
                Action::Remove => {
                    "in Canvas, not in the SIS: concluded (reconcile.removal = conclude)"
                }
                Action::ChangeRole => "right place, wrong role (role rules included)",
                Action::ChangeState => "right enrollment, wrong state",
            },
            no_section: "(default section)",
            places: "managed courses",
            skipped_section: false,
            who,
        }
    }

    pub(super) fn openedx(who: &'a dyn Fn(&str) -> String) -> Self {
        PlanWords {
            blurb: |action| match action {
                Action::Enroll => {
                    "in the SIS, not in Open edX: written, linked or waiting for an account"
                }
                Action::Remove => {
                    "in Open edX, not in the SIS: program ended, run inactive (reconcile.removal = conclude)"
                }
                Action::ChangeRole => "right run, course_staff differs",
                Action::ChangeState => "right enrollment, wrong status",
            },
            no_section: "(program enrollment)",
            places: "managed programs",
            skipped_section: true,
            who,
        }
    }
}

/// Up to `EXAMPLES` changes of one action: different kinds (role and state transitions) first, then spread over
/// the plan, one change per user.
fn examples(rows: &[AuditRow]) -> Vec<&AuditRow> {
    let signature = |r: &AuditRow| {
        (
            r.role_before.clone(),
            r.role_after.clone(),
            r.state_before.clone(),
            r.state_after.clone(),
        )
    };
    let mut picked: Vec<&AuditRow> = Vec::new();
    let mut seen = Vec::new();
    for r in rows {
        let sig = signature(r);
        if !seen.contains(&sig) && !picked.iter().any(|p| p.user_id == r.user_id) {
            seen.push(sig);
            picked.push(r);
            if picked.len() == EXAMPLES {
                return picked;
            }
        }
    }
    let stride = (rows.len() / EXAMPLES).max(1);
    let spread = rows.iter().step_by(stride).chain(rows.iter());
    for r in spread {
        if picked.len() == EXAMPLES {
            break;
        }
        if !picked.iter().any(|p| p.user_id == r.user_id) {
            picked.push(r);
        }
    }
    picked
}

pub(super) fn print_plan(p: &PreparedCycle, ctx: &CycleContext, words: &PlanWords<'_>) {
    let details = &p.report.details;
    println!(
        "\nPlan (run {}): read {} SIS rows and {} live enrollments in {} {}",
        p.report.run_id,
        thousands(details.sis_rows),
        thousands(details.live_enrollments),
        thousands(details.managed_courses),
        words.places
    );
    // Examples first, so that all columns can be aligned.
    let mut blocks = Vec::new();
    for action in Action::ALL {
        let rows: Vec<AuditRow> = p
            .decision
            .plan
            .changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| reconcile::audit_row(c, &p.snapshot.ids, &p.snapshot.roles))
            .collect();
        blocks.push((action, rows));
    }
    let mut lines: Vec<(Action, [String; 5])> = Vec::new();
    for (action, rows) in &blocks {
        for r in examples(rows) {
            let user = r.user_id.clone().unwrap_or_default();
            lines.push((
                *action,
                [
                    (words.who)(&user),
                    r.course_id.clone().unwrap_or_default(),
                    r.section_id
                        .clone()
                        .unwrap_or_else(|| words.no_section.into()),
                    arrow(r.role_before.as_deref(), r.role_after.as_deref()),
                    arrow(r.state_before.as_deref(), r.state_after.as_deref()),
                ],
            ));
        }
    }
    let aligned =
        crate::plan_text::align(&lines.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>());
    for (action, rows) in &blocks {
        println!(
            "  {:<14} {:>6}   {}",
            action.as_str(),
            thousands(rows.len() as u64),
            (words.blurb)(*action)
        );
        for (_, line) in lines.iter().zip(&aligned).filter(|((a, _), _)| a == action) {
            println!("      {line}");
        }
    }

    let skipped: Vec<AuditRow> = p
        .decision
        .unplanned
        .iter()
        .map(|u| reconcile::record::unplanned_row(u, &p.snapshot.ids, &p.snapshot.roles))
        .filter(|r| r.outcome == Some(AuditOutcome::Skipped))
        .collect();
    println!(
        "  {:<14} {:>6}   SIS rows that cannot be understood: skipped and audited, never a reason to remove",
        "skipped rows",
        thousands(skipped.len() as u64)
    );
    for r in skipped.iter().take(5) {
        let reason = r
            .error
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches("SIS row skipped: ");
        let section = match (&r.section_id, words.skipped_section) {
            (Some(s), true) => format!(", section_id {}", quoted(Some(s))),
            _ => String::new(),
        };
        println!(
            "      user_id {}, course_id {}{section}, role {}, status {}: {reason}",
            quoted(r.user_id.as_deref()),
            quoted(r.course_id.as_deref()),
            quoted(r.role_after.as_deref()),
            quoted(r.state_after.as_deref()),
        );
    }
    if skipped.len() > 5 {
        println!("      ... and {} more", skipped.len() - 5);
    }

    let removals = p.decision.plan.count(Action::Remove) as u64;
    let live = details.live_enrollments;
    let limits = &ctx.settings.reconcile;
    let share = if live == 0 {
        0.0
    } else {
        removals as f64 * 100.0 / live as f64
    };
    match p.decision.brake.reason() {
        None => println!(
            "  {:<14} not tripped: {} removals of {} live enrollments ({share:.1}%) are within \
             reconcile.max_removal_ratio = {} and reconcile.max_removals = {}",
            "safety guard",
            thousands(removals),
            thousands(live),
            limits.max_removal_ratio,
            limits.max_removals
        ),
        Some(reason) => println!(
            "  {:<14} TRIPPED: {reason}; the other changes still apply",
            "safety guard"
        ),
    }
}

/// "enroll 3, remove 1, ..." in the plan's order.
pub(super) fn per_action(counts: &std::collections::BTreeMap<&'static str, u64>) -> String {
    Action::ALL
        .iter()
        .map(|a| {
            let n = counts.get(a.as_str()).copied().unwrap_or(0);
            format!("{} {}", a.as_str(), thousands(n))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn print_result(out: Out, r: &CycleReport, target: TargetKind) {
    let req = &r.details.requests;
    out.say(format_args!(
        "Result: {} in {:.1} s: {} applied ({}), {} failed, {} skipped; {} {} API calls ({} reads, {} writes)",
        r.status.as_str(),
        r.duration_ms as f64 / 1000.0,
        thousands(r.applied),
        per_action(&r.details.applied_by_action),
        thousands(r.failed),
        thousands(r.skipped),
        thousands(r.api_calls),
        lms(target),
        thousands(req.gets),
        thousands(req.writes)
    ));
    if let Some(e) = &r.error {
        out.say(format_args!("  error: {e}"));
    }
}

pub(super) fn print_second(out: Out, r: &CycleReport, target: TargetKind) {
    let verdict = if r.planned_total() == 0 {
        "nothing left to do"
    } else {
        "NOT converged"
    };
    out.say(format_args!(
        "\nSecond cycle (run {}): planned {}: {verdict}\n  {:.1} s, {} {} API calls, {} of them writes; \
         the {} bad SIS rows are skipped again until they are fixed in the SIS",
        r.run_id,
        per_action(&r.planned),
        r.duration_ms as f64 / 1000.0,
        thousands(r.api_calls),
        lms(target),
        r.details.requests.writes,
        r.details.sis_rows_skipped,
    ));
}

/// A few lines of `/metrics`, read over HTTP like Prometheus would.
pub(super) async fn print_metrics(url: &str) {
    let body = match reqwest::get(url).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => {
            println!("\nMetrics: could not read {url}: {e}");
            return;
        }
    };
    println!("\nMetrics, as served on {url} (a few of them):");
    for line in body.lines().filter(|l| {
        l.starts_with("rostersync_cycles_total{")
            || l.starts_with("rostersync_changes_total{")
            || l.starts_with("rostersync_safety_trips_total ")
    }) {
        println!("  {line}");
    }
}

pub(super) fn print_audit(
    out: Out,
    db_url: &str,
    first: &CycleReport,
    second: &CycleReport,
    keep: bool,
) {
    let url = plain_url(db_url);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nAudit log: every decision above is a row in rostersync.audit_log (runs {} and {}; \
         one row per run in rostersync.sync_runs)",
        first.run_id, second.run_id
    );
    let _ = writeln!(text, "  database  {url}");
    let _ = writeln!(
        text,
        "  try       psql '{url}' -c \"SELECT action, outcome, count(*) FROM rostersync.audit_log GROUP BY 1, 2 ORDER BY 1, 2\""
    );
    let _ = writeln!(
        text,
        "            psql '{url}' -c \"SELECT user_id, course_id, role_before, role_after, state_before, state_after, outcome \
         FROM rostersync.audit_log WHERE action = 'change_role' ORDER BY id LIMIT 5\""
    );
    if !keep {
        let _ = writeln!(
            text,
            "  (the demo removes this database when it exits; `rostersync demo --keep` keeps it to query afterwards)"
        );
    }
    out.say(text.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn arrows() {
        assert_eq!(arrow(Some("a"), Some("a")), "a");
        assert_eq!(arrow(Some("a"), Some("b")), "a → b");
        assert_eq!(arrow(None, Some("b")), "— → b");
    }
}
