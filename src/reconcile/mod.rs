//! One reconcile cycle: read the SIS and Canvas → plan → guard → apply → audit, returning a [`CycleReport`].
//!
//! The cycle is split in two so that a caller can look at the plan before it is applied (the demo prints it):
//! [`prepare`] does every read and decides; [`PreparedCycle::apply`] writes. [`run_cycle`] does both.
//! Reads are all-or-nothing: any error while reading ends the cycle before the first write, because a partial
//! picture of Canvas or the SIS is exactly how a sync script mass-removes enrollments.

pub mod apply;
pub mod bulk;
pub mod provisioning;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::canvas::{CanvasClient, CanvasError, model::Enrollment};
use crate::config::{ReadPath, Settings, UserIdKind, WritePath};
use crate::domain::guard::{self, GuardDecision, GuardLimits};
use crate::domain::plan::{self, Change, Plan, PlanInput};
use crate::domain::roles::{RoleBook, RoleInfo};
use crate::domain::rules::{ResolvedRule, apply_role_rules};
use crate::domain::sis_row::{SkippedRow, parse_row, user_identity};
use crate::domain::{
    Action, DesiredEnrollment, EnrollmentState, Ids, LiveEnrollment, RoleId, SectionKey, Sym,
};
use crate::metrics::{Metrics, ReasonLabels};
use crate::sis;
use crate::store::audit::OutcomeUpdate;
use crate::store::{AuditLog, AuditOutcome, AuditRow, RunStatus, Runs};

pub use apply::ChangeResult;
pub use report::{CycleReport, Safety};

/// What a cycle needs: settings, the Canvas client, both databases, metrics.
#[derive(Clone)]
pub struct CycleContext {
    pub settings: Arc<Settings>,
    pub canvas: Arc<CanvasClient>,
    pub db: PgPool,
    pub sis: PgPool,
    pub metrics: Arc<Metrics>,
}

/// Called as changes finish: (done, total).
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Clone, Default)]
pub struct CycleOptions {
    pub dry_run: bool,
    /// Cancelled on shutdown: the changes in flight finish, the rest are recorded as not attempted.
    pub cancel: CancellationToken,
    pub progress: Option<ProgressFn>,
    /// Whether this process holds the leader lock (only then are runs left `running` by others closed).
    pub holds_lock: bool,
    /// The documented override (`reconcile --accept-removals`): apply removals even though the guard trips.
    pub accept_removals: bool,
}

/// The result of the read-and-decide half of a cycle.
pub struct PreparedCycle {
    pub ids: Ids,
    pub roles: RoleBook,
    pub plan: Plan,
    pub guard: GuardDecision,
    /// Rows recorded without a Canvas call: skipped SIS rows, rows of courses Canvas does not have, rule conflicts.
    pub preliminary: Vec<AuditRow>,
    pub report: CycleReport,
    started: Instant,
}

/// A cycle that could not get as far as a plan, and whether Canvas itself was the problem (token rejected,
/// unreachable, failing): that makes the daemon not ready until a cycle gets through.
struct Fatal {
    message: String,
    canvas_down: bool,
}

impl Fatal {
    fn new(message: impl Into<String>) -> Self {
        Fatal {
            message: message.into(),
            canvas_down: false,
        }
    }
}

/// Errors that say Canvas cannot be worked with right now, as opposed to a problem with one object.
fn canvas_down(e: &CanvasError) -> bool {
    matches!(
        e,
        CanvasError::Unauthorized { .. }
            | CanvasError::Unavailable
            | CanvasError::Token(_)
            | CanvasError::Network { .. }
            | CanvasError::Timeout { .. }
            | CanvasError::Server { .. }
            | CanvasError::Throttled { .. }
            | CanvasError::Redirect { .. }
    )
}

impl From<CanvasError> for Fatal {
    fn from(e: CanvasError) -> Self {
        Fatal {
            canvas_down: canvas_down(&e),
            message: e.to_string(),
        }
    }
}

impl From<crate::store::DbError> for Fatal {
    fn from(e: crate::store::DbError) -> Self {
        Fatal::new(e.to_string())
    }
}

impl From<sis::SisError> for Fatal {
    fn from(e: sis::SisError) -> Self {
        Fatal::new(e.to_string())
    }
}

fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Runs one whole cycle.
pub async fn run_cycle(ctx: &CycleContext, opts: &CycleOptions) -> CycleReport {
    match prepare(ctx, opts).await {
        Ok(prepared) => prepared.apply(ctx, opts).await,
        Err(report) => report,
    }
}

/// Reads both sides and decides. On a fatal error the run is closed as failed and its report returned as `Err`.
pub async fn prepare(
    ctx: &CycleContext,
    opts: &CycleOptions,
) -> Result<PreparedCycle, CycleReport> {
    let started = Instant::now();
    let dry_run = opts.dry_run || ctx.settings.reconcile.dry_run;
    let run_id = new_run_id();
    let span = info_span!("cycle", run.id = %run_id, dry_run);
    let mut report = CycleReport::new(run_id.clone(), dry_run);
    let runs = Runs::new(ctx.db.clone());
    ctx.canvas.begin_cycle();
    if let Err(e) = runs.start(&run_id, dry_run).await {
        report.status = RunStatus::Failed;
        report.error = Some(e.to_string());
        finish_metrics(ctx, &report, started);
        error!(parent: &span, error = %e, "cycle failed: cannot open the run record");
        return Err(report);
    }
    match read_and_plan(ctx, opts, &runs, &mut report)
        .instrument(span.clone())
        .await
    {
        Ok((ids, roles, plan, guard, preliminary)) => Ok(PreparedCycle {
            ids,
            roles,
            plan,
            guard,
            preliminary,
            report,
            started,
        }),
        Err(Fatal {
            message,
            canvas_down,
        }) => {
            report.status = RunStatus::Failed;
            report.details.canvas_unavailable = canvas_down;
            report.error = Some(message.clone());
            report.details.requests = ctx.canvas.stats();
            report.api_calls = report.details.requests.requests;
            report.duration_ms = started.elapsed().as_millis() as u64;
            error!(parent: &span, error = %message, "cycle failed before any change was made");
            close_run(&runs, &report).await;
            finish_metrics(ctx, &report, started);
            Err(report)
        }
    }
}

type Decided = (Ids, RoleBook, Plan, GuardDecision, Vec<AuditRow>);

async fn read_and_plan(
    ctx: &CycleContext,
    opts: &CycleOptions,
    runs: &Runs,
    report: &mut CycleReport,
) -> Result<Decided, Fatal> {
    let settings = &ctx.settings;
    let kind = settings.sis.user_id_kind;
    if opts.holds_lock {
        let interrupted = runs.close_interrupted(&report.run_id).await?;
        for run in &interrupted {
            warn!(
                interrupted.run_id = %run.run_id,
                unresolved = run.unresolved_planned,
                "an earlier run was interrupted with changes whose outcome was never recorded (audit rows left \
                 `planned`); they may or may not have reached Canvas, and this cycle's plan starts from Canvas as it is now"
            );
        }
        ctx.metrics
            .unresolved_planned
            .set(interrupted.iter().map(|r| r.unresolved_planned).sum());
        report.details.interrupted_runs = interrupted;
    }

    let read_started = Instant::now();
    // Roles first: SIS rows name roles, and a rule naming a missing role is fatal before anything is read.
    let roles = ctx.canvas.list_roles(&settings.canvas.account_id).await?;
    let mut roles = RoleBook::new(roles.into_iter().map(RoleInfo::from));
    let mut ids = Ids::new();
    let mut rules = Vec::with_capacity(settings.role_rules.len());
    for rule in &settings.role_rules {
        let resolve = |spec: &str, key: &str| {
            roles
                .resolve(spec)
                .map_err(|e| Fatal::new(format!("role rule `{}`: {key}: {e}", rule.name)))
        };
        let from = resolve(&rule.from_role, "from_role")?;
        let to = resolve(&rule.to_role, "to_role")?;
        let users = sis::read_rule_users(&ctx.sis, &rule.name, &rule.users_query).await?;
        info!(rule = %rule.name, users = users.len(), "role rule users read");
        rules.push(ResolvedRule {
            name: rule.name.clone(),
            users: users
                .iter()
                .map(|u| ids.intern(&user_identity(u, kind)))
                .collect(),
            from,
            to,
        });
    }

    let edges: Vec<(String, RoleId, RoleId)> = rules
        .iter()
        .map(|r| (r.name.clone(), r.from, r.to))
        .collect();
    if let Some(names) = crate::domain::rules::role_rule_cycle(&edges) {
        return Err(Fatal::new(format!(
            "role rules {} lead back to the role they start from; no order of applying them ends. Fix the rules.",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }

    // SIS rows, streamed and parsed one at a time.
    let mut desired: Vec<DesiredEnrollment> = Vec::new();
    let mut skipped_rows: Vec<(crate::domain::sis_row::SisRow, SkippedRow)> = Vec::new();
    let sis_rows =
        sis::read_enrollments(
            &ctx.sis,
            &settings.sis.enrollments_query,
            |row| match parse_row(&row, kind, &roles, &mut ids) {
                Ok(d) => desired.push(d),
                Err(skip) => skipped_rows.push((row, skip)),
            },
        )
        .await?;
    report.details.sis_rows = sis_rows;
    report.details.sis_rows_skipped = skipped_rows.len() as u64;
    let usable_rows = desired.len();
    info!(
        sis.rows = sis_rows,
        sis.skipped = skipped_rows.len(),
        "SIS rows read"
    );
    for (_, skip) in &skipped_rows {
        ctx.metrics
            .skipped_rows
            .get_or_create(&ReasonLabels {
                reason: skip_class(&skip.reason).to_owned(),
            })
            .inc();
    }

    // Managed courses: those with at least one usable row. Their live enrollments, every compared state, one
    // listing per course, several courses at once.
    let mut managed: Vec<Sym> = desired
        .iter()
        .map(|d| d.course)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    managed.sort();
    report.details.managed_courses = managed.len() as u64;
    let use_report = match settings.canvas.read_path {
        ReadPath::Report => true,
        ReadPath::Courses => false,
        ReadPath::Auto => {
            managed.len() as u64 >= settings.canvas.report_min_courses
                && kind == UserIdKind::SisUserId
        }
    };
    let (live, missing_courses) = if use_report {
        if kind != UserIdKind::SisUserId {
            return Err(Fatal::new(
                "canvas.read_path = report needs sis.user_id_kind = sis_user_id: the provisioning report has no login ids",
            ));
        }
        report.details.read_path = "report";
        let csv = ctx
            .canvas
            .provisioning_enrollments_csv(
                &settings.canvas.account_id,
                settings.canvas.report_timeout,
            )
            .await?;
        let managed_set: HashSet<Sym> = managed.iter().copied().collect();
        let live = provisioning::parse_enrollments_csv(&csv, &managed_set, &mut ids, &mut roles)
            .map_err(Fatal::new)?;
        info!(
            rows = live.len(),
            bytes = csv.len(),
            "live enrollments read from the provisioning report"
        );
        (live, HashSet::new())
    } else {
        report.details.read_path = "courses";
        read_live(ctx, &managed, &mut ids, &mut roles, kind).await?
    };
    report.details.read_ms = read_started.elapsed().as_millis() as u64;
    report.details.live_enrollments = live.len() as u64;
    report.details.courses_not_found = missing_courses.len() as u64;

    let mut preliminary: Vec<AuditRow> = skipped_rows
        .iter()
        .map(|(row, skip)| AuditRow {
            action: Action::Enroll.as_str(),
            user_id: row.user_id.clone(),
            course_id: row.course_id.clone(),
            section_id: row.section_id.clone(),
            role_after: row.role.clone(),
            state_after: row.status.clone(),
            outcome: Some(AuditOutcome::Skipped),
            error: Some(format!("SIS row skipped: {}", skip.reason)),
            ..AuditRow::default()
        })
        .collect();
    let mut hold: HashSet<(Sym, Sym)> = skipped_rows
        .iter()
        .filter_map(|(_, s)| Some((s.user?, s.course?)))
        .collect();

    // Rows of courses Canvas does not have: failed, and out of the plan (they never count towards removals).
    if !missing_courses.is_empty() {
        desired.retain(|d| {
            if missing_courses.contains(&d.course) {
                preliminary.push(AuditRow {
                    action: Action::Enroll.as_str(),
                    user_id: Some(ids.resolve(d.user).to_owned()),
                    course_id: Some(ids.resolve(d.course).to_owned()),
                    section_id: section_text(&ids, d.section),
                    role_after: Some(roles.name(d.role)),
                    state_after: Some(d.state.canvas_state().as_str().to_owned()),
                    outcome: Some(AuditOutcome::Failed),
                    error: Some("course not found in Canvas (404)".into()),
                    ..AuditRow::default()
                });
                false
            } else {
                true
            }
        });
    }

    let plan_started = Instant::now();
    let outcome = apply_role_rules(desired, &live, &rules);
    report.details.role_rule_rewrites = (outcome.rewritten_sis_rows + outcome.adopted_live) as u64;
    report.details.role_rule_conflicts = outcome.conflicts.len() as u64;
    for c in &outcome.conflicts {
        warn!(
            user = ids.resolve(c.user),
            rule.first = %c.first_rule,
            rule.second = %c.second_rule,
            "role rules disagree for this user ({} → {} or {}); their enrollments with that role are left as they are",
            roles.name(c.from),
            roles.name(c.first_to),
            roles.name(c.second_to)
        );
    }
    for (d, c) in &outcome.skipped {
        preliminary.push(AuditRow {
            action: Action::ChangeRole.as_str(),
            user_id: Some(ids.resolve(d.user).to_owned()),
            course_id: Some(ids.resolve(d.course).to_owned()),
            section_id: section_text(&ids, d.section),
            role_before: Some(roles.name(d.role)),
            outcome: Some(AuditOutcome::Skipped),
            error: Some(format!(
                "role rules `{}` and `{}` disagree for this user ({} → {} or {}); nothing guessed",
                c.first_rule,
                c.second_rule,
                roles.name(c.from),
                roles.name(c.first_to),
                roles.name(c.second_to)
            )),
            ..AuditRow::default()
        });
    }
    hold.extend(outcome.hold.iter().copied());
    let (desired, duplicates) = plan::resolve_duplicates(outcome.desired);
    report.details.duplicate_rows_resolved = duplicates.len() as u64;
    if !duplicates.is_empty() {
        let first = &duplicates[0];
        warn!(
            count = duplicates.len(),
            example.user = ids.resolve(first.key.user),
            example.course = ids.resolve(first.key.course),
            kept = ?first.kept,
            dropped = ?first.dropped,
            "SIS rows name the same enrollment with different statuses; the most present status wins \
             (active > inactive > completed > deleted)"
        );
    }

    let plan = plan::plan(&PlanInput {
        desired: &desired,
        live: &live,
        removal: settings.reconcile.removal,
        manage_non_sis_users: settings.sis.manage_non_sis_users,
        hold: &hold,
    });
    let mut live_per_course: HashMap<Sym, u64> = managed
        .iter()
        .filter(|c| !missing_courses.contains(c))
        .map(|c| (*c, 0))
        .collect();
    for l in &live {
        *live_per_course.entry(l.course).or_default() += 1;
    }
    let decision = guard::evaluate(
        &plan,
        usable_rows,
        &live_per_course,
        &GuardLimits {
            max_removals: settings.reconcile.max_removals,
            max_removal_ratio: settings.reconcile.max_removal_ratio,
            max_course_removal_ratio: settings.reconcile.max_course_removal_ratio,
        },
        |c| ids.resolve(c).to_owned(),
    );
    report.details.plan_ms = plan_started.elapsed().as_millis() as u64;
    for c in &plan.changes {
        if let Some(n) = report.planned.get_mut(c.action.as_str()) {
            *n += 1;
        }
    }
    let mut decision = decision;
    if let Some(reason) = decision.reason().filter(|_| opts.accept_removals) {
        warn!(
            removals = plan.count(Action::Remove),
            "safety guard overridden by --accept-removals, removals will be applied: {reason}"
        );
        report.safety.reason = Some(format!("overridden by --accept-removals: {reason}"));
        decision = GuardDecision::default();
    }
    if let Some(reason) = decision.reason() {
        report.safety = Safety {
            tripped: true,
            reason: Some(reason.clone()),
        };
        error!(
            removals = plan.count(Action::Remove),
            live = live.len(),
            max_removals = settings.reconcile.max_removals,
            max_removal_ratio = settings.reconcile.max_removal_ratio,
            "safety guard tripped: {reason}"
        );
    }
    info!(
        enroll = plan.count(Action::Enroll),
        remove = plan.count(Action::Remove),
        change_role = plan.count(Action::ChangeRole),
        change_state = plan.count(Action::ChangeState),
        live = live.len(),
        courses = managed.len(),
        plan_ms = report.details.plan_ms,
        "plan computed"
    );
    Ok((ids, roles, plan, decision, preliminary))
}

/// Lists every managed course's enrollments; returns them and the courses Canvas does not have.
async fn read_live(
    ctx: &CycleContext,
    managed: &[Sym],
    ids: &mut Ids,
    roles: &mut RoleBook,
    kind: UserIdKind,
) -> Result<(Vec<LiveEnrollment>, HashSet<Sym>), Fatal> {
    let states: Vec<&str> = EnrollmentState::LISTED.iter().map(|s| s.as_str()).collect();
    let names: Vec<(Sym, String)> = managed
        .iter()
        .map(|c| (*c, ids.resolve(*c).to_owned()))
        .collect();
    let concurrency = (ctx.settings.limits.max_in_flight as usize * 2).max(2);
    let canvas = &ctx.canvas;
    let states = &states;
    let mut listings = futures::stream::iter(names)
        .map(|(sym, name)| async move {
            let result = canvas.list_course_enrollments(&name, states).await;
            (sym, name, result)
        })
        .buffer_unordered(concurrency);
    let mut live = Vec::new();
    let mut missing = HashSet::new();
    while let Some((course, name, result)) = listings.next().await {
        match result {
            Ok(Some(rows)) => {
                live.reserve(rows.len());
                for e in &rows {
                    live.push(to_live(e, course, kind, ids, roles));
                }
            }
            Ok(None) => {
                warn!(course.sis_id = %name, "course not found in Canvas; its SIS rows are recorded as failed");
                missing.insert(course);
            }
            Err(e) => {
                return Err(Fatal {
                    canvas_down: canvas_down(&e),
                    message: format!(
                        "reading the enrollments of course `{name}` failed, so no change is made this cycle: {e}"
                    ),
                });
            }
        }
    }
    Ok((live, missing))
}

fn to_live(
    e: &Enrollment,
    course: Sym,
    kind: UserIdKind,
    ids: &mut Ids,
    roles: &mut RoleBook,
) -> LiveEnrollment {
    let identity = match kind {
        UserIdKind::SisUserId => e
            .user
            .as_ref()
            .and_then(|u| u.sis_user_id.clone())
            .or_else(|| e.sis_user_id.clone()),
        UserIdKind::SisLoginId => e.user.as_ref().and_then(|u| u.login_id.clone()),
    }
    .filter(|s| !s.is_empty());
    let section = match e.sis_section_id.as_deref() {
        Some(s) if !s.is_empty() => SectionKey::Sis(ids.intern(s)),
        _ => SectionKey::Default,
    };
    roles.learn(RoleId(e.role_id), &e.role, &e.enrollment_type);
    LiveEnrollment {
        id: e.id,
        user: identity.map(|u| ids.intern(&user_identity(&u, kind))),
        canvas_user_id: e.user_id,
        course,
        canvas_course_id: e.course_id,
        section,
        canvas_section_id: e.course_section_id,
        role: RoleId(e.role_id),
        state: EnrollmentState::parse(&e.enrollment_state),
        associated_user_id: e.associated_user_id,
    }
}

fn section_text(ids: &Ids, section: SectionKey) -> Option<String> {
    match section {
        SectionKey::Sis(s) => Some(ids.resolve(s).to_owned()),
        SectionKey::Default => None,
    }
}

/// A bounded label for a skip reason.
fn skip_class(reason: &str) -> &'static str {
    if reason.starts_with("user_id") {
        "bad_user_id"
    } else if reason.starts_with("course_id") {
        "bad_course_id"
    } else if reason.starts_with("section_id") {
        "bad_section_id"
    } else if reason.starts_with("status") {
        "bad_status"
    } else if reason.contains("role") {
        "bad_role"
    } else {
        "other"
    }
}

/// The audit row of a planned change.
pub fn audit_row(change: &Change, ids: &Ids, roles: &RoleBook) -> AuditRow {
    let user_id = match (change.user, change.live) {
        (Some(u), _) => Some(ids.resolve(u).to_owned()),
        (None, Some(l)) => Some(format!("canvas_user_id:{}", l.canvas_user_id)),
        (None, None) => None,
    };
    AuditRow {
        action: change.action.as_str(),
        user_id,
        course_id: Some(ids.resolve(change.course).to_owned()),
        section_id: section_text(ids, change.section),
        role_before: change.role_before.map(|r| roles.name(r)),
        role_after: change.role_after.map(|r| roles.name(r)),
        state_before: change.state_before.map(|s| s.as_str().to_owned()),
        state_after: change.state_after.map(|s| s.as_str().to_owned()),
        canvas_enrollment_id: change.live.map(|l| l.id as i64),
        outcome: None,
        error: None,
    }
}

impl PreparedCycle {
    /// Applies the plan (unless dry run), audits every change, closes the run and returns the report.
    pub async fn apply(self, ctx: &CycleContext, opts: &CycleOptions) -> CycleReport {
        let PreparedCycle {
            ids,
            roles,
            plan,
            guard,
            preliminary,
            mut report,
            started,
        } = self;
        let span = info_span!("cycle", run.id = %report.run_id, dry_run = report.dry_run);
        let runs = Runs::new(ctx.db.clone());
        let audit = AuditLog::new(ctx.db.clone());
        let result = apply_plan(
            ctx,
            opts,
            &ids,
            &roles,
            &plan,
            &guard,
            preliminary,
            &audit,
            &mut report,
        )
        .instrument(span.clone())
        .await;
        report.details.requests = ctx.canvas.stats();
        report.api_calls = report.details.requests.requests;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.status = match &result {
            Err(message) => {
                report.error = Some(message.clone());
                RunStatus::Failed
            }
            Ok(()) if report.safety.tripped => RunStatus::SafetyTripped,
            Ok(()) if report.failed > 0 => RunStatus::Partial,
            Ok(()) => RunStatus::Succeeded,
        };
        close_run(&runs, &report).await;
        finish_metrics(ctx, &report, started);
        let _enter = span.enter();
        info!(
            status = report.status.as_str(),
            applied = report.applied,
            failed = report.failed,
            skipped = report.skipped,
            api_calls = report.api_calls,
            retries = report.details.requests.retries,
            throttled = report.details.requests.throttled,
            duration_ms = report.duration_ms,
            "cycle finished"
        );
        report
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_plan(
    ctx: &CycleContext,
    opts: &CycleOptions,
    ids: &Ids,
    roles: &RoleBook,
    plan: &Plan,
    guard: &GuardDecision,
    preliminary: Vec<AuditRow>,
    audit: &AuditLog,
    report: &mut CycleReport,
) -> Result<(), String> {
    let dry_run = report.dry_run;
    let run_id = report.run_id.clone();
    let metrics = &ctx.metrics;

    // Rows that need no Canvas call, and removals the guard holds back.
    let mut settled = preliminary;
    let mut to_apply: Vec<Change> = Vec::with_capacity(plan.len());
    let guard_reason = guard.reason().unwrap_or_default();
    for c in &plan.changes {
        if c.action == Action::Remove && !guard.allows_removal_in(c.course) {
            settled.push(AuditRow {
                outcome: Some(AuditOutcome::Skipped),
                error: Some(format!("held by the safety guard: {guard_reason}")),
                ..audit_row(c, ids, roles)
            });
            metrics.count_change(c.action.as_str(), "skipped");
        } else {
            to_apply.push(*c);
        }
    }
    for row in &settled {
        match row.outcome {
            Some(AuditOutcome::Failed) => report.failed += 1,
            Some(AuditOutcome::Skipped) => report.skipped += 1,
            _ => {}
        }
    }
    audit
        .insert(&run_id, dry_run, &settled)
        .await
        .map_err(|e| format!("cannot write the audit log, so no change is made: {e}"))?;

    if dry_run {
        let rows: Vec<AuditRow> = to_apply.iter().map(|c| audit_row(c, ids, roles)).collect();
        audit
            .insert(&run_id, true, &rows)
            .await
            .map_err(|e| format!("cannot write the audit log: {e}"))?;
        info!(
            changes = rows.len(),
            "dry run: changes planned and audited, none applied"
        );
        return Ok(());
    }
    if to_apply.is_empty() {
        return Ok(());
    }

    // Intent first: every change has its `planned` row before its Canvas call.
    let rows: Vec<AuditRow> = to_apply.iter().map(|c| audit_row(c, ids, roles)).collect();
    let audit_ids = audit
        .insert(&run_id, false, &rows)
        .await
        .map_err(|e| format!("cannot write the audit log, so no change is made: {e}"))?;
    drop(rows);

    let total = to_apply.len() as u64;
    let apply_started = Instant::now();
    let removal = ctx.settings.reconcile.removal;
    let cancel = &opts.cancel;

    // The bulk path takes what a SIS import can name unambiguously, when there is enough of it.
    let mut jobs: Vec<(Change, i64)> = to_apply.into_iter().zip(audit_ids).collect();
    let mut bulk: Vec<(Change, Vec<bulk::BulkRow>)> = Vec::new();
    let mut bulk_ids: Vec<i64> = Vec::new();
    if ctx.settings.reconcile.write_path != WritePath::Api && !cancel.is_cancelled() {
        let mut api = Vec::with_capacity(jobs.len());
        for (change, id) in jobs {
            match bulk::rows_for(&change, ids, removal) {
                Some(rows) => {
                    bulk.push((change, rows));
                    bulk_ids.push(id);
                }
                None => api.push((change, id)),
            }
        }
        let enough = ctx.settings.reconcile.write_path == WritePath::SisImport
            || bulk.len() as u64 >= ctx.settings.reconcile.bulk_min_changes;
        if !enough {
            api.extend(bulk.drain(..).map(|(c, _)| c).zip(bulk_ids.drain(..)));
        }
        jobs = api;
    }
    report.details.write_path = match (bulk.is_empty(), jobs.is_empty()) {
        (false, false) => "api+sis_import",
        (false, true) => "sis_import",
        _ => "api",
    };
    let bulk_results: Vec<(Change, i64, ChangeResult)> = if bulk.is_empty() {
        Vec::new()
    } else {
        let results = bulk::apply_bulk(
            &ctx.canvas,
            &ctx.settings.canvas.account_id,
            ctx.settings.canvas.report_timeout,
            &bulk,
        )
        .await;
        bulk.into_iter()
            .zip(bulk_ids)
            .zip(results)
            .map(|(((change, _), id), result)| (change, id, result))
            .collect()
    };

    let stop = AtomicBool::new(false);
    let stop_reason: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    if let Some(e) = bulk_results
        .iter()
        .find_map(|(_, _, r)| r.ends_cycle.as_ref())
    {
        stop.store(true, Ordering::SeqCst);
        if let Ok(mut r) = stop_reason.lock() {
            *r = Some(format!("the cycle stopped after: {e}"));
        }
    }
    let canvas = &ctx.canvas;
    let concurrency = ctx.settings.limits.max_in_flight as usize;
    let (stop_ref, stop_reason_ref) = (&stop, &stop_reason);
    let api_results = futures::stream::iter(jobs)
        .map(|(change, audit_id)| async move {
            if cancel.is_cancelled() {
                return (
                    change,
                    audit_id,
                    ChangeResult::skipped(
                        "not attempted: the cycle was stopped (shutdown, or this replica lost the leader lock)",
                    ),
                );
            }
            if stop_ref.load(Ordering::SeqCst) {
                let reason = stop_reason_ref
                    .lock()
                    .ok()
                    .and_then(|r| r.clone())
                    .unwrap_or_default();
                return (
                    change,
                    audit_id,
                    ChangeResult::skipped(format!("not attempted: {reason}")),
                );
            }
            let result = apply::apply_change(canvas, &change, ids, roles, removal).await;
            if let Some(e) = &result.ends_cycle
                && !stop_ref.swap(true, Ordering::SeqCst)
                && let Ok(mut r) = stop_reason_ref.lock()
            {
                *r = Some(format!("the cycle stopped after: {e}"));
            }
            (change, audit_id, result)
        })
        .buffer_unordered(concurrency);
    let mut results = futures::stream::iter(bulk_results).chain(api_results);

    let mut pending: Vec<OutcomeUpdate> = Vec::new();
    let mut last_flush = Instant::now();
    let mut done = 0u64;
    let mut users_not_found = 0i64;
    let mut audit_error: Option<String> = None;
    let mut auth_error: Option<String> = None;
    while let Some((change, audit_id, result)) = results.next().await {
        done += 1;
        let action = change.action.as_str();
        match result.outcome {
            AuditOutcome::Applied => {
                report.applied += 1;
                *report.details.applied_by_action.entry(action).or_default() += 1;
            }
            AuditOutcome::Failed => {
                report.failed += 1;
                *report.details.failed_by_action.entry(action).or_default() += 1;
                warn!(
                    action,
                    user = change.user.map(|u| ids.resolve(u)).unwrap_or("-"),
                    course.sis_id = ids.resolve(change.course),
                    status = result.http_status,
                    error = result.error.as_deref().unwrap_or(""),
                    "change failed"
                );
            }
            AuditOutcome::Skipped | AuditOutcome::Planned => {
                report.skipped += 1;
                if result
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("not attempted"))
                {
                    report.details.not_attempted += 1;
                }
            }
        }
        if result.user_not_found {
            users_not_found += 1;
        }
        if let Some(e) = &result.ends_cycle {
            report.details.canvas_unavailable = true;
            if let CanvasError::Unauthorized { .. } = e {
                auth_error.get_or_insert_with(|| result.error.clone().unwrap_or_default());
            }
        }
        metrics.count_change(action, result.outcome.as_str());
        pending.push(OutcomeUpdate {
            id: audit_id,
            outcome: result.outcome,
            error: result.error,
            canvas_enrollment_id: result.enrollment_id.map(|i| i as i64),
            new_canvas_enrollment_id: result.new_enrollment_id.map(|i| i as i64),
            http_status: result.http_status.map(i32::from),
            steps: result.steps.map(|s| s.to_string()),
        });
        if let Some(progress) = &opts.progress {
            progress(done, total);
        }
        if pending.len() >= 500 || last_flush.elapsed().as_millis() >= 1000 {
            // On failure the outcomes stay queued and go out with the next flush: a database restart mid-cycle
            // delays the audit, it does not lose it. Applying goes on (the planned rows already hold the intent).
            match audit.record_outcomes(&pending).await {
                Ok(()) => pending.clear(),
                Err(e) => {
                    error!(error = %e, queued = pending.len(), "cannot record change outcomes yet; will retry");
                    audit_error = Some(e.to_string());
                }
            }
            last_flush = Instant::now();
        }
    }
    drop(results);
    // Last chance for queued outcomes: retry for a while (a restarting database is usually back in seconds).
    let mut delay = std::time::Duration::from_millis(250);
    let give_up = Instant::now() + std::time::Duration::from_secs(20);
    while !pending.is_empty() {
        match audit.record_outcomes(&pending).await {
            Ok(()) => {
                pending.clear();
                audit_error = None;
            }
            Err(e) => {
                audit_error = Some(e.to_string());
                if Instant::now() >= give_up {
                    error!(error = %e, unrecorded = pending.len(), "cannot record change outcomes; their audit rows stay `planned` and the next run reports them");
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(4));
            }
        }
    }
    report.details.apply_ms = apply_started.elapsed().as_millis() as u64;
    report.details.users_not_found = users_not_found as u64;
    metrics.users_not_found.set(users_not_found);
    if let Some(e) = auth_error {
        return Err(format!("Canvas rejected the token during the cycle: {e}"));
    }
    if let Some(e) = audit_error {
        return Err(format!("the audit log could not be fully written: {e}"));
    }
    Ok(())
}

async fn close_run(runs: &Runs, report: &CycleReport) {
    let counts = serde_json::to_value(report).unwrap_or_default();
    let mut attempt = 0;
    while let Err(e) = runs
        .finish(
            &report.run_id,
            report.status,
            &counts,
            report.error.as_deref(),
        )
        .await
    {
        attempt += 1;
        if attempt < 6 {
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
            continue;
        }
        error!(run.id = %report.run_id, error = %e, "cannot close the run record; the next run closes it as interrupted");
        break;
    }
}

fn finish_metrics(ctx: &CycleContext, report: &CycleReport, started: Instant) {
    let m = &ctx.metrics;
    m.cycles
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: report.status.as_str().to_owned(),
        })
        .inc();
    m.cycle_duration.observe(started.elapsed().as_secs_f64());
    if matches!(report.status, RunStatus::Succeeded | RunStatus::Partial) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        m.last_success.set(now);
    }
    if report.safety.tripped {
        m.safety_trips.inc();
        m.safety_tripped.set(1);
    } else if report.status != RunStatus::Failed {
        m.safety_tripped.set(0);
    }
}
