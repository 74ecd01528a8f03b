//! Fuzzes configuration parsing: any text is either a configuration or an error naming
//! the problem, never a panic.
#![no_main]

use cella_runtime::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Config::from_json(text, Path::new("/nonexistent")) {
            assert!(!e.to_string().is_empty());
        }
    }
});
