//! What the demo sets up before its cycles: the demo database (and dropping it again), the Canvas simulator's
//! throttle, and the built-in configurations that point the daemon at the database and a simulator (Canvas, or
//! openedx-sim).

use anyhow::{Context, Result};
use canvas_sim::district::{ADULT_LEARNER, District};
use canvas_sim::{self as sim, ThrottleOptions};

use crate::config::{DatabaseUrl, Settings};
use crate::pgtemp::PgServer;

/// The role rule the demo configures (the staff-as-student case).
pub const STAFF_RULE: &str = "staff-are-adult-learners";
pub(super) const STAFF_QUERY: &str = "SELECT user_id FROM sis_staff";
/// The removal brake the demo sets: stricter than the default 10%, and the sample district stays under it.
const MAX_REMOVAL_RATIO: f64 = 0.05;
/// `X-Request-Cost` of one request in the demo's simulator (its default is 1.0).
pub(super) const DEMO_REQUEST_COST: f64 = 0.1;

pub(super) async fn drop_database(server: &PgServer, name: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server.admin_url()).await?;
    let quoted = name.replace('"', "\"\"");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(())
}

/// The URL without its password (for printing and for `psql`, which then asks or uses ~/.pgpass).
pub(super) fn plain_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => DatabaseUrl::new(url).to_string(),
    }
}

/// Canvas's throttle stays on (the client must pace itself by `X-Rate-Limit-Remaining`), but each request costs a
/// tenth of the simulator's default, so that a medium district is not minutes of waiting on the bucket.
pub(super) fn demo_throttle() -> ThrottleOptions {
    ThrottleOptions {
        request_cost: DEMO_REQUEST_COST,
        ..ThrottleOptions::default()
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The count limit of the demo's brake: the ratio's share of the live enrollments, at least the default 500, so that
/// a big sample is judged by ratio.
fn max_removals(live: u64) -> u64 {
    ((live as f64 * MAX_REMOVAL_RATIO).ceil() as u64).max(500)
}

/// The demo's configuration: the simulator, the demo database, the staff role rule, and a removal brake the sample
/// district stays under (by ratio; the count limit grows with the district so that big ones are judged by ratio).
pub(super) fn demo_settings(canvas: &str, db_url: &str, district: &District) -> Result<Settings> {
    let max_removals = max_removals(district.stats.live_in_managed);
    let toml = format!(
        "[canvas]\nbase_url = {canvas}\ntoken = {token}\n\n\
         [database]\nurl = {db}\n\n\
         [reconcile]\nremoval = \"conclude\"\nmax_removal_ratio = {MAX_REMOVAL_RATIO}\nmax_removals = {max_removals}\n\n\
         [[role_rules]]\nname = {rule}\nusers_query = {query}\nfrom_role = \"StudentEnrollment\"\nto_role = {to}\n",
        canvas = toml_string(canvas),
        token = toml_string(sim::DEFAULT_TOKEN),
        db = toml_string(db_url),
        rule = toml_string(STAFF_RULE),
        query = toml_string(STAFF_QUERY),
        to = toml_string(ADULT_LEARNER),
    );
    Settings::from_toml_str(&toml).context("the demo's built-in configuration is invalid")
}

/// The SIS query of an Open edX university: the five columns and `curriculum_uuid` (CONTRACT v2).
pub(super) const OPENEDX_SIS_QUERY: &str =
    "SELECT user_id, course_id, section_id, role, status, curriculum_uuid FROM sis_enrollments";

/// Where openedx-sim is and how to authenticate to it. The secret goes into the configuration and nowhere else.
pub(super) struct OpenEdxAccess<'a> {
    pub(super) base_url: &'a str,
    pub(super) client_id: &'a str,
    pub(super) client_secret: &'a str,
}

/// The Open edX demo's configuration: `target.kind = "openedx"`, openedx-sim and its OAuth client, the demo
/// database, the SIS query with `curriculum_uuid`, and the Canvas demo's removal brake over the university's `live`
/// enrollments (program and run). No `[canvas]` table: an Open edX deployment needs none.
pub(super) fn openedx_settings(
    lms: &OpenEdxAccess<'_>,
    db_url: &str,
    live: u64,
) -> Result<Settings> {
    let toml = format!(
        "[target]\nkind = \"openedx\"\n\n\
         [openedx]\nbase_url = {base}\nclient_id = {id}\nclient_secret = {secret}\n\n\
         [database]\nurl = {db}\n\n\
         [sis]\nenrollments_query = {query}\n\n\
         [reconcile]\nremoval = \"conclude\"\nmax_removal_ratio = {MAX_REMOVAL_RATIO}\nmax_removals = {max_removals}\n",
        base = toml_string(lms.base_url),
        id = toml_string(lms.client_id),
        secret = toml_string(lms.client_secret),
        db = toml_string(db_url),
        query = toml_string(OPENEDX_SIS_QUERY),
        max_removals = max_removals(live),
    );
    Settings::from_toml_str(&toml).context("the Open edX demo's built-in configuration is invalid")
}

#[cfg(test)]
mod tests {
    use canvas_sim::district::DistrictSpec;

    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            plain_url("postgres://u:secret@h:5/db"),
            "postgres://u@h:5/db"
        );
    }

    #[test]
    fn the_built_in_configuration_is_valid() {
        let d = District::generate(&DistrictSpec::with_students(20));
        let s = demo_settings("http://127.0.0.1:1", "postgres://p:w\"x@h/db", &d).expect("valid");
        assert_eq!(s.role_rules.len(), 1);
        assert_eq!(s.role_rules[0].to_role, ADULT_LEARNER);
        assert_eq!(s.reconcile.max_removals, 500);
    }

    #[test]
    fn the_open_edx_configuration_is_valid_and_keeps_its_secret() {
        let lms = OpenEdxAccess {
            base_url: "http://127.0.0.1:1",
            client_id: "rostersync-demo",
            client_secret: "canary-secret-4d1f",
        };
        let s = openedx_settings(&lms, "postgres://p@h/db", 40_000).expect("valid");
        assert_eq!(s.target, crate::config::TargetKind::OpenEdx);
        assert_eq!(s.reconcile.max_removals, 2_000);
        assert!(s.sis.enrollments_query.contains("curriculum_uuid"));
        assert!(!format!("{s:?}").contains("canary-secret-4d1f"));
    }
}
