//! The SIS side of a district: rows kept as compact index records and rendered as borrowed strings on the way out,
//! the staff list, and the COPY that loads both into PostgreSQL for a cycle to read.

use sqlx::PgPool;

use super::{DEFAULT_SECTION, District};

/// An owned SIS row: the same five text columns (`user_id course_id section_id role status`, CONTRACT.md) the
/// cycle reads. Plain on purpose: this crate imports nothing of rostersync; code that feeds rows to rostersync's
/// parser converts field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SisRowOwned {
    pub user_id: Option<String>,
    pub course_id: Option<String>,
    pub section_id: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
}

/// One SIS row, borrowed from the district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SisRowRef<'a> {
    pub user_id: Option<&'a str>,
    pub course_id: Option<&'a str>,
    pub section_id: Option<&'a str>,
    pub role: Option<&'a str>,
    pub status: Option<&'a str>,
}

impl<'a> SisRowRef<'a> {
    pub fn to_owned_row(&self) -> SisRowOwned {
        SisRowOwned {
            user_id: self.user_id.map(str::to_owned),
            course_id: self.course_id.map(str::to_owned),
            section_id: self.section_id.map(str::to_owned),
            role: self.role.map(str::to_owned),
            status: self.status.map(str::to_owned),
        }
    }

    fn fields(self) -> [Option<&'a str>; 5] {
        [
            self.user_id,
            self.course_id,
            self.section_id,
            self.role,
            self.status,
        ]
    }
}

/// One row of the `sis_staff` table: every employee (teachers included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffRow<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub title: &'a str,
    pub school: &'a str,
}

/// A SIS row as indexes into the seed (16 bytes instead of five strings).
#[derive(Debug, Clone, Copy)]
pub(super) struct SisEntry {
    pub(super) user: u32,
    pub(super) course: u32,
    /// Index into `seed.sections`, or `DEFAULT_SECTION`.
    pub(super) section: u32,
    pub(super) role: SisRole,
    pub(super) status: SisStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SisRole {
    Student,
    Teacher,
}

impl SisRole {
    fn text(self) -> &'static str {
        match self {
            SisRole::Student => "student",
            SisRole::Teacher => "teacher",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SisStatus {
    Null,
    Active,
    Inactive,
    Completed,
    Deleted,
}

impl SisStatus {
    fn text(self) -> Option<&'static str> {
        match self {
            SisStatus::Null => None,
            SisStatus::Active => Some("active"),
            SisStatus::Inactive => Some("inactive"),
            SisStatus::Completed => Some("completed"),
            SisStatus::Deleted => Some("deleted"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct StaffEntry {
    pub(super) user: u32,
    pub(super) title: &'static str,
    pub(super) school: u32,
}

impl District {
    /// The SIS rows (good ones first, then the bad ones), as borrowed strings.
    pub fn sis_rows(&self) -> impl Iterator<Item = SisRowRef<'_>> + '_ {
        self.sis
            .iter()
            .map(move |e| self.render(e))
            .chain(self.bad_rows.iter().map(|r| SisRowRef {
                user_id: r.user_id.as_deref(),
                course_id: r.course_id.as_deref(),
                section_id: r.section_id.as_deref(),
                role: r.role.as_deref(),
                status: r.status.as_deref(),
            }))
    }

    /// The SIS rows as owned values (tests; prefer [`District::sis_rows`] for big districts).
    pub fn sis_rows_owned(&self) -> Vec<SisRowOwned> {
        self.sis_rows().map(|r| r.to_owned_row()).collect()
    }

    /// The `sis_staff` rows: every employee, teachers included.
    pub fn staff_rows(&self) -> impl Iterator<Item = StaffRow<'_>> + '_ {
        self.staff.iter().map(move |s| {
            let user = &self.seed.users[s.user as usize];
            StaffRow {
                user_id: user.sis_user_id.as_deref().unwrap_or_default(),
                name: &user.name,
                title: s.title,
                school: &self.schools[s.school as usize].code,
            }
        })
    }

    /// The SIS user ids of every employee: what the `staff-are-adult-learners` rule selects.
    pub fn staff_user_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.staff_rows().map(|s| s.user_id)
    }

    fn render(&self, e: &SisEntry) -> SisRowRef<'_> {
        SisRowRef {
            user_id: self.seed.users[e.user as usize].sis_user_id.as_deref(),
            course_id: self.seed.courses[e.course as usize]
                .sis_course_id
                .as_deref(),
            section_id: if e.section == DEFAULT_SECTION {
                None
            } else {
                self.seed.sections[e.section as usize]
                    .sis_section_id
                    .as_deref()
            },
            role: Some(e.role.text()),
            status: e.status.text(),
        }
    }
}

/// The SIS tables `load_sis` creates (CONTRACT.md: text columns `user_id course_id section_id role status`).
pub const CREATE_SIS_ENROLLMENTS: &str = "CREATE TABLE IF NOT EXISTS sis_enrollments \
     (user_id text, course_id text, section_id text, role text, status text)";
pub const CREATE_SIS_STAFF: &str = "CREATE TABLE IF NOT EXISTS sis_staff \
     (user_id text PRIMARY KEY, name text NOT NULL, title text NOT NULL, school text NOT NULL)";

/// What [`load_sis`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedSis {
    pub enrollment_rows: u64,
    pub staff_rows: u64,
}

/// Bytes buffered before each COPY message.
const COPY_CHUNK: usize = 1 << 20;

/// Creates `sis_enrollments` and `sis_staff` if missing, empties them, and streams the district's rows in with
/// `COPY ... FROM STDIN` (text format), a megabyte at a time.
pub async fn load_sis(pool: &PgPool, district: &District) -> Result<LoadedSis, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(CREATE_SIS_ENROLLMENTS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(CREATE_SIS_STAFF).execute(&mut *conn).await?;
    sqlx::query("TRUNCATE sis_enrollments, sis_staff")
        .execute(&mut *conn)
        .await?;
    let enrollment_rows = copy_rows(
        &mut conn,
        "COPY sis_enrollments (user_id, course_id, section_id, role, status) FROM STDIN",
        district.sis_rows().map(|r| r.fields()),
    )
    .await?;
    let staff_rows = copy_rows(
        &mut conn,
        "COPY sis_staff (user_id, name, title, school) FROM STDIN",
        district
            .staff_rows()
            .map(|s| [Some(s.user_id), Some(s.name), Some(s.title), Some(s.school)]),
    )
    .await?;
    Ok(LoadedSis {
        enrollment_rows,
        staff_rows,
    })
}

pub(crate) async fn copy_rows<'a, const N: usize>(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    rows: impl Iterator<Item = [Option<&'a str>; N]>,
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 4_096);
    let mut count = 0u64;
    for fields in rows {
        write_copy_row(&mut buf, &fields);
        count += 1;
        if buf.len() >= COPY_CHUNK {
            let sent = copy.send(buf.as_slice()).await.map(|_| ());
            if let Err(e) = sent {
                let _ = copy.abort(e.to_string()).await;
                return Err(e);
            }
            buf.clear();
        }
    }
    if !buf.is_empty() {
        let sent = copy.send(buf.as_slice()).await.map(|_| ());
        if let Err(e) = sent {
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
    }
    copy.finish().await?;
    Ok(count)
}

/// One line of COPY text format: tab-separated, `\N` for NULL, backslash escapes.
pub(super) fn write_copy_row(buf: &mut Vec<u8>, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        match field {
            None => buf.extend_from_slice(b"\\N"),
            Some(text) => {
                for &b in text.as_bytes() {
                    match b {
                        b'\\' => buf.extend_from_slice(b"\\\\"),
                        b'\t' => buf.extend_from_slice(b"\\t"),
                        b'\n' => buf.extend_from_slice(b"\\n"),
                        b'\r' => buf.extend_from_slice(b"\\r"),
                        _ => buf.push(b),
                    }
                }
            }
        }
    }
    buf.push(b'\n');
}
