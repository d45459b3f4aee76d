//! `pinholed --push rtmp://…` against a real media server (nginx-rtmp):
//! ffprobe reads what we pushed; nginx is killed mid-push and restarted,
//! the push resumes by itself and a local /ws/h264 viewer keeps getting
//! frames on time. The stream key never shows in the status or the logs.

mod common;
#[path = "../../pinhole-push/tests/common/nginx_rtmp.rs"]
mod nginx_rtmp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nginx_rtmp::{ffprobe, NginxRtmp};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "cam-secret-key-0123456789";

async fn status(addr: &str, cookie: &str) -> serde_json::Value {
    let (code, _, body) = common::http(addr, "GET", "/api/status", &[("cookie", cookie)], "").await;
    assert_eq!(code, 200);
    serde_json::from_slice(&body).expect("status json")
}

async fn wait_push(
    addr: &str,
    cookie: &str,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(addr, cookie).await;
        let p = &s["push"][0];
        if pred(p) {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "push never matched: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_nginx_rtmp_and_local_viewers_never_notice_a_restart() {
    let nginx_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let nginx = NginxRtmp::start(nginx_dir.path(), 0);
    let port = nginx.port;
    let url = format!("rtmp://127.0.0.1:{port}/live/{KEY}");
    let (mut child, addr, log) = common::spawn_daemon(&[
        "--width",
        "320",
        "--height",
        "240",
        "--push",
        &url,
        "--data-dir",
        &data.path().display().to_string(),
    ]);
    let cookie = common::admin(&addr, "push-test-password").await;
    let p = wait_push(&addr, &cookie, 30, |p| {
        p["state"] == "publishing" && p["frames"].as_u64() > Some(30)
    })
    .await;
    assert_eq!(p["url"], format!("rtmp://127.0.0.1:{port}/live/***789"));
    assert_eq!(ffprobe(&url), "h264,320,240");

    // A local viewer, timing every frame's arrival from here on.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/h264"))
        .await
        .expect("connect /ws/h264");
    let max_gap_ms = Arc::new(AtomicU64::new(0));
    let frames = Arc::new(AtomicU64::new(0));
    let viewer = {
        let (max_gap_ms, frames) = (max_gap_ms.clone(), frames.clone());
        tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Binary(_) = m {
                    // The first frames are the held GOP, sent at once.
                    if frames.fetch_add(1, Ordering::Relaxed) > 60 {
                        if let Some(l) = last {
                            max_gap_ms.fetch_max(l.elapsed().as_millis() as u64, Ordering::Relaxed);
                        }
                    }
                    last = Some(Instant::now());
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Kill the server mid-push; bring it back 2 s later on the same port.
    let t0 = Instant::now();
    let frames_before = frames.load(Ordering::Relaxed);
    drop(nginx);
    let p = wait_push(&addr, &cookie, 15, |p| p["state"] != "publishing").await;
    assert!(p["last_error"].is_string(), "{p}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _nginx = NginxRtmp::start(nginx_dir.path(), port);
    let p = wait_push(&addr, &cookie, 40, |p| {
        p["state"] == "publishing" && p["reconnects"].as_u64() >= Some(1)
    })
    .await;
    let outage = t0.elapsed();
    let got = frames.load(Ordering::Relaxed) - frames_before;
    let sent = p["frames"].as_u64().unwrap_or(0);
    wait_push(&addr, &cookie, 10, |p| {
        p["frames"].as_u64() > Some(sent + 30)
    })
    .await;
    assert_eq!(ffprobe(&url), "h264,320,240");

    let gap = max_gap_ms.load(Ordering::Relaxed);
    let expected = outage.as_secs_f64() * 30.0;
    eprintln!(
        "outage {:.1} s: the local viewer got {got} frames (~{expected:.0} due), max gap {gap} ms",
        outage.as_secs_f64()
    );
    assert!(gap < 400, "the local viewer waited {gap} ms for a frame");
    assert!(
        got as f64 > expected * 0.8,
        "{got} frames during {outage:?} on /ws/h264"
    );

    // Metrics per target; no key anywhere.
    let (_, _, metrics) = common::http(&addr, "GET", "/metrics", &[], "").await;
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    assert!(
        metrics.contains("pinhole_push_up{target=\"0\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pinhole_push_reconnects_total{target=\"0\"}"));
    let s = status(&addr, &cookie).await.to_string();
    assert!(!s.contains(&KEY[..16]), "the key in the status: {s}");
    // A viewer (no session) does not see the targets at all.
    let (_, _, anon) = common::http(&addr, "GET", "/api/status", &[], "").await;
    let anon: serde_json::Value = serde_json::from_slice(&anon).unwrap();
    assert!(anon["push"].is_null(), "{anon}");

    let _ = child.kill();
    let _ = child.wait();
    viewer.abort();
    let logs: Vec<String> = log.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("publishing")),
        "the log says when it publishes"
    );
    for l in &logs {
        assert!(!l.contains(&KEY[..16]), "the key in the log: {l}");
    }
}
