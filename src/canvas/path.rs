//! Ids in URL paths (facts §2). SIS ids go as `<column>:<value>` with the value percent-encoded as UTF-8, every
//! byte but unreserved ASCII escaped: `/` would split the path, `.` could make a segment end in `.json`, `%`, `#`,
//! `?` and spaces would change the URL's meaning.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// `sis_course_id:CS%2F101%2E11%C3%A9` for `CS/101.11é`.
pub fn sis_segment(column: &str, value: &str) -> String {
    format!("{column}:{}", utf8_percent_encode(value, SEGMENT))
}

/// Percent-encodes one path segment.
pub fn encode_segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_canvas_docs_example() {
        assert_eq!(
            sis_segment("sis_course_id", "CS/101.11é"),
            "sis_course_id:CS%2F101%2E11%C3%A9"
        );
        assert_eq!(
            sis_segment("sis_user_id", "a b%#?"),
            "sis_user_id:a%20b%25%23%3F"
        );
        assert_eq!(
            sis_segment("sis_user_id", "plain-id_9~"),
            "sis_user_id:plain-id_9~"
        );
    }
}
