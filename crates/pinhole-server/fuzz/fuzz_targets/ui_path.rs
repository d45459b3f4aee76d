//! UI path sanitising: no input may name a file outside the UI directory
//! (the wrapper asserts the result is relative with only normal components).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = std::str::from_utf8(data) {
        if let Some(rel) = pinhole_server::fuzzing::ui_path(p) {
            assert!(
                !rel.split('/').any(|c| c == ".." || c.starts_with('.')),
                "{rel}"
            );
        }
    }
});
