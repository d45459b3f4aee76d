//! `/api/push`: the admin lists, adds and removes push targets; targets
//! added here survive a restart (push.json, mode 0600, in the data dir);
//! no answer carries a stream key; viewers and strangers get nothing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{admin_cookie, post_json, send_json, TestServer};
use pinhole_hub::HubConfig;
use pinhole_push::{PushSet, PushUrl};
use pinhole_server::auth::SecurityConfig;
use pinhole_server::state::ServerConfig;

const KEY: &str = "secret-stream-key-42";

async fn start(data: &std::path::Path) -> TestServer {
    let server = TestServer::start_with(
        HubConfig::default(),
        ServerConfig {
            security: SecurityConfig {
                data_dir: Some(data.to_owned()),
                ..SecurityConfig::default()
            },
            ..ServerConfig::default()
        },
    )
    .await;
    let set = PushSet::new(server.state.hub.clone());
    // One target from the "config file".
    set.add(PushUrl::parse("rtmp://127.0.0.1:9/live/from-config").unwrap());
    let _ = server.state.push.set(set);
    pinhole_server::push_api::start_saved(&server.state);
    server
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_adds_and_removes_targets_and_keys_never_come_back() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let a = server.addr;
    let cookie = admin_cookie(a).await;
    let auth = [("cookie", cookie.as_str())];

    // Nobody but the admin, not even to read.
    let r = common::get(&server.url("/api/push"), Duration::from_secs(2)).await;
    assert_eq!(r.status, 401);
    let url = format!("rtmp://127.0.0.1:9/live/{KEY}");
    let r = post_json(a, "/api/push", &format!("{{\"url\":\"{url}\"}}"), &[]).await;
    assert_eq!(r.status, 401);

    // Bad URLs are refused with the reason, never echoing the key.
    let r = post_json(a, "/api/push", "{\"url\":\"rtmpt://h/live/sekrit\"}", &auth).await;
    assert_eq!(r.status, 400);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(text.contains("rtmpt") && !text.contains("sekrit"), "{text}");
    let r = post_json(a, "/api/push", "{\"url\": 5, \"x\": \"sekrit\"}", &auth).await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.body).contains("sekrit"));

    let r = post_json(a, "/api/push", &format!("{{\"url\":\"{url}\"}}"), &auth).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = json(&r.body);
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["from"], "config");
    assert_eq!(targets[1]["from"], "api");
    assert_eq!(targets[1]["url"], "rtmp://127.0.0.1:9/live/***-42");
    assert!(!v.to_string().contains(&KEY[..10]));

    // Saved root-only (mode 0600), with the key: it is the publishing password.
    let file = data.path().join("push.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains(KEY));

    // The target runs (port 9 refuses): its error shows, not its key.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = common::get_with(
        &server.url("/api/push"),
        http::Method::GET,
        &auth,
        Duration::from_secs(2),
    )
    .await;
    let v = json(&r.body);
    assert_eq!(v["targets"][1]["state"], "backing_off", "{v}");
    assert!(v["targets"][1]["last_error"].is_string());
    // The status page lists both for the admin only.
    let s = common::get_with(
        &server.url("/api/status"),
        http::Method::GET,
        &auth,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(json(&s.body)["push"].as_array().map(Vec::len), Some(2));
    assert!(!String::from_utf8_lossy(&s.body).contains(&KEY[..10]));

    // A restart (a new server on the same data dir) starts it again.
    let config_id = v["targets"][0]["id"].as_u64().unwrap();
    server.stop().await;
    let server = start(data.path()).await;
    let a = server.addr;
    let cookie = admin_cookie(a).await;
    let auth = [("cookie", cookie.as_str())];
    let listed: Vec<String> = server
        .state
        .push
        .get()
        .unwrap()
        .statuses()
        .into_iter()
        .map(|s| s.url)
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");

    // Removing: the config's target cannot be, the saved one can.
    let del =
        |path: String| async move { send_json(a, http::Method::DELETE, &path, "", &auth).await };
    let r = del(format!("/api/push/{config_id}")).await;
    assert_eq!(r.status, 409);
    let r = del("/api/push/999".into()).await;
    assert_eq!(r.status, 404);
    let saved_id = server.state.push.get().unwrap().list()[1].id;
    let r = del(format!("/api/push/{saved_id}")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r.body)["targets"].as_array().map(Vec::len), Some(1));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "[]");

    // The panel's form: URL and key in two fields; SRT's key is its
    // passphrase. Added switched off, it is listed as disabled and saved so.
    let body = format!(
        "{{\"url\":\"srt://127.0.0.1:9?streamid=cam\",\"key\":\"{KEY}\",\"enabled\":false}}"
    );
    let r = post_json(a, "/api/push", &body, &auth).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = json(&r.body);
    let t = &v["targets"][1];
    assert_eq!(t["url"], "srt://127.0.0.1:9?streamid=***&passphrase=***");
    assert_eq!(
        (t["state"].as_str(), t["enabled"].as_bool()),
        (Some("disabled"), Some(false))
    );
    assert!(!v.to_string().contains(&KEY[..10]));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("\"enabled\":false") && saved.contains(KEY),
        "{saved}"
    );
    let id = t["id"].as_u64().unwrap();
    let patch = |body: &'static str| {
        let path = format!("/api/push/{id}");
        async move { send_json(a, http::Method::PATCH, &path, body, &auth).await }
    };
    // Enabled: it runs (port 9 refuses), backs off with a countdown.
    let r = patch("{\"enabled\":true}").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let t = loop {
        let r = common::get_with(
            &server.url("/api/push"),
            http::Method::GET,
            &auth,
            Duration::from_secs(2),
        )
        .await;
        let t = json(&r.body)["targets"][1].clone();
        if t["state"] == "backing_off" && t["last_error"].is_string() {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never backed off: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        t["retry_in_ms"].as_u64().is_some_and(|ms| ms <= 30_000),
        "{t}"
    );
    assert!(!t.to_string().contains(&KEY[..10]), "{t}");
    let r = patch("{\"clear_error\":true,\"enabled\":false}").await;
    let t = json(&r.body)["targets"][1].clone();
    assert_eq!(
        (t["state"].as_str(), t["last_error"].is_null()),
        (Some("disabled"), true),
        "{t}"
    );
    let r = patch("{\"enabled\":\"sekrit\"}").await;
    assert_eq!(r.status, 400);
    let r = send_json(
        a,
        http::Method::PATCH,
        "/api/push/999",
        "{\"enabled\":true}",
        &auth,
    )
    .await;
    assert_eq!(r.status, 404);
    // Not for strangers.
    let r = send_json(
        a,
        http::Method::PATCH,
        &format!("/api/push/{id}"),
        "{\"enabled\":true}",
        &[],
    )
    .await;
    assert_eq!(r.status, 401);
}

/// A target's own CA (the panel's "Private CA" field): only for TLS
/// targets, checked, kept in the data dir by its contents, listed, and
/// given back to the target after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_target_brings_its_own_ca() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let a = server.addr;
    let cookie = admin_cookie(a).await;
    let auth = [("cookie", cookie.as_str())];
    let ca = data.path().join("made-ca.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=test CA", "-keyout"])
        .arg(data.path().join("made-ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&ca).unwrap();
    let body =
        |url: &str, ca: &str| serde_json::json!({"url": url, "key": KEY, "tls_ca": ca}).to_string();

    // Not for a target without TLS; not something that is no certificate.
    let r = post_json(
        a,
        "/api/push",
        &body("rtmp://127.0.0.1:9/live", &pem),
        &auth,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("rtmps://"));
    let r = post_json(
        a,
        "/api/push",
        &body(
            "rtmps://127.0.0.1:9/live",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ),
        &auth,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("the CA"));
    assert!(!data.path().join("push-ca").exists());

    let r = post_json(
        a,
        "/api/push",
        &body("rtmps://127.0.0.1:9/live", &pem),
        &auth,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = json(&r.body);
    let kept = v["targets"][1]["tls_ca"]
        .as_str()
        .expect("tls_ca listed")
        .to_owned();
    assert!(kept.contains("push-ca"), "{kept}");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), pem);
    assert!(v["targets"][0]["tls_ca"].is_null());
    // The target uses it: port 9 refuses before any TLS, so the error is
    // the connection's, not "tls_ca …: no PEM certificate".
    tokio::time::sleep(Duration::from_secs(1)).await;
    let err = server.state.push.get().unwrap().list()[1]
        .status
        .last_error
        .clone();
    assert!(!err.unwrap_or_default().contains("tls_ca"));

    server.stop().await;
    let server = start(data.path()).await;
    let listed = server.state.push.get().unwrap().list();
    assert_eq!(
        listed[1].tls_ca.as_deref(),
        Some(std::path::Path::new(&kept))
    );
}
