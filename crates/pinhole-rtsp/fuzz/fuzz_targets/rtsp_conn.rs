//! Bytes from a client, as the server reads them: every message parsed
//! from the stream is fed to one connection's state machine (with a
//! simulated clock moving on), its Authorization header parsed and checked,
//! and every response encoded. Nothing may panic, and a parse must never
//! claim more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_rtsp::auth::{self, Authorization};
use pinhole_rtsp::sdp::MediaDesc;
use pinhole_rtsp::{parse, Config, Conn, Input, Media};

fuzz_target!(|data: &[u8]| {
    let media = Media {
        tracks: vec![
            MediaDesc::H264 {
                sps: vec![0x67, 0x42, 0xc0, 0x1f],
                pps: vec![0x68, 0xce, 0x3c, 0x80],
                fps: Some(30.0),
                width: 320,
                height: 240,
            },
            MediaDesc::Opus { channels: 2 },
        ],
        version: 1,
        addr: "127.0.0.1".into(),
    };
    let cfg = Config {
        path: "/stream".into(),
        timeout_secs: 60,
        udp_server_ports: Some((20000, 20001)),
        multicast: Some(pinhole_rtsp::Multicast {
            group: std::net::Ipv4Addr::new(239, 0, 0, 7),
            port: 5000,
            ttl: 1,
        }),
    };
    let mut conn = Conn::new(cfg, "S".into(), 1, 1);
    let ha1 = auth::ha1("viewer", "pw");
    let mut buf = data;
    let mut now = 0u64;
    loop {
        match parse(buf) {
            Ok(Some((input, n))) => {
                assert!(n > 0 && n <= buf.len());
                buf = &buf[n..];
                now += 7_000_000;
                if let Input::Request(req) = input {
                    let _ = req.cseq();
                    if let Some(Authorization::Digest(d)) =
                        req.header("Authorization").and_then(auth::parse_authorization)
                    {
                        let _ = d.verify(req.method.as_str(), &ha1, "nonce");
                    }
                    let media = (now % 3 != 0).then_some(&media);
                    let reply = conn.handle(&req, media, now);
                    let _ = reply.response.encode(req.cseq().ok().flatten());
                    if let Some(d) = conn.deadline() {
                        let _ = conn.on_timeout(d);
                    }
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
