//! `rostersync.course_fingerprints`: each SIS course's fingerprint as the last run that reconciled it read it.
//! The freshness check compares the SIS now with these to find the courses to reconcile between full cycles; kept
//! in the database so that a restart or a new leader does not start blind (and does not reconcile every course).

use std::collections::{BTreeSet, HashMap};

use sqlx::PgPool;

use super::DbError;

/// SIS course id → fingerprint (see [`crate::sis::course_fingerprints`]).
pub type Fingerprints = HashMap<String, String>;

#[derive(Clone)]
pub struct CourseFingerprints {
    pool: PgPool,
}

impl CourseFingerprints {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The recorded fingerprints; empty before the first run that recorded any.
    pub async fn load(&self) -> Result<Fingerprints, DbError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT course_id, fingerprint FROM rostersync.course_fingerprints")
                .fetch_all(&self.pool)
                .await
                .map_err(DbError::query("reading the course fingerprints"))?;
        Ok(rows.into_iter().collect())
    }

    /// Records what run `run_id` read: every course (`scope` None, a full run: courses gone from the SIS are
    /// forgotten) or the courses of its scope.
    pub async fn record(
        &self,
        run_id: &str,
        read: &Fingerprints,
        scope: Option<&BTreeSet<String>>,
    ) -> Result<(), DbError> {
        let err = DbError::query;
        let (courses, prints): (Vec<&str>, Vec<&str>) = read
            .iter()
            .filter(|(course, _)| scope.is_none_or(|s| s.contains(*course)))
            .map(|(c, f)| (c.as_str(), f.as_str()))
            .unzip();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(err("recording course fingerprints"))?;
        match scope {
            None => sqlx::query(
                "DELETE FROM rostersync.course_fingerprints WHERE NOT (course_id = ANY($1))",
            )
            .bind(&courses),
            Some(scope) => sqlx::query(
                "DELETE FROM rostersync.course_fingerprints \
                 WHERE course_id = ANY($1) AND NOT (course_id = ANY($2))",
            )
            .bind(scope.iter().map(String::as_str).collect::<Vec<_>>())
            .bind(&courses),
        }
        .execute(&mut *tx)
        .await
        .map_err(err("forgetting course fingerprints"))?;
        sqlx::query(
            "INSERT INTO rostersync.course_fingerprints (course_id, fingerprint, run_id) \
             SELECT c, f, $3 FROM unnest($1::text[], $2::text[]) AS t(c, f) \
             ON CONFLICT (course_id) DO UPDATE \
             SET fingerprint = EXCLUDED.fingerprint, run_id = EXCLUDED.run_id, updated_at = now() \
             WHERE course_fingerprints.fingerprint IS DISTINCT FROM EXCLUDED.fingerprint",
        )
        .bind(&courses)
        .bind(&prints)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(err("recording course fingerprints"))?;
        tx.commit()
            .await
            .map_err(err("recording course fingerprints"))?;
        Ok(())
    }
}

/// The courses whose SIS rows differ between `recorded` and `now`: changed, new, or gone.
pub fn changed_courses(recorded: &Fingerprints, now: &Fingerprints) -> BTreeSet<String> {
    let changed = now
        .iter()
        .filter(|(course, print)| recorded.get(*course) != Some(*print))
        .map(|(course, _)| course.clone());
    let gone = recorded
        .keys()
        .filter(|course| !now.contains_key(*course))
        .cloned();
    changed.chain(gone).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prints(pairs: &[(&str, &str)]) -> Fingerprints {
        pairs
            .iter()
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .collect()
    }

    #[test]
    fn changed_new_and_gone_courses_are_changed_and_the_same_are_not() {
        let recorded = prints(&[("A", "1:1"), ("B", "2:5"), ("C", "1:9")]);
        let now = prints(&[("A", "1:1"), ("B", "2:6"), ("D", "1:3")]);
        let changed: Vec<_> = changed_courses(&recorded, &now).into_iter().collect();
        assert_eq!(changed, ["B", "C", "D"]);
        assert!(changed_courses(&now, &now).is_empty());
    }
}
