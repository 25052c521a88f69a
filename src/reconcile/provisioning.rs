//! The large-account read path: live enrollments from the provisioning report's enrollments CSV (facts §9) instead
//! of one listing per course. Columns are read by header name (newer Canvas versions append columns).

use std::collections::HashSet;

use crate::domain::roles::RoleBook;
use crate::domain::{EnrollmentState, Ids, LiveEnrollment, RoleId, SectionKey, Sym};

const REQUIRED: [&str; 9] = [
    "canvas_enrollment_id",
    "canvas_course_id",
    "course_id",
    "canvas_user_id",
    "user_id",
    "role_id",
    "canvas_section_id",
    "section_id",
    "status",
];

/// The report's `status` (facts §9): `invited` covers creation_pending too; `concluded` is completed. Deleted and
/// rejected rows are absent for the plan, as they are in a listing.
fn state(status: &str) -> Option<EnrollmentState> {
    match status {
        "active" => Some(EnrollmentState::Active),
        "invited" => Some(EnrollmentState::Invited),
        "creation_pending" => Some(EnrollmentState::CreationPending),
        "concluded" | "completed" => Some(EnrollmentState::Completed),
        "inactive" => Some(EnrollmentState::Inactive),
        "deleted" | "rejected" => None,
        _ => Some(EnrollmentState::Unknown),
    }
}

/// Parses the CSV, keeping the rows of managed courses. `managed` holds interned SIS course ids.
pub fn parse_enrollments_csv(
    bytes: &[u8],
    managed: &HashSet<Sym>,
    ids: &mut Ids,
    roles: &mut RoleBook,
) -> Result<Vec<LiveEnrollment>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader
        .byte_headers()
        .map_err(|e| format!("provisioning report: unreadable CSV header: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name.as_bytes());
    let mut idx = [0usize; REQUIRED.len()];
    for (i, name) in REQUIRED.iter().enumerate() {
        idx[i] = column(name).ok_or_else(|| {
            format!("provisioning report: the enrollments CSV has no `{name}` column")
        })?;
    }
    let [
        eid,
        canvas_course,
        course,
        canvas_user,
        user,
        role_id,
        canvas_section,
        section,
        status,
    ] = idx;
    let role_name = column("role");
    let base_type = column("base_role_type");
    let associated = column("canvas_associated_user_id");

    let mut out = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut line = 1u64;
    // The report lists a course's rows together, and most courses have one section and one or two roles: the
    // last course, section and role seen are remembered, so that a row repeating them costs no lookup.
    let mut last_course: (Vec<u8>, Option<Sym>) = (Vec::new(), None);
    let mut last_section: Option<(Vec<u8>, SectionKey)> = None;
    let mut last_role: Option<RoleId> = None;
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| format!("provisioning report: unreadable CSV at line {line}: {e}"))?
    {
        line += 1;
        let text =
            |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default()).unwrap_or_default();
        let course_bytes = record.get(course).unwrap_or_default();
        if line == 2 || last_course.0 != course_bytes {
            last_course.0.clear();
            last_course.0.extend_from_slice(course_bytes);
            last_course.1 = ids.get(text(course)).filter(|c| managed.contains(c));
        }
        let Some(course_sym) = last_course.1 else {
            continue;
        };
        let Some(state) = state(text(status)) else {
            continue;
        };
        let number = |i: usize| -> Result<u64, String> {
            text(i).parse::<u64>().map_err(|_| {
                format!(
                    "provisioning report line {line}: `{}` is not a number",
                    text(i)
                )
            })
        };
        let role = RoleId(number(role_id)?);
        if let Some(name) = role_name.map(text)
            && last_role != Some(role)
        {
            // The first row naming a role is the one learnt (`learn` keeps what it knows).
            roles.learn(role, name, base_type.map(text).unwrap_or_default());
            last_role = Some(role);
        }
        let user_text = text(user);
        let section_bytes = record.get(section).unwrap_or_default();
        let section_key = match &last_section {
            Some((bytes, key)) if bytes.as_slice() == section_bytes => *key,
            _ => {
                let section_text = text(section);
                let key = if section_text.is_empty() {
                    SectionKey::Default
                } else {
                    SectionKey::Sis(ids.intern(section_text))
                };
                last_section = Some((section_bytes.to_vec(), key));
                key
            }
        };
        out.push(LiveEnrollment {
            id: number(eid)?,
            user: (!user_text.is_empty()).then(|| ids.intern(user_text)),
            canvas_user_id: number(canvas_user)?,
            course: course_sym,
            canvas_course_id: number(canvas_course)?,
            section: section_key,
            canvas_section_id: number(canvas_section)?,
            role,
            state,
            associated_user_id: associated.map(text).and_then(|a| a.parse().ok()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "canvas_course_id,course_id,canvas_user_id,user_id,role,role_id,canvas_section_id,section_id,status,canvas_associated_user_id,associated_user_id,created_by_sis,base_role_type,limit_section_privileges,canvas_enrollment_id,extra_new_column\n\
        1,MATH,10,u10,student,3,100,MATH-A,active,,,true,StudentEnrollment,false,1000,x\n\
        1,MATH,11,u11,Adult Learner,20,101,,concluded,,,false,StudentEnrollment,false,1001,x\n\
        1,MATH,12,u12,observer,7,100,MATH-A,active,10,u10,false,ObserverEnrollment,false,1002,x\n\
        1,MATH,13,u13,student,3,100,MATH-A,deleted,,,false,StudentEnrollment,false,1003,x\n\
        2,OTHER,10,u10,student,3,200,,active,,,false,StudentEnrollment,false,2000,x\n";

    #[test]
    fn reads_by_header_name_keeps_managed_courses_and_maps_statuses() {
        let mut ids = Ids::new();
        let math = ids.intern("MATH");
        let mut roles = RoleBook::default();
        let rows = parse_enrollments_csv(CSV.as_bytes(), &[math].into(), &mut ids, &mut roles)
            .expect("parses");
        assert_eq!(rows.len(), 3, "deleted row and unmanaged course left out");
        assert_eq!(rows[0].state, EnrollmentState::Active);
        assert_eq!(rows[1].state, EnrollmentState::Completed);
        assert_eq!(rows[1].section, SectionKey::Default);
        assert_eq!(rows[2].associated_user_id, Some(10));
        assert_eq!(roles.name(RoleId(20)), "Adult Learner");
    }

    #[test]
    fn a_missing_column_or_bad_number_is_an_error() {
        let mut ids = Ids::new();
        let math = ids.intern("MATH");
        let err = parse_enrollments_csv(
            b"course_id,status\nMATH,active\n",
            &[math].into(),
            &mut ids,
            &mut RoleBook::default(),
        )
        .expect_err("missing");
        assert!(err.contains("canvas_enrollment_id"));
        let bad = CSV.replace(",1000,", ",x1000,");
        let err = parse_enrollments_csv(
            bad.as_bytes(),
            &[math].into(),
            &mut ids,
            &mut RoleBook::default(),
        )
        .expect_err("bad");
        assert!(err.contains("not a number"), "{err}");
    }
}
