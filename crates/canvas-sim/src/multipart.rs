//! Just enough `multipart/form-data` parsing for SIS import uploads (facts §8: the file comes as
//! the `attachment` part).

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (mime, rest) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    rest.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Splits a body into parts; malformed parts are skipped rather than failing the request.
pub fn parse(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut pieces = split(body, &delimiter).into_iter();
    // Whatever precedes the first delimiter is the preamble.
    pieces.next();
    for piece in pieces {
        if piece.starts_with(b"--") {
            break;
        }
        let piece = piece.strip_prefix(b"\r\n").unwrap_or(piece);
        let Some(split_at) = find(piece, b"\r\n\r\n") else {
            continue;
        };
        let (head, rest) = piece.split_at(split_at);
        let data = &rest[4..];
        let data = data.strip_suffix(b"\r\n").unwrap_or(data);
        let head = String::from_utf8_lossy(head);
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: data.to_vec(),
        };
        for line in head.split("\r\n") {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if key.trim().eq_ignore_ascii_case("content-disposition") {
                part.name = disposition_param(value, "name").unwrap_or_default();
                part.filename = disposition_param(value, "filename");
            } else if key.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_string());
            }
        }
        parts.push(part);
    }
    parts
}

fn disposition_param(value: &str, wanted: &str) -> Option<String> {
    value.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        (key.trim() == wanted).then(|| value.trim().trim_matches('"').to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter) {
        pieces.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    pieces.push(rest);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"import_type\"\r\n\r\ninstructure_csv\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"e.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\n1,2\r\n--XyZ--\r\n";
        let ct = "multipart/form-data; boundary=XyZ";
        let parts = parse(body, &boundary(ct).expect("boundary"));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "import_type");
        assert_eq!(parts[0].data, b"instructure_csv");
        assert_eq!(parts[1].filename.as_deref(), Some("e.csv"));
        assert_eq!(parts[1].data, b"a,b\r\n1,2");
    }
}
