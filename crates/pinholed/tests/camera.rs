//! `GET/PUT /api/camera` against the real daemon (test pattern, small size).

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "camera test password";

struct Daemon {
    child: Child,
    addr: String,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let (child, addr, _log) = common::spawn_daemon(args);
        Daemon { child, addr }
    }

    async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        request(&self.addr, method, path, headers, body).await
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.req("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).expect("json")
    }

    async fn wait_status(&self, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.json("/api/status").await;
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "status never matched: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An admin session cookie: sets the password first if needed.
    async fn admin(&self) -> String {
        common::admin(&self.addr, PASSWORD).await
    }

    async fn put(&self, cookie: &str, body: &str) -> (u16, Value) {
        common::put_camera(&self.addr, cookie, body).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Resp {
    status: u16,
    body: String,
}

/// Minimal HTTP/1.0 request (the daemon closes the connection after the body).
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let (status, _, body) = common::http(addr, method, path, headers, body).await;
    Resp {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinhole-camera-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_apply_live_are_validated_admin_only_and_persist() {
    let dir = temp_dir("live");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "# my camera\nsource = \"test\"\n[video]\nwidth = 160\nheight = 120\nfps = 10\n\
         bitrate = 200000\n[http]\njpeg_quality = 70\n",
    )
    .expect("config");
    let data = dir.join("data");
    let d = Daemon::start(&["--config", s(&config), "--data-dir", s(&data)]);
    d.wait_status(30, |s| {
        s["source"]["state"] == "running" && s["stream"]["width"] == 160
    })
    .await;

    // GET: values with their ranges, open to viewers.
    let cam = d.json("/api/camera").await;
    assert_eq!(cam["source"], "test");
    assert_eq!(cam["persistent"], true);
    let w = &cam["fields"]["width"];
    assert_eq!(
        (
            w["value"].as_i64(),
            w["min"].as_i64(),
            w["max"].as_i64(),
            w["step"].as_i64()
        ),
        (Some(160), Some(16), Some(3840), Some(2)),
        "{cam}"
    );
    assert_eq!(cam["fields"]["fps"]["value"], 10);
    assert_eq!(cam["fields"]["bitrate"]["value"], 200000);
    for k in ["rotation", "hflip", "vflip"] {
        assert_eq!(cam["fields"][k]["supported"], false, "{k}: {cam}");
        assert!(cam["fields"][k]["note"].as_str().is_some(), "{k} says why");
    }
    assert!(cam["controls"].as_array().is_some_and(|c| c.is_empty()));

    // PUT needs an admin session and a same-origin request.
    let origin = format!("http://{}", d.addr);
    let r = d
        .req(
            "PUT",
            "/api/camera",
            &[("origin", &origin)],
            "{\"width\":192}",
        )
        .await;
    assert!(
        r.status == 401 || r.status == 403,
        "{} {}",
        r.status,
        r.body
    );
    let cookie = d.admin().await;
    // (No Origin at all is a non-browser client: access.rs lets it through.)
    let r = d
        .req(
            "PUT",
            "/api/camera",
            &[("origin", "http://evil.example"), ("cookie", &cookie)],
            "{\"width\":192}",
        )
        .await;
    assert_eq!(r.status, 403, "cross-origin");

    // A viewer that stays connected through the change.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/fmp4", d.addr))
        .await
        .expect("ws connect");
    let mut inits = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while inits.is_empty() {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                inits.push(serde_json::from_str::<Value>(&t).expect("meta"))
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no init message: {other:?}"),
        }
    }
    assert_eq!(inits[0]["type"], "init");
    assert_eq!(inits[0]["width"], 160);

    // Invalid values: 400 naming the field and the range; nothing applied.
    let (st, body) = d.put(&cookie, "{\"width\": 161}").await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["field"], "width");
    assert!(
        body["error"].as_str().unwrap_or("").contains("16-3840"),
        "{body}"
    );
    let (st, body) = d.put(&cookie, "{\"width\": 320, \"fps\": 500}").await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["field"], "fps");
    assert!(
        body["allowed"].as_str().unwrap_or("").contains("1-120"),
        "{body}"
    );
    let (st, body) = d.put(&cookie, "{\"rotation\": 90}").await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("rotation")),
        "{body}"
    );
    let (st, body) = d.put(&cookie, "{\"zoom\": 2}").await;
    assert_eq!((st, body["field"].as_str()), (400, Some("zoom")), "{body}");
    let cam = d.json("/api/camera").await;
    assert_eq!(cam["fields"]["width"]["value"], 160, "nothing half-applied");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("# my camera"), "file untouched so far");

    // A valid change: the stream restarts at the new size, the viewer stays.
    let (st, body) = d
        .put(
            &cookie,
            "{\"width\": 192, \"height\": 144, \"bitrate\": 250000}",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["persisted"], true);
    assert_eq!(body["restarted"], true);
    assert_eq!(body["fields"]["width"]["value"], 192);
    d.wait_status(10, |s| {
        s["stream"]["width"] == 192 && s["stream"]["height"] == 144
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut media_after = 0;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                inits.push(serde_json::from_str::<Value>(&t).expect("meta"));
            }
            Ok(Some(Ok(Message::Binary(_)))) if inits.len() > 1 => {
                media_after += 1;
                if media_after >= 3 {
                    break;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("viewer lost or no new init: {other:?} (inits {inits:?})"),
        }
    }
    let last = inits.last().expect("init");
    assert_eq!(
        (last["type"].as_str(), last["width"].as_i64()),
        (Some("init"), Some(192))
    );
    assert_eq!(last["height"], 144);

    // Saved: other sections intact (comments are not kept).
    let text = std::fs::read_to_string(&config).expect("config");
    let saved: toml::Table = toml::from_str(&text).expect("toml");
    assert_eq!(saved["video"]["width"].as_integer(), Some(192), "{text}");
    assert_eq!(saved["video"]["height"].as_integer(), Some(144));
    assert_eq!(saved["video"]["fps"].as_integer(), Some(10));
    assert_eq!(saved["video"]["bitrate"].as_integer(), Some(250000));
    assert_eq!(saved["http"]["jpeg_quality"].as_integer(), Some(70));
    assert_eq!(saved["source"].as_str(), Some("test"));
    drop(ws);
    drop(d);

    // The next start comes up with the saved settings.
    let d = Daemon::start(&["--config", s(&config), "--data-dir", s(&data)]);
    let cam = d.json("/api/camera").await;
    assert_eq!(cam["fields"]["width"]["value"], 192);
    assert_eq!(cam["fields"]["bitrate"]["value"], 250000);
    d.wait_status(30, |s| s["stream"]["width"] == 192).await;
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_file_changes_are_not_persisted() {
    let dir = temp_dir("noconf");
    let data = dir.join("data");
    let d = Daemon::start(&[
        "--width",
        "160",
        "--height",
        "120",
        "--fps",
        "10",
        "--data-dir",
        s(&data),
    ]);
    let cam = d.json("/api/camera").await;
    assert_eq!(cam["persistent"], false);
    let cookie = d.admin().await;
    let (st, body) = d
        .put(&cookie, "{\"fps\": 5, \"keyframe_interval\": 10}")
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["persisted"], false);
    assert_eq!(body["fields"]["fps"]["value"], 5);
    assert_eq!(body["fields"]["keyframe_interval"]["value"], 10);
    d.wait_status(15, |s| {
        s["source"]["state"] == "running" && s["stream"]["fps"] == 5.0
    })
    .await;
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
