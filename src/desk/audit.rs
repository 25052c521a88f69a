//! `rostersync audit`: the audit log as a help desk pastes it into a ticket. Filters combine with AND; rows come
//! newest first and are written as they arrive from PostgreSQL, so even the whole log is never held in memory
//! (the table format holds its first [`SIZING_ROWS`] rows, to size its columns).

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use clap::Args;
use futures::TryStreamExt;
use sqlx::{ConnectOptions, PgPool, Postgres, QueryBuilder};

use super::time::{TimeError, parse_time};
use crate::config::Settings;
use crate::store::{AuditOutcome, DbError};

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only this user's rows: the SIS user id, exactly as the SIS has it.
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// Only this course's rows: the SIS course id, exactly.
    #[arg(long, value_name = "ID")]
    pub course: Option<String>,
    /// Only this run's rows: its id, or its last 8 or more characters (the table's RUN column).
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Only rows from this time on: RFC 3339 (2026-12-01T07:00:00Z) or a date (2026-12-01, midnight UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only rows with this outcome: planned, applied, failed, skipped, held or deferred.
    #[arg(long, value_name = "O")]
    pub outcome: Option<String>,
    /// How to print the rows:
    ///   table  aligned columns for a terminal or a ticket; long values are cut with "…"; times in UTC
    ///   csv    a header row, then every column of every row in full (RFC 4180 quoting; NULL is empty)
    ///   json   JSON Lines: one JSON object per line and row, with the same fields as csv (NULL is null)
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "table",
        verbatim_doc_comment
    )]
    pub format: String,
}

/// Checked by the command rather than by clap, so that a wrong value exits 1 like the other filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl Format {
    fn parse(text: &str) -> Result<Format, AuditError> {
        match text {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(AuditError::BadFormat(text.into())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "--outcome `{0}` is not an outcome: use one of planned, applied, failed, skipped, held, deferred"
    )]
    BadOutcome(String),
    #[error("--format `{0}` is not a format: use table, csv or json (JSON Lines)")]
    BadFormat(String),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error(
        "--run `{0}`: no such run in rostersync.sync_runs; `rostersync audit --since 2026-12-01` shows recent \
         runs (RUN column: the last 8 characters of the id), `--format csv` their full ids"
    )]
    UnknownRun(String),
    #[error("--run `{given}` is the end of several runs' ids ({}); give more of it", .matches.join(", "))]
    AmbiguousRun { given: String, matches: Vec<String> },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot write the audit rows: {0}")]
    Write(io::Error),
}

/// The filters, validated; `run` is resolved against `sync_runs` later.
#[derive(Debug, Default)]
struct Filter {
    user: Option<String>,
    /// How the target compares user ids (`--user` matches both spellings).
    identity: crate::domain::UserIdKind,
    course: Option<String>,
    run: Option<String>,
    since: Option<DateTime<Utc>>,
    outcome: Option<AuditOutcome>,
}

impl Filter {
    fn parse(args: &AuditArgs) -> Result<Filter, AuditError> {
        let outcome = match args.outcome.as_deref() {
            None => None,
            Some(o) => {
                Some(AuditOutcome::parse(o).ok_or_else(|| AuditError::BadOutcome(o.into()))?)
            }
        };
        let since = args
            .since
            .as_deref()
            .map(|s| parse_time("--since", s))
            .transpose()?;
        Ok(Filter {
            identity: crate::domain::UserIdKind::SisUserId,
            user: args.user.clone(),
            course: args.course.clone(),
            run: args.run.clone(),
            since,
            outcome,
        })
    }
}

/// Characters of a run id the table shows: the end of a UUIDv7, which is random. Its first characters are a
/// timestamp, the same for every run within about a minute.
const SHORT_RUN: usize = 8;

/// The columns of `csv` and `json`, in order; [`Entry`] declares its fields in this order.
pub const COLUMNS: [&str; 16] = [
    "id",
    "run_id",
    "occurred_at",
    "action",
    "user_id",
    "course_id",
    "section_id",
    "role_before",
    "role_after",
    "state_before",
    "state_after",
    "canvas_enrollment_id",
    "outcome",
    "error",
    "dry_run",
    "approved_by",
];

/// One audit row as printed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
struct Entry {
    id: i64,
    run_id: String,
    occurred_at: DateTime<Utc>,
    action: String,
    user_id: Option<String>,
    course_id: Option<String>,
    section_id: Option<String>,
    role_before: Option<String>,
    role_after: Option<String>,
    state_before: Option<String>,
    state_after: Option<String>,
    canvas_enrollment_id: Option<i64>,
    outcome: String,
    error: Option<String>,
    dry_run: bool,
    approved_by: Option<String>,
}

/// Runs `rostersync audit`: prints the matching rows on stdout, newest first. No row is not an error.
pub async fn run(settings: &Settings, args: &AuditArgs) -> Result<(), AuditError> {
    let format = Format::parse(&args.format)?;
    let mut filter = Filter::parse(args)?;
    filter.identity = crate::target::identity_kind(settings);
    // The query lasts as long as the reader takes (a pipe, a terminal): its duration is no slow statement.
    let pool = crate::store::connect_with("rostersync", &settings.database.url, 2, |o| {
        o.disable_statement_logging()
    })
    .await?;
    if let Some(given) = &filter.run {
        filter.run = Some(resolve_run(&pool, given).await?);
    }
    let out = io::BufWriter::new(io::stdout());
    let printed = match stream(&pool, &filter, format, out).await {
        // A closed pipe (`| head`) ends the output; nothing more to say.
        Err(AuditError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    };
    if printed == 0 && format == Format::Table {
        eprintln!("no audit rows match these filters");
    }
    Ok(())
}

/// A user id as given and as the plan compares it (one value when they are the same).
pub fn spellings(user: &str, identity: crate::domain::UserIdKind) -> Vec<String> {
    let compared = crate::domain::sis_row::user_identity(user, identity).into_owned();
    if compared == user {
        vec![compared]
    } else {
        vec![user.to_owned(), compared]
    }
}

/// A run id as given, or the run whose id ends with it (at least [`SHORT_RUN`] characters).
async fn resolve_run(pool: &PgPool, given: &str) -> Result<String, AuditError> {
    let exact: Option<String> =
        sqlx::query_scalar("SELECT id FROM rostersync.sync_runs WHERE id = $1")
            .bind(given)
            .fetch_optional(pool)
            .await
            .map_err(DbError::query("looking up the run"))?;
    if let Some(id) = exact {
        return Ok(id);
    }
    if given.chars().count() < SHORT_RUN {
        return Err(AuditError::UnknownRun(given.into()));
    }
    let mut matches: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM rostersync.sync_runs WHERE right(id, length($1::text)) = $1::text \
         ORDER BY started_at DESC LIMIT 5",
    )
    .bind(given)
    .fetch_all(pool)
    .await
    .map_err(DbError::query("looking up the run"))?;
    match matches.len() {
        0 => Err(AuditError::UnknownRun(given.into())),
        1 => Ok(matches.remove(0)),
        _ => Err(AuditError::AmbiguousRun {
            given: given.into(),
            matches,
        }),
    }
}

/// Streams the matching rows to `out`; returns how many were written. `--user`, `--course` and `--run` each have
/// an index (`migrations/`), so their rows are found without reading the log; the whole log is read newest first
/// from `audit_log_occurred` without a sort, and `--since` alone is a range of that index.
async fn stream<W: Write>(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    out: W,
) -> Result<u64, AuditError> {
    let mut sink = Sink::start(format, out).map_err(AuditError::Write)?;
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT id, run_id, occurred_at, action, user_id, course_id, section_id, role_before, role_after, \
         state_before, state_after, canvas_enrollment_id, outcome, error, dry_run, approved_by \
         FROM rostersync.audit_log WHERE true",
    );
    if let Some(user) = &filter.user {
        // As given, and as the plan compares it (lower-cased login ids and Open edX keys): changes are recorded
        // under the identity, skipped SIS rows as the SIS wrote them.
        query
            .push(" AND user_id = ANY(")
            .push_bind(spellings(user, filter.identity))
            .push(")");
    }
    if let Some(course) = &filter.course {
        query.push(" AND course_id = ").push_bind(course);
    }
    if let Some(run) = &filter.run {
        query.push(" AND run_id = ").push_bind(run);
    }
    if let Some(since) = filter.since {
        query.push(" AND occurred_at >= ").push_bind(since);
    }
    if let Some(outcome) = filter.outcome {
        query.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    query.push(" ORDER BY occurred_at DESC, id DESC");
    let mut rows = query.build_query_as::<Entry>().fetch(pool);
    let mut count = 0u64;
    while let Some(entry) = rows
        .try_next()
        .await
        .map_err(DbError::query("reading the audit log"))?
    {
        sink.write(entry).map_err(AuditError::Write)?;
        count += 1;
    }
    sink.finish().map_err(AuditError::Write)?;
    Ok(count)
}

enum Sink<W: Write> {
    Table(Table<W>),
    Csv(Box<csv::Writer<W>>),
    Json(W),
}

impl<W: Write> Sink<W> {
    fn start(format: Format, out: W) -> io::Result<Self> {
        Ok(match format {
            Format::Table => Sink::Table(Table::new(out)),
            Format::Csv => {
                // The header is written by hand so that an empty result still has one.
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                w.write_record(COLUMNS).map_err(csv_io)?;
                Sink::Csv(Box::new(w))
            }
            Format::Json => Sink::Json(out),
        })
    }

    fn write(&mut self, entry: Entry) -> io::Result<()> {
        match self {
            Sink::Table(t) => t.write(&entry),
            Sink::Csv(w) => w.serialize(&entry).map_err(csv_io),
            Sink::Json(w) => {
                serde_json::to_writer(&mut *w, &entry)?;
                w.write_all(b"\n")
            }
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Table(t) => t.finish(),
            Sink::Csv(mut w) => w.flush(),
            Sink::Json(mut w) => w.flush(),
        }
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Rows the table holds to size its columns before writing the first line; later rows are cut to those widths.
const SIZING_ROWS: usize = 50;

const HEADER: [&str; 9] = [
    "TIME (UTC)",
    "RUN",
    "ACTION",
    "USER",
    "COURSE",
    "SECTION",
    "CHANGE",
    "OUTCOME",
    "ERROR",
];

/// The widest each column may be; the last one (ERROR) is never padded.
const MAX_WIDTH: [usize; 9] = [19, SHORT_RUN, 12, 24, 20, 20, 44, 8, 60];
const ERROR: usize = 8;

/// Aligned columns, written as rows arrive once the first [`SIZING_ROWS`] have set the widths.
struct Table<W: Write> {
    out: W,
    widths: Option<[usize; 9]>,
    pending: Vec<[String; 9]>,
}

impl<W: Write> Table<W> {
    fn new(out: W) -> Self {
        Table {
            out,
            widths: None,
            pending: Vec::new(),
        }
    }

    fn write(&mut self, entry: &Entry) -> io::Result<()> {
        let cells = cells(entry);
        match self.widths {
            Some(widths) => write_line(&mut self.out, &cells, &widths),
            None => {
                self.pending.push(cells);
                if self.pending.len() >= SIZING_ROWS {
                    self.flush_pending()?;
                }
                Ok(())
            }
        }
    }

    /// Sizes the columns on the rows held so far, and writes the header and those rows.
    fn flush_pending(&mut self) -> io::Result<()> {
        let mut widths = HEADER.map(|h| h.chars().count());
        for cells in &self.pending {
            for ((w, cell), max) in widths.iter_mut().zip(cells).zip(MAX_WIDTH) {
                *w = (*w).max(cell.chars().count().min(max));
            }
        }
        // The last column is not padded: a later row's long error keeps its 60 characters.
        widths[ERROR] = MAX_WIDTH[ERROR];
        write_line(&mut self.out, &HEADER.map(String::from), &widths)?;
        for cells in std::mem::take(&mut self.pending) {
            write_line(&mut self.out, &cells, &widths)?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        if self.widths.is_none() && !self.pending.is_empty() {
            self.flush_pending()?;
        }
        self.out.flush()
    }
}

/// The nine cells of a row, before fitting: the time to the second, the short run id, and the change.
fn cells(e: &Entry) -> [String; 9] {
    let change = change(
        (e.role_before.as_deref(), e.role_after.as_deref()),
        (e.state_before.as_deref(), e.state_after.as_deref()),
    );
    let run_chars = e.run_id.chars().count();
    [
        e.occurred_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        e.run_id
            .chars()
            .skip(run_chars.saturating_sub(SHORT_RUN))
            .collect(),
        e.action.clone(),
        e.user_id.clone().unwrap_or_else(|| "-".into()),
        e.course_id.clone().unwrap_or_else(|| "-".into()),
        e.section_id.clone().unwrap_or_else(|| "(default)".into()),
        change,
        e.outcome.clone(),
        e.error.clone().unwrap_or_default(),
    ]
}

/// Role, then state, each as `before→after` (`StudentEnrollment→TaEnrollment`, `active→completed`) or as the one
/// value known (an enroll's role and state). A part that stays the same is left out when the other one changes.
fn change(role: (Option<&str>, Option<&str>), state: (Option<&str>, Option<&str>)) -> String {
    let moves = |(b, a): (Option<&str>, Option<&str>)| b.is_some() && a.is_some() && a != b;
    let same = |(b, a): (Option<&str>, Option<&str>)| b.is_some() && a == b;
    let mut parts = Vec::new();
    if !(same(role) && moves(state)) {
        parts.push(arrow(role.0, role.1));
    }
    if !(same(state) && moves(role)) {
        parts.push(arrow(state.0, state.1));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

fn arrow(before: Option<&str>, after: Option<&str>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a != b => format!("{b}→{a}"),
        (Some(v), _) | (None, Some(v)) => v.to_owned(),
        (None, None) => String::new(),
    }
}

fn write_line(out: &mut impl Write, cells: &[String; 9], widths: &[usize; 9]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        let text = fit(cell, *width);
        if i + 1 < cells.len() {
            let pad = width.saturating_sub(text.chars().count());
            line.push_str(&text);
            line.extend(std::iter::repeat_n(' ', pad + 2));
        } else {
            line.push_str(&text);
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// One line of at most `width` characters: control characters (a newline in a SIS value) become spaces, and a
/// longer text is cut with "…".
fn fit(text: &str, width: usize) -> String {
    let clean = text.chars().map(|c| if c.is_control() { ' ' } else { c });
    if text.chars().count() <= width {
        return clean.collect();
    }
    let mut cut: String = clean.take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: 7,
            run_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            occurred_at: parse_time("t", "2026-12-01T07:00:00.123456Z").expect("time"),
            action: "change_role".into(),
            user_id: Some("tch7".into()),
            course_id: Some("MATH-101".into()),
            section_id: None,
            role_before: Some("StudentEnrollment".into()),
            role_after: Some("TaEnrollment".into()),
            state_before: Some("active".into()),
            state_after: Some("active".into()),
            canvas_enrollment_id: Some(42),
            outcome: "applied".into(),
            error: None,
            dry_run: false,
            approved_by: None,
        }
    }

    #[test]
    fn csv_fields_follow_the_documented_columns_and_round_trip() {
        let mut e = entry();
        e.error = Some("a, \"quoted\"\nvalue".into());
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&e).expect("serialize");
        let bytes = w.into_inner().expect("flush");
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(r.headers().expect("headers"), COLUMNS.as_slice());
        let record = r.records().next().expect("one row").expect("parse");
        assert_eq!(&record[2], "2026-12-01T07:00:00.123456Z");
        assert_eq!(&record[6], "", "NULL is an empty field");
        assert_eq!(&record[13], "a, \"quoted\"\nvalue");
    }

    #[test]
    fn a_table_row_is_one_line_with_the_change_and_the_short_run_id() {
        let mut e = entry();
        e.error = Some(format!("line one\nline two {}", "x".repeat(100)));
        let c = cells(&e);
        assert_eq!(c[0], "2026-12-01 07:00:00");
        assert_eq!(c[1], "0c1d2e3f4a5b"[4..].to_string());
        assert_eq!(c[5], "(default)");
        assert_eq!(c[6], "StudentEnrollment→TaEnrollment");
        let mut out = Vec::new();
        let mut table = Table::new(&mut out);
        table.write(&e).expect("write");
        table.finish().expect("finish");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("TIME (UTC)           RUN"), "{text}");
        assert!(
            lines[1].ends_with("line one line two xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"),
            "{text}"
        );
        assert_eq!(
            lines[1].split("line one").nth(1).map(|s| s.chars().count()),
            Some(60 - 8)
        );
    }

    #[test]
    fn rows_after_the_first_screenful_keep_the_widths_and_their_error() {
        let mut out = Vec::new();
        let mut table = Table::new(&mut out);
        for _ in 0..SIZING_ROWS {
            table.write(&entry()).expect("write");
        }
        let mut late = entry();
        late.user_id = Some("a-much-longer-user-id-than-before".into());
        late.error = Some("e".repeat(100));
        table.write(&late).expect("write");
        table.finish().expect("finish");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), SIZING_ROWS + 2);
        let last = lines[SIZING_ROWS + 1];
        let column = |line: &str| line.find("MATH-101").map(|i| line[..i].chars().count());
        assert_eq!(column(last), column(lines[1]), "aligned: {text}");
        assert!(last.contains(" a-m…  "), "cut to the sized width: {last}");
        assert!(last.ends_with(&format!("{}…", "e".repeat(59))), "{last}");
    }

    #[test]
    fn changes_read_before_to_after() {
        let s = Some("StudentEnrollment");
        let t = Some("TaEnrollment");
        let (active, completed) = (Some("active"), Some("completed"));
        // An enroll, a removal, a role change, a state change, a skipped row with only a role.
        assert_eq!(
            change((None, s), (None, active)),
            "StudentEnrollment active"
        );
        assert_eq!(
            change((s, None), (active, completed)),
            "StudentEnrollment active→completed"
        );
        assert_eq!(
            change((s, t), (active, active)),
            "StudentEnrollment→TaEnrollment"
        );
        assert_eq!(change((s, s), (completed, active)), "completed→active");
        assert_eq!(change((None, s), (None, None)), "StudentEnrollment");
        assert_eq!(change((None, None), (None, None)), "");
    }

    #[test]
    fn bad_outcome_since_and_format_name_what_is_allowed() {
        let args = |outcome: Option<&str>, since: Option<&str>| AuditArgs {
            user: None,
            course: None,
            run: None,
            since: since.map(Into::into),
            outcome: outcome.map(Into::into),
            format: "table".into(),
        };
        let e = Filter::parse(&args(Some("done"), None))
            .expect_err("done")
            .to_string();
        for o in AuditOutcome::ALL {
            assert!(e.contains(o.as_str()), "{e}");
        }
        let e = Filter::parse(&args(None, Some("yesterday")))
            .expect_err("since")
            .to_string();
        assert!(e.contains("--since") && e.contains("RFC 3339"), "{e}");
        let f = Filter::parse(&args(Some("held"), Some("2026-12-01"))).expect("good");
        assert_eq!(f.outcome, Some(AuditOutcome::Held));
        assert_eq!(
            f.since.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-12-01T00:00:00+00:00")
        );
        assert_eq!(Format::parse("json").expect("json"), Format::Json);
        let e = Format::parse("xml").expect_err("xml").to_string();
        assert!(
            e.contains("`xml`") && e.contains("table, csv or json"),
            "{e}"
        );
    }
}
