//! `/api/https` over real HTTP: admin-only to change, and what it changes is
//! the flag file the device's path unit watches (docs/security.md).

mod common;

use std::time::Duration;

use common::{send_json, TestServer};
use http::Method;
use pinhole_hub::HubConfig;
use pinhole_server::auth::SecurityConfig;
use pinhole_server::https::FLAG_FILE;
use pinhole_server::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_turns_https_on_and_off() {
    let data = tempfile::tempdir().expect("tmp");
    let server = TestServer::start_with(
        HubConfig::default(),
        ServerConfig {
            security: SecurityConfig {
                data_dir: Some(data.path().to_owned()),
                ..SecurityConfig::default()
            },
            ..ServerConfig::default()
        },
    )
    .await;
    let a = server.addr;
    let flag = data.path().join(FLAG_FILE);
    let state = || async {
        let r = common::get(&server.url("/api/https"), Duration::from_secs(2)).await;
        assert_eq!(r.status, 200);
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["enabled"].clone()
    };
    assert_eq!(state().await, false);

    let on = r#"{"enabled":true}"#;
    let r = send_json(a, Method::PUT, "/api/https", on, &[]).await;
    assert_eq!(r.status, 401, "no password set yet");
    let cookie = common::admin_cookie(a).await;
    let r = send_json(a, Method::PUT, "/api/https", on, &[]).await;
    assert_eq!(r.status, 401, "no session");
    let r = send_json(
        a,
        Method::PUT,
        "/api/https",
        on,
        &[("cookie", &cookie), ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403, "cross-origin");
    assert!(!flag.exists());

    let r = send_json(a, Method::PUT, "/api/https", on, &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(flag.is_file());
    assert_eq!(state().await, true);

    let r = send_json(
        a,
        Method::PUT,
        "/api/https",
        "{\"enabled\":1}",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(flag.is_file(), "a bad request changes nothing");

    let off = r#"{"enabled":false}"#;
    let r = send_json(a, Method::PUT, "/api/https", off, &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    assert!(!flag.exists());
    assert_eq!(state().await, false);
    server.stop().await;
}
