//! [`CycleReport`]: what one cycle did. The CLI prints it (`--json`), the scheduler logs and counts it, the run
//! record stores it, and tests assert on it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::canvas::RequestStats;
use crate::domain::Action;
use crate::domain::decide::Snapshot;
use crate::store::runs::InterruptedRun;
use crate::store::{AuditOutcome, AuditRow, RunStatus};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Safety {
    pub tripped: bool,
    pub reason: Option<String>,
}

/// Figures beyond the contract's minimum, for operators and benchmarks.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CycleDetails {
    /// `canvas` or `openedx` (`target.kind`); empty in reports of older versions (Canvas).
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub target: &'static str,
    /// The courses a `scope = 'courses'` run was limited to (those whose SIS rows changed); empty in a full run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
    pub sis_rows: u64,
    pub sis_rows_skipped: u64,
    /// Active or invited live enrollments in managed courses (the brake's denominator; scoped runs reuse a full
    /// run's).
    pub live_giving_access: u64,
    /// For a run made by `undo`: the run it reverses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_of: Option<String>,
    /// Access-removing changes deferred by flap damping (`reconcile.removal_grace_cycles`).
    pub deferred: u64,
    pub managed_courses: u64,
    pub courses_not_found: u64,
    pub live_enrollments: u64,
    pub users_not_found: u64,
    pub duplicate_rows_resolved: u64,
    pub role_rule_conflicts: u64,
    pub role_rule_rewrites: u64,
    /// Changes not planned because active exceptions leave those enrollments as they are (`except list`).
    pub excepted: u64,
    pub not_attempted: u64,
    /// Canvas rejected the token, was unreachable or kept failing: the daemon reports not ready.
    pub canvas_unavailable: bool,
    pub applied_by_action: BTreeMap<&'static str, u64>,
    pub failed_by_action: BTreeMap<&'static str, u64>,
    pub requests: RequestStats,
    pub interrupted_runs: Vec<InterruptedRun>,
    /// The cycle stopped at `reconcile.cycle_deadline_secs` (the run is `partial`).
    pub deadline_reached: bool,
    /// Changes of interrupted runs whose outcome this cycle read from Canvas and recorded.
    pub resolved_interrupted: u64,
    pub plan_ms: u64,
    /// `courses` (one listing per managed course) or `report` (the provisioning report).
    pub read_path: &'static str,
    /// `api`, `sis_import`, or `api+sis_import` when both carried changes.
    pub write_path: &'static str,
    /// Time spent reading Canvas and the SIS, and applying, in milliseconds.
    pub read_ms: u64,
    pub apply_ms: u64,
    /// Why this cycle was a dry run though not asked to be (who paused, why and until when, or the configuration
    /// window); null when not paused.
    pub paused: Option<String>,
}

/// One decided change as `reconcile --json` (`changes`) and the plan text show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangeRecord {
    pub action: &'static str,
    pub user_id: Option<String>,
    /// The user's name in Canvas, when a listing showed it.
    pub user_name: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    pub outcome: &'static str,
    pub error: Option<String>,
}

impl ChangeRecord {
    pub fn of(row: &AuditRow, outcome: AuditOutcome, snap: &Snapshot) -> ChangeRecord {
        ChangeRecord {
            action: row.action,
            user_name: row.user_id.as_deref().and_then(|u| snap.user_name(u)),
            user_id: row.user_id.clone(),
            course_id: row.course_id.clone(),
            section_id: row.section_id.clone(),
            role_before: row.role_before.clone(),
            role_after: row.role_after.clone(),
            state_before: row.state_before.clone(),
            state_after: row.state_after.clone(),
            outcome: outcome.as_str(),
            error: row.error.clone(),
        }
    }
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
    /// Changes the brake held back (`apply` of this run makes them).
    pub held: u64,
    pub safety: Safety,
    pub api_calls: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub details: CycleDetails,
    /// Every decided change with its outcome. Printed by the CLI (`--json` carries it as `changes`), not stored
    /// in the run's counts: the audit log holds them.
    #[serde(skip)]
    pub changes: Vec<ChangeRecord>,
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
            held: 0,
            safety: Safety {
                tripped: false,
                reason: None,
            },
            api_calls: 0,
            duration_ms: 0,
            error: None,
            details: CycleDetails::default(),
            changes: Vec::new(),
        }
    }

    /// The report as `reconcile --json` prints it: the run's counts plus `changes`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "changes".into(),
                serde_json::to_value(&self.changes).unwrap_or_default(),
            );
        }
        value
    }

    pub fn planned_total(&self) -> u64 {
        self.planned.values().sum()
    }
}
