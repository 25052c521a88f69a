//! Applying an uploaded enrollments.csv (canvas-api-facts.md §8): reading the CSV, the row
//! semantics, diffing against the previous upload of a data set, and batch mode's deletions.

use chrono::{DateTime, Utc};

use crate::enrollments::RowKey;
use crate::jobs::CsvRow;
use crate::model::{CourseState, Enrollment, EnrollmentState, EnrollmentType, RoleState};
use crate::params::truthy;
use crate::store::Store;

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

impl Store {
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
            .map_or(crate::store::ROOT_ACCOUNT_ID, |c| c.account_id);

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
                    .map_or(crate::store::ROOT_ACCOUNT_ID, |c| c.root_account_id);
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
