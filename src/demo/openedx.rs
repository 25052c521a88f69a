//! The Open edX demo's own part (`rostersync demo --target openedx`): a sample university in openedx-sim, its SIS
//! rows with `curriculum_uuid`, an OAuth client whose secret is made for the run and never printed, and its plan
//! shown against the drift the university injected.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use canvas_sim::openedx::university::{
    self, SAML_SLUG, University, UniversityDriftKind, UniversitySpec,
};
use canvas_sim::openedx::{OpenEdxHandle, OpenEdxOptions};

use crate::reconcile::{CycleContext, PreparedCycle};

use super::print::{Out, PlanWords, per_action, print_plan, thousands};
use super::setup::{OpenEdxAccess, openedx_settings};
use super::{DemoArgs, Sample, cycles};

/// The OAuth application the demo's openedx-sim has for rostersync.
const CLIENT_ID: &str = "rostersync-demo";

/// Generates the university, loads its SIS rows, starts openedx-sim with its seed, and runs the cycles.
pub(super) async fn demo(args: &DemoArgs, out: Out, db_url: &str) -> Result<()> {
    let generated = Instant::now();
    let spec = UniversitySpec::with_learners(args.size.students).with_rng_seed(args.seed);
    // A fresh secret each run: nothing a reader of the output or the source could reuse.
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut university = University::generate(&spec).with_client(CLIENT_ID, &secret);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await
        .context("cannot connect to the demo database")?;
    let loaded = university::load_university_sis(&pool, &university)
        .await
        .context("cannot load the sample university's SIS rows")?;
    pool.close().await;
    let summary = university_summary(&university, loaded, generated);

    // openedx-sim gets the seed; the university keeps its counts and names.
    let seed = std::mem::take(&mut university.seed);
    let lms = canvas_sim::openedx::spawn(OpenEdxOptions {
        seed,
        ..OpenEdxOptions::default()
    })
    .await
    .context("cannot start the Open edX simulator")?;
    out.say(format_args!(
        "{:<14} openedx-sim at {} (OAuth client `{CLIENT_ID}`, its secret made for this run and never printed; \
         SAML provider `{SAML_SLUG}`)",
        "Open edX",
        lms.base_url()
    ));
    let access = OpenEdxAccess {
        base_url: &lms.base_url(),
        client_id: CLIENT_ID,
        client_secret: &secret,
    };
    let result = run(args, out, &university, summary, &access, &lms, db_url).await;
    lms.shutdown().await;
    result
}

async fn run(
    args: &DemoArgs,
    out: Out,
    university: &University,
    summary: String,
    access: &OpenEdxAccess<'_>,
    lms: &OpenEdxHandle,
    db_url: &str,
) -> Result<()> {
    let live = university.stats.live_program_enrollments + university.stats.live_course_enrollments;
    let settings = openedx_settings(access, db_url, live)?;
    let limits = &settings.reconcile;
    let intro = format!(
        "{:<14} target.kind = openedx, sis.enrollments_query with curriculum_uuid\n\
         {:<14} reconcile.removal = conclude (programs ended, runs inactive), max_removal_ratio = {}, \
         max_removals = {}, openedx.waiting_keepalive_days = {}\n{summary}",
        "Configuration",
        "",
        limits.max_removal_ratio,
        limits.max_removals,
        settings
            .openedx
            .as_ref()
            .map_or(0, |o| o.waiting_keepalive.as_secs() / 86_400),
    );
    // The audit log has keys lower-cased (they compare case-insensitively, facts §6.5); shown as the SIS spells them.
    let who = |key: &str| {
        format!(
            "{} {}",
            university.student_key(key).unwrap_or(key),
            university.learner_name(key).unwrap_or_default()
        )
    };
    let show_plan = |prepared: &PreparedCycle, ctx: &CycleContext| {
        print_plan(prepared, ctx, &PlanWords::openedx(&who));
        let keepalive =
            crate::target::extra_changes(&prepared.snapshot, &prepared.decision).len() as u64;
        println!(
            "  {:<14} {:>6}   waiting enrollments re-written before Open edX's 60-day expiry (besides the plan; \
             they give or take nothing, so never braked)",
            "keep-alive",
            thousands(keepalive)
        );
        let drift = &university.drift;
        let expected = drift.expected_planned();
        if prepared.report.planned == expected
            && prepared.report.details.sis_rows_skipped == drift.expected_skipped()
            && keepalive == drift.expected_keepalive()
        {
            println!("  (the plan matches the drift injected above, kind for kind)");
        } else {
            println!(
                "  note: the injected drift predicted {}; skipped rows {}; keep-alive {}",
                per_action(&expected),
                drift.expected_skipped(),
                drift.expected_keepalive()
            );
        }
    };
    let show_after = || show_openedx_now(university, lms);
    let sample = Sample {
        settings,
        intro,
        show_plan: &show_plan,
        show_after: Some(&show_after),
    };
    cycles(args, out, sample, db_url).await
}

/// What openedx-sim holds after the cycles, and where a moved learner is active now (facts §3.3: one active run
/// enrollment per learner across programs).
fn show_openedx_now(u: &University, lms: &OpenEdxHandle) {
    let (programs, waiting, active) = lms.with_store(|s| {
        let t = s.tables();
        (
            t.program_enrollments().count() as u64,
            t.program_enrollments()
                .filter(|e| e.username.is_none())
                .count() as u64,
            t.course_enrollments()
                .filter(|e| e.status == "active")
                .count() as u64,
        )
    });
    println!(
        "\nOpen edX now: {} program enrollments ({} waiting for an account), {} active course run enrollments",
        thousands(programs),
        thousands(waiting),
        thousands(active)
    );
    for m in u.moved.iter().take(2) {
        let (old, new) = lms.with_store(|s| {
            let status = |program: &str| {
                s.program_course_enrollment(program, &m.shared_run, &m.student_key)
                    .map_or("none".to_owned(), |e| e.status.clone())
            };
            (status(&m.from), status(&m.to))
        });
        println!(
            "  moved: {} {} from {} to {}: {} is {old} through the old program, {new} through the new",
            m.student_key,
            u.learner_name(&m.student_key).unwrap_or_default(),
            u.program_name(&m.from).unwrap_or_default(),
            u.program_name(&m.to).unwrap_or_default(),
            m.shared_run
        );
    }
}

fn university_summary(u: &University, loaded: u64, started: Instant) -> String {
    let s = &u.stats;
    let names = u
        .programs
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>();
    let programs = if names.len() <= 4 {
        format!(" ({})", names.join(", "))
    } else {
        String::new()
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nSample university (generator seed {}, made in {:.2} s): {} programs{programs}, {} course runs \
         (one core run in every curriculum)",
        u.spec.rng_seed,
        started.elapsed().as_secs_f64(),
        s.programs,
        s.runs
    );
    let _ = writeln!(
        text,
        "  {} learners, {} with an LMS account through SAML provider `{SAML_SLUG}`, {} without one (waiting \
         enrollments until they sign in)",
        thousands(s.learners.into()),
        thousands(s.with_account.into()),
        thousands((s.learners - s.with_account).into())
    );
    let _ = writeln!(
        text,
        "  SIS: {} rows in sis_enrollments: {} program rows with curriculum_uuid, {} course run rows ({} as course \
         staff), {} bad",
        thousands(loaded),
        thousands(s.program_rows),
        thousands(s.run_rows),
        thousands(s.staff_rows),
        thousands(u.drift.expected_skipped())
    );
    for p in &u.programs {
        let _ = writeln!(
            text,
            "    program {} {:<30} curriculum {}, {} runs",
            p.uuid,
            p.name,
            p.curriculum_uuid,
            p.runs.len()
        );
    }
    let _ = writeln!(
        text,
        "  Open edX: {} program enrollments ({} waiting), {} course run enrollments, drifted from the SIS on purpose:",
        thousands(s.live_program_enrollments),
        thousands(s.live_waiting),
        thousands(s.live_course_enrollments)
    );
    for kind in UniversityDriftKind::ALL {
        let t = u.drift.count(kind);
        let _ = writeln!(
            text,
            "    {:<50} {:>5}   expect: {}",
            kind.describe(),
            thousands(t.cases),
            kind.expected()
        );
    }
    text.trim_end().to_owned()
}
