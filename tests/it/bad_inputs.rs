//! RELIABILITY.md, the bad-input table: tests named `bNN_...` after their row. Rows that an earlier module pins
//! exactly are listed in the README's table with that test's name.

use std::collections::HashMap;

use canvas_sim::{FaultAction, FaultOptions, FaultRule, Seed};
use rostersync::config::{Settings, TokenSource};

use crate::support::*;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
const ENROLLMENT: &str = "/api/v1/courses/:course_id/enrollments/:id";

const BASE: &str = "[canvas]\nbase_url = \"https://c.example.edu\"\ntoken = \"t\"\n[database]\nurl = \"postgres://localhost/x\"\n";

fn config_error(toml: &str) -> String {
    Settings::from_toml_str(toml)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn env_map(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn b01_empty_or_whitespace_token_is_refused_and_a_trailing_newline_is_stripped() {
    for token in ["\"\"", "\"   \""] {
        let err = config_error(&BASE.replace("token = \"t\"", &format!("token = {token}")));
        assert!(err.contains("canvas token is empty"), "{err}");
    }
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "abc-123\n").expect("write");
    let loaded = TokenSource::File(file.clone()).load().expect("load");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&loaded), "abc-123");
    std::fs::write(&file, "  \n").expect("write");
    let err = TokenSource::File(file)
        .load()
        .expect_err("empty")
        .to_string();
    assert!(err.contains("empty") && !err.contains("abc"), "{err}");
}

#[test]
fn b02_both_or_neither_token_keys_name_the_keys_never_the_value() {
    let both = BASE.replace(
        "token = \"t\"",
        "token = \"secret-value\"\ntoken_file = \"/x\"",
    );
    let err = config_error(&both);
    assert!(
        err.contains("canvas.token") && err.contains("token_file") && !err.contains("secret-value"),
        "{err}"
    );
    let err = config_error(&BASE.replace("token = \"t\"\n", ""));
    assert!(err.contains("canvas.token"), "{err}");
}

#[tokio::test]
async fn b03_a_token_file_readable_by_others_gives_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "tok\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(
        TokenSource::File(file.clone())
            .permission_warning()
            .is_some()
    );
    let config = dir.path().join("c.toml");
    let port = crate::support::free_port();
    std::fs::write(
        &config,
        format!(
            "[canvas]\nbase_url = \"http://127.0.0.1:{port}\"\ntoken_file = \"{}\"\n[database]\nurl = \"postgres://nobody@127.0.0.1:{port}/x\"\n",
            file.display()
        ),
    )
    .expect("config");
    let out = rostersync_cmd()
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable by group or others") && stderr.contains("0400"),
        "{stderr}"
    );
    assert!(!stderr.contains("tok\n"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(TokenSource::File(file).permission_warning().is_none());
}

#[test]
fn b04_cleartext_or_credential_carrying_base_urls_are_refused() {
    for (url, needle) in [
        ("http://canvas.example.edu", "cleartext"),
        ("https://canvas.example.edu/?access_token=abc", "query"),
        (
            "https://user:pass@canvas.example.edu",
            "user name or password",
        ),
    ] {
        let err = config_error(&BASE.replace("https://c.example.edu", url));
        assert!(
            err.contains("canvas.base_url") && err.contains(needle),
            "{url}: {err}"
        );
        assert!(!err.contains("user:pass") && !err.contains("abc"), "{err}");
    }
    let allowed = BASE.replace(
        "https://c.example.edu\"",
        "http://canvas.example.edu\"\nallow_insecure_http = true",
    );
    assert!(Settings::from_toml_str(&allowed).is_ok());
}

#[tokio::test]
async fn b05_a_base_url_ending_in_api_v1_or_a_slash_is_normalised() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let config = env.toml("").replace(
        &env.sim.base_url(),
        &format!("{}/api/v1/", env.sim.base_url()),
    );
    let path = env.dir.path().join("api.toml");
    std::fs::write(&path, config).expect("config");
    let out = run_with_config(&path, &["reconcile", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .all(|r| !r.path_and_query.contains("/api/v1/api/v1"))
    );
}

#[test]
fn b06_a_ratio_out_of_range_nan_or_text_is_an_error_never_no_limit() {
    for bad in ["1.5", "-0.1", "nan", "\"20%\""] {
        let err = config_error(&format!("{BASE}[reconcile]\nmax_removal_ratio = {bad}\n"));
        assert!(err.contains("max_removal_ratio"), "{bad}: {err}");
    }
}

#[test]
fn b07_an_unknown_removal_mode_is_an_error_never_a_fallback() {
    for bad in ["Delete", "purge", ""] {
        let err = config_error(&format!("{BASE}[reconcile]\nremoval = \"{bad}\"\n"));
        assert!(
            err.contains("reconcile.removal") && err.contains("conclude, delete, inactivate, keep"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn b08_a_writing_enrollments_query_fails_in_the_read_only_transaction() {
    let (seed, rows) = roster(3);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let query =
        "DELETE FROM sis_enrollments RETURNING user_id, course_id, section_id, role, status";
    let extra = format!("[sis]\nenrollments_query = \"{query}\"");
    let out = env.cli(&["reconcile", "--json"], &extra).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("read-only transaction"))
    );
    let out = env.cli(&["check"], &extra).await;
    assert_eq!(out.status.code(), Some(1));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sis_enrollments")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(left, 3, "the SIS is untouched");
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn b09_a_query_with_wrong_columns_fails_at_start_never_zero_rows() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let out = env
        .cli(&["reconcile", "--json"], "[sis]\nenrollments_query = \"SELECT user_id, course_id, section_id, status FROM sis_enrollments\"")
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("column `role` is missing"))
    );
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[sis]\nenrollments_query = \"SELECT 42 AS user_id, course_id, section_id, role, status FROM sis_enrollments\"",
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("`user_id` is INT4, not text"))
    );
    assert_eq!(env.writes(), 0);
}

#[test]
fn b10_a_five_field_cron_says_six_fields_are_expected() {
    let err = config_error(&format!("{BASE}[schedule]\ncron = \"*/15 * * * *\"\n"));
    assert!(
        err.contains("schedule.cron") && err.contains("5 fields") && err.contains("6"),
        "{err}"
    );
}

#[test]
fn b11_dry_run_from_the_environment_never_becomes_false_when_unparsable() {
    let base = [
        ("ROSTERSYNC__CANVAS__BASE_URL", "https://c.example.edu"),
        ("ROSTERSYNC__CANVAS__TOKEN", "t"),
        ("ROSTERSYNC__DATABASE__URL", "postgres://localhost/x"),
    ];
    for truthy in ["true", "True", "1", "yes"] {
        let mut pairs = base.to_vec();
        pairs.push(("ROSTERSYNC__RECONCILE__DRY_RUN", truthy));
        let s = Settings::load_with_env(None, env_map(&pairs))
            .unwrap_or_else(|e| panic!("{truthy}: {e}"));
        assert!(s.reconcile.dry_run, "{truthy}");
    }
    for bad in ["maybe", "2", "ja", ""] {
        let mut pairs = base.to_vec();
        pairs.push(("ROSTERSYNC__RECONCILE__DRY_RUN", bad));
        let err = Settings::load_with_env(None, env_map(&pairs))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("dry_run"), "{bad} must be an error: {err}");
    }
}

#[tokio::test]
async fn b13_a_sixty_percent_drop_in_sis_rows_trips_the_ratio_brake() {
    let (seed, rows) = roster(50);
    let env = TestEnv::new(seed.clone()).await;
    load(&env, &rows).await;
    assert_eq!(env.reconcile("").await.status.as_str(), "succeeded");
    env.clear_sis().await;
    load(&env, &rows[..20]).await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        json_report(&out)["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("30 removals of 50"))
    );
    assert_eq!(env.sim.count("DELETE", ENROLLMENT), 0);
}

#[tokio::test]
async fn b14_duplicate_rows_with_conflicting_status_resolve_the_same_way_every_cycle() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    env.sis(&[
        (
            rows[0].0.as_str(),
            "DAEMON-1",
            None,
            "student",
            Some("deleted"),
        ),
        (
            rows[0].0.as_str(),
            "DAEMON-1",
            None,
            "student",
            Some("active"),
        ),
        (
            rows[1].0.as_str(),
            "DAEMON-1",
            None,
            "student",
            Some("active"),
        ),
    ])
    .await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the most present status wins"),
        "logged: {stderr}"
    );
    assert_eq!(json_report(&out)["details"]["duplicate_rows_resolved"], 1);
    assert_eq!(env.enrollments_of(1, 100)[0].2, "active");
    for _ in 0..2 {
        let out = env.cli(&["reconcile", "--json"], "").await;
        assert_eq!(
            json_report(&out)["planned"]["change_state"],
            0,
            "no flapping"
        );
    }
}

#[tokio::test]
async fn b15_null_empty_or_padded_user_ids_are_skipped_counted_and_never_a_second_identity() {
    let (seed, rows) = roster(1);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    env.sis(&[
        ("", "DAEMON-1", None, "student", None),
        (" d1 ", "DAEMON-1", None, "student", None),
    ])
    .await;
    sqlx::query("INSERT INTO sis_enrollments VALUES (NULL, 'DAEMON-1', NULL, 'student', NULL)")
        .execute(&env.pool)
        .await
        .expect("insert");
    let report = env.reconcile("").await;
    assert_eq!(report.details.sis_rows_skipped, 3);
    assert_eq!(report.planned["enroll"], 1, "only d1, once");
    assert_eq!(env.enrollments_of(1, 100).len(), 1);
}

#[tokio::test]
async fn b16_an_unknown_role_label_is_skipped_never_coerced_or_removed() {
    let seed = Seed::default()
        .user(user(1, "u1"))
        .user(user(2, "u2"))
        .course(course(100, "C"))
        .enrollment(enrolled(1, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    // `Student` is the contract's short name in another case; `Learner` exists nowhere.
    env.sis(&[
        ("u1", "C", None, "Learner", None),
        ("u2", "C", None, "Student", None),
    ])
    .await;
    let report = env.reconcile("").await;
    assert_eq!(report.details.sis_rows_skipped, 1);
    assert_eq!(
        report.planned["remove"], 0,
        "u1's enrollment is held, not removed"
    );
    assert_eq!(report.planned["enroll"], 1, "u2 as StudentEnrollment");
    let audit = env.audit(&report.run_id).await;
    assert!(
        audit
            .iter()
            .any(|a| a.user_id.as_deref() == Some("u1") && a.outcome == "skipped")
    );
    assert!(
        env.enrollments_of(1, 100)
            .iter()
            .all(|e| e.1 == STUDENT && e.2 == "active")
    );
}

#[tokio::test]
async fn b17_an_unknown_status_is_skipped_never_deleted() {
    let seed = Seed::default()
        .user(user(1, "u1"))
        .course(course(100, "C"))
        .enrollment(enrolled(1, 100, STUDENT, "active"));
    let env = TestEnv::new(seed).await;
    for status in ["Active", "dropped", "withdrawn"] {
        env.clear_sis().await;
        env.sis(&[
            ("u1", "C", None, "student", Some(status)),
            ("u2", "C", None, "teacher", None),
        ])
        .await;
        let report = env.reconcile("").await;
        assert_eq!(report.details.sis_rows_skipped, 1, "{status}");
        assert_eq!(
            report.planned["remove"] + report.planned["change_state"],
            0,
            "{status}"
        );
    }
    assert_eq!(env.enrollments_of(1, 100)[0].2, "active");
}

#[tokio::test]
async fn b23_a_cross_host_next_link_is_refused() {
    let (mut seed, rows) = roster(15);
    for i in 1..=15 {
        seed = seed.enrollment(enrolled(i, 100, STUDENT, "active"));
    }
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(FaultRule::on(
            "GET",
            COURSE_ENROLLMENTS,
            FaultAction::CrossHostNextLink,
        )),
    ))
    .await;
    load(&env, &rows).await;
    let out = env.cli(&["reconcile", "--json"], "per_page = 10").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("another origin"))
    );
    assert_eq!(
        env.sim.count("GET", COURSE_ENROLLMENTS),
        1,
        "the foreign link was not followed"
    );
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn b24_a_redirect_is_not_followed_with_the_token() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    let location = format!("{}/login/saml?from=canvas", env.sim.base_url());
    env.sim
        .set_faults(FaultOptions::default().with_rule(FaultRule::on(
            "GET",
            "/api/v1/accounts/:id/roles",
            FaultAction::Redirect { location },
        )));
    load(&env, &rows).await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirect"))
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .all(|r| !r.path_and_query.starts_with("/login")),
        "not followed"
    );
}

#[tokio::test]
async fn b25_html_truncated_or_wrongly_shaped_json_is_a_read_error_never_an_empty_list() {
    for action in [
        FaultAction::HtmlBody,
        FaultAction::TruncatedJson,
        FaultAction::ObjectInsteadOfArray,
    ] {
        let (seed, rows) = roster(5);
        let env = TestEnv::with_options(with_faults(
            seed,
            FaultOptions::default().with_rule(FaultRule::on(
                "GET",
                COURSE_ENROLLMENTS,
                action.clone(),
            )),
        ))
        .await;
        load(&env, &rows).await;
        let out = env.cli(&["reconcile", "--json"], "").await;
        assert_eq!(out.status.code(), Some(1), "{action:?}");
        assert!(
            json_report(&out)["error"]
                .as_str()
                .is_some_and(|e| e.contains("unexpected Canvas response")),
            "{action:?}"
        );
        assert_eq!(env.writes(), 0, "{action:?}");
    }
}

#[tokio::test]
async fn b26_an_empty_listing_for_a_populated_course_never_removes_or_duplicates() {
    let (mut seed, rows) = roster(40);
    for i in 1..=40 {
        seed = seed.enrollment(enrolled(i, 100, STUDENT, "active"));
    }
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "GET",
                COURSE_ENROLLMENTS,
                FaultAction::Status {
                    status: 200,
                    content_type: Some("application/json".into()),
                    body: Some("[]".into()),
                },
            )
            .times(1),
        ),
    ))
    .await;
    load(&env, &rows).await;
    let report = env.reconcile("").await;
    assert_eq!(report.planned["remove"], 0);
    // The creates Canvas answers with the existing rows (same user, section and role are reused).
    for uid in 1..=40 {
        assert_eq!(
            env.enrollments_of(uid, 100).len(),
            1,
            "no duplicate for {uid}"
        );
    }
    assert_eq!(env.reconcile("").await.planned_total(), 0);
}

#[tokio::test]
async fn b27_unexpected_states_are_classified_and_never_removed_as_extra() {
    let seed = Seed::default()
        .user(user(1, "keep"))
        .user(user(2, "inactive"))
        .user(user(3, "rejected"))
        .user(user(4, "completed"))
        .course(course(100, "C"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(2, 100, STUDENT, "inactive"))
        .enrollment(enrolled(3, 100, STUDENT, "rejected"))
        .enrollment(enrolled(4, 100, STUDENT, "completed"));
    let env = TestEnv::new(seed).await;
    env.sis(&[("keep", "C", None, "student", None)]).await;
    let report = env.reconcile("").await;
    assert_eq!(report.planned_total(), 0, "{report:#?}");
}

#[tokio::test]
async fn b28_a_404_on_delete_means_already_gone() {
    let (mut seed, rows) = roster(20);
    for i in 1..=20 {
        seed = seed.enrollment(enrolled(i, 100, STUDENT, "active"));
    }
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(FaultRule::on(
            "DELETE",
            ENROLLMENT,
            FaultAction::status(404),
        )),
    ))
    .await;
    load(&env, &rows[1..]).await;
    let report = env.reconcile("").await;
    assert_eq!((report.applied, report.failed), (1, 0), "{report:#?}");
}

#[tokio::test]
async fn b29_a_5xx_on_a_post_that_canvas_applied_leads_to_a_re_read_and_exactly_one_enrollment() {
    let (seed, rows) = roster(1);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                COURSE_ENROLLMENTS,
                FaultAction::ApplyThenStatus {
                    status: 502,
                    content_type: None,
                    body: None,
                },
            )
            .nth(1),
        ),
    ))
    .await;
    load(&env, &rows).await;
    let report = env.reconcile("").await;
    assert_eq!((report.applied, report.failed), (1, 0));
    assert_eq!(env.enrollments_of(1, 100).len(), 1);
    assert_eq!(env.sim.count("POST", COURSE_ENROLLMENTS), 1);
    assert_eq!(env.sim.count("GET", "/api/v1/users/:id/enrollments"), 1);
}

#[tokio::test]
async fn b30_a_401_mid_cycle_stops_the_cycle_without_a_retry_storm() {
    let (seed, rows) = roster(20);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on("POST", COURSE_ENROLLMENTS, FaultAction::status(401))
                .nth(3)
                .times(100),
        ),
    ))
    .await;
    load(&env, &rows).await;
    let out = env
        .cli(&["reconcile", "--json"], "[limits]\nmax_in_flight = 1")
        .await;
    assert_eq!(out.status.code(), Some(1));
    let json = json_report(&out);
    assert_eq!(json["details"]["canvas_unavailable"], true);
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("rejected the token"))
    );
    assert_eq!(
        env.sim.count("POST", COURSE_ENROLLMENTS),
        3,
        "no request after the 401"
    );
    assert_eq!(json["details"]["not_attempted"], 17);
}

#[tokio::test]
async fn b31_a_slow_loris_or_huge_body_fails_the_cycle_cleanly() {
    for (action, extra, needle) in [
        (
            FaultAction::SlowBody { bytes_per_sec: 20 },
            "request_timeout_secs = 1\n[limits]\nmax_retries = 0",
            "timed out",
        ),
        (
            FaultAction::HugeBody {
                bytes: 4 * 1024 * 1024,
            },
            "max_response_bytes = 1048576",
            "larger than",
        ),
    ] {
        let (mut seed, rows) = roster(2);
        seed = seed
            .enrollment(enrolled(1, 100, STUDENT, "active"))
            .enrollment(enrolled(2, 100, STUDENT, "active"));
        let env = TestEnv::with_options(with_faults(
            seed,
            FaultOptions::default().with_rule(FaultRule::on(
                "GET",
                COURSE_ENROLLMENTS,
                action.clone(),
            )),
        ))
        .await;
        load(&env, &rows).await;
        let out = env.cli(&["reconcile", "--json"], extra).await;
        assert_eq!(out.status.code(), Some(1), "{action:?}");
        assert!(
            json_report(&out)["error"]
                .as_str()
                .is_some_and(|e| e.contains(needle)),
            "{action:?}"
        );
        assert_eq!(env.writes(), 0);
    }
}

#[tokio::test]
async fn b32_manual_enrollments_of_users_without_sis_identity_are_never_removed() {
    let seed = Seed::default()
        .user(user(1, "u1"))
        .user(canvas_sim::SeedUser::new(2, "Guest Teacher"))
        .course(course(100, "C"))
        .enrollment(enrolled(2, 100, TEACHER, "active"));
    let env = TestEnv::new(seed).await;
    env.sis(&[("u1", "C", None, "student", None)]).await;
    let report = env.reconcile("").await;
    assert_eq!(report.planned["remove"], 0);
    assert_eq!(env.enrollments_of(2, 100)[0].2, "active");
    let report = env
        .reconcile("[sis]\nmanage_non_sis_users = true\n[reconcile]\nmax_removal_ratio = 1.0")
        .await;
    assert_eq!(report.planned["remove"], 1, "only when configured");
}

#[tokio::test]
async fn b12_zero_sis_rows_trip_the_brake_and_no_add_is_faked() {
    let (mut seed, _) = roster(5);
    for i in 1..=5 {
        seed = seed.enrollment(enrolled(i, 100, STUDENT, "active"));
    }
    let env = TestEnv::new(seed).await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(3));
    let json = json_report(&out);
    assert_eq!(json["planned"]["enroll"], 0);
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn b18_sis_ids_with_reserved_characters_never_split_the_path() {
    let odd = "a/b.c%d#e f-é";
    let seed = Seed::default()
        .user(user(1, odd))
        .user(user(2, "a"))
        .course(course(100, odd))
        .course(course(101, "a"));
    let env = TestEnv::new(seed).await;
    env.sis(&[(odd, odd, None, "student", None)]).await;
    let report = env.reconcile("").await;
    assert_eq!((report.applied, report.failed), (1, 0), "{report:#?}");
    assert_eq!(env.enrollments_of(1, 100).len(), 1);
    assert!(env.enrollments_of(2, 101).is_empty() && env.enrollments_of(1, 101).is_empty());
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|r| r.path_and_query.contains("a%2Fb%2Ec%25d%23e%20f-%C3%A9"))
    );
}

#[tokio::test]
async fn b19_a_null_section_and_an_explicit_section_are_two_enrollments() {
    let seed = Seed::default()
        .user(user(1, "u1"))
        .course(course(100, "C"))
        .section(section(200, 100, "C-A"))
        .enrollment(enrolled(1, 100, STUDENT, "active"))
        .enrollment(enrolled(1, 100, STUDENT, "active").in_section(200));
    let env = TestEnv::new(seed).await;
    env.sis(&[
        ("u1", "C", None, "student", None),
        ("u1", "C", Some("C-A"), "student", None),
    ])
    .await;
    let report = env.reconcile("").await;
    assert_eq!(
        report.planned_total(),
        0,
        "both exist; neither is removed for the other: {report:#?}"
    );
}

#[tokio::test]
async fn b20_rows_for_courses_canvas_does_not_have_are_skipped_per_row_and_do_not_count_as_removals()
 {
    let (mut seed, rows) = roster(10);
    for i in 1..=10 {
        seed = seed.enrollment(enrolled(i, 100, STUDENT, "active"));
    }
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    env.sis(&[
        ("d1", "GONE-1", None, "student", None),
        ("d2", "GONE-2", None, "student", None),
    ])
    .await;
    // CONTRACT v2: skipped with the 404 reason, never planned or failed: a converged district exits 0.
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(0));
    let json = json_report(&out);
    assert_eq!(json["failed"], 0);
    assert_eq!(json["skipped"], 2);
    assert_eq!(json["planned"]["enroll"], 0, "{json}");
    assert_eq!(json["safety"]["tripped"], false);
    assert_eq!(json["details"]["courses_not_found"], 2);
}
