//! The read half of a cycle: the SIS and Canvas into one [`Snapshot`].
//!
//! Reads are all-or-nothing: any error ends the cycle before the first write, because a partial picture of Canvas
//! or the SIS is exactly how a sync script mass-removes enrollments. SIS rows are parsed as they stream in (parse
//! at the boundary); Canvas listings become compact [`LiveEnrollment`]s course by course.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use futures::StreamExt;
use tracing::{info, warn};

use super::error::CycleError;
use super::report::CycleReport;
use super::{CycleContext, provisioning};
use crate::canvas::CanvasClient;
use crate::canvas::client::UserRef;
use crate::canvas::error::CanvasError;
use crate::canvas::model::Enrollment;
use crate::canvas::model::Role;
use crate::config::ReadPath;
use crate::domain::decide::{SkippedSisRow, Snapshot};
use crate::domain::roles::{RoleBook, RoleInfo};
use crate::domain::rules::{ResolvedRule, role_rule_cycle};
use crate::domain::sis_row::{SisRowRef, SkippedRow, parse_row_ref, user_identity};
use crate::domain::{
    DesiredEnrollment, EnrollmentState, Ids, LiveEnrollment, RoleId, SectionKey, Sym, UserIdKind,
};
use crate::metrics::ReasonLabels;
use crate::sis;
use crate::store::exceptions::Exceptions;
use crate::store::missing::{MissingKind, MissingRefs};
use crate::target::Target;

/// Reads roles, role-rule users, SIS rows and the live enrollments of the managed courses; with a `scope`, only the
/// SIS rows of those courses (by their SIS course id as the query returns it), and those courses from the target.
pub async fn read_snapshot(
    ctx: &CycleContext,
    scope: Option<&BTreeSet<String>>,
    report: &mut CycleReport,
) -> Result<Snapshot, CycleError> {
    let started = Instant::now();
    let prefetched = prefetch(ctx).await;
    read_snapshot_prefetched(ctx, scope, report, started, prefetched).await
}

/// What a cycle asks the target for while it fingerprints the SIS (it does not depend on the SIS): Canvas's
/// account roles. Open edX has nothing to ask first.
pub enum Prefetched {
    CanvasRoles(Result<Vec<Role>, CanvasError>),
    Nothing,
}

/// Asks the target for what [`Prefetched`] holds.
pub async fn prefetch(ctx: &CycleContext) -> Prefetched {
    match &ctx.target {
        Target::Canvas(canvas) => {
            Prefetched::CanvasRoles(canvas.list_roles(&ctx.settings.canvas.account_id).await)
        }
        Target::OpenEdx(_) => Prefetched::Nothing,
    }
}

/// [`read_snapshot`], with what was [prefetched](prefetch) since `started`.
pub async fn read_snapshot_prefetched(
    ctx: &CycleContext,
    scope: Option<&BTreeSet<String>>,
    report: &mut CycleReport,
    started: Instant,
    prefetched: Prefetched,
) -> Result<Snapshot, CycleError> {
    match (&ctx.target, prefetched) {
        (Target::Canvas(_), Prefetched::CanvasRoles(roles)) => {
            read_canvas_snapshot(ctx, scope, report, started, roles).await
        }
        (Target::Canvas(canvas), Prefetched::Nothing) => {
            let roles = canvas.list_roles(&ctx.settings.canvas.account_id).await;
            read_canvas_snapshot(ctx, scope, report, started, roles).await
        }
        (Target::OpenEdx(client), _) => {
            crate::target::openedx::read_snapshot(ctx, client, scope, report).await
        }
    }
}

/// The Canvas client of a context whose target is Canvas (the paths that only Canvas has).
pub(crate) fn canvas_of(ctx: &CycleContext) -> Result<&CanvasClient, CycleError> {
    ctx.target
        .canvas()
        .map(|c| &**c)
        .ok_or(CycleError::NotForTarget(
            "this step speaks Canvas only, and target.kind is not canvas",
        ))
}

/// Streams the SIS rows through `parse` into the snapshot (rows outside `scope` are parsed, counted and dropped),
/// counts the skipped ones, and says how many were read. Rows are parsed where they were decoded; only a skipped
/// one is copied (for its audit row).
pub(crate) async fn read_sis_rows<F>(
    ctx: &CycleContext,
    scope: Option<&BTreeSet<String>>,
    snap: &mut Snapshot,
    report: &mut CycleReport,
    mut parse: F,
) -> Result<(), CycleError>
where
    F: FnMut(SisRowRef<'_>, &mut Ids) -> Result<DesiredEnrollment, SkippedRow>,
{
    let settings = &ctx.settings;
    let ids = &mut snap.ids;
    let (desired, skipped) = (&mut snap.desired, &mut snap.skipped);
    let (mut in_scope, mut outside_scope) = (0u64, 0u64);
    let sis_rows = sis::read_enrollments(
        &ctx.sis,
        &settings.sis.enrollments_query,
        settings.sis.statement_timeout,
        |row| {
            if scope.is_some_and(|s| !s.contains(row.course_id.unwrap_or_default())) {
                if parse(row, ids).is_ok() {
                    outside_scope += 1;
                }
                return;
            }
            in_scope += 1;
            match parse(row, ids) {
                Ok(d) => desired.push(d),
                Err(skip) => skipped.push(SkippedSisRow {
                    row: row.to_row(),
                    skip,
                }),
            }
        },
    )
    .await?;
    snap.sis_rows = if scope.is_some() { in_scope } else { sis_rows };
    snap.usable_rows_outside_scope = outside_scope;
    report.details.sis_rows = snap.sis_rows;
    report.details.sis_rows_skipped = snap.skipped.len() as u64;
    info!(
        sis.rows = snap.sis_rows,
        sis.skipped = snap.skipped.len(),
        "SIS rows read"
    );
    for s in &snap.skipped {
        ctx.metrics
            .skipped_rows
            .get_or_create(&ReasonLabels {
                reason: s.skip.reason.label().to_owned(),
            })
            .inc();
    }
    Ok(())
}

/// The courses named by at least one usable SIS row, sorted.
pub(crate) fn managed_courses(snap: &Snapshot) -> Vec<Sym> {
    let mut managed: Vec<Sym> = snap
        .desired
        .iter()
        .map(|d| d.course)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    managed.sort();
    managed
}

/// The Canvas side: SIS rows parsed against Canvas's roles, and the managed courses' live enrollments (report or
/// course listings, through [`canvas_of`]).
async fn read_canvas_snapshot(
    ctx: &CycleContext,
    scope: Option<&BTreeSet<String>>,
    report: &mut CycleReport,
    started: Instant,
    roles: Result<Vec<Role>, CanvasError>,
) -> Result<Snapshot, CycleError> {
    let settings = &ctx.settings;
    let kind = settings.sis.user_id_kind;
    let mut snap = Snapshot::default();

    // Roles first: SIS rows name roles, and a rule naming a missing role is fatal before anything is read.
    let roles = roles?;
    snap.roles = RoleBook::new(roles.into_iter().map(RoleInfo::from));
    snap.rules = read_rules(ctx, &snap.roles, &mut snap.ids).await?;

    // SIS rows, streamed and parsed one at a time.
    let roles = snap.roles.clone();
    read_sis_rows(ctx, scope, &mut snap, report, |row, ids| {
        parse_row_ref(row, kind, &roles, ids)
    })
    .await?;

    // Managed courses: those with at least one usable row.
    snap.managed = managed_courses(&snap);
    report.details.managed_courses = snap.managed.len() as u64;

    let use_report = scope.is_none()
        && match settings.canvas.read_path {
            ReadPath::Report => true,
            ReadPath::Courses => false,
            ReadPath::Auto => {
                snap.managed.len() as u64 >= settings.canvas.report_min_courses
                    && kind == UserIdKind::SisUserId
            }
        };
    let from_report = if use_report {
        read_report(ctx, &snap.managed, &mut snap.ids, &mut snap.roles).await?
    } else {
        None
    };
    if let Some(live) = from_report {
        report.details.read_path = "report";
        snap.live = live;
    } else {
        report.details.read_path = "courses";
        (snap.live, snap.courses_not_found) = read_courses(
            ctx,
            &snap.managed,
            &mut snap.ids,
            &mut snap.roles,
            &mut snap.names,
            kind,
        )
        .await?;
    }
    check_identities_visible(&snap, kind)?;
    snap.exceptions = read_exceptions(ctx, &snap.ids, kind).await?;
    snap.users_not_in_canvas = look_up_missing(ctx, &snap, MissingKind::User).await?;
    snap.sections_not_in_canvas = look_up_missing(ctx, &snap, MissingKind::Section).await?;
    report.details.read_ms = started.elapsed().as_millis() as u64;
    report.details.live_enrollments = snap.live.len() as u64;
    report.details.courses_not_found = snap.courses_not_found.len() as u64;
    Ok(snap)
}

/// The exceptions active now (the database clock decides expiry, so one that expired since the last cycle no longer
/// applies), as the snapshot's symbols: the user id as SIS rows and listings intern it (lower-cased under
/// `sis_login_id`), the course as given. An exception naming a user or course this cycle did not see has nothing
/// to hold and is left out.
pub(crate) async fn read_exceptions(
    ctx: &CycleContext,
    ids: &Ids,
    kind: UserIdKind,
) -> Result<HashSet<(Sym, Option<Sym>)>, CycleError> {
    let scopes = Exceptions::new(ctx.db.clone()).active_scopes().await?;
    let active = scopes.len();
    let exceptions: HashSet<(Sym, Option<Sym>)> = scopes
        .iter()
        .filter_map(|(user, course)| {
            let user = ids.get(&user_identity(user, kind))?;
            match course {
                None => Some((user, None)),
                Some(c) => Some((user, Some(ids.get(c)?))),
            }
        })
        .collect();
    if active > 0 {
        info!(
            exceptions.active = active,
            exceptions.seen = exceptions.len(),
            "active exceptions: their users' enrollments in that scope are left as they are"
        );
    }
    Ok(exceptions)
}

/// Canvas hides `sis_user_id` and `login_id` from a token whose role lacks the permission to see them (facts §2). Then
/// every SIS row looks missing and would be re-POSTed — which resets the enrollment's dates and section limits —
/// and nothing the SIS still lists could be told from what it dropped. Listings where not one enrollment carries
/// the identity the SIS names users by mean exactly that: stop before any write.
fn check_identities_visible(snap: &Snapshot, kind: UserIdKind) -> Result<(), CycleError> {
    /// Fewer listed enrollments than this may all be hand-made ones of users without SIS ids.
    const ENOUGH_TO_TELL: usize = 5;
    let listed = snap
        .live
        .iter()
        .filter(|l| l.associated_user_id.is_none())
        .count();
    if snap.desired.is_empty()
        || listed < ENOUGH_TO_TELL
        || snap.live.iter().any(|l| l.user.is_some())
    {
        return Ok(());
    }
    Err(CycleError::IdentitiesHidden {
        listed,
        field: kind.canvas_prefix(),
    })
}

/// Users and SIS sections that SIS rows name and an earlier cycle found missing in Canvas: one lookup each, so that
/// their rows are skipped with a reason instead of planned (and failing) every cycle, and acted on as soon as Canvas
/// has them.
async fn look_up_missing(
    ctx: &CycleContext,
    snap: &Snapshot,
    kind: MissingKind,
) -> Result<HashSet<Sym>, CycleError> {
    let missing = MissingRefs::new(ctx.db.clone());
    let wanted: HashSet<Sym> = snap
        .desired
        .iter()
        .filter_map(|d| match (kind, d.section) {
            (MissingKind::User, _) => Some(d.user),
            (MissingKind::Section, SectionKey::Sis(s)) => Some(s),
            (MissingKind::Section, SectionKey::Default) => None,
        })
        .collect();
    let known: Vec<(Sym, String)> = missing
        .load(kind)
        .await?
        .into_iter()
        .filter_map(|id| Some((snap.ids.get(&id).filter(|s| wanted.contains(s))?, id)))
        .collect();
    let canvas = canvas_of(ctx)?;
    let mut lookups = futures::stream::iter(known)
        .map(|(sym, id)| async move {
            let exists = match kind {
                MissingKind::User => canvas
                    .get_user(UserRef::Sis(&id))
                    .await
                    .map(|u| u.is_some()),
                MissingKind::Section => canvas.section_exists(&id).await,
            };
            (sym, id, exists)
        })
        .buffer_unordered((ctx.settings.limits.max_in_flight as usize).max(1));
    let (mut still_missing, mut found) = (HashSet::new(), Vec::new());
    while let Some((sym, id, exists)) = lookups.next().await {
        if exists? {
            found.push(id);
        } else {
            still_missing.insert(sym);
        }
    }
    missing.forget(kind, &found).await?;
    if !still_missing.is_empty() {
        info!(
            missing = still_missing.len(),
            kind = ?kind,
            "SIS rows name what Canvas does not have; their rows are skipped until Canvas has it"
        );
    }
    Ok(still_missing)
}

/// Resolves each role rule's roles and reads its users; refuses rule sets that loop.
pub(crate) async fn read_rules(
    ctx: &CycleContext,
    roles: &RoleBook,
    ids: &mut Ids,
) -> Result<Vec<ResolvedRule>, CycleError> {
    let kind = ctx.settings.sis.user_id_kind;
    let mut rules = Vec::with_capacity(ctx.settings.role_rules.len());
    for rule in &ctx.settings.role_rules {
        let resolve = |spec: &str, key: &str| {
            roles
                .resolve(spec)
                .map_err(|e| CycleError::RoleRule(format!("role rule `{}`: {key}: {e}", rule.name)))
        };
        let from = resolve(&rule.from_role, "from_role")?;
        let to = resolve(&rule.to_role, "to_role")?;
        let users = sis::read_rule_users(
            &ctx.sis,
            &rule.name,
            &rule.users_query,
            ctx.settings.sis.statement_timeout,
        )
        .await?;
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
    if let Some(names) = role_rule_cycle(&edges) {
        return Err(CycleError::RoleRule(format!(
            "role rules {} lead back to the role they start from; no order of applying them ends. Fix the rules.",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(rules)
}

/// Live enrollments from the provisioning report (the large-account path); `None` when Canvas refuses the report
/// (401/403/404 on starting, polling or downloading it: a token without report rights), which is said once and
/// counted, and the caller lists the courses one by one instead.
async fn read_report(
    ctx: &CycleContext,
    managed: &[Sym],
    ids: &mut Ids,
    roles: &mut RoleBook,
) -> Result<Option<Vec<LiveEnrollment>>, CycleError> {
    if ctx.settings.sis.user_id_kind != UserIdKind::SisUserId {
        return Err(CycleError::Settings(
            "canvas.read_path = report needs sis.user_id_kind = sis_user_id: the provisioning report has no login ids",
        ));
    }
    let csv = match canvas_of(ctx)?
        .provisioning_enrollments_csv(
            &ctx.settings.canvas.account_id,
            ctx.settings.canvas.report_timeout,
        )
        .await
    {
        Ok(csv) => csv,
        Err(refused) if refused.refuses_path() => {
            warn!(
                error = %refused,
                "Canvas refused the provisioning report (does the token's role have the account permission to \
                 run reports, read_reports?); listing each managed course's enrollments instead"
            );
            ctx.metrics.count_path_fallback("report");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let managed: HashSet<Sym> = managed.iter().copied().collect();
    let live = provisioning::parse_enrollments_csv(&csv, &managed, ids, roles)
        .map_err(CycleError::Report)?;
    info!(
        rows = live.len(),
        bytes = csv.len(),
        "live enrollments read from the provisioning report"
    );
    Ok(Some(live))
}

/// Lists every managed course's enrollments, several courses at once; returns them and the courses Canvas does
/// not have.
pub(super) async fn read_courses(
    ctx: &CycleContext,
    managed: &[Sym],
    ids: &mut Ids,
    roles: &mut RoleBook,
    names: &mut HashMap<Sym, Sym>,
    kind: UserIdKind,
) -> Result<(Vec<LiveEnrollment>, HashSet<Sym>), CycleError> {
    let states: Vec<&str> = EnrollmentState::LISTED.iter().map(|s| s.as_str()).collect();
    let courses: Vec<(Sym, String)> = managed
        .iter()
        .map(|c| (*c, ids.resolve(*c).to_owned()))
        .collect();
    let concurrency = (ctx.settings.limits.max_in_flight as usize * 2).max(2);
    let canvas = canvas_of(ctx)?;
    let states = &states;
    let mut listings = futures::stream::iter(courses)
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
                    let l = live_enrollment(e, course, kind, ids, roles);
                    if let (Some(user), Some(name)) =
                        (l.user, e.user.as_ref().and_then(|u| u.name.as_deref()))
                    {
                        names.entry(user).or_insert_with(|| ids.intern(name));
                    }
                    live.push(l);
                }
            }
            Ok(None) => {
                warn!(course.sis_id = %name, "course not found in Canvas; its SIS rows are recorded as failed");
                missing.insert(course);
            }
            Err(source) => {
                return Err(CycleError::Canvas {
                    doing: format!(
                        "reading the enrollments of course `{name}` failed, so no change is made this cycle: "
                    ),
                    source,
                });
            }
        }
    }
    Ok((live, missing))
}

/// One enrollment of a course listing in domain form. The identity the plan compares is the user's SIS user id or
/// lower-cased login id (`sis.user_id_kind`); a section without a SIS id counts as the default section.
pub fn live_enrollment(
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
