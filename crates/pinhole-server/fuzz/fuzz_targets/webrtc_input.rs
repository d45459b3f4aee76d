//! What a WebRTC viewer sends before str0m sees it: the WHEP offer and
//! PATCH fragment (text), the STUN username used to route a datagram, and
//! the ICE-TCP byte stream (RFC 4571 framing), cut at arbitrary points.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pinhole_webrtc::tcp::{frame, Deframer};

fuzz_target!(|data: &[u8]| {
    let _ = pinhole_webrtc::stun::local_ufrag(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pinhole_webrtc::offer::check_offer(text);
        let _ = pinhole_webrtc::offer::parse_fragment(text);
    }
    // The stream in chunks whose sizes come from the data itself; every
    // packet out must be non-empty and re-frame to bytes of the stream.
    let mut d = Deframer::default();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) % 7 + 1).min(rest.len());
        d.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(p) = d.next_packet() {
            assert!(!p.is_empty());
            let f = frame(&p).expect("a packet from the stream fits a frame");
            assert_eq!(f.len(), p.len() + 2);
        }
        assert!(d.room() >= 1);
    }
});
