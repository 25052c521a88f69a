//! The SIS side of a university: one row per program enrollment and per course run enrollment the SIS wants, in
//! CONTRACT v2's columns (the five, and `curriculum_uuid` on program rows), and the COPY that loads them.

use sqlx::PgPool;

use super::University;

/// One SIS row of an Open edX university.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniversitySisRow {
    /// The student key.
    pub user_id: String,
    /// The program UUID.
    pub course_id: String,
    /// NULL for the program enrollment; a course run key for a run enrollment.
    pub section_id: Option<String>,
    pub role: Option<&'static str>,
    pub status: Option<&'static str>,
    /// On program rows: the curriculum a program enrollment is created in.
    pub curriculum_uuid: Option<String>,
}

impl UniversitySisRow {
    fn fields(&self) -> [Option<&str>; 6] {
        [
            Some(&self.user_id),
            Some(&self.course_id),
            self.section_id.as_deref(),
            self.role,
            self.status,
            self.curriculum_uuid.as_deref(),
        ]
    }
}

/// `sis_enrollments` with the optional sixth column (CONTRACT v2 "a second target").
pub const CREATE_OPENEDX_SIS_ENROLLMENTS: &str = "CREATE TABLE IF NOT EXISTS sis_enrollments \
     (user_id text, course_id text, section_id text, role text, status text, curriculum_uuid text)";

/// Creates `sis_enrollments` (with `curriculum_uuid`) if missing, empties it, and COPYs the university's rows in.
/// Returns how many rows it wrote.
pub async fn load_university_sis(
    pool: &PgPool,
    university: &University,
) -> Result<u64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(CREATE_OPENEDX_SIS_ENROLLMENTS)
        .execute(&mut *conn)
        .await?;
    sqlx::query("TRUNCATE sis_enrollments")
        .execute(&mut *conn)
        .await?;
    let rows = crate::district::copy_rows(
        &mut conn,
        "COPY sis_enrollments (user_id, course_id, section_id, role, status, curriculum_uuid) FROM STDIN",
        university.sis_rows().iter().map(UniversitySisRow::fields),
    )
    .await?;
    sqlx::query("ANALYZE sis_enrollments")
        .execute(&mut *conn)
        .await?;
    Ok(rows)
}
