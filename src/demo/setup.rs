//! What the demo sets up before its cycles: the demo database (and dropping it again), the Canvas simulator's
//! throttle, and the built-in configuration that points the daemon at both.

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

/// The demo's configuration: the simulator, the demo database, the staff rule, and a removal brake the sample
/// district stays under (by ratio; the count limit grows with the district so that big ones are judged by ratio).
pub(super) fn demo_settings(canvas: &str, db_url: &str, district: &District) -> Result<Settings> {
    let max_removals =
        ((district.stats.live_in_managed as f64 * MAX_REMOVAL_RATIO).ceil() as u64).max(500);
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
}
