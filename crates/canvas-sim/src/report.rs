//! The provisioning report (canvas-api-facts.md §9): start, poll, download `enrollments.csv`.
//!
//! Jobs advance when polled, so tests are deterministic: a new report is `created`; each poll
//! while `Store::set_job_polls` polls remain shows it `running`; the next poll builds the CSV
//! from the store as it is then and shows it `complete` with `file_url` and `attachment`.
//!
//! Only the enrollments CSV is built; a report that asks for no enrollments ends in `error`.
//! `sis_export_csv` builds the import-compatible variant (SIS rows only, no invited,
//! creation_pending or rejected rows); its column list is unverified.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};

use super::errors::ApiError;
use super::files::attachment_json;
use super::jobs::Report;
use super::model::{CourseState, Enrollment, EnrollmentState};
use super::params::{Params, truthy};
use super::render::time;
use super::reply::Reply;
use super::store::Store;

/// Report types the simulator knows; anything else is 404 (§9 "unknown report → 404").
const KNOWN_REPORTS: [&str; 2] = ["provisioning_csv", "sis_export_csv"];

/// enrollments.csv of the provisioning report, in the exporter's order (§9).
const PROVISIONING_COLUMNS: [&str; 15] = [
    "canvas_course_id",
    "course_id",
    "canvas_user_id",
    "user_id",
    "role",
    "role_id",
    "canvas_section_id",
    "section_id",
    "status",
    "canvas_associated_user_id",
    "associated_user_id",
    "created_by_sis",
    "base_role_type",
    "limit_section_privileges",
    "canvas_enrollment_id",
];

const SIS_EXPORT_COLUMNS: [&str; 7] = [
    "course_id",
    "user_id",
    "role",
    "section_id",
    "status",
    "associated_user_id",
    "limit_section_privileges",
];

impl Store {
    /// `POST /api/v1/accounts/:account_id/reports/:report`.
    pub(crate) fn start_report(
        &mut self,
        account_id: u64,
        report_type: &str,
        params: &Params,
    ) -> Result<u64, ApiError> {
        if !KNOWN_REPORTS.contains(&report_type) {
            return Err(ApiError::NotFound);
        }
        let id = self.reports.keys().next_back().map_or(1, |max| max + 1);
        self.reports.insert(
            id,
            Report {
                id,
                report_type: report_type.to_string(),
                account_id,
                parameters: params.hash("parameters"),
                status: "created".into(),
                progress: 0,
                polls_left: self.job_polls,
                created_at: Utc::now(),
                started_at: None,
                ended_at: None,
                attachment_id: None,
                message: None,
            },
        );
        Ok(id)
    }

    /// `GET /api/v1/accounts/:account_id/reports/:report/:id`: advances the job one step.
    pub(crate) fn poll_report(
        &mut self,
        account_id: u64,
        report_type: &str,
        raw_id: &str,
    ) -> Result<u64, ApiError> {
        let id: u64 = raw_id.trim().parse().map_err(|_| ApiError::NotFound)?;
        let report = self
            .reports
            .get(&id)
            .filter(|r| r.account_id == account_id && r.report_type == report_type)
            .ok_or(ApiError::NotFound)?
            .clone();
        if matches!(report.status.as_str(), "complete" | "error") {
            return Ok(id);
        }
        if report.polls_left > 0 {
            if let Some(r) = self.reports.get_mut(&id) {
                r.polls_left -= 1;
                r.status = "running".into();
                r.progress = 50;
                r.started_at.get_or_insert_with(Utc::now);
            }
            return Ok(id);
        }
        self.finish_report(id);
        Ok(id)
    }

    /// Completes every pending report and SIS import now (for tests that do not poll).
    pub fn finish_jobs(&mut self) {
        let reports: Vec<u64> = self
            .reports
            .values()
            .filter(|r| !matches!(r.status.as_str(), "complete" | "error"))
            .map(|r| r.id)
            .collect();
        for id in reports {
            self.finish_report(id);
        }
        let imports: Vec<u64> = self
            .sis_imports
            .values()
            .filter(|i| !i.is_finished())
            .map(|i| i.id)
            .collect();
        for id in imports {
            self.run_sis_import(id);
        }
    }

    /// How many polls a report or SIS import shows as running before it completes (default 1).
    pub fn set_job_polls(&mut self, polls: u32) {
        self.job_polls = polls;
    }

    fn finish_report(&mut self, id: u64) {
        let Some(report) = self.reports.get(&id).cloned() else {
            return;
        };
        let wants = |key: &str| report.parameters.get(key).is_some_and(|v| truthy(v));
        let now = Utc::now();
        let (status, message, attachment_id) = if report.report_type == "sis_export_csv"
            || wants("enrollments")
        {
            let csv =
                self.enrollments_csv(&report, wants("include_deleted"), wants("created_by_sis"));
            let filename = format!("{}_{}.csv", report.report_type, now.format("%Y%m%d%H%M%S"));
            let file = self.store_file(&filename, "text/csv", csv.into_bytes());
            ("complete", None, Some(file))
        } else {
            (
                "error",
                Some(
                    "canvas-sim only builds the enrollments CSV: pass parameters[enrollments]=true"
                        .to_string(),
                ),
                None,
            )
        };
        if let Some(r) = self.reports.get_mut(&id) {
            r.status = status.into();
            r.message = message;
            r.progress = 100;
            r.started_at.get_or_insert(now);
            r.ended_at = Some(now);
            r.attachment_id = attachment_id;
        }
    }

    fn enrollments_csv(&self, report: &Report, include_deleted: bool, only_sis: bool) -> String {
        let sis_export = report.report_type == "sis_export_csv";
        let mut writer = csv::Writer::from_writer(Vec::new());
        let header: &[&str] = if sis_export {
            &SIS_EXPORT_COLUMNS
        } else {
            &PROVISIONING_COLUMNS
        };
        // Writing to a Vec cannot fail; a failure would only drop the row.
        let _ = writer.write_record(header);
        for e in self.enrollments.values() {
            let Some(row) = self.report_row(e, include_deleted, only_sis || sis_export, sis_export)
            else {
                continue;
            };
            let fields: Vec<String> = header
                .iter()
                .map(|c| row.get(*c).cloned().unwrap_or_default())
                .collect();
            let _ = writer.write_record(&fields);
        }
        writer
            .into_inner()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// One enrollment as a report row, or `None` when the report leaves it out (§9).
    fn report_row(
        &self,
        e: &Enrollment,
        include_deleted: bool,
        only_sis: bool,
        sis_export: bool,
    ) -> Option<BTreeMap<&'static str, String>> {
        let course = self.courses.get(&e.course_id)?;
        let section = self.sections.get(&e.course_section_id)?;
        let user = self.users.get(&e.user_id)?;
        // Users without a login in the root account are skipped.
        user.login_id.as_ref()?;
        if only_sis && !e.created_by_sis {
            return None;
        }
        let container_deleted =
            course.workflow_state == CourseState::Deleted || !section.is_active();
        let status = if container_deleted {
            "deleted"
        } else {
            match e.workflow_state {
                EnrollmentState::Active => "active",
                EnrollmentState::Invited | EnrollmentState::CreationPending => "invited",
                EnrollmentState::Completed => "concluded",
                EnrollmentState::Inactive => "inactive",
                EnrollmentState::Deleted => "deleted",
                EnrollmentState::Rejected => "rejected",
            }
        };
        // Default excludes deleted and completed; include_deleted adds completed rows and the
        // SIS-created deleted ones.
        match status {
            "concluded" if !include_deleted => return None,
            "deleted" if !(include_deleted && e.created_by_sis) => return None,
            "invited" | "rejected" if sis_export => return None,
            _ => {}
        }
        let role = self.roles.get(&e.role_id);
        let role_name = match role {
            Some(r) if !r.is_built_in() => r.name.clone(),
            _ => e.enrollment_type.short_name().to_string(),
        };
        let associated = e.associated_user_id.and_then(|id| self.users.get(&id));
        let mut row = BTreeMap::new();
        row.insert("canvas_course_id", course.id.to_string());
        row.insert(
            "course_id",
            course.sis_course_id.clone().unwrap_or_default(),
        );
        row.insert("canvas_user_id", user.id.to_string());
        row.insert("user_id", user.sis_user_id.clone().unwrap_or_default());
        row.insert("role", role_name);
        row.insert("role_id", e.role_id.to_string());
        row.insert("canvas_section_id", section.id.to_string());
        row.insert(
            "section_id",
            section.sis_section_id.clone().unwrap_or_default(),
        );
        row.insert(
            "status",
            if sis_export && status == "concluded" {
                "completed".into()
            } else {
                status.to_string()
            },
        );
        row.insert(
            "canvas_associated_user_id",
            e.associated_user_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        );
        row.insert(
            "associated_user_id",
            associated
                .and_then(|u| u.sis_user_id.clone())
                .unwrap_or_default(),
        );
        row.insert("created_by_sis", e.created_by_sis.to_string());
        row.insert("base_role_type", e.enrollment_type.as_str().to_string());
        row.insert(
            "limit_section_privileges",
            e.limit_privileges_to_course_section.to_string(),
        );
        row.insert("canvas_enrollment_id", e.id.to_string());
        Some(row)
    }

    /// `GET /api/v1/accounts/:account_id/reports`: the report types the account may run.
    pub(crate) fn available_reports_json(&self) -> Value {
        let title = |r: &str| match r {
            "provisioning_csv" => "Provisioning",
            _ => "SIS Export",
        };
        Value::Array(
            KNOWN_REPORTS
                .iter()
                .map(|r| {
                    json!({
                        "report": r,
                        "title": title(r),
                        "parameters": {"enrollments": {"required": false, "description": "Get the Provisioning file for enrollments"}},
                        "last_run": Value::Null,
                    })
                })
                .collect(),
        )
    }

    /// `GET /api/v1/accounts/:account_id/reports/:report`: the account's reports of that type, newest first.
    pub(crate) fn reports_of(
        &self,
        origin: &str,
        account_id: u64,
        report_type: &str,
    ) -> Result<Vec<Value>, ApiError> {
        if !KNOWN_REPORTS.contains(&report_type) {
            return Err(ApiError::NotFound);
        }
        Ok(self
            .reports
            .values()
            .rev()
            .filter(|r| r.account_id == account_id && r.report_type == report_type)
            .map(|r| self.report_json(origin, r))
            .collect())
    }

    pub(crate) fn report_reply(&self, origin: &str, id: u64) -> Result<Reply, ApiError> {
        let report = self.reports.get(&id).ok_or(ApiError::NotFound)?;
        Ok(Reply::json(
            StatusCode::OK,
            &self.report_json(origin, report),
        ))
    }

    fn report_json(&self, origin: &str, report: &Report) -> Value {
        let file = report.attachment_id.and_then(|f| self.files.get(&f));
        json!({
            "id": report.id,
            "report": report.report_type,
            "status": report.status,
            "progress": report.progress,
            "current_line": Value::Null,
            "parameters": report.parameters,
            "created_at": time(&report.created_at),
            "started_at": report.started_at.as_ref().map(time),
            "ended_at": report.ended_at.as_ref().map(time),
            "file_url": file.map(|f| format!("{origin}/accounts/{}/files/{}/download", report.account_id, f.id)),
            "attachment": file.map(|f| attachment_json(origin, f)),
            "message": report.message,
        })
    }
}
