//! `Link` header values as a server (or a proxy in front of it) might send them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rostersync::canvas::link::{find, parse};

fuzz_target!(|data: &[u8]| {
    // reqwest hands the client a header value's bytes; the client reads it only as UTF-8 text.
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let links = parse(header);
    for rel in ["next", "last", "current", "first", "prev"] {
        if let Some(url) = find(&links, rel) {
            assert!(links.iter().any(|l| l.url == url));
        }
    }
});
