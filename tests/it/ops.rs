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
