//! TIME arguments (CONTRACT v2): RFC 3339 (`2026-12-01T07:00:00Z`) or a date (`2026-12-01`, midnight UTC).

use chrono::{DateTime, NaiveDate, Utc};

#[derive(Debug, thiserror::Error)]
#[error(
    "{flag} `{value}` is not a time: use RFC 3339 (2026-12-01T07:00:00Z) or a date (2026-12-01, midnight UTC)"
)]
pub struct TimeError {
    pub flag: &'static str,
    pub value: String,
}

/// Parses a TIME argument given to `flag` (named in the error).
pub fn parse_time(flag: &'static str, value: &str) -> Result<DateTime<Utc>, TimeError> {
    let text = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(TimeError {
        flag,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_dates_parse_and_anything_else_names_the_flag() {
        assert_eq!(
            parse_time("--since", "2026-12-01T07:00:00Z")
                .expect("rfc3339")
                .to_rfc3339(),
            "2026-12-01T07:00:00+00:00"
        );
        assert_eq!(
            parse_time("--since", "2026-12-01T08:00:00+01:00")
                .expect("offset")
                .to_rfc3339(),
            "2026-12-01T07:00:00+00:00"
        );
        assert_eq!(
            parse_time("--until", "2026-12-01")
                .expect("date")
                .to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        for bad in ["yesterday", "2026-13-01", "", "12/01/2026"] {
            let e = parse_time("--until", bad).expect_err(bad).to_string();
            assert!(e.contains("--until") && e.contains("RFC 3339"), "{e}");
        }
    }
}
