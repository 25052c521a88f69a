//! `rostersync demo` as an operator runs it: the built binary against the test server (`DATABASE_URL`), so that it
//! finds PostgreSQL instead of starting a second cluster.

use std::process::Output;

use sqlx::Connection;

use crate::support::*;

/// Runs `rostersync demo ARGS` with `DATABASE_URL` set to a fresh database on the test server.
async fn demo(args: &[&str]) -> (Output, String) {
    let url = fresh_database().await;
    let out = rostersync_cmd()
        .arg("demo")
        .args(args)
        .env("DATABASE_URL", &url)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run rostersync demo");
    (out, url)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The demo database named in the output.
fn demo_database(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("rostersync_demo_"))
        .map(|w| w.trim_end_matches([',', '.', ';']).to_owned())
        .unwrap_or_else(|| panic!("no demo database named in: {stdout}"))
}

async fn database_exists(url: &str, name: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("query");
    let _ = conn.close().await;
    exists
}

#[tokio::test]
async fn the_demo_runs_end_to_end_and_cleans_up() {
    let (out, url) = demo(&[]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "existing PostgreSQL (DATABASE_URL)",
        "Sample district",
        "staff as students in their staff course",
        "Plan (run ",
        "enroll",
        "remove",
        "change_role",
        "StudentEnrollment → Adult Learner",
        "change_state",
        "skipped rows",
        "safety guard   not tripped",
        "the plan matches the drift injected above",
        "Result: succeeded",
        "Second cycle",
        "planned enroll 0, remove 0, change_role 0, change_state 0: nothing left to do",
        "0 of them writes",
        "rostersync.audit_log",
        "psql 'postgres://",
        "/metrics",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Not a terminal: a line per 10% instead of a bar.
    assert!(stdout.contains(" 50%  "), "{stdout}");
    assert!(stdout.contains("100%  "), "{stdout}");
    // Quiet logs: no INFO lines from the cycle.
    assert!(!stderr.contains("INFO"), "{stderr}");
    // The database it created on an existing server is gone.
    let name = demo_database(&stdout);
    assert!(
        !database_exists(&url, &name).await,
        "{name} was not dropped"
    );
}

#[tokio::test]
async fn json_prints_the_two_cycle_reports_only() {
    let (out, _) = demo(&["--json", "--size", "60", "--seed", "7"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).expect("first report");
    let second: serde_json::Value = serde_json::from_str(lines[1]).expect("second report");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["dry_run"], false);
    let planned: u64 = first["planned"]
        .as_object()
        .expect("planned")
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(planned > 0, "{first}");
    assert!(first["applied"].as_u64().unwrap() > 0);
    assert!(first["api_calls"].as_u64().unwrap() > 0);
    assert_eq!(first["safety"]["tripped"], false);
    for action in ["enroll", "remove", "change_role", "change_state"] {
        assert_eq!(second["planned"][action], 0, "{second}");
    }
    assert_ne!(first["run_id"], second["run_id"]);
}

#[tokio::test]
async fn keep_leaves_the_database_with_its_audit_log() {
    let (out, url) = demo(&["--keep", "--size", "40"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let name = demo_database(&stdout);
    assert!(stdout.contains("Kept: database"), "{stdout}");
    assert!(database_exists(&url, &name).await);
    let mut kept = url::Url::parse(&url).expect("url");
    kept.set_path(&format!("/{name}"));
    let mut conn = sqlx::PgConnection::connect(kept.as_str())
        .await
        .expect("connect to the kept database");
    let (runs, applied): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rostersync.sync_runs WHERE status = 'succeeded'), \
                (SELECT count(*) FROM rostersync.audit_log WHERE outcome = 'applied')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("audit log");
    let _ = conn.close().await;
    assert_eq!(runs, 2);
    assert!(applied > 0);
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the kept database");
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_setup_error_that_says_so() {
    let out = rostersync_cmd()
        .arg("demo")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")
        .output()
        .await
        .expect("run rostersync demo");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create database rostersync_demo_"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_bad_size_is_refused_by_the_command_line() {
    let out = rostersync_cmd()
        .args(["demo", "--size", "huge"])
        .output()
        .await
        .expect("run rostersync demo");
    let (_, stderr) = text(&out);
    // A usage error: EX_USAGE (64), never 2 ("some changes failed").
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("small"), "{stderr}");
}

#[tokio::test]
async fn the_demo_dry_run_prints_the_plan_an_operator_reviews() {
    let (out, _) = demo(&["--dry-run"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for expected in [
        "(dry run)",
        "106 changes planned:",
        "+ enroll ",
        "- remove ",
        "~ change_role ",
        "~ change_state ",
        "active → completed",
        "rostersync apply ",
    ] {
        assert!(stdout.contains(expected), "`{expected}` in:\n{stdout}");
    }
    // One line per change, each naming its action: a piped plan stays greppable.
    assert_eq!(
        stdout.lines().filter(|l| l.contains("+ enroll ")).count(),
        27
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains("- remove ")).count(),
        27
    );
    assert!(!stdout.contains("Applying"), "a dry run changes nothing");
}

// ---- `rostersync demo --target openedx` (issue 17 item 5): a sample university in openedx-sim. ----

#[tokio::test]
async fn the_openedx_demo_shows_the_university_applies_its_plan_and_converges() {
    let (out, url) = demo(&["--target", "openedx"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "rostersync demo --target openedx",
        "openedx-sim at http://127.0.0.1:",
        "target.kind = openedx",
        "Sample university",
        "3 programs (",
        "    program ",
        "without one (waiting enrollments",
        "moved to another program sharing a run",
        "Plan (run ",
        "managed programs",
        "(program enrollment)",
        "— → staff",
        "enrolled → ended",
        "active → inactive",
        "learner → staff",
        "skipped rows        2",
        "has uppercase letters",
        "does not parse (expected course-v1:Org+Course+Run)",
        "keep-alive",
        "the plan matches the drift injected above",
        "Result: succeeded",
        "Open edX API calls",
        "planned enroll 0, remove 0, change_role 0, change_state 0: nothing left to do",
        "0 of them writes",
        "inactive through the old program, active through the new",
        "rostersync.audit_log",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The OAuth client's secret is made per run and never printed; no Canvas is involved.
    for text in [&stdout, &stderr] {
        assert!(!text.contains("client_secret"), "{text}");
        assert!(!text.contains("sim-token"), "{text}");
    }
    assert!(!stderr.contains("INFO"), "{stderr}");
    let name = demo_database(&stdout);
    assert!(
        !database_exists(&url, &name).await,
        "{name} was not dropped"
    );
}

#[tokio::test]
async fn the_openedx_demo_in_json_converges_and_a_dry_run_writes_nothing() {
    let (out, _) = demo(&[
        "--target", "openedx", "--json", "--size", "120", "--seed", "7",
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report per line"))
        .collect();
    assert_eq!(reports.len(), 2, "{stdout}");
    let (first, second) = (&reports[0], &reports[1]);
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(first["planned"]["enroll"].as_u64().unwrap() > 0, "{first}");
    assert!(first["planned"]["remove"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(
        first["skipped"].as_u64(),
        Some(2),
        "the two bad SIS rows: {first}"
    );
    assert_eq!(first["failed"].as_u64(), Some(0), "{first}");
    for action in ["enroll", "remove", "change_role", "change_state"] {
        assert_eq!(second["planned"][action], 0, "{second}");
    }
    assert_eq!(second["applied"].as_u64(), Some(0), "{second}");
    assert_eq!(
        second["details"]["requests"]["writes"].as_u64(),
        Some(0),
        "{second}"
    );

    let (out, _) = demo(&[
        "--target",
        "openedx",
        "--dry-run",
        "--size",
        "120",
        "--seed",
        "7",
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("(dry run)"), "{stdout}");
    assert!(stdout.contains("+ enroll "), "{stdout}");
    assert!(!stdout.contains("Applying"), "a dry run changes nothing");
}
