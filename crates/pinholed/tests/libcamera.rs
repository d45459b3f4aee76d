//! `--source libcamera` against a fake helper (same protocol, synthetic
//! frames in memfds): the helper is killed mid-stream, a WebSocket viewer
//! stays connected and frames resume; `auto` prefers a libcamera camera.
//!
//! The fake helper is this test binary itself, re-executed through a small
//! script with `PINHOLE_FAKE_HELPER_CHILD=1` (see `fake_helper_entry`), so
//! no extra executable has to be built.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const CHILD_ENV: &str = "PINHOLE_FAKE_HELPER_CHILD";
const PLUGGED_ENV: &str = "PINHOLE_FAKE_PLUGGED_IF";
const PASSWORD: &str = "libcamera test password";

/// Not a test: the entry point of the fake helper process. Without the
/// variable it returns at once.
#[test]
fn fake_helper_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut options = pinhole_camera_proto::fake::FakeOptions::default();
    // A camera "plugged in later": none until this file exists.
    if let Some(marker) = std::env::var_os(PLUGGED_ENV) {
        if !Path::new(&marker).exists() {
            options.cameras.clear();
        }
    }
    let result = pinhole_camera_proto::Channel::from_env()
        .and_then(|ch| pinhole_camera_proto::fake::serve(&ch, &options));
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

struct Daemon {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinhole-lc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A config naming a helper script that runs this binary as the fake.
fn fake_helper_config(dir: &Path) -> PathBuf {
    fake_helper_config_with(dir, "", "")
}

/// The same with extra variables for the fake (`NAME=value `) and extra
/// `[camera]` keys.
fn fake_helper_config_with(dir: &Path, env: &str, camera_keys: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe().expect("test exe");
    let script = dir.join("pinhole-libcamera");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{env}{CHILD_ENV}=1 exec '{}' --exact fake_helper_entry --nocapture --test-threads=1 -q\n",
            exe.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[camera]\nlibcamera_helper = \"{}\"\n{camera_keys}",
            script.display()
        ),
    )
    .expect("config");
    cfg
}

fn start(source: &str, cfg: &Path, hls: &Path) -> Daemon {
    let (child, addr, log) = common::spawn_daemon(&[
        "--source",
        source,
        "--config",
        cfg.to_str().expect("utf-8"),
        "--hls-dir",
        hls.to_str().expect("utf-8"),
        "--width",
        "160",
        "--height",
        "120",
        "--fps",
        "30",
    ]);
    Daemon { child, addr, log }
}

async fn status(addr: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET /api/status HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).expect("status json")
}

/// Processes whose parent is `pid` (the helper the daemon spawned).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces: split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|x| x.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads `n` binary frames (access units); fails if the socket closes.
async fn frames(ws: &mut Ws, n: usize, secs: u64) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut got = 0;
    let mut keyframes = 0;
    while got < n {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                got += 1;
                // An IDR slice (type 5) somewhere in the access unit.
                if b.windows(4)
                    .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5)
                {
                    keyframes += 1;
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => panic!("the viewer was disconnected: {c:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("viewer socket error: {e}"),
            Ok(None) => panic!("the viewer's socket closed"),
            Err(_) => panic!("only {got} of {n} frames within {secs} s"),
        }
    }
    keyframes
}

#[tokio::test]
async fn helper_crash_keeps_viewers_connected_and_frames_resume() {
    let dir = temp_dir("crash");
    let cfg = fake_helper_config(&dir);
    let d = start("libcamera", &cfg, &dir.join("hls"));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/h264", d.addr))
        .await
        .expect("ws connect");
    frames(&mut ws, 10, 30).await;
    let s = status(&d.addr).await;
    assert_eq!(s["source"]["kind"], "libcamera", "{s}");
    let detail = s["source"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("fake/0 (fake-imx708): NV12 160x120 (stride 192)"),
        "{detail}"
    );
    assert_eq!(s["source"]["state"], "running", "{s}");

    let helpers = children_of(d.child.id());
    assert_eq!(helpers.len(), 1, "one helper process: {helpers:?}");
    let killed_at = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helpers[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the helper");

    // The daemon says why, and restarts the helper.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reason = loop {
        let line = d
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the daemon logs the lost camera");
        if line.contains("libcamera: camera lost") {
            break line;
        }
    };
    assert!(reason.contains("killed by signal 9"), "{reason}");

    // The same viewer keeps receiving: frames resume (from a keyframe).
    let keyframes = frames(&mut ws, 30, 30).await;
    assert!(keyframes >= 1, "the new session starts with a keyframe");
    let resumed = killed_at.elapsed();
    let after = children_of(d.child.id());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0], helpers[0], "a new helper process");
    let s = status(&d.addr).await;
    assert_eq!(s["source"]["state"], "running", "{s}");
    eprintln!("frames resumed within {resumed:?} of the kill");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn auto_prefers_a_libcamera_camera_and_says_why() {
    let dir = temp_dir("auto");
    let cfg = fake_helper_config(&dir);
    let d = start("auto", &cfg, &dir.join("hls"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(&d.addr).await;
        let detail = s["source"]["detail"].as_str().unwrap_or("").to_owned();
        if s["source"]["state"] == "running" {
            assert_eq!(s["source"]["kind"], "libcamera", "{s}");
            assert!(
                detail.contains("[auto: libcamera camera fake/0 (fake-imx708) via"),
                "{detail}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never running: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(d);

    // No helper: auto says so and moves on.
    std::fs::write(
        &cfg,
        "[camera]\nlibcamera_helper = \"/nonexistent/pinhole-libcamera\"\n",
    )
    .expect("config");
    let d = start("auto", &cfg, &dir.join("hls2"));
    let s = status(&d.addr).await;
    let detail = s["source"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("libcamera: camera helper /nonexistent/pinhole-libcamera does not exist"),
        "{detail}"
    );
    assert_ne!(s["source"]["kind"], "libcamera");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn get_json(addr: &str, path: &str) -> Value {
    let (status, _, body) = common::http(addr, "GET", path, &[], "").await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

/// Mean luma of `/snapshot.jpg` (decoded to RGB; Rec. 601 weights).
async fn snapshot_luma(addr: &str) -> f64 {
    let (status, _, jpeg) = common::http(addr, "GET", "/snapshot.jpg", &[], "").await;
    assert_eq!(status, 200, "snapshot");
    let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
    let px = dec.decode().expect("a JPEG");
    let info = dec.info().expect("info");
    let n = usize::from(info.width) * usize::from(info.height);
    let sum: f64 = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => px.iter().map(|&p| f64::from(p)).sum(),
        _ => px
            .chunks_exact(3)
            .map(|c| 0.299 * f64::from(c[0]) + 0.587 * f64::from(c[1]) + 0.114 * f64::from(c[2]))
            .sum(),
    };
    sum / n as f64
}

/// Waits until the snapshot's mean luma satisfies `pred`; returns it.
async fn wait_luma(addr: &str, secs: u64, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let l = snapshot_luma(addr).await;
        if pred(l) {
            return l;
        }
        assert!(Instant::now() < deadline, "{what}: mean luma stays {l:.1}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_running(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(addr).await;
        if s["source"]["state"] == "running" {
            return;
        }
        assert!(Instant::now() < deadline, "never running: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn control<'a>(cam: &'a Value, key: &str) -> &'a Value {
    cam["controls"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["key"] == key))
        .unwrap_or_else(|| panic!("no control {key}: {cam}"))
}

#[tokio::test]
async fn camera_controls_are_listed_set_saved_and_reapplied() {
    let dir = temp_dir("controls");
    let cfg = fake_helper_config(&dir);
    let d = start("libcamera", &cfg, &dir.join("hls"));
    wait_running(&d.addr).await;

    // GET lists the helper's controls in the V4L2 controls' shape.
    let cam = get_json(&d.addr, "/api/camera").await;
    assert_eq!(cam["source"], "libcamera", "{cam}");
    let keys: Vec<&str> = cam["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert_eq!(keys, ["AeEnable", "Brightness", "Contrast", "ExposureTime"]);
    let b = control(&cam, "Brightness");
    assert_eq!(
        (
            &b["type"],
            &b["min"],
            &b["max"],
            &b["step"],
            &b["value"],
            &b["default"]
        ),
        (
            &Value::from("float"),
            &Value::from(-1.0),
            &Value::from(1.0),
            &Value::from(0.01),
            &Value::from(0.0),
            &Value::from(0.0)
        ),
        "{b}"
    );
    assert_eq!(control(&cam, "AeEnable")["type"], "boolean");
    assert_eq!(control(&cam, "AeEnable")["value"], true);
    assert_eq!(control(&cam, "ExposureTime")["type"], "integer");
    assert_eq!(control(&cam, "ExposureTime")["min"], 100);
    let dark = snapshot_luma(&d.addr).await;

    // Out of range: 400 naming the field and range; nothing applied.
    let cookie = common::admin(&d.addr, PASSWORD).await;
    let (st, err) = common::put_camera(
        &d.addr,
        &cookie,
        r#"{"controls":{"Contrast":2.5,"Brightness":1.5}}"#,
    )
    .await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["field"], "controls.Brightness", "{err}");
    assert_eq!(err["allowed"], "-1 to 1", "{err}");
    let cam = get_json(&d.addr, "/api/camera").await;
    assert_eq!(
        control(&cam, "Contrast")["value"],
        1.0,
        "nothing half-applied"
    );
    let saved = std::fs::read_to_string(&cfg).expect("config");
    assert!(!saved.contains("libcamera_controls"), "{saved}");
    let (st, err) = common::put_camera(&d.addr, &cookie, r#"{"controls":{"AeEnable":0}}"#).await;
    assert_eq!(st, 400, "{err}");

    // A valid PUT reaches the camera: the picture gets brighter.
    let (st, ok) = common::put_camera(
        &d.addr,
        &cookie,
        r#"{"controls":{"Brightness":0.5,"AeEnable":false}}"#,
    )
    .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["persisted"], true, "{ok}");
    assert_eq!(ok["restarted"], false, "{ok}");
    assert_eq!(control(&ok, "Brightness")["value"], 0.5, "{ok}");
    assert_eq!(control(&ok, "AeEnable")["value"], false, "{ok}");
    let bright = wait_luma(&d.addr, 10, "Brightness 0.5", |l| l > dark + 30.0).await;
    eprintln!("snapshot mean luma: {dark:.1} → {bright:.1} with Brightness 0.5");
    let saved = std::fs::read_to_string(&cfg).expect("config");
    let table: toml::Table = toml::from_str(&saved).expect("toml");
    let lc = &table["camera"]["libcamera_controls"];
    assert_eq!(lc["Brightness"].as_float(), Some(0.5), "{saved}");
    assert_eq!(lc["AeEnable"].as_bool(), Some(false), "{saved}");
    assert!(
        table["camera"].get("controls").is_none(),
        "V4L2 controls untouched: {saved}"
    );

    // The helper dies: a new one gets the saved values again.
    let helpers = children_of(d.child.id());
    assert_eq!(helpers.len(), 1, "{helpers:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helpers[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the helper");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lost = false;
    loop {
        let line = d
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the daemon logs the restart and the controls set again");
        lost |= line.contains("killed by signal 9");
        if lost && line.contains("libcamera: saved controls set") {
            break;
        }
    }
    wait_running(&d.addr).await;
    let after = children_of(d.child.id());
    assert!(after.len() == 1 && after[0] != helpers[0], "{after:?}");
    // Frames from the new helper only (its first ones may predate the set).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = wait_luma(&d.addr, 10, "Brightness after the restart", |l| {
        l > dark + 30.0
    })
    .await;
    eprintln!("after the helper restart: {again:.1}");

    // A daemon started from the saved config sends them at once.
    drop(d);
    let d = start("libcamera", &cfg, &dir.join("hls"));
    wait_running(&d.addr).await;
    let cam = get_json(&d.addr, "/api/camera").await;
    assert_eq!(control(&cam, "Brightness")["value"], 0.5, "{cam}");
    wait_luma(&d.addr, 10, "Brightness from the config", |l| {
        l > dark + 30.0
    })
    .await;
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn auto_switches_to_a_libcamera_camera_that_appears_later() {
    let dir = temp_dir("later");
    let marker = dir.join("plugged");
    let cfg = fake_helper_config_with(
        &dir,
        &format!("{PLUGGED_ENV}='{}' ", marker.display()),
        "libcamera_rescan_s = 1\n",
    );
    let d = start("auto", &cfg, &dir.join("hls"));
    let s = status(&d.addr).await;
    assert_eq!(s["source"]["kind"], "test", "{s}");
    let detail = s["source"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("auto: no camera (libcamera: the camera helper sees no camera"),
        "{detail}"
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/h264", d.addr))
        .await
        .expect("ws connect");
    frames(&mut ws, 5, 30).await;

    std::fs::write(&marker, "").expect("plug the camera in");
    let plugged = Instant::now();
    let deadline = plugged + Duration::from_secs(30);
    let s = loop {
        let s = status(&d.addr).await;
        if s["source"]["kind"] == "libcamera" && s["source"]["state"] == "running" {
            break s;
        }
        assert!(Instant::now() < deadline, "no switch to libcamera: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = s["source"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("[auto: libcamera camera fake/0 (fake-imx708) via")
            && detail.contains("found while the test pattern ran]"),
        "{detail}"
    );
    // The same viewer gets the camera's pictures (a new stream from a
    // keyframe; some of the pattern's may still be queued before it).
    assert!(
        frames(&mut ws, 60, 30).await >= 1,
        "no keyframe within 60 frames"
    );
    eprintln!("switched within {:?} of the plug", plugged.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let line = d
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the daemon logs the switch");
        if line.contains("auto: switching to a camera") {
            assert!(line.contains("libcamera camera fake/0"), "{line}");
            break;
        }
    }
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
