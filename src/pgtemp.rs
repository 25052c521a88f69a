//! Finding a PostgreSQL for the demo and the tests, or starting a throwaway one.
//!
//! Order: `DATABASE_URL`; a server on 127.0.0.1:5432 that accepts `postgres` without a password; else a fresh
//! cluster in a temp dir (`initdb` + `pg_ctl`, binaries from PATH, `pg_config --bindir`, or
//! `/usr/lib/postgresql/*/bin`). `initdb` refuses to run as root, so as root the cluster runs as the `postgres`
//! user via `runuser`. A watchdog process stops the cluster and removes its directory when this process ends,
//! however it ends; dropping [`TempPostgres`] stops it at once.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "no PostgreSQL found: DATABASE_URL is not set, nothing answers on 127.0.0.1:5432, and the server binaries \
         (initdb, pg_ctl) are not on PATH, known to pg_config, or in /usr/lib/postgresql/*/bin. Install PostgreSQL \
         (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; macOS: \
         `brew install postgresql`) or set DATABASE_URL=postgres://user:pass@host/db"
    )]
    NotInstalled,
    #[error("starting a throwaway PostgreSQL failed: {0}")]
    Start(String),
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Where the server came from.
#[derive(Debug)]
pub enum PgServer {
    /// An existing server (`DATABASE_URL` or localhost:5432): its admin URL.
    Existing {
        url: String,
        origin: &'static str,
    },
    Temp(TempPostgres),
}

impl PgServer {
    /// A URL with rights to create databases.
    pub fn admin_url(&self) -> &str {
        match self {
            PgServer::Existing { url, .. } => url,
            PgServer::Temp(t) => &t.url,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PgServer::Existing { origin, .. } => format!("existing PostgreSQL ({origin})"),
            PgServer::Temp(t) => format!(
                "throwaway PostgreSQL cluster in {} (port {})",
                t.dir.display(),
                t.port
            ),
        }
    }

    /// Creates a fresh database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, PgError> {
        let mut conn = PgConnection::connect(self.admin_url()).await?;
        let quoted = name.replace('"', "\"\"");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        let mut url =
            url::Url::parse(self.admin_url()).map_err(|e| PgError::Start(e.to_string()))?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }
}

/// Finds or starts a server (see the module docs).
pub async fn find_or_start() -> Result<PgServer, PgError> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        return Ok(PgServer::Existing {
            url,
            origin: "DATABASE_URL",
        });
    }
    let local = "postgres://postgres@127.0.0.1:5432/postgres";
    if let Ok(Ok(conn)) =
        tokio::time::timeout(Duration::from_secs(2), PgConnection::connect(local)).await
    {
        let _ = conn.close().await;
        return Ok(PgServer::Existing {
            url: local.to_owned(),
            origin: "127.0.0.1:5432",
        });
    }
    let started = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .map_err(|e| PgError::Start(e.to_string()))??;
    Ok(PgServer::Temp(started))
}

/// For test suites: `DATABASE_URL` when set, else a throwaway cluster (blocking). One server per test process;
/// each test creates its own database on it.
pub fn for_tests() -> Result<PgServer, PgError> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(PgServer::Existing {
            url,
            origin: "DATABASE_URL",
        }),
        _ => TempPostgres::start().map(PgServer::Temp),
    }
}

/// A throwaway cluster, stopped and removed on drop (or by its watchdog when the process dies).
#[derive(Debug)]
pub struct TempPostgres {
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
    bin: PathBuf,
    as_postgres_user: bool,
    watchdog: Option<Child>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The directory holding `initdb` and `pg_ctl`.
pub fn find_bindir() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has(&dir) {
                return Some(dir);
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> Result<u16, PgError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| PgError::Start(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| PgError::Start(e.to_string()))
}

impl TempPostgres {
    fn command(&self, program: &str) -> Command {
        command_for(&self.bin, self.as_postgres_user, program)
    }

    /// Starts a cluster: blocking (initdb takes a second or two).
    pub fn start() -> Result<TempPostgres, PgError> {
        let bin = find_bindir().ok_or(PgError::NotInstalled)?;
        let as_postgres_user = is_root();
        let dir = tempfile::Builder::new()
            .prefix("rostersync-pg-")
            .tempdir()
            .map_err(|e| PgError::Start(format!("cannot create a temp dir: {e}")))?
            .keep();
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| PgError::Start(format!("chown: {e}")))?;
            if !status.success() {
                return Err(PgError::Start(
                    "running as root, but cannot hand the data directory to the `postgres` user (does it exist? \
                     `useradd --system postgres`)"
                        .into(),
                ));
            }
        }
        let port = free_port()?;
        let mut pg = TempPostgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            port,
            bin,
            as_postgres_user,
            watchdog: None,
        };
        let data = pg.dir.join("data");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .map_err(|e| PgError::Start(format!("initdb: {e}")))?;
        if !out.status.success() {
            return Err(PgError::Start(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB",
            pg.dir.display()
        );
        let out = pg
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(&options)
            .arg("-l")
            .arg(pg.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| PgError::Start(format!("pg_ctl: {e}")))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(pg.dir.join("postgres.log")).unwrap_or_default();
            return Err(PgError::Start(format!(
                "pg_ctl start failed: {} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
            )));
        }
        pg.watchdog = Some(pg.spawn_watchdog()?);
        Ok(pg)
    }

    /// A detached shell that waits for this process to end, then stops the cluster and removes its directory.
    fn spawn_watchdog(&self) -> Result<Child, PgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let stop = if self.as_postgres_user {
            format!(
                "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!(
                "'{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| PgError::Start(format!("cannot start the cleanup watchdog: {e}")))
    }

    /// Leaves the cluster running after this process ends (`rostersync demo --keep`): the watchdog is stopped and
    /// dropping no longer stops the server. Returns a shell command that stops it and removes its directory.
    pub fn keep(mut self) -> String {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let pg_ctl = self.bin.join("pg_ctl");
        let runuser = if self.as_postgres_user {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let stop = format!(
            "{runuser}'{}' -D '{}' -m fast stop && rm -rf '{}'",
            pg_ctl.display(),
            self.dir.join("data").display(),
            self.dir.display()
        );
        std::mem::forget(self);
        stop
    }

    /// Restarts the server (tests of a database restart mid-cycle).
    pub fn restart(&self) -> Result<(), PgError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "restart"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| PgError::Start(format!("pg_ctl restart: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(PgError::Start(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    /// Stops the server without removing it (tests of a database that is down).
    pub fn stop(&self) -> Result<(), PgError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| PgError::Start(format!("pg_ctl stop: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(PgError::Start(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }
}

fn command_for(bin: &Path, as_postgres_user: bool, program: &str) -> Command {
    let exe = bin.join(program);
    if as_postgres_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

use std::os::unix::process::CommandExt;

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = command_for(&self.bin, self.as_postgres_user, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
