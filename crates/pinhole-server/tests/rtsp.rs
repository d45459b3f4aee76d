//! RTSP against a real server on port 0, with a small client of our own
//! (fan-out, bad input, access). Clients we did not write (ffmpeg, PyAV,
//! GStreamer) are in rtsp_clients.rs.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{post_json, TestServer, ADMIN_PASSWORD};
use pinhole_hub::HubConfig;
use pinhole_server::rtsp::{RtspConfig, RtspListener};
use pinhole_server::ServerConfig;
use rtsp_server::{start_rtsp, wait_for_stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    url: String,
    session: Option<String>,
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            s: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
            cseq: 0,
            url: format!("rtsp://{addr}/stream"),
            session: None,
        }
    }

    async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            _ => false,
        }
    }

    /// The next response, skipping interleaved packets. `None`: closed.
    async fn response(&mut self) -> Option<Resp> {
        loop {
            if self.buf.first() == Some(&b'$') {
                if self.buf.len() >= 4 {
                    let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                    if self.buf.len() >= 4 + len {
                        self.buf.drain(..4 + len);
                        continue;
                    }
                }
            } else if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let clen: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse().expect("length"));
                if self.buf.len() >= end + 4 + clen {
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + clen]).to_string();
                    self.buf.drain(..end + 4 + clen);
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .expect("status");
                    return Some(Resp { status, head, body });
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn send_raw(&mut self, data: &[u8]) {
        let _ = self.s.write_all(data).await;
    }

    async fn request(&mut self, method: &str, url: &str, headers: &[&str]) -> Resp {
        self.cseq += 1;
        let mut r = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if let Some(s) = &self.session {
            r.push_str(&format!("Session: {s}\r\n"));
        }
        for h in headers {
            r.push_str(h);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        self.send_raw(r.as_bytes()).await;
        let resp = self.response().await.expect("a response");
        assert_eq!(
            resp.header("CSeq"),
            Some(self.cseq.to_string().as_str()),
            "{}",
            resp.head
        );
        resp
    }

    /// DESCRIBE, SETUP of the video over TCP, PLAY; PLAY's answer.
    async fn play_tcp(&mut self) -> Resp {
        let url = self.url.clone();
        let r = self
            .request("DESCRIBE", &url, &["Accept: application/sdp"])
            .await;
        assert_eq!(r.status, 200, "{}", r.head);
        let r = self
            .request(
                "SETUP",
                &format!("{url}/trackID=0"),
                &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.head);
        let s = r.header("Session").expect("session");
        self.session = Some(s.split(';').next().expect("id").to_owned());
        let r = self.request("PLAY", &url, &["Range: npt=0.000-"]).await;
        assert_eq!(r.status, 200, "{}", r.head);
        r
    }

    /// The next interleaved block on `channel`.
    async fn packet(&mut self, channel: u8) -> Option<Vec<u8>> {
        loop {
            if self.buf.len() >= 4 && self.buf[0] == b'$' {
                let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                if self.buf.len() >= 4 + len {
                    let ch = self.buf[1];
                    let p: Vec<u8> = self.buf[4..4 + len].to_vec();
                    self.buf.drain(..4 + len);
                    if ch == channel {
                        return Some(p);
                    }
                    continue;
                }
            } else if !self.buf.is_empty() && self.buf[0] != b'$' {
                panic!("unexpected bytes between packets");
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next access unit, depacketized (RFC 6184), as Annex B with
    /// 4-byte start codes, and its RTP sequence numbers.
    async fn access_unit(&mut self) -> Option<(Bytes, Vec<u16>)> {
        let mut au = Vec::new();
        let mut seqs = Vec::new();
        loop {
            let p = self.packet(0).await?;
            assert_eq!(p[0] >> 6, 2, "RTP version 2");
            seqs.push(u16::from_be_bytes([p[2], p[3]]));
            let marker = p[1] & 0x80 != 0;
            let payload = &p[12..];
            match payload[0] & 0x1f {
                28 => {
                    if payload[1] & 0x80 != 0 {
                        au.extend_from_slice(&[0, 0, 0, 1]);
                        au.push((payload[0] & 0xe0) | (payload[1] & 0x1f));
                    }
                    au.extend_from_slice(&payload[2..]);
                }
                1..=23 => {
                    au.extend_from_slice(&[0, 0, 0, 1]);
                    au.extend_from_slice(payload);
                }
                t => panic!("unexpected NAL/packet type {t}"),
            }
            if marker {
                return Some((Bytes::from(au), seqs));
            }
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A fixture AU as the packetizer sends it: NAL units with 4-byte start
/// codes, no access unit delimiters or filler.
fn normalized(au: &[u8]) -> Bytes {
    let mut out = Vec::new();
    for (s, e) in pinhole_rtsp::rtp::nal_ranges(au) {
        if matches!(au[s] & 0x1f, 9 | 12) {
            continue;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&au[s..e]);
    }
    Bytes::from(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tcp_clients_get_every_frame_in_order() {
    let server = TestServer::start(HubConfig::default()).await;
    let state = server.state.clone();
    let addr = start_rtsp(state.clone(), RtspConfig::default()).await;
    let aus: Vec<(Bytes, bool)> = common::fixture_aus()
        .into_iter()
        .map(|(d, k)| (normalized(&d), k))
        .collect();

    let frames = 90; // 3 s at 30 fps
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.play_tcp().await;
            let mut got = Vec::new();
            let mut last_seq: Option<u16> = None;
            let mut worst_gap = Duration::ZERO;
            let mut t = Instant::now();
            for _ in 0..frames {
                let (au, seqs) = c.access_unit().await.expect("an access unit");
                for s in seqs {
                    if let Some(l) = last_seq {
                        assert_eq!(s, l.wrapping_add(1), "sequence numbers continue");
                    }
                    last_seq = Some(s);
                }
                // The first GOP arrives at once; time the live frames.
                if got.len() > 35 {
                    worst_gap = worst_gap.max(t.elapsed());
                }
                t = Instant::now();
                got.push(au);
            }
            (got, worst_gap, c)
        }));
    }
    let mut worst = Duration::ZERO;
    let mut clients = Vec::new();
    for t in tasks {
        let (got, gap, c) = t.await.expect("client");
        common::assert_fixture_in_order(&got, &aus);
        worst = worst.max(gap);
        clients.push(c);
    }
    // 33 ms apart when published.
    assert!(
        worst < Duration::from_millis(500),
        "worst frame gap {worst:?}"
    );
    // Counted where the UI and Prometheus look.
    let status = common::get(&server.url("/api/status"), Duration::from_secs(5)).await;
    let st: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
    assert_eq!(st["rtsp"]["sessions"], 50, "{}", st["rtsp"]);
    assert_eq!(st["rtsp"]["port"], addr.port());
    assert_eq!(st["viewers"]["rtsp"], 50);
    let metrics = common::get(&server.url("/metrics"), Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("pinhole_viewers{output=\"rtsp\"} 50\n"),
        "{text}"
    );
    drop(clients);
}

/// A client that stops reading is cut off after the send timeout (10 s),
/// while the others keep getting every frame on time. Frames are padded to
/// ~100 KB (an SEI NAL unit) so the kernel's socket buffers fill in a
/// second or two, not minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_delays_no_one() {
    let server = TestServer::start(HubConfig::default()).await;
    let state = server.state.clone();
    let aus: Vec<(Bytes, bool)> = common::fixture_aus()
        .into_iter()
        .map(|(d, k)| {
            let mut v = d.to_vec();
            v.extend_from_slice(&[0, 0, 0, 1, 0x06, 0x05]);
            v.extend(std::iter::repeat_n(0x55u8, 100_000));
            v.push(0x80);
            (Bytes::from(v), k)
        })
        .collect();
    let publisher = {
        let state = state.clone();
        let aus = aus.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut t = tokio::time::interval(Duration::from_millis(33));
            for (data, keyframe) in aus.iter().cycle() {
                t.tick().await;
                let us = start.elapsed().as_micros() as u64;
                state.hub.publish(pinhole_media::AccessUnit {
                    data: data.clone(),
                    pts_us: us,
                    wallclock_us: us,
                    keyframe: *keyframe,
                });
            }
        })
    };
    wait_for_stream(&state).await;
    let l = RtspListener::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(pinhole_server::rtsp::serve(
        vec![l],
        state.clone(),
        RtspConfig::default(),
        std::future::pending(),
    ));
    let want: Vec<(Bytes, bool)> = aus.iter().map(|(d, k)| (normalized(d), *k)).collect();

    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = Client {
        s: sock.connect(addr).await.expect("connect"),
        buf: Vec::new(),
        cseq: 0,
        url: format!("rtsp://{addr}/stream"),
        session: None,
    };
    stalled.play_tcp().await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.play_tcp().await;
            let mut got = Vec::new();
            let mut worst = Duration::ZERO;
            let mut t = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (au, _) = c.access_unit().await.expect("an access unit");
                if got.len() > 35 {
                    worst = worst.max(t.elapsed());
                }
                t = Instant::now();
                got.push(au);
            }
            (got, worst)
        }));
    }
    // The stalled client holds a viewer slot until the server gives up on it.
    let t0 = Instant::now();
    let dropped_after = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (n, _) = state.viewers(pinhole_server::Output::Rtsp);
        if t0.elapsed() > Duration::from_secs(1) && n == 4 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "the stalled client was never dropped ({n} viewers)"
        );
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let (got, worst) = r.await.expect("reader");
        assert!(got.len() > 200, "{} frames in {dropped_after:?}", got.len());
        common::assert_fixture_in_order(&got, &want);
        assert!(
            worst < Duration::from_millis(500),
            "worst frame gap {worst:?}"
        );
    }
    assert!(
        dropped_after >= Duration::from_secs(10),
        "dropped after {dropped_after:?}: before the send timeout?"
    );
    publisher.abort();
    drop(stalled);
}

#[tokio::test]
async fn bad_input_gets_clear_codes_and_the_server_stays_healthy() {
    let server = TestServer::start(HubConfig::default()).await;
    let state = server.state.clone();
    let addr = start_rtsp(state.clone(), RtspConfig::default()).await;
    let url = format!("rtsp://{addr}/stream");

    // Garbage: 400, then the connection closes.
    let mut c = Client::connect(addr).await;
    c.send_raw(b"\x16\x03\x01 hello there\r\n\r\n").await;
    let r = c.response().await.expect("an answer");
    assert_eq!(r.status, 400, "{}", r.head);
    assert!(c.response().await.is_none(), "closed after garbage");

    // HTTP on the RTSP port: 505.
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.response().await.expect("answer").status, 505);

    // A 1 MB header: refused once past the limit, without reading it all.
    let mut c = Client::connect(addr).await;
    let mut big = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-Big: ").into_bytes();
    big.resize(1 << 20, b'a');
    let w = tokio::spawn(async move {
        c.send_raw(&big).await;
        c.response().await.map(|r| r.status)
    });
    let status = tokio::time::timeout(Duration::from_secs(10), w)
        .await
        .expect("answered in time")
        .expect("task");
    assert_eq!(status, Some(400));

    // A CSeq that is not a number; none at all.
    let mut c = Client::connect(addr).await;
    c.send_raw(format!("OPTIONS {url} RTSP/1.0\r\nCSeq: abc\r\n\r\n").as_bytes())
        .await;
    let r = c.response().await.expect("answer");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("CSeq"), "{}", r.body);
    c.send_raw(format!("OPTIONS {url} RTSP/1.0\r\n\r\n").as_bytes())
        .await;
    assert_eq!(c.response().await.expect("answer").status, 400);

    // State errors on one connection, which stays usable.
    let mut c = Client::connect(addr).await;
    let tcp = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1";
    assert_eq!(
        c.request("PLAY", &url, &[]).await.status,
        455,
        "PLAY without SETUP"
    );
    assert_eq!(
        c.request("SETUP", &format!("{url}/trackID=5"), &[tcp])
            .await
            .status,
        404,
        "unknown track"
    );
    assert_eq!(
        c.request("DESCRIBE", &format!("rtsp://{addr}/other"), &[])
            .await
            .status,
        404
    );
    assert_eq!(c.request("ANNOUNCE", &url, &[]).await.status, 501);
    assert_eq!(
        c.request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &["Transport: RTP/AVP;multicast"]
        )
        .await
        .status,
        461
    );
    c.session = Some("forged".into());
    assert_eq!(c.request("PLAY", &url, &[]).await.status, 454);
    c.session = None;

    // Healthy: a new client plays.
    let mut c = Client::connect(addr).await;
    c.play_tcp().await;
    assert!(c.access_unit().await.is_some());
}

#[tokio::test]
async fn viewer_password_by_basic_and_digest_and_tokens() {
    let mut cfg = ServerConfig::default();
    cfg.security.viewer_tokens = vec!["tok-0123456789abcdef".into()];
    let server = TestServer::start_with(HubConfig::default(), cfg).await;
    let state = server.state.clone();
    let addr = start_rtsp(state.clone(), RtspConfig::default()).await;
    let url = format!("rtsp://{addr}/stream");

    // Open (LAN policy, no viewer password): no credentials needed.
    let mut c = Client::connect(addr).await;
    assert_eq!(c.request("DESCRIBE", &url, &[]).await.status, 200);

    let cookie = common::admin_cookie(server.addr).await;
    let r = post_json(
        server.addr,
        "/api/auth/viewer/password",
        "{\"password\":\"viewer secret\"}",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200);

    // Now a 401 with both challenges, Digest first.
    let mut c = Client::connect(addr).await;
    let r = c.request("DESCRIBE", &url, &[]).await;
    assert_eq!(r.status, 401);
    let challenges: Vec<&str> = r
        .head
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 2, "{}", r.head);
    assert!(challenges[0].starts_with("Digest realm=\"pinhole\", nonce=\""));
    assert_eq!(challenges[1], "Basic realm=\"pinhole\"");
    let nonce = challenges[0].split('"').nth(3).expect("nonce").to_owned();

    // OPTIONS is answered without credentials.
    assert_eq!(c.request("OPTIONS", &url, &[]).await.status, 200);
    // Wrong password, right user: 401.
    let wrong = format!("Authorization: Basic {}", b64("viewer:nope"));
    assert_eq!(c.request("DESCRIBE", &url, &[&wrong]).await.status, 401);
    // Digest with the right password.
    let digest = |method: &str, pw: &str| {
        let ha1 = md5_hex(&format!("viewer:pinhole:{pw}"));
        let ha2 = md5_hex(&format!("{method}:{url}"));
        let resp = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        format!(
            "Authorization: Digest username=\"viewer\", realm=\"pinhole\", nonce=\"{nonce}\", uri=\"{url}\", response=\"{resp}\""
        )
    };
    assert_eq!(
        c.request("DESCRIBE", &url, &[&digest("DESCRIBE", "nope")])
            .await
            .status,
        401
    );
    let r = c
        .request("DESCRIBE", &url, &[&digest("DESCRIBE", "viewer secret")])
        .await;
    assert_eq!(r.status, 200, "{}", r.head);
    // Once in, the connection stays in.
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
        )
        .await;
    assert_eq!(r.status, 200);

    // Basic with the right password (after the failures above it may
    // first be throttled: the login backoff applies).
    let mut c = Client::connect(addr).await;
    let right = format!("Authorization: Basic {}", b64("viewer:viewer secret"));
    let mut status = 0;
    for _ in 0..5 {
        let r = c.request("DESCRIBE", &url, &[&right]).await;
        status = r.status;
        if status != 429 {
            break;
        }
        let wait: u64 = r
            .header("Retry-After")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    assert_eq!(status, 200);
    // Another user name with the viewer password: no.
    let mut c = Client::connect(addr).await;
    let other = format!("Authorization: Basic {}", b64("admin:viewer secret"));
    assert_ne!(c.request("DESCRIBE", &url, &[&other]).await.status, 200);

    // A viewer token in the URL.
    let mut c = Client::connect(addr).await;
    let r = c
        .request(
            "DESCRIBE",
            &format!("{url}?token=tok-0123456789abcdef"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .request("DESCRIBE", &format!("{url}?token=wrong"), &[])
        .await;
    assert_eq!(r.status, 200, "the connection proved access already");
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.request("DESCRIBE", &format!("{url}?token=wrong-token-0000000"), &[])
            .await
            .status,
        401
    );
    let _ = ADMIN_PASSWORD;
}

fn b64(s: &str) -> String {
    use base64ct::{Base64, Encoding};
    Base64::encode_string(s.as_bytes())
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// RTCP sender reports map RTP time to the capture wall clock: each names
/// the RTP timestamp of a frame that follows it, the NTP times of two
/// reports differ by what their RTP times do (90 kHz), and the first comes
/// before any RTP packet. PLAY's `RTP-Info` names the first packet's
/// sequence number and RTP time (RFC 2326 12.33).
#[tokio::test]
async fn sender_reports_map_rtp_time_to_the_capture_wall_clock() {
    let server = TestServer::start(HubConfig::default()).await;
    let addr = start_rtsp(server.state.clone(), RtspConfig::default()).await;
    let mut c = Client::connect(addr).await;
    let play = c.play_tcp().await;
    let info = play.header("RTP-Info").expect("RTP-Info").to_owned();
    let param = |name: &str| -> u32 {
        info.split([';', ','])
            .find_map(|p| p.trim().strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {info}"))
    };
    let (seq0, rtptime) = (param("seq="), param("rtptime="));
    let mut reports: Vec<(u64, u32)> = Vec::new(); // (unix µs, rtp ts)
    let mut rtp_ts: Vec<u32> = Vec::new();
    let mut first_seq = None;
    let mut first_block = None;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        c.fill().await;
        while c.buf.len() >= 4 && c.buf[0] == b'$' {
            let len = u16::from_be_bytes([c.buf[2], c.buf[3]]) as usize;
            if c.buf.len() < 4 + len {
                break;
            }
            let ch = c.buf[1];
            let p: Vec<u8> = c.buf[4..4 + len].to_vec();
            c.buf.drain(..4 + len);
            first_block.get_or_insert(ch);
            if ch == 1 {
                assert_eq!(p[1], 200, "SR first in the compound packet");
                let secs = u32::from_be_bytes(p[8..12].try_into().expect("4")) as u64;
                let frac = u32::from_be_bytes(p[12..16].try_into().expect("4")) as u64;
                let unix_us = (secs - 2_208_988_800) * 1_000_000 + ((frac * 1_000_000) >> 32);
                reports.push((
                    unix_us,
                    u32::from_be_bytes(p[16..20].try_into().expect("4")),
                ));
                assert_eq!(p[29], 202, "then SDES");
            } else {
                first_seq.get_or_insert(u16::from_be_bytes([p[2], p[3]]));
                rtp_ts.push(u32::from_be_bytes(p[4..8].try_into().expect("4")));
            }
        }
    }
    assert_eq!(first_block, Some(1), "a report before the first RTP packet");
    assert_eq!(
        first_seq.map(u32::from),
        Some(seq0),
        "RTP-Info's seq: {info}"
    );
    assert_eq!(rtp_ts.first(), Some(&rtptime), "RTP-Info's rtptime: {info}");
    assert!(reports.len() >= 2, "{} reports in 2.5 s", reports.len());
    for (_, ts) in &reports {
        assert!(rtp_ts.contains(ts), "a report names a frame's RTP time");
    }
    let (w0, r0) = reports[0];
    let (w1, r1) = reports[reports.len() - 1];
    let rtp_us = u64::from(r1.wrapping_sub(r0)) * 1_000_000 / 90_000;
    let wall_us = w1 - w0;
    assert!(
        rtp_us.abs_diff(wall_us) <= 100,
        "RTP says {rtp_us} µs, NTP says {wall_us} µs"
    );
}
