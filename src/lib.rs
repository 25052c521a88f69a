//! rostersync: reconciles Canvas LMS enrollments with a school's SIS, auditing every change.
//!
//! The decision is pure (`domain`); reading and writing happen at the edges (`sis`, `canvas`, `store`);
//! `reconcile` runs one cycle; `daemon` schedules cycles and serves metrics. The bundled Canvas simulator and the
//! sample district live in their own crate, `canvas-sim` (crates/canvas-sim).

/// The package version and the git commit it was built from (`build.rs`; `unknown` when built without git):
/// printed by `--version` and exported as `rostersync_build_info{version,commit}`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("ROSTERSYNC_GIT_COMMIT");
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROSTERSYNC_GIT_COMMIT"),
    ")"
);

pub mod app;
pub mod canvas;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod desk;
pub mod domain;
pub mod manual;
pub mod metrics;
pub mod openedx;
pub mod pgtemp;
pub mod plan_text;
pub mod reconcile;
pub mod sis;
pub mod store;
pub mod target;
pub mod telemetry;
