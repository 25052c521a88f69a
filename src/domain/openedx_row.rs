//! One SIS row for Open edX (CONTRACT v2 "a second target") parsed into a [`DesiredEnrollment`], or the reason it
//! was skipped.
//!
//! The place model is Canvas's, reused: the program is the "course" (its UUID), a course run is a "section" (its
//! key), and a row without a run is the program enrollment itself. Keys are compared lower-cased (facts §6.5); the
//! SIS's own casing is what is written.

use super::roles::{OPENEDX_LEARNER, OPENEDX_STAFF};
use super::sis_row::{IdColumn, SisRowRef, SkipReason, SkippedRow, id_field};
use std::collections::HashMap;

use super::{DesiredEnrollment, DesiredState, Ids, SectionKey, Sym};

/// Why Open edX cannot take a SIS row. `Display` is the audit text; [`OpenEdxSkip::label`] the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum OpenEdxSkip {
    #[error(
        "program UUID `{0}` has uppercase letters; Open edX's catalog cache is keyed by the lowercase form, so it would \
         answer 404 (write it lowercase in the SIS)"
    )]
    UppercaseProgram(String),
    #[error("course_id `{0}` is not a program UUID (lowercase, hyphenated)")]
    NotAProgram(String),
    #[error("course run key `{0}` does not parse (expected course-v1:Org+Course+Run)")]
    RunKey(String),
    #[error(
        "status `{0}` is not a program status: enrolled, pending, suspended, canceled, ended (or NULL)"
    )]
    ProgramStatus(String),
    #[error("status `{0}` is not a course enrollment status: active, inactive (or NULL)")]
    CourseStatus(String),
    #[error("role `{0}` is not learner or staff (or NULL)")]
    Role(String),
    #[error("role `staff` is for course run rows only; a program enrollment is always a learner's")]
    StaffOnProgram,
    #[error("curriculum_uuid `{0}` is not a lowercase UUID")]
    Curriculum(String),
    #[error(
        "the program enrollment must be created and the row has no curriculum_uuid (Open edX requires one on \
         creation)"
    )]
    NoCurriculum,
    #[error(
        "this learner's program enrollment was linked to an account and is no longer listed: Open edX retired the \
         learner (its key became retired_external_key_...); not re-created"
    )]
    Retired,
    /// The SIS names another curriculum than the live enrollment's: the API cannot change it (facts §2.5). The
    /// row's status is still reconciled.
    #[error(
        "curriculum_uuid {sis} differs from the enrollment's curriculum {live} in Open edX, which cannot be changed \
         through the API (facts §2.5); the status is reconciled, the curriculum is not — change it in Open edX"
    )]
    CurriculumChange { sis: String, live: String },
    /// Open edX refused the course run (a 404 `error_code`: not in the catalog, not in the program's curriculum).
    #[error("{0}")]
    RunRefused(String),
}

impl OpenEdxSkip {
    pub fn label(&self) -> &'static str {
        match self {
            OpenEdxSkip::UppercaseProgram(_) | OpenEdxSkip::NotAProgram(_) => "bad_course_id",
            OpenEdxSkip::RunKey(_) => "bad_section_id",
            OpenEdxSkip::ProgramStatus(_) | OpenEdxSkip::CourseStatus(_) => "bad_status",
            OpenEdxSkip::Role(_) | OpenEdxSkip::StaffOnProgram => "bad_role",
            OpenEdxSkip::Curriculum(_) | OpenEdxSkip::NoCurriculum => "bad_curriculum",
            OpenEdxSkip::CurriculumChange { .. } => "curriculum_change",
            OpenEdxSkip::Retired => "retired",
            OpenEdxSkip::RunRefused(_) => "course_run_refused",
        }
    }
}

/// A usable Open edX row: what it asks for, the key as the SIS spells it, and its curriculum, if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEdxRow {
    pub desired: DesiredEnrollment,
    pub student_key: String,
    pub curriculum: Option<String>,
}

/// What a cycle knows of Open edX beyond the shared [`Snapshot`](super::decide::Snapshot): how to write each
/// learner's key and each new program enrollment's curriculum, what was listed live, and which waiting enrollments
/// are due for a keep-alive write.
#[derive(Debug, Default, Clone)]
pub struct OpenEdxSide {
    /// The key as the SIS spells it (first seen), by learner: what is written.
    pub sis_keys: HashMap<Sym, String>,
    /// The curriculum a new program enrollment is created in, by (learner, program).
    pub curricula: HashMap<(Sym, Sym), String>,
    /// Each live enrollment, by its id.
    pub live: HashMap<u64, LiveRecord>,
    /// Live waiting program enrollments the SIS lists that were not written for `openedx.waiting_keepalive_days`.
    pub keepalive_due: Vec<u64>,
}

/// One live enrollment as Open edX listed it.
#[derive(Debug, Clone)]
pub struct LiveRecord {
    /// The stored casing (facts §6.5).
    pub student_key: String,
    pub curriculum: String,
    /// No account is linked yet (`account_exists: false`).
    pub waiting: bool,
}

/// A lowercase, hyphenated UUID (facts §2.2: the raw URL string is the cache key).
fn is_lowercase_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// `course-v1:Org+Course+Run`: three non-empty parts of the characters opaque keys allow.
fn is_run_key(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("course-v1:") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('+').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~'))
        })
}

pub fn parse_openedx_row(row: SisRowRef<'_>, ids: &mut Ids) -> Result<OpenEdxRow, SkippedRow> {
    let key = id_field(row.user_id, IdColumn::UserId);
    let program = id_field(row.course_id, IdColumn::CourseId);
    let (key, program) = match (key, program) {
        (Ok(k), Ok(p)) => (k, p),
        (Err(reason), program) => {
            return Err(SkippedRow {
                reason,
                user: None,
                course: program.ok().map(|p| ids.intern(p)),
            });
        }
        (Ok(k), Err(reason)) => {
            return Err(SkippedRow {
                reason,
                user: Some(ids.intern(&k.to_lowercase())),
                course: None,
            });
        }
    };
    let user = ids.intern(&key.to_lowercase());
    let course = ids.intern(program);
    let skip = |reason: OpenEdxSkip| SkippedRow {
        reason: SkipReason::OpenEdx(reason),
        user: Some(user),
        course: Some(course),
    };
    if !is_lowercase_uuid(program) {
        return Err(if is_lowercase_uuid(&program.to_lowercase()) {
            skip(OpenEdxSkip::UppercaseProgram(program.to_owned()))
        } else {
            skip(OpenEdxSkip::NotAProgram(program.to_owned()))
        });
    }
    let section = match row.section_id {
        None | Some("") => SectionKey::Default,
        Some(s) => {
            let run = id_field(Some(s), IdColumn::SectionId).map_err(|reason| SkippedRow {
                reason,
                user: Some(user),
                course: Some(course),
            })?;
            if !is_run_key(run) {
                return Err(skip(OpenEdxSkip::RunKey(run.to_owned())));
            }
            SectionKey::Sis(ids.intern(run))
        }
    };
    let role = match (row.role, section) {
        (None | Some("learner"), _) => OPENEDX_LEARNER,
        (Some("staff"), SectionKey::Sis(_)) => OPENEDX_STAFF,
        (Some("staff"), SectionKey::Default) => return Err(skip(OpenEdxSkip::StaffOnProgram)),
        (Some(other), _) => return Err(skip(OpenEdxSkip::Role(other.to_owned()))),
    };
    let state = match (row.status, section) {
        (None, _) => DesiredState::Active,
        (Some(s), SectionKey::Default) => match s {
            "enrolled" => DesiredState::Active,
            "pending" => DesiredState::Pending,
            "suspended" => DesiredState::Inactive,
            "canceled" => DesiredState::Deleted,
            "ended" => DesiredState::Completed,
            other => return Err(skip(OpenEdxSkip::ProgramStatus(other.to_owned()))),
        },
        (Some(s), SectionKey::Sis(_)) => match s {
            "active" => DesiredState::Active,
            "inactive" => DesiredState::Inactive,
            other => return Err(skip(OpenEdxSkip::CourseStatus(other.to_owned()))),
        },
    };
    let curriculum = match row.curriculum_uuid {
        None | Some("") => None,
        Some(c) if is_lowercase_uuid(c) => Some(c.to_owned()),
        Some(c) => return Err(skip(OpenEdxSkip::Curriculum(c.to_owned()))),
    };
    Ok(OpenEdxRow {
        desired: DesiredEnrollment {
            user,
            course,
            section,
            role,
            state,
        },
        student_key: key.to_owned(),
        curriculum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sis_row::SisRow;

    const PROGRAM: &str = "00000000-1111-2222-3333-444444444444";

    fn row(section: Option<&str>, role: Option<&str>, status: Option<&str>) -> SisRow {
        SisRow {
            user_id: Some("Learner-1".into()),
            course_id: Some(PROGRAM.into()),
            section_id: section.map(Into::into),
            role: role.map(Into::into),
            status: status.map(Into::into),
            curriculum_uuid: None,
        }
    }

    #[test]
    fn program_and_course_rows_parse_into_places_with_keys_compared_lower_cased() {
        let mut ids = Ids::new();
        let p = parse_openedx_row(row(None, None, Some("pending")).borrowed(), &mut ids)
            .expect("program row");
        assert_eq!(p.desired.section, SectionKey::Default);
        assert_eq!(p.desired.state, DesiredState::Pending);
        assert_eq!(p.student_key, "Learner-1");
        assert_eq!(ids.resolve(p.desired.user), "learner-1");
        let c = parse_openedx_row(
            row(
                Some("course-v1:edX+Toy+2026"),
                Some("staff"),
                Some("inactive"),
            )
            .borrowed(),
            &mut ids,
        )
        .expect("course row");
        assert_eq!(c.desired.role, OPENEDX_STAFF);
        assert_eq!(c.desired.state, DesiredState::Inactive);
        assert_eq!(c.desired.user, p.desired.user);
    }

    #[test]
    fn rows_open_edx_cannot_take_are_skipped_with_the_reason() {
        let upper = SisRow {
            course_id: Some("ABCDEF00-1111-2222-3333-444444444444".into()),
            ..row(None, None, None)
        };
        let cases = [
            (upper, "uppercase"),
            (row(Some("edX/Toy/2026"), None, None), "does not parse"),
            (row(None, None, Some("active")), "not a program status"),
            (
                row(Some("course-v1:edX+Toy+2026"), None, Some("enrolled")),
                "not a course enrollment status",
            ),
            (row(None, Some("staff"), None), "course run rows only"),
            (
                row(Some("course-v1:edX+Toy+2026"), Some("teacher"), None),
                "not learner or staff",
            ),
            (
                SisRow {
                    curriculum_uuid: Some("AAAA".into()),
                    ..row(None, None, None)
                },
                "curriculum_uuid",
            ),
        ];
        for (r, expected) in cases {
            let mut ids = Ids::new();
            let err = parse_openedx_row(r.borrowed(), &mut ids).expect_err(expected);
            assert!(
                err.reason.to_string().contains(expected),
                "{expected}: {}",
                err.reason
            );
            assert!(
                err.user.is_some() && err.course.is_some(),
                "a skipped row holds its learner"
            );
        }
    }
}
