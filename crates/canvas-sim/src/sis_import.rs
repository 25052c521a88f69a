//! SIS imports of `enrollments.csv` (canvas-api-facts.md §8): upload, poll, row semantics,
//! diffing and batch mode.
//!
//! Like reports, an import advances when polled: `created`, then `importing` while
//! `Store::set_job_polls` polls remain, then the rows are applied and the import ends
//! `imported`, `imported_with_messages` (row errors in `processing_errors`) or
//! `failed_with_messages` (a file that cannot be read). Only CSV files of enrollments are
//! understood; zip files and other CSV kinds fail with a message. Error bodies of the upload
//! validation other than the two quoted in §8 are unverified.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::enrollments::RowKey;
use super::errors::ApiError;
use super::files::attachment_json;
use super::ids::IdRef;
use super::jobs::{CsvRow, ImportOptions, SisImport};
use super::model::{CourseState, Enrollment, EnrollmentState, EnrollmentType, RoleState};
use super::multipart;
use super::params::{Params, truthy};
use super::render::{embedded_user_json, time};
use super::reply::Reply;
use super::store::Store;

/// The columns that identify an enrollments.csv row for diffing (§8 "Diff key").
const DIFF_KEY_COLUMNS: [&str; 8] = [
    "course_id",
    "section_id",
    "user_id",
    "user_integration_id",
    "role",
    "role_id",
    "associated_user_id",
    "temporary_enrollment_source_user_id",
];

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

    /// Applies an import's file now.
    pub(crate) fn run_sis_import(&mut self, id: u64) {
        let Some(import) = self.sis_imports.get(&id).cloned() else {
            return;
        };
        let filename = self
            .files
            .get(&import.attachment_id)
            .map(|f| f.filename.clone())
            .unwrap_or_default();
        let data = self
            .files
            .get(&import.attachment_id)
            .map(|f| f.data.clone())
            .unwrap_or_default();
        let outcome = if import.is_zip {
            Err("canvas-sim only imports CSV files".to_string())
        } else {
            read_enrollments_csv(&data)
        };
        let rows = match outcome {
            Ok(rows) => rows,
            Err(message) => {
                self.end_import(id, "failed_with_messages", vec![(filename, message)], 0, 0);
                return;
            }
        };
        let options = import.options.clone();

        // Diffing (not in batch mode): apply only new/changed rows, and drop vanished ones.
        let mut to_apply = rows.clone();
        let mut diffed_against = None;
        let mut threshold_exceeded = false;
        if let Some(identifier) = options
            .diffing_data_set_identifier
            .clone()
            .filter(|_| !options.batch_mode)
        {
            if let Some((previous_id, previous)) = self
                .diff_sets
                .get(&identifier)
                .filter(|_| !options.diffing_remaster_data_set)
            {
                let change = if previous.is_empty() {
                    0.0
                } else {
                    (1.0 - rows.len() as f64 / previous.len() as f64).abs() * 100.0
                };
                if options.change_threshold.is_some_and(|t| change > t) {
                    threshold_exceeded = true;
                } else {
                    diffed_against = Some(*previous_id);
                    let drop_status = options
                        .diffing_drop_status
                        .clone()
                        .unwrap_or_else(|| "deleted".into());
                    let current_keys: Vec<Vec<String>> = rows.iter().map(diff_key).collect();
                    to_apply = rows
                        .iter()
                        .filter(|r| !previous.contains(r))
                        .cloned()
                        .collect();
                    for old in previous
                        .iter()
                        .filter(|old| !current_keys.contains(&diff_key(old)))
                    {
                        let mut dropped = old.clone();
                        dropped.insert("status".into(), drop_status.clone());
                        to_apply.push(dropped);
                    }
                }
            }
            self.diff_sets.insert(identifier, (id, rows.clone()));
        }

        let mut errors = Vec::new();
        let mut applied = 0u64;
        let mut touched = Vec::new();
        for row in &to_apply {
            match self.apply_enrollment_row(row, id, options.skip_deletes) {
                Ok(Some(enrollment_id)) => {
                    applied += 1;
                    touched.push(enrollment_id);
                }
                Ok(None) => applied += 1,
                Err(message) => errors.push((filename.clone(), message)),
            }
        }

        // Batch mode: SIS-created enrollments of the term that this import did not list are dropped;
        // API-created ones survive (§8).
        let mut batch_deleted = 0;
        if options.batch_mode && !options.skip_deletes {
            let drop_state = options
                .batch_mode_enrollment_drop_status
                .as_deref()
                .and_then(EnrollmentState::parse)
                .unwrap_or(EnrollmentState::Deleted);
            let sis_rows: Vec<u64> = self
                .enrollments
                .values()
                .filter(|e| e.created_by_sis && e.workflow_state != EnrollmentState::Deleted)
                .map(|e| e.id)
                .collect();
            let victims: Vec<u64> = sis_rows
                .iter()
                .copied()
                .filter(|e| !touched.contains(e))
                .collect();
            let share = if sis_rows.is_empty() {
                0.0
            } else {
                victims.len() as f64 * 100.0 / sis_rows.len() as f64
            };
            if options.change_threshold.is_some_and(|t| share > t) {
                errors.push((
                    filename.clone(),
                    format!("Not deleting {} enrollments: more than the change_threshold would be deleted", victims.len()),
                ));
            } else {
                let now = Utc::now();
                for victim in victims {
                    if let Some(row) = self.enrollments.get_mut(&victim) {
                        row.workflow_state = drop_state;
                        row.sis_batch_id = Some(id);
                        row.updated_at = now;
                        batch_deleted += 1;
                    }
                }
            }
        }

        let state = if errors.is_empty() {
            "imported"
        } else {
            "imported_with_messages"
        };
        self.end_import(id, state, errors, applied, batch_deleted);
        if let Some(import) = self.sis_imports.get_mut(&id) {
            import.diffed_against_import_id = diffed_against;
            import.diffing_threshold_exceeded = threshold_exceeded;
        }
    }

    fn end_import(
        &mut self,
        id: u64,
        state: &str,
        errors: Vec<(String, String)>,
        applied: u64,
        batch_deleted: u64,
    ) {
        if let Some(import) = self.sis_imports.get_mut(&id) {
            let now = Utc::now();
            import.workflow_state = state.into();
            import.progress = 100;
            import.processing_errors = errors;
            import.enrollments_count = applied;
            import.batch_enrollments_deleted = batch_deleted;
            import.updated_at = now;
            import.ended_at = Some(now);
        }
    }

    /// One enrollments.csv row (§8). Returns the enrollment it wrote, if any.
    fn apply_enrollment_row(
        &mut self,
        row: &CsvRow,
        import_id: u64,
        skip_deletes: bool,
    ) -> Result<Option<u64>, String> {
        let get = |k: &str| row.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let course_sis = get("course_id");
        let section_sis = get("section_id");
        let user_sis = get("user_id");
        let user_integration = get("user_integration_id");
        let role_text = get("role_id").or(get("role")).unwrap_or_default();
        let described = format!(
            "(User ID: {}, Course ID: {}, Section ID: {}, Role: {})",
            user_sis.or(user_integration).unwrap_or_default(),
            course_sis.unwrap_or_default(),
            section_sis.unwrap_or_default(),
            role_text
        );
        if course_sis.is_none() && section_sis.is_none() {
            return Err("No course_id or section_id given for an enrollment".into());
        }
        let user_id = match (user_sis, user_integration) {
            (Some(sis), _) => self.find_user_by_sis(sis).map(|u| u.id),
            (None, Some(integration)) => self
                .users
                .values()
                .find(|u| u.integration_id.as_deref() == Some(integration))
                .map(|u| u.id),
            (None, None) => {
                return Err("No user_id or user_integration_id given for an enrollment".into());
            }
        }
        .ok_or_else(|| format!("User not found for enrollment {described}"))?;

        let live_course = |id: u64| {
            self.courses
                .get(&id)
                .filter(|c| c.workflow_state != CourseState::Deleted)
        };
        let course = course_sis
            .and_then(|sis| self.find_course_by_sis(sis))
            .and_then(|c| live_course(c.id));
        let section = section_sis.and_then(|sis| {
            self.sections
                .values()
                .find(|s| s.is_active() && s.sis_section_id.as_deref() == Some(sis))
        });
        let (course_id, section_id) = match (course, section) {
            (None, None) => {
                return Err(format!(
                    "Neither course nor section existed for user enrollment {described}"
                ));
            }
            (Some(c), Some(s)) if s.course_id != c.id => {
                return Err(format!(
                    "An enrollment listed a section ({}) and a course ({}) that are unrelated for user ({})",
                    section_sis.unwrap_or_default(),
                    course_sis.unwrap_or_default(),
                    user_sis.or(user_integration).unwrap_or_default()
                ));
            }
            (_, Some(s)) => (s.course_id, Some(s.id)),
            (Some(_), None) if section_sis.is_some() => {
                return Err(format!(
                    "An enrollment referenced a non-existent section {}",
                    section_sis.unwrap_or_default()
                ));
            }
            (Some(c), None) => (c.id, None),
        };
        let account_id = self
            .courses
            .get(&course_id)
            .map_or(super::store::ROOT_ACCOUNT_ID, |c| c.account_id);

        // Role: role_id, else an exact built-in/custom name, else student/teacher/ta/observer/designer
        // in any case (§8).
        let role = match (get("role_id"), get("role")) {
            (Some(role_id), _) => self.role_by_id_for_account(account_id, role_id),
            (None, Some(name)) => self.course_role_by_name(account_id, name).or_else(|| {
                EnrollmentType::ALL
                    .into_iter()
                    .find(|t| t.short_name().eq_ignore_ascii_case(name))
                    .and_then(|t| self.builtin_role(t))
            }),
            (None, None) => return Err(format!("No role given for an enrollment {described}")),
        };
        let role = role
            .filter(|r| r.workflow_state != RoleState::Deleted)
            .ok_or_else(|| format!("Improper role \"{role_text}\" for an enrollment"))?;
        let (role_id, enrollment_type) = match role.course_type() {
            Some(t) => (role.id, t),
            None => return Err(format!("Improper role \"{role_text}\" for an enrollment")),
        };

        let status = get("status").unwrap_or_default().to_ascii_lowercase();
        if !matches!(
            status.as_str(),
            "active" | "deleted" | "completed" | "inactive" | "deleted_last_completed"
        ) {
            return Err(format!("Improper status \"{status}\" for an enrollment"));
        }
        if skip_deletes && matches!(status.as_str(), "deleted" | "deleted_last_completed") {
            return Ok(None);
        }
        let associated_user_id = match get("associated_user_id") {
            None => None,
            Some(sis) => Some(self.find_user_by_sis(sis).map(|u| u.id).ok_or_else(|| {
                format!("An enrollment referenced a non-existent associated user {sis}")
            })?),
        };
        let section_id = match section_id {
            Some(id) => id,
            None => self.default_section_id(course_id),
        };
        let key = RowKey {
            user_id,
            course_id,
            section_id,
            enrollment_type,
            role_id,
            associated_user_id,
        };
        let existing = self.find_row(&key);
        let state = match status.as_str() {
            // SIS `active` is always active, never invited (§8).
            "active" => EnrollmentState::Active,
            "completed" => EnrollmentState::Completed,
            "inactive" => EnrollmentState::Inactive,
            "deleted" => EnrollmentState::Deleted,
            _ => {
                // deleted_last_completed: complete the user's last same-role enrollment in the
                // course, delete the others.
                let others = self.enrollments.values().any(|e| {
                    Some(e.id) != existing
                        && e.user_id == user_id
                        && e.course_id == course_id
                        && e.role_id == role_id
                        && e.workflow_state != EnrollmentState::Deleted
                });
                if others {
                    EnrollmentState::Deleted
                } else {
                    EnrollmentState::Completed
                }
            }
        };
        let now = Utc::now();
        let limit = get("limit_section_privileges").map(truthy);
        let start_at = get("start_date").and_then(parse_date);
        let end_at = get("end_date").and_then(parse_date);
        let id = match existing {
            Some(id) => {
                let Some(row) = self.enrollments.get_mut(&id) else {
                    return Ok(None);
                };
                let changed = row.workflow_state != state;
                row.workflow_state = state;
                row.sis_batch_id = Some(import_id);
                row.completed_at = (state == EnrollmentState::Completed).then_some(now);
                if let Some(limit) = limit {
                    row.limit_privileges_to_course_section = limit;
                }
                row.start_at = start_at;
                row.end_at = end_at;
                row.updated_at = now;
                if changed && enrollment_type == EnrollmentType::Student {
                    self.enroll_linked_observers(id);
                }
                id
            }
            // A delete for a row that never existed changes nothing.
            None if state == EnrollmentState::Deleted => return Ok(None),
            None => {
                let id = self.next_enrollment_id();
                let root_account_id = self
                    .courses
                    .get(&course_id)
                    .map_or(super::store::ROOT_ACCOUNT_ID, |c| c.root_account_id);
                self.enrollments.insert(
                    id,
                    Enrollment {
                        id,
                        user_id,
                        course_id,
                        course_section_id: section_id,
                        root_account_id,
                        role_id,
                        enrollment_type,
                        workflow_state: state,
                        associated_user_id,
                        limit_privileges_to_course_section: limit.unwrap_or(false),
                        start_at,
                        end_at,
                        created_at: now,
                        updated_at: now,
                        completed_at: (state == EnrollmentState::Completed).then_some(now),
                        self_enrolled: false,
                        sis_batch_id: Some(import_id),
                        created_by_sis: true,
                    },
                );
                if enrollment_type == EnrollmentType::Student {
                    self.enroll_linked_observers(id);
                }
                id
            }
        };
        Ok(Some(id))
    }

    fn find_row(&self, key: &RowKey) -> Option<u64> {
        self.enrollments
            .values()
            .find(|e| {
                e.user_id == key.user_id
                    && e.course_id == key.course_id
                    && e.course_section_id == key.section_id
                    && e.enrollment_type == key.enrollment_type
                    && e.role_id == key.role_id
                    && e.associated_user_id == key.associated_user_id
            })
            .map(|e| e.id)
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

/// Parses an enrollments.csv; `Err` is the processing error of a file that cannot be used.
fn read_enrollments_csv(data: &[u8]) -> Result<Vec<CsvRow>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "Invalid UTF-8 in CSV file".to_string())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("Error parsing CSV: {e}"))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let has = |name: &str| headers.iter().any(|h| h == name);
    let is_enrollments = has("status")
        && (has("role") || has("role_id"))
        && (has("user_id") || has("user_integration_id"))
        && (has("course_id") || has("section_id"));
    if !is_enrollments {
        return Err("Couldn't find Canvas CSV import headers".into());
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("Error parsing CSV: {e}"))?;
        let row: CsvRow = headers
            .iter()
            .cloned()
            .zip(record.iter().map(|v| v.trim().to_string()))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

fn diff_key(row: &CsvRow) -> Vec<String> {
    DIFF_KEY_COLUMNS
        .iter()
        .map(|c| row.get(*c).cloned().unwrap_or_default())
        .collect()
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
