//! `rostersync except add|list|remove` (CONTRACT v2): enrollments rostersync never touches.
//!
//! An exception names a user (as `sis.enrollments_query` names them) and one managed course or every course; until
//! it expires or is removed, each cycle leaves that user's enrollments there exactly as they are (see
//! `domain::decide`). Adding and removing write `rostersync.exceptions` only, whose rows are never deleted, and log
//! who did it (the typed name and who actually ran the command); the daemon need not run.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use sqlx::PgPool;
use tracing::info;

use super::time::{TimeError, parse_time};
use crate::config::Settings;
use crate::sis::SisError;
use crate::store::exceptions::{Exception, Exceptions, NewException, Removal};
use crate::store::{self, DbError};

#[derive(Debug, Subcommand)]
pub enum ExceptCommand {
    /// Leave a user's enrollments in one course (or every course) exactly as they are; prints the new id.
    Add {
        /// The user's SIS id, as `sis.enrollments_query` names users.
        #[arg(long, value_name = "ID")]
        user: String,
        /// A managed SIS course id; without it, every course.
        #[arg(long, value_name = "ID")]
        course: Option<String>,
        /// Who asks for the exception; kept with it.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Why; kept with it.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// When it stops applying by itself: RFC 3339 (2026-12-01T07:00:00Z) or a date (midnight UTC).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// The exceptions in force now.
    List {
        /// Every exception ever added, expired and removed ones too.
        #[arg(long)]
        all: bool,
    },
    /// End an exception: from the next cycle that user's enrollments there follow the SIS again.
    Remove {
        /// The exception's id (printed by `except add`, shown by `except list`).
        id: String,
        /// Who ends it; kept with it.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExceptError {
    #[error("--by needs a name: who {0} this exception (it is kept with it)")]
    NoBy(&'static str),
    #[error(
        "--reason needs a text: why rostersync must leave these enrollments alone (it is kept with the exception)"
    )]
    NoReason,
    #[error(
        "--user `{0}` is not a SIS user id: give the id as sis.enrollments_query returns it, without surrounding spaces"
    )]
    BadUser(String),
    #[error(
        "--course `{0}` is not a SIS course id: give it as sis.enrollments_query returns it, without surrounding spaces"
    )]
    BadCourse(String),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error(
        "--until {0} is not in the future: give a later time, or leave --until out for an exception that lasts \
         until `rostersync except remove`"
    )]
    UntilPassed(String),
    #[error(
        "course `{0}` is not managed: no row of sis.enrollments_query names it, so rostersync does not touch its \
         enrollments anyway. Check the SIS course id, or leave --course out to except the user in every course"
    )]
    CourseNotManaged(String),
    #[error(
        "`{0}` is not an exception id: give the number `except add` printed (`rostersync except list --all` shows \
         every exception)"
    )]
    BadId(String),
    #[error("exception {0} is unknown: `rostersync except list --all` shows every exception")]
    UnknownId(i64),
    #[error(
        "exception {id} was already removed by {by} at {at}; nothing to do (`rostersync except list --all` shows it)"
    )]
    AlreadyRemoved { id: i64, by: String, at: String },
    #[error(transparent)]
    Sis(#[from] SisError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Runs one `except` subcommand.
pub async fn run(settings: Settings, command: ExceptCommand) -> Result<(), ExceptError> {
    match command {
        ExceptCommand::Add {
            user,
            course,
            by,
            reason,
            until,
        } => {
            let by = required(by).ok_or(ExceptError::NoBy("asks for"))?;
            let reason = required(reason).ok_or(ExceptError::NoReason)?;
            if !is_id(&user) {
                return Err(ExceptError::BadUser(user));
            }
            if let Some(c) = course.as_deref().filter(|c| !is_id(c)) {
                return Err(ExceptError::BadCourse(c.to_owned()));
            }
            let until = until
                .as_deref()
                .map(|t| parse_time("--until", t))
                .transpose()?;
            if until.is_some_and(|t| t <= Utc::now()) {
                return Err(ExceptError::UntilPassed(show_time(until)));
            }
            let db = connect(&settings).await?;
            if let Some(course) = &course {
                check_managed(&settings, &db, course).await?;
            }
            let new = NewException {
                user_id: &user,
                course_id: course.as_deref(),
                reason: &reason,
                created_by: &by,
                expires_at: until,
            };
            // The database clock decides expiry at each cycle; it decides "in the past" here too.
            let added = Exceptions::new(db.clone())
                .add(&new)
                .await?
                .ok_or_else(|| ExceptError::UntilPassed(show_time(until)))?;
            info!(
                exception.id = added.id,
                user = %added.user_id,
                course = added.course_id.as_deref().unwrap_or("(every course)"),
                expires_at = %show_time(added.expires_at),
                created_by = %added.created_by,
                created_as = %store::runs::approved_as(&db).await?,
                reason = %added.reason,
                "exception added: rostersync leaves these enrollments as they are"
            );
            println!("{}", added.id);
            eprintln!(
                "exception {} added: rostersync leaves {}'s enrollments {} as they are {}; \
                 `rostersync except remove {} --by NAME` ends it",
                added.id,
                added.user_id,
                scope(&added),
                match added.expires_at {
                    Some(_) => format!("until {}", show_time(added.expires_at)),
                    None => "until removed".into(),
                },
                added.id
            );
        }
        ExceptCommand::List { all } => {
            let db = connect(&settings).await?;
            let list = Exceptions::new(db).list(all).await?;
            print!("{}", render_list(&list, all));
        }
        ExceptCommand::Remove { id, by } => {
            let by = required(by).ok_or(ExceptError::NoBy("removes"))?;
            let id: i64 = id
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ExceptError::BadId(id))?;
            let db = connect(&settings).await?;
            match Exceptions::new(db.clone()).remove(id, &by).await? {
                Removal::Removed(e) => {
                    info!(
                        exception.id = e.id,
                        user = %e.user_id,
                        course = e.course_id.as_deref().unwrap_or("(every course)"),
                        removed_by = %by,
                        removed_as = %store::runs::approved_as(&db).await?,
                        "exception removed: the next cycle reconciles these enrollments again"
                    );
                    println!(
                        "exception {} removed: from the next cycle, {}'s enrollments {} follow the SIS again",
                        e.id,
                        e.user_id,
                        scope(&e)
                    );
                }
                Removal::AlreadyRemoved(e) => {
                    return Err(ExceptError::AlreadyRemoved {
                        id,
                        by: e.removed_by.unwrap_or_default(),
                        at: show_time(e.removed_at),
                    });
                }
                Removal::Unknown => return Err(ExceptError::UnknownId(id)),
            }
        }
    }
    Ok(())
}

/// A flag's text with something in it.
fn required(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// An id as a SIS row must carry it (`domain::sis_row`): not empty, no surrounding spaces, no control characters.
fn is_id(value: &str) -> bool {
    !value.is_empty() && value == value.trim() && !value.chars().any(char::is_control)
}

async fn connect(settings: &Settings) -> Result<PgPool, DbError> {
    let db = store::connect("rostersync", &settings.database.url, 2).await?;
    store::migrate(&db).await?;
    Ok(db)
}

/// A course is managed when a SIS row names it (CONTRACT.md); an exception anywhere else would hold nothing.
async fn check_managed(settings: &Settings, db: &PgPool, course: &str) -> Result<(), ExceptError> {
    let sis = &settings.sis;
    let pool = match &sis.url {
        Some(url) if url.expose() != settings.database.url.expose() => {
            store::connect("SIS", url, 1).await?
        }
        _ => db.clone(),
    };
    if crate::sis::names_course(&pool, &sis.enrollments_query, sis.statement_timeout, course)
        .await?
    {
        Ok(())
    } else {
        Err(ExceptError::CourseNotManaged(course.to_owned()))
    }
}

fn show_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

fn scope(e: &Exception) -> String {
    match &e.course_id {
        Some(c) => format!("in course {c}"),
        None => "in every course".into(),
    }
}

/// The list as a table, one exception a line, and a last line saying how to see the rest or how to add one.
fn render_list(list: &[Exception], all: bool) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        [
            "id", "user", "course", "until", "added by", "added at", "reason",
        ]
        .map(String::from)
        .to_vec(),
    ];
    if all {
        rows[0].insert(1, "status".into());
    }
    for e in list {
        let mut row = vec![
            e.id.to_string(),
            e.user_id.clone(),
            e.course_id
                .clone()
                .unwrap_or_else(|| "(every course)".into()),
            e.expires_at
                .map(|t| show_time(Some(t)))
                .unwrap_or_else(|| "(until removed)".into()),
            e.created_by.clone(),
            show_time(Some(e.created_at)),
            e.reason.clone(),
        ];
        if all {
            let status = match (&e.removed_by, e.active) {
                (Some(by), _) => format!("removed by {by} at {}", show_time(e.removed_at)),
                (None, true) => "active".into(),
                (None, false) => "expired".into(),
            };
            row.insert(1, status);
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let width: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    if !list.is_empty() {
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = width[i]);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let n = list.len();
    let plural = if n == 1 { "" } else { "s" };
    let _ = if all {
        let active = list.iter().filter(|e| e.active).count();
        let removed = list.iter().filter(|e| e.removed_at.is_some()).count();
        writeln!(
            out,
            "{n} exception{plural} in all: {active} active, {} expired, {removed} removed",
            n - active - removed
        )
    } else if n == 0 {
        writeln!(
            out,
            "no active exceptions; `rostersync except list --all` shows expired and removed ones, \
             `rostersync except add --user ID [--course ID] --by NAME --reason TEXT [--until TIME]` adds one"
        )
    } else {
        writeln!(
            out,
            "{n} active exception{plural}; `rostersync except list --all` shows expired and removed ones too"
        )
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exception(id: i64, course: Option<&str>, removed: bool, active: bool) -> Exception {
        let at = parse_time("t", "2026-12-01T07:00:00Z").expect("time");
        Exception {
            id,
            user_id: "s1001".into(),
            course_id: course.map(String::from),
            reason: "IEP accommodation".into(),
            created_by: "Dana".into(),
            created_at: at,
            expires_at: None,
            removed_by: removed.then(|| "Lee".into()),
            removed_at: removed.then_some(at),
            active,
        }
    }

    #[test]
    fn ids_must_be_what_a_sis_row_carries() {
        assert!(is_id("s1001"));
        for bad in ["", " s1001", "s1001 ", "s1\n001"] {
            assert!(!is_id(bad), "{bad:?}");
        }
        assert_eq!(required(Some("  ".into())), None);
        assert_eq!(required(Some("Dana".into())).as_deref(), Some("Dana"));
    }

    #[test]
    fn the_list_says_what_each_exception_holds_and_how_to_see_the_rest() {
        let empty = render_list(&[], false);
        assert!(empty.starts_with("no active exceptions") && empty.contains("--all"));
        let active = render_list(&[exception(1, Some("BIO-101"), false, true)], false);
        assert!(active.contains("BIO-101") && active.contains("IEP accommodation"));
        assert!(active.contains("1 active exception;") && active.contains("--all"));
        let all = render_list(
            &[
                exception(1, None, false, true),
                exception(2, None, true, false),
                exception(3, None, false, false),
            ],
            true,
        );
        assert!(all.contains("(every course)"));
        assert!(all.contains("removed by Lee at 2026-12-01T07:00:00Z"));
        assert!(all.contains("expired"));
        assert!(
            all.contains("3 exceptions in all: 1 active, 1 expired, 1 removed"),
            "{all}"
        );
    }
}
