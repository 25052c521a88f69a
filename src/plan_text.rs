//! A run's changes as a person reads them (CONTRACT v2 "Reviewing and applying a plan"): a summary first, then one
//! line per change grouped by action, each line naming its action so that `grep` keeps what it finds readable.
//! A terminal gets a pager when the plan is long; a pipe gets plain lines.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};

use crate::domain::Action;
use crate::reconcile::CycleReport;
use crate::reconcile::report::ChangeRecord;

/// Plans longer than this go through a pager on a terminal.
const PAGE_LINES: usize = 40;

/// The text of a report: the summary line, the brake's verdict, and the changes a person must review (all of a
/// dry run, the held ones of a tripped run).
pub fn render(report: &CycleReport) -> String {
    let mut out = String::new();
    let planned: Vec<String> = report
        .planned
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "run {} {}{} in {:.1} s: planned {}; applied {}, failed {}, skipped {}, held {}; {} {} API calls",
        report.run_id,
        report.status.as_str(),
        if report.dry_run { " (dry run)" } else { "" },
        report.duration_ms as f64 / 1000.0,
        planned.join(", "),
        report.applied,
        report.failed,
        report.skipped,
        report.held,
        system(report),
        report.api_calls
    );
    let excepted = report.details.excepted;
    if excepted > 0 {
        let _ = writeln!(
            out,
            "excepted: {excepted} change{} not planned: exceptions hold those enrollments as they are \
             (rostersync except list)",
            if excepted == 1 { "" } else { "s" }
        );
    }
    if let Some(paused) = &report.details.paused {
        let _ = writeln!(out, "a dry run because rostersync is {paused}");
    }
    if let Some(reason) = &report.safety.reason {
        let _ = writeln!(out, "safety guard tripped: {reason}");
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "error: {error}");
    }
    let shown: Vec<&ChangeRecord> = report
        .changes
        .iter()
        .filter(|c| !matches!(c.outcome, "skipped" | "deferred"))
        .filter(|c| report.dry_run || c.outcome == "held")
        .collect();
    let not_made: Vec<&ChangeRecord> = report
        .changes
        .iter()
        .filter(|c| matches!(c.outcome, "skipped" | "deferred"))
        .collect();
    if !not_made.is_empty() {
        let _ = writeln!(out, "\n{} changes not made:", not_made.len());
        let lines = align(
            &not_made
                .iter()
                .map(|c| columns(c, report))
                .collect::<Vec<_>>(),
        );
        for (c, line) in not_made.iter().zip(lines) {
            let _ = writeln!(
                out,
                "  {} {line}\n      {}",
                symbol_of(c.action),
                c.error.as_deref().unwrap_or(c.outcome)
            );
        }
    }
    if shown.is_empty() {
        return out;
    }
    let what = if report.dry_run {
        "planned"
    } else {
        "held by the brake"
    };
    let _ = writeln!(out, "\n{} changes {what}:", shown.len());
    for action in Action::ALL {
        let n = shown.iter().filter(|c| c.action == action.as_str()).count();
        let _ = writeln!(out, "  {:<13} {n:>7}", action.as_str());
    }
    let lines = align(&shown.iter().map(|c| columns(c, report)).collect::<Vec<_>>());
    for action in Action::ALL {
        let of_action: Vec<&String> = shown
            .iter()
            .zip(&lines)
            .filter(|(c, _)| c.action == action.as_str())
            .map(|(_, line)| line)
            .collect();
        if of_action.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} ({}):", action.as_str(), of_action.len());
        for line in of_action {
            let _ = writeln!(out, "  {} {line}", symbol(action));
        }
    }
    if let Some(undone) = &report.details.undo_of {
        if report.dry_run {
            let _ = writeln!(
                out,
                "\nTo make this undo: rostersync undo {undone} --by \"YOUR NAME\" [--reason TEXT]"
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "\nTo make {} as reviewed: {}rostersync apply {} --by \"YOUR NAME\" [--reason TEXT]",
        if report.dry_run {
            "these changes"
        } else {
            "the held changes"
        },
        if report.details.paused.is_some() {
            "once the pause is over, "
        } else {
            ""
        },
        report.run_id
    );
    out
}

/// Prints `text`, through `$PAGER` (or `less -FRX`) when stdout is a terminal and the text is long.
pub fn print_paged(text: &str) {
    let stdout = std::io::stdout();
    if stdout.is_terminal() && text.lines().count() > PAGE_LINES && page(text).is_ok() {
        return;
    }
    let mut lock = stdout.lock();
    // A closed pipe (`| head`) ends the output; nothing more to say.
    let _ = lock.write_all(text.as_bytes());
}

fn page(text: &str) -> std::io::Result<()> {
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less -FRX".into());
    let mut words = pager.split_whitespace();
    let program = words.next().unwrap_or("less");
    let mut child = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait()?;
    Ok(())
}

fn symbol_of(action: &str) -> &'static str {
    Action::ALL
        .into_iter()
        .find(|a| a.as_str() == action)
        .map_or("  ", symbol)
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Enroll => "+ enroll      ",
        Action::Remove => "- remove      ",
        Action::ChangeRole => "~ change_role ",
        Action::ChangeState => "~ change_state",
    }
}

/// The system the report's target is, in its words.
fn system(report: &CycleReport) -> &'static str {
    match report.details.target {
        "openedx" => "Open edX",
        _ => "Canvas",
    }
}

/// user (name), course, section, role before → after, state before → after. For Open edX the course is the
/// program and a section the course run; the program enrollment itself has none.
fn columns(c: &ChangeRecord, report: &CycleReport) -> [String; 5] {
    let default_place = match report.details.target {
        "openedx" => "(program enrollment)",
        _ => "(default section)",
    };
    let user = match (&c.user_id, &c.user_name) {
        (Some(id), Some(name)) => format!("{id} ({name})"),
        (Some(id), None) => id.clone(),
        (None, _) => "-".into(),
    };
    [
        user,
        c.course_id.clone().unwrap_or_else(|| "-".into()),
        c.section_id.clone().unwrap_or_else(|| default_place.into()),
        arrow(c.role_before.as_deref(), c.role_after.as_deref()),
        arrow(c.state_before.as_deref(), c.state_after.as_deref()),
    ]
}

/// Rows of five columns (user, course, section, role, state), each column as wide as its widest cell.
pub fn align(rows: &[[String; 5]]) -> Vec<String> {
    let mut width = [0usize; 5];
    for cols in rows {
        for (w, c) in width.iter_mut().zip(cols) {
            *w = (*w).max(c.chars().count());
        }
    }
    rows.iter()
        .map(|cols| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                cols[0],
                cols[1],
                cols[2],
                cols[3],
                cols[4],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3],
            )
        })
        .collect()
}

pub fn arrow(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a == b => b.to_owned(),
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (None, Some(a)) => format!("→ {a}"),
        (Some(b), None) => format!("{b} →"),
        (None, None) => String::new(),
    }
}
