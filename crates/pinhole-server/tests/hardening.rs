//! Issue 22, against a real server on port 0: the OTA health probe behind a
//! viewer password (item 6), idle HTTP/2 connections (7), secrets in
//! `/api/status` (8), the security headers pinholed sends itself (13).
//! Elsewhere: snapshots under load in `snapshot_load.rs` (11), the update
//! API in `update.rs` (12), nginx in front in `nginx.rs` (9, 10, 13).

mod common;

use std::time::Duration;

use common::{admin_cookie, closed_within, get_with, post_json, TestServer};
use pinhole_hub::HubConfig;
use pinhole_server::auth::{SecurityConfig, ViewerAccess};
use pinhole_server::{ListenAddr, ServerConfig};

fn cfg(f: impl FnOnce(&mut SecurityConfig)) -> ServerConfig {
    let mut c = ServerConfig::default();
    f(&mut c.security);
    c
}

async fn status_of(url: &str, headers: &[(&str, &str)]) -> u16 {
    get_with(url, http::Method::GET, headers, Duration::from_secs(2))
        .await
        .status
}

// ---- item 6: the OTA trial's health probe -----------------------------------

/// With a viewer password set, `/api/status` needs a login; the trial-boot
/// probe must still see the server answering (else every update rolls back).
#[tokio::test]
async fn health_probe_answers_with_a_viewer_password_set() {
    let server = TestServer::start(HubConfig::default()).await;
    let a = server.addr;
    let admin = admin_cookie(a).await;
    let r = post_json(
        a,
        "/api/auth/viewer/password",
        r#"{"password":"viewer secret 1"}"#,
        &[("cookie", &admin)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The old probe's path is closed to it now...
    assert_eq!(status_of(&server.url("/api/status"), &[]).await, 401);
    // ...the health path is not, and says nothing else.
    let r = get_with(
        &server.url("/api/health"),
        http::Method::GET,
        &[],
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"ok":true}"#);
    assert!(pinhole_server::health::probe(&ListenAddr::Tcp(a)).await);
    // It only answers GET/HEAD; anything else is an admin action.
    assert_eq!(
        post_json(a, "/api/health", "{}", &[]).await.status,
        401,
        "POST /api/health needs the admin"
    );
    server.stop().await;
}

/// `viewer_access = "token"`, on the Unix socket as nginx and the daemon's
/// probe use it.
#[tokio::test]
async fn health_probe_answers_on_the_unix_socket_with_token_access() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("pinholed.sock");
    let server = TestServer::start_unix(&sock, cfg(|s| s.viewer = ViewerAccess::Token)).await;
    // Set up, so that the first-boot rules are not what decides.
    let admin = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = r#"{"password":"test admin password"}"#;
        let mut s = tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect");
        let req = format!(
            "POST /api/auth/setup HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        out
    };
    assert!(admin.contains("pinhole_session="));
    assert!(pinhole_server::health::probe(&ListenAddr::Unix(sock)).await);
    server.stop().await;
}

// ---- item 7: HTTP/2 prior knowledge -----------------------------------------

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Idle and half-sent HTTP/2 prior-knowledge connections used to stay open
/// for ever (only HTTP/1 had a header timeout): now every one is closed
/// within the header timeout, and HTTP/1 keeps working beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let timeout = Duration::from_secs(2);
    let server = TestServer::start_with(
        HubConfig::default(),
        cfg(|s| s.header_read_timeout = timeout),
    )
    .await;
    let mut conns = Vec::new();
    for i in 0..60 {
        let mut s = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        // Half of them stop in the middle of the preface.
        let bytes = if i % 2 == 0 {
            H2_PREFACE
        } else {
            &H2_PREFACE[..10] // "PRI * HTTP"
        };
        s.write_all(bytes).await.expect("write");
        conns.push(s);
    }
    assert_eq!(
        status_of(&server.url("/api/health"), &[]).await,
        200,
        "HTTP/1 beside them"
    );
    let bound = timeout * 3;
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(
            closed_within(s, bound).await.is_some(),
            "HTTP/2 connection {i} still open after {bound:?}"
        );
    }
    server.stop().await;
}

// ---- item 8: secrets in /api/status ------------------------------------------

async fn status_json(url: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let r = get_with(url, http::Method::GET, headers, Duration::from_secs(2)).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!text.contains("S3cret"), "a secret in /api/status: {text}");
    serde_json::from_str(&text).expect("json")
}

/// A `pipe:` source's command used to reach every viewer whole, camera
/// password included, and the HLS directory too.
#[tokio::test]
async fn status_hides_credentials_and_shows_viewers_less() {
    let hls = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        hls_dir: Some(hls.path().to_owned()),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(HubConfig::default(), config).await;
    use pinhole_source_api::FrameSink;
    server
        .state
        .source
        .update_info(pinhole_source_api::SourceInfo {
        kind: "pipe",
        detail:
            "ffmpeg -rtsp_transport tcp -i rtsp://admin:S3cret@10.0.0.5:554/s1 -c copy -f h264 -"
                .into(),
        fps: Some(30.0),
        bitrate: None,
        keyframe_interval: None,
    });
    // A LAN viewer (no login): no command, no directory.
    let v = status_json(&server.url("/api/status"), &[]).await;
    assert_eq!(v["source"]["kind"], "pipe");
    assert!(v["source"]["detail"].is_null(), "{v}");
    assert!(v["hls"]["dir"].is_null(), "{v}");
    assert!(v["hls"]["segments"].is_u64(), "counters stay: {v}");
    // The admin sees both, the password still hidden.
    let admin = admin_cookie(server.addr).await;
    let v = status_json(&server.url("/api/status"), &[("cookie", &admin)]).await;
    assert_eq!(
        v["source"]["detail"],
        "ffmpeg -rtsp_transport tcp -i rtsp://***@10.0.0.5:554/s1 -c copy -f h264 -"
    );
    assert_eq!(v["hls"]["dir"], hls.path().display().to_string());
    server.stop().await;
}

// ---- item 13: security headers from pinholed itself -----------------------------

/// A deployment without nginx gets them too: the pages a CSP and framing
/// rules, every answer `nosniff`.
#[tokio::test]
async fn pinholed_sends_the_security_headers_itself() {
    let server = TestServer::start(HubConfig::default()).await;
    for path in ["/", "/jmuxer.html"] {
        let r = get_with(
            &server.url(path),
            http::Method::GET,
            &[],
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.headers["content-security-policy"],
            pinhole_server::headers::CSP
        );
        assert_eq!(r.headers["x-frame-options"], "SAMEORIGIN");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.headers["referrer-policy"], "same-origin");
    }
    for path in ["/app.js", "/api/health", "/api/status", "/no-such-file"] {
        let r = get_with(
            &server.url(path),
            http::Method::GET,
            &[],
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
    }
    // The page has no inline script or style left for the policy to block.
    for file in ["index.html", "jmuxer.html"] {
        let html = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../web")
                .join(file),
        )
        .expect("page");
        assert!(!html.contains("<style"), "{file}: inline style");
        assert!(
            html.matches("<script").count()
                == html.matches("<script src=").count()
                    + html.matches("<script type=\"module\" src=").count(),
            "{file}: inline script"
        );
        assert!(
            !html.contains(" style=") && !html.contains(" onclick="),
            "{file}"
        );
    }
    server.stop().await;
}
