//! `rostersync pause` / `resume` (CONTRACT v2 "Explain, undo, pause, exceptions, damping"), and [`why_paused`]: the
//! one place that decides whether rostersync is paused now, by an operator's pause (`rostersync.pauses`) or inside a
//! `[[schedule.pause]]` window. A cycle that is paused runs as a dry run and reports why (`prepare`); `apply` is
//! refused (`reconcile::pinned`); the freshness check waits for the next full cycle.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgPool;

use super::time::{TimeError, parse_time};
use crate::config::{PauseWindow, Settings};
use crate::store::DbError;
use crate::store::pauses::{NewPause, Opened, Pause, Pauses};

/// Why rostersync is paused now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paused {
    /// `rostersync pause` (or the pause `undo` leaves).
    Operator(Pause),
    /// The `[[schedule.pause]]` entry `index` of the configuration.
    Window { index: usize, window: PauseWindow },
}

impl Paused {
    /// Who, why and until when, in one line: what a paused cycle reports as `details.paused` and logs.
    pub fn reason(&self) -> String {
        match self {
            Paused::Operator(p) => {
                let mut text = format!("paused by {} since {}", p.paused_by, stamp(p.paused_at));
                if let Some(run) = &p.source_run_id {
                    text.push_str(&format!(" (undo of run {run})"));
                }
                match p.until {
                    Some(until) => text.push_str(&format!(" until {}", stamp(until))),
                    None => text.push_str(" until `rostersync resume`"),
                }
                match p.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                    Some(reason) => text.push_str(&format!(": {reason}")),
                    None => text.push_str(" (no reason given)"),
                }
                text
            }
            Paused::Window { index, window } => format!(
                "paused by the configuration window schedule.pause[{index}] from {} until {}: {}",
                stamp(window.from),
                stamp(window.to),
                window.reason
            ),
        }
    }

    /// What ends it, for the messages of commands refused while paused.
    pub fn how_to_end(&self) -> String {
        match self {
            Paused::Operator(_) => "run `rostersync resume --by NAME` first".into(),
            Paused::Window { index, window } => format!(
                "the window ends at {}; to end it sooner, remove or shorten schedule.pause[{index}] in the \
                 configuration",
                stamp(window.to)
            ),
        }
    }
}

/// The pure decision: an operator's pause in force comes first (it names a person to ask), then the first
/// configuration window open at `now`.
pub fn paused_at(
    now: DateTime<Utc>,
    pause: Option<Pause>,
    windows: &[PauseWindow],
) -> Option<Paused> {
    if let Some(p) = pause {
        return Some(Paused::Operator(p));
    }
    windows
        .iter()
        .enumerate()
        .find(|(_, w)| w.contains(now))
        .map(|(index, w)| Paused::Window {
            index,
            window: w.clone(),
        })
}

/// Whether rostersync is paused now (by the database's clock), and why. Cycles and `apply` ask this, nothing else.
pub async fn why_paused(db: &PgPool, settings: &Settings) -> Result<Option<Paused>, DbError> {
    let (pause, now) = Pauses::new(db.clone()).in_force().await?;
    Ok(paused_at(now, pause, &settings.schedule.pauses))
}

/// Why `pause` or `resume` could not do its job. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("--by needs a name: who {0} rostersync (recorded with the pause)")]
    NoName(&'static str),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error(
        "--until {until} is not in the future (the database's clock says {now}): give a later time, or leave \
         --until out to pause until `rostersync resume`"
    )]
    UntilPassed { until: String, now: String },
    #[error(
        "rostersync is already {reason}. Nothing changed: to pause with another reason or end time, run \
         `rostersync resume --by NAME` first, then `rostersync pause` again"
    )]
    AlreadyPaused { reason: String },
    #[error(
        "rostersync is not paused by an operator, and no brake trip is waiting: nothing to resume{detail}"
    )]
    NotPaused { detail: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// `rostersync pause`: opens a pause; returns the confirmation line.
pub async fn pause(
    settings: &Settings,
    by: Option<&str>,
    reason: Option<&str>,
    until: Option<&str>,
) -> Result<String, PauseError> {
    let by = name(by, "paused")?;
    let until = until.map(|u| parse_time("--until", u)).transpose()?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let db = connect(settings).await?;
    let paused_as = crate::store::runs::approved_as(&db).await?;
    let opened = Pauses::new(db.clone())
        .open(&NewPause {
            by,
            reason,
            until,
            source_run_id: None,
            paused_as: &paused_as,
        })
        .await?;
    let pause = match opened {
        Opened::Paused(p) => p,
        Opened::AlreadyPaused(p) => {
            return Err(PauseError::AlreadyPaused {
                reason: Paused::Operator(p).reason(),
            });
        }
        Opened::UntilPassed { now } => {
            return Err(PauseError::UntilPassed {
                until: until.map(stamp).unwrap_or_default(),
                now: stamp(now),
            });
        }
    };
    Ok(format!(
        "{}. Cycles plan and audit but change nothing in Canvas meanwhile; `rostersync resume --by NAME` ends it",
        Paused::Operator(pause).reason()
    ))
}

/// `rostersync resume`: ends the operator's pause in force, and clears the brake's sticky trip (CONTRACT v2 "The
/// brake": resume is one of the two ways an operator acts on a trip). Returns the confirmation line.
pub async fn resume(settings: &Settings, by: Option<&str>) -> Result<String, PauseError> {
    let by = name(by, "resumed")?;
    let db = connect(settings).await?;
    let resumed_as = crate::store::runs::approved_as(&db).await?;
    let pauses = Pauses::new(db.clone());
    let ended = pauses.resume(by, &resumed_as).await?;
    let trips = crate::store::Runs::new(db.clone())
        .clear_trips(None, by)
        .await?;
    let window = why_paused(&db, settings).await?;
    if ended.is_empty() && trips == 0 {
        let detail = match &window {
            Some(w @ Paused::Window { .. }) => format!(
                ". Cycles are {}; resume does not end a configuration window: {}",
                w.reason(),
                w.how_to_end()
            ),
            _ => match pauses.last_ended().await? {
                Some(p) => format!(" (the last pause, by {}, {})", p.paused_by, ended_how(&p)),
                None => String::new(),
            },
        };
        return Err(PauseError::NotPaused { detail });
    }
    let mut done: Vec<String> = ended
        .iter()
        .map(|p| {
            format!(
                "ended the pause by {} since {}",
                p.paused_by,
                stamp(p.paused_at)
            )
        })
        .collect();
    if trips > 0 {
        done.push("cleared the brake's trip (the next cycle decides afresh)".into());
    }
    let next = match &window {
        Some(w) => format!("cycles are still {}", w.reason()),
        None => "the next cycle changes Canvas again".into(),
    };
    Ok(format!("resumed by {by}: {}; {next}", done.join(", ")))
}

fn ended_how(p: &Pause) -> String {
    match (&p.resumed_by, p.resumed_at, p.until) {
        (Some(by), Some(at), _) => format!("was resumed by {by} at {}", stamp(at)),
        (_, _, Some(until)) => format!("ran out at {}", stamp(until)),
        _ => "is over".into(),
    }
}

/// The `--by` name, required and not blank.
fn name<'a>(by: Option<&'a str>, verb: &'static str) -> Result<&'a str, PauseError> {
    by.map(str::trim)
        .filter(|b| !b.is_empty())
        .ok_or(PauseError::NoName(verb))
}

async fn connect(settings: &Settings) -> Result<PgPool, DbError> {
    let db = crate::store::connect("rostersync", &settings.database.url, 2).await?;
    crate::store::migrate(&db).await?;
    Ok(db)
}

/// A time as the messages show it: RFC 3339, seconds, UTC.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_time("test", s).expect("time")
    }

    fn window(from: &str, to: &str, reason: &str) -> PauseWindow {
        PauseWindow {
            from: at(from),
            to: at(to),
            reason: reason.into(),
        }
    }

    fn pause(until: Option<&str>, reason: Option<&str>) -> Pause {
        Pause {
            id: 1,
            paused_by: "alice".into(),
            reason: reason.map(str::to_owned),
            paused_at: at("2026-12-01T07:00:00Z"),
            until: until.map(at),
            source_run_id: None,
            resumed_by: None,
            resumed_at: None,
        }
    }

    #[test]
    fn a_window_holds_from_its_start_up_to_but_not_at_its_end() {
        let windows = [window("2026-07-01", "2026-07-15", "summer rollover")];
        assert_eq!(paused_at(at("2026-06-30T23:59:59Z"), None, &windows), None);
        for inside in ["2026-07-01T00:00:00Z", "2026-07-14T23:59:59Z"] {
            let p = paused_at(at(inside), None, &windows).expect(inside);
            assert_eq!(
                p.reason(),
                "paused by the configuration window schedule.pause[0] from 2026-07-01T00:00:00Z until \
                 2026-07-15T00:00:00Z: summer rollover"
            );
        }
        assert_eq!(paused_at(at("2026-07-15T00:00:00Z"), None, &windows), None);
    }

    #[test]
    fn the_first_open_window_is_named_by_its_index() {
        let windows = [
            window("2026-01-01", "2026-01-02", "new year"),
            window("2026-07-01", "2026-08-01", "summer"),
            window("2026-07-10", "2026-07-20", "overlap"),
        ];
        match paused_at(at("2026-07-12"), None, &windows) {
            Some(Paused::Window { index, window }) => {
                assert_eq!((index, window.reason.as_str()), (1, "summer"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_operators_pause_comes_before_a_window_and_says_who_why_and_until_when() {
        let windows = [window("2026-07-01", "2026-07-15", "summer")];
        let p = paused_at(
            at("2026-07-02"),
            Some(pause(Some("2026-12-02"), Some(" rollover "))),
            &windows,
        )
        .expect("paused");
        assert_eq!(
            p.reason(),
            "paused by alice since 2026-12-01T07:00:00Z until 2026-12-02T00:00:00Z: rollover"
        );
        assert!(p.how_to_end().contains("rostersync resume --by NAME"));
        let open_ended = Paused::Operator(pause(None, None)).reason();
        assert_eq!(
            open_ended,
            "paused by alice since 2026-12-01T07:00:00Z until `rostersync resume` (no reason given)"
        );
    }

    #[test]
    fn a_blank_by_is_no_name() {
        assert!(matches!(
            name(Some("  "), "paused"),
            Err(PauseError::NoName(_))
        ));
        assert!(matches!(name(None, "resumed"), Err(PauseError::NoName(_))));
        assert_eq!(name(Some(" bob "), "resumed").expect("name"), "bob");
    }
}
