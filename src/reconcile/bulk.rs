//! The bulk write path: one SIS import of exactly the delta rows (facts §8), for the first day of term when tens of
//! thousands of changes would otherwise be tens of thousands of API calls.
//!
//! A change can go this way only when a CSV row names its enrollment without ambiguity: SIS user id, and for an
//! existing enrollment a SIS section (a row naming only the course means the course's *default* section, which
//! may not be where a live enrollment without a SIS section sits). Everything else stays on the API path.
//! Each row's outcome comes from the import's `processing_errors`, matched by the row description Canvas writes
//! into its messages (`(User ID: u, Course ID: c, Section ID: s, Role: r)`).

use std::collections::HashMap;
use std::time::Duration;

use crate::canvas::{CanvasClient, CanvasError};
use crate::domain::RemovalPolicy;
use crate::domain::plan::Change;
use crate::domain::{Action, EnrollmentState, Ids, SectionKey};
use crate::reconcile::change::{ChangeResult, USER_NOT_FOUND};
use crate::store::AuditOutcome;

/// One enrollments.csv row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRow {
    pub course_id: String,
    pub section_id: Option<String>,
    pub user_id: String,
    pub role_id: u64,
    pub status: &'static str,
}

impl BulkRow {
    /// How Canvas describes the row in its processing messages.
    pub fn description(&self) -> String {
        format!(
            "(User ID: {}, Course ID: {}, Section ID: {}, Role: {})",
            self.user_id,
            self.course_id,
            self.section_id.as_deref().unwrap_or_default(),
            self.role_id
        )
    }
}

/// The CSV rows for a change, or `None` when it must go through the API.
pub fn rows_for(change: &Change, ids: &Ids, removal: RemovalPolicy) -> Option<Vec<BulkRow>> {
    let user = ids.resolve(change.user?).to_owned();
    let course = ids.resolve(change.course).to_owned();
    let row = |section: Option<String>, role_id: u64, status: &'static str| BulkRow {
        course_id: course.clone(),
        section_id: section,
        user_id: user.clone(),
        role_id,
        status,
    };
    // An existing enrollment must sit in a SIS section to be named unambiguously.
    let live_section = || match change.live?.section {
        SectionKey::Sis(s) => Some(ids.resolve(s).to_owned()),
        SectionKey::Default => None,
    };
    match change.action {
        Action::Enroll => {
            let section = match change.section {
                SectionKey::Sis(s) => Some(ids.resolve(s).to_owned()),
                SectionKey::Default => None,
            };
            Some(vec![row(
                section,
                change.role_after?.0,
                change.state_after?.sis_import_status()?,
            )])
        }
        Action::Remove => {
            let live = change.live?;
            Some(vec![row(
                Some(live_section()?),
                live.role.0,
                removal.resulting_state()?.sis_import_status()?,
            )])
        }
        Action::ChangeState => {
            let live = change.live?;
            Some(vec![row(
                Some(live_section()?),
                live.role.0,
                change.state_after?.sis_import_status()?,
            )])
        }
        Action::ChangeRole => {
            let live = change.live?;
            let section = live_section()?;
            let mut rows = vec![row(Some(section.clone()), change.role_after?.0, "active")];
            if let Some(status) = removal
                .resulting_state()
                .and_then(EnrollmentState::sis_import_status)
            {
                rows.push(row(Some(section), live.role.0, status));
            }
            Some(rows)
        }
    }
}

fn csv_bytes(rows: &[&BulkRow]) -> Result<Vec<u8>, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| format!("cannot write the SIS import CSV: {e}");
    writer
        .write_record(["course_id", "section_id", "user_id", "role_id", "status"])
        .map_err(io)?;
    for r in rows {
        writer
            .write_record([
                r.course_id.as_str(),
                r.section_id.as_deref().unwrap_or_default(),
                r.user_id.as_str(),
                &r.role_id.to_string(),
                r.status,
            ])
            .map_err(io)?;
    }
    writer
        .into_inner()
        .map_err(|e| format!("cannot write the SIS import CSV: {e}"))
}

/// Sends the changes as one SIS import and returns each change's result, in input order; or, when Canvas refuses
/// to start the import (`refuses_path`: a token without "Import SIS data", a Canvas without SIS imports), that
/// refusal, with nothing sent: the caller makes the changes through the API instead. A refusal after the import
/// started is not one: the import may be running, so its changes are failed and the next cycle reads the result.
pub async fn apply_bulk(
    canvas: &CanvasClient,
    account_id: &str,
    timeout: Duration,
    changes: &[(Change, Vec<BulkRow>)],
) -> Result<Vec<ChangeResult>, CanvasError> {
    let all: Vec<&BulkRow> = changes.iter().flat_map(|(_, rows)| rows.iter()).collect();
    let failed_all = |message: String, status: Option<u16>| -> Vec<ChangeResult> {
        changes
            .iter()
            .map(|_| ChangeResult {
                outcome: AuditOutcome::Failed,
                error: Some(message.clone()),
                http_status: status,
                ..ChangeResult::skipped("")
            })
            .collect()
    };
    let failed_by = |e: CanvasError| {
        let mut results = failed_all(format!("SIS import failed: {e}"), e.status());
        if e.ends_cycle()
            && let Some(first) = results.first_mut()
        {
            first.ends_cycle = Some(e);
        }
        results
    };
    let csv = match csv_bytes(&all) {
        Ok(csv) => csv,
        Err(e) => return Ok(failed_all(e, None)),
    };
    tracing::info!(
        changes = changes.len(),
        rows = all.len(),
        bytes = csv.len(),
        "applying through a SIS import"
    );
    let started = match canvas.start_sis_import(account_id, &csv).await {
        Ok(started) => started,
        Err(e) if e.refuses_path() => return Err(e),
        Err(e) => return Ok(failed_by(e)),
    };
    let import = match canvas
        .wait_for_sis_import(account_id, started, timeout)
        .await
    {
        Ok(import) => import,
        Err(e) => return Ok(failed_by(e)),
    };
    let messages = import.error_messages();
    if !import.imported() {
        let detail: Vec<&str> = messages.iter().take(3).map(String::as_str).collect();
        return Ok(failed_all(
            format!(
                "SIS import {} ended `{}`: {}",
                import.id,
                import.workflow_state,
                if detail.is_empty() {
                    "no message".to_owned()
                } else {
                    detail.join("; ")
                }
            ),
            None,
        ));
    }
    // Canvas appends the row description to each row's message.
    let by_row: HashMap<&str, &str> = messages
        .iter()
        .filter_map(|m| m.find("(User ID:").map(|i| (m[i..].trim(), m.as_str())))
        .collect();
    Ok(changes
        .iter()
        .map(|(_, rows)| {
            let errors: Vec<&str> = rows
                .iter()
                .filter_map(|r| by_row.get(r.description().as_str()).copied())
                .collect();
            match errors.first() {
                None => ChangeResult {
                    outcome: AuditOutcome::Applied,
                    error: None,
                    steps: Some(serde_json::json!({ "sis_import": import.id })),
                    ..ChangeResult::skipped("")
                },
                Some(m) if m.starts_with("User not found") => ChangeResult {
                    user_not_found: true,
                    ..ChangeResult::skipped(USER_NOT_FOUND)
                },
                Some(_) => ChangeResult {
                    outcome: AuditOutcome::Failed,
                    error: Some(format!("SIS import {}: {}", import.id, errors.join("; "))),
                    ..ChangeResult::skipped("")
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LiveEnrollment, RoleId};

    fn change(ids: &mut Ids, action: Action, live_section: Option<&str>) -> Change {
        let course = ids.intern("C1");
        let section = live_section
            .map(|s| SectionKey::Sis(ids.intern(s)))
            .unwrap_or(SectionKey::Default);
        let live = LiveEnrollment {
            id: 9,
            user: Some(ids.intern("u1")),
            canvas_user_id: 1,
            course,
            canvas_course_id: 1,
            section,
            canvas_section_id: 1,
            role: RoleId(3),
            state: EnrollmentState::Active,
            associated_user_id: None,
        };
        Change {
            action,
            user: live.user,
            course,
            section,
            role_before: Some(RoleId(3)),
            role_after: Some(RoleId(20)),
            state_before: Some(EnrollmentState::Active),
            state_after: Some(EnrollmentState::Active),
            live: (action != Action::Enroll).then_some(live),
        }
    }

    #[test]
    fn rows_name_enrollments_unambiguously_or_not_at_all() {
        let mut ids = Ids::new();
        let enroll = change(&mut ids, Action::Enroll, None);
        assert_eq!(
            rows_for(&enroll, &ids, RemovalPolicy::Conclude).map(|r| r.len()),
            Some(1)
        );
        let role = change(&mut ids, Action::ChangeRole, Some("S1"));
        let rows = rows_for(&role, &ids, RemovalPolicy::Conclude).expect("eligible");
        assert_eq!(
            rows.iter()
                .map(|r| (r.role_id, r.status))
                .collect::<Vec<_>>(),
            vec![(20, "active"), (3, "completed")]
        );
        let ambiguous = change(&mut ids, Action::Remove, None);
        assert!(
            rows_for(&ambiguous, &ids, RemovalPolicy::Conclude).is_none(),
            "no SIS section: API path"
        );
        let keep = change(&mut ids, Action::Remove, Some("S1"));
        assert!(rows_for(&keep, &ids, RemovalPolicy::Keep).is_none());
        assert_eq!(
            rows[0].description(),
            "(User ID: u1, Course ID: C1, Section ID: S1, Role: 20)"
        );
    }
}
