//! Exceptions (CONTRACT v2): `rostersync except add|list|remove`, driven through the built binary as a help desk
//! would. An exception keeps a hand-made enrollment (live in Canvas, not in the SIS) through cycles; once it expires
//! or is removed, the next cycle reconciles that enrollment like any other. Bad input exits 1 and says what to do.

use std::process::Output;
use std::time::Duration;

use canvas_sim::Seed;
use sqlx::Row as _;

use crate::support::*;

/// A removal of one enrollment in a course of three is within this brake; these tests are about exceptions.
const LOOSE: &str = "[reconcile]\nmax_removal_ratio = 1.0";
const LOGIN_IDS: &str =
    "[reconcile]\nmax_removal_ratio = 1.0\n[sis]\nuser_id_kind = \"sis_login_id\"";

/// Canvas user ids of the two hand-made enrollments.
const KEPT: u64 = 50;
const OTHER: u64 = 51;

/// Courses C1 (100) and C2 (101), each with SIS students s1 and s2, all active in Canvas; `h1` (50) is enrolled
/// by hand in both courses and `h2` (51) in C1, neither listed by the SIS.
async fn district() -> TestEnv {
    let seed = Seed::default()
        .course(course(100, "C1"))
        .course(course(101, "C2"))
        .user(user(1, "s1"))
        .user(user(2, "s2"))
        .user(user(KEPT, "h1"))
        .user(user(OTHER, "h2"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(2, 100, STUDENT, "active"))
        .enrollment(enrolled(1, 101, STUDENT, "active"))
        .enrollment(enrolled(2, 101, STUDENT, "active"))
        .enrollment(enrolled(KEPT, 100, STUDENT, "active"))
        .enrollment(enrolled(KEPT, 101, STUDENT, "active"))
        .enrollment(enrolled(OTHER, 100, STUDENT, "active"));
    TestEnv::new(seed).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `rostersync except ...`; asserts it exits 0 and returns stdout.
async fn except_ok(env: &TestEnv, args: &[&str], extra: &str) -> String {
    let out = except(env, args, extra).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "except {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn except(env: &TestEnv, args: &[&str], extra: &str) -> Output {
    let mut all = vec!["except"];
    all.extend_from_slice(args);
    env.cli(&all, extra).await
}

/// Asserts `except ...` exits 1 with a message on stderr containing each of `says`, and no panic.
async fn refused(env: &TestEnv, args: &[&str], says: &[&str]) {
    let out = except(env, args, LOOSE).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "except {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for s in says {
        assert!(
            stderr.contains(s),
            "except {args:?}: stderr should say {s:?}: {stderr}"
        );
    }
    assert!(
        text(&out.stdout).trim().is_empty(),
        "nothing on stdout: {}",
        text(&out.stdout)
    );
}

/// One `reconcile --json` that must exit 0; returns the report.
async fn cycle(env: &TestEnv, extra: &str) -> serde_json::Value {
    let out = env.cli(&["reconcile", "--json"], extra).await;
    let report = json_report(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    report
}

fn state(env: &TestEnv, user: u64, course: u64) -> String {
    let rows = env.enrollments_of(user, course);
    assert_eq!(
        rows.len(),
        1,
        "one enrollment of {user} in {course}: {rows:?}"
    );
    rows[0].2.clone()
}

#[tokio::test]
async fn an_exception_keeps_a_hand_made_enrollment_through_cycles_until_it_expires() {
    let env = district().await;
    env.sis(&[
        ("s1", "C1", None, "student", None),
        ("s2", "C1", None, "student", None),
    ])
    .await;
    let until = chrono::Utc::now() + chrono::Duration::seconds(15);
    let until_arg = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let id = except_ok(
        &env,
        &[
            "add",
            "--user",
            "h1",
            "--course",
            "C1",
            "--by",
            "Dana Whitfield",
            "--reason",
            "incomplete grade, finishing coursework",
            "--until",
            &until_arg,
        ],
        LOOSE,
    )
    .await;
    let id: i64 = id.trim().parse().expect("`except add` prints the new id");

    // Two cycles: h2 (no exception) is removed by the first; h1 is left active by both, and each report says so.
    let first = cycle(&env, LOOSE).await;
    assert_eq!(first["planned"]["remove"], 1, "h2 only: {first}");
    assert_eq!(first["details"]["excepted"], 1, "{first}");
    assert_eq!(state(&env, OTHER, 100), "completed");
    assert_eq!(state(&env, KEPT, 100), "active");
    let dry = env.cli(&["reconcile", "--dry-run"], LOOSE).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("excepted: 1 change not planned"),
        "the plan text mentions it: {}",
        text(&dry.stdout)
    );
    let second = cycle(&env, LOOSE).await;
    assert_eq!(second["planned"]["remove"], 0, "{second}");
    assert_eq!(second["details"]["excepted"], 1, "{second}");
    assert_eq!(state(&env, KEPT, 100), "active");
    assert!(
        chrono::Utc::now() < until,
        "the cycles took longer than the exception lasts; the test cannot tell expiry from exception"
    );
    let writes = env.writes();

    // Expired: no command ran, and the next cycle removes it like any enrollment the SIS does not list.
    let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(1500)).await;
    assert_eq!(env.writes(), writes, "nothing happened meanwhile");
    let listed = except_ok(&env, &["list"], LOOSE).await;
    assert!(
        listed.starts_with("no active exceptions"),
        "an expired exception is not listed: {listed}"
    );
    let all = except_ok(&env, &["list", "--all"], LOOSE).await;
    assert!(all.contains("expired") && all.contains("h1"), "{all}");
    let third = cycle(&env, LOOSE).await;
    assert_eq!(third["details"]["excepted"], 0, "{third}");
    assert_eq!(third["planned"]["remove"], 1, "{third}");
    assert_eq!(state(&env, KEPT, 100), "completed");
    let audit = env.audit(third["run_id"].as_str().expect("run id")).await;
    assert!(
        audit.iter().any(|r| r.action == "remove"
            && r.user_id.as_deref() == Some("h1")
            && r.outcome == "applied"),
        "{audit:?}"
    );

    // The row stays: who added it, why, until when.
    let row = sqlx::query(
        "SELECT user_id, course_id, created_by, reason, expires_at IS NOT NULL AS expires, removed_at \
         FROM rostersync.exceptions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&env.pool)
    .await
    .expect("the exception row is kept");
    assert_eq!(row.get::<String, _>("user_id"), "h1");
    assert_eq!(
        row.get::<Option<String>, _>("course_id").as_deref(),
        Some("C1")
    );
    assert_eq!(row.get::<String, _>("created_by"), "Dana Whitfield");
    assert!(row.get::<bool, _>("expires"));
    assert!(
        row.get::<Option<chrono::DateTime<chrono::Utc>>, _>("removed_at")
            .is_none()
    );
}

/// Every course, a login id typed in another case (`sis_login_id` compares case-insensitively), `list`, `remove`.
#[tokio::test]
async fn except_list_and_remove_work_and_a_removed_exception_stops_applying() {
    let env = district().await;
    env.sis(&[
        ("s1@example.edu", "C1", None, "student", None),
        ("S2@example.edu", "C1", None, "student", None),
        ("s1@example.edu", "C2", None, "student", None),
        ("s2@example.edu", "C2", None, "student", None),
    ])
    .await;
    let id = except_ok(
        &env,
        &[
            "add",
            "--user",
            "H1@Example.EDU",
            "--by",
            "Dana Whitfield",
            "--reason",
            "guest lecturer",
        ],
        LOGIN_IDS,
    )
    .await;
    let id = id.trim().to_owned();
    assert!(id.parse::<i64>().is_ok(), "the id alone on stdout: {id:?}");

    let listed = except_ok(&env, &["list"], LOGIN_IDS).await;
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("exception {id} listed: {listed}"));
    for s in [
        "H1@Example.EDU",
        "(every course)",
        "Dana Whitfield",
        "guest lecturer",
    ] {
        assert!(line.contains(s), "{line}");
    }
    assert!(listed.contains("1 active exception") && listed.contains("--all"));

    // h1 is held in both courses; h2 (no exception) is removed.
    let report = cycle(&env, LOGIN_IDS).await;
    assert_eq!(report["details"]["excepted"], 2, "{report}");
    assert_eq!(report["planned"]["remove"], 1, "h2 only: {report}");
    assert_eq!(state(&env, KEPT, 100), "active");
    assert_eq!(state(&env, KEPT, 101), "active");
    assert_eq!(state(&env, OTHER, 100), "completed");

    let removed = except_ok(&env, &["remove", &id, "--by", "Lee Park"], LOGIN_IDS).await;
    assert!(
        removed.contains(&format!("exception {id} removed")),
        "{removed}"
    );
    refused(
        &env,
        &["remove", &id, "--by", "Lee Park"],
        &["already removed by Lee Park"],
    )
    .await;
    let listed = except_ok(&env, &["list"], LOGIN_IDS).await;
    assert!(listed.starts_with("no active exceptions"), "{listed}");
    let all = except_ok(&env, &["list", "--all"], LOGIN_IDS).await;
    assert!(all.contains("removed by Lee Park"), "{all}");

    let report = cycle(&env, LOGIN_IDS).await;
    assert_eq!(report["details"]["excepted"], 0, "{report}");
    assert_eq!(report["planned"]["remove"], 2, "{report}");
    assert_eq!(state(&env, KEPT, 100), "completed");
    assert_eq!(state(&env, KEPT, 101), "completed");

    let (by, removed_at): (Option<String>, bool) = sqlx::query_as(
        "SELECT removed_by, removed_at IS NOT NULL FROM rostersync.exceptions WHERE id = $1",
    )
    .bind(id.parse::<i64>().expect("id"))
    .fetch_one(&env.pool)
    .await
    .expect("the removed exception's row is kept");
    assert_eq!(by.as_deref(), Some("Lee Park"));
    assert!(removed_at);
}

#[tokio::test]
async fn bad_except_input_exits_1_and_says_what_to_do() {
    let env = district().await;
    env.sis(&[("s1", "C1", None, "student", None)]).await;
    let add = |extra: &'static [&'static str]| {
        let mut args = vec!["add", "--user", "h1"];
        args.extend_from_slice(extra);
        args
    };
    refused(&env, &add(&["--reason", "r"]), &["--by needs a name"]).await;
    refused(
        &env,
        &add(&["--by", "  ", "--reason", "r"]),
        &["--by needs a name"],
    )
    .await;
    refused(&env, &add(&["--by", "Dana"]), &["--reason needs a text"]).await;
    refused(
        &env,
        &add(&["--by", "Dana", "--reason", "r", "--until", "2020-01-01"]),
        &["--until", "not in the future"],
    )
    .await;
    refused(
        &env,
        &add(&["--by", "Dana", "--reason", "r", "--until", "next week"]),
        &["--until", "RFC 3339"],
    )
    .await;
    refused(
        &env,
        &add(&["--by", "Dana", "--reason", "r", "--course", "C2"]),
        &["course `C2` is not managed", "leave --course out"],
    )
    .await;
    refused(
        &env,
        &["add", "--user", " h1", "--by", "Dana", "--reason", "r"],
        &["--user", "surrounding spaces"],
    )
    .await;
    refused(
        &env,
        &["remove", "999", "--by", "Dana"],
        &["exception 999 is unknown", "except list --all"],
    )
    .await;
    refused(
        &env,
        &["remove", "abc", "--by", "Dana"],
        &["`abc` is not an exception id"],
    )
    .await;
    let id = except_ok(
        &env,
        &[
            "add", "--user", "h1", "--course", "C1", "--by", "Dana", "--reason", "r",
        ],
        LOOSE,
    )
    .await;
    refused(&env, &["remove", id.trim()], &["--by needs a name"]).await;

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rostersync.exceptions")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(rows, 1, "only the one good `add` recorded anything");
    let removed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.exceptions WHERE removed_at IS NOT NULL",
    )
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(removed, 0, "a `remove` without --by removed nothing");
}

/// An exception added after a dry run was reviewed holds its user there too: `apply` skips that change as
/// `excepted:` and makes the rest.
#[tokio::test]
async fn apply_of_a_reviewed_run_skips_a_user_excepted_since() {
    let env = district().await;
    env.sis(&[
        ("s1", "C1", None, "student", None),
        ("s2", "C1", None, "student", None),
    ])
    .await;
    let out = env.cli(&["reconcile", "--dry-run", "--json"], LOOSE).await;
    let dry = json_report(&out);
    assert_eq!(dry["planned"]["remove"], 2, "h1 and h2 in C1: {dry}");
    except_ok(
        &env,
        &[
            "add",
            "--user",
            "h1",
            "--course",
            "C1",
            "--by",
            "Dee",
            "--reason",
            "student teacher",
        ],
        LOOSE,
    )
    .await;
    let out = env
        .cli(
            &[
                "apply",
                dry["run_id"].as_str().expect("id"),
                "--by",
                "Sam",
                "--json",
            ],
            LOOSE,
        )
        .await;
    let applied = json_report(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{applied}\n{}",
        text(&out.stderr)
    );
    assert_eq!(
        state(&env, KEPT, 100),
        "active",
        "excepted since the review"
    );
    assert_eq!(state(&env, OTHER, 100), "completed");
    let rows = env.audit(applied["run_id"].as_str().expect("id")).await;
    assert!(
        rows.iter().any(|r| r.user_id.as_deref() == Some("h1")
            && r.outcome == "skipped"
            && r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("excepted:"))),
        "{rows:?}"
    );
}
