//! The one integration-test binary: every module shares one PostgreSQL server (a fresh database per test) and
//! starts its own Canvas simulator on port 0.

mod bad_configs;
mod daemon;
mod props;
mod reconcile;
mod roles;
mod sim;
mod support;
