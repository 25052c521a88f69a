//! Canvas id forms in path segments and id parameters (canvas-api-facts.md §2).
//!
//! A path segment reaches us still percent-encoded; [`decode_segment`] undoes that, and
//! [`IdRef::parse`] turns the text into a numeric id, a `<column>:<value>` lookup, `hex:` form, or
//! one of the specials (`self`, `default`, `site_admin`). Anything else is "not found", exactly as
//! Canvas answers it.

use percent_encoding::percent_decode_str;

/// Canvas accepts at most 19 digits for a numeric id (a Postgres bigint).
const MAX_NUMERIC_DIGITS: usize = 19;

/// One id as a client wrote it, after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRef {
    /// A Canvas id.
    Canvas(u64),
    /// `<column>:<value>` (or its `hex:` spelling); `column` starts with `sis_`, `lti_`, or is `uuid`.
    Column { column: String, value: String },
    /// `self`, `default`, `site_admin` (which of these an entity accepts is the caller's business).
    Special(String),
}

impl IdRef {
    /// Parses an already percent-decoded id. `None` means Canvas would answer 404.
    pub fn parse(raw: &str) -> Option<IdRef> {
        // §2: leading/trailing whitespace is stripped.
        let text = raw.trim();
        if text.is_empty() {
            return None;
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if text.len() > MAX_NUMERIC_DIGITS {
                return None;
            }
            let id: u64 = text.parse().ok()?;
            // Ids are bigints: anything beyond i64::MAX cannot name a row.
            if id > i64::MAX as u64 {
                return None;
            }
            return Some(IdRef::Canvas(id));
        }
        if matches!(text, "self" | "default" | "site_admin") {
            return Some(IdRef::Special(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("hex:") {
            // §2: `hex:<column>:<hex of the UTF-8 bytes>`, even length, deprecated but accepted.
            let (column, hex_value) = rest.split_once(':')?;
            if !is_lookup_column(column) || hex_value.len() % 2 != 0 {
                return None;
            }
            let bytes = hex::decode(hex_value).ok()?;
            let value = String::from_utf8(bytes).ok()?;
            return Some(IdRef::Column {
                column: column.to_string(),
                value,
            });
        }
        let (column, value) = text.split_once(':')?;
        if !is_lookup_column(column) {
            return None;
        }
        Some(IdRef::Column {
            column: column.to_string(),
            value: value.to_string(),
        })
    }

    /// The numeric id, if this is one.
    pub fn canvas_id(&self) -> Option<u64> {
        match self {
            IdRef::Canvas(id) => Some(*id),
            _ => None,
        }
    }
}

fn is_lookup_column(column: &str) -> bool {
    column == "uuid" || column.starts_with("sis_") || column.starts_with("lti_")
}

/// Percent-decodes one raw path segment. `None` for bytes that are not UTF-8 (→ 404).
pub fn decode_segment(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_with_whitespace() {
        assert_eq!(IdRef::parse(" 42 "), Some(IdRef::Canvas(42)));
        assert_eq!(IdRef::parse("12345678901234567890"), None);
        assert_eq!(IdRef::parse("9999999999999999999"), None);
    }

    #[test]
    fn column_and_hex_forms() {
        assert_eq!(
            IdRef::parse("sis_course_id:CS/101"),
            Some(IdRef::Column {
                column: "sis_course_id".into(),
                value: "CS/101".into()
            })
        );
        let hex = hex::encode("CS/101.11é".as_bytes());
        assert_eq!(
            IdRef::parse(&format!("hex:sis_course_id:{hex}")),
            Some(IdRef::Column {
                column: "sis_course_id".into(),
                value: "CS/101.11é".into()
            })
        );
        assert_eq!(IdRef::parse("hex:sis_course_id:abc"), None);
        assert_eq!(IdRef::parse("course_code:X"), None);
        assert_eq!(IdRef::parse("abc"), None);
        assert_eq!(IdRef::parse(""), None);
    }

    #[test]
    fn percent_decoding_keeps_reserved_characters() {
        assert_eq!(
            decode_segment("CS%2F101%2E11%C3%A9").as_deref(),
            Some("CS/101.11é")
        );
        assert_eq!(decode_segment("%FF"), None);
    }
}
