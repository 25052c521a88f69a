//! The configuration parsers on arbitrary text: the whole TOML file (`Settings::from_toml_str`), and the two value
//! checks that have their own grammar, `canvas.base_url` and `schedule.cron`. Errors are expected; a panic is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rostersync::config::{Settings, normalise_base_url, validate_cron};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Settings::from_toml_str(text);
    let _ = normalise_base_url(text, false);
    let _ = normalise_base_url(text, true);
    let _ = validate_cron(text);
});
