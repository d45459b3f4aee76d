//! What a WHIP endpoint answers a publisher: the 201's `Location` (resolved
//! against the endpoint) and the SDP answer (taken by our publisher, i.e.
//! str0m's SDP parser and our payload-type choice): nothing may panic.
//! A publisher (a DTLS context: ~0.2 s under ASan) is made only for an
//! answer that parses, so most inputs cost microseconds.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pinhole_push::http::{resolve, Origin};
use pinhole_webrtc::publish::{Answer, Publisher};
use pinhole_webrtc::session::Shared;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (location, answer) = text.split_once('\n').unwrap_or((text, ""));
    let origin = Origin {
        tls: true,
        host: "whip.example".into(),
        port: 443,
    };
    let _ = resolve(&origin, "/live/whip?x=1", location);
    thread_local! {
        static SHARED: Shared = Shared::new(Vec::new(), Instant::now());
    }
    let Ok(answer) = Answer::parse(answer) else {
        return;
    };
    SHARED.with(|shared| {
        let local = ["127.0.0.1:40000".parse().unwrap()];
        if let Ok((mut p, _offer)) = Publisher::offer(shared, &local, true, 0) {
            let _ = p.accept(answer, 0);
            let _ = p.poll(1_000);
        }
    });
});
