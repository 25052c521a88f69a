//! Canvas response bodies: every JSON model the client decodes, and the error-message extraction, on arbitrary
//! bytes (HTML error pages, truncated JSON, objects where arrays are expected, invalid UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rostersync::canvas::error::canvas_message;
use rostersync::canvas::model::{Account, Enrollment, Role, User};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Vec<Enrollment>>(data);
    let _ = serde_json::from_slice::<Enrollment>(data);
    let _ = serde_json::from_slice::<Vec<Role>>(data);
    let _ = serde_json::from_slice::<Role>(data);
    let _ = serde_json::from_slice::<User>(data);
    let _ = serde_json::from_slice::<Account>(data);
    // Capped at 300 characters and an ellipsis. (It may be empty: `{"errors":""}` gives "".)
    let message = canvas_message(data);
    assert!(
        message.chars().count() <= 301,
        "canvas_message caps its output"
    );
});
