//! SIS imports of `enrollments.csv` (canvas-api-facts.md §8): upload, poll, row semantics,
//! diffing and batch mode.
//!
//! Like reports, an import advances when polled: `created`, then `importing` while
//! `Store::set_job_polls` polls remain, then the rows are applied and the import ends
//! `imported`, `imported_with_messages` (row errors in `processing_errors`) or
//! `failed_with_messages` (a file that cannot be read). Only CSV files of enrollments are
//! understood; zip files and other CSV kinds fail with a message. Error bodies of the upload
//! validation other than the two quoted in §8 are unverified.
//!
//! This file is the upload, the poll and the JSON; applying the rows of a finished upload is
//! `sis_import/apply.rs`.

mod apply;

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};

use super::errors::ApiError;
use super::files::attachment_json;
use super::ids::IdRef;
use super::jobs::{ImportOptions, SisImport};
use super::multipart;
use super::params::{Params, truthy};
use super::render::{embedded_user_json, time};
use super::reply::Reply;
use super::store::Store;

const DROP_STATUSES: [&str; 4] = ["deleted", "completed", "inactive", "deleted_last_completed"];

/// The only term the simulator has: every course is in it.
const DEFAULT_TERM_ID: u64 = 1;

fn custom(status: u16, body: Value) -> ApiError {
    ApiError::Custom { status, body }
}

impl Store {
    /// `POST /api/v1/accounts/:account_id/sis_imports` (§8).
    pub(crate) fn start_sis_import(
        &mut self,
        account_id: u64,
        query_and_form: &Params,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<u64, ApiError> {
        let account = self.accounts.get(&account_id).ok_or(ApiError::NotFound)?;
        if account.parent_account_id.is_some() {
            return Err(custom(
                400,
                json!({"errors": ["SIS imports can only be executed on root accounts"]}),
            ));
        }
        let content_type = content_type.unwrap_or_default();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let (params, filename, data) = if mime == "multipart/form-data" {
            let parts = multipart::boundary(content_type)
                .map(|b| multipart::parse(body, &b))
                .unwrap_or_default();
            let mut fields = String::new();
            for part in parts.iter().filter(|p| p.filename.is_none()) {
                let pair: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair(&part.name, &String::from_utf8_lossy(&part.data))
                    .finish();
                fields.push_str(&pair);
                fields.push('&');
            }
            let params = query_and_form
                .clone()
                .merged_with(Params::from_urlencoded(&fields));
            let Some(file) = parts.into_iter().find(|p| p.name == "attachment") else {
                return Err(custom(400, json!({"error": "no attachment provided"})));
            };
            (
                params,
                file.filename.unwrap_or_else(|| "sis_import.csv".into()),
                file.data,
            )
        } else {
            // §8: a raw body must be UTF-8.
            let charset = content_type.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("charset")
                    .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
            });
            if charset.is_some_and(|c| c != "utf-8" && c != "utf8") {
                return Err(custom(
                    400,
                    json!({"error": "Invalid content type, UTF-8 required"}),
                ));
            }
            let extension = query_and_form
                .get("extension")
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if mime.contains("zip") {
                        "zip".into()
                    } else {
                        "csv".into()
                    }
                });
            (
                query_and_form.clone(),
                format!("sis_import.{extension}"),
                body.to_vec(),
            )
        };
        if data.is_empty() {
            return Err(custom(400, json!({"error": "no attachment provided"})));
        }
        let options = import_options(&params)?;
        let is_zip = filename.to_ascii_lowercase().ends_with(".zip");
        let content_type = if is_zip {
            "application/zip"
        } else {
            "text/csv"
        };
        let attachment_id = self.store_file(&filename, content_type, data);
        let id = self.sis_imports.keys().next_back().map_or(1, |max| max + 1);
        let now = Utc::now();
        self.sis_imports.insert(
            id,
            SisImport {
                id,
                account_id,
                workflow_state: "created".into(),
                progress: 0,
                polls_left: self.job_polls,
                created_at: now,
                updated_at: now,
                ended_at: None,
                attachment_id,
                is_zip,
                options,
                enrollments_count: 0,
                batch_enrollments_deleted: 0,
                processing_errors: Vec::new(),
                processing_warnings: Vec::new(),
                diffed_against_import_id: None,
                diffing_threshold_exceeded: false,
            },
        );
        Ok(id)
    }

    /// `GET /api/v1/accounts/:account_id/sis_imports/:id`: advances the import one step.
    pub(crate) fn poll_sis_import(
        &mut self,
        account_id: u64,
        raw_id: &str,
    ) -> Result<u64, ApiError> {
        let id: u64 = raw_id.trim().parse().map_err(|_| ApiError::NotFound)?;
        let import = self
            .sis_imports
            .get_mut(&id)
            .filter(|i| i.account_id == account_id)
            .ok_or(ApiError::NotFound)?;
        if import.is_finished() {
            return Ok(id);
        }
        if import.polls_left > 0 {
            import.polls_left -= 1;
            import.workflow_state = "importing".into();
            import.progress = 50;
            import.updated_at = Utc::now();
            return Ok(id);
        }
        self.run_sis_import(id);
        Ok(id)
    }

    pub(crate) fn sis_import_json(&self, origin: &str, import: &SisImport) -> Value {
        let o = &import.options;
        let error_count = import.processing_errors.len();
        let mut json = json!({
            "id": import.id,
            "created_at": time(&import.created_at),
            "updated_at": time(&import.updated_at),
            "ended_at": import.ended_at.as_ref().map(time),
            "workflow_state": import.workflow_state,
            "progress": import.progress,
            "data": {
                "import_type": o.import_type,
                "supplied_batches": ["enrollment"],
                "counts": {
                    "accounts": 0, "terms": 0, "abstract_courses": 0, "courses": 0, "sections": 0,
                    "xlists": 0, "users": 0, "enrollments": import.enrollments_count, "groups": 0,
                    "group_memberships": 0, "grade_publishing_results": 0,
                    "batch_courses_deleted": 0, "batch_sections_deleted": 0,
                    "batch_enrollments_deleted": import.batch_enrollments_deleted,
                    "error_count": error_count, "warning_count": import.processing_warnings.len(),
                },
            },
            "statistics": {"total_state_changes": import.enrollments_count},
            "batch_mode": o.batch_mode,
            "batch_mode_term_id": o.batch_mode_term_id,
            "multi_term_batch_mode": false,
            "skip_deletes": o.skip_deletes,
            "override_sis_stickiness": o.override_sis_stickiness,
            "add_sis_stickiness": o.add_sis_stickiness,
            "clear_sis_stickiness": o.clear_sis_stickiness,
            "diffing_data_set_identifier": o.diffing_data_set_identifier,
            "diffing_remaster": o.diffing_remaster_data_set,
            "diffed_against_import_id": import.diffed_against_import_id,
            "diffing_drop_status": o.diffing_drop_status,
            "diffing_threshold_exceeded": import.diffing_threshold_exceeded,
            "change_threshold": o.change_threshold,
            "errors_attachment": Value::Null,
            "csv_attachments": self.files.get(&import.attachment_id).map(|f| vec![attachment_json(origin, f)]).unwrap_or_default(),
            "user": self.users.get(&self.token_user_id).map(embedded_user_json),
        });
        if let Value::Object(map) = &mut json {
            if !import.processing_errors.is_empty() {
                map.insert("processing_errors".into(), json!(import.processing_errors));
            }
            if !import.processing_warnings.is_empty() {
                map.insert(
                    "processing_warnings".into(),
                    json!(import.processing_warnings),
                );
            }
        }
        json
    }

    pub(crate) fn sis_import_reply(&self, origin: &str, id: u64) -> Result<Reply, ApiError> {
        let import = self.sis_imports.get(&id).ok_or(ApiError::NotFound)?;
        Ok(Reply::json(
            StatusCode::OK,
            &self.sis_import_json(origin, import),
        ))
    }

    /// The account's imports, newest first.
    pub(crate) fn sis_imports_of(&self, account_id: u64) -> Vec<&SisImport> {
        self.sis_imports
            .values()
            .rev()
            .filter(|i| i.account_id == account_id)
            .collect()
    }

    /// Every SIS import, for tests.
    pub fn sis_import_states(&self) -> Vec<(u64, String)> {
        self.sis_imports
            .values()
            .map(|i| (i.id, i.workflow_state.clone()))
            .collect()
    }
}

/// The upload parameters (§8), validated.
fn import_options(params: &Params) -> Result<ImportOptions, ApiError> {
    let flag = |k: &str| params.get(k).is_some_and(truthy);
    let import_type = params
        .get("import_type")
        .unwrap_or("instructure_csv")
        .to_string();
    if import_type != "instructure_csv" {
        return Err(custom(
            400,
            json!({"error": "invalid import type parameter"}),
        ));
    }
    let batch_mode = flag("batch_mode");
    let batch_mode_term_id = match params
        .get("batch_mode_term_id")
        .filter(|t| !t.trim().is_empty())
    {
        None => None,
        Some(raw) => {
            let known = match IdRef::parse(raw) {
                Some(IdRef::Canvas(id)) => id == DEFAULT_TERM_ID,
                Some(IdRef::Special(s)) => s == "default",
                _ => false,
            };
            if !known {
                return Err(custom(
                    400,
                    json!({"message": "Batch mode specified, but the given batch_mode_term_id cannot be found."}),
                ));
            }
            Some(DEFAULT_TERM_ID)
        }
    };
    let diffing_drop_status = params
        .get("diffing_drop_status")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(status) = &diffing_drop_status
        && !DROP_STATUSES.contains(&status.as_str())
    {
        return Err(custom(
            400,
            json!({"message": "Invalid diffing_drop_status"}),
        ));
    }
    let override_sis_stickiness = flag("override_sis_stickiness");
    let identifier = params
        .get("diffing_data_set_identifier")
        .filter(|s| !s.is_empty());
    if identifier.is_some_and(|i| i.len() > 128) {
        return Err(custom(
            400,
            json!({"message": "diffing_data_set_identifier is too long"}),
        ));
    }
    Ok(ImportOptions {
        import_type,
        batch_mode,
        batch_mode_term_id: if batch_mode {
            batch_mode_term_id.or(Some(DEFAULT_TERM_ID))
        } else {
            batch_mode_term_id
        },
        skip_deletes: flag("skip_deletes"),
        override_sis_stickiness,
        add_sis_stickiness: override_sis_stickiness && flag("add_sis_stickiness"),
        clear_sis_stickiness: override_sis_stickiness && flag("clear_sis_stickiness"),
        diffing_data_set_identifier: identifier.map(str::to_string),
        diffing_remaster_data_set: flag("diffing_remaster_data_set"),
        diffing_drop_status,
        batch_mode_enrollment_drop_status: params
            .get("batch_mode_enrollment_drop_status")
            .map(str::to_string),
        change_threshold: params
            .get("change_threshold")
            .and_then(|t| t.trim().parse().ok()),
    })
}
