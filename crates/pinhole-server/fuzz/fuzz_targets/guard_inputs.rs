//! The access guard's parsers: method/path classification, client address
//! from X-Real-IP / X-Forwarded-For, Origin vs Host, cookies, ?token=.
//! Input: lines; line 0 = method, line 1 = path?query, then "name: value".
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let method = lines.next().unwrap_or_default();
    let Ok(path) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    let headers: Vec<(&[u8], &[u8])> = lines
        .filter_map(|l| {
            let i = l.iter().position(|&b| b == b':')?;
            Some((&l[..i], l[i + 1..].trim_ascii()))
        })
        .collect();
    pinhole_server::fuzzing::guard_inputs(method, path, &headers, flags & 1 == 1);
});
