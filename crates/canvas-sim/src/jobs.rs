//! The state the store keeps for Canvas's asynchronous jobs (facts §8, §9): uploaded files, provisioning reports,
//! SIS imports and the diffing data sets. Plain data, below the store: the rules that create and advance them are
//! `impl Store` blocks in `files.rs`, `report.rs` and `sis_import.rs`, so the store needs none of those modules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: u64,
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// The `verifier` that lets the download URL work without a token.
    pub verifier: String,
    pub uuid: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub id: u64,
    pub report_type: String,
    pub account_id: u64,
    pub parameters: BTreeMap<String, String>,
    /// created | running | complete | error.
    pub status: String,
    pub progress: u8,
    pub polls_left: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub attachment_id: Option<u64>,
    pub message: Option<String>,
}

/// One CSV row: lowercased header → trimmed value.
pub type CsvRow = BTreeMap<String, String>;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub import_type: String,
    pub batch_mode: bool,
    pub batch_mode_term_id: Option<u64>,
    pub skip_deletes: bool,
    pub override_sis_stickiness: bool,
    pub add_sis_stickiness: bool,
    pub clear_sis_stickiness: bool,
    pub diffing_data_set_identifier: Option<String>,
    pub diffing_remaster_data_set: bool,
    pub diffing_drop_status: Option<String>,
    pub batch_mode_enrollment_drop_status: Option<String>,
    pub change_threshold: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SisImport {
    pub id: u64,
    pub account_id: u64,
    pub workflow_state: String,
    pub progress: u8,
    pub polls_left: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub attachment_id: u64,
    pub is_zip: bool,
    pub options: ImportOptions,
    pub enrollments_count: u64,
    pub batch_enrollments_deleted: u64,
    pub processing_errors: Vec<(String, String)>,
    pub processing_warnings: Vec<(String, String)>,
    pub diffed_against_import_id: Option<u64>,
    pub diffing_threshold_exceeded: bool,
}

impl SisImport {
    pub fn is_finished(&self) -> bool {
        matches!(
            self.workflow_state.as_str(),
            "imported" | "imported_with_messages" | "failed" | "failed_with_messages" | "aborted"
        )
    }
}
