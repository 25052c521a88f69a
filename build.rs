//! Build-time facts the binary reports (`--version`, `rostersync_build_info{version,commit}`): the git commit, as
//! `ROSTERSYNC_GIT_COMMIT`. Taken from that variable when the build sets it (the Dockerfile passes its `REVISION`
//! build argument: its context has no `.git`), else from `git rev-parse`, else `unknown`. A build without git or
//! outside a repository still succeeds.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A commit id is printed in `--version` and used as a label value: keep it to what a commit id can be.
fn plausible(commit: &str) -> bool {
    !commit.is_empty()
        && commit.len() <= 64
        && commit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROSTERSYNC_GIT_COMMIT");
    let from_env = std::env::var("ROSTERSYNC_GIT_COMMIT")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| plausible(c) && c != "unknown");
    let commit = match from_env {
        Some(commit) => commit.chars().take(12).collect(),
        None => {
            // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref, and packed-refs. Only files
            // that exist: Cargo re-runs a build script on every build when a named file is missing.
            for path in [
                git(&["rev-parse", "--git-path", "HEAD"]),
                git(&["symbolic-ref", "-q", "HEAD"])
                    .and_then(|r| git(&["rev-parse", "--git-path", &r])),
                git(&["rev-parse", "--git-path", "packed-refs"]),
            ]
            .into_iter()
            .flatten()
            {
                if Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
                .filter(|c| plausible(c))
                .unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=ROSTERSYNC_GIT_COMMIT={commit}");
}
