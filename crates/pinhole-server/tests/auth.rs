//! Access control over real HTTP: first-boot setup, sessions, cookies,
//! throttling, Origin, the viewer policy, the proxy socket — and that no
//! secret ever reaches the logs.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::{post_json, TestServer, ADMIN_PASSWORD};
use http_body_util::{BodyExt, Empty};
use pinhole_hub::HubConfig;
use pinhole_media::SimClock;
use pinhole_server::auth::{SecurityConfig, ViewerAccess};
use pinhole_server::ServerConfig;

/// Everything every test logs, at TRACE, for the no-secrets check.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Writer(b.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cookie_of(r: &common::HttpResponse) -> String {
    r.headers["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("kv")
        .to_owned()
}

fn pw(p: &str) -> String {
    format!("{{\"password\":\"{p}\"}}")
}

/// A server on the simulated clock (see `TestServer::start_sim`).
async fn start_sim(sec: SecurityConfig) -> (TestServer, Arc<SimClock>) {
    log_buffer();
    TestServer::start_sim(
        HubConfig::default(),
        ServerConfig {
            security: sec,
            ..ServerConfig::default()
        },
    )
    .await
}

async fn start(sec: SecurityConfig) -> TestServer {
    log_buffer();
    TestServer::start_with(
        HubConfig::default(),
        ServerConfig {
            security: sec,
            ..ServerConfig::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_boot_setup_then_sessions_guard_admin_actions() {
    let data = tempfile::tempdir().expect("tmp");
    let server = start(SecurityConfig {
        data_dir: Some(data.path().to_owned()),
        ..SecurityConfig::default()
    })
    .await;
    let a = server.addr;

    let r = common::get(&server.url("/api/auth"), Duration::from_secs(2)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["setup_needed"], true);
    assert_eq!(v["logged_in"], false);
    // The live view works without a password, admin actions do not.
    let r = common::get(&server.url("/api/status"), Duration::from_secs(2)).await;
    assert_eq!(r.status, 200);
    for path in ["/api/update", "/api/camera", "/api/reboot", "/api/settings"] {
        let r = post_json(a, path, "{}", &[]).await;
        assert_eq!(r.status, 401, "{path}");
    }
    let r = post_json(a, "/api/auth/login", &pw("whatever1"), &[]).await;
    assert_eq!(r.status, 409, "no login before setup");
    let r = post_json(a, "/api/auth/setup", &pw("short"), &[]).await;
    assert_eq!(r.status, 422);
    let r = post_json(
        a,
        "/api/auth/setup",
        &pw(ADMIN_PASSWORD),
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403, "cross-origin setup");

    let r = post_json(a, "/api/auth/setup", &pw(ADMIN_PASSWORD), &[]).await;
    assert_eq!(r.status, 200);
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure");
    let cookie = cookie_of(&r);
    assert_eq!(cookie.len(), "pinhole_session=".len() + 64);
    let r = post_json(a, "/api/auth/setup", &pw("another password"), &[]).await;
    assert_eq!(r.status, 409, "setup only once");

    // Stored as Argon2id, mode 0600, never in clear.
    let file = data.path().join("admin.json");
    let text = std::fs::read_to_string(&file).expect("admin.json");
    assert!(text.contains("$argon2id$"), "{text}");
    assert!(!text.contains(ADMIN_PASSWORD));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // With the session: admin routes pass the guard (404: no such route).
    let r = post_json(a, "/api/no-such-route", "{}", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let r = post_json(a, "/api/update", "{}", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 503, "no update service in this test");
    // ...but never cross-origin, even with the cookie.
    let r = post_json(
        a,
        "/api/camera",
        "{}",
        &[("cookie", &cookie), ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = common::get_with(
        &server.url("/api/auth"),
        http::Method::GET,
        &[("cookie", &cookie)],
        Duration::from_secs(2),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["logged_in"], true);
    assert_eq!(v["setup_needed"], false);

    // Password change: the current password is checked; old sessions end.
    let body = |cur: &str, new: &str| format!("{{\"current\":\"{cur}\",\"password\":\"{new}\"}}");
    let r = post_json(
        a,
        "/api/auth/password",
        &body("wrong one!", "brand new password"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post_json(
        a,
        "/api/auth/password",
        &body(ADMIN_PASSWORD, "brand new password"),
        &[],
    )
    .await;
    assert_eq!(r.status, 401, "no session, no change");
    let r = post_json(
        a,
        "/api/auth/password",
        &body(ADMIN_PASSWORD, "brand new password"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cookie2 = cookie_of(&r);
    let r = post_json(a, "/api/camera", "{}", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 401, "the old session ended");
    let r = post_json(a, "/api/no-such-route", "{}", &[("cookie", &cookie2)]).await;
    assert_eq!(r.status, 404);

    // Logout ends the session.
    let r = post_json(a, "/api/auth/logout", "", &[("cookie", &cookie2)]).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = post_json(a, "/api/camera", "{}", &[("cookie", &cookie2)]).await;
    assert_eq!(r.status, 401);

    // The password survives a restart (a new daemon on the same data dir).
    server.stop().await;
    let server = start(SecurityConfig {
        data_dir: Some(data.path().to_owned()),
        ..SecurityConfig::default()
    })
    .await;
    assert!(server.state.auth.has_password());
    let r = post_json(
        server.addr,
        "/api/auth/login",
        &pw("brand new password"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_back_off_exponentially() {
    let (server, clock) = start_sim(SecurityConfig::default()).await;
    let a = server.addr;
    assert_eq!(
        post_json(a, "/api/auth/setup", &pw(ADMIN_PASSWORD), &[])
            .await
            .status,
        200
    );
    // Two free mistakes, then 1 s, 2 s, … per address.
    for _ in 0..3 {
        let r = post_json(a, "/api/auth/login", &pw("nope nope"), &[]).await;
        assert_eq!(r.status, 401);
    }
    let r = post_json(a, "/api/auth/login", &pw(ADMIN_PASSWORD), &[]).await;
    assert_eq!(r.status, 429, "even the right password waits");
    assert_eq!(r.headers["retry-after"], "1");
    clock.advance(999_999);
    let r = post_json(a, "/api/auth/login", &pw(ADMIN_PASSWORD), &[]).await;
    assert_eq!(r.status, 429, "a microsecond early");
    clock.advance(1);
    assert_eq!(
        post_json(a, "/api/auth/login", &pw("nope nope"), &[])
            .await
            .status,
        401
    );
    let r = post_json(a, "/api/auth/login", &pw(ADMIN_PASSWORD), &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "2");
    clock.advance(2_000_000);
    let r = post_json(a, "/api/auth/login", &pw(ADMIN_PASSWORD), &[]).await;
    assert_eq!(r.status, 200, "a success resets the backoff");
    server.stop().await;
}

/// Whether `cookie` is an admin session now (a state change that passes
/// the guard reaches the route table: 404).
async fn is_admin(a: std::net::SocketAddr, cookie: &str) -> bool {
    let r = post_json(a, "/api/no-such-route", "{}", &[("cookie", cookie)]).await;
    assert!(matches!(r.status, 401 | 404), "{}", r.status);
    r.status == 404
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
    let (server, clock) = start_sim(SecurityConfig {
        session_idle: Duration::from_secs(30 * 60),
        session_max: Duration::from_secs(12 * 3600),
        ..SecurityConfig::default()
    })
    .await;
    let a = server.addr;
    let min = |m: u64| m * 60_000_000;
    let cookie = common::admin_cookie(a).await;
    assert!(is_admin(a, &cookie).await);
    // Each use restarts the idle time.
    for _ in 0..3 {
        clock.advance(min(29));
        assert!(is_admin(a, &cookie).await, "used within 30 min");
    }
    clock.advance(min(30));
    assert!(!is_admin(a, &cookie).await, "idle for 30 min");

    // In use all along, a session still ends after 12 h.
    let cookie = common::admin_cookie(a).await;
    for _ in 0..(12 * 60 / 20 - 1) {
        clock.advance(min(20));
        assert!(is_admin(a, &cookie).await);
    }
    clock.advance(min(20));
    assert!(!is_admin(a, &cookie).await, "12 h after the login");
    server.stop().await;
}

/// A request over the Unix socket, as nginx sends it.
async fn unix_get(sock: &Path, path: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    unix_req(sock, http::Method::GET, path, headers).await
}

async fn unix_req(
    sock: &Path,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap) {
    let s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    let mut sender = common::http1(s).await;
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "pinhole.local");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("req"))
        .await
        .expect("resp");
    let st = resp.status().as_u16();
    let h = resp.headers().clone();
    let _ = resp.into_body().collect().await;
    (st, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_the_real_address_decides() {
    log_buffer();
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("p.sock");
    let token = "embed-token-0123456789";
    let server = TestServer::start_unix(
        &sock,
        ServerConfig {
            security: SecurityConfig {
                viewer: ViewerAccess::Lan,
                viewer_tokens: vec![token.into()],
                // nginx passes the browser's Host: the device's name.
                hostname: Some("pinhole".into()),
                ..SecurityConfig::default()
            },
            ..ServerConfig::default()
        },
    )
    .await;
    let addr = server.addr;
    let wan = [
        ("x-real-ip", "203.0.113.9"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let lan = [("x-real-ip", "192.168.1.20")];

    // Not set up yet: nothing for the internet, the LAN gets the live view.
    assert_eq!(unix_get(&sock, "/api/status", &wan).await.0, 403);
    assert_eq!(unix_get(&sock, "/index.html", &wan).await.0, 403);
    assert_eq!(unix_get(&sock, "/api/status", &lan).await.0, 200);
    // A spoofed X-Real-IP over TCP is ignored (the TCP peer is 127.0.0.1).
    let r = common::get_with(
        &format!("http://{addr}/api/status"),
        http::Method::GET,
        &wan,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(r.status, 200);

    // Setup is refused from the internet, accepted from the LAN; HTTPS
    // (X-Forwarded-Proto from nginx) makes the cookie Secure.
    let (st, _) = unix_req(
        &sock,
        http::Method::POST,
        "/api/auth/setup",
        &[("x-real-ip", "203.0.113.9")],
    )
    .await;
    assert_eq!(st, 403);
    let c = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let mut sender = common::http1(c).await;
    let resp = sender
        .send_request(
            http::Request::post("/api/auth/setup")
                .header("host", "pinhole.local")
                .header("origin", "https://pinhole.local")
                .header("x-real-ip", "192.168.1.20")
                .header("x-forwarded-proto", "https")
                .body(http_body_util::Full::new(Bytes::from(pw(ADMIN_PASSWORD))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("; Secure"), "{set}");

    // Set up: the internet gets the UI (to log in) but no live view without
    // a token; the LAN watches freely.
    assert_eq!(unix_get(&sock, "/index.html", &wan).await.0, 200);
    assert_eq!(unix_get(&sock, "/snapshot.jpg", &wan).await.0, 401);
    assert_eq!(unix_get(&sock, "/api/status", &wan).await.0, 401);
    assert_eq!(
        unix_get(&sock, "/api/status?token=wrong-token-00000000", &wan)
            .await
            .0,
        401
    );
    assert_eq!(
        unix_get(&sock, &format!("/api/status?token={token}"), &wan)
            .await
            .0,
        200
    );
    assert_eq!(unix_get(&sock, "/api/status", &lan).await.0, 200);
    // nginx auth_request for the HLS files it serves itself.
    let orig = format!("/hls/part1.m4s?token={token}");
    assert_eq!(
        unix_get(
            &sock,
            "/api/auth/view",
            &[wan[0], ("x-original-uri", &orig)]
        )
        .await
        .0,
        204
    );
    assert_eq!(
        unix_get(
            &sock,
            "/api/auth/view",
            &[wan[0], ("x-original-uri", "/hls/p.m4s")]
        )
        .await
        .0,
        401
    );
    // The token turns into a viewer cookie for the UI's own requests.
    let (st, h) = unix_get(&sock, &format!("/api/auth?token={token}"), &wan).await;
    assert_eq!(st, 200);
    let vc = h["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(vc.starts_with("pinhole_view="), "{vc}");
    assert_eq!(
        unix_get(&sock, "/api/status", &[wan[0], ("cookie", &vc)])
            .await
            .0,
        200
    );
    // A viewer cookie is no admin session.
    let (st, _) = unix_req(
        &sock,
        http::Method::POST,
        "/api/camera",
        &[wan[0], ("cookie", &vc)],
    )
    .await;
    assert_eq!(st, 401);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_policy_needs_a_token_even_on_the_lan() {
    let server = start(SecurityConfig {
        viewer: ViewerAccess::Token,
        viewer_tokens: vec!["abcdefghijklmnopq".into()],
        ..SecurityConfig::default()
    })
    .await;
    assert_eq!(
        post_json(server.addr, "/api/auth/setup", &pw(ADMIN_PASSWORD), &[])
            .await
            .status,
        200
    );
    let r = common::get(&server.url("/snapshot.jpg"), Duration::from_secs(1)).await;
    assert_eq!(r.status, 401);
    let r = common::get(
        &server.url("/api/status?token=abcdefghijklmnopq"),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(r.status, 200);
    // The UI still loads (to offer the login).
    let r = common::get(&server.url("/"), Duration::from_secs(1)).await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

/// A WebSocket viewer with these extra request headers: the first binary
/// message, or the HTTP status that refused the upgrade.
async fn ws_first_frame(url: &str, headers: &[(&str, &str)]) -> Result<usize, u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error, Message};
    let mut req = url.into_client_request().expect("ws request");
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    let mut ws = match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => ws,
        Err(Error::Http(r)) => return Err(r.status().as_u16()),
        Err(e) => panic!("ws: {e}"),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Binary(b) = m {
            return Ok(b.len());
        }
    }
    panic!("no frame within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_password_needs_a_viewer_login_and_grants_only_viewing() {
    let buf = log_buffer();
    let data = tempfile::tempdir().expect("tmp");
    let sec = SecurityConfig {
        data_dir: Some(data.path().to_owned()),
        ..SecurityConfig::default()
    };
    let (server, clock) = start_sim(sec.clone()).await;
    let a = server.addr;
    let publisher = common::publish_fixture(server.state.clone(), 30.0);
    let get = |path: &str, headers: &[(&str, &str)]| {
        let url = server.url(path);
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            common::get_with(&url, http::Method::GET, &h, Duration::from_secs(1)).await
        }
    };
    let origin = format!("http://{a}");
    let admin = common::admin_cookie(a).await;
    let secret = "viewer secret phrase";

    // No viewer password: the LAN (here 127.0.0.1) watches freely.
    assert_eq!(get("/api/status", &[]).await.status, 200);
    assert_eq!(
        post_json(a, "/api/auth/viewer/login", &pw(secret), &[])
            .await
            .status,
        409
    );
    // Only an admin sets it; at least 8 characters.
    assert_eq!(
        post_json(a, "/api/auth/viewer/password", &pw(secret), &[])
            .await
            .status,
        401
    );
    assert_eq!(
        post_json(
            a,
            "/api/auth/viewer/password",
            &pw("short"),
            &[("cookie", &admin)]
        )
        .await
        .status,
        422
    );
    let r = post_json(
        a,
        "/api/auth/viewer/password",
        &pw(secret),
        &[("cookie", &admin)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let file = data.path().join("viewer.json");
    let stored = std::fs::read_to_string(&file).expect("viewer.json");
    assert!(stored.contains("$argon2id$") && !stored.contains(secret));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Now LAN viewers log in too: live routes, the API, nginx's auth_request.
    assert_eq!(get("/api/status", &[]).await.status, 401);
    assert_eq!(get("/snapshot.jpg", &[]).await.status, 401);
    assert_eq!(
        ws_first_frame(&server.ws_url("/ws/h264"), &[]).await,
        Err(401)
    );
    let hls = [("x-original-uri", "/hls/part1.m4s")];
    assert_eq!(get("/api/auth/view", &hls).await.status, 401);
    let st: serde_json::Value = serde_json::from_slice(&get("/api/auth", &[]).await.body).unwrap();
    assert_eq!(st["may_view"], false);
    assert_eq!(st["viewer_password"], true);
    // The UI itself still loads, to show the prompt; an admin still watches.
    assert_eq!(get("/", &[]).await.status, 200);
    assert_eq!(get("/api/status", &[("cookie", &admin)]).await.status, 200);

    // Wrong passwords: 401, then the login backoff (shared with the admin
    // login: same addresses, same table).
    for _ in 0..3 {
        let r = post_json(a, "/api/auth/viewer/login", &pw("not the password"), &[]).await;
        assert_eq!(r.status, 401);
        assert!(r.headers.get("set-cookie").is_none());
    }
    let r = post_json(a, "/api/auth/viewer/login", &pw(secret), &[]).await;
    assert_eq!(r.status, 429, "even the right password waits");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(
        post_json(a, "/api/auth/login", &pw(ADMIN_PASSWORD), &[])
            .await
            .status,
        429,
        "and the admin login from the same address"
    );
    clock.advance(1_000_000);
    let r = post_json(a, "/api/auth/viewer/login", &pw(secret), &[]).await;
    assert_eq!(r.status, 200);
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("pinhole_view="), "{set}");
    for attr in ["; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let viewer = cookie_of(&r);
    let vc = [("cookie", viewer.as_str())];

    // The viewer session watches everywhere.
    assert_eq!(get("/api/status", &vc).await.status, 200);
    let snap = get("/snapshot.jpg", &vc).await;
    assert_eq!(snap.status, 200);
    assert_eq!(&snap.body[..2], &[0xff, 0xd8], "a JPEG");
    assert!(
        ws_first_frame(&server.ws_url("/ws/h264"), &vc)
            .await
            .unwrap()
            > 0
    );
    assert!(
        ws_first_frame(&server.ws_url("/ws/fmp4"), &vc)
            .await
            .unwrap()
            > 0
    );
    assert_eq!(get("/api/auth/view", &[vc[0], hls[0]]).await.status, 204);
    let st: serde_json::Value = serde_json::from_slice(&get("/api/auth", &vc).await.body).unwrap();
    assert_eq!(
        (st["may_view"].clone(), st["logged_in"].clone()),
        (true.into(), false.into())
    );

    // …and nothing else: no admin action, under either cookie name.
    let as_session = format!("pinhole_session={}", viewer.split_once('=').unwrap().1);
    for c in [viewer.as_str(), as_session.as_str()] {
        let h = [("cookie", c), ("origin", origin.as_str())];
        let r = common::get_with(
            &server.url("/api/camera"),
            http::Method::PUT,
            &h,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(r.status, 401, "camera with {c}");
        for path in [
            "/api/auth/viewer/password",
            "/api/auth/password",
            "/api/update",
        ] {
            let r = post_json(a, path, &pw("another password"), &[("cookie", c)]).await;
            assert_eq!(r.status, 401, "{path} with {c}");
        }
        let r = common::get_with(
            &server.url("/api/auth/viewer/password"),
            http::Method::DELETE,
            &h,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    assert!(server.state.auth.has_viewer_password());

    // It survives a restart (the hash is in the data dir).
    publisher.abort();
    server.stop().await;
    let server = start(sec).await;
    let a = server.addr;
    assert_eq!(
        common::get(&server.url("/api/status"), Duration::from_secs(1))
            .await
            .status,
        401
    );
    // The admin removes it: LAN viewing is free again, viewer sessions end.
    let r = post_json(a, "/api/auth/viewer/login", &pw(secret), &[]).await;
    assert_eq!(r.status, 200);
    let viewer = cookie_of(&r);
    let admin = common::admin_cookie(a).await;
    let r = common::get_with(
        &server.url("/api/auth/viewer/password"),
        http::Method::DELETE,
        &[("cookie", &admin), ("origin", &format!("http://{a}"))],
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!data.path().join("viewer.json").exists());
    assert!(!server.state.auth.has_viewer_password());
    let st: serde_json::Value = serde_json::from_slice(
        &common::get_with(
            &server.url("/api/auth"),
            http::Method::GET,
            &[("cookie", &viewer)],
            Duration::from_secs(1),
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(st["viewer_password"], false);
    assert_eq!(
        common::get(&server.url("/api/status"), Duration::from_secs(1))
            .await
            .status,
        200
    );
    server.stop().await;

    let logs = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    assert!(logs.contains("viewer logged in"), "logging works");
    assert!(logs.contains("failed viewer login"));
    assert!(!logs.contains(secret), "viewer password in the logs");
    assert!(
        !logs.contains(viewer.split_once('=').unwrap().1),
        "viewer session in the logs"
    );
}

/// Last: everything the other tests in this binary logged (at TRACE) plus a
/// fresh round of setup/login/change/wrong logins must hold no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_passwords_or_tokens() {
    let buf = log_buffer();
    let server = start(SecurityConfig::default()).await;
    let a = server.addr;
    let first = "first secret password";
    let second = "second secret password";
    let wrong = "wrong secret guess";
    let r = post_json(a, "/api/auth/setup", &pw(first), &[]).await;
    assert_eq!(r.status, 200);
    let c1 = cookie_of(&r);
    assert_eq!(
        post_json(a, "/api/auth/login", &pw(wrong), &[])
            .await
            .status,
        401
    );
    let r = post_json(a, "/api/auth/login", &pw(first), &[]).await;
    let c2 = cookie_of(&r);
    let body = format!("{{\"current\":\"{first}\",\"password\":\"{second}\"}}");
    let r = post_json(a, "/api/auth/password", &body, &[("cookie", &c2)]).await;
    assert_eq!(r.status, 200);
    let c3 = cookie_of(&r);
    // Malformed bodies must not be echoed either.
    let r = post_json(
        a,
        "/api/auth/login",
        &format!("{{\"password\":\"{wrong}\""),
        &[],
    )
    .await;
    assert!(!String::from_utf8_lossy(&r.body).contains(wrong));
    server.stop().await;

    let logs = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    assert!(logs.contains("admin password set"), "logging works: {logs}");
    assert!(logs.contains("failed admin login"));
    for secret in [
        first,
        second,
        wrong,
        ADMIN_PASSWORD,
        "brand new password",
        "viewer secret phrase",
    ] {
        assert!(!logs.contains(secret), "password {secret:?} in the logs");
    }
    for c in [c1, c2, c3] {
        let token = c.split_once('=').unwrap().1;
        assert!(!logs.contains(token), "session token in the logs");
    }
    assert!(!logs.contains("$argon2id$"), "hash in the logs");
}
