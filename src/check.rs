//! `rostersync check`: validates the configuration and reaches everything a cycle needs, printing one line per
//! check. Every check runs even after one fails, so an operator sees the whole picture at once.

use std::sync::Arc;

use crate::canvas::{CanvasClient, ClientOptions};
use crate::config::{Settings, TargetKind};
use crate::domain::UserIdKind;
use crate::domain::roles::{RoleBook, RoleInfo};
use crate::metrics::Metrics;
use crate::openedx::{OpenEdxClient, OpenEdxClientOptions};
use crate::{sis, store};

/// Some checks failed; each was printed as a `FAIL` line.
#[derive(Debug, thiserror::Error)]
#[error("{failed} check(s) failed")]
pub struct CheckError {
    pub failed: usize,
}

struct Checklist {
    failed: usize,
}

impl Checklist {
    fn ok(&mut self, what: &str, detail: impl AsRef<str>) {
        println!("ok    {what:<16} {}", detail.as_ref());
    }
    fn fail(&mut self, what: &str, detail: impl AsRef<str>) {
        self.failed += 1;
        println!("FAIL  {what:<16} {}", detail.as_ref());
    }
    /// Works, but not as configured: a cycle takes another path.
    fn warn(&mut self, what: &str, detail: impl AsRef<str>) {
        println!("warn  {what:<16} {}", detail.as_ref());
    }
}

pub async fn run(settings: Settings) -> Result<(), CheckError> {
    let mut list = Checklist { failed: 0 };
    list.ok(
        "config",
        format!(
            "valid; schedule `{}`, removal {:?}, max_removals {}, max_removal_ratio {}, {} role rule(s)",
            settings.schedule.cron,
            settings.reconcile.removal,
            settings.reconcile.max_removals,
            settings.reconcile.max_removal_ratio,
            settings.role_rules.len()
        ),
    );

    match store::connect("rostersync", &settings.database.url, 2).await {
        Ok(pool) => {
            let applied: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await;
            match applied {
                Ok(n) => list.ok(
                    "database",
                    format!("{} (migrations applied: {n})", settings.database.url),
                ),
                Err(_) => list.ok(
                    "database",
                    format!(
                        "{} (schema not created yet: run `rostersync migrate`)",
                        settings.database.url
                    ),
                ),
            }
        }
        Err(e) => list.fail("database", e.to_string()),
    }

    let sis_url = settings.sis_url().clone();
    let mut sis_pool = None;
    match store::connect("SIS", &sis_url, 2).await {
        Ok(pool) => {
            sis_pool = Some(pool.clone());
            list.ok("sis database", sis_url.to_string());
            match sis::check_enrollments_query(
                &pool,
                &settings.sis.enrollments_query,
                settings.sis.statement_timeout,
            )
            .await
            {
                Ok(()) => list.ok(
                    "sis query",
                    "read-only, returns user_id, course_id, section_id, role, status as text",
                ),
                Err(e) => list.fail("sis query", e.to_string()),
            }
            for rule in &settings.role_rules {
                match sis::read_rule_users(
                    &pool,
                    &rule.name,
                    &rule.users_query,
                    settings.sis.statement_timeout,
                )
                .await
                {
                    Ok(users) => list.ok(
                        "rule users",
                        format!("`{}`: {} user(s)", rule.name, users.len()),
                    ),
                    Err(e) => list.fail("rule users", e.to_string()),
                }
            }
        }
        Err(e) => list.fail("sis database", e.to_string()),
    }

    if settings.target == TargetKind::OpenEdx {
        check_openedx(&settings, sis_pool.as_ref(), &mut list).await;
        return match list.failed {
            0 => Ok(()),
            failed => Err(CheckError { failed }),
        };
    }
    let client = CanvasClient::new(
        ClientOptions::new(
            &settings.canvas,
            &settings.limits,
            settings.sis.user_id_kind,
        ),
        Arc::new(Metrics::new()),
    );
    match client {
        Err(e) => list.fail("canvas", e.to_string()),
        Ok(client) => {
            match client.get_self().await {
                Ok(user) => list.ok(
                    "canvas",
                    format!(
                        "{} accepts the token (user {}{})",
                        settings.canvas.base_url,
                        user.id,
                        user.name.map(|n| format!(" \"{n}\"")).unwrap_or_default()
                    ),
                ),
                Err(e) => list.fail("canvas", format!("{}: {e}", settings.canvas.base_url)),
            }
            match client.get_account(&settings.canvas.account_id).await {
                Ok(account) => list.ok(
                    "canvas account",
                    format!(
                        "{}{}",
                        account.id,
                        account
                            .name
                            .map(|n| format!(" \"{n}\""))
                            .unwrap_or_default()
                    ),
                ),
                Err(e) => list.fail(
                    "canvas account",
                    format!("account `{}`: {e}", settings.canvas.account_id),
                ),
            }
            match client.list_roles(&settings.canvas.account_id).await {
                Ok(roles) => {
                    let book = RoleBook::new(roles.into_iter().map(RoleInfo::from));
                    list.ok("canvas roles", format!("{} course role(s)", book.len()));
                    for rule in &settings.role_rules {
                        let from = book.resolve(&rule.from_role);
                        let to = book.resolve(&rule.to_role);
                        match (from, to) {
                            (Ok(f), Ok(t)) => list.ok(
                                "role rule",
                                format!(
                                    "`{}`: {} (id {f}) → {} (id {t})",
                                    rule.name, rule.from_role, rule.to_role
                                ),
                            ),
                            (Err(e), _) => {
                                list.fail("role rule", format!("`{}`: from_role: {e}", rule.name))
                            }
                            (_, Err(e)) => {
                                list.fail("role rule", format!("`{}`: to_role: {e}", rule.name))
                            }
                        }
                    }
                }
                Err(e) => list.fail("canvas roles", e.to_string()),
            }
            check_job_permissions(&client, &settings, &mut list).await;
            check_sis_ids_visible(&client, &settings, &mut list).await;
        }
    }
    match list.failed {
        0 => Ok(()),
        failed => Err(CheckError { failed }),
    }
}

/// `target.kind = "openedx"` (issue 17 §6): a token, an application that is not restricted and whose owner is
/// staff, and each managed program (a SIS row's `course_id`) readable.
async fn check_openedx(settings: &Settings, sis: Option<&sqlx::PgPool>, list: &mut Checklist) {
    let Some(openedx) = &settings.openedx else {
        list.fail(
            "openedx",
            "target.kind = \"openedx\" but no [openedx] settings",
        );
        return;
    };
    let client = match OpenEdxClient::new(OpenEdxClientOptions::new(openedx, &settings.limits)) {
        Ok(client) => client,
        Err(e) => {
            list.fail("openedx", e.to_string());
            return;
        }
    };
    match client.check_access().await {
        Ok(()) => list.ok(
            "openedx",
            format!(
                "{} issues a token to `{}`; the application may manage program enrollments",
                openedx.base_url, openedx.client_id
            ),
        ),
        Err(e) => {
            list.fail("openedx", format!("{}: {e}", openedx.base_url));
            return;
        }
    }
    let Some(pool) = sis else {
        return;
    };
    let mut programs = std::collections::BTreeSet::new();
    let read = sis::read_enrollments(
        pool,
        &settings.sis.enrollments_query,
        settings.sis.statement_timeout,
        |row| {
            if let Some(program) = row.course_id.filter(|c| !c.trim().is_empty()) {
                programs.insert(program.to_owned());
            }
        },
    )
    .await;
    if let Err(e) = read {
        list.fail("openedx programs", e.to_string());
        return;
    }
    for program in &programs {
        match client.list_program_enrollments(program).await {
            Ok(rows) => list.ok(
                "openedx program",
                format!("{program}: {} program enrollment(s)", rows.len()),
            ),
            Err(e) => list.fail("openedx program", e.to_string()),
        }
    }
    if programs.is_empty() {
        list.warn("openedx programs", "the SIS names no program yet");
    }
}

/// Can the token see the identity the SIS names users by? Canvas hides `sis_user_id` / `login_id` from a role
/// without the permission, and then every enrollment would look missing (a cycle refuses to start). Probed on the
/// first course the SIS names: its enrollments must show the identity on at least one user.
async fn check_sis_ids_visible(client: &CanvasClient, settings: &Settings, list: &mut Checklist) {
    const WHAT: &str = "sis ids";
    let Ok(pool) = store::connect("SIS", settings.sis_url(), 1).await else {
        return; // already reported as `sis database`
    };
    let course = sis::first_course(
        &pool,
        &settings.sis.enrollments_query,
        settings.sis.statement_timeout,
    )
    .await;
    pool.close().await;
    let Ok(Some(course)) = course else {
        return list.warn(WHAT, "no SIS row names a course yet: not checked");
    };
    let kind = settings.sis.user_id_kind;
    match client.list_course_enrollments(&course, &["active"]).await {
        Ok(Some(rows)) if !rows.is_empty() => {
            let shown = rows
                .iter()
                .filter(|e| {
                    let user = e.user.as_ref();
                    match kind {
                        UserIdKind::SisUserId => user
                            .and_then(|u| u.sis_user_id.as_ref())
                            .or(e.sis_user_id.as_ref())
                            .is_some(),
                        UserIdKind::SisLoginId => user.and_then(|u| u.login_id.as_ref()).is_some(),
                    }
                })
                .count();
            if shown > 0 {
                list.ok(
                    WHAT,
                    format!(
                        "{shown} of {} enrollment(s) in {course} show a {}",
                        rows.len(),
                        kind.canvas_prefix()
                    ),
                );
            } else {
                list.fail(
                    WHAT,
                    format!(
                        "none of the {} enrollment(s) in {course} shows a {}: the token's role lacks \"Users - view \
                         SIS ID\" (and \"view login IDs\" for sis_login_id); a cycle would refuse to run",
                        rows.len(),
                        kind.canvas_prefix()
                    ),
                );
            }
        }
        Ok(_) => list.warn(
            WHAT,
            format!("{course} has no active enrollment to look at: not checked"),
        ),
        Err(e) => list.warn(WHAT, format!("cannot tell: {e}")),
    }
}

/// May the token run SIS imports and provisioning reports? Probed without side effects by listing them: Canvas
/// lists an account's SIS imports only to a role with "Import SIS data" (or "Manage SIS"), and its reports only to
/// one with report rights, and refuses the others with 401 or 403. A refused path is not a failure: cycles fall
/// back to the API and the per-course listings (CONTRACT "Paths to Canvas"), so it is a `warn` line.
async fn check_job_permissions(client: &CanvasClient, settings: &Settings, list: &mut Checklist) {
    let account = &settings.canvas.account_id;
    let refused = |e: &crate::canvas::CanvasError| e.refuses_path();
    match client.list_sis_imports(account, None).await {
        Ok(_) => list.ok("sis imports", "the token may run SIS imports"),
        Err(e) if refused(&e) => list.warn(
            "sis imports",
            format!(
                "the token may not run SIS imports (give its role \"Import SIS data\"); every change goes through \
                 the API: {e}"
            ),
        ),
        Err(e) => list.warn("sis imports", format!("cannot tell: {e}")),
    }
    match client.list_available_reports(account).await {
        Ok(_) => list.ok("reports", "the token may run account reports"),
        Err(e) if refused(&e) => list.warn(
            "reports",
            format!(
                "the token may not run account reports (give its role read_reports); live enrollments are read \
                 course by course: {e}"
            ),
        ),
        Err(e) => list.warn("reports", format!("cannot tell: {e}")),
    }
}
