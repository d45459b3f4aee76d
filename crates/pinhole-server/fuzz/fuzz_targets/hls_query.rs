//! `_HLS_msn` / `_HLS_part` query parsing on arbitrary query strings.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        let (msn, part) = pinhole_server::fuzzing::hls_query(q);
        // A parsed number must have been in the query.
        if let Some(m) = msn {
            assert!(q.contains(&m.to_string()) || q.contains('+') || q.contains("_HLS_msn=0"));
        }
        let _ = part;
    }
});
