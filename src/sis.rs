//! Reads the SIS: `sis.enrollments_query` streamed row by row, and each role rule's `users_query`.
//!
//! Both run inside a READ ONLY transaction, so a query that would write (`DELETE ... RETURNING`) fails instead
//! of changing the SIS. The result's columns are checked before the first row is read: a query with a missing or
//! non-text column is a configuration error at once, never "0 usable rows".

use std::collections::HashMap;

use futures::TryStreamExt;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Column, Executor, PgPool, Row, SqlSafeStr, Type, TypeInfo};

use crate::domain::sis_row::SisRowRef;

#[derive(Debug, thiserror::Error)]
pub enum SisError {
    #[error("{what}: the query's result must have text column(s) {expected}; {problem}")]
    Columns {
        what: String,
        expected: String,
        problem: String,
    },
    #[error("{what} failed on the SIS database: {message}")]
    Query { what: String, message: String },
}

pub const ENROLLMENT_COLUMNS: [&str; 5] = ["user_id", "course_id", "section_id", "role", "status"];
/// `target.kind = "openedx"`: the curriculum of a program enrollment that must be created (CONTRACT v2).
pub const CURRICULUM_COLUMN: &str = "curriculum_uuid";

fn query_error(what: &str) -> impl Fn(sqlx::Error) -> SisError + '_ {
    move |e| SisError::Query {
        what: what.to_owned(),
        message: match &e {
            sqlx::Error::Database(db) => db.message().to_owned(),
            other => other.to_string(),
        },
    }
}

/// Checks the named columns exist and are text-compatible; returns their positions.
async fn check_columns<'c>(
    conn: impl Executor<'c, Database = sqlx::Postgres>,
    query: &str,
    what: &str,
    wanted: &[&str],
) -> Result<Vec<usize>, SisError> {
    let described = conn
        .describe(AssertSqlSafe(query.to_owned()).into_sql_str())
        .await
        .map_err(query_error(what))?;
    let columns = described.columns();
    let expected = wanted.join(", ");
    let mut positions = Vec::with_capacity(wanted.len());
    for name in wanted {
        let Some(col) = columns.iter().find(|c| c.name() == *name) else {
            let found: Vec<&str> = columns.iter().map(|c| c.name()).collect();
            return Err(SisError::Columns {
                what: what.to_owned(),
                expected,
                problem: format!(
                    "column `{name}` is missing (the result has: {})",
                    found.join(", ")
                ),
            });
        };
        if !<String as Type<sqlx::Postgres>>::compatible(col.type_info()) {
            return Err(SisError::Columns {
                what: what.to_owned(),
                expected,
                problem: format!(
                    "column `{name}` is {}, not text (cast it: `{name}::text`)",
                    col.type_info().name()
                ),
            });
        }
        positions.push(col.ordinal());
    }
    Ok(positions)
}

/// Every SIS read: a READ ONLY transaction (a query that writes fails), whose statements PostgreSQL cancels after
/// `sis.statement_timeout_secs` (a stuck SIS ends the cycle with that error instead of holding it forever).
async fn begin_read_only<'c>(
    pool: &PgPool,
    what: &str,
    timeout: Duration,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, SisError> {
    let mut tx = pool.begin().await.map_err(query_error(what))?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(query_error(what))?;
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis().max(1)
    )))
    .execute(&mut *tx)
    .await
    .map_err(query_error(what))?;
    Ok(tx)
}

/// Streams the enrollment rows into `on_row`; returns how many were read.
pub async fn read_enrollments(
    pool: &PgPool,
    query: &str,
    timeout: Duration,
    mut on_row: impl FnMut(SisRowRef<'_>),
) -> Result<u64, SisError> {
    const WHAT: &str = "sis.enrollments_query";
    let mut tx = begin_read_only(pool, WHAT, timeout).await?;
    let pos = check_columns(&mut *tx, query, WHAT, &ENROLLMENT_COLUMNS).await?;
    // The optional sixth column (Open edX's curriculum): read when the query has it, checked like the others.
    let curriculum = match check_columns(&mut *tx, query, WHAT, &[CURRICULUM_COLUMN]).await {
        Ok(p) => p.first().copied(),
        Err(SisError::Columns { problem, .. }) if problem.contains("is missing") => None,
        Err(e) => return Err(e),
    };
    let mut count = 0u64;
    {
        let mut rows = sqlx::query(AssertSqlSafe(query.to_owned())).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.map_err(query_error(WHAT))? {
            // Decoded in place (no copy of the text); the callback copies what it keeps.
            let get = |i: usize| row.try_get::<Option<&str>, _>(pos[i]).ok().flatten();
            on_row(SisRowRef {
                user_id: get(0),
                course_id: get(1),
                section_id: get(2),
                role: get(3),
                status: get(4),
                curriculum_uuid: curriculum
                    .and_then(|i| row.try_get::<Option<&str>, _>(i).ok().flatten()),
            });
            count += 1;
        }
    }
    tx.rollback().await.map_err(query_error(WHAT))?;
    Ok(count)
}

/// Runs a role rule's `users_query` (first column, text) and returns the non-empty user ids.
pub async fn read_rule_users(
    pool: &PgPool,
    rule_name: &str,
    query: &str,
    timeout: Duration,
) -> Result<Vec<String>, SisError> {
    let what = format!("role rule `{rule_name}`: users_query");
    let mut tx = begin_read_only(pool, &what, timeout).await?;
    let described = (&mut *tx)
        .describe(AssertSqlSafe(query.to_owned()).into_sql_str())
        .await
        .map_err(query_error(&what))?;
    let Some(first) = described.columns().first() else {
        return Err(SisError::Columns {
            what,
            expected: "one".into(),
            problem: "the query returns no columns".into(),
        });
    };
    if !<String as Type<sqlx::Postgres>>::compatible(first.type_info()) {
        return Err(SisError::Columns {
            what,
            expected: "one".into(),
            problem: format!(
                "its first column `{}` is {}, not text",
                first.name(),
                first.type_info().name()
            ),
        });
    }
    let rows = sqlx::query(AssertSqlSafe(query.to_owned()))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&what))?;
    tx.rollback().await.map_err(query_error(&what))?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<Option<String>, _>(0).ok().flatten())
        .filter(|s| !s.trim().is_empty())
        .collect())
}

/// Checks, without reading rows, that `sis.enrollments_query` is a read-only query returning the five text columns.
/// Wrapping it as a subquery makes PostgreSQL refuse anything but a plain query (a `DELETE ... RETURNING` is not
/// allowed there), and `LIMIT 0` runs it without reading the table.
pub async fn check_enrollments_query(
    pool: &PgPool,
    query: &str,
    timeout: Duration,
) -> Result<(), SisError> {
    const WHAT: &str = "sis.enrollments_query";
    let wrapped = format!(
        "SELECT * FROM ({}\n) AS rostersync_check LIMIT 0",
        query.trim().trim_end_matches(';')
    );
    let mut tx = begin_read_only(pool, WHAT, timeout).await?;
    check_columns(&mut *tx, &wrapped, WHAT, &ENROLLMENT_COLUMNS).await?;
    sqlx::query(AssertSqlSafe(wrapped))
        .execute(&mut *tx)
        .await
        .map_err(query_error(WHAT))?;
    tx.rollback().await.map_err(query_error(WHAT))?;
    Ok(())
}

/// The SIS course id of the first row `sis.enrollments_query` returns (for `check`'s probes), without reading more.
pub async fn first_course(
    pool: &PgPool,
    query: &str,
    timeout: Duration,
) -> Result<Option<String>, SisError> {
    const WHAT: &str = "sis.enrollments_query";
    let wrapped = format!(
        "SELECT course_id FROM ({}\n) AS rostersync_check WHERE course_id IS NOT NULL LIMIT 1",
        query.trim().trim_end_matches(';')
    );
    let mut tx = begin_read_only(pool, WHAT, timeout).await?;
    let course: Option<Option<String>> = sqlx::query_scalar(AssertSqlSafe(wrapped))
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(WHAT))?;
    tx.rollback().await.map_err(query_error(WHAT))?;
    Ok(course.flatten())
}

/// Whether at least one row of `sis.enrollments_query` names this SIS course (a *managed course*, CONTRACT.md), read
/// as a subquery in a READ ONLY transaction: PostgreSQL stops at the first matching row.
pub async fn names_course(
    pool: &PgPool,
    query: &str,
    timeout: Duration,
    course_id: &str,
) -> Result<bool, SisError> {
    const WHAT: &str = "sis.enrollments_query (is the course managed?)";
    let wrapped = format!(
        "SELECT EXISTS (SELECT 1 FROM ({}\n) AS rostersync_check WHERE course_id::text = $1)",
        query.trim().trim_end_matches(';')
    );
    let mut tx = begin_read_only(pool, WHAT, timeout).await?;
    let named: bool = sqlx::query_scalar(AssertSqlSafe(wrapped))
        .bind(course_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error(WHAT))?;
    tx.rollback().await.map_err(query_error(WHAT))?;
    Ok(named)
}

/// Each SIS course's fingerprint: how many rows `sis.enrollments_query` returns for it and the sum of their
/// hashes (`count:sum`), computed by PostgreSQL so that only one short row per course crosses the network. The
/// sum does not depend on the order rows come in, and any change to a row (a new status, a new section), an added
/// or a removed row changes it. Rows with no `course_id` are the course `""`.
///
/// A row's hash is the first 60 bits of the MD5 of its five columns joined with a separator that cannot appear in
/// SIS ids (NULL spelled apart from ''), so fingerprints are stable across PostgreSQL and rostersync versions.
pub async fn course_fingerprints(
    pool: &PgPool,
    query: &str,
    timeout: Duration,
) -> Result<HashMap<String, String>, SisError> {
    const WHAT: &str = "sis.enrollments_query (freshness check)";
    let column = |c: &str| format!("coalesce('v' || q.{c}::text, 'n')");
    let row_text = ENROLLMENT_COLUMNS
        .iter()
        .map(|c| column(c))
        .collect::<Vec<_>>()
        .join(" || chr(31) || ");
    let wrapped = format!(
        "SELECT coalesce(q.course_id::text, '') AS course, \
                count(*)::text || ':' || sum(('x' || substr(md5({row_text}), 1, 15))::bit(60)::bigint)::text AS fp \
         FROM ({}\n) AS q GROUP BY 1",
        query.trim().trim_end_matches(';')
    );
    let mut tx = begin_read_only(pool, WHAT, timeout).await?;
    let rows = sqlx::query(AssertSqlSafe(wrapped))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(WHAT))?;
    tx.rollback().await.map_err(query_error(WHAT))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get::<String, _>(0).ok()?,
                r.try_get::<String, _>(1).ok()?,
            ))
        })
        .collect())
}

/// The distinct SIS course ids `sis.enrollments_query` returns for one user (case-insensitively under
/// `sis_login_id`), and, of `courses`, those the query names at all (the managed ones): for `explain`.
pub async fn courses_of_user(
    pool: &PgPool,
    query: &str,
    timeout: Duration,
    user: &str,
    case_insensitive: bool,
    courses: &[String],
) -> Result<(Vec<String>, Vec<String>), SisError> {
    const WHAT: &str = "sis.enrollments_query (explain)";
    let inner = query.trim().trim_end_matches(';');
    let user_match = if case_insensitive {
        "lower(q.user_id::text) = lower($1)"
    } else {
        "q.user_id::text = $1"
    };
    let mut tx = begin_read_only(pool, WHAT, timeout).await?;
    let own: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT DISTINCT q.course_id::text FROM ({inner}\n) AS q WHERE {user_match} AND q.course_id IS NOT NULL"
    )))
    .bind(user)
    .fetch_all(&mut *tx)
    .await
    .map_err(query_error(WHAT))?;
    let managed: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT DISTINCT q.course_id::text FROM ({inner}\n) AS q WHERE q.course_id::text = ANY($1)"
    )))
    .bind(courses)
    .fetch_all(&mut *tx)
    .await
    .map_err(query_error(WHAT))?;
    tx.rollback().await.map_err(query_error(WHAT))?;
    Ok((own, managed))
}
