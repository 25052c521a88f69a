//! The one integration-test binary: every module shares one PostgreSQL server (a fresh database per test) and
//! starts its own Canvas simulator on port 0.

mod bad_configs;
mod bad_inputs;
mod brake;
mod daemon;
mod damping;
mod demo;
mod deploy;
mod deploy_tools;
mod desk_audit;
mod desk_except;
mod desk_explain;
mod desk_pause;
mod desk_undo;
mod district;
mod edges;
mod fresh;
mod leadership;
mod openedx;
mod ops;
mod paths;
mod props;
mod reconcile;
mod reliability;
mod roles;
mod sim;
mod soak;
mod support;
