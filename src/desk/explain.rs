//! `rostersync explain --user ID [--course ID] [--json]`: why one user's enrollments are as they are.
//!
//! It asks the same machinery a cycle uses, limited to that user's courses: the SIS rows (skipped ones with their
//! reason), the role rules naming the user, the live enrollments in Canvas, what a run of those courses would do
//! now (the brake judged as a freshness run would judge it, flap damping included) and the audit history. It
//! changes nothing and takes no lock.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::canvas::client::UserRef;
use crate::domain::decide::{Decision, Snapshot, Unplanned, decide};
use crate::domain::plan::Change;
use crate::domain::sis_row::user_identity;
use crate::domain::{Action, Sym, UserIdKind};
use crate::reconcile::error::CycleError;
use crate::reconcile::report::CycleReport;
use crate::reconcile::{CycleContext, decide_settings, read, record};
use crate::sis;
use crate::store::grace::RemovalGrace;
use crate::store::openedx_learners::OpenEdxLearners;
use crate::store::{DbError, Runs};
use crate::target::Target;

/// How many audit rows the history shows, newest first (`rostersync audit --user` has them all).
const HISTORY: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(
        "neither the SIS nor {target} knows user `{user}` ({why}); check the id, and sis.user_id_kind"
    )]
    Unknown {
        user: String,
        target: &'static str,
        why: String,
    },
    #[error("explain: {0}")]
    Cycle(#[from] CycleError),
    #[error("explain: {0}")]
    Db(#[from] DbError),
}

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub user: String,
    pub canvas_user: Option<CanvasUser>,
    /// The courses looked at: the user's SIS courses and the managed courses Canvas enrols them in.
    pub courses: Vec<String>,
    pub sis_rows: Vec<SisRowView>,
    pub role_rules: Vec<RuleView>,
    pub live: Vec<LiveView>,
    pub would_do: Vec<ChangeView>,
    pub history: Vec<HistoryView>,
}

#[derive(Debug, Serialize)]
pub struct CanvasUser {
    pub id: u64,
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SisRowView {
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    /// Why the row was skipped (never planned, never a reason to remove); None for a usable row.
    pub skipped: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleView {
    pub rule: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize)]
pub struct LiveView {
    pub course_id: String,
    pub section_id: Option<String>,
    pub role: String,
    pub state: String,
    pub canvas_enrollment_id: u64,
    /// In a course some SIS row names: rostersync reconciles it. Otherwise it is left alone.
    pub managed: bool,
}

#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub action: String,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    /// `make`, `held` (the brake), `deferred` (flap damping) or `skipped`.
    pub outcome: &'static str,
    pub why: String,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct HistoryView {
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub run_id: String,
    pub action: String,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub approved_by: Option<String>,
}

/// Builds the explanation of `user` (optionally in one course).
pub async fn explain(
    ctx: &CycleContext,
    user: &str,
    course: Option<&str>,
) -> Result<Explanation, ExplainError> {
    let settings = &ctx.settings;
    let kind = crate::target::identity_kind(settings);
    // Canvas can be asked for a user's enrollments everywhere; Open edX only program by program, so there the
    // programs are those the SIS names for the learner and those rostersync knows them in: where it wrote or saw
    // them (`openedx_learners`) and where their audit history is. A learner the SIS dropped is found there.
    let history = history(ctx, user, course).await?;
    let (canvas_user, listed) = match ctx.target.canvas() {
        Some(canvas) => canvas_enrollments(canvas, user).await?,
        None => (None, Vec::new()),
    };
    let known_courses: BTreeSet<String> = match &ctx.target {
        Target::Canvas(_) => listed
            .iter()
            .filter_map(|e| e.sis_course_id.clone())
            .collect(),
        Target::OpenEdx(_) => OpenEdxLearners::new(ctx.db.clone())
            .programs_of(user)
            .await?
            .into_iter()
            .chain(history.iter().filter_map(|h| h.course_id.clone()))
            .collect(),
    };
    let known_courses: Vec<String> = known_courses.into_iter().collect();
    let (own, managed_live) = sis::courses_of_user(
        &ctx.sis,
        &settings.sis.enrollments_query,
        settings.sis.statement_timeout,
        user,
        kind == UserIdKind::SisLoginId,
        &known_courses,
    )
    .await
    .map_err(CycleError::from)?;
    // An Open edX program named with `--course` is read whatever is on record: it is the one way to find a learner
    // rostersync never wrote or saw.
    let program_named = matches!(ctx.target, Target::OpenEdx(_)) && course.is_some();
    if own.is_empty() && canvas_user.is_none() && managed_live.is_empty() && !program_named {
        let (target, why) = match &ctx.target {
            Target::OpenEdx(_) => (
                "rostersync",
                "the SIS query returns no row for it, and rostersync never wrote or saw that external key in an \
                 Open edX program"
                    .to_owned(),
            ),
            Target::Canvas(_) => (
                "Canvas",
                format!(
                    "the SIS query returns no row for it and Canvas has no user with that {}",
                    kind.canvas_prefix()
                ),
            ),
        };
        return Err(ExplainError::Unknown {
            user: user.to_owned(),
            target,
            why,
        });
    }
    let mut scope: BTreeSet<String> = own.into_iter().chain(managed_live).collect();
    if let Some(c) = course {
        scope.retain(|s| s == c);
        scope.insert(c.to_owned());
    }

    let mut out = Explanation {
        user: user.to_owned(),
        canvas_user: canvas_user.map(|u| CanvasUser {
            id: u.id,
            name: u.name,
        }),
        courses: scope.iter().cloned().collect(),
        sis_rows: Vec::new(),
        role_rules: Vec::new(),
        live: Vec::new(),
        would_do: Vec::new(),
        history,
    };
    // The user's enrollments in courses no SIS row names: rostersync leaves them alone.
    for e in &listed {
        let managed = e.sis_course_id.as_ref().is_some_and(|c| scope.contains(c));
        if !managed && course.is_none_or(|c| e.sis_course_id.as_deref() == Some(c)) {
            out.live.push(LiveView {
                course_id: e
                    .sis_course_id
                    .clone()
                    .unwrap_or_else(|| format!("canvas_course_id:{}", e.course_id)),
                section_id: e.sis_section_id.clone(),
                role: e.role.clone(),
                state: e.enrollment_state.clone(),
                canvas_enrollment_id: e.id,
                managed: false,
            });
        }
    }
    if scope.is_empty() {
        return Ok(out);
    }

    let runs = Runs::new(ctx.db.clone());
    let mut report = CycleReport::new("explain".into(), true);
    let snap = read::read_snapshot(ctx, Some(&scope), &mut report).await?;
    let decision = decide(
        &snap,
        &decide_settings(
            settings,
            runs.open_trip().await?,
            Some(runs.scoped_base().await?),
        ),
    );
    let Some(me) = snap.ids.get(&user_identity(user, kind)) else {
        return Ok(out);
    };
    describe(ctx, &snap, &decision, me, user, &mut out).await?;
    Ok(out)
}

/// The Canvas user with this SIS id and their enrollments, in every course.
async fn canvas_enrollments(
    canvas: &crate::canvas::CanvasClient,
    user: &str,
) -> Result<
    (
        Option<crate::canvas::model::User>,
        Vec<crate::canvas::model::Enrollment>,
    ),
    CycleError,
> {
    let canvas_user = canvas
        .get_user(UserRef::Sis(user))
        .await
        .map_err(|source| CycleError::Canvas {
            doing: "looking the user up in Canvas: ".into(),
            source,
        })?;
    let listed = match &canvas_user {
        Some(u) => canvas
            .list_user_enrollments(
                UserRef::Canvas(u.id),
                &[
                    "active",
                    "invited",
                    "creation_pending",
                    "inactive",
                    "completed",
                ],
            )
            .await
            .map_err(|source| CycleError::Canvas {
                doing: "listing the user's enrollments: ".into(),
                source,
            })?,
        None => Vec::new(),
    };
    Ok((canvas_user, listed))
}

async fn describe(
    ctx: &CycleContext,
    snap: &Snapshot,
    decision: &Decision,
    me: Sym,
    raw_user: &str,
    out: &mut Explanation,
) -> Result<(), ExplainError> {
    let (ids, roles) = (&snap.ids, &snap.roles);
    for d in snap.desired.iter().filter(|d| d.user == me) {
        out.sis_rows.push(SisRowView {
            course_id: Some(ids.resolve(d.course).to_owned()),
            section_id: record::section_text(ids, d.section),
            role: Some(roles.name(d.role)),
            status: Some(
                roles
                    .state_name(d.section, d.state.canvas_state())
                    .to_owned(),
            ),
            skipped: None,
        });
    }
    for s in &snap.skipped {
        if s.skip.user == Some(me) || s.row.user_id.as_deref() == Some(raw_user) {
            out.sis_rows.push(SisRowView {
                course_id: s.row.course_id.clone(),
                section_id: s.row.section_id.clone(),
                role: s.row.role.clone(),
                status: s.row.status.clone(),
                skipped: Some(s.skip.reason.to_string()),
            });
        }
    }
    for rule in snap.rules.iter().filter(|r| r.users.contains(&me)) {
        out.role_rules.push(RuleView {
            rule: rule.name.clone(),
            from: roles.name(rule.from),
            to: roles.name(rule.to),
        });
    }
    for l in snap.live.iter().filter(|l| l.user == Some(me)) {
        out.live.push(LiveView {
            course_id: ids.resolve(l.course).to_owned(),
            section_id: record::section_text(ids, l.section),
            role: roles.name(l.role),
            state: roles.state_name(l.section, l.state).to_owned(),
            canvas_enrollment_id: l.id,
            managed: true,
        });
    }

    // What a run of these courses would do now.
    let mine: Vec<&Change> = decision
        .plan
        .changes
        .iter()
        .filter(|c| c.user == Some(me) || c.live.is_some_and(|l| l.user == Some(me)))
        .collect();
    let grace = ctx.settings.reconcile.removal_grace_cycles;
    let keys: Vec<String> = mine.iter().filter_map(|c| c.damping_key()).collect();
    let decided = if grace > 1 && !keys.is_empty() {
        RemovalGrace::new(ctx.db.clone()).cycles(&keys).await?
    } else {
        Default::default()
    };
    let brake = decision.brake.reason().unwrap_or_default();
    for c in mine {
        let row = record::change_row(c, ids, roles);
        let mut why = why(c, ctx.settings.reconcile.removal.as_str(), &out.role_rules);
        let outcome = if decision.is_held(c) {
            let _ = write!(why, "; held by the brake: {brake}");
            "held"
        } else if let Some(key) = c.damping_key().filter(|_| grace > 1) {
            let cycles = decided.get(&key).copied().unwrap_or(0) + 1;
            if cycles < grace {
                let _ = write!(
                    why,
                    "; deferred: {cycles} of {grace} cycles (reconcile.removal_grace_cycles)"
                );
                "deferred"
            } else {
                "make"
            }
        } else {
            "make"
        };
        out.would_do.push(ChangeView {
            action: row.action.to_owned(),
            course_id: row.course_id,
            section_id: row.section_id,
            role_before: row.role_before,
            role_after: row.role_after,
            state_before: row.state_before,
            state_after: row.state_after,
            outcome,
            why,
        });
    }
    for u in &decision.unplanned {
        let d = match u {
            Unplanned::CourseNotFound(d)
            | Unplanned::UserNotFound(d)
            | Unplanned::SectionNotFound(d)
            | Unplanned::RuleConflict(d, _) => d,
            Unplanned::SkippedRow(_) => continue,
        };
        if d.user != me {
            continue;
        }
        let row = record::unplanned_row(u, ids, roles);
        out.would_do.push(ChangeView {
            action: row.action.to_owned(),
            course_id: row.course_id,
            section_id: row.section_id,
            role_before: row.role_before,
            role_after: row.role_after,
            state_before: row.state_before,
            state_after: row.state_after,
            outcome: "skipped",
            why: row.error.unwrap_or_default(),
        });
    }
    Ok(())
}

/// Why the plan has this change, in the words of the decision's rules.
fn why(change: &Change, removal: &str, rules: &[RuleView]) -> String {
    let ruled = match rules.first() {
        Some(r) => format!(" (role rule `{}`: {} → {})", r.rule, r.from, r.to),
        None => String::new(),
    };
    match change.action {
        Action::Enroll => {
            format!("a SIS row lists this enrollment and Canvas does not have it{ruled}")
        }
        Action::Remove => format!(
            "Canvas has this enrollment in a managed course and no SIS row lists it (reconcile.removal = {removal})"
        ),
        Action::ChangeRole => {
            format!("the SIS row asks for another role than Canvas has{ruled}")
        }
        Action::ChangeState => {
            "the SIS row asks for another state than Canvas has (or the SIS no longer lists it and reconcile.removal \
             says how it ends)"
                .into()
        }
    }
}

async fn history(
    ctx: &CycleContext,
    user: &str,
    course: Option<&str>,
) -> Result<Vec<HistoryView>, DbError> {
    sqlx::query_as(
        "SELECT occurred_at, run_id, action, course_id, section_id, role_before, role_after, state_before, \
                state_after, outcome, error, approved_by \
         FROM rostersync.audit_log \
         WHERE user_id = ANY($1) AND ($2::text IS NULL OR course_id = $2) AND NOT dry_run \
         ORDER BY occurred_at DESC, id DESC LIMIT $3",
    )
    .bind(crate::desk::audit::spellings(
        user,
        crate::target::identity_kind(&ctx.settings),
    ))
    .bind(course)
    .bind(HISTORY)
    .fetch_all(&ctx.db)
    .await
    .map_err(DbError::query("reading the user's audit history"))
}

/// The explanation as a person reads it.
pub fn render(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = match &e.canvas_user {
        Some(u) => writeln!(
            s,
            "User {} — Canvas user {}{}",
            e.user,
            u.id,
            u.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        None => writeln!(s, "User {} — not in Canvas", e.user),
    };
    let _ = writeln!(s, "\nSIS rows ({})", e.sis_rows.len());
    for r in &e.sis_rows {
        let _ = write!(
            s,
            "  {:<14} {:<14} {:<22} {}",
            r.course_id.as_deref().unwrap_or("(no course)"),
            r.section_id.as_deref().unwrap_or("(default)"),
            r.role.as_deref().unwrap_or("(no role)"),
            r.status.as_deref().unwrap_or("active")
        );
        match &r.skipped {
            Some(why) => {
                let _ = writeln!(s, "   SKIPPED: {why}");
            }
            None => s.push('\n'),
        }
    }
    if !e.role_rules.is_empty() {
        let _ = writeln!(s, "\nRole rules that apply");
        for r in &e.role_rules {
            let _ = writeln!(s, "  {}: {} → {}", r.rule, r.from, r.to);
        }
    }
    let _ = writeln!(s, "\nCanvas enrollments ({})", e.live.len());
    for l in &e.live {
        let _ = writeln!(
            s,
            "  {:<14} {:<14} {:<22} {:<10} enrollment {}{}",
            l.course_id,
            l.section_id.as_deref().unwrap_or("(default)"),
            l.role,
            l.state,
            l.canvas_enrollment_id,
            if l.managed {
                ""
            } else {
                "   not managed: no SIS row names this course, left alone"
            }
        );
    }
    let _ = writeln!(s, "\nWhat a cycle would do now");
    if e.would_do.is_empty() {
        let _ = writeln!(s, "  nothing: Canvas matches the SIS for this user");
    }
    for c in &e.would_do {
        let change = match c.action.as_str() {
            "change_role" => format!(
                "{} → {}",
                c.role_before.as_deref().unwrap_or("?"),
                c.role_after.as_deref().unwrap_or("?")
            ),
            "change_state" => format!(
                "{} → {}",
                c.state_before.as_deref().unwrap_or("?"),
                c.state_after.as_deref().unwrap_or("?")
            ),
            _ => c
                .role_after
                .clone()
                .or(c.role_before.clone())
                .unwrap_or_default(),
        };
        let _ = writeln!(
            s,
            "  {:<8} {:<12} {:<14} {}\n           why: {}",
            c.outcome.to_uppercase(),
            c.action,
            c.course_id.as_deref().unwrap_or(""),
            change,
            c.why
        );
    }
    let _ = writeln!(s, "\nHistory (newest first, at most {HISTORY})");
    if e.history.is_empty() {
        let _ = writeln!(s, "  no change recorded for this user");
    }
    for h in &e.history {
        let line = format!(
            "  {}  run {}  {:<12} {:<14} {:<9}{}",
            h.occurred_at.format("%Y-%m-%d %H:%M:%S"),
            h.run_id.get(..8).unwrap_or(&h.run_id),
            h.action,
            h.course_id.as_deref().unwrap_or(""),
            h.outcome,
            h.error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}
