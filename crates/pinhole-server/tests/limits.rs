//! Hostile input against a real server on port 0: oversized bodies, viewer
//! caps, 1000 idle WebSockets, slowloris, malformed WebSocket frames and path
//! traversal, one by one and all at once beside a real viewer.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{closed_within, TestServer};
use futures_util::StreamExt;
use pinhole_hub::HubConfig;
use pinhole_server::auth::SecurityConfig;
use pinhole_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests that measure frame timing and this process's RSS run one at a
/// time (the others in this binary are light).
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cfg(f: impl FnOnce(&mut SecurityConfig)) -> ServerConfig {
    let mut c = ServerConfig::default();
    f(&mut c.security);
    c
}

/// Sends raw bytes; returns what the server answered before closing or
/// going quiet for `wait`.
async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_until_quiet(&mut s, wait).await
}

/// What the peer sends before closing or going quiet for `wait`.
async fn read_until_quiet(s: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(wait, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ws_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A raw WebSocket handshake; returns the socket after the 101 header.
async fn ws_raw(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(ws_request(addr, "/ws/h264").as_bytes())
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let server = TestServer::start(HubConfig::default()).await;
    // Declared too large: refused before a byte of the body is read.
    let r = raw(
        server.addr,
        format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Length: 70000\r\n\r\n",
            server.addr
        )
        .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Also on routes someone adds later (PUT /api/camera), before auth.
    let r = raw(
        server.addr,
        format!(
            "PUT /api/camera HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\n",
            server.addr
        )
        .as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Chunked, no length: cut off while reading at 64 KiB.
    let big = format!("{{\"password\":\"{}\"}}", "a".repeat(100_000));
    let r = common::post_json(server.addr, "/api/auth/setup", &big, &[]).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    let mut chunked = format!(
        "POST /api/auth/setup HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    )
    .into_bytes();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
        chunked.extend_from_slice(&[b'x'; 8192]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw(server.addr, &chunked, Duration::from_secs(2)).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(!server.state.auth.has_password());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_caps_give_503_with_a_reason() {
    let server = TestServer::start_with(
        HubConfig::default(),
        cfg(|s| {
            s.max_viewers = 3;
            s.max_viewers_per_ip = 2;
        }),
    )
    .await;
    let (_a, h) = ws_raw(server.addr).await;
    assert!(h.starts_with("HTTP/1.1 101"), "{h}");
    let (_b, h) = ws_raw(server.addr).await;
    assert!(h.starts_with("HTTP/1.1 101"), "{h}");
    let (_c, h) = ws_raw(server.addr).await;
    assert!(h.starts_with("HTTP/1.1 503"), "{h}");
    let r = common::get(&server.url("/stream.mp4"), Duration::from_millis(300)).await;
    assert_eq!(r.status, 503);
    assert!(
        String::from_utf8_lossy(&r.body).contains("one address"),
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(server.state.auth.viewers_connected(), 2);
    drop((_a, _b));
    // The slots come back when the viewers leave.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.state.auth.viewers_connected() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.state.auth.viewers_connected(), 0);
    server.stop().await;

    // The global cap, from several "addresses" (through the proxy socket the
    // per-address count follows X-Real-IP; over TCP all are 127.0.0.1).
    let server = TestServer::start_with(
        HubConfig::default(),
        cfg(|s| {
            s.max_viewers = 2;
            s.max_viewers_per_ip = 10;
        }),
    )
    .await;
    let (_a, _) = ws_raw(server.addr).await;
    let (_b, _) = ws_raw(server.addr).await;
    let (_c, h) = ws_raw(server.addr).await;
    assert!(h.starts_with("HTTP/1.1 503"), "{h}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_websockets_do_not_hurt_a_real_viewer() {
    let _heavy = HEAVY.lock().await;
    const IDLE: usize = 1000;
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let want = (IDLE as u64 * 2 + 200).min(hard);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
    }
    assert!(
        want >= IDLE as u64 * 2 + 100,
        "fd hard limit {hard} too low"
    );

    let server = TestServer::start_with(
        HubConfig::default(),
        cfg(|s| {
            s.max_viewers = IDLE + 10;
            s.max_viewers_per_ip = IDLE + 10;
        }),
    )
    .await;
    let pubr = common::publish_fixture(server.state.clone(), 30.0);
    let rss_before = rss_kib();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let (s, h) = ws_raw(server.addr).await;
        assert!(h.starts_with("HTTP/1.1 101"), "viewer {i}: {h}");
        idle.push(s); // never read: the server must not wait for them
    }
    // Let the idle sockets' buffers fill for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A normal viewer still gets frames promptly.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/h264"))
        .await
        .expect("viewer connects past 1000 idle ones");
    let start = Instant::now();
    let mut frames = 0;
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    while frames < 60 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(m))) if m.is_binary() => {
                frames += 1;
                gaps.push(last.elapsed());
                last = Instant::now();
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("viewer stalled after {frames} frames: {other:?}"),
        }
    }
    let took = start.elapsed();
    // 60 frames at 30 fps (the first burst is the cached GOP): ~2 s, not more.
    // The failure this guards against is the server waiting on full idle
    // sockets: the viewer then stalls for seconds (the send timeout is 10 s).
    // The bounds leave room for a busy CI machine (a 150 ms p95 failed ~1 in
    // 8 runs at load 20) while still catching a stall.
    assert!(took < Duration::from_secs(5), "60 frames took {took:?}");
    gaps.sort();
    let p95 = gaps[gaps.len() * 95 / 100];
    assert!(p95 < Duration::from_millis(400), "p95 gap {p95:?}");
    let rss_after = rss_kib();
    // Client and server share this process: both sides of 1000 sockets, and
    // the frames queued to them, must stay well under 300 MiB.
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!("RSS {rss_before} → {rss_after} KiB (+{grew} KiB) with {IDLE} idle viewers; 60 frames in {took:?}, p95 gap {p95:?}");
    assert!(grew < 300 * 1024, "RSS grew {grew} KiB");
    assert!(server.state.auth.viewers_connected() >= 1);
    drop(ws);
    drop(idle);
    pubr.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_keepalive_are_cut_off() {
    let server = TestServer::start_with(
        HubConfig::default(),
        cfg(|s| s.header_read_timeout = Duration::from_secs(1)),
    )
    .await;
    // Headers dribbled one line every 200 ms, never finished.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(b"GET /api/status HTTP/1.1\r\n")
        .await
        .expect("w");
    let start = Instant::now();
    let mut cut = None;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(format!("X-Slow-{i}: x\r\n").as_bytes())
            .await
            .is_err()
        {
            cut = Some(start.elapsed());
            break;
        }
        let mut b = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
            // An error status or EOF: the server gave up on us.
            let _ = n;
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("a slowloris client is disconnected");
    assert!(cut < Duration::from_secs(4), "cut after {cut:?}");

    // A keep-alive connection that goes quiet after one request.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(format!("GET /api/status HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await
        .expect("w");
    let idle = closed_within(&mut s, Duration::from_secs(8)).await;
    let idle = idle.expect("an idle keep-alive connection is closed");
    assert!(idle < Duration::from_secs(5), "closed after {idle:?}");
    // A connection that never sends anything.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let silent = closed_within(&mut s, Duration::from_secs(8)).await;
    assert!(silent.is_some(), "a silent connection is closed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_websocket_frames_close_only_that_connection() {
    let server = TestServer::start(HubConfig::default()).await;
    let pubr = common::publish_fixture(server.state.clone(), 30.0);
    let (mut good, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/h264"))
        .await
        .expect("good viewer");
    let bad_frames: [(&str, Vec<u8>); 4] = [
        // FIN+binary, unmasked (clients must mask).
        ("unmasked", vec![0x82, 0x03, 1, 2, 3]),
        // Masked binary claiming 2^62 bytes.
        (
            "oversized length",
            [
                &[0x82u8, 0xff][..],
                &(1u64 << 62).to_be_bytes(),
                &[0, 0, 0, 0],
            ]
            .concat(),
        ),
        // Reserved opcode 0x3.
        ("bad opcode", vec![0x83, 0x80, 0, 0, 0, 0]),
        // A control frame longer than 125 bytes.
        (
            "long ping",
            [&[0x89u8, 0xfe, 0x01, 0x00][..], &[0, 0, 0, 0], &[0u8; 256]].concat(),
        ),
    ];
    for (what, frame) in bad_frames {
        let (mut s, h) = ws_raw(server.addr).await;
        assert!(h.starts_with("HTTP/1.1 101"), "{h}");
        s.write_all(&frame).await.expect("write");
        let closed = closed_within(&mut s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "{what}: connection stays open");
        // The good viewer keeps receiving.
        let m = tokio::time::timeout(Duration::from_secs(2), good.next())
            .await
            .unwrap_or_else(|_| panic!("good viewer stalled after {what}"));
        assert!(matches!(m, Some(Ok(_))), "{what}: {m:?}");
    }
    pubr.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_symlinks_are_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ui = dir.path().join("ui");
    let hls = dir.path().join("hls");
    std::fs::create_dir_all(ui.join("sub")).expect("mkdir");
    std::fs::create_dir_all(&hls).expect("mkdir");
    std::fs::write(ui.join("index.html"), "<p>ui</p>").expect("w");
    std::fs::write(ui.join("sub/ok.js"), "ok").expect("w");
    std::fs::write(ui.join(".hidden"), "secret").expect("w");
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").expect("w");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), ui.join("link.html")).expect("ln");
    std::os::unix::fs::symlink(dir.path(), ui.join("up")).expect("ln");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), hls.join("evil.m4s")).expect("ln");
    let mut c = ServerConfig {
        ui_dir: Some(ui.clone()),
        hls_dir: Some(hls.clone()),
        ..ServerConfig::default()
    };
    c.security.max_body = 1024;
    let server = TestServer::start_with(HubConfig::default(), c).await;

    let ok = raw(
        server.addr,
        b"GET /sub/ok.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/.hidden",
        "/link.html",
        "/up/secret.txt",
        "//etc/passwd",
        "/hls/../secret.txt",
        "/hls/%2e%2e%2fsecret.txt",
        "/hls/evil.m4s",
        "/hls/.hidden",
    ] {
        let r = raw(
            server.addr,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        assert!(
            r.starts_with("HTTP/1.1 404") || r.starts_with("HTTP/1.1 400"),
            "{path}: {r}"
        );
        assert!(
            !r.contains("TOP SECRET") && !r.contains("secret\r"),
            "{path}: {r}"
        );
    }
    server.stop().await;
}

/// Writes `bytes` (the server may cut us off half-way: fine) and returns
/// what it answered before closing or going quiet for `wait`.
async fn hostile(addr: SocketAddr, bytes: Vec<u8>, wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(&bytes).await;
    read_until_quiet(&mut s, wait).await
}

/// Everything at once while a real viewer watches: 200 slowloris clients,
/// oversized headers and bodies, malformed WebSocket frames, traversal
/// attempts. The viewer keeps its frame rate, every attacker is refused or
/// cut off, memory stays bounded, and the daemon answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_together_leave_a_viewer_and_memory_alone() {
    let _heavy = HEAVY.lock().await;
    let server = TestServer::start_with(
        HubConfig::default(),
        cfg(|s| s.header_read_timeout = Duration::from_secs(2)),
    )
    .await;
    let addr = server.addr;
    let pubr = common::publish_fixture(server.state.clone(), 30.0);
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/h264"))
        .await
        .expect("viewer");
    // Frames per second and the worst gap over `secs`.
    async fn watch<S>(ws: &mut S, secs: u64) -> (f64, Duration)
    where
        S: futures_util::Stream<
                Item = Result<
                    tokio_tungstenite::tungstenite::Message,
                    tokio_tungstenite::tungstenite::Error,
                >,
            > + Unpin,
    {
        let start = Instant::now();
        let mut frames = 0u32;
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(Some(Ok(m))) if m.is_binary() => {
                    frames += 1;
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("viewer stalled after {frames} frames: {other:?}"),
            }
        }
        (f64::from(frames) / start.elapsed().as_secs_f64(), worst)
    }
    // The cached GOP arrives as a burst; then a baseline on this machine.
    watch(&mut ws, 1).await;
    let (base_fps, _) = watch(&mut ws, 2).await;
    let rss_before = rss_kib();

    let mut attackers = tokio::task::JoinSet::new();
    for i in 0..200 {
        attackers.spawn(async move {
            // Slowloris: a header line every 300 ms, never the blank line.
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let start = Instant::now();
            let _ = s.write_all(b"GET /api/status HTTP/1.1\r\n").await;
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if start.elapsed() > Duration::from_secs(10) {
                    return format!("slowloris {i}: still connected after 10 s");
                }
                if s.write_all(b"X-Slow: x\r\n").await.is_err() {
                    return String::new();
                }
                let mut b = [0u8; 256];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
                {
                    return String::new(); // an error status or EOF
                }
            }
        });
    }
    for i in 0..20 {
        // 256 KiB of headers: over the 64 KiB buffer.
        attackers.spawn(async move {
            let mut big = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
            big.extend_from_slice(&vec![b'a'; 256 * 1024]);
            big.extend_from_slice(b"\r\n\r\n");
            let r = hostile(addr, big, Duration::from_secs(3)).await;
            if r.starts_with("HTTP/1.1 200") {
                format!("huge header {i}: {}", &r[..r.len().min(80)])
            } else {
                String::new()
            }
        });
        // A 10 MB body announced, 1 MiB of it sent.
        attackers.spawn(async move {
            let mut req = format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10000000\r\n\r\n"
            )
            .into_bytes();
            req.extend_from_slice(&vec![b'x'; 1 << 20]);
            let r = hostile(addr, req, Duration::from_secs(3)).await;
            if r.starts_with("HTTP/1.1 413") {
                String::new()
            } else {
                format!("big body {i}: {}", &r[..r.len().min(80)])
            }
        });
        // A 1 MiB masked WebSocket message (limit 64 KiB).
        attackers.spawn(async move {
            let (mut s, h) = ws_raw(addr).await;
            if !h.starts_with("HTTP/1.1 101") {
                return format!("ws {i}: {h}");
            }
            let mut frame = vec![0x82u8, 0xff];
            frame.extend_from_slice(&(1u64 << 20).to_be_bytes());
            frame.extend_from_slice(&[1, 2, 3, 4]);
            frame.extend_from_slice(&vec![0u8; 1 << 20]);
            let _ = s.write_all(&frame).await;
            match closed_within(&mut s, Duration::from_secs(5)).await {
                Some(_) => String::new(),
                None => format!("ws {i}: a 1 MiB message did not close the connection"),
            }
        });
        attackers.spawn(async move {
            let r = hostile(
                addr,
                b"GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                    .to_vec(),
                Duration::from_secs(2),
            )
            .await;
            if r.starts_with("HTTP/1.1 404") || r.starts_with("HTTP/1.1 400") {
                String::new()
            } else {
                format!("traversal {i}: {}", &r[..r.len().min(80)])
            }
        });
    }

    // Meanwhile the viewer, for 4 s.
    let (fps, worst) = watch(&mut ws, 4).await;
    let rss_during = rss_kib();
    let mut failures = Vec::new();
    while let Some(r) = attackers.join_next().await {
        let r = r.expect("attacker task");
        if !r.is_empty() {
            failures.push(r);
        }
    }
    let grew = rss_during.saturating_sub(rss_before);
    eprintln!(
        "viewer: {base_fps:.1} fps before, {fps:.1} fps under 280 hostile clients, worst gap {worst:?}; RSS +{grew} KiB"
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // The attackers run in this process on the server's two worker threads
    // (measured: 29–30 fps against 30 before), so allow a little slowdown;
    // a server that waited on them would stall for seconds.
    assert!(
        fps >= base_fps * 0.75,
        "{fps:.1} fps under attack, {base_fps:.1} before"
    );
    assert!(worst < Duration::from_secs(1), "worst frame gap {worst:?}");
    // Client and server share this process: 20 × 1 MiB bodies and messages
    // were in flight on the client side alone.
    assert!(grew < 150 * 1024, "RSS grew {grew} KiB");
    // The daemon is fine: it answers, and the viewer is still counted alone.
    let r = common::get(&server.url("/api/status"), Duration::from_secs(1)).await;
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.state.auth.viewers_connected() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.state.auth.viewers_connected(), 1);
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(2), ws.next()).await,
        Ok(Some(Ok(_)))
    ));
    drop(ws);
    pubr.abort();
    server.stop().await;
}
