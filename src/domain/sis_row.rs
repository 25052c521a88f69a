//! One SIS row (`sis.enrollments_query`) parsed into a [`DesiredEnrollment`], or the reason it was skipped.
//!
//! Parsing is strict on purpose: a value that is not exactly one of the documented ones is skipped with a reason,
//! never coerced. An unknown status never means `deleted`; a padded id never becomes a second identity.

use super::roles::RoleBook;
use super::{DesiredEnrollment, DesiredState, Ids, SectionKey, Sym};
use crate::domain::UserIdKind;

/// The five text columns of a SIS row, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SisRow {
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    /// The optional sixth column (`curriculum_uuid`, Open edX only): NULL when the query has no such column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curriculum_uuid: Option<String>,
}

/// A SIS row's five text columns, borrowed from where they were read: the SIS read parses each row in place and
/// copies it into a [`SisRow`] only when it is skipped (and kept for the audit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SisRowRef<'a> {
    pub user_id: Option<&'a str>,
    pub course_id: Option<&'a str>,
    pub section_id: Option<&'a str>,
    pub role: Option<&'a str>,
    pub status: Option<&'a str>,
    pub curriculum_uuid: Option<&'a str>,
}

impl SisRowRef<'_> {
    pub fn to_row(self) -> SisRow {
        SisRow {
            user_id: self.user_id.map(str::to_owned),
            course_id: self.course_id.map(str::to_owned),
            section_id: self.section_id.map(str::to_owned),
            role: self.role.map(str::to_owned),
            status: self.status.map(str::to_owned),
            curriculum_uuid: self.curriculum_uuid.map(str::to_owned),
        }
    }
}

impl SisRow {
    pub fn borrowed(&self) -> SisRowRef<'_> {
        SisRowRef {
            user_id: self.user_id.as_deref(),
            course_id: self.course_id.as_deref(),
            section_id: self.section_id.as_deref(),
            role: self.role.as_deref(),
            status: self.status.as_deref(),
            curriculum_uuid: self.curriculum_uuid.as_deref(),
        }
    }
}

/// Why a row was skipped, and which user/course it was about (when that much could be read), so that the cycle
/// can hold that user's enrollments in that course instead of removing them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedRow {
    pub reason: SkipReason,
    pub user: Option<Sym>,
    pub course: Option<Sym>,
}

/// An id column of a SIS row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdColumn {
    UserId,
    CourseId,
    SectionId,
}

impl IdColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            IdColumn::UserId => "user_id",
            IdColumn::CourseId => "course_id",
            IdColumn::SectionId => "section_id",
        }
    }
}

/// Why a SIS row could not be understood. `Display` is the audit text; [`SkipReason::label`] is the bounded metric
/// label, so rewording a message never moves a label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SkipReason {
    #[error("{} is NULL", .0.as_str())]
    Null(IdColumn),
    #[error("{} is empty", .0.as_str())]
    Empty(IdColumn),
    #[error(
        "{column} `{value}` has leading or trailing whitespace; fix it in the SIS (it would name a different Canvas object)",
        column = .0.as_str(),
        value = .1
    )]
    Whitespace(IdColumn, String),
    #[error("{} contains a control character", .0.as_str())]
    ControlCharacter(IdColumn),
    #[error("role is NULL")]
    RoleNull,
    /// The role could not be resolved (the `RoleError` text: unknown, inactive, an account role).
    #[error("{0}")]
    Role(String),
    #[error("status `{0}` is not one of active, inactive, completed, deleted (or NULL)")]
    Status(String),
    /// A row Open edX could not take (CONTRACT v2 "a second target").
    #[error("{0}")]
    OpenEdx(super::openedx_row::OpenEdxSkip),
}

impl SkipReason {
    /// The `reason` label of `rostersync_sis_rows_skipped_total`.
    pub fn label(&self) -> &'static str {
        match self {
            SkipReason::Null(c)
            | SkipReason::Empty(c)
            | SkipReason::Whitespace(c, _)
            | SkipReason::ControlCharacter(c) => match c {
                IdColumn::UserId => "bad_user_id",
                IdColumn::CourseId => "bad_course_id",
                IdColumn::SectionId => "bad_section_id",
            },
            SkipReason::RoleNull | SkipReason::Role(_) => "bad_role",
            SkipReason::Status(_) => "bad_status",
            SkipReason::OpenEdx(skip) => skip.label(),
        }
    }
}

pub(super) fn id_field(value: Option<&str>, column: IdColumn) -> Result<&str, SkipReason> {
    match value {
        None => Err(SkipReason::Null(column)),
        Some(v) if v.trim().is_empty() => Err(SkipReason::Empty(column)),
        Some(v) if v != v.trim() => Err(SkipReason::Whitespace(column, v.to_owned())),
        Some(v) if v.chars().any(char::is_control) => Err(SkipReason::ControlCharacter(column)),
        Some(v) => Ok(v),
    }
}

/// The SIS user id as the plan compares it: exact for `sis_user_id`, lower-cased for `sis_login_id` (facts §2).
pub fn user_identity(raw: &str, kind: UserIdKind) -> std::borrow::Cow<'_, str> {
    match kind {
        UserIdKind::SisUserId => std::borrow::Cow::Borrowed(raw),
        UserIdKind::SisLoginId => std::borrow::Cow::Owned(raw.to_lowercase()),
    }
}

pub fn parse_row(
    row: &SisRow,
    kind: UserIdKind,
    roles: &RoleBook,
    ids: &mut Ids,
) -> Result<DesiredEnrollment, SkippedRow> {
    parse_row_ref(row.borrowed(), kind, roles, ids)
}

/// [`parse_row`] of a borrowed row.
pub fn parse_row_ref(
    row: SisRowRef<'_>,
    kind: UserIdKind,
    roles: &RoleBook,
    ids: &mut Ids,
) -> Result<DesiredEnrollment, SkippedRow> {
    let user = id_field(row.user_id, IdColumn::UserId).map(|u| ids.intern(&user_identity(u, kind)));
    let course = id_field(row.course_id, IdColumn::CourseId).map(|c| ids.intern(c));
    // A skipped row still names someone: a padded id (a CHAR(n) column) names the user and course its trimmed
    // text does, and that user's enrollments there are held, never removed because of it.
    let mut named = |value: Option<&str>, user: bool| {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
            .map(|v| match user {
                true => ids.intern(&user_identity(v, kind)),
                false => ids.intern(v),
            })
    };
    let (user, course) = match (user, course) {
        (Ok(user), Ok(course)) => (user, course),
        (Err(reason), course) => {
            return Err(SkippedRow {
                reason,
                user: named(row.user_id, true),
                course: course.ok().or_else(|| named(row.course_id, false)),
            });
        }
        (Ok(user), Err(reason)) => {
            return Err(SkippedRow {
                reason,
                user: Some(user),
                course: named(row.course_id, false),
            });
        }
    };
    let skip = |reason: SkipReason| SkippedRow {
        reason,
        user: Some(user),
        course: Some(course),
    };
    let section = match row.section_id {
        // An empty string is how many exports spell "no section"; both mean the course's default section.
        None | Some("") => SectionKey::Default,
        Some(s) => {
            SectionKey::Sis(ids.intern(id_field(Some(s), IdColumn::SectionId).map_err(skip)?))
        }
    };
    let role = match row.role {
        None => return Err(skip(SkipReason::RoleNull)),
        Some(r) => roles
            .resolve(r)
            .map_err(|e| skip(SkipReason::Role(e.to_string())))?,
    };
    let state = match row.status {
        None => DesiredState::Active,
        Some(s) => DesiredState::parse(s).ok_or_else(|| skip(SkipReason::Status(s.to_owned())))?,
    };
    Ok(DesiredEnrollment {
        user,
        course,
        section,
        role,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RoleId;
    use crate::domain::roles::{BUILT_IN_TYPES, RoleInfo, RoleStatus};

    fn roles() -> RoleBook {
        RoleBook::new(BUILT_IN_TYPES.iter().enumerate().map(|(i, t)| RoleInfo {
            id: RoleId(3 + i as u64),
            name: (*t).into(),
            base_type: (*t).into(),
            status: RoleStatus::BuiltIn,
        }))
    }

    fn row(user: Option<&str>, role: Option<&str>, status: Option<&str>) -> SisRow {
        SisRow {
            user_id: user.map(Into::into),
            course_id: Some("C1".into()),
            section_id: None,
            role: role.map(Into::into),
            status: status.map(Into::into),
            curriculum_uuid: None,
        }
    }

    #[test]
    fn good_rows_parse_with_null_status_as_active() {
        let mut ids = Ids::new();
        let d = parse_row(
            &row(Some("u1"), Some("teacher"), None),
            UserIdKind::SisUserId,
            &roles(),
            &mut ids,
        )
        .expect("ok");
        assert_eq!(d.role, RoleId(4));
        assert_eq!(d.state, DesiredState::Active);
        assert_eq!(d.section, SectionKey::Default);
        assert_eq!(ids.resolve(d.user), "u1");
    }

    #[test]
    fn bad_rows_are_skipped_with_a_reason_never_coerced() {
        let cases = [
            (row(None, Some("student"), None), "user_id is NULL"),
            (row(Some(""), Some("student"), None), "user_id is empty"),
            (row(Some(" 12345 "), Some("student"), None), "whitespace"),
            (row(Some("u1"), Some("Learner"), None), "does not exist"),
            (row(Some("u1"), None, None), "role is NULL"),
            (
                row(Some("u1"), Some("student"), Some("Active")),
                "status `Active`",
            ),
            (
                row(Some("u1"), Some("student"), Some("dropped")),
                "status `dropped`",
            ),
            (
                row(Some("u1"), Some("student"), Some("withdrawn")),
                "status `withdrawn`",
            ),
        ];
        for (r, expected) in cases {
            let mut ids = Ids::new();
            let err = parse_row(&r, UserIdKind::SisUserId, &roles(), &mut ids).expect_err(expected);
            assert!(
                err.reason.to_string().contains(expected),
                "{expected}: {}",
                err.reason
            );
            assert!(err.course.is_some());
        }
    }

    #[test]
    fn login_ids_compare_lower_cased() {
        let mut ids = Ids::new();
        let a = parse_row(
            &row(Some("Jane.Doe@X.edu"), Some("student"), None),
            UserIdKind::SisLoginId,
            &roles(),
            &mut ids,
        )
        .expect("ok");
        let b = parse_row(
            &row(Some("jane.doe@x.edu"), Some("student"), None),
            UserIdKind::SisLoginId,
            &roles(),
            &mut ids,
        )
        .expect("ok");
        assert_eq!(a.user, b.user);
        let c = parse_row(
            &row(Some("ABC"), Some("student"), None),
            UserIdKind::SisUserId,
            &roles(),
            &mut ids,
        )
        .expect("ok");
        let d = parse_row(
            &row(Some("abc"), Some("student"), None),
            UserIdKind::SisUserId,
            &roles(),
            &mut ids,
        )
        .expect("ok");
        assert_ne!(c.user, d.user, "sis_user_id is case-sensitive in Canvas");
    }
}
