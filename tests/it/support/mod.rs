//! The test harness: one PostgreSQL per test run (`DATABASE_URL`, else a throwaway cluster), a fresh database
//! per test, a Canvas simulator on port 0, and ways to run a cycle in-process or the built binary as an operator
//! (`daemon.rs`: `rostersync run` as a child process, its metrics, and the small districts it loads).

#![allow(dead_code)]

mod daemon;

pub use daemon::{Daemon, cycles, free_port, load, metric, roster, roster_env};

use std::path::PathBuf;
use std::process::Output;

use std::sync::{Arc, OnceLock};
use tokio::process::Command;

use canvas_sim::{
    FaultOptions, Seed, SeedCourse, SeedEnrollment, SeedRole, SeedSection, SeedUser, SimHandle,
    SimOptions,
};
use rostersync::config::Settings;
use rostersync::metrics::Metrics;
use rostersync::pgtemp::PgServer;
use rostersync::reconcile::{CycleOptions, CycleReport, run_cycle};
use rostersync::store::lock::LeaderLock;
use sqlx::{PgPool, Row};

pub const STUDENT: u64 = 3;
pub const TEACHER: u64 = 4;
pub const TA: u64 = 5;
pub const DESIGNER: u64 = 6;
pub const OBSERVER: u64 = 7;

static SERVER: OnceLock<PgServer> = OnceLock::new();

pub fn server() -> &'static PgServer {
    SERVER.get_or_init(|| match rostersync::pgtemp::for_tests() {
        Ok(s) => s,
        Err(e) => panic!("the integration tests need PostgreSQL: {e}"),
    })
}

/// A fresh database on the shared server.
pub async fn fresh_database() -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    server()
        .create_database(&name)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"))
}

/// One SIS row: user, course, section, role, status.
pub type Row5<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, Option<&'a str>);

pub struct TestEnv {
    pub db_url: String,
    pub pool: PgPool,
    pub sim: SimHandle,
    pub token: String,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub async fn new(seed: Seed) -> TestEnv {
        Self::with_options(SimOptions {
            seed,
            ..SimOptions::default()
        })
        .await
    }

    pub async fn with_options(opts: SimOptions) -> TestEnv {
        let db_url = fresh_database().await;
        let pool = PgPool::connect(&db_url)
            .await
            .expect("connect test database");
        sqlx::query(
            "CREATE TABLE sis_enrollments (user_id text, course_id text, section_id text, role text, status text)",
        )
        .execute(&pool)
        .await
        .expect("create sis_enrollments");
        let token = opts.token.clone();
        let sim = canvas_sim::spawn(opts).await.expect("spawn canvas-sim");
        TestEnv {
            db_url,
            pool,
            sim,
            token,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub async fn sis(&self, rows: &[Row5<'_>]) {
        for (user, course, section, role, status) in rows {
            sqlx::query("INSERT INTO sis_enrollments VALUES ($1, $2, $3, $4, $5)")
                .bind(*user)
                .bind(*course)
                .bind(*section)
                .bind(*role)
                .bind(*status)
                .execute(&self.pool)
                .await
                .expect("insert SIS row");
        }
    }

    pub async fn clear_sis(&self) {
        sqlx::query("TRUNCATE sis_enrollments")
            .execute(&self.pool)
            .await
            .expect("truncate");
    }

    /// The TOML for this environment, plus `extra` (whole sections, e.g. "[reconcile]\nmax_removals = 3").
    pub fn toml(&self, extra: &str) -> String {
        // The shipped defaults (the pacer alone paces), unless the test sets a limit.
        let (canvas_extra, rest) = split_canvas_extra(extra);
        format!(
            "[canvas]\nbase_url = \"{}\"\ntoken = \"{}\"\n{canvas_extra}\n[database]\nurl = \"{}\"\n\n{rest}\n",
            self.sim.base_url(),
            self.token,
            self.db_url,
        )
    }

    pub fn settings(&self, extra: &str) -> Settings {
        Settings::from_toml_str(&self.toml(extra)).unwrap_or_else(|e| panic!("test settings: {e}"))
    }

    pub fn config_file(&self, extra: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("rostersync-{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, self.toml(extra)).expect("write config");
        path
    }

    /// One cycle in-process, holding the leader lock like `rostersync reconcile`.
    pub async fn reconcile(&self, extra: &str) -> CycleReport {
        self.reconcile_with(extra, CycleOptions::default()).await
    }

    pub async fn reconcile_with(&self, extra: &str, mut opts: CycleOptions) -> CycleReport {
        let settings = self.settings(extra);
        let url = settings.database.url.clone();
        let ctx = rostersync::app::connect(settings, Arc::new(Metrics::new()))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        // A killed process's lock goes with its connection, which the server notices within a second.
        let mut lock = None;
        for _ in 0..50 {
            lock = LeaderLock::try_acquire(&url).await.expect("lock");
            if lock.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let lock = lock.expect("the leader lock is free");
        opts.holds_lock = true;
        opts.cancel = lock.lost().child_token();
        let report = run_cycle(&ctx, &opts).await;
        lock.release().await;
        report
    }

    /// Starts the built `rostersync` binary in the background with a config file made of `extra`, for a test that kills
    /// it mid-run (`kill -9` on drop). Its stderr goes to the returned log file.
    pub fn spawn_cli(&self, args: &[&str], extra: &str) -> (tokio::process::Child, PathBuf) {
        let config = self.config_file(extra);
        let log = config.with_extension("log");
        let child = rostersync_cmd()
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn rostersync");
        (child, log)
    }

    /// Runs the built `rostersync` binary with a config file made of `extra`. Async, so that the simulator
    /// (served by this test's runtime) keeps answering while the binary runs.
    pub async fn cli(&self, args: &[&str], extra: &str) -> Output {
        let config = self.config_file(extra);
        rostersync_cmd()
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .await
            .expect("run rostersync")
    }

    /// Writes (POST/PUT/DELETE) the simulator has served.
    pub fn writes(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    }

    /// Enrollment rows in the simulator for a user id (Canvas id) and course id.
    pub fn enrollments_of(&self, user_id: u64, course_id: u64) -> Vec<(u64, u64, String)> {
        self.sim.with_store(|s| {
            s.enrollments_of(user_id, course_id)
                .into_iter()
                .map(|e| (e.id, e.role_id, e.workflow_state.as_str().to_owned()))
                .collect()
        })
    }

    pub async fn audit(&self, run_id: &str) -> Vec<AuditRecord> {
        sqlx::query(
            "SELECT action, user_id, course_id, section_id, role_before, role_after, state_before, state_after, \
             canvas_enrollment_id, outcome, error, dry_run, new_canvas_enrollment_id, http_status \
             FROM rostersync.audit_log WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .expect("read audit log")
        .into_iter()
        .map(|r| AuditRecord {
            action: r.get("action"),
            user_id: r.get("user_id"),
            course_id: r.get("course_id"),
            section_id: r.get("section_id"),
            role_before: r.get("role_before"),
            role_after: r.get("role_after"),
            state_before: r.get("state_before"),
            state_after: r.get("state_after"),
            canvas_enrollment_id: r.get("canvas_enrollment_id"),
            outcome: r.get("outcome"),
            error: r.get("error"),
            dry_run: r.get("dry_run"),
            new_canvas_enrollment_id: r.get("new_canvas_enrollment_id"),
            http_status: r.get("http_status"),
        })
        .collect()
    }

    pub async fn run_status(&self, run_id: &str) -> (String, Option<String>) {
        let row = sqlx::query("SELECT status, error FROM rostersync.sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .expect("run row");
        (row.get("status"), row.get("error"))
    }
}

fn split_canvas_extra(extra: &str) -> (String, String) {
    // Lines before the first section header belong to [canvas].
    let mut canvas = String::new();
    let mut rest = String::new();
    let mut in_canvas = true;
    for line in extra.lines() {
        if line.trim_start().starts_with('[') {
            in_canvas = false;
        }
        if in_canvas {
            canvas.push_str(line);
            canvas.push('\n');
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (canvas, rest)
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub action: String,
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    pub canvas_enrollment_id: Option<i64>,
    pub outcome: String,
    pub error: Option<String>,
    pub dry_run: bool,
    pub new_canvas_enrollment_id: Option<i64>,
    pub http_status: Option<i32>,
}

/// The built binary with a clean environment (no ROSTERSYNC_* from the caller).
pub fn rostersync_cmd() -> Command {
    let std = rostersync_std_cmd();
    Command::from(std)
}

/// The same, as a blocking `std::process::Command` (for processes driven without the test's runtime).
pub fn rostersync_std_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ROSTERSYNC") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ROSTERSYNC__LOG__FORMAT", "json");
    cmd
}

// ---- seed helpers ---------------------------------------------------------------------------------------------

pub fn user(id: u64, sis: &str) -> SeedUser {
    SeedUser::new(id, &format!("User {sis}"))
        .with_sis_user_id(sis)
        .with_login_id(&format!("{}@example.edu", sis.to_lowercase()))
}

pub fn course(id: u64, sis: &str) -> SeedCourse {
    SeedCourse::new(id, &format!("Course {sis}")).with_sis_course_id(sis)
}

pub fn section(id: u64, course_id: u64, sis: &str) -> SeedSection {
    SeedSection::new(id, course_id, &format!("Section {sis}")).with_sis_section_id(sis)
}

pub fn enrolled(user_id: u64, course_id: u64, role_id: u64, state: &str) -> SeedEnrollment {
    SeedEnrollment::new(user_id, course_id)
        .with_role_id(role_id)
        .with_state(state)
}

pub fn adult_learner(id: u64) -> SeedRole {
    SeedRole::custom(id, "Adult Learner", "StudentEnrollment")
}

pub fn with_faults(seed: Seed, faults: FaultOptions) -> SimOptions {
    SimOptions {
        seed,
        faults,
        ..SimOptions::default()
    }
}

/// Parses the single JSON object `reconcile --json` prints.
pub fn json_report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Waits until `done` holds; after `within` the test fails with `context()` (a daemon's log, say).
pub async fn eventually(
    within: std::time::Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting after {within:?}: {}",
            context()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs the built binary with an existing config file.
pub async fn run_with_config(config: &std::path::Path, args: &[&str]) -> Output {
    rostersync_cmd()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .expect("run rostersync")
}

/// Advisory locks granted in this test's database (the leader lock).
pub async fn advisory_locks_held(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .expect("pg_locks")
}
