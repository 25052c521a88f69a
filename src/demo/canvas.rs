//! The Canvas demo's own part: a sample district in the Canvas simulator, the staff role rule, and its plan shown
//! against the drift the district injected.

use std::time::Instant;

use anyhow::{Context, Result};
use canvas_sim::district::{self, ADULT_LEARNER, District};
use canvas_sim::{self as sim, SimHandle, SimOptions};

use crate::reconcile::{CycleContext, PreparedCycle};

use super::print::{Out, PlanWords, district_summary, per_action, print_plan};
use super::setup::{DEMO_REQUEST_COST, STAFF_QUERY, STAFF_RULE, demo_settings, demo_throttle};
use super::{DemoArgs, Sample, cycles};

/// Generates the district, loads its SIS rows, starts the simulator with its seed, and runs the cycles.
pub(super) async fn demo(args: &DemoArgs, out: Out, db_url: &str) -> Result<()> {
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
    let result = run(args, out, &district, summary, &sim, db_url).await;
    sim.shutdown().await;
    result
}

async fn run(
    args: &DemoArgs,
    out: Out,
    district: &District,
    summary: String,
    sim: &SimHandle,
    db_url: &str,
) -> Result<()> {
    let settings = demo_settings(&sim.base_url(), db_url, district)?;
    let limits = &settings.reconcile;
    let intro = format!(
        "{:<14} role rule `{STAFF_RULE}`: users of `{STAFF_QUERY}` get {ADULT_LEARNER} instead of StudentEnrollment\n\
         {:<14} reconcile.removal = {}, max_removal_ratio = {}, max_removals = {}\n{summary}",
        "Configuration", "", "conclude", limits.max_removal_ratio, limits.max_removals
    );
    let who = |user: &str| {
        let name = sim
            .with_store(|s| s.find_user_by_sis(user).map(|u| u.name.clone()))
            .unwrap_or_default();
        format!("{user} {name}")
    };
    let show_plan = |prepared: &PreparedCycle, ctx: &CycleContext| {
        print_plan(prepared, ctx, &PlanWords::canvas(&who));
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
    };
    let sample = Sample {
        settings,
        intro,
        show_plan: &show_plan,
        show_after: None,
    };
    cycles(args, out, sample, db_url).await
}
