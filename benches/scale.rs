//! Scale benchmark: rostersync against the bundled Canvas simulator at district sizes, next to the floor that
//! Canvas's throttle allows and a naive baseline.
//!
//! ```text
//! cargo bench --bench scale -- [S1 S2 S3 S4 S5] [F] [O] [--latency-ms N] [--cost X] [--scale F] [--baseline]
//!     [--baseline-sample F] [--markdown] [--out FILE] [--fill store|seed] [--read-path P] [--write-path P]
//!     [--max-in-flight N] [--timeout-secs N] [--repeat N]
//! ```
//!
//! Not a test: `harness = false`, and benches are not built or run by a plain `cargo test`.
//!
//! For each scenario the bench generates the shape directly (no JSON), fills an in-process simulator, COPYs the SIS
//! rows into a fresh PostgreSQL database, and runs the built `rostersync reconcile --json` as a child process, the
//! way an operator would. Peak RSS and CPU time are the child's own (`wait4` rusage). Calls, throttled answers and
//! latency are counted at the simulator. The floor (canvas-api-facts.md §5):
//!
//! - minimum calls = Σ_courses max(1, ⌈n_c/100⌉) + A + R + 2K + 1 (roles); the report path reads with 3 calls;
//! - floor = max(min_calls × mean latency / cap, (min_calls × cost − hwm) / outflow), cap = min(max_in_flight,
//!   ⌊hwm/up_front⌋ − 1), with the mean latency observed at the simulator (finished − started of served requests).
//!
//! The naive baseline (sequential, 5 listings per course — one per state —, no pacing, writes one at a time) runs
//! in this process with reqwest against a fresh simulator holding the same data.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use canvas_sim::{
    DEFAULT_TOKEN, FaultAction, FaultOptions, FaultRule, Seed, SeedCourse, SeedEnrollment,
    SeedSection, SeedUser, SimHandle, SimOptions, Store, ThrottleOptions,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rostersync::canvas::link;
use rostersync::canvas::model::{Enrollment, Role};
use rostersync::domain::decide::{DecideSettings, Snapshot, decide};
use rostersync::domain::guard::GuardLimits;
use rostersync::domain::roles::{RoleBook, RoleInfo};
use rostersync::domain::sis_row::{SisRow, parse_row};
use rostersync::domain::{Action, EnrollmentState, Ids, LiveEnrollment, RoleId, SectionKey, Sym};
use rostersync::domain::{RemovalPolicy, UserIdKind};
use rostersync::pgtemp::PgServer;
use rostersync::reconcile::read::live_enrollment;

#[path = "scale/fresh.rs"]
mod fresh;
#[path = "scale/openedx.rs"]
mod openedx;
use sqlx::{Connection, PgConnection};

/// Canvas's throttle defaults (facts §5); the simulator runs with them, only `request_cost` changes.
const HWM: f64 = 600.0;
const UP_FRONT: f64 = 50.0;
const OUTFLOW: f64 = 10.0;
const PER_PAGE: u64 = 100;
const STUDENT: u64 = 3;
const TEACHER: u64 = 4;
/// The simulator gives its token user the first free id; ours start above it.
const USER_BASE: u64 = 1000;
/// States the naive baseline lists one at a time (the ones rostersync compares in one listing).
const NAIVE_STATES: [&str; 5] = [
    "active",
    "invited",
    "creation_pending",
    "inactive",
    "completed",
];

// ------------------------------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// An empty simulator filled through `SimHandle::with_store` (`Store::add_*`).
    Store,
    /// A `Seed` built in memory and handed to `spawn`.
    Seed,
}

#[derive(Debug, Clone)]
struct Opts {
    scenarios: Vec<usize>,
    latency_ms: Option<f64>,
    cost: Option<f64>,
    scale: f64,
    baseline: bool,
    baseline_sample: Option<f64>,
    markdown: bool,
    out: Option<PathBuf>,
    fill: Fill,
    read_path: Option<String>,
    write_path: Option<String>,
    max_in_flight: u32,
    /// `--max-in-flight` given: the config sets it (otherwise the shipped default, 11, applies).
    max_in_flight_set: bool,
    /// `F`: the freshness scenario, with this many trials per trigger.
    fresh_trials: Option<usize>,
    /// `O`: the Open edX first sync and steady state.
    openedx: bool,
    timeout: Duration,
    repeat: usize,
    command_line: String,
}

const USAGE: &str = "usage: cargo bench --bench scale -- [S1 S2 S3 S4 S5] [F] [O] [--fresh-trials N] [--latency-ms N] [--cost X] [--scale F] \
[--baseline] [--baseline-sample F] [--markdown] [--out FILE] [--fill store|seed] [--read-path P] [--write-path P] \
[--max-in-flight N] [--timeout-secs N] [--repeat N]";

fn parse_args() -> Result<Opts> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let shown: Vec<&str> = raw
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    let mut opts = Opts {
        scenarios: Vec::new(),
        latency_ms: None,
        cost: None,
        scale: 1.0,
        baseline: false,
        baseline_sample: None,
        markdown: false,
        out: None,
        fill: Fill::Store,
        read_path: None,
        write_path: None,
        max_in_flight: 11,
        max_in_flight_set: false,
        fresh_trials: None,
        openedx: false,
        timeout: Duration::from_secs(3600),
        repeat: 1,
        command_line: format!("cargo bench --bench scale -- {}", shown.join(" ")),
    };
    let mut args = raw.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            // `cargo bench` appends `--bench` to every bench binary's arguments.
            "--bench" => {}
            "--latency-ms" => opts.latency_ms = Some(value(&arg)?.parse()?),
            "--cost" => opts.cost = Some(value(&arg)?.parse()?),
            "--scale" => opts.scale = value(&arg)?.parse()?,
            "--baseline" => opts.baseline = true,
            "--baseline-sample" => {
                opts.baseline = true;
                opts.baseline_sample = Some(value(&arg)?.parse()?);
            }
            "--markdown" => opts.markdown = true,
            "--out" => opts.out = Some(PathBuf::from(value(&arg)?)),
            "--fill" => {
                opts.fill = match value(&arg)?.as_str() {
                    "store" => Fill::Store,
                    "seed" => Fill::Seed,
                    other => bail!("--fill {other}: use store or seed"),
                }
            }
            "--read-path" => opts.read_path = Some(value(&arg)?),
            "--write-path" => opts.write_path = Some(value(&arg)?),
            "--max-in-flight" => {
                opts.max_in_flight = value(&arg)?.parse()?;
                opts.max_in_flight_set = true;
            }
            "--fresh-trials" => opts.fresh_trials = Some(value(&arg)?.parse::<usize>()?.max(1)),
            "F" | "f" => {
                opts.fresh_trials.get_or_insert(6);
            }
            "O" | "o" => opts.openedx = true,
            "--timeout-secs" => opts.timeout = Duration::from_secs(value(&arg)?.parse()?),
            "--repeat" => opts.repeat = value(&arg)?.parse::<usize>()?.max(1),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.len() == 2 && s.to_ascii_uppercase().starts_with('S') => {
                let n: usize = s[1..]
                    .parse()
                    .map_err(|_| anyhow!("unknown scenario {s}"))?;
                if !(1..=SHAPES.len()).contains(&n) {
                    bail!("unknown scenario {s}: S1..S{}", SHAPES.len());
                }
                opts.scenarios.push(n - 1);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if opts.scenarios.is_empty() && opts.fresh_trials.is_none() && !opts.openedx {
        opts.scenarios = (0..SHAPES.len()).collect();
    }
    if opts.scale.is_nan() || opts.scale <= 0.0 {
        bail!("--scale must be above 0");
    }
    Ok(opts)
}

// ------------------------------------------------------------------------------------------------------------------
// Shapes
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    what: &'static str,
    enrollments: u64,
    courses: u64,
    /// Courses larger than the rest, placed first: (count, size). A single big course scales its size with
    /// `--scale`; several keep their size (so that they still span more than one page) and scale their count.
    big: Option<(u64, u64)>,
    users: u64,
    adds: u64,
    removes: u64,
    role_changes: u64,
    /// Extra SIS rows naming users Canvas does not have (adds that cannot succeed).
    unknown_users: u64,
    read_path: &'static str,
    write_path: &'static str,
    /// Throttle every n-th request (scripted FaultRules).
    throttle_every: Option<u64>,
    latency_ms: f64,
    cost: f64,
}

const fn shape(name: &'static str, what: &'static str) -> Shape {
    Shape {
        name,
        what,
        enrollments: 0,
        courses: 0,
        big: None,
        users: 0,
        adds: 0,
        removes: 0,
        role_changes: 0,
        unknown_users: 0,
        read_path: "courses",
        write_path: "api",
        throttle_every: None,
        latency_ms: 20.0,
        cost: 0.1,
    }
}

const SHAPES: [Shape; 5] = [
    Shape {
        enrollments: 50_000,
        courses: 2_000,
        users: 10_000,
        ..shape("S1", "50k enrollments, 2k courses, no drift")
    },
    Shape {
        enrollments: 250_000,
        courses: 10_000,
        big: Some((100, 150)),
        users: 50_000,
        adds: 1_500,
        removes: 875,
        role_changes: 125,
        ..shape(
            "S2",
            "250k enrollments, 10k courses (100 of 150 rows), 1% drift",
        )
    },
    Shape {
        enrollments: 250_000,
        courses: 10_000,
        big: Some((100, 150)),
        users: 50_000,
        adds: 60_000,
        removes: 15_000,
        role_changes: 500,
        write_path: "auto",
        ..shape(
            "S3",
            "as S2, first day of term: 60k adds, 15k concludes, 500 role changes",
        )
    },
    Shape {
        enrollments: 1_500_000,
        courses: 60_000,
        big: Some((1, 53_000)),
        users: 250_000,
        read_path: "report",
        ..shape(
            "S4",
            "1.5M enrollments, 60k courses incl. one of 53k, no drift",
        )
    },
    Shape {
        enrollments: 100_000,
        courses: 4_000,
        users: 20_000,
        role_changes: 5_000,
        unknown_users: 500,
        throttle_every: Some(100),
        ..shape(
            "S5",
            "100k enrollments, 5k role changes, 1% throttled, 0.5% unknown users",
        )
    },
];

fn scaled(n: u64, f: f64) -> u64 {
    if n == 0 {
        0
    } else {
        ((n as f64 * f).round() as u64).max(1)
    }
}

impl Shape {
    fn scaled(&self, f: f64) -> Shape {
        if (f - 1.0).abs() < 1e-12 {
            return *self;
        }
        Shape {
            enrollments: scaled(self.enrollments, f),
            courses: scaled(self.courses, f),
            big: self.big.map(|(count, size)| {
                if count == 1 {
                    (1, scaled(size, f))
                } else {
                    (scaled(count, f), size)
                }
            }),
            users: scaled(self.users, f),
            adds: scaled(self.adds, f),
            removes: scaled(self.removes, f),
            role_changes: scaled(self.role_changes, f),
            unknown_users: scaled(self.unknown_users, f),
            ..*self
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Data
// ------------------------------------------------------------------------------------------------------------------

/// What one enrollment slot is on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Same on both sides.
    Same,
    /// In the SIS only: an enroll.
    Add,
    /// In Canvas only (active): a removal.
    Remove,
    /// The SIS wants the TA role, Canvas has the slot's own role: a role change.
    RoleChange,
}

/// A generated shape: course sizes and each slot's kind. Slot `i` of course `c` is user `(first_slot(c) + i) % users`;
/// the first member of a course is its teacher, the rest are students. Course `c` is Canvas course `c + 1` with
/// SIS id `C{c}` and one section, Canvas section `c + 1`, SIS id `S{c}`.
struct Dataset {
    shape: Shape,
    sizes: Vec<u64>,
    starts: Vec<u64>,
    slots: Vec<Slot>,
}

impl Dataset {
    fn generate(shape: Shape) -> Result<Dataset> {
        let c = shape.courses as usize;
        let mut sizes = vec![0u64; c];
        let mut rest = shape.enrollments;
        let mut first_regular = 0usize;
        if let Some((count, size)) = shape.big {
            let count = (count as usize).min(c);
            for s in sizes.iter_mut().take(count) {
                *s = size;
            }
            rest = rest.saturating_sub(count as u64 * size);
            first_regular = count;
        }
        let regular = (c - first_regular) as u64;
        if let (Some(each), Some(extra)) = (rest.checked_div(regular), rest.checked_rem(regular)) {
            for (i, s) in sizes.iter_mut().skip(first_regular).enumerate() {
                *s = each + u64::from((i as u64) < extra);
            }
        }
        if let Some(max) = sizes.iter().max()
            && *max > shape.users
        {
            bail!(
                "{}: a course of {max} members needs at least that many users ({})",
                shape.name,
                shape.users
            );
        }
        let mut starts = Vec::with_capacity(c);
        let mut total = 0u64;
        for s in &sizes {
            starts.push(total);
            total += s;
        }
        let mut slots = vec![Slot::Same; total as usize];
        let drift = shape.adds + shape.removes + shape.role_changes;
        if drift > total {
            bail!(
                "{}: more drift ({drift}) than enrollments ({total})",
                shape.name
            );
        }
        let mut rng = StdRng::seed_from_u64(0x5ca1e ^ total);
        let picked = rand::seq::index::sample(&mut rng, total as usize, drift as usize);
        for (n, i) in picked.into_iter().enumerate() {
            let n = n as u64;
            slots[i] = if n < shape.adds {
                Slot::Add
            } else if n < shape.adds + shape.removes {
                Slot::Remove
            } else {
                Slot::RoleChange
            };
        }
        Ok(Dataset {
            shape,
            sizes,
            starts,
            slots,
        })
    }

    fn courses(&self) -> usize {
        self.sizes.len()
    }

    /// Every slot of course `c`: (user index, own role id, kind).
    fn members(&self, c: usize) -> impl Iterator<Item = (u64, u64, Slot)> + '_ {
        let start = self.starts[c];
        (0..self.sizes[c]).map(move |j| {
            let slot = start + j;
            let user = slot % self.shape.users;
            let role = if j == 0 { TEACHER } else { STUDENT };
            (user, role, self.slots[slot as usize])
        })
    }

    /// Live (Canvas) rows per course, all active.
    fn live_per_course(&self) -> Vec<u64> {
        (0..self.courses())
            .map(|c| self.members(c).filter(|(_, _, k)| *k != Slot::Add).count() as u64)
            .collect()
    }

    fn count(&self, kind: Slot) -> u64 {
        self.slots.iter().filter(|k| **k == kind).count() as u64
    }

    /// SIS rows of course `c` as (user, course, section, role) text.
    fn sis_rows(&self, c: usize, mut f: impl FnMut(&str, &str, &str, &str)) {
        let course = format!("C{c}");
        let section = format!("S{c}");
        let mut user = String::new();
        for (u, role, kind) in self.members(c) {
            if kind == Slot::Remove {
                continue;
            }
            let role = match (kind, role) {
                (Slot::RoleChange, _) => "ta",
                (_, TEACHER) => "teacher",
                _ => "student",
            };
            user.clear();
            let _ = write!(user, "U{u}");
            f(&user, &course, &section, role);
        }
        // Unknown users are spread over the courses, one per course in turn.
        let courses = self.courses() as u64;
        let mut k = c as u64;
        while k < self.shape.unknown_users {
            user.clear();
            let _ = write!(user, "NOUSER{k}");
            f(&user, &course, &section, "student");
            k += courses;
        }
    }

    /// Appends course `c`'s SIS rows as COPY text (status NULL = active; the generated ids need no escaping).
    fn copy_text(&self, c: usize, out: &mut Vec<u8>) {
        self.sis_rows(c, |u, course, section, role| {
            for field in [u, course, section, role] {
                out.extend_from_slice(field.as_bytes());
                out.push(b'\t');
            }
            out.extend_from_slice(b"\\N\n");
        });
    }

    fn seed_user(&self, u: u64) -> SeedUser {
        SeedUser {
            id: USER_BASE + u,
            name: format!("Student{u} Bench"),
            sis_user_id: Some(format!("U{u}")),
            login_id: Some(format!("u{u}")),
            ..SeedUser::default()
        }
    }

    fn seed_course(&self, c: usize) -> SeedCourse {
        SeedCourse {
            id: c as u64 + 1,
            name: format!("Course {c}"),
            sis_course_id: Some(format!("C{c}")),
            ..SeedCourse::default()
        }
    }

    fn seed_section(&self, c: usize) -> SeedSection {
        SeedSection {
            id: c as u64 + 1,
            course_id: c as u64 + 1,
            name: format!("Section {c}"),
            sis_section_id: Some(format!("S{c}")),
            ..SeedSection::default()
        }
    }

    /// Canvas's enrollment rows, in id order.
    fn for_each_canvas_row(&self, mut f: impl FnMut(SeedEnrollment)) {
        let mut id = 0u64;
        for c in 0..self.courses() {
            let course = c as u64 + 1;
            for (u, role, kind) in self.members(c) {
                if kind == Slot::Add {
                    continue;
                }
                id += 1;
                f(SeedEnrollment {
                    id: Some(id),
                    user_id: USER_BASE + u,
                    course_id: Some(course),
                    course_section_id: Some(course),
                    role_id: Some(role),
                    ..SeedEnrollment::default()
                });
            }
        }
    }

    fn fill_store(&self, store: &mut Store) -> Result<()> {
        for u in 0..self.shape.users {
            store.add_user(self.seed_user(u))?;
        }
        for c in 0..self.courses() {
            store.add_course(self.seed_course(c))?;
            store.add_section(self.seed_section(c))?;
        }
        let mut result = Ok(());
        self.for_each_canvas_row(|e| {
            if result.is_ok()
                && let Err(err) = store.add_enrollment(e)
            {
                result = Err(err);
            }
        });
        Ok(result?)
    }

    fn seed(&self) -> Seed {
        let mut seed = Seed {
            users: (0..self.shape.users).map(|u| self.seed_user(u)).collect(),
            courses: (0..self.courses()).map(|c| self.seed_course(c)).collect(),
            sections: (0..self.courses()).map(|c| self.seed_section(c)).collect(),
            ..Seed::default()
        };
        seed.enrollments.reserve(self.slots.len());
        self.for_each_canvas_row(|e| seed.enrollments.push(e));
        seed
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Simulator, database, child process
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Knobs {
    latency_ms: f64,
    cost: f64,
}

/// Starts a simulator holding the dataset; returns it and the fill time.
async fn start_sim(
    data: &Dataset,
    knobs: Knobs,
    faults: Vec<FaultRule>,
    fill: Fill,
) -> Result<(SimHandle, Duration)> {
    let started = Instant::now();
    let opts = SimOptions {
        throttle: ThrottleOptions {
            request_cost: knobs.cost,
            ..ThrottleOptions::default()
        },
        faults: FaultOptions {
            latency: Duration::from_secs_f64(knobs.latency_ms / 1000.0),
            rules: faults,
            ..FaultOptions::default()
        },
        seed: match fill {
            Fill::Seed => data.seed(),
            Fill::Store => Seed::default(),
        },
        ..SimOptions::default()
    };
    let sim = canvas_sim::spawn(opts).await?;
    if fill == Fill::Store {
        sim.with_store(|s| data.fill_store(s))?;
    }
    // Reports and SIS imports complete on their first poll.
    sim.with_store(|s| s.set_job_polls(0));
    Ok((sim, started.elapsed()))
}

/// Creates `sis_enrollments` and COPYs the SIS rows in, a megabyte at a time.
async fn load_sis(db_url: &str, data: &Dataset) -> Result<u64> {
    let mut conn = PgConnection::connect(db_url).await?;
    sqlx::query(canvas_sim::district::CREATE_SIS_ENROLLMENTS)
        .execute(&mut conn)
        .await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY sis_enrollments (user_id, course_id, section_id, role, status) FROM STDIN",
        )
        .await?;
    let mut buf = Vec::with_capacity(2 << 20);
    for c in 0..data.courses() {
        data.copy_text(c, &mut buf);
        if buf.len() >= 1 << 20 || c + 1 == data.courses() {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    let rows = copy.finish().await?;
    sqlx::query("ANALYZE sis_enrollments")
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(rows)
}

async fn drop_database(pg: &PgServer, name: &str) {
    if let Ok(mut conn) = PgConnection::connect(pg.admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}

struct Paths<'a> {
    read: &'a str,
    write: &'a str,
}

/// The shipped defaults, but for the brake (the bench's drift is intended), the paths each scenario measures, and
/// a request timeout long enough for the largest report download.
fn config_toml(
    base_url: &str,
    db_url: &str,
    paths: &Paths<'_>,
    max_in_flight: Option<u32>,
) -> String {
    let limits = match max_in_flight {
        Some(n) => format!("[limits]\nmax_in_flight = {n}\n"),
        None => String::new(),
    };
    format!(
        r#"[canvas]
base_url = "{base_url}"
token = "{DEFAULT_TOKEN}"
per_page = {PER_PAGE}
request_timeout_secs = 600
read_path = "{read}"

[database]
url = "{db_url}"

[reconcile]
# The bench's drift is intended: the guard must not hold it back.
max_removals = 100000000
max_removal_ratio = 1.0
write_path = "{write}"

{limits}
[log]
format = "json"
level = "info"
"#,
        read = paths.read,
        write = paths.write,
    )
}

struct ChildRun {
    started: Instant,
    ended: Instant,
    wall: Duration,
    exit_code: i32,
    /// The child's own peak (VmHWM of its address space after exec), sampled every 2 ms until it exits.
    peak_rss_kb: u64,
    /// `ru_maxrss` from `wait4`. On Linux it also holds the parent's peak: the child is spawned with vfork (it
    /// runs in the parent's address space until exec) and exec records the old address space's high-water mark.
    rusage_max_rss_kb: i64,
    cpu: Duration,
    stdout: String,
    timed_out: bool,
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// Runs `rostersync --config FILE reconcile --json`, reaping it with `wait4` for its own rusage.
fn run_child(config: &Path, stderr: &Path, timeout: Duration) -> Result<ChildRun> {
    let bin = env!("CARGO_BIN_EXE_rostersync");
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["reconcile", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr)?)
        .spawn()
        .with_context(|| format!("cannot start {bin}"))?;
    let pid = child.id() as libc::pid_t;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("child has no stdout"))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    let mut hwm_kb = 0u64;
    loop {
        hwm_kb = hwm_kb.max(peak_rss_kb(pid).unwrap_or(0));
        // SAFETY: pid is our child, not yet reaped; the pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if !timed_out && started.elapsed() > timeout {
            timed_out = true;
            // SAFETY: signalling our own, still unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ended = Instant::now();
    let wall = ended - started;
    let stdout = reader.join().unwrap_or_default();
    let exit_code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok(ChildRun {
        started,
        ended,
        wall,
        exit_code,
        peak_rss_kb: hwm_kb,
        rusage_max_rss_kb: usage.ru_maxrss,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        stdout,
        timed_out,
    })
}

/// VmHWM of `pid`, once it runs rostersync (before exec, /proc shows the bench's own address space).
fn peak_rss_kb(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let name = status.lines().find_map(|l| l.strip_prefix("Name:"))?.trim();
    if name != "rostersync" {
        return None;
    }
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn rss_kb_self() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

// ------------------------------------------------------------------------------------------------------------------
// Measuring
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct SimCounts {
    calls: u64,
    gets: u64,
    writes: u64,
    throttled: u64,
    throttled_writes: u64,
    /// Mean latency of served per-change calls (listings, roles, enrollment writes); the report's and SIS
    /// import's job calls are counted apart, since a job's one call can take minutes.
    mean_latency: f64,
    /// Σ latency of the provisioning report's calls (start, polls, download).
    report_latency_s: f64,
    /// Σ latency of the SIS import's calls (upload, polls).
    import_latency_s: f64,
    statuses: HashMap<u16, u64>,
    /// First request's start to last request's end.
    span_s: f64,
    /// Σ latency / span: how many requests were in flight on average.
    concurrency: f64,
    /// Child start → first request, last answer → child exit (when `child` is given).
    startup_s: f64,
    tail_s: f64,
}

fn sim_counts(
    sim: &SimHandle,
    child: Option<(Instant, Instant)>,
    dump: Option<&Path>,
) -> SimCounts {
    let records = sim.requests();
    if let (Some(path), Some(origin)) = (dump, records.iter().map(|r| r.started).min()) {
        let ms = |t: Instant| t.saturating_duration_since(origin).as_secs_f64() * 1000.0;
        let mut csv = String::from("method,route,status,throttled,start_ms,end_ms\n");
        for r in &records {
            let _ = writeln!(
                csv,
                "{},{},{},{},{:.3},{:.3}",
                r.method,
                r.route,
                r.status,
                r.throttled,
                ms(r.started),
                ms(r.finished)
            );
        }
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    let mut c = SimCounts::default();
    let mut served = 0u64;
    let mut total = 0.0;
    let mut all = 0.0;
    let first = records.iter().map(|r| r.started).min();
    let last = records.iter().map(|r| r.finished).max();
    if let (Some(first), Some(last)) = (first, last) {
        c.span_s = last.duration_since(first).as_secs_f64();
        if let Some((start, end)) = child {
            c.startup_s = first.saturating_duration_since(start).as_secs_f64();
            c.tail_s = end.saturating_duration_since(last).as_secs_f64();
        }
    }
    for r in &records {
        all += r.finished.duration_since(r.started).as_secs_f64();
        c.calls += 1;
        let write = r.method != "GET";
        if write {
            c.writes += 1;
        } else {
            c.gets += 1;
        }
        *c.statuses.entry(r.status).or_default() += 1;
        if r.throttled {
            c.throttled += 1;
            if write {
                c.throttled_writes += 1;
            }
        } else {
            let latency = r.finished.duration_since(r.started).as_secs_f64();
            if r.route.contains("/reports/") || r.route.contains("/files/") {
                c.report_latency_s += latency;
            } else if r.route.contains("/sis_imports") {
                c.import_latency_s += latency;
            } else {
                served += 1;
                total += latency;
            }
        }
    }
    c.mean_latency = if served > 0 {
        total / served as f64
    } else {
        0.0
    };
    c.concurrency = if c.span_s > 0.0 { all / c.span_s } else { 0.0 };
    c
}

/// Enrollment rows sharing user + section + role + associated user (Canvas keeps one per key).
fn duplicates(sim: &SimHandle) -> u64 {
    sim.with_store(|s| {
        let mut seen = HashSet::new();
        s.enrollments()
            .filter(|e| {
                !seen.insert((
                    e.user_id,
                    e.course_section_id,
                    e.role_id,
                    e.associated_user_id,
                ))
            })
            .count() as u64
    })
}

fn in_flight_cap(max_in_flight: u32) -> f64 {
    f64::from(max_in_flight).min((HWM / UP_FRONT).floor() - 1.0)
}

/// The floor (canvas-api-facts.md §5): `regular` per-change calls at `cap` in flight, or the quota the `total`
/// calls cost beyond the high-water mark drained at the outflow rate, whichever is longer; plus `sequential`
/// seconds of job calls that cannot overlap (the provisioning report's start, poll and download).
fn floor_secs(
    regular: u64,
    total: u64,
    mean_latency: f64,
    cost: f64,
    cap: f64,
    sequential: f64,
) -> f64 {
    let latency = regular as f64 * mean_latency / cap;
    let quota = (total as f64 * cost - HWM) / OUTFLOW;
    latency.max(quota).max(0.0) + sequential
}

/// The floor under the simulator's own bucket rule, where the up-front charge of the requests in flight shares the
/// high-water mark with the settled costs: a request is admitted only while `count + up_front × in_flight < hwm`.
/// The greedy schedule (as many in flight as the bucket admits, up to `cap`, each taking `mean_latency` and
/// settling at `cost`) finishes first, since admitting more now never admits less later; its duration, in a fluid
/// simulation, is a lower bound for any client facing that latency. `sequential` seconds are added as above.
fn floor_bucket_model(
    regular: u64,
    total: u64,
    mean_latency: f64,
    cost: f64,
    cap: f64,
    sequential: f64,
) -> f64 {
    if regular == 0 || mean_latency <= 0.0 {
        return sequential;
    }
    let dt = (mean_latency / 50.0).min(0.001);
    // The job calls' costs, charged up front.
    let mut count = (total - regular) as f64 * cost;
    let (mut done, mut t) = (0.0, 0.0);
    while done < regular as f64 {
        let admitted = ((HWM - count) / UP_FRONT).ceil() - 1.0;
        let in_flight = admitted.clamp(0.0, cap);
        let rate = in_flight / mean_latency;
        done += rate * dt;
        count = (count + (cost * rate - OUTFLOW) * dt).max(0.0);
        t += dt;
    }
    t + sequential
}

/// Expected changes: adds (A, unknown users included), removals (R), role changes (K).
#[derive(Debug, Clone, Copy, Default)]
struct Drift {
    adds: u64,
    removes: u64,
    role_changes: u64,
}

impl Drift {
    fn of(data: &Dataset) -> Drift {
        Drift {
            adds: data.count(Slot::Add) + data.shape.unknown_users,
            removes: data.count(Slot::Remove),
            role_changes: data.count(Slot::RoleChange),
        }
    }
    fn writes(&self) -> u64 {
        self.adds + self.removes + 2 * self.role_changes
    }
}

fn per_course_reads(live: &[u64]) -> u64 {
    live.iter().map(|n| n.div_ceil(PER_PAGE).max(1)).sum()
}

// ------------------------------------------------------------------------------------------------------------------
// One scenario
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Outcome {
    name: String,
    what: String,
    knobs_latency_ms: f64,
    knobs_cost: f64,
    scale: f64,
    enrollments: u64,
    courses: u64,
    drift: Drift,
    read_path_cfg: String,
    write_path_cfg: String,
    // preparation
    gen_s: f64,
    copy_s: f64,
    fill_s: f64,
    fill_rss_mb: f64,
    sis_rows: u64,
    // rostersync
    exit_code: i32,
    timed_out: bool,
    wall_s: f64,
    cycle_ms: u64,
    cpu_s: f64,
    rss_mb: f64,
    rusage_rss_mb: f64,
    plan_ms: u64,
    read_ms: u64,
    apply_ms: u64,
    read_path: String,
    write_path: String,
    report_calls: u64,
    report_gets: u64,
    report_writes: u64,
    retries: u64,
    report_throttled: u64,
    planned: HashMap<String, u64>,
    applied: u64,
    failed: u64,
    skipped: u64,
    live_enrollments: u64,
    users_not_found: u64,
    status: String,
    error: Option<String>,
    // simulator
    sim: SimCounts,
    injected_throttles: u64,
    duplicates: u64,
    report_csv_mb: f64,
    // floor
    min_reads: u64,
    min_calls: u64,
    floor_s: f64,
    floor_model_s: f64,
    cap: f64,
    baseline: Option<Baseline>,
    /// Wall times of every run of this scenario (`--repeat`); the outcome shown is the median one.
    walls: Vec<f64>,
}

impl Outcome {
    fn call_ratio(&self) -> f64 {
        self.sim.calls as f64 / self.min_calls.max(1) as f64
    }
    fn wall_ratio(&self) -> f64 {
        if self.floor_s > 0.0 {
            self.wall_s / self.floor_s
        } else {
            f64::NAN
        }
    }
    fn rows_per_s(&self) -> f64 {
        (self.sis_rows + self.live_enrollments) as f64 / self.wall_s.max(1e-9)
    }
    fn bulk(&self) -> bool {
        self.write_path.contains("sis_import")
    }
}

fn json_u64(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or(0)
}

fn json_str(v: &serde_json::Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("").to_owned()
}

/// One run of a scenario; with `baseline`, the naive baseline afterwards on the same data.
async fn run_scenario(
    pg: &PgServer,
    base: Shape,
    opts: &Opts,
    dir: &Path,
    baseline: bool,
) -> Result<Outcome> {
    let shape = base.scaled(opts.scale);
    let knobs = Knobs {
        latency_ms: opts.latency_ms.unwrap_or(shape.latency_ms),
        cost: opts.cost.unwrap_or(shape.cost),
    };
    let paths = Paths {
        read: opts.read_path.as_deref().unwrap_or(shape.read_path),
        write: opts.write_path.as_deref().unwrap_or(shape.write_path),
    };
    let name = shape.name;
    let mut o = Outcome {
        name: name.to_owned(),
        what: base.what.to_owned(),
        knobs_latency_ms: knobs.latency_ms,
        knobs_cost: knobs.cost,
        scale: opts.scale,
        read_path_cfg: paths.read.to_owned(),
        write_path_cfg: paths.write.to_owned(),
        ..Outcome::default()
    };

    let t = Instant::now();
    let data = Dataset::generate(shape)?;
    let live = data.live_per_course();
    o.drift = Drift::of(&data);
    o.enrollments = data.slots.len() as u64;
    o.courses = data.courses() as u64;
    o.gen_s = t.elapsed().as_secs_f64();
    eprintln!(
        "[{name}] {} enrollment slots, {} courses, {} users; drift A={} R={} K={}; latency {} ms, cost {}; read_path \
         {}, write_path {}",
        o.enrollments,
        o.courses,
        shape.users,
        o.drift.adds,
        o.drift.removes,
        o.drift.role_changes,
        knobs.latency_ms,
        knobs.cost,
        paths.read,
        paths.write
    );

    let t = Instant::now();
    let db_name = format!(
        "bench_{}_{}",
        name.to_ascii_lowercase(),
        uuid::Uuid::new_v4().simple()
    );
    let db_url = pg.create_database(&db_name).await?;
    o.sis_rows = load_sis(&db_url, &data).await?;
    o.copy_s = t.elapsed().as_secs_f64();
    eprintln!(
        "[{name}] SIS: {} rows COPYed in {:.1} s",
        o.sis_rows, o.copy_s
    );

    let faults: Vec<FaultRule> = match shape.throttle_every {
        None => Vec::new(),
        Some(every) => {
            // Enough rules for every request the run can make, retries included.
            let expected = per_course_reads(&live) + 1 + o.drift.writes() + shape.unknown_users;
            (1..=(2 * expected / every + 10))
                .map(|k| FaultRule::always(FaultAction::Throttle).nth(k * every))
                .collect()
        }
    };
    let rss_before = rss_kb_self();
    let (sim, fill) = start_sim(&data, knobs, faults, opts.fill).await?;
    o.fill_s = fill.as_secs_f64();
    o.fill_rss_mb = rss_kb_self().saturating_sub(rss_before) as f64 / 1024.0;
    eprintln!(
        "[{name}] simulator filled ({:?}) in {:.1} s, bench RSS +{:.0} MB",
        opts.fill, o.fill_s, o.fill_rss_mb
    );

    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        config_toml(
            &sim.base_url(),
            &db_url,
            &paths,
            opts.max_in_flight_set.then_some(opts.max_in_flight),
        ),
    )?;
    let stderr = dir.join(format!("{name}.stderr.log"));
    eprintln!(
        "[{name}] running rostersync reconcile --json (log: {})",
        stderr.display()
    );
    let timeout = opts.timeout;
    let (config2, stderr2) = (config.clone(), stderr.clone());
    let run = tokio::task::spawn_blocking(move || run_child(&config2, &stderr2, timeout)).await??;
    o.exit_code = run.exit_code;
    o.timed_out = run.timed_out;
    o.wall_s = run.wall.as_secs_f64();
    o.cpu_s = run.cpu.as_secs_f64();
    o.rss_mb = run.peak_rss_kb as f64 / 1024.0;
    o.rusage_rss_mb = run.rusage_max_rss_kb as f64 / 1024.0;

    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap_or_default();
    if report.is_null() {
        eprintln!(
            "[{name}] no JSON report on stdout (exit {}); see {}",
            run.exit_code,
            stderr.display()
        );
    }
    o.cycle_ms = json_u64(&report, &["duration_ms"]);
    o.plan_ms = json_u64(&report, &["details", "plan_ms"]);
    o.read_ms = json_u64(&report, &["details", "read_ms"]);
    o.apply_ms = json_u64(&report, &["details", "apply_ms"]);
    o.read_path = json_str(&report, &["details", "read_path"]);
    o.write_path = json_str(&report, &["details", "write_path"]);
    o.report_calls = json_u64(&report, &["api_calls"]);
    o.report_gets = json_u64(&report, &["details", "requests", "gets"]);
    o.report_writes = json_u64(&report, &["details", "requests", "writes"]);
    o.retries = json_u64(&report, &["details", "requests", "retries"]);
    o.report_throttled = json_u64(&report, &["details", "requests", "throttled"]);
    o.applied = json_u64(&report, &["applied"]);
    o.failed = json_u64(&report, &["failed"]);
    o.skipped = json_u64(&report, &["skipped"]);
    o.live_enrollments = json_u64(&report, &["details", "live_enrollments"]);
    o.users_not_found = json_u64(&report, &["details", "users_not_found"]);
    o.status = json_str(&report, &["status"]);
    o.error = report["error"].as_str().map(str::to_owned);
    if let Some(p) = report["planned"].as_object() {
        o.planned = p
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect();
    }

    let dump =
        std::env::var_os("BENCH_KEEP_LOGS").map(|_| dir.join(format!("{name}.requests.csv")));
    o.sim = sim_counts(&sim, Some((run.started, run.ended)), dump.as_deref());
    o.duplicates = duplicates(&sim);
    if o.read_path == "report" {
        // The report's CSV is the first file the simulator stores (a SIS import's upload comes later).
        o.report_csv_mb = sim.with_store(|s| s.file_data(1).map_or(0, <[u8]>::len)) as f64 / 1e6;
    }
    o.injected_throttles = match shape.throttle_every {
        Some(every) => o.sim.calls / every,
        None => 0,
    };
    o.cap = in_flight_cap(opts.max_in_flight);
    let by_report = o.read_path == "report";
    o.min_reads = if by_report {
        // Start the report, one poll (the simulator completes on the first), download.
        3
    } else {
        per_course_reads(&live)
    };
    o.min_calls = o.min_reads + 1 + o.drift.writes();
    // Per-change calls: everything but the report's job calls, which run one after the other.
    let (regular, sequential) = if by_report {
        (o.min_calls - o.min_reads, o.sim.report_latency_s)
    } else {
        (o.min_calls, 0.0)
    };
    let (l, c, cap) = (o.sim.mean_latency, knobs.cost, o.cap);
    o.floor_s = floor_secs(regular, o.min_calls, l, c, cap, sequential);
    o.floor_model_s = floor_bucket_model(regular, o.min_calls, l, c, cap, sequential);
    sim.shutdown().await;
    drop_database(pg, &db_name).await;
    print_outcome(&o);

    if baseline {
        let sample = opts
            .baseline_sample
            .unwrap_or_else(|| (500.0 / data.courses() as f64).min(1.0));
        match naive_baseline(&data, knobs, opts.fill, sample).await {
            Ok(b) => {
                eprintln!(
                    "[{name}] naive baseline on {} of {} courses: {} calls in {:.1} s, {} throttled (formula for that \
                     sample: {}); full run: {} calls, ~{:.0} s",
                    b.sampled_courses,
                    data.courses(),
                    b.sample_calls,
                    b.sample_wall_s,
                    b.throttled,
                    b.sample_formula_calls,
                    b.calls,
                    b.wall_s
                );
                o.baseline = Some(b);
            }
            Err(e) => eprintln!("[{name}] naive baseline failed: {e:#}"),
        }
    }
    Ok(o)
}

/// The run with the median wall time, carrying every run's wall time and the baseline (made on the first run).
fn median_run(mut runs: Vec<Outcome>) -> Option<Outcome> {
    let baseline = runs.iter().find_map(|o| o.baseline.clone());
    let walls: Vec<f64> = runs.iter().map(|o| o.wall_s).collect();
    runs.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    let mid = runs.len().checked_sub(1)? / 2;
    let mut o = runs.swap_remove(mid);
    o.walls = walls;
    o.baseline = baseline;
    Some(o)
}

fn print_outcome(o: &Outcome) {
    let n = &o.name;
    eprintln!(
        "[{n}] rostersync: exit {} status {} ({}), read_path {:?}, write_path {:?}; planned {:?}; applied {}, failed {}, \
         skipped {}{}",
        o.exit_code,
        o.status,
        if o.timed_out { "TIMED OUT" } else { "finished" },
        o.read_path,
        o.write_path,
        o.planned,
        o.applied,
        o.failed,
        o.skipped,
        o.error
            .as_deref()
            .map(|e| format!("; error: {e}"))
            .unwrap_or_default()
    );
    eprintln!(
        "[{n}] calls at the simulator {} (GET {}, writes {}; rostersync counted {}: {} GET, {} writes, {} retries, {} \
         throttled); throttled {} ({} writes); statuses {:?}",
        o.sim.calls,
        o.sim.gets,
        o.sim.writes,
        o.report_calls,
        o.report_gets,
        o.report_writes,
        o.retries,
        o.report_throttled,
        o.sim.throttled,
        o.sim.throttled_writes,
        o.sim.statuses
    );
    eprintln!(
        "[{n}] minimum calls {} (reads {} + roles 1 + writes {}); call ratio {:.3}; mean latency {:.1} ms (report \
         calls {:.1} s, SIS import calls {:.1} s in all); floor {:.1} s (cap {}; {:.1} s under the bucket model, \
         counting the up-front charge held in flight); wall {:.1} s (cycle {:.1} s); wall ratio {:.2}",
        o.min_calls,
        o.min_reads,
        o.drift.writes(),
        o.call_ratio(),
        o.sim.mean_latency * 1000.0,
        o.sim.report_latency_s,
        o.sim.import_latency_s,
        o.floor_s,
        o.cap,
        o.floor_model_s,
        o.wall_s,
        o.cycle_ms as f64 / 1000.0,
        o.wall_ratio()
    );
    if o.report_csv_mb > 0.0 {
        eprintln!(
            "[{n}] provisioning report: {:.0} MB of CSV",
            o.report_csv_mb
        );
    }
    eprintln!(
        "[{n}] Canvas traffic: {:.1} s from first request to last answer, {:.2} requests in flight on average; \
         {:.2} s before the first request, {:.2} s after the last answer",
        o.sim.span_s, o.sim.concurrency, o.sim.startup_s, o.sim.tail_s
    );
    eprintln!(
        "[{n}] in-process: CPU {:.1} s, plan {} ms, read {} ms, apply {} ms; peak RSS {:.0} MB (wait4 ru_maxrss \
         {:.0} MB, which includes the bench's own peak); {:.0} rows/s; duplicates {}",
        o.cpu_s,
        o.plan_ms,
        o.read_ms,
        o.apply_ms,
        o.rss_mb,
        o.rusage_rss_mb,
        o.rows_per_s(),
        o.duplicates
    );
}

// ------------------------------------------------------------------------------------------------------------------
// The naive baseline
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Baseline {
    sampled_courses: u64,
    sample_calls: u64,
    sample_formula_calls: u64,
    sample_wall_s: f64,
    throttled: u64,
    /// The full run's calls (exact: the baseline's calls follow from the data) and its wall time (the sample's
    /// seconds per call × calls).
    calls: u64,
    wall_s: f64,
}

struct Naive {
    http: reqwest::Client,
    throttled: u64,
}

impl Naive {
    /// One request, waiting a second and resending when throttled (a naive script's retry).
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        loop {
            let attempt = req
                .try_clone()
                .ok_or_else(|| anyhow!("request cannot be cloned"))?;
            let resp = attempt
                .bearer_auth(DEFAULT_TOKEN)
                .header("Accept", "application/json")
                .send()
                .await?;
            let status = resp.status().as_u16();
            if status == 429 || status == 403 {
                let body = resp.text().await.unwrap_or_default();
                if status == 429 || body.contains("Rate Limit Exceeded") {
                    self.throttled += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                bail!("HTTP {status}: {body}");
            }
            return Ok(resp);
        }
    }

    async fn list<T: serde::de::DeserializeOwned>(&mut self, first: String) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut url = first;
        loop {
            let resp = self.send(self.http.get(&url)).await?;
            if !resp.status().is_success() {
                bail!("GET {url}: HTTP {}", resp.status());
            }
            let next = resp
                .headers()
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(link::parse)
                .collect::<Vec<_>>();
            let next = link::find(&next, "next").map(str::to_owned);
            let items: Vec<T> = resp.json().await?;
            out.extend(items);
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
    }

    async fn write(&mut self, req: reqwest::RequestBuilder) -> Result<()> {
        // A failed change (e.g. 404 for an unknown user) is logged by a naive script and skipped.
        let _ = self.send(req).await?;
        Ok(())
    }
}

/// Sequential, one listing per course and state, no pacing; then the plan's writes one at a time. The plan is
/// computed with rostersync's own `decide` from what the baseline itself read, so both make the same changes.
async fn naive_baseline(data: &Dataset, knobs: Knobs, fill: Fill, sample: f64) -> Result<Baseline> {
    let (sim, _) = start_sim(data, knobs, Vec::new(), fill).await?;
    let every = (1.0 / sample.clamp(1e-6, 1.0)).round().max(1.0) as usize;
    let sampled: Vec<usize> = (0..data.courses()).step_by(every).collect();
    let api = format!("{}/api/v1", sim.base_url());
    let mut naive = Naive {
        http: reqwest::Client::new(),
        throttled: 0,
    };
    let started = Instant::now();
    let roles: Vec<Role> = naive
        .list(format!("{api}/accounts/1/roles?per_page={PER_PAGE}"))
        .await?;
    let mut book = RoleBook::new(roles.into_iter().map(RoleInfo::from));
    let mut ids = Ids::new();
    let mut live = Vec::new();
    for &c in &sampled {
        let course = ids.intern(&format!("C{c}"));
        for state in NAIVE_STATES {
            let url = format!(
                "{api}/courses/sis_course_id:C{c}/enrollments?state[]={state}&per_page={PER_PAGE}"
            );
            let rows: Vec<Enrollment> = naive.list(url).await?;
            live.extend(
                rows.iter().map(|e| {
                    live_enrollment(e, course, UserIdKind::SisUserId, &mut ids, &mut book)
                }),
            );
        }
    }
    let mut desired = Vec::new();
    for &c in &sampled {
        data.sis_rows(c, |u, course, section, role| {
            let row = SisRow {
                user_id: Some(u.to_owned()),
                course_id: Some(course.to_owned()),
                section_id: Some(section.to_owned()),
                role: Some(role.to_owned()),
                status: None,
                curriculum_uuid: None,
            };
            if let Ok(d) = parse_row(&row, UserIdKind::SisUserId, &book, &mut ids) {
                desired.push(d);
            }
        });
    }
    let mut managed: Vec<Sym> = desired.iter().map(|d| d.course).collect();
    managed.sort();
    managed.dedup();
    let snapshot = Snapshot {
        ids,
        roles: book,
        sis_rows: desired.len() as u64,
        desired,
        managed,
        live,
        ..Snapshot::default()
    };
    let ids = &snapshot.ids;
    // The baseline makes every change its plan finds: no brake.
    let decided = decide(
        &snapshot,
        &DecideSettings {
            removal: RemovalPolicy::Conclude,
            manage_non_sis_users: false,
            limits: GuardLimits::OFF,
            sticky_trip: None,
            scoped: None,
            section_removal: None,
        },
    )
    .plan;
    for change in &decided.changes {
        let enroll_form = |role: RoleId| {
            vec![
                (
                    "enrollment[user_id]".to_owned(),
                    format!(
                        "sis_user_id:{}",
                        change.user.map(|u| ids.resolve(u)).unwrap_or("")
                    ),
                ),
                ("enrollment[role_id]".to_owned(), role.0.to_string()),
                (
                    "enrollment[enrollment_state]".to_owned(),
                    "active".to_owned(),
                ),
                ("enrollment[notify]".to_owned(), "false".to_owned()),
            ]
        };
        let section_url = match change.section {
            SectionKey::Sis(s) => format!(
                "{api}/sections/sis_section_id:{}/enrollments",
                ids.resolve(s)
            ),
            SectionKey::Default => format!(
                "{api}/courses/sis_course_id:{}/enrollments",
                ids.resolve(change.course)
            ),
        };
        let conclude = |l: &LiveEnrollment| {
            format!(
                "{api}/courses/{}/enrollments/{}?task=conclude",
                l.canvas_course_id, l.id
            )
        };
        match change.action {
            Action::Enroll => {
                if let Some(role) = change.role_after {
                    let req = naive.http.post(&section_url).form(&enroll_form(role));
                    naive.write(req).await?;
                }
            }
            Action::Remove => {
                if let Some(l) = &change.live {
                    let req = naive.http.delete(conclude(l));
                    naive.write(req).await?;
                }
            }
            Action::ChangeRole => {
                if let (Some(l), Some(role)) = (&change.live, change.role_after) {
                    let req = naive.http.post(&section_url).form(&enroll_form(role));
                    naive.write(req).await?;
                    let req = naive.http.delete(conclude(l));
                    naive.write(req).await?;
                }
            }
            Action::ChangeState => {
                if let (Some(l), Some(role)) = (&change.live, change.role_after) {
                    let req = if l.state == EnrollmentState::Inactive {
                        naive.http.put(format!(
                            "{api}/courses/{}/enrollments/{}/reactivate",
                            l.canvas_course_id, l.id
                        ))
                    } else {
                        naive.http.post(&section_url).form(&enroll_form(role))
                    };
                    naive.write(req).await?;
                }
            }
        }
    }
    let sample_wall = started.elapsed().as_secs_f64();
    let counts = sim_counts(&sim, None, None);
    sim.shutdown().await;

    // The baseline's calls follow from the data: 5 listings per course (each at least one page), the writes, roles.
    let live_counts = data.live_per_course();
    let naive_reads = |courses: &mut dyn Iterator<Item = usize>| -> u64 {
        courses
            .map(|c| live_counts[c].div_ceil(PER_PAGE).max(1) + (NAIVE_STATES.len() as u64 - 1))
            .sum()
    };
    let sample_writes: u64 = decided
        .changes
        .iter()
        .map(|c| if c.action == Action::ChangeRole { 2 } else { 1 })
        .sum();
    let sample_formula = 1 + naive_reads(&mut sampled.iter().copied()) + sample_writes;
    let calls = 1 + naive_reads(&mut (0..data.courses())) + Drift::of(data).writes();
    let per_call = sample_wall / counts.calls.max(1) as f64;
    Ok(Baseline {
        sampled_courses: sampled.len() as u64,
        sample_calls: counts.calls,
        sample_formula_calls: sample_formula,
        sample_wall_s: sample_wall,
        throttled: counts.throttled,
        calls,
        wall_s: per_call * calls as f64,
    })
}

// ------------------------------------------------------------------------------------------------------------------
// Output
// ------------------------------------------------------------------------------------------------------------------

fn verdicts(o: &Outcome) -> Vec<(String, bool)> {
    let mut v = Vec::new();
    let finished = o.exit_code == 0 && !o.timed_out;
    v.push((
        format!(
            "cycle succeeded (exit {}{})",
            o.exit_code,
            if o.timed_out { ", timed out" } else { "" }
        ),
        finished,
    ));
    match o.name.as_str() {
        "S1" => {
            v.push((
                format!("call ratio 1.00 (is {:.3})", o.call_ratio()),
                o.sim.calls == o.min_calls,
            ));
            v.push((format!("0 writes (is {})", o.sim.writes), o.sim.writes == 0));
            v.push(within_bucket_model(o, 1.15));
            v.push((
                format!("RSS ≤ 60 MB (is {:.0} MB)", o.rss_mb),
                o.rss_mb <= 60.0,
            ));
        }
        "S2" => {
            v.push((
                format!("call ratio ≤ 1.01 (is {:.3})", o.call_ratio()),
                o.call_ratio() <= 1.01,
            ));
            v.push(within_bucket_model(o, 1.15));
            v.push((
                format!("0 throttled (is {})", o.sim.throttled),
                o.sim.throttled == 0,
            ));
            v.push((
                format!("RSS ≤ 250 MB (is {:.0} MB)", o.rss_mb),
                o.rss_mb <= 250.0,
            ));
        }
        "S3" => {
            let ratio = o.wall_ratio();
            v.push((
                if o.bulk() {
                    format!("bulk path: wall far below the per-change floor (is {ratio:.2}×)")
                } else {
                    format!("wall ≤ 1.15× per-change floor (is {ratio:.2}×)")
                },
                if o.bulk() { ratio < 0.5 } else { ratio <= 1.15 },
            ));
            let share = o.sim.throttled as f64 / o.sim.calls.max(1) as f64;
            v.push((
                format!("throttled ≤ 0.5% (is {:.2}%)", share * 100.0),
                share <= 0.005,
            ));
        }
        "S4" => {
            v.push((
                format!("report-based read (read_path {:?})", o.read_path),
                o.read_path == "report",
            ));
            v.push((
                format!("in-process ≤ 5 s CPU (is {:.1} s)", o.cpu_s),
                o.cpu_s <= 5.0,
            ));
            v.push((
                format!("RSS ≤ 600 MB (is {:.0} MB)", o.rss_mb),
                o.rss_mb <= 600.0,
            ));
        }
        "S5" => {
            let expected = o.drift.writes();
            let served = o.sim.writes - o.sim.throttled_writes;
            v.push((
                format!("writes served = A + R + 2K = {expected} (is {served})"),
                served == expected,
            ));
            v.push((
                format!(
                    "≤ 1 retry per throttled answer (retries {}, throttled {}, injected ≤ {})",
                    o.retries, o.sim.throttled, o.injected_throttles
                ),
                o.retries <= o.sim.throttled,
            ));
            v.push((
                format!("0 duplicates (is {})", o.duplicates),
                o.duplicates == 0,
            ));
        }
        _ => {}
    }
    if o.name != "S5" {
        v.push((
            format!("0 duplicates (is {})", o.duplicates),
            o.duplicates == 0,
        ));
    }
    v
}

fn fmt_ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "–".to_owned()
    }
}

/// A table as rows of cells; the first row is the header. `align_right[i]` for numeric columns.
struct Table {
    rows: Vec<Vec<String>>,
    align_right: Vec<bool>,
}

impl Table {
    fn new(header: &[&str], align_right: &[bool]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
            align_right: align_right.to_vec(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            let _ = writeln!(s, "| {} |", row.join(" | "));
            if i == 0 {
                let marks: Vec<&str> = self
                    .align_right
                    .iter()
                    .map(|r| if *r { "---:" } else { "---" })
                    .collect();
                let _ = writeln!(s, "|{}|", marks.join("|"));
            }
        }
        s
    }

    fn text(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|v| v.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut s = String::new();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    let pad = " ".repeat(widths[c].saturating_sub(v.chars().count()));
                    if self.align_right.get(c).copied().unwrap_or(false) {
                        format!("{pad}{v}")
                    } else {
                        format!("{v}{pad}")
                    }
                })
                .collect();
            let _ = writeln!(s, "{}", cells.join("  ").trim_end());
        }
        s
    }

    fn render(&self, markdown: bool) -> String {
        if markdown {
            self.markdown()
        } else {
            self.text()
        }
    }
}

fn results_table(outcomes: &[Outcome]) -> Table {
    let mut t = Table::new(
        &[
            "scenario",
            "read / write path",
            "calls",
            "min calls",
            "call ratio",
            "throttled",
            "wall s",
            "floor s",
            "wall ratio",
            "in-process CPU s (plan ms)",
            "peak RSS MB",
            "rows/s",
            "baseline calls",
            "baseline wall s",
            "baseline ÷ rostersync (calls, wall)",
        ],
        &[
            false, false, true, true, true, true, true, true, true, true, true, true, true, true,
            true,
        ],
    );
    for o in outcomes {
        let (bc, bw, br) = match &o.baseline {
            Some(b) => (
                b.calls.to_string(),
                format!("{:.0}", b.wall_s),
                format!(
                    "{:.2}×, {:.1}×",
                    b.calls as f64 / o.sim.calls.max(1) as f64,
                    b.wall_s / o.wall_s.max(1e-9)
                ),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        t.push(vec![
            o.name.clone(),
            format!(
                "{} / {}",
                if o.read_path.is_empty() {
                    "?"
                } else {
                    &o.read_path
                },
                if o.write_path.is_empty() {
                    "–"
                } else {
                    &o.write_path
                }
            ),
            o.sim.calls.to_string(),
            o.min_calls.to_string(),
            format!("{:.3}", o.call_ratio()),
            o.sim.throttled.to_string(),
            format!("{:.1}", o.wall_s),
            format!("{:.1}", o.floor_s),
            fmt_ratio(o.wall_ratio()),
            format!("{:.1} ({})", o.cpu_s, o.plan_ms),
            format!("{:.0}", o.rss_mb),
            format!("{:.0}", o.rows_per_s()),
            bc,
            bw,
            br,
        ]);
    }
    t
}

/// Issue 14's wall target: against the floor under the simulator's bucket rule (the up-front charge held in flight
/// counted), which no client facing that latency can beat.
fn within_bucket_model(o: &Outcome, at_most: f64) -> (String, bool) {
    let ratio = o.wall_s / o.floor_model_s.max(1e-9);
    (
        format!("wall ≤ {at_most}× the bucket-model floor (is {ratio:.3}×)"),
        ratio <= at_most,
    )
}

fn targets_table(outcomes: &[Outcome]) -> Table {
    let mut t = Table::new(&["scenario", "target", "met"], &[false, false, false]);
    for o in outcomes {
        for (what, ok) in verdicts(o) {
            t.push(vec![
                o.name.clone(),
                what,
                if ok { "yes" } else { "**no**" }.to_owned(),
            ]);
        }
    }
    t
}

fn params_table(outcomes: &[Outcome]) -> Table {
    let mut t = Table::new(
        &[
            "scenario",
            "shape",
            "scale",
            "slots / courses",
            "A / R / K",
            "latency ms",
            "cost",
            "mean latency ms",
            "floor, bucket model s (wall ÷ it)",
            "in flight (mean)",
            "wall of each run s",
            "read_path / write_path (config)",
            "data: generate / COPY / fill s",
        ],
        &[
            false, false, true, false, false, true, true, true, true, true, true, false, false,
        ],
    );
    for o in outcomes {
        t.push(vec![
            o.name.clone(),
            o.what.clone(),
            o.scale.to_string(),
            format!("{} / {}", o.enrollments, o.courses),
            format!(
                "{} / {} / {}",
                o.drift.adds, o.drift.removes, o.drift.role_changes
            ),
            o.knobs_latency_ms.to_string(),
            o.knobs_cost.to_string(),
            format!("{:.1}", o.sim.mean_latency * 1000.0),
            format!(
                "{:.1} ({})",
                o.floor_model_s,
                fmt_ratio(o.wall_s / o.floor_model_s)
            ),
            format!("{:.2}", o.sim.concurrency),
            o.walls
                .iter()
                .map(|w| format!("{w:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{} / {}", o.read_path_cfg, o.write_path_cfg),
            format!("{:.1} / {:.1} / {:.1}", o.gen_s, o.copy_s, o.fill_s),
        ]);
    }
    t
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {:.1} GB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

const RESULTS_START: &str =
    "<!-- scale bench results: start (written by benches/scale.rs --out) -->";
const RESULTS_END: &str = "<!-- scale bench results: end -->";

fn document(outcomes: &[Outcome], opts: &Opts) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Command: `{}`\n", opts.command_line.trim_end());
    let _ = writeln!(s, "Machine: {}.\n", machine());
    let _ = writeln!(
        s,
        "Simulator throttle at Canvas defaults (hwm {HWM}, up-front {UP_FRONT}, outflow {OUTFLOW}/s); request cost and \
         injected latency per scenario below. rostersync on its shipped defaults (`limits.max_in_flight = {}`{}, \
         `requests_per_second` unset), but for the brake (the drift is intended) and each scenario's read/write path.\n",
        opts.max_in_flight,
        if opts.max_in_flight_set {
            ", set by --max-in-flight"
        } else {
            ""
        }
    );
    s.push_str(&results_table(outcomes).markdown());
    s.push('\n');
    s.push_str(&targets_table(outcomes).markdown());
    s.push('\n');
    s.push_str(&params_table(outcomes).markdown());
    s
}

/// Writes the results between the markers of `path`, keeping the rest of the file; creates it when missing.
fn write_document(path: &Path, results: &str) -> Result<()> {
    let block = format!("{RESULTS_START}\n{results}{RESULTS_END}\n");
    let text = match std::fs::read_to_string(path) {
        Ok(old) => match (old.find(RESULTS_START), old.find(RESULTS_END)) {
            (Some(a), Some(b)) if a < b => {
                format!(
                    "{}{block}{}",
                    &old[..a],
                    old[b + RESULTS_END.len()..].trim_start_matches('\n')
                )
            }
            _ => format!("{old}\n{block}"),
        },
        Err(_) => format!("# Scale benchmark\n\n{block}"),
    };
    std::fs::write(path, text)?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------------------------

// More workers than cores: a simulator handler holds the store lock while it scans, and must not stall the
// timers (injected latency) and connections of the requests queued behind it.
#[tokio::main(flavor = "multi_thread", worker_threads = 8)]
async fn main() -> Result<()> {
    let opts = parse_args()?;
    let pg = rostersync::pgtemp::find_or_start().await?;
    eprintln!("PostgreSQL: {}", pg.describe());
    let dir = tempfile::Builder::new()
        .prefix("rostersync-bench-")
        .tempdir()?;
    let mut outcomes = Vec::new();
    for &i in &opts.scenarios {
        let mut runs = Vec::new();
        for n in 0..opts.repeat {
            if opts.repeat > 1 {
                eprintln!("[{}] run {} of {}", SHAPES[i].name, n + 1, opts.repeat);
            }
            match run_scenario(&pg, SHAPES[i], &opts, dir.path(), opts.baseline && n == 0).await {
                Ok(o) => runs.push(o),
                Err(e) => eprintln!("[{}] failed: {e:#}", SHAPES[i].name),
            }
        }
        if let Some(o) = median_run(runs) {
            outcomes.push(o);
        }
    }
    let fresh = match opts.fresh_trials {
        Some(trials) => match fresh::run(&pg, &opts, dir.path(), trials).await {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("[fresh] failed: {e:#}");
                None
            }
        },
        None => None,
    };
    let openedx = if opts.openedx {
        match openedx::run(&pg, &opts, dir.path()).await {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("[O] failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    if std::env::var_os("BENCH_KEEP_LOGS").is_some() {
        let kept = dir.keep();
        eprintln!("logs kept in {}", kept.display());
    }
    let md = opts.markdown;
    if let Some(f) = &fresh {
        println!("\n{}", f.table());
    }
    if let Some(o) = &openedx {
        println!("\n{}", o.table());
    }
    if !outcomes.is_empty() {
        println!("\n{}", results_table(&outcomes).render(md));
        println!("{}", targets_table(&outcomes).render(md));
        println!("{}", params_table(&outcomes).render(md));
    }
    if let Some(out) = &opts.out {
        let mut doc = document(&outcomes, &opts);
        if let Some(f) = &fresh {
            doc.push('\n');
            doc.push_str(&f.table());
        }
        if let Some(o) = &openedx {
            doc.push('\n');
            doc.push_str(&o.table());
        }
        write_document(out, &doc)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
