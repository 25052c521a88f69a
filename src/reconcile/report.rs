//! [`CycleReport`]: what one cycle did. The CLI prints it (`--json`), the scheduler logs and counts it, the run
//! record stores it, and tests assert on it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::canvas::RequestStats;
use crate::domain::Action;
use crate::store::RunStatus;
use crate::store::runs::InterruptedRun;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Safety {
    pub tripped: bool,
    pub reason: Option<String>,
}

/// Figures beyond the contract's minimum, for operators and benchmarks.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CycleDetails {
    pub sis_rows: u64,
    pub sis_rows_skipped: u64,
    pub managed_courses: u64,
    pub courses_not_found: u64,
    pub live_enrollments: u64,
    pub users_not_found: u64,
    pub duplicate_rows_resolved: u64,
    pub role_rule_conflicts: u64,
    pub role_rule_rewrites: u64,
    pub not_attempted: u64,
    /// Canvas rejected the token, was unreachable or kept failing: the daemon reports not ready.
    pub canvas_unavailable: bool,
    pub applied_by_action: BTreeMap<&'static str, u64>,
    pub failed_by_action: BTreeMap<&'static str, u64>,
    pub requests: RequestStats,
    pub interrupted_runs: Vec<InterruptedRun>,
    pub plan_ms: u64,
    /// `courses` (one listing per managed course) or `report` (the provisioning report).
    pub read_path: &'static str,
    /// `api`, `sis_import`, or `api+sis_import` when both carried changes.
    pub write_path: &'static str,
    /// Time spent reading Canvas and the SIS, and applying, in milliseconds.
    pub read_ms: u64,
    pub apply_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CycleReport {
    pub run_id: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub planned: BTreeMap<&'static str, u64>,
    pub applied: u64,
    pub failed: u64,
    pub skipped: u64,
    pub safety: Safety,
    pub api_calls: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub details: CycleDetails,
}

impl CycleReport {
    pub fn new(run_id: String, dry_run: bool) -> Self {
        Self {
            run_id,
            dry_run,
            status: RunStatus::Running,
            planned: Action::ALL.iter().map(|a| (a.as_str(), 0)).collect(),
            applied: 0,
            failed: 0,
            skipped: 0,
            safety: Safety {
                tripped: false,
                reason: None,
            },
            api_calls: 0,
            duration_ms: 0,
            error: None,
            details: CycleDetails::default(),
        }
    }

    pub fn planned_total(&self) -> u64 {
        self.planned.values().sum()
    }
}
