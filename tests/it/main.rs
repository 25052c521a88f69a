//! The one integration-test binary: every module shares one PostgreSQL server (a fresh database per test) and
//! starts its own Canvas simulator on port 0.

mod demo;
mod district;
mod reconcile;
mod sim;
mod support;
