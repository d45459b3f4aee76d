//! The attacks of issue 22, replayed over real sockets: a foreign page
//! watching over a WebSocket (CSWSH) and reading HLS, DNS rebinding, parallel
//! logins past the throttle, and locking the admin out with a login flood.
//! Each of these got through before the fix.

mod common;
#[path = "common/nginx.rs"]
mod nginx;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{admin_cookie, TestServer, ADMIN_PASSWORD};
use pinhole_hub::HubConfig;
use pinhole_server::auth::SecurityConfig;
use pinhole_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "embed-token-0123456789";

/// Sends raw request bytes; returns the status and the head (and, unless it
/// is a 101, the body). A 101 is not read further.
async fn raw<S>(mut s: S, req: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&b[..n]),
            }
            // Done at a 101's head, or when the announced body is in.
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = header(head, "content-length")
                    .first()
                    .and_then(|v| v.parse::<usize>().ok());
                if head.starts_with("HTTP/1.1 101") || len.is_some_and(|l| body.len() >= l) {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn tcp(addr: SocketAddr, req: &str) -> (u16, String) {
    raw(
        tokio::net::TcpStream::connect(addr).await.expect("connect"),
        req,
    )
    .await
}

/// A GET with the given Host and optional Origin (and more header lines).
fn get(path: &str, host: &str, origin: Option<&str>, extra: &str) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{origin}{extra}Connection: close\r\n\r\n")
}

/// A WebSocket upgrade, as a browser page sends it.
fn ws(path: &str, host: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Upgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

fn post(path: &str, host: &str, origin: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

async fn server(security: SecurityConfig, hls: Option<&Path>) -> TestServer {
    let cfg = ServerConfig {
        hls_dir: hls.map(Path::to_owned),
        security,
        ..ServerConfig::default()
    };
    TestServer::start_with(HubConfig::default(), cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_page_cannot_watch_unless_its_origin_is_listed_or_it_has_a_token() {
    let hls = tempfile::tempdir().expect("tmp");
    let s = server(
        SecurityConfig {
            viewer_tokens: vec![TOKEN.into()],
            ..SecurityConfig::default()
        },
        Some(hls.path()),
    )
    .await;
    let _feed = common::publish_fixture(s.state.clone(), 30.0);
    // A first HLS segment (GOP 1 s) for the playlist requests below.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let host = s.addr.to_string();
    let own = format!("http://{host}");
    let evil = Some("http://evil.example");

    // Cross-site WebSocket hijacking: refused on every live route.
    for path in ["/ws/h264", "/ws/fmp4"] {
        let (st, head) = tcp(s.addr, &ws(path, &host, evil)).await;
        assert_eq!(st, 403, "{path} from a foreign page: {head}");
        assert!(head.contains("allowed origins"), "says what to do: {head}");
        let (st, _) = tcp(s.addr, &ws(path, &host, Some(&own))).await;
        assert_eq!(st, 101, "{path} from our own page");
        let (st, _) = tcp(s.addr, &ws(path, &host, None)).await;
        assert_eq!(st, 101, "{path} without Origin (not a browser)");
        let (st, _) = tcp(s.addr, &ws(path, &host, Some("null"))).await;
        assert_eq!(st, 403, "{path} from a sandboxed page");
    }
    for path in [
        "/stream.mp4",
        "/mjpeg",
        "/snapshot.jpg",
        "/api/status",
        "/hls/live.m3u8",
    ] {
        let (st, head) = tcp(s.addr, &get(path, &host, evil, "")).await;
        assert_eq!(st, 403, "{path} read by a foreign page: {head}");
    }
    // HLS: no CORS without configuration (it was `*`).
    let (st, head) = tcp(s.addr, &get("/hls/live.m3u8", &host, None, "")).await;
    assert_eq!(st, 200, "{head}");
    assert!(
        header(&head, "access-control-allow-origin").is_empty(),
        "{head}"
    );

    // A viewer token is the admin's grant: the page holding it may view and
    // read (CORS for exactly that origin, once).
    let (st, _) = tcp(s.addr, &ws(&format!("/ws/h264?token={TOKEN}"), &host, evil)).await;
    assert_eq!(st, 101, "foreign page with a token");
    let (st, head) = tcp(
        s.addr,
        &get(&format!("/hls/live.m3u8?token={TOKEN}"), &host, evil, ""),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        ["http://evil.example"]
    );
    let (st, _) = tcp(
        s.addr,
        &ws("/ws/h264?token=wrong-token-0123456789", &host, evil),
    )
    .await;
    assert_eq!(st, 403, "a wrong token is no grant");

    // The admin lists the printer's origin in the settings panel.
    let printer = Some("http://printer.local:8080");
    let (st, _) = tcp(s.addr, &ws("/ws/h264", &host, printer)).await;
    assert_eq!(st, 403);
    let cookie = admin_cookie(s.addr).await;
    let body = r#"{"allowed_hosts":[],"allowed_origins":["http://Printer.local:8080"]}"#;
    let (st, head) = tcp(
        s.addr,
        &post(
            "/api/access",
            &host,
            "http://printer.local:8080",
            &format!("Cookie: {cookie}\r\n"),
            body,
        )
        .replace("POST", "PUT"),
    )
    .await;
    assert_eq!(st, 403, "a listed origin still changes nothing: {head}");
    let (st, head) = tcp(
        s.addr,
        &post("/api/access", &host, &own, "", body).replace("POST", "PUT"),
    )
    .await;
    assert_eq!(st, 401, "only the admin lists origins: {head}");
    let (st, head) = tcp(
        s.addr,
        &post(
            "/api/access",
            &host,
            &own,
            &format!("Cookie: {cookie}\r\n"),
            body,
        )
        .replace("POST", "PUT"),
    )
    .await;
    assert_eq!(st, 200, "{head}");
    assert!(head.contains("http://printer.local:8080"), "{head}");
    for path in ["/ws/h264", "/ws/fmp4"] {
        let (st, _) = tcp(s.addr, &ws(path, &host, printer)).await;
        assert_eq!(st, 101, "{path} from the listed origin");
    }
    let (st, head) = tcp(s.addr, &get("/hls/live.m3u8", &host, printer, "")).await;
    assert_eq!(st, 200);
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        ["http://printer.local:8080"],
        "once, for that origin: {head}"
    );
    assert!(header(&head, "vary").contains(&"Origin"), "{head}");
    let (st, _) = tcp(s.addr, &ws("/ws/h264", &host, evil)).await;
    assert_eq!(st, 403, "others stay refused");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_origins_are_allowed_from_the_start() {
    let s = server(
        SecurityConfig {
            allowed_origins: vec!["http://printer.local".into()],
            ..SecurityConfig::default()
        },
        None,
    )
    .await;
    let _feed = common::publish_fixture(s.state.clone(), 30.0);
    let host = s.addr.to_string();
    let (st, _) = tcp(s.addr, &ws("/ws/h264", &host, Some("http://printer.local"))).await;
    assert_eq!(st, 101);
    let (st, _) = tcp(
        s.addr,
        &ws("/ws/h264", &host, Some("http://printer.local:81")),
    )
    .await;
    assert_eq!(st, 403, "another port is another origin");
    s.stop().await;
}

/// CORS pre-flight: a listed origin learns what it may send (no credentials
/// ride on a pre-flight, so a viewer password does not block it); others,
/// and admin routes, get no grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_is_answered_for_listed_origins_only() {
    let s = server(
        SecurityConfig {
            allowed_origins: vec!["http://printer.local".into()],
            ..SecurityConfig::default()
        },
        None,
    )
    .await;
    let host = s.addr.to_string();
    let preflight = |path: &str, origin: &str| {
        format!(
            "OPTIONS {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
        )
    };
    let (st, head) = tcp(s.addr, &preflight("/stream.mp4", "http://printer.local")).await;
    assert_eq!(st, 204, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        ["http://printer.local"]
    );
    assert_eq!(header(&head, "access-control-allow-methods"), ["GET, HEAD"]);
    assert_eq!(header(&head, "allow"), ["GET, HEAD, OPTIONS"]);
    let (st, _) = tcp(s.addr, &preflight("/stream.mp4", "http://evil.example")).await;
    assert_eq!(st, 403);
    let (st, head) = tcp(s.addr, &preflight("/api/update", "http://printer.local")).await;
    assert_eq!(st, 204);
    assert!(
        header(&head, "access-control-allow-origin").is_empty()
            && header(&head, "access-control-allow-methods").is_empty(),
        "no grant on an admin route: {head}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_cannot_set_up_or_use_the_camera() {
    let s = server(
        SecurityConfig {
            hostname: Some("pinhole".into()),
            allowed_hosts: vec!["cam.example.org".into()],
            ..SecurityConfig::default()
        },
        None,
    )
    .await;
    let _feed = common::publish_fixture(s.state.clone(), 30.0);
    let port = s.addr.port();
    // The attack: the page's name resolves to the camera; Host and Origin
    // are both the attacker's, so the Origin check alone let it through.
    let evil_host = format!("rebind.attacker.example:{port}");
    let evil_origin = format!("http://{evil_host}");
    let setup = format!("{{\"password\":\"{ADMIN_PASSWORD}\"}}");
    let (st, head) = tcp(
        s.addr,
        &post("/api/auth/setup", &evil_host, &evil_origin, "", &setup),
    )
    .await;
    assert_eq!(st, 403, "first-boot setup through rebinding: {head}");
    assert!(head.contains("not a name of this camera"), "{head}");
    assert!(!s.state.auth.has_password());
    for req in [
        get("/api/status", &evil_host, None, ""),
        get("/api/auth", &evil_host, None, ""),
        get("/", &evil_host, None, ""),
        get("/snapshot.jpg", &evil_host, Some(&evil_origin), ""),
        ws("/ws/h264", &evil_host, Some(&evil_origin)),
        post(
            "/api/https",
            &evil_host,
            &evil_origin,
            "",
            r#"{"enabled":true}"#,
        )
        .replace("POST", "PUT"),
    ] {
        let (st, head) = tcp(s.addr, &req).await;
        assert_eq!(st, 403, "{req}: {head}");
    }
    // Its own names work: IP literals, hostname, .local, localhost, listed.
    for h in [
        s.addr.to_string(),
        format!("pinhole:{port}"),
        format!("Pinhole.local:{port}"),
        format!("localhost:{port}"),
        format!("cam.example.org:{port}"),
    ] {
        let (st, head) = tcp(s.addr, &get("/api/status", &h, None, "")).await;
        assert_eq!(st, 200, "{h}: {head}");
    }
    let (st, head) = tcp(
        s.addr,
        &get(
            "/api/status",
            &format!("pinhole.attacker.example:{port}"),
            None,
            "",
        ),
    )
    .await;
    assert_eq!(st, 403, "{head}");
    let own = format!("pinhole.local:{port}");
    let (st, head) = tcp(
        s.addr,
        &post(
            "/api/auth/setup",
            &own,
            &format!("http://{own}"),
            "",
            &setup,
        ),
    )
    .await;
    assert_eq!(st, 200, "{head}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_logins_do_not_skip_the_throttle() {
    let s = server(SecurityConfig::default(), None).await;
    let _ = admin_cookie(s.addr).await;
    let host = s.addr.to_string();
    let origin = format!("http://{host}");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..25 {
        let req = post(
            "/api/auth/login",
            &host,
            &origin,
            "",
            &format!("{{\"password\":\"wrong password {i}\"}}"),
        );
        let addr = s.addr;
        tasks.spawn(async move { tcp(addr, &req).await.0 });
    }
    let mut checked = 0;
    let mut refused = 0;
    while let Some(st) = tasks.join_next().await {
        match st.expect("task") {
            401 => checked += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Two free failures and the third that starts the backoff; the rest wait.
    assert!(
        checked <= 3,
        "{checked} of 25 parallel guesses were checked"
    );
    assert_eq!(checked + refused, 25);
    s.stop().await;
}

async fn login_as(sock: &Path, ip: &str, password: &str) -> (u16, String) {
    let s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    raw(
        s,
        &post(
            "/api/auth/login",
            "localhost",
            "http://localhost",
            &format!("X-Real-IP: {ip}\r\n"),
            &format!("{{\"password\":\"{password}\"}}"),
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_from_many_addresses_does_not_lock_the_admin_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("p.sock");
    let server = TestServer::start_unix(&sock, ServerConfig::default()).await;
    let s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    let setup = format!("{{\"password\":\"{ADMIN_PASSWORD}\"}}");
    let (st, head) = raw(
        s,
        &post(
            "/api/auth/setup",
            "localhost",
            "http://localhost",
            "X-Real-IP: 192.168.1.20\r\n",
            &setup,
        ),
    )
    .await;
    assert_eq!(st, 200, "{head}");
    // The admin logged in from this address before.
    assert_eq!(login_as(&sock, "192.168.1.20", ADMIN_PASSWORD).await.0, 200);

    // One wrong guess from each of many addresses: the global backoff shuts.
    let mut last = 0;
    for i in 0..30 {
        last = login_as(
            &sock,
            &format!("10.9.{}.{}", i / 200, i % 200 + 1),
            "guess guess",
        )
        .await
        .0;
    }
    assert_eq!(last, 429, "the global backoff is on");
    let (st, head) = login_as(&sock, "10.8.0.1", ADMIN_PASSWORD).await;
    assert_eq!(
        st, 429,
        "a new address waits, even with the password: {head}"
    );
    assert!(header(&head, "retry-after").len() == 1, "{head}");
    // The admin's known address still gets in, throughout the flood.
    let (st, head) = login_as(&sock, "192.168.1.20", ADMIN_PASSWORD).await;
    assert_eq!(st, 200, "the admin is not locked out: {head}");
    for i in 0..5 {
        let _ = login_as(&sock, &format!("10.7.0.{}", i + 1), "guess guess").await;
    }
    let (st, head) = login_as(&sock, "192.168.1.20", ADMIN_PASSWORD).await;
    assert_eq!(st, 200, "{head}");
    // …but its own backoff applies as to anyone.
    for _ in 0..3 {
        let _ = login_as(&sock, "192.168.1.20", "typo typo").await;
    }
    assert_eq!(login_as(&sock, "192.168.1.20", ADMIN_PASSWORD).await.0, 429);
    server.stop().await;
}

/// The segment and part files of a media playlist (served by nginx itself).
fn media_files(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| {
            if l.ends_with(".m4s") && !l.starts_with('#') {
                Some(l.to_owned())
            } else {
                l.split("URI=\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_cors_is_sent_once_and_only_when_allowed_and_rebinding_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let hls = tmp.path().join("hls");
    let sock = tmp.path().join("pinholed.sock");
    std::fs::create_dir(&hls).expect("mkdir");
    std::fs::create_dir(tmp.path().join("nginx")).expect("mkdir");
    let server = TestServer::start_unix(
        &sock,
        ServerConfig {
            hls_dir: Some(hls.clone()),
            security: SecurityConfig {
                allowed_origins: vec!["http://printer.local".into()],
                ..SecurityConfig::default()
            },
            ..ServerConfig::default()
        },
    )
    .await;
    let state = server.state.clone();
    let _feed = common::publish_fixture(state.clone(), 30.0);
    let nginx = nginx::start(&tmp.path().join("nginx"), &hls, &sock);
    let addr: SocketAddr = ([127, 0, 0, 1], nginx.port).into();
    let host = addr.to_string();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let printer = Some("http://printer.local");
    let evil = Some("http://evil.example");
    // The playlist (proxied): no CORS by default, once for a listed origin.
    let (st, head) = tcp(addr, &get("/hls/live.m3u8", &host, None, "")).await;
    assert_eq!(st, 200, "{head}");
    assert!(
        header(&head, "access-control-allow-origin").is_empty(),
        "{head}"
    );
    let playlist = head.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    let (st, head) = tcp(addr, &get("/hls/live.m3u8", &host, printer, "")).await;
    assert_eq!(st, 200, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        ["http://printer.local"],
        "{head}"
    );
    let (st, _) = tcp(addr, &get("/hls/live.m3u8", &host, evil, "")).await;
    assert_eq!(st, 403);

    // A file nginx serves itself, after asking pinholed (auth_request).
    let files = media_files(&playlist);
    let file = files
        .iter()
        .find(|f| hls.join(f).exists())
        .unwrap_or_else(|| panic!("a media file on disk among {files:?}"));
    let path = format!("/hls/{file}");
    let (st, head) = tcp(addr, &get(&path, &host, None, "")).await;
    assert_eq!(st, 200, "{head}");
    assert!(
        header(&head, "access-control-allow-origin").is_empty(),
        "{head}"
    );
    let (st, head) = tcp(addr, &get(&path, &host, printer, "")).await;
    assert_eq!(st, 200, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        ["http://printer.local"],
        "{head}"
    );
    let (st, head) = tcp(addr, &get(&path, &host, evil, "")).await;
    assert_eq!(st, 403, "{head}");

    // WebSockets through nginx: the same rule.
    let (st, _) = tcp(addr, &ws("/ws/h264", &host, evil)).await;
    assert_eq!(st, 403);
    let (st, _) = tcp(addr, &ws("/ws/h264", &host, printer)).await;
    assert_eq!(st, 101);

    // DNS rebinding through nginx: refused on proxied routes and on the
    // files nginx serves itself.
    let rebound = format!("rebind.attacker.example:{}", nginx.port);
    for p in ["/api/status", "/hls/live.m3u8", path.as_str(), "/ws/h264"] {
        let req = if p.starts_with("/ws/") {
            ws(p, &rebound, Some(&format!("http://{rebound}")))
        } else {
            get(p, &rebound, None, "")
        };
        let (st, head) = tcp(addr, &req).await;
        assert_eq!(st, 403, "{p} with a rebound Host: {head}");
    }
    drop(nginx);
    server.stop().await;
}
