//! The freshness scenario (issue 14): S2's district (250k enrollments, 10k courses), converged by a full cycle of
//! `rostersync run` on the shipped defaults; then, several times, 100 SIS changes (5 new students in each of 20
//! courses) committed at a random moment → the time from the commit to the last Canvas write, and the Canvas calls
//! that took, against the full cycle's. First with the default poll (`schedule.sis_poll_secs = 60`), then after a
//! restart with `sis.notify_channel` and the statement trigger of the README.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rostersync::pgtemp::PgServer;

use super::{Dataset, Knobs, Opts, SHAPES, Shape, drop_database, load_sis, start_sim};

const CHANNEL: &str = "rostersync_sis_changed";
const COURSES_PER_TRIAL: usize = 20;
const ROWS_PER_COURSE: u64 = 5;

#[derive(Debug, Clone)]
pub struct Trial {
    pub latency_s: f64,
    pub calls: u64,
    pub writes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FreshOutcome {
    pub enrollments: u64,
    pub courses: u64,
    pub full_calls: u64,
    pub full_wall_s: f64,
    /// What a full cycle that lists every course would call (pages of every course + the roles): the comparison
    /// when the provisioning report is unavailable.
    pub per_course_calls: u64,
    /// (mode, trials)
    pub modes: Vec<(&'static str, Vec<Trial>)>,
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

impl FreshOutcome {
    pub fn table(&self) -> String {
        let mut s = format!(
            "Freshness, {} enrollments in {} courses converged; full cycle: {} Canvas calls, {:.1} s.\n\n\
             | trigger | trials | SIS commit → last Canvas write p50 s | p95 s | max s | Canvas calls per 100 changes (mean) | ÷ full cycle's calls |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            self.enrollments, self.courses, self.full_calls, self.full_wall_s
        );
        for (mode, trials) in &self.modes {
            let lat: Vec<f64> = trials.iter().map(|t| t.latency_s).collect();
            let calls =
                trials.iter().map(|t| t.calls).sum::<u64>() as f64 / trials.len().max(1) as f64;
            s.push_str(&format!(
                "| {mode} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2}% |\n",
                trials.len(),
                percentile(lat.clone(), 0.5),
                percentile(lat.clone(), 0.95),
                percentile(lat, 1.0),
                calls,
                100.0 * calls / self.full_calls.max(1) as f64
            ));
        }
        s.push_str(&format!(
            "\n| target (issue 14) | measured | met |\n|---|---|---|\n{}",
            self.verdicts()
                .into_iter()
                .map(|(what, is, ok)| format!(
                    "| {what} | {is} | {} |\n",
                    if ok { "yes" } else { "**no**" }
                ))
                .collect::<String>()
        ));
        s
    }

    fn verdicts(&self) -> Vec<(String, String, bool)> {
        let mut v = Vec::new();
        for (mode, trials) in &self.modes {
            let p95 = percentile(trials.iter().map(|t| t.latency_s).collect(), 0.95);
            let at_most = if mode.starts_with("NOTIFY") {
                5.0
            } else {
                60.0
            };
            v.push((
                format!("{mode}: SIS change → Canvas p95 ≤ {at_most} s"),
                format!("{p95:.1} s"),
                p95 <= at_most,
            ));
        }
        let trials: Vec<&Trial> = self.modes.iter().flat_map(|(_, t)| t).collect();
        let calls = trials.iter().map(|t| t.calls).sum::<u64>() as f64 / trials.len().max(1) as f64;
        for (what, full) in [
            (
                "the default full cycle's calls (provisioning report)",
                self.full_calls,
            ),
            ("a per-course full cycle's calls", self.per_course_calls),
        ] {
            let share = calls / full.max(1) as f64;
            v.push((
                format!("calls per 100 changes ≤ 2% of {what}, {full}"),
                format!("{calls:.0} = {:.1}%", share * 100.0),
                share <= 0.02,
            ));
        }
        v
    }
}

fn config(base_url: &str, db_url: &str, port: u16, notify: bool, run_on_start: bool) -> String {
    format!(
        r#"[canvas]
base_url = "{base_url}"
token = "{token}"

[database]
url = "{db_url}"

[sis]
{notify}

[schedule]
# No full cycle but the one at start: every later write is a freshness run's.
cron = "0 0 0 1 1 *"
run_on_start = {run_on_start}

[server]
listen = "127.0.0.1:{port}"

[log]
format = "json"
"#,
        token = canvas_sim::DEFAULT_TOKEN,
        notify = if notify {
            format!("notify_channel = \"{CHANNEL}\"")
        } else {
            String::new()
        },
    )
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &Path, log: &Path) -> Result<Child> {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("start rostersync run")?;
    Ok(Child(child))
}

async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> F,
) -> Result<()> {
    let deadline = Instant::now() + within;
    while !done().await {
        if Instant::now() > deadline {
            bail!("freshness: {what} did not happen within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn run(pg: &PgServer, opts: &Opts, dir: &Path, trials: usize) -> Result<FreshOutcome> {
    let base = SHAPES[1];
    let shape = Shape {
        adds: 0,
        removes: 0,
        role_changes: 0,
        ..base
    }
    .scaled(opts.scale);
    let data = Dataset::generate(shape)?;
    let knobs = Knobs {
        latency_ms: opts.latency_ms.unwrap_or(shape.latency_ms),
        cost: opts.cost.unwrap_or(shape.cost),
    };
    let db_name = format!("bench_fresh_{}", uuid::Uuid::new_v4().simple());
    let db_url = pg.create_database(&db_name).await?;
    let result = async {
        load_sis(&db_url, &data).await?;
        let conn = sqlx::PgPool::connect(&db_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE FUNCTION rostersync_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$; \
             CREATE TRIGGER rostersync_sis_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sis_enrollments \
             FOR EACH STATEMENT EXECUTE FUNCTION rostersync_notify();"
        )))
        .execute(&conn)
        .await?;
        let (sim, _) = start_sim(&data, knobs, Vec::new(), opts.fill).await?;
        let mut out = FreshOutcome {
            enrollments: data.slots.len() as u64,
            courses: data.courses() as u64,
            per_course_calls: super::per_course_reads(&data.sizes) + 1,
            ..FreshOutcome::default()
        };
        let mut rng = StdRng::seed_from_u64(0xf5e54);
        let mut trial_no = 0u64;
        for (mode, notify) in [("poll (default 60 s)", false), ("NOTIFY", true)] {
            let port = free_port()?;
            let cfg = dir.join(format!("fresh-{notify}.toml"));
            let first = out.full_calls == 0;
            std::fs::write(&cfg, config(&sim.base_url(), &db_url, port, notify, first))?;
            let log = dir.join(format!("fresh-{notify}.stderr.log"));
            let child = spawn(&cfg, &log)?;
            if first {
                eprintln!("[fresh] full cycle of {} enrollments (log: {})", out.enrollments, log.display());
                wait_for("the full cycle", Duration::from_secs(3600), || async {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM rostersync.sync_runs WHERE scope = 'full' AND status = 'succeeded'",
                    )
                    .fetch_one(&conn)
                    .await
                    .is_ok_and(|n| n >= 1)
                })
                .await?;
                let (calls, ms): (i64, i64) = sqlx::query_as(
                    "SELECT (counts->>'api_calls')::bigint, (counts->>'duration_ms')::bigint \
                     FROM rostersync.sync_runs WHERE scope = 'full' ORDER BY started_at LIMIT 1",
                )
                .fetch_one(&conn)
                .await?;
                out.full_calls = calls as u64;
                out.full_wall_s = ms as f64 / 1000.0;
                eprintln!("[fresh] converged: {calls} calls in {:.1} s", out.full_wall_s);
            } else {
                // A restart: the recorded fingerprints are the baseline.
                wait_for("LISTEN", Duration::from_secs(60), || async {
                    std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening for SIS changes"))
                })
                .await?;
            }
            let mut results = Vec::new();
            for _ in 0..trials {
                // Commit at a random moment of the poll's period (or soon, with NOTIFY).
                let pause = if notify { 1.0 } else { rng.random_range(0.0..60.0) };
                tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                let (mut users, mut courses) = (Vec::new(), Vec::new());
                for k in 0..COURSES_PER_TRIAL {
                    let c = ((trial_no as usize * COURSES_PER_TRIAL + k) * 7919) % data.courses();
                    for i in 0..ROWS_PER_COURSE {
                        // Users past the course's own range are not its members.
                        let u = (data.starts[c] + data.sizes[c] + 1 + trial_no * ROWS_PER_COURSE + i)
                            % data.shape.users;
                        users.push(format!("U{u}"));
                        courses.push(format!("C{c}"));
                    }
                }
                trial_no += 1;
                let writes_before = sim.requests().iter().filter(|r| r.method != "GET").count();
                sqlx::query(
                    "INSERT INTO sis_enrollments (user_id, course_id, section_id, role, status) \
                     SELECT u, c, NULL, 'student', NULL FROM unnest($1::text[], $2::text[]) AS t(u, c)",
                )
                .bind(&users)
                .bind(&courses)
                .execute(&conn)
                .await?;
                let committed = Instant::now();
                let want = writes_before + users.len();
                wait_for("100 enrolls", Duration::from_secs(600), || async {
                    sim.requests().iter().filter(|r| r.method != "GET").count() >= want
                })
                .await?;
                // Let the run finish, then count what it called.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let requests = sim.requests();
                let since: Vec<_> = requests.iter().filter(|r| r.started >= committed).collect();
                let last_write = since
                    .iter()
                    .filter(|r| r.method != "GET")
                    .map(|r| r.finished)
                    .max()
                    .unwrap_or(committed);
                let t = Trial {
                    latency_s: last_write.duration_since(committed).as_secs_f64(),
                    calls: since.len() as u64,
                    writes: since.iter().filter(|r| r.method != "GET").count() as u64,
                };
                eprintln!(
                    "[fresh] {mode}: commit → last write {:.1} s, {} calls ({} writes)",
                    t.latency_s, t.calls, t.writes
                );
                results.push(t);
            }
            drop(child);
            out.modes.push((mode, results));
        }
        sim.shutdown().await;
        conn.close().await;
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    drop_database(pg, &db_name).await;
    result
}
