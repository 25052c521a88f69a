//! rostersync: reconciles Canvas LMS enrollments with a school's SIS.
pub mod sim;
