//! rostersync: reconciles Canvas LMS enrollments with a school's SIS, auditing every change.
//!
//! The decision is pure (`domain`); reading and writing happen at the edges (`sis`, `canvas`, `store`);
//! `reconcile` runs one cycle; `daemon` schedules cycles and serves metrics. The bundled Canvas simulator and the
//! sample district live in their own crate, `canvas-sim` (crates/canvas-sim).

pub mod app;
pub mod canvas;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod desk;
pub mod domain;
pub mod metrics;
pub mod openedx;
pub mod pgtemp;
pub mod plan_text;
pub mod reconcile;
pub mod sis;
pub mod store;
pub mod telemetry;
