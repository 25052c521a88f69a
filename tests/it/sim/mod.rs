//! Integration tests of the Canvas simulator over real HTTP, one test per rule of
//! `canvas-api-facts.md`, named after the rule.

mod auth;
mod binary;
mod create;
mod end;
mod faults;
mod ids;
mod list;
mod objects;
mod pagination;
mod report;
mod roles;
mod sis_import;
mod support;
mod throttle;
