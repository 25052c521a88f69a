//! Bad configuration files fed to the built binary, as an operator would: `rostersync --config FILE check`
//! (RELIABILITY.md #19, and #16 for the token). No database and no simulator: every case fails while the
//! configuration is loaded, before anything is contacted.
//!
//! The corpus is `tests/bad_configs/*.toml`, one file per case, named after it. A file may start with
//! `# case: <what is wrong>`, `# expect: <text>` lines (each text must appear in the error, normally the key) and
//! `# expect-at: check` for a case that only `check` could find. Every file that sets a token sets a
//! `CANARY-<uuid>` one, which must never be printed. Replay them by hand with
//! `for f in tests/bad_configs/*.toml; do rostersync --config "$f" check; echo "exit $?"; done`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PANIC_EXIT: i32 = 101;

struct Case {
    path: PathBuf,
    name: String,
    expect: Vec<String>,
    /// The error is found by `check` (stdout) rather than while loading the configuration (stderr).
    at_check: bool,
}

struct Run {
    /// `None` when the process was still running at the deadline (and was killed).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn corpus(dir: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read case");
            let text = String::from_utf8_lossy(&bytes);
            let header = |prefix: &str| -> Vec<String> {
                text.lines()
                    .take_while(|l| l.starts_with('#'))
                    .filter_map(|l| l.strip_prefix(prefix))
                    .map(|v| v.trim().to_owned())
                    .collect()
            };
            Case {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                expect: header("# expect:"),
                at_check: header("# expect-at:").iter().any(|v| v == "check"),
                path,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

/// Starts `rostersync --config FILE check` with no `ROSTERSYNC*` variable and no `RUST_LOG` from the test's own
/// environment.
fn spawn(case: &Case) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rostersync"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("ROSTERSYNC") || key == "RUST_LOG" {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.arg("--config")
        .arg(&case.path)
        .arg("check")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rostersync")
}

/// Waits until `deadline` (a configuration that wrongly loads goes on to retry a Canvas that is not there).
fn finish(mut child: std::process::Child, deadline: Instant) -> Run {
    let code = loop {
        match child.try_wait().expect("wait for rostersync") {
            Some(status) => break status.code(),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let output = child.wait_with_output().expect("collect output");
    Run {
        code,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Everything the case promises; each broken promise is one line.
fn broken_promises(case: &Case, run: &Run) -> Vec<String> {
    let mut broken = Vec::new();
    match run.code {
        Some(1) => {}
        Some(PANIC_EXIT) => broken.push("exit 101: rostersync panicked".to_owned()),
        Some(code) => broken.push(format!("exit {code}, expected 1")),
        None => broken.push(
            "still running at the deadline: the configuration was accepted and check went on"
                .to_owned(),
        ),
    }
    if run.stderr.contains("panicked") {
        broken.push("a panic message on stderr".to_owned());
    }
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        if text.contains("CANARY") {
            broken.push(format!("the canary token is printed on {stream}"));
        }
    }
    let message = if case.at_check {
        if !run.stdout.contains("ok    config") {
            broken.push(
                "expected the configuration to load and check to find the problem".to_owned(),
            );
        }
        &run.stdout
    } else {
        if !run.stderr.starts_with("error: configuration") {
            broken.push("no `error: configuration…` message on stderr".to_owned());
        }
        if run.stdout.contains("ok    config") {
            broken.push("the configuration was accepted".to_owned());
        }
        &run.stderr
    };
    for expected in &case.expect {
        if !message.contains(expected.as_str()) {
            broken.push(format!("the message does not name `{expected}`"));
        }
    }
    broken
}

fn report(cases: &[Case], runs: &[Run]) -> Vec<String> {
    cases
        .iter()
        .zip(runs)
        .filter_map(|(case, run)| {
            let broken = broken_promises(case, run);
            (!broken.is_empty()).then(|| {
                format!(
                    "{}: {}\n  stderr: {}\n  stdout: {}",
                    case.name,
                    broken.join("; "),
                    run.stderr.trim(),
                    run.stdout.trim()
                )
            })
        })
        .collect()
}

/// Runs the cases at once (each is a short process) and waits for all, at most `limit` in all.
fn run_all(cases: &[Case], limit: Duration) -> Vec<Run> {
    let deadline = Instant::now() + limit;
    let children: Vec<_> = cases.iter().map(spawn).collect();
    children.into_iter().map(|c| finish(c, deadline)).collect()
}

#[test]
fn every_bad_config_exits_1_with_a_message_naming_the_key_and_never_the_token() {
    let cases = corpus("tests/bad_configs");
    let runs: Vec<Run> = cases
        .chunks(16)
        .flat_map(|chunk| run_all(chunk, Duration::from_secs(30)))
        .collect();
    let failures = report(&cases, &runs);
    assert!(
        failures.is_empty(),
        "{} of {} bad configs broke a promise:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Issue 13 item 11: `canvas.report_timeout_secs = 1e20` passed validation and panicked converting it to a
/// `Duration` (exit 101). Each huge duration, from the file or from the environment, is exit 1 with a message
/// naming the key and the range it allows.
#[test]
fn huge_durations_exit_1_naming_the_key_and_the_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "[canvas]\nbase_url = \"https://127.0.0.1:9\"\ntoken = \"CANARY-2f1d7f0c-huge-durations\"\n";
    let database = "\n[database]\nurl = \"postgres:///rostersync?host=/nonexistent\"\n";
    let cases = [
        (
            "report_timeout_secs = 1e20",
            None,
            "canvas.report_timeout_secs",
            "from 0.1 to 86400",
        ),
        (
            "request_timeout_secs = 1e20",
            None,
            "canvas.request_timeout_secs",
            "from 0.1 to 3600",
        ),
        (
            "request_timeout_secs = 1.7976931348623157e308",
            None,
            "canvas.request_timeout_secs",
            "from 0.1 to 3600",
        ),
        (
            "",
            Some(("ROSTERSYNC__CANVAS__REPORT_TIMEOUT_SECS", "1e20")),
            "canvas.report_timeout_secs",
            "from 0.1 to 86400",
        ),
        (
            "",
            Some(("ROSTERSYNC__CANVAS__REQUEST_TIMEOUT_SECS", "1e20")),
            "canvas.request_timeout_secs",
            "from 0.1 to 3600",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (line, env, key, range)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, format!("{base}{line}\n{database}")).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rostersync"));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("ROSTERSYNC") || name == "RUST_LOG" {
                cmd.env_remove(name.as_ref());
            }
        }
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        let child = cmd
            .arg("--config")
            .arg(&path)
            .arg("check")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rostersync");
        let run = finish(child, Instant::now() + Duration::from_secs(30));
        let what = format!("{line}{env:?}");
        if run.code != Some(1) {
            failures.push(format!("{what}: exit {:?}, expected 1", run.code));
        }
        if run.stderr.contains("panicked") || run.stderr.contains("CANARY") {
            failures.push(format!("{what}: a panic or the token on stderr"));
        }
        if !run.stderr.contains(key) || !run.stderr.contains(range) {
            failures.push(format!(
                "{what}: the message does not name `{key}` and `{range}`: {}",
                run.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
