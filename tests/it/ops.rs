//! The operator's first hour (issue 16), through the built binary: exit codes that mean one thing, a database
//! that is down saying why within seconds, the CLI conventions, and the process and build metrics.

use std::process::Output;

use crate::support::*;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn rostersync(args: &[&str]) -> Output {
    rostersync_cmd()
        .args(args)
        .output()
        .await
        .expect("run rostersync")
}

// ---- 1. exit codes ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_usage_error_exits_64_not_2() {
    for args in [
        &["reconcile", "--bogus"][..],
        &["no-such-command"],
        &[],
        &["apply"],
        &["demo", "--size", "huge"],
    ] {
        let out = rostersync(args).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stdout}\n{stderr}");
        // clap's message (or, with no command at all, the help) goes to stderr.
        assert!(
            stderr.starts_with("error:") || stderr.contains("Usage:"),
            "{args:?}: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let (_, stderr) = text(&rostersync(&["reconcile", "--bogus"]).await);
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[tokio::test]
async fn help_and_version_exit_0_on_stdout() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["reconcile", "--help"],
        &["help", "reconcile"],
        &["--version"],
        &["-V"],
    ] {
        let out = rostersync(args).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}\n{stderr}");
        assert!(!stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[tokio::test]
async fn version_names_the_git_commit_and_canvas_sim_has_one_too() {
    let out = rostersync(&["--version"]).await;
    let (stdout, _) = text(&out);
    assert_eq!(
        stdout.trim(),
        format!(
            "rostersync {} (commit {})",
            rostersync::VERSION,
            rostersync::GIT_COMMIT
        )
    );
    assert!(!rostersync::GIT_COMMIT.is_empty());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_canvas-sim"))
        .arg("--version")
        .output()
        .await
        .expect("run canvas-sim --version");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("canvas-sim "), "{stdout}");
}

/// The commands an operator types, as clap knows them (hidden ones and `help` aside).
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    rostersync::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_owned())
        .collect()
}

#[tokio::test]
async fn completions_for_bash_zsh_and_fish_name_every_command_without_a_config() {
    let commands = subcommands();
    assert!(commands.len() >= 14, "{commands:?}");
    for shell in ["bash", "zsh", "fish"] {
        // A configuration that would fail to load: completions must not need one.
        let out = rostersync_cmd()
            .args([
                "--config",
                "/nonexistent/rostersync.toml",
                "completions",
                shell,
            ])
            .output()
            .await
            .expect("run rostersync completions");
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {stderr}");
        assert!(stdout.len() > 1000, "{shell}: {stdout}");
        for command in &commands {
            assert!(
                stdout.contains(command.as_str()),
                "{shell}: `{command}` missing"
            );
        }
        // Arguments of a command, not only the command names.
        assert!(
            stdout.contains("dry-run") && stdout.contains("accept-removals"),
            "{shell}"
        );
    }
    // bash parses what it was given (a syntax error would break every shell that sources it).
    let out = rostersync(&["completions", "bash"]).await;
    if let Ok(bash) = std::process::Command::new("bash")
        .args(["-n", "-c"])
        .arg(String::from_utf8_lossy(&out.stdout).as_ref())
        .output()
    {
        assert!(
            bash.status.success(),
            "{}",
            String::from_utf8_lossy(&bash.stderr)
        );
    }
    let out = rostersync(&["completions", "tcsh"]).await;
    assert_eq!(
        out.status.code(),
        Some(64),
        "an unknown shell is a usage error"
    );
}

#[tokio::test]
async fn the_man_page_is_roff_with_every_command_and_the_exit_codes() {
    let out = rostersync(&["--config", "/nonexistent/rostersync.toml", "man"]).await;
    let (page, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(page.starts_with(".TH ROSTERSYNC 1 "), "{page}");
    assert!(page.is_ascii(), "roff input is ASCII");
    assert_eq!(page.matches(".TH ").count(), 1);
    for section in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
    ] {
        let heading = if section.contains(' ') {
            format!(".SH \"{section}\"")
        } else {
            format!(".SH {section}")
        };
        assert!(
            page.lines().any(|l| l == heading),
            "{heading} missing:\n{page}"
        );
    }
    for command in subcommands() {
        assert!(
            page.lines()
                .any(|l| l == format!(".SS \"rostersync {command}\"")),
            "`rostersync {command}` has no subsection:\n{page}"
        );
    }
    // Nested commands and a command's own arguments.
    assert!(page.contains(".SS \"rostersync except add\""), "{page}");
    assert!(page.contains("\\-\\-accept\\-removals"), "{page}");
    assert!(
        page.contains(rostersync::GIT_COMMIT),
        "the version names the commit"
    );
    for code in ["64", "3", "2"] {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit code {code}:\n{page}"
        );
    }
    // groff, where installed, reads it without a warning (-ww: all warnings; -z: no output).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rostersync.1");
    std::fs::write(&file, &page).expect("write page");
    if let Ok(groff) = std::process::Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(&file)
        .output()
    {
        let said = String::from_utf8_lossy(&groff.stderr);
        assert!(
            groff.status.success() && said.trim().is_empty(),
            "groff: {said}"
        );
    }
}

// ---- 2. a database that is down says so, fast -------------------------------------------------------------------

/// A configuration whose database URL is `url`: Canvas is never reached, since the database comes first.
fn config_with_database(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let path = dir.join(format!("down-{}.toml", uuid::Uuid::new_v4().simple()));
    let toml = format!(
        "[canvas]\nbase_url = \"http://127.0.0.1:9\"\ntoken = \"canary-token-ops\"\n\n[database]\nurl = \"{url}\"\n"
    );
    std::fs::write(&path, toml).expect("write config");
    path
}

/// Runs `rostersync --config … ARGS` against `url`; returns (exit code, stderr, wall time).
async fn against_database(url: &str, args: &[&str]) -> (Option<i32>, String, std::time::Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with_database(dir.path(), url);
    let started = std::time::Instant::now();
    let out = rostersync_cmd()
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .await
        .expect("run rostersync");
    let took = started.elapsed();
    let (_, stderr) = text(&out);
    eprintln!(
        "{args:?} against a database that is down: {took:?}, exit {:?}\n{stderr}",
        out.status.code()
    );
    (out.status.code(), stderr, took)
}

/// What no database error may say: the password, sqlx's pool internals, PostgreSQL's source line numbers.
fn assert_clean(stderr: &str, password: &str) {
    assert!(!stderr.contains(password), "the password leaked: {stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    assert!(
        !stderr.contains(" at line "),
        "a PostgreSQL source line: {stderr}"
    );
    assert!(
        !stderr.contains("canary-token-ops"),
        "the token leaked: {stderr}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_named_within_3_seconds() {
    let port = free_port();
    let url = format!("postgres://rostersync:hunter2-refused@127.0.0.1:{port}/rostersync");
    for args in [&["reconcile", "--dry-run"][..], &["migrate"], &["run"]] {
        let (code, stderr, took) = against_database(&url, args).await;
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("connection refused"), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
        assert_clean(&stderr, "hunter2-refused");
        assert!(
            took < std::time::Duration::from_millis(3500),
            "{args:?} took {took:?} to report a refused connection"
        );
    }
}

#[tokio::test]
async fn a_missing_database_is_named_without_postgresql_line_numbers() {
    let mut url = url::Url::parse(server().admin_url()).expect("admin url");
    url.set_path("/no_such_database_ops");
    if url.password().is_none() {
        url.set_password(Some("hunter2-missing")).expect("password");
    }
    let password = url.password().unwrap_or_default().to_owned();
    let (code, stderr, took) = against_database(url.as_str(), &["reconcile", "--dry-run"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("database \"no_such_database_ops\" does not exist"),
        "{stderr}"
    );
    assert_clean(&stderr, &password);
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
}

/// Makes the test server ask `role` for a password over TCP (a line at the top of pg_hba.conf, then a reload).
/// `None` when this server's pg_hba.conf cannot be edited from here (an existing server from `DATABASE_URL`).
async fn require_password_for(role: &str) -> Option<()> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(server().admin_url())
        .await
        .ok()?;
    let hba: String = sqlx::query_scalar("SHOW hba_file")
        .fetch_one(&mut admin)
        .await
        .ok()?;
    let existing = std::fs::read_to_string(&hba).ok()?;
    let line = format!(
        "host all {role} 127.0.0.1/32 scram-sha-256\nhost all {role} ::1/128 scram-sha-256\n"
    );
    std::fs::write(&hba, format!("{line}{existing}")).ok()?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut admin)
        .await
        .ok()?;
    // The postmaster reloads asynchronously; a new backend reads the new file.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    Some(())
}

#[tokio::test]
async fn a_wrong_password_is_named_without_the_password() {
    use sqlx::Connection;
    let role = format!("ops_pw_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(server().admin_url())
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'the-right-one'"
    )))
    .execute(&mut admin)
    .await
    .expect("create role");
    if require_password_for(&role).await.is_none() {
        eprintln!("skipped: this PostgreSQL's pg_hba.conf cannot be edited from the test");
        return;
    }
    let mut url = url::Url::parse(server().admin_url()).expect("admin url");
    url.set_username(&role).expect("user");
    url.set_password(Some("hunter2-wrong")).expect("password");
    let (code, stderr, took) = against_database(url.as_str(), &["reconcile", "--dry-run"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "password authentication failed for user \"{role}\""
        )),
        "{stderr}"
    );
    assert_clean(&stderr, "hunter2-wrong");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
    // The right password gets past the connection (to the next problem: this role may not create the schema).
    url.set_password(Some("the-right-one")).expect("password");
    let (_, stderr, _) = against_database(url.as_str(), &["migrate"]).await;
    assert!(
        !stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(" at line "),
        "a PostgreSQL source line: {stderr}"
    );
}

// ---- 3. metrics operators expect --------------------------------------------------------------------------------

/// `/metrics` of a daemon that has run no cycle yet, asked with `accept` (`None`: no header).
async fn metrics_of_an_idle_daemon(daemon: &Daemon, accept: Option<&str>) -> (String, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(daemon.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, response.text().await.expect("body"))
}

async fn idle_daemon(env: &TestEnv) -> Daemon {
    // No cycle: run_on_start off and a schedule that does not come due during the test.
    Daemon::start(env, "0 0 0 1 1 *", "[schedule]\nrun_on_start = false\n").await
}

#[tokio::test]
async fn metrics_have_process_build_info_and_zeros_from_the_start() {
    let env = TestEnv::new(canvas_sim::Seed::default()).await;
    let daemon = idle_daemon(&env).await;
    let (content_type, text) = metrics_of_an_idle_daemon(&daemon, None).await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"));
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        let value = metric(&text, &format!("{family} "));
        assert!(value.is_some_and(|v| v >= 0.0), "{family}: {text}");
    }
    assert!(metric(&text, "process_resident_memory_bytes ").is_some_and(|v| v > 1e6));
    assert!(metric(&text, "process_open_fds ").is_some_and(|v| v >= 3.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let started = metric(&text, "process_start_time_seconds ").unwrap_or_default();
    assert!(
        (now - 120.0..=now + 1.0).contains(&started),
        "started {started}, now {now}"
    );
    let build = format!(
        "rostersync_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        rostersync::VERSION,
        rostersync::GIT_COMMIT
    );
    assert!(text.contains(&build), "{build} not in:\n{text}");
    // Before any cycle, the known label values are there at 0.
    for series in [
        "rostersync_cycles_total{outcome=\"failed\"} 0",
        "rostersync_cycles_total{outcome=\"safety_tripped\"} 0",
        "rostersync_changes_total{action=\"enroll\",outcome=\"failed\"} 0",
        "rostersync_changes_total{action=\"remove\",outcome=\"held\"} 0",
        "rostersync_canvas_retries_total{reason=\"throttled\"} 0",
        "rostersync_sis_rows_skipped_total{reason=\"user_not_found\"} 0",
        "rostersync_path_fallbacks_total{path=\"sis_import\"} 0",
    ] {
        assert!(text.contains(series), "{series} not in:\n{text}");
    }
}

#[tokio::test]
async fn a_scraper_asking_for_text_plain_gets_the_classic_format() {
    let env = TestEnv::new(canvas_sim::Seed::default()).await;
    let daemon = idle_daemon(&env).await;
    // What Prometheus sends with `scrape_protocols: [PrometheusText0.0.4]`.
    let (content_type, text) =
        metrics_of_an_idle_daemon(&daemon, Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    assert!(!text.contains("# UNIT"), "{text}");
    for line in [
        "# TYPE rostersync_changes_total counter",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE rostersync_build_info gauge",
        "# TYPE rostersync_cycle_duration_seconds histogram",
        "rostersync_changes_total{action=\"enroll\",outcome=\"failed\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    // Every TYPE names the samples that follow it: no OpenMetrics family names left.
    let mut family = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap_or_default().to_owned();
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                name == family
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(family.as_str())),
                "{name} under # TYPE {family}"
            );
        }
    }
    // promtool, where it is installed (Debian: `apt-get install prometheus`), lints it.
    if let Ok(mut promtool) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        if let Some(mut stdin) = promtool.stdin.take() {
            stdin.write_all(text.as_bytes()).expect("write to promtool");
        }
        let out = promtool.wait_with_output().expect("promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool: {said}"
        );
    }
    // And OpenMetrics when the scraper prefers it, as Prometheus does by default.
    let (content_type, _) = metrics_of_an_idle_daemon(
        &daemon,
        Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
    )
    .await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
}

// ---- 6. logs ----------------------------------------------------------------------------------------------------

/// `rostersync run` against a database that refuses connections (it logs "cannot start" and exits 1), with
/// stderr in a file; `configure` sets the command's environment. Returns stderr.
async fn failed_start_log(
    configure: impl FnOnce(&mut tokio::process::Command, &std::fs::File),
) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("postgres://rostersync@127.0.0.1:{}/x", free_port());
    let config = config_with_database(dir.path(), &url);
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = rostersync_cmd();
    cmd.arg("--config").arg(&config).arg("run");
    configure(&mut cmd, &log);
    let status = cmd
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .status()
        .await
        .expect("run rostersync");
    assert_eq!(status.code(), Some(1));
    std::fs::read_to_string(&log_path).expect("read log")
}

#[tokio::test]
async fn json_log_lines_carry_the_message_at_the_top_level() {
    let log = failed_start_log(|cmd, _| {
        cmd.env("ROSTERSYNC__LOG__FORMAT", "json");
    })
    .await;
    let event: serde_json::Value = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["message"] == "cannot start")
        .unwrap_or_else(|| panic!("no JSON line with a top-level message: {log}"));
    assert!(event.get("fields").is_none(), "{event}");
    assert_eq!(event["level"], "ERROR");
    assert!(
        event["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection refused")),
        "{event}"
    );
}

#[tokio::test]
async fn under_systemd_log_lines_are_plain_text_with_syslog_priorities() {
    use std::os::unix::fs::MetadataExt;
    let log = failed_start_log(|cmd, file| {
        let meta = file.metadata().expect("stat the log file");
        // What systemd sets for a service whose stderr is the journal: the stream's device and inode.
        cmd.env_remove("ROSTERSYNC__LOG__FORMAT")
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    })
    .await;
    assert!(
        !log.contains('\u{1b}'),
        "ANSI colours in the journal: {log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with('{')),
        "JSON in the journal: {log}"
    );
    assert!(
        log.lines().any(|l| l.starts_with("<3>")
            && l.contains("cannot start")
            && l.contains("connection refused")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.starts_with("<3>error: ")), "{log}");
    // A JOURNAL_STREAM that is not this stderr (inherited by a redirected child) changes nothing.
    let log = failed_start_log(|cmd, _| {
        cmd.env_remove("ROSTERSYNC__LOG__FORMAT")
            .env("JOURNAL_STREAM", "1:1");
    })
    .await;
    assert!(!log.contains("<3>"), "{log}");
}

/// With `RUST_LOG=rostersync=debug`, every Canvas retry and every skipped SIS row is one debug line, and in JSON
/// each carries the run's id (the cycle's span, `span["run.id"]`), so that one `jq 'select(.span["run.id"] == ...)'`
/// gives a run's whole story.
#[tokio::test]
async fn retries_and_skipped_rows_are_logged_at_debug_with_the_run_id() {
    use canvas_sim::{FaultAction, FaultOptions, FaultRule};
    let (seed, rows) = roster(3);
    let faults = FaultOptions::default().with_rule(
        FaultRule::on(
            "POST",
            "/api/v1/courses/:id/enrollments",
            FaultAction::status(503),
        )
        .nth(1)
        .times(1),
    );
    let env = TestEnv::with_options(with_faults(seed, faults)).await;
    load(&env, &rows).await;
    env.sis(&[
        ("ghost-user", "DAEMON-1", None, "student", None),
        ("d1", "DAEMON-1", None, "no-such-role-kind", None),
    ])
    .await;
    let config = env.config_file("");
    let out = rostersync_cmd()
        .arg("--config")
        .arg(&config)
        .args(["reconcile", "--json"])
        .env("RUST_LOG", "rostersync=debug")
        .env("ROSTERSYNC__LOG__FORMAT", "json")
        .output()
        .await
        .expect("run rostersync reconcile");
    let (stdout, log) = text(&out);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    let run_id = report["run_id"].as_str().expect("run_id").to_owned();
    assert_eq!(report["applied"], 3, "{report}");
    assert!(report["skipped"].as_u64() >= Some(2), "{report}");
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of_run = |e: &&serde_json::Value| e["span"]["run.id"] == run_id.as_str();
    let retries: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "retrying Canvas request")
        .collect();
    assert_eq!(retries.len(), 1, "one line per retry:\n{log}");
    let retry = retries[0];
    assert!(
        of_run(&retry),
        "the retry line names the run {run_id}: {retry}"
    );
    assert_eq!(retry["level"], "DEBUG");
    assert_eq!(retry["reason"], "server_error", "{retry}");
    assert_eq!(retry["method"], "POST", "{retry}");
    assert!(retry["delay_ms"].is_u64(), "{retry}");
    let skipped: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("SIS row skipped"))
        })
        .collect();
    for (user, reason) in [("ghost-user", "user_not_found"), ("d1", "bad_role")] {
        let line = skipped
            .iter()
            .find(|e| e["user.sis_id"] == user)
            .unwrap_or_else(|| panic!("no skipped-row line for {user}:\n{log}"));
        assert!(of_run(line), "{line}");
        assert_eq!(line["level"], "DEBUG");
        assert_eq!(line["course.sis_id"], "DAEMON-1", "{line}");
        assert_eq!(line["reason"], reason, "{line}");
    }
    assert!(!log.contains(&env.token), "the token is never logged");
    // The next cycle knows the user is missing and skips the row before planning: the same line, its own run id.
    let out = rostersync_cmd()
        .arg("--config")
        .arg(&config)
        .args(["reconcile", "--json"])
        .env("RUST_LOG", "rostersync=debug")
        .env("ROSTERSYNC__LOG__FORMAT", "json")
        .output()
        .await
        .expect("run rostersync reconcile");
    let (stdout, log) = text(&out);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    let second_run = report["run_id"].as_str().expect("run_id");
    assert_ne!(second_run, run_id);
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["user.sis_id"] == "ghost-user")
        .unwrap_or_else(|| panic!("no skipped-row line for ghost-user:\n{log}"));
    assert_eq!(line["span"]["run.id"], second_run, "{line}");
    assert_eq!(line["reason"], "user_not_found", "{line}");
    // At the default level, neither is logged.
    let out = rostersync_cmd()
        .arg("--config")
        .arg(&config)
        .args(["reconcile", "--json", "--dry-run"])
        .env_remove("RUST_LOG")
        .env("ROSTERSYNC__LOG__FORMAT", "json")
        .output()
        .await
        .expect("run rostersync reconcile");
    let (_, log) = text(&out);
    assert!(!log.contains("SIS row skipped"), "{log}");
}

#[test]
fn the_token_file_warning_says_how_to_silence_it_and_spares_the_own_group() {
    use rostersync::config::TokenSource;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "tok\n").expect("write");
    let chmod = |mode| {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let warning = || TokenSource::File(file.clone()).permission_warning();
    chmod(0o644);
    let said = warning().expect("world-readable: a warning");
    for hint in ["chmod 0600", "defaultMode: 0440", "fsGroup"] {
        assert!(said.contains(hint), "{hint} not in: {said}");
    }
    // The Kubernetes fsGroup case: group-readable, and the group is this process's own.
    chmod(0o440);
    assert_eq!(warning(), None);
    chmod(0o640);
    assert_eq!(warning(), None);
    chmod(0o660);
    assert!(warning().is_some(), "group-writable");
    // Readable by a group this process is not in.
    chmod(0o440);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&file, None, Some(54_321)).expect("chown");
        assert!(warning().is_some(), "another group can read it");
    }
}
