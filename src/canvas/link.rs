//! `Link` header parsing (facts §3): entries `<URL>; rel="X"` joined by `,`. Links are treated as opaque URLs
//! (bookmark pages cannot be computed), and only followed on the host the token was meant for.

/// One `<url>; rel="..."` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEntry {
    pub url: String,
    pub rels: Vec<String>,
}

/// Parses a `Link` header value. Malformed entries are skipped; the caller decides what a missing `next` means.
pub fn parse(header: &str) -> Vec<LinkEntry> {
    let mut out = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(after_lt) = rest.strip_prefix('<') else {
            break;
        };
        let Some(end) = after_lt.find('>') else {
            break;
        };
        let url = &after_lt[..end];
        let mut params = &after_lt[end + 1..];
        // Parameters run until the next `,` that is not inside quotes.
        let mut in_quotes = false;
        let mut cut = params.len();
        for (i, c) in params.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        let (entry_params, remainder) = params.split_at(cut);
        params = entry_params;
        let mut rels = Vec::new();
        for param in params.split(';') {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("rel") {
                let value = value.trim().trim_matches('"');
                rels.extend(value.split_whitespace().map(|r| r.to_ascii_lowercase()));
            }
        }
        out.push(LinkEntry {
            url: url.trim().to_owned(),
            rels,
        });
        rest = remainder;
    }
    out
}

/// The URL of the first entry with relation `rel`.
pub fn find<'a>(links: &'a [LinkEntry], rel: &str) -> Option<&'a str> {
    links
        .iter()
        .find(|l| l.rels.iter().any(|r| r == rel))
        .map(|l| l.url.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canvas_links_joined_without_space() {
        let h = r#"<https://c.edu/api/v1/courses/1/enrollments?page=first&per_page=10>; rel="current",<https://c.edu/api/v1/courses/1/enrollments?page=bookmark:WzEsMl0&per_page=10>; rel="next",<https://c.edu/api/v1/courses/1/enrollments?page=first&per_page=10>; rel="first""#;
        let links = parse(h);
        assert_eq!(links.len(), 3);
        assert_eq!(
            find(&links, "next"),
            Some("https://c.edu/api/v1/courses/1/enrollments?page=bookmark:WzEsMl0&per_page=10")
        );
        assert_eq!(find(&links, "last"), None);
    }

    #[test]
    fn tolerates_spaces_case_and_garbage() {
        let links = parse(r#" <a>; REL=next , <b>;rel="last first""#);
        assert_eq!(find(&links, "next"), Some("a"));
        assert_eq!(find(&links, "first"), Some("b"));
        for junk in [
            "",
            ",,,",
            "<",
            "<>",
            "no brackets; rel=next",
            "<x>; rel",
            "\u{0}<\u{ff}>",
        ] {
            let _ = parse(junk);
        }
    }
}
