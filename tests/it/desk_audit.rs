//! `rostersync audit` as a help desk uses it: two real cycles fill the audit log (applied and skipped rows, SIS
//! values with commas, quotes and a newline), then the built binary's csv, json and table output is held against
//! the database row by row, and bad filters must exit 1 with a message that says what to do.

use canvas_sim::Seed;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row as _;

use crate::support::*;

/// Two of the three live enrollments lose access (a removal and a role change): above the default brake.
const LOOSE_GUARD: &str = "[reconcile]\nmax_removal_ratio = 1.0";
/// A SIS user Canvas does not have, whose id a naive CSV writer would split or mangle.
const ODD_USER: &str = "o'neil, \"pat\"";
/// A role nobody defined: skipped, and stored as the SIS sent it (comma, quotes, newline).
const ODD_ROLE: &str = "Lab \"Aide\", senior\nsecond line";

const COLUMNS: [&str; 16] = [
    "id",
    "run_id",
    "occurred_at",
    "action",
    "user_id",
    "course_id",
    "section_id",
    "role_before",
    "role_after",
    "state_before",
    "state_after",
    "canvas_enrollment_id",
    "outcome",
    "error",
    "dry_run",
    "approved_by",
];

/// stu1 stays; stu2 is removed; stu3 is enrolled (and has a skipped row with `ODD_ROLE` in SCI-200); tch7 changes
/// role; `ODD_USER` is skipped (not in Canvas).
fn district() -> Seed {
    Seed::default()
        .user(user(1, "stu1"))
        .user(user(2, "stu2"))
        .user(user(3, "stu3"))
        .user(user(7, "tch7"))
        .course(course(101, "MATH-101"))
        .course(course(102, "SCI-200"))
        .section(section(201, 101, "MATH-101-A"))
        .enrollment(enrolled(1, 101, STUDENT, "active").in_section(201))
        .enrollment(enrolled(2, 101, STUDENT, "active").in_section(201))
        .enrollment(enrolled(7, 101, STUDENT, "active").in_section(201))
}

/// An audit row's 16 columns as text, in `COLUMNS` order: NULL = None, `occurred_at` in microseconds.
type Fields = Vec<Option<String>>;

/// One audit row from the database.
#[derive(Debug, Clone)]
struct LogRow {
    fields: Fields,
    occurred_at: DateTime<Utc>,
}

impl LogRow {
    fn get(&self, column: &str) -> Option<&str> {
        let i = COLUMNS.iter().position(|c| *c == column).expect("column");
        self.fields[i].as_deref()
    }
}

struct Logged {
    env: TestEnv,
    first: String,
    second: String,
}

/// Two cycles through the built binary, as an operator runs them; the second re-audits the skipped rows.
async fn two_runs() -> Logged {
    let env = TestEnv::new(district()).await;
    env.sis(&[
        ("stu1", "MATH-101", Some("MATH-101-A"), "student", None),
        ("stu3", "MATH-101", Some("MATH-101-A"), "student", None),
        ("tch7", "MATH-101", Some("MATH-101-A"), "teacher", None),
        ("stu3", "SCI-200", None, ODD_ROLE, None),
        (ODD_USER, "SCI-200", None, "student", None),
    ])
    .await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let out = env.cli(&["reconcile", "--json"], LOOSE_GUARD).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        runs.push(
            json_report(&out)["run_id"]
                .as_str()
                .expect("run_id")
                .to_owned(),
        );
    }
    let [first, second] = <[String; 2]>::try_from(runs).expect("two runs");
    Logged { env, first, second }
}

/// The whole log, newest first (sorted here, not by the database, so the command's order is checked).
async fn log(env: &TestEnv) -> Vec<LogRow> {
    let rows = sqlx::query(
        "SELECT id, run_id, occurred_at, action, user_id, course_id, section_id, role_before, role_after, \
         state_before, state_after, canvas_enrollment_id, outcome, error, dry_run, approved_by \
         FROM rostersync.audit_log",
    )
    .fetch_all(&env.pool)
    .await
    .expect("read audit log");
    let mut log: Vec<(i64, LogRow)> = rows
        .iter()
        .map(|r| {
            let id: i64 = r.get("id");
            let occurred_at: DateTime<Utc> = r.get("occurred_at");
            let text = |c: &str| r.get::<Option<String>, _>(c);
            let fields = vec![
                Some(id.to_string()),
                text("run_id"),
                Some(occurred_at.timestamp_micros().to_string()),
                text("action"),
                text("user_id"),
                text("course_id"),
                text("section_id"),
                text("role_before"),
                text("role_after"),
                text("state_before"),
                text("state_after"),
                r.get::<Option<i64>, _>("canvas_enrollment_id")
                    .map(|v| v.to_string()),
                text("outcome"),
                text("error"),
                Some(r.get::<bool, _>("dry_run").to_string()),
                text("approved_by"),
            ];
            (
                id,
                LogRow {
                    fields,
                    occurred_at,
                },
            )
        })
        .collect();
    log.sort_by(|(a_id, a), (b_id, b)| b.occurred_at.cmp(&a.occurred_at).then(b_id.cmp(a_id)));
    log.into_iter().map(|(_, row)| row).collect()
}

fn expect(log: &[LogRow], keep: impl Fn(&LogRow) -> bool) -> Vec<Fields> {
    log.iter()
        .filter(|r| keep(r))
        .map(|r| r.fields.clone())
        .collect()
}

fn micros(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("occurred_at `{rfc3339}` is not RFC 3339: {e}"))
        .timestamp_micros()
        .to_string()
}

async fn audit(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    env.cli(&all, "").await
}

/// `audit --format csv ARGS`, parsed: exit 0, the documented header, each record as 16 fields.
async fn audit_csv(env: &TestEnv, args: &[&str]) -> Vec<Fields> {
    let mut all = vec!["--format", "csv"];
    all.extend_from_slice(args);
    let out = audit(env, &all).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        reader.headers().expect("csv header"),
        COLUMNS.as_slice(),
        "{args:?}"
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{args:?}: bad csv: {e}"));
            assert_eq!(r.len(), COLUMNS.len(), "{r:?}");
            r.iter()
                .enumerate()
                .map(|(i, f)| match (i, f) {
                    (_, "") => None,
                    (2, t) => Some(micros(t)),
                    (_, f) => Some(f.to_owned()),
                })
                .collect()
        })
        .collect()
}

/// `audit --format json ARGS`, parsed: exit 0, one object per line with exactly the 16 fields.
async fn audit_json(env: &TestEnv, args: &[&str]) -> Vec<Fields> {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = audit(env, &all).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{args:?}: not a JSON line ({e}): {line}"));
            let object = v.as_object().expect("one object per line");
            assert_eq!(object.len(), COLUMNS.len(), "{line}");
            COLUMNS
                .iter()
                .map(|c| match &object[*c] {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) if *c == "occurred_at" => Some(micros(s)),
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn csv_for_a_user_round_trips_every_field_of_the_log() {
    let Logged { env, .. } = two_runs().await;
    let log = log(&env).await;

    let stu3 = expect(&log, |r| r.get("user_id") == Some("stu3"));
    let outcomes: Vec<&str> = log
        .iter()
        .filter(|r| r.get("user_id") == Some("stu3"))
        .filter_map(|r| r.get("outcome"))
        .collect();
    assert!(
        outcomes.contains(&"applied") && outcomes.contains(&"skipped"),
        "the test needs both: {outcomes:?}"
    );
    assert!(
        stu3.iter()
            .flatten()
            .flatten()
            .any(|f| f.contains(',') && f.contains('"') && f.contains('\n')),
        "a field with a comma, a quote and a newline makes the round trip meaningful: {stu3:?}"
    );
    assert_eq!(audit_csv(&env, &["--user", "stu3"]).await, stu3);

    let odd = expect(&log, |r| r.get("user_id") == Some(ODD_USER));
    assert_eq!(odd.len(), 2, "skipped in both runs: {odd:?}");
    assert_eq!(audit_csv(&env, &["--user", ODD_USER]).await, odd);

    // Exact ids: no prefix, no case folding.
    assert!(audit_csv(&env, &["--user", "stu"]).await.is_empty());
    assert!(audit_csv(&env, &["--user", "STU3"]).await.is_empty());
}

#[tokio::test]
async fn json_lines_match_the_log_and_each_filter_narrows_it() {
    let Logged { env, first, second } = two_runs().await;
    let log = log(&env).await;
    let all = expect(&log, |_| true);
    assert_eq!(audit_json(&env, &[]).await, all, "every row, newest first");

    let since = log
        .iter()
        .filter(|r| r.get("run_id") == Some(second.as_str()))
        .map(|r| r.occurred_at)
        .min()
        .expect("rows of the second run");
    let since_text = since.to_rfc3339_opts(SecondsFormat::Micros, true);
    let short_second = &second[second.len() - 8..];
    let cases: Vec<(Vec<&str>, Vec<Fields>)> = vec![
        (
            vec!["--run", &second],
            expect(&log, |r| r.get("run_id") == Some(second.as_str())),
        ),
        (
            vec!["--run", short_second],
            expect(&log, |r| r.get("run_id") == Some(second.as_str())),
        ),
        (
            vec!["--outcome", "applied"],
            expect(&log, |r| r.get("outcome") == Some("applied")),
        ),
        (
            vec!["--outcome", "skipped", "--run", &first],
            expect(&log, |r| {
                r.get("outcome") == Some("skipped") && r.get("run_id") == Some(first.as_str())
            }),
        ),
        (
            vec!["--course", "SCI-200", "--user", "stu3"],
            expect(&log, |r| {
                r.get("course_id") == Some("SCI-200") && r.get("user_id") == Some("stu3")
            }),
        ),
        (
            vec!["--since", &since_text],
            expect(&log, |r| r.occurred_at >= since),
        ),
    ];
    for (args, expected) in cases {
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{args:?} must narrow the log to some rows: {expected:?}"
        );
        assert_eq!(audit_json(&env, &args).await, expected, "{args:?}");
        assert_eq!(audit_csv(&env, &args).await, expected, "{args:?}");
    }
    assert_eq!(audit_json(&env, &["--since", "2000-01-01"]).await, all);
    assert!(
        audit_json(&env, &["--since", "2999-01-01"])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_table_has_one_aligned_line_per_row_with_the_change() {
    let Logged { env, first, .. } = two_runs().await;
    let log = log(&env).await;

    let out = audit(&env, &["--run", &first]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    println!("audit --run {first}:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    let rows = log
        .iter()
        .filter(|r| r.get("run_id") == Some(first.as_str()))
        .count();
    assert_eq!(
        lines.len(),
        rows + 1,
        "a header and one line per row, even for a value with a newline:\n{text}"
    );
    let header = lines[0];
    for column in [
        "TIME (UTC)",
        "RUN",
        "ACTION",
        "USER",
        "COURSE",
        "SECTION",
        "CHANGE",
        "OUTCOME",
        "ERROR",
    ] {
        assert!(header.contains(column), "{header}");
    }
    // Aligned: every row has its run id and its outcome where the (ASCII) header puts those columns.
    let short = &first[first.len() - 8..];
    let run_at = header.find("RUN").expect("RUN");
    let outcome_at = header.find("OUTCOME").expect("OUTCOME");
    let at = |line: &str, column: usize, len: usize| -> String {
        line.chars().skip(column).take(len).collect()
    };
    for line in &lines[1..] {
        assert_eq!(at(line, run_at, 8), short, "{text}");
        let outcome = at(line, outcome_at, 8);
        assert!(
            ["applied", "skipped"].contains(&outcome.trim_end()),
            "{outcome:?}:\n{text}"
        );
    }
    let tch7 = lines
        .iter()
        .find(|l| l.contains("tch7"))
        .expect("tch7's row");
    assert!(
        tch7.contains("StudentEnrollment→TeacherEnrollment"),
        "{tch7}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Lab \"Aide\", senior second line")),
        "the newline became a space: {text}"
    );
    assert!(
        lines.iter().all(|l| l.chars().count() <= 240),
        "long values are cut: {text}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with('…')),
        "a long error is cut with an ellipsis: {text}"
    );

    let none = audit(&env, &["--user", "nobody-at-all"]).await;
    assert_eq!(none.status.code(), Some(0));
    assert!(none.stdout.is_empty());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no audit rows match"));
}

#[tokio::test]
async fn bad_filters_exit_1_and_say_what_to_do() {
    let Logged { env, .. } = two_runs().await;
    let failing = |out: &std::process::Output| {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing on stdout");
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    let e = failing(&audit(&env, &["--outcome", "done"]).await);
    assert!(e.contains("--outcome `done`"), "{e}");
    for o in [
        "planned", "applied", "failed", "skipped", "held", "deferred",
    ] {
        assert!(e.contains(o), "{e}");
    }

    let e = failing(&audit(&env, &["--format", "xml"]).await);
    assert!(
        e.contains("--format `xml`") && e.contains("table, csv or json"),
        "{e}"
    );

    let e = failing(&audit(&env, &["--since", "yesterday"]).await);
    assert!(
        e.contains("--since `yesterday`") && e.contains("RFC 3339"),
        "{e}"
    );

    let e = failing(&audit(&env, &["--run", "0193-no-such-run"]).await);
    assert!(
        e.contains("0193-no-such-run") && e.contains("rostersync audit --since"),
        "{e}"
    );

    // Two runs whose ids end alike: the short form is ambiguous and names both.
    for id in ["aaaa-deadbeef", "bbbb-deadbeef"] {
        sqlx::query("INSERT INTO rostersync.sync_runs (id, status) VALUES ($1, 'succeeded')")
            .bind(id)
            .execute(&env.pool)
            .await
            .expect("insert run");
    }
    let e = failing(&audit(&env, &["--run", "deadbeef"]).await);
    assert!(
        e.contains("aaaa-deadbeef") && e.contains("bbbb-deadbeef"),
        "{e}"
    );
    assert!(
        audit_csv(&env, &["--run", "aaaa-deadbeef"])
            .await
            .is_empty()
    );

    // A database error names the database, never its password.
    let mut url = url::Url::parse(&env.db_url).expect("db url");
    url.set_password(Some("canary-pw-5521"))
        .expect("a password");
    url.set_path("/no_such_database_for_audit");
    let config = env.dir.path().join("wrong-db.toml");
    std::fs::write(&config, env.toml("").replace(&env.db_url, url.as_str())).expect("config");
    let out = run_with_config(&config, &["audit"]).await;
    let e = failing(&out);
    assert!(e.contains("no_such_database_for_audit"), "{e}");
    assert!(!e.contains("canary-pw-5521"), "{e}");
}
