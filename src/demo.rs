//! `rostersync demo`: the whole job on bundled defaults, with no configuration at all.
//!
//! It finds a PostgreSQL (or starts a throwaway one), creates a fresh database, starts the Canvas simulator
//! in-process, loads a sample district (the seed into the simulator, the SIS rows into `sis_enrollments`, the
//! employees into `sis_staff`), and runs the real cycle twice: the first shows its plan and applies it, the second
//! shows that nothing is left to do. Everything it started is stopped at the end unless `--keep` is given.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use canvas_sim::district::{
    self, ADULT_LEARNER, DEFAULT_RNG_SEED, District, DistrictSpec, DriftKind,
};
use canvas_sim::{self as sim, SimHandle, SimOptions, ThrottleOptions};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseUrl, LogFormat, LogSettings, Settings};
use crate::daemon::Health;
use crate::daemon::server::{ServerState, serve};
use crate::domain::Action;
use crate::metrics::Metrics;
use crate::pgtemp::{self, PgServer};
use crate::reconcile::{self, CycleContext, CycleOptions, CycleReport, PreparedCycle, ProgressFn};
use crate::store::lock::LeaderLock;
use crate::store::{AuditOutcome, AuditRow, RunStatus};

/// The role rule the demo configures (the staff-as-student case).
pub const STAFF_RULE: &str = "staff-are-adult-learners";
const STAFF_QUERY: &str = "SELECT user_id FROM sis_staff";
/// The removal brake the demo sets: stricter than the default 10%, and the sample district stays under it.
const MAX_REMOVAL_RATIO: f64 = 0.05;
/// `X-Request-Cost` of one request in the demo's simulator (its default is 1.0).
const DEMO_REQUEST_COST: f64 = 0.1;
/// Examples shown per action in the plan summary.
const EXAMPLES: usize = 4;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// District size: small (~300 students), medium (~5,000), large (~20,000), or a number of students.
    #[arg(long, default_value = "small", value_name = "SIZE", value_parser = DistrictSpec::parse_size)]
    pub size: DistrictSpec,
    /// Leave the database (and a PostgreSQL the demo started) running afterwards, and print how to connect.
    #[arg(long)]
    pub keep: bool,
    /// Seed of the sample-district generator: the same seed gives the same district.
    #[arg(long, default_value_t = DEFAULT_RNG_SEED, value_name = "U64")]
    pub seed: u64,
    /// Print the two cycle reports as JSON lines instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// Logging for the demo: warnings only, as text on stderr, unless `RUST_LOG` asks for more.
pub fn init_quiet() {
    crate::telemetry::init(&LogSettings {
        format: LogFormat::Text,
        level: "warn".into(),
        otlp_endpoint: None,
    });
}

/// Human output on stdout, silenced by `--json`.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    fn say(&self, text: impl std::fmt::Display) {
        if !self.json {
            println!("{text}");
        }
    }
}

/// Why the demo did not finish: its PostgreSQL could not be set up, or the run failed or did not converge.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Postgres(#[from] pgtemp::PgError),
    #[error("cannot create database {name} on the {server}: {source}")]
    CreateDatabase {
        name: String,
        server: String,
        source: pgtemp::PgError,
    },
    /// The whole chain, on one line.
    #[error("{0:#}")]
    Run(anyhow::Error),
}

/// Runs the demo. `Ok` when both cycles ran and the second had nothing to do; an error when something could not
/// be set up or the run did not converge (the message says which).
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    init_quiet();
    let started = Instant::now();
    let out = Out { json: args.json };
    out.say(
        "rostersync demo: the whole job on bundled defaults (built-in Canvas simulator, a sample district, \
         a PostgreSQL it finds or starts)\n",
    );

    let server = pgtemp::find_or_start().await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("rostersync_demo_{}", &suffix[..8]);
    let db_url = match server.create_database(&db_name).await {
        Ok(url) => url,
        Err(source) => {
            return Err(DemoError::CreateDatabase {
                server: server.describe(),
                name: db_name,
                source,
            });
        }
    };
    out.say(format_args!(
        "{:<14} {}, database {db_name}",
        "PostgreSQL",
        server.describe()
    ));

    // Ctrl-C still cleans up: the demo's work is dropped, then the database and cluster go as usual.
    let result = tokio::select! {
        result = demo(&args, out, &db_url) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; cleaning up")),
    };

    let link = plain_url(&db_url);
    if args.keep {
        out.say(format_args!(
            "\nKept: database {db_name} stays; connect with  psql '{link}'"
        ));
        match server {
            PgServer::Temp(temp) => {
                let stop = temp.keep();
                out.say(format_args!(
                    "The throwaway PostgreSQL keeps running; stop and remove it with:\n  {stop}"
                ));
            }
            PgServer::Existing { .. } => {}
        }
    } else {
        if let PgServer::Existing { .. } = &server
            && let Err(e) = drop_database(&server, &db_name).await
        {
            eprintln!("warning: could not drop the demo database {db_name}: {e}");
        }
        drop(server);
    }

    match result {
        Ok(()) => {
            out.say(format_args!(
                "\nDemo finished in {:.1} s.",
                started.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Err(e) => Err(DemoError::Run(e)),
    }
}

async fn drop_database(server: &PgServer, name: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server.admin_url()).await?;
    let quoted = name.replace('"', "\"\"");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(())
}

/// The URL without its password (for printing and for `psql`, which then asks or uses ~/.pgpass).
fn plain_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => DatabaseUrl::new(url).to_string(),
    }
}

/// Everything between "database created" and cleanup.
async fn demo(args: &DemoArgs, out: Out, db_url: &str) -> Result<()> {
    let generated = Instant::now();
    let spec = args.size.clone().with_rng_seed(args.seed);
    let mut district = District::generate(&spec);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await
        .context("cannot connect to the demo database")?;
    let loaded = district::load_sis(&pool, &district)
        .await
        .context("cannot load the sample district's SIS rows")?;
    pool.close().await;
    let summary = district_summary(&district, &loaded, generated);

    // The simulator gets the seed; the district keeps its counts (its SIS rows are not read again).
    let seed = std::mem::take(&mut district.seed);
    let sim = sim::spawn(SimOptions {
        seed,
        throttle: demo_throttle(),
        ..SimOptions::default()
    })
    .await
    .context("cannot start the Canvas simulator")?;
    out.say(format_args!(
        "{:<14} simulator at {} (admin token {}; Canvas's throttle on, {} units per request)",
        "Canvas",
        sim.base_url(),
        sim::DEFAULT_TOKEN,
        DEMO_REQUEST_COST
    ));
    let result = cycles(args, out, &district, &summary, &sim, db_url).await;
    sim.shutdown().await;
    result
}

/// Canvas's throttle stays on (the client must pace itself by `X-Rate-Limit-Remaining`), but each request costs a
/// tenth of the simulator's default, so that a medium district is not minutes of waiting on the bucket.
fn demo_throttle() -> ThrottleOptions {
    ThrottleOptions {
        request_cost: DEMO_REQUEST_COST,
        ..ThrottleOptions::default()
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The demo's configuration: the simulator, the demo database, the staff rule, and a removal brake the sample
/// district stays under (by ratio; the count limit grows with the district so that big ones are judged by ratio).
fn demo_settings(canvas: &str, db_url: &str, district: &District) -> Result<Settings> {
    let max_removals =
        ((district.stats.live_in_managed as f64 * MAX_REMOVAL_RATIO).ceil() as u64).max(500);
    let toml = format!(
        "[canvas]\nbase_url = {canvas}\ntoken = {token}\n\n\
         [database]\nurl = {db}\n\n\
         [reconcile]\nremoval = \"conclude\"\nmax_removal_ratio = {MAX_REMOVAL_RATIO}\nmax_removals = {max_removals}\n\n\
         [limits]\nrequests_per_second = 500\nmax_in_flight = 8\n\n\
         [[role_rules]]\nname = {rule}\nusers_query = {query}\nfrom_role = \"StudentEnrollment\"\nto_role = {to}\n",
        canvas = toml_string(canvas),
        token = toml_string(sim::DEFAULT_TOKEN),
        db = toml_string(db_url),
        rule = toml_string(STAFF_RULE),
        query = toml_string(STAFF_QUERY),
        to = toml_string(ADULT_LEARNER),
    );
    Settings::from_toml_str(&toml).context("the demo's built-in configuration is invalid")
}

async fn cycles(
    args: &DemoArgs,
    out: Out,
    district: &District,
    summary: &str,
    sim: &SimHandle,
    db_url: &str,
) -> Result<()> {
    let settings = demo_settings(&sim.base_url(), db_url, district)?;
    let limits = settings.reconcile.clone();
    let metrics = Arc::new(Metrics::new());
    let ctx = crate::app::connect(settings, metrics.clone())
        .await
        .context("cannot prepare the demo database")?;

    // /metrics (and /healthz, /readyz) while the demo runs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a port for /metrics")?;
    let metrics_addr = listener.local_addr()?;
    let stop_server = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        ServerState {
            metrics,
            db: ctx.db.clone(),
            sis: ctx.sis.clone(),
            health: Arc::new(Health {
                canvas_ok: AtomicBool::new(true),
            }),
        },
        stop_server.clone(),
    ));
    out.say(format_args!(
        "{:<14} http://{metrics_addr}/metrics (served while the demo runs)",
        "Metrics"
    ));
    out.say(format_args!(
        "{:<14} role rule `{STAFF_RULE}`: users of `{STAFF_QUERY}` get {ADULT_LEARNER} instead of StudentEnrollment\n\
         {:<14} reconcile.removal = {}, max_removal_ratio = {}, max_removals = {}",
        "Configuration",
        "",
        "conclude",
        limits.max_removal_ratio,
        limits.max_removals
    ));
    out.say(summary);

    let metrics_url = format!("http://{metrics_addr}/metrics");
    let result = run_cycles(args, out, district, &ctx, sim, db_url, &metrics_url).await;

    stop_server.cancel();
    let _ = server.await;
    ctx.db.close().await;
    ctx.sis.close().await;
    result
}

async fn run_cycles(
    args: &DemoArgs,
    out: Out,
    district: &District,
    ctx: &CycleContext,
    sim: &SimHandle,
    db_url: &str,
    metrics_url: &str,
) -> Result<()> {
    let lock = LeaderLock::try_acquire(&ctx.settings.database.url)
        .await
        .context("cannot take the leader lock")?
        .context("another process holds the leader lock on the demo database")?;

    let (progress, bar) = progress(out);
    let opts = CycleOptions {
        holds_lock: true,
        progress,
        ..CycleOptions::default()
    };
    let prepared = match reconcile::prepare(ctx, &opts).await {
        Ok(p) => p,
        Err(report) => {
            lock.release().await;
            bail!(
                "the first cycle failed before planning: {}",
                report.error.unwrap_or_default()
            );
        }
    };
    if !out.json {
        print_plan(&prepared, ctx, sim);
        let expected = district.drift.expected_planned();
        if prepared.report.planned == expected
            && prepared.report.details.sis_rows_skipped == district.drift.expected_skipped()
        {
            println!("  (the plan matches the drift injected above, kind for kind)");
        } else {
            println!(
                "  note: the injected drift predicted {}; skipped rows {}",
                per_action(&expected),
                district.drift.expected_skipped()
            );
        }
        println!("\nApplying {} changes ...", apply_count(&prepared));
    }
    let first = prepared.apply(ctx, &opts).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_result(out, &first);

    let second = reconcile::run_cycle(
        ctx,
        &CycleOptions {
            holds_lock: true,
            ..CycleOptions::default()
        },
    )
    .await;
    lock.release().await;
    print_second(out, &second);
    if !out.json {
        print_metrics(metrics_url).await;
    }
    if out.json {
        for report in [&first, &second] {
            println!("{}", serde_json::to_string(report)?);
        }
    }
    print_audit(out, db_url, &first, &second, args.keep);

    if first.status != RunStatus::Succeeded {
        bail!(
            "the first cycle ended {}{}",
            first.status.as_str(),
            first
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if second.status != RunStatus::Succeeded || second.planned_total() != 0 {
        bail!(
            "the second cycle ended {} with {} planned changes; the demo should have converged",
            second.status.as_str(),
            second.planned_total()
        );
    }
    Ok(())
}

/// Changes that will reach Canvas: the plan minus removals the guard holds.
fn apply_count(p: &PreparedCycle) -> usize {
    p.decision.to_make().count()
}

/// A progress bar on a terminal; a line per 10% otherwise; nothing with `--json`.
fn progress(out: Out) -> (Option<ProgressFn>, Option<ProgressBar>) {
    if out.json {
        return (None, None);
    }
    if std::io::stdout().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("  [{bar:40}] {pos}/{len} changes, {per_sec}, {eta} left")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let handle = bar.clone();
        let f: ProgressFn = Arc::new(move |done, total| {
            handle.set_length(total);
            handle.set_position(done);
        });
        (Some(f), Some(bar))
    } else {
        let last = AtomicU64::new(0);
        let f: ProgressFn = Arc::new(move |done, total| {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if tenth > last.fetch_max(tenth, Ordering::SeqCst) {
                println!("  {:>3}%  {done} of {total} changes", tenth * 10);
            }
        });
        (Some(f), None)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What the demo prints
// ---------------------------------------------------------------------------------------------------------------

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn district_summary(d: &District, loaded: &district::LoadedSis, started: Instant) -> String {
    let s = &d.stats;
    let schools = if d.schools.len() <= 3 {
        format!(
            " ({})",
            d.schools
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nSample district (generator seed {}, made in {:.2} s): {} schools{schools}, {} terms",
        d.spec.rng_seed,
        started.elapsed().as_secs_f64(),
        s.schools,
        s.terms
    );
    let _ = writeln!(
        text,
        "  {} students, {} teachers, {} other staff, {} parents linked as observers",
        thousands(s.students.into()),
        thousands(s.teachers.into()),
        thousands(s.staff.into()),
        thousands(s.parents.into())
    );
    let _ = writeln!(
        text,
        "  {} courses with {} sections in the SIS (one staff course per school), {} more only in Canvas",
        thousands(s.courses.into()),
        thousands(s.sections.into()),
        thousands(s.unmanaged_courses.into())
    );
    let _ = writeln!(
        text,
        "  SIS: {} rows in sis_enrollments, {} employees in sis_staff",
        thousands(loaded.enrollment_rows),
        thousands(loaded.staff_rows)
    );
    let _ = writeln!(
        text,
        "  Canvas: {} enrollments, drifted from the SIS on purpose:",
        thousands(s.canvas_enrollments)
    );
    for kind in DriftKind::ALL {
        let _ = writeln!(
            text,
            "    {:<48} {:>7}   expect: {}",
            kind.describe(),
            thousands(d.drift.count(kind)),
            kind.expected()
        );
    }
    text.trim_end().to_owned()
}

/// "a → b", "a" when unchanged, "— → a" when new.
fn arrow(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a == b => b.to_owned(),
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (None, Some(a)) => format!("— → {a}"),
        (Some(b), None) => format!("{b} → —"),
        (None, None) => "—".to_owned(),
    }
}

fn quoted(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) => format!("\"{v}\""),
    }
}

fn action_blurb(action: Action) -> &'static str {
    match action {
        Action::Enroll => "in the SIS, not in Canvas",
        Action::Remove => "in Canvas, not in the SIS: concluded (reconcile.removal = conclude)",
        Action::ChangeRole => "right place, wrong role (role rules included)",
        Action::ChangeState => "right enrollment, wrong state",
    }
}

/// Up to `EXAMPLES` changes of one action: different kinds (role and state transitions) first, then spread over
/// the plan, one change per user.
fn examples(rows: &[AuditRow]) -> Vec<&AuditRow> {
    let signature = |r: &AuditRow| {
        (
            r.role_before.clone(),
            r.role_after.clone(),
            r.state_before.clone(),
            r.state_after.clone(),
        )
    };
    let mut picked: Vec<&AuditRow> = Vec::new();
    let mut seen = Vec::new();
    for r in rows {
        let sig = signature(r);
        if !seen.contains(&sig) && !picked.iter().any(|p| p.user_id == r.user_id) {
            seen.push(sig);
            picked.push(r);
            if picked.len() == EXAMPLES {
                return picked;
            }
        }
    }
    let stride = (rows.len() / EXAMPLES).max(1);
    let spread = rows.iter().step_by(stride).chain(rows.iter());
    for r in spread {
        if picked.len() == EXAMPLES {
            break;
        }
        if !picked.iter().any(|p| p.user_id == r.user_id) {
            picked.push(r);
        }
    }
    picked
}

fn print_plan(p: &PreparedCycle, ctx: &CycleContext, sim: &SimHandle) {
    let details = &p.report.details;
    println!(
        "\nPlan (run {}): read {} SIS rows and {} live enrollments in {} managed courses",
        p.report.run_id,
        thousands(details.sis_rows),
        thousands(details.live_enrollments),
        thousands(details.managed_courses)
    );
    // Examples first, so that all columns can be aligned.
    let mut blocks = Vec::new();
    for action in Action::ALL {
        let rows: Vec<AuditRow> = p
            .decision
            .plan
            .changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| reconcile::audit_row(c, &p.snapshot.ids, &p.snapshot.roles))
            .collect();
        blocks.push((action, rows));
    }
    let mut lines: Vec<(Action, [String; 5])> = Vec::new();
    for (action, rows) in &blocks {
        for r in examples(rows) {
            let user = r.user_id.clone().unwrap_or_default();
            let name = sim
                .with_store(|s| s.find_user_by_sis(&user).map(|u| u.name.clone()))
                .unwrap_or_default();
            lines.push((
                *action,
                [
                    format!("{user} {name}"),
                    r.course_id.clone().unwrap_or_default(),
                    r.section_id
                        .clone()
                        .unwrap_or_else(|| "(default section)".into()),
                    arrow(r.role_before.as_deref(), r.role_after.as_deref()),
                    arrow(r.state_before.as_deref(), r.state_after.as_deref()),
                ],
            ));
        }
    }
    let mut width = [0usize; 5];
    for (_, cols) in &lines {
        for (w, c) in width.iter_mut().zip(cols) {
            *w = (*w).max(c.chars().count());
        }
    }
    for (action, rows) in &blocks {
        println!(
            "  {:<14} {:>6}   {}",
            action.as_str(),
            thousands(rows.len() as u64),
            action_blurb(*action)
        );
        for (_, cols) in lines.iter().filter(|(a, _)| a == action) {
            println!(
                "      {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                cols[0],
                cols[1],
                cols[2],
                cols[3],
                cols[4],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3],
            );
        }
    }

    let skipped: Vec<AuditRow> = p
        .decision
        .unplanned
        .iter()
        .map(|u| reconcile::record::unplanned_row(u, &p.snapshot.ids, &p.snapshot.roles))
        .filter(|r| r.outcome == Some(AuditOutcome::Skipped))
        .collect();
    println!(
        "  {:<14} {:>6}   SIS rows that cannot be understood: skipped and audited, never a reason to remove",
        "skipped rows",
        thousands(skipped.len() as u64)
    );
    for r in skipped.iter().take(5) {
        let reason = r
            .error
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches("SIS row skipped: ");
        println!(
            "      user_id {}, course_id {}, role {}, status {}: {reason}",
            quoted(r.user_id.as_deref()),
            quoted(r.course_id.as_deref()),
            quoted(r.role_after.as_deref()),
            quoted(r.state_after.as_deref()),
        );
    }
    if skipped.len() > 5 {
        println!("      ... and {} more", skipped.len() - 5);
    }

    let removals = p.decision.plan.count(Action::Remove) as u64;
    let live = details.live_enrollments;
    let limits = &ctx.settings.reconcile;
    let share = if live == 0 {
        0.0
    } else {
        removals as f64 * 100.0 / live as f64
    };
    match p.decision.brake.reason() {
        None => println!(
            "  {:<14} not tripped: {} removals of {} live enrollments ({share:.1}%) are within \
             reconcile.max_removal_ratio = {} and reconcile.max_removals = {}",
            "safety guard",
            thousands(removals),
            thousands(live),
            limits.max_removal_ratio,
            limits.max_removals
        ),
        Some(reason) => println!(
            "  {:<14} TRIPPED: {reason}; the other changes still apply",
            "safety guard"
        ),
    }
}

/// "enroll 3, remove 1, ..." in the plan's order.
fn per_action(counts: &std::collections::BTreeMap<&'static str, u64>) -> String {
    Action::ALL
        .iter()
        .map(|a| {
            let n = counts.get(a.as_str()).copied().unwrap_or(0);
            format!("{} {}", a.as_str(), thousands(n))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_result(out: Out, r: &CycleReport) {
    let req = &r.details.requests;
    out.say(format_args!(
        "Result: {} in {:.1} s: {} applied ({}), {} failed, {} skipped; {} Canvas API calls ({} reads, {} writes)",
        r.status.as_str(),
        r.duration_ms as f64 / 1000.0,
        thousands(r.applied),
        per_action(&r.details.applied_by_action),
        thousands(r.failed),
        thousands(r.skipped),
        thousands(r.api_calls),
        thousands(req.gets),
        thousands(req.writes)
    ));
    if let Some(e) = &r.error {
        out.say(format_args!("  error: {e}"));
    }
}

fn print_second(out: Out, r: &CycleReport) {
    let verdict = if r.planned_total() == 0 {
        "nothing left to do"
    } else {
        "NOT converged"
    };
    out.say(format_args!(
        "\nSecond cycle (run {}): planned {}: {verdict}\n  {:.1} s, {} Canvas API calls, {} of them writes; \
         the {} bad SIS rows are skipped again until they are fixed in the SIS",
        r.run_id,
        per_action(&r.planned),
        r.duration_ms as f64 / 1000.0,
        thousands(r.api_calls),
        r.details.requests.writes,
        r.details.sis_rows_skipped,
    ));
}

/// A few lines of `/metrics`, read over HTTP like Prometheus would.
async fn print_metrics(url: &str) {
    let body = match reqwest::get(url).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => {
            println!("\nMetrics: could not read {url}: {e}");
            return;
        }
    };
    println!("\nMetrics, as served on {url} (a few of them):");
    for line in body.lines().filter(|l| {
        l.starts_with("rostersync_cycles_total{")
            || l.starts_with("rostersync_changes_total{")
            || l.starts_with("rostersync_safety_trips_total ")
    }) {
        println!("  {line}");
    }
}

fn print_audit(out: Out, db_url: &str, first: &CycleReport, second: &CycleReport, keep: bool) {
    let url = plain_url(db_url);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nAudit log: every decision above is a row in rostersync.audit_log (runs {} and {}; \
         one row per run in rostersync.sync_runs)",
        first.run_id, second.run_id
    );
    let _ = writeln!(text, "  database  {url}");
    let _ = writeln!(
        text,
        "  try       psql '{url}' -c \"SELECT action, outcome, count(*) FROM rostersync.audit_log GROUP BY 1, 2 ORDER BY 1, 2\""
    );
    let _ = writeln!(
        text,
        "            psql '{url}' -c \"SELECT user_id, course_id, role_before, role_after, state_before, state_after, outcome \
         FROM rostersync.audit_log WHERE action = 'change_role' ORDER BY id LIMIT 5\""
    );
    if !keep {
        let _ = writeln!(
            text,
            "  (the demo removes this database when it exits; `rostersync demo --keep` keeps it to query afterwards)"
        );
    }
    out.say(text.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn arrows() {
        assert_eq!(arrow(Some("a"), Some("a")), "a");
        assert_eq!(arrow(Some("a"), Some("b")), "a → b");
        assert_eq!(arrow(None, Some("b")), "— → b");
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            plain_url("postgres://u:secret@h:5/db"),
            "postgres://u@h:5/db"
        );
    }

    #[test]
    fn the_built_in_configuration_is_valid() {
        let d = District::generate(&DistrictSpec::with_students(20));
        let s = demo_settings("http://127.0.0.1:1", "postgres://p:w\"x@h/db", &d).expect("valid");
        assert_eq!(s.role_rules.len(), 1);
        assert_eq!(s.role_rules[0].to_role, ADULT_LEARNER);
        assert_eq!(s.reconcile.max_removals, 500);
    }
}
