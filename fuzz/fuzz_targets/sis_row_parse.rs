//! One SIS row (five nullable text columns and the optional curriculum, as PostgreSQL hands them over) through
//! `parse_row`, under both `sis.user_id_kind`s, against a role book with the built-in roles and two custom ones (one
//! inactive); and through Open edX's `parse_openedx_row`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rostersync::domain::UserIdKind;
use rostersync::domain::openedx_row::parse_openedx_row;
use rostersync::domain::roles::{BUILT_IN_TYPES, RoleBook, RoleInfo, RoleStatus};
use rostersync::domain::sis_row::{SisRow, parse_row};
use rostersync::domain::{Ids, RoleId};

type Columns = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

fn roles() -> RoleBook {
    let built_in = BUILT_IN_TYPES.iter().enumerate().map(|(i, t)| RoleInfo {
        id: RoleId(3 + i as u64),
        name: (*t).into(),
        base_type: (*t).into(),
        status: RoleStatus::BuiltIn,
    });
    let custom = [
        ("Adult Learner", "StudentEnrollment", RoleStatus::Active),
        ("Retired Role", "TeacherEnrollment", RoleStatus::Inactive),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, base, status))| RoleInfo {
        id: RoleId(20 + i as u64),
        name: name.into(),
        base_type: base.into(),
        status,
    });
    RoleBook::new(built_in.chain(custom))
}

fuzz_target!(|columns: Columns| {
    let (user_id, course_id, section_id, role, status, curriculum_uuid, login) = columns;
    let row = SisRow {
        user_id,
        course_id,
        section_id,
        role,
        status,
        curriculum_uuid,
    };
    let kind = if login {
        UserIdKind::SisLoginId
    } else {
        UserIdKind::SisUserId
    };
    let mut ids = Ids::new();
    if let Ok(d) = parse_row(&row, kind, &roles(), &mut ids) {
        // A parsed row's ids are exactly the (trimmed, non-empty) columns: never coerced.
        let user = ids.resolve(d.user);
        assert!(!user.is_empty() && user == user.trim());
        assert_eq!(Some(ids.resolve(d.course)), row.course_id.as_deref());
    }
    let mut ids = Ids::new();
    if let Ok(r) = parse_openedx_row(row.borrowed(), &mut ids) {
        // The program is the column as given (a lowercase UUID); the key compares lower-cased, is written as given.
        assert_eq!(
            Some(ids.resolve(r.desired.course)),
            row.course_id.as_deref()
        );
        assert_eq!(Some(r.student_key.as_str()), row.user_id.as_deref());
        assert_eq!(ids.resolve(r.desired.user), r.student_key.to_lowercase());
    }
});
