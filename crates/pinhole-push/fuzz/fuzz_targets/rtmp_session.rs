//! What an RTMP server sends a publisher, after a good handshake, fed in
//! varying pieces through the session (chunk reader, control messages,
//! AMF0 commands): nothing may panic, and what it sends back stays small.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_push::rtmp::session::{PublishParams, Session};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let params = PublishParams {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        stream_key: "cam".into(),
    };
    let mut s = Session::new(params, 0, 1);
    let _ = s.take_output();
    let mut hs = vec![3u8];
    hs.resize(1 + 2 * 1536, 0);
    if s.handle_input(&hs).is_err() {
        return;
    }
    let _ = s.take_output();
    let mut rest = stream;
    let mut step = usize::from(seed) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        if s.handle_input(&rest[..n]).is_err() {
            return;
        }
        // Answers (acks, pongs, commands) are bounded by what came in.
        assert!(s.take_output().len() <= 4096 + 16 * n);
        rest = &rest[n..];
        step = (step * 7 + 3) % 300 + 1;
    }
});
