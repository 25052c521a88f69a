//! The `canvas-sim` binary as an operator runs it (CONTRACT.md "Binaries").

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::standard_seed;

const BINARY: &str = env!("CARGO_BIN_EXE_canvas-sim");

#[tokio::test]
async fn binary_prints_listening_line_first_and_serves_the_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_path = dir.path().join("seed.json");
    std::fs::write(
        &seed_path,
        serde_json::to_vec(&standard_seed()).expect("seed JSON"),
    )
    .expect("write seed");
    let mut child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed_path)
        .env("CANVAS_SIM_TOKEN", "bin-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("first line");
    let base = first_line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first_line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/courses/sis_course_id:MATH-101/enrollments"
        ))
        .bearer_auth("bin-token")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    // SIGTERM ends it cleanly.
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn binary_with_a_bad_seed_exits_1_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_path = dir.path().join("seed.json");
    std::fs::write(
        &seed_path,
        r#"{"enrollments": [{"user_id": 5, "course_id": 6, "enrollment_state": "active"}]}"#,
    )
    .expect("write");
    let output = Command::new(BINARY)
        .arg("--seed")
        .arg(&seed_path)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("user 5 does not exist"), "{stderr}");
    let output = Command::new(BINARY)
        .arg("--seed")
        .arg(dir.path().join("missing.json"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read seed file"));
}

#[tokio::test]
async fn binary_refuses_a_seed_enrollment_without_a_state_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_path = dir.path().join("seed.json");
    std::fs::write(
        &seed_path,
        r#"{"users": [{"id": 5, "name": "A"}], "courses": [{"id": 6, "name": "C"}],
            "enrollments": [{"id": 9, "user_id": 5, "course_id": 6}]}"#,
    )
    .expect("write");
    let output = Command::new(BINARY)
        .arg("--seed")
        .arg(&seed_path)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("enrollment 9") && stderr.contains("`enrollment_state`"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "it must not start listening");
}

/// Starts the binary with extra flags on an empty seed; returns the child and its base URL.
async fn start_binary(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("first line");
    let base = line.trim().trim_start_matches("listening on ").to_string();
    (child, base)
}

#[tokio::test]
async fn binary_throttle_and_fault_flags_take_effect() {
    let (mut child, base) =
        start_binary(&["--token", "t", "--hwm", "0", "--throttle-status", "429"]).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/users/self"))
        .bearer_auth("t")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 429);
    let _ = child.kill();
    let _ = child.wait();

    let dir = tempfile::tempdir().expect("tempdir");
    let faults = dir.path().join("faults.json");
    std::fs::write(
        &faults,
        r#"{"rules": [{"times": 1, "action": {"Status": {"status": 503}}}]}"#,
    )
    .expect("write");
    let faults_arg = faults.to_string_lossy().to_string();
    let (mut child, base) = start_binary(&["--token", "t", "--faults", &faults_arg]).await;
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{base}/api/v1/users/self"))
        .bearer_auth("t")
        .send()
        .await
        .expect("GET");
    let second = client
        .get(format!("{base}/api/v1/users/self"))
        .bearer_auth("t")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (503, 200)
    );
    let _ = child.kill();
    let _ = child.wait();
}
