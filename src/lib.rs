//! rostersync: reconciles Canvas LMS enrollments with a school's SIS, auditing every change.
pub mod config;
pub mod domain;
pub mod sim;
