//! The JSON bodies of /api/auth/{setup,login,password}.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pinhole_server::fuzzing::auth_body(data);
});
