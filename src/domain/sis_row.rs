//! One SIS row (`sis.enrollments_query`) parsed into a [`DesiredEnrollment`], or the reason it was skipped.
//!
//! Parsing is strict on purpose: a value that is not exactly one of the documented ones is skipped with a reason,
//! never coerced. An unknown status never means `deleted`; a padded id never becomes a second identity.

use super::roles::RoleBook;
use super::{DesiredEnrollment, DesiredState, Ids, SectionKey, Sym};
use crate::config::UserIdKind;

/// The five text columns of a SIS row, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SisRow {
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
}

/// Why a row was skipped, and which user/course it was about (when that much could be read), so that the cycle
/// can hold that user's enrollments in that course instead of removing them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    pub reason: String,
    pub user: Option<Sym>,
    pub course: Option<Sym>,
}

fn id_field(value: Option<&str>, column: &str) -> Result<String, String> {
    match value {
        None => Err(format!("{column} is NULL")),
        Some(v) if v.trim().is_empty() => Err(format!("{column} is empty")),
        Some(v) if v != v.trim() => Err(format!(
            "{column} `{v}` has leading or trailing whitespace; fix it in the SIS (it would name a different Canvas object)"
        )),
        Some(v) if v.chars().any(char::is_control) => {
            Err(format!("{column} contains a control character"))
        }
        Some(v) => Ok(v.to_owned()),
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
    let user =
        id_field(row.user_id.as_deref(), "user_id").map(|u| ids.intern(&user_identity(&u, kind)));
    let course = id_field(row.course_id.as_deref(), "course_id").map(|c| ids.intern(&c));
    let skip =
        |reason: String, user: &Result<Sym, String>, course: &Result<Sym, String>| SkippedRow {
            reason,
            user: user.as_ref().ok().copied(),
            course: course.as_ref().ok().copied(),
        };
    if let Err(reason) = &user {
        return Err(skip(reason.clone(), &user, &course));
    }
    if let Err(reason) = &course {
        return Err(skip(reason.clone(), &user, &course));
    }
    let section = match row.section_id.as_deref() {
        // An empty string is how many exports spell "no section"; both mean the course's default section.
        None | Some("") => SectionKey::Default,
        Some(s) => match id_field(Some(s), "section_id") {
            Ok(s) => SectionKey::Sis(ids.intern(&s)),
            Err(reason) => return Err(skip(reason, &user, &course)),
        },
    };
    let role = match row.role.as_deref() {
        None => return Err(skip("role is NULL".into(), &user, &course)),
        Some(r) => match roles.resolve(r) {
            Ok(id) => id,
            Err(e) => return Err(skip(e.to_string(), &user, &course)),
        },
    };
    let state = match row.status.as_deref() {
        None => DesiredState::Active,
        Some(s) => match DesiredState::parse(s) {
            Some(state) => state,
            None => {
                return Err(skip(
                    format!(
                        "status `{s}` is not one of active, inactive, completed, deleted (or NULL)"
                    ),
                    &user,
                    &course,
                ));
            }
        },
    };
    match (user, course) {
        (Ok(user), Ok(course)) => Ok(DesiredEnrollment {
            user,
            course,
            section,
            role,
            state,
        }),
        // Both were checked above.
        (user, course) => Err(skip("unreadable row".into(), &user, &course)),
    }
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
            assert!(err.reason.contains(expected), "{expected}: {}", err.reason);
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
