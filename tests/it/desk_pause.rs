//! `rostersync pause` / `resume` and `[[schedule.pause]]` windows (CONTRACT v2), driven through the built binary: a
//! paused cycle plans and audits but never writes to Canvas and says why; `apply` is refused; resuming lets the next
//! cycle apply; a daemon shows `rostersync_paused 1` meanwhile.

use std::process::Output;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use sqlx::Row as _;

use crate::support::*;

const POST_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
/// What every paused cycle logs, once.
const PAUSED_LOG: &str = "paused: this cycle plans and audits but changes nothing in Canvas";

/// Three users the SIS enrols in one course that Canvas has without them: a cycle that may write makes 3 enrolls.
async fn three_to_enrol() -> TestEnv {
    let (seed, rows) = roster(3);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    env
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command's exit code and its last stderr line (the `error: ...` line of a refusal).
fn refused(out: &Output) -> (Option<i32>, String) {
    let err = stderr(out);
    let last = err.lines().last().unwrap_or_default().to_owned();
    (out.status.code(), last)
}

fn in_(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn reconcile_json(env: &TestEnv, extra: &str) -> (Option<i32>, serde_json::Value, String) {
    let out = env.cli(&["reconcile", "--json"], extra).await;
    let report = json_report(&out);
    (out.status.code(), report, stderr(&out))
}

/// `(paused_by, reason, until set, paused_as set, resumed_by, resumed_at set)` of every pause row, oldest first.
type PauseRow = (String, Option<String>, bool, bool, Option<String>, bool);

async fn pause_rows(env: &TestEnv) -> Vec<PauseRow> {
    sqlx::query(
        "SELECT paused_by, reason, until IS NOT NULL AS has_until, paused_as IS NOT NULL AS has_as, resumed_by, \
         resumed_at IS NOT NULL AS resumed FROM rostersync.pauses ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .expect("read rostersync.pauses")
    .into_iter()
    .map(|r| {
        (
            r.get("paused_by"),
            r.get("reason"),
            r.get("has_until"),
            r.get("has_as"),
            r.get("resumed_by"),
            r.get("resumed"),
        )
    })
    .collect()
}

/// Checks a paused cycle: a dry run that planned the 3 enrolls, audited them `planned` with dry_run, wrote nothing,
/// said why in `details.paused` (containing each of `why`), and logged it once.
async fn assert_paused_cycle(
    env: &TestEnv,
    code: Option<i32>,
    report: &serde_json::Value,
    log: &str,
    why: &[&str],
) {
    assert_eq!(code, Some(0), "{report}\n{log}");
    assert_eq!(report["dry_run"], true, "{report}");
    assert_eq!(report["planned"]["enroll"].as_u64(), Some(3), "{report}");
    assert_eq!(report["applied"].as_u64(), Some(0), "{report}");
    let paused = report["details"]["paused"].as_str().unwrap_or_default();
    for word in why {
        assert!(
            paused.contains(word),
            "details.paused lacks {word:?}: {report}"
        );
    }
    assert_eq!(env.writes(), 0, "a paused cycle wrote to Canvas");
    let run = report["run_id"].as_str().unwrap_or_default();
    let rows = env.audit(run).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.outcome == "planned" && r.dry_run),
        "{rows:?}"
    );
    let dry: bool = sqlx::query_scalar("SELECT dry_run FROM rostersync.sync_runs WHERE id = $1")
        .bind(run)
        .fetch_one(&env.pool)
        .await
        .expect("run row");
    assert!(dry, "the run record says dry_run");
    assert_eq!(log.matches(PAUSED_LOG).count(), 1, "{log}");
}

#[tokio::test]
async fn a_pause_makes_reconcile_plan_without_writing_apply_is_refused_and_resume_lets_the_next_cycle_apply()
 {
    let env = three_to_enrol().await;
    let out = env
        .cli(
            &[
                "pause",
                "--by",
                "Dana Whitfield",
                "--reason",
                "summer rollover",
                "--until",
                &in_(3600),
            ],
            "",
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert_eq!(said.lines().count(), 1, "one confirmation line: {said}");
    assert!(
        said.contains("paused by Dana Whitfield since")
            && said.contains(" until 20")
            && said.contains("summer rollover")
            && said.contains("rostersync resume --by NAME"),
        "{said}"
    );
    assert_eq!(
        pause_rows(&env).await,
        vec![(
            "Dana Whitfield".into(),
            Some("summer rollover".into()),
            true,
            true,
            None,
            false
        )]
    );

    let (code, report, log) = reconcile_json(&env, "").await;
    assert_paused_cycle(
        &env,
        code,
        &report,
        &log,
        &["paused by Dana Whitfield", "summer rollover", "until 20"],
    )
    .await;

    // The plain-text plan says so too.
    let out = env.cli(&["reconcile"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("paused by Dana Whitfield"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.writes(), 0);

    // `apply` of the paused run is refused: it would change Canvas while paused.
    let run = report["run_id"].as_str().unwrap_or_default().to_owned();
    let out = env.cli(&["apply", &run, "--by", "Sam"], "").await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1), "{}", stderr(&out));
    assert!(
        why.starts_with("error: rostersync is paused by Dana Whitfield")
            && why.contains("rostersync resume --by NAME"),
        "{why}"
    );
    assert_eq!(env.writes(), 0, "apply wrote while paused");

    // A second pause names the first and says what to do.
    let out = env.cli(&["pause", "--by", "Eve"], "").await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1));
    assert!(
        why.contains("already paused by Dana Whitfield since") && why.contains("resume --by NAME"),
        "{why}"
    );
    assert_eq!(
        pause_rows(&env).await.len(),
        1,
        "a refused pause wrote a row"
    );

    let out = env.cli(&["resume", "--by", "Sam Okafor"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("resumed by Sam Okafor: ended the pause by Dana Whitfield")
            && said.contains("the next cycle changes Canvas again"),
        "{said}"
    );
    // Rows are never deleted: the pause is closed, with who ended it.
    let rows = pause_rows(&env).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].4.as_deref(), Some("Sam Okafor"));
    assert!(rows[0].5, "resumed_at is set");

    let (code, report, log) = reconcile_json(&env, "").await;
    assert_eq!(code, Some(0), "{report}\n{log}");
    assert_eq!(report["dry_run"], false, "{report}");
    assert!(report["details"]["paused"].is_null(), "{report}");
    assert_eq!(report["applied"].as_u64(), Some(3), "{report}");
    assert_eq!(env.sim.count("POST", POST_ENROLLMENTS), 3);
    assert!(!log.contains(PAUSED_LOG), "{log}");

    // Nothing left to resume: refused, naming the last pause.
    let out = env.cli(&["resume", "--by", "Sam Okafor"], "").await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1));
    assert!(
        why.contains("not paused") && why.contains("was resumed by Sam Okafor"),
        "{why}"
    );
}

#[tokio::test]
async fn pause_and_resume_refuse_what_makes_no_sense_with_exit_1_and_what_to_do() {
    let env = three_to_enrol().await;
    let out = env.cli(&["resume", "--by", "Sam"], "").await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1), "{}", stderr(&out));
    assert!(
        why.contains("not paused") && why.contains("nothing to resume"),
        "{why}"
    );

    for (args, expected) in [
        (
            vec!["pause", "--by", "Dana", "--until", "2020-01-01"],
            "--until 2020-01-01T00:00:00Z is not in the future",
        ),
        (
            vec!["pause", "--by", "Dana", "--until", "tomorrow"],
            "--until `tomorrow` is not a time: use RFC 3339",
        ),
        (vec!["pause", "--reason", "x"], "--by needs a name"),
        (vec!["pause", "--by", "  "], "--by needs a name"),
        (vec!["resume"], "--by needs a name"),
    ] {
        let out = env.cli(&args, "").await;
        let (code, why) = refused(&out);
        assert_eq!(code, Some(1), "{args:?}: {}", stderr(&out));
        assert!(why.contains(expected), "{args:?}: {why}");
    }
    assert!(pause_rows(&env).await.is_empty(), "a refused pause wrote");

    // A pause with --until ends by itself; another may then be opened.
    let out = env
        .cli(&["pause", "--by", "Dana", "--until", &in_(3)], "")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, report, log) = reconcile_json(&env, "").await;
    assert_paused_cycle(
        &env,
        code,
        &report,
        &log,
        &["paused by Dana", "(no reason given)"],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, report, _) = reconcile_json(&env, "").await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["dry_run"], false, "the pause ran out: {report}");
    assert_eq!(report["applied"].as_u64(), Some(3), "{report}");
    let out = env.cli(&["resume", "--by", "Sam"], "").await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1));
    assert!(why.contains("by Dana, ran out at"), "{why}");
    let out = env.cli(&["pause", "--by", "Eve"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("until `rostersync resume` (no reason given)"),
        "{}",
        stdout(&out)
    );
}

/// A `[[schedule.pause]]` window around now, in `TestEnv::toml`'s extra.
fn window(from: &str, to: &str, reason: &str) -> String {
    format!("[[schedule.pause]]\nfrom = \"{from}\"\nto = \"{to}\"\nreason = \"{reason}\"\n")
}

#[tokio::test]
async fn a_config_window_covering_now_makes_the_cycle_a_dry_run_and_only_the_config_ends_it() {
    let env = three_to_enrol().await;
    let summer = format!(
        "{}{}",
        window("2020-01-01", "2020-02-01", "long ago"),
        window(&in_(-3600), &in_(3600), "summer rollover")
    );
    let (code, report, log) = reconcile_json(&env, &summer).await;
    assert_paused_cycle(
        &env,
        code,
        &report,
        &log,
        &["configuration window schedule.pause[1]", "summer rollover"],
    )
    .await;

    // Neither resume nor apply gets past a window; both say how it ends.
    let out = env.cli(&["resume", "--by", "Sam"], &summer).await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1), "{}", stderr(&out));
    assert!(
        why.contains("resume does not end a configuration window")
            && why.contains("schedule.pause[1]"),
        "{why}"
    );
    let run = report["run_id"].as_str().unwrap_or_default().to_owned();
    let out = env.cli(&["apply", &run, "--by", "Sam"], &summer).await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1), "{}", stderr(&out));
    assert!(
        why.contains("paused by the configuration window schedule.pause[1]")
            && why.contains("the window ends at"),
        "{why}"
    );
    assert_eq!(env.writes(), 0);

    // A window written backwards is a configuration error naming the entry.
    let backwards = window("2027-07-15", "2027-07-01", "rollover");
    let out = env.cli(&["reconcile"], &backwards).await;
    let (code, why) = refused(&out);
    assert_eq!(code, Some(1));
    assert!(
        why.contains("configuration key `schedule.pause[0].to`") && why.contains("not after"),
        "{why}"
    );

    // Windows that do not cover now hold nothing.
    let elsewhere = format!(
        "{}{}",
        window("2020-01-01", "2020-02-01", "long ago"),
        window(&in_(3600), &in_(7200), "later")
    );
    let (code, report, log) = reconcile_json(&env, &elsewhere).await;
    assert_eq!(code, Some(0), "{report}\n{log}");
    assert_eq!(report["dry_run"], false, "{report}");
    assert_eq!(report["applied"].as_u64(), Some(3), "{report}");
}

#[tokio::test]
async fn a_paused_daemon_reports_rostersync_paused_1_changes_nothing_and_applies_once_resumed() {
    let env = three_to_enrol().await;
    let out = env
        .cli(&["pause", "--by", "Dana", "--reason", "SIS upgrade"], "")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut d = Daemon::start(&env, "*/2 * * * * *", "").await;
    let text = d
        .wait_for(
            Duration::from_secs(30),
            |b, _| cycles(b, "succeeded") >= 2.0,
            "/metrics",
        )
        .await;
    assert_eq!(metric(&text, "rostersync_paused "), Some(1.0), "{text}");
    assert!(text.contains("# TYPE rostersync_paused gauge"), "{text}");
    assert_eq!(env.writes(), 0, "a paused daemon wrote to Canvas");
    assert!(d.log().contains(PAUSED_LOG), "{}", d.log());
    assert!(d.log().contains("SIS upgrade"), "{}", d.log());

    let out = env.cli(&["resume", "--by", "Sam"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = d
        .wait_for(
            Duration::from_secs(30),
            |b, _| {
                metric(
                    b,
                    "rostersync_changes_total{action=\"enroll\",outcome=\"applied\"}",
                ) == Some(3.0)
            },
            "/metrics",
        )
        .await;
    assert_eq!(metric(&text, "rostersync_paused "), Some(0.0), "{text}");
    assert_eq!(env.sim.count("POST", POST_ENROLLMENTS), 3);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
}

/// CONTRACT v2 "The brake": `resume --by NAME` is one of the two ways an operator acts on a sticky trip, paused or
/// not; the next cycle decides afresh.
#[tokio::test]
async fn resume_clears_a_sticky_trip_and_the_next_cycle_decides_afresh() {
    let mut seed = canvas_sim::Seed::default().course(course(100, "C1"));
    let mut rows = Vec::new();
    for i in 1..=30u64 {
        let sis = format!("s{i}");
        seed = seed
            .user(user(i, &sis))
            .enrollment(enrolled(i, 100, STUDENT, "active"));
        rows.push(sis);
    }
    let env = TestEnv::new(seed).await;
    let sis = |n: usize| -> Vec<Row5<'_>> {
        rows[..n]
            .iter()
            .map(|u| (u.as_str(), "C1", None, "student", None))
            .collect()
    };
    env.sis(&sis(20)).await;
    let (code, report, _) = reconcile_json(&env, "").await;
    assert_eq!(code, Some(3), "10 of 30 removed trips the brake: {report}");
    // One removal is within every limit, yet the trip stands until an operator acts.
    env.clear_sis().await;
    env.sis(&sis(29)).await;
    let (code, report, _) = reconcile_json(&env, "").await;
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(env.writes(), 0);

    let out = env.cli(&["resume", "--by", "Sam"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("resumed by Sam: cleared the brake's trip"),
        "{}",
        stdout(&out)
    );
    let (code, report, _) = reconcile_json(&env, "").await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["applied"].as_u64(), Some(1), "{report}");
    // Nothing left to resume now.
    let out = env.cli(&["resume", "--by", "Sam"], "").await;
    assert_eq!(refused(&out).0, Some(1), "{}", stderr(&out));
}

/// While paused, the freshness check (SIS poll, NOTIFY) runs no scoped run: a scoped dry run records no fingerprints,
/// so it would plan the same courses at every poll. After `resume` the next check catches up.
#[tokio::test]
async fn freshness_checks_wait_while_paused_and_catch_up_after_resume() {
    let (seed, rows) = roster(4);
    let env = TestEnv::new(seed).await;
    load(&env, &rows[..3]).await;
    let mut d = Daemon::start(&env, "0 0 0 1 1 *", "[schedule]\nsis_poll_secs = 1\n").await;
    let enrolled = |n: f64| {
        move |b: &str, _: u16| {
            metric(
                b,
                "rostersync_changes_total{action=\"enroll\",outcome=\"applied\"}",
            ) == Some(n)
        }
    };
    d.wait_for(Duration::from_secs(30), enrolled(3.0), "/metrics")
        .await;
    let out = env.cli(&["pause", "--by", "Dana"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    load(&env, &rows[3..]).await;
    // The check notices the pause (and says so on /metrics) without a full cycle.
    d.wait_for(
        Duration::from_secs(30),
        |b, _| metric(b, "rostersync_paused ") == Some(1.0),
        "/metrics",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scoped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rostersync.sync_runs WHERE scope = 'courses'")
            .fetch_one(&env.pool)
            .await
            .expect("runs");
    assert_eq!(scoped, 0, "a scoped run while paused; log:\n{}", d.log());
    assert_eq!(env.sim.count("POST", POST_ENROLLMENTS), 3);

    let out = env.cli(&["resume", "--by", "Sam"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    d.wait_for(Duration::from_secs(30), enrolled(4.0), "/metrics")
        .await;
    assert_eq!(env.sim.count("POST", POST_ENROLLMENTS), 4);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
}
