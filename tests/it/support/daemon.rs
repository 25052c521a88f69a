//! Running `rostersync run` as an operator would, and the small districts the daemon tests load: a free port, the
//! [`Daemon`] child process and its endpoints, metric lookups in OpenMetrics text, [`roster`] and [`load`].

use std::time::{Duration, Instant};

use canvas_sim::Seed;
use tokio::process::Child;

use super::{Row5, TestEnv, course, rostersync_cmd, user};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `n` users, one course, and SIS rows that enrol all of them.
pub fn roster(n: u64) -> (Seed, Vec<(String, &'static str)>) {
    let mut seed = Seed::default().course(course(100, "DAEMON-1"));
    let mut rows = Vec::new();
    for i in 1..=n {
        let sis = format!("d{i}");
        seed = seed.user(user(i, &sis));
        rows.push((sis, "DAEMON-1"));
    }
    (seed, rows)
}

/// [`roster`] of `n` users in a simulator with these faults, its SIS rows loaded.
pub async fn roster_env(
    n: u64,
    faults: canvas_sim::FaultOptions,
) -> (TestEnv, Vec<(String, &'static str)>) {
    let (seed, rows) = roster(n);
    let env = TestEnv::with_options(super::with_faults(seed, faults)).await;
    load(&env, &rows).await;
    (env, rows)
}

pub async fn load(env: &TestEnv, rows: &[(String, &'static str)]) {
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c)| (u.as_str(), *c, None, "student", None))
        .collect();
    env.sis(&rows).await;
}

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub stderr_path: std::path::PathBuf,
}

impl Daemon {
    pub async fn start(env: &TestEnv, cron: &str, extra: &str) -> Daemon {
        Self::start_with(env, cron, extra, |toml| toml).await
    }

    /// The same, reaching the database at `db_url` (e.g. through a proxy in the test) instead of `env.db_url`.
    pub async fn start_with_db(env: &TestEnv, db_url: &str, cron: &str, extra: &str) -> Daemon {
        let own = env.db_url.clone();
        Self::start_with(env, cron, extra, |t| t.replace(&own, db_url)).await
    }

    /// As [`Daemon::start`], with the configuration's text passed through `edit` (e.g. another database URL).
    pub async fn start_with(
        env: &TestEnv,
        cron: &str,
        extra: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Daemon {
        let port = free_port();
        let config = env.dir.path().join(format!("daemon-{port}.toml"));
        // `extra` may have a [schedule] section of its own (sis_poll_secs, run_on_start): the cron goes into it.
        let mut schedule = format!("[schedule]\ncron = \"{cron}\"\n");
        if !extra.contains("run_on_start") {
            schedule.push_str("run_on_start = true\n");
        }
        let extra = if extra.contains("[schedule]\n") {
            extra.replacen("[schedule]\n", &schedule, 1)
        } else {
            format!("{extra}\n{schedule}")
        };
        std::fs::write(
            &config,
            edit(env.toml(&format!(
                "{extra}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"
            ))),
        )
        .expect("write config");
        let stderr_path = env.dir.path().join(format!("daemon-{port}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let child = rostersync_cmd()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start rostersync run");
        let d = Daemon {
            child,
            port,
            stderr_path,
        };
        d.wait_for(Duration::from_secs(20), |_, code| code == 200, "/healthz")
            .await;
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::get(self.url(path)).await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.unwrap_or_default()))
    }

    /// Polls `path` until `ok(body, status)`.
    pub async fn wait_for(
        &self,
        within: Duration,
        ok: impl Fn(&str, u16) -> bool,
        path: &str,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some((status, body)) = self.get(path).await
                && ok(&body, status)
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never became ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id().map(|p| p as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!(
                "daemon did not exit within {within:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

/// A metric's value from OpenMetrics text (first sample whose line starts with `prefix`).
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub fn cycles(text: &str, outcome: &str) -> f64 {
    metric(
        text,
        &format!("rostersync_cycles_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(0.0)
}
