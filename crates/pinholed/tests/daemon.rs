//! The real `pinholed` binary, started as a user would, on port 0.

mod common;

use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pinhole_media::annexb::{nal_unit_type, nal_units};
use tokio_tungstenite::tungstenite::Message;

struct Daemon {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let (child, addr, log) = common::spawn_daemon(args);
        Daemon { child, addr, log }
    }

    async fn status(&self) -> serde_json::Value {
        let body = http_get(&self.addr, "/api/status").await;
        serde_json::from_str(&body).expect("status json")
    }

    /// Polls /api/status until `pred` holds (or panics after `secs`).
    async fn wait_status(
        &self,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status().await;
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "status never matched: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.0 GET (the daemon closes the connection after the body).
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn fixture() -> String {
    format!(
        "{}/../pinhole-media/testdata/x264_baseline_320x240_30fps_gop30.h264",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn nal_types(au: &[u8]) -> Vec<u8> {
    nal_units(au).filter_map(nal_unit_type).collect()
}

#[tokio::test]
async fn test_pattern_is_the_default_and_starts_viewers_on_a_keyframe() {
    let d = Daemon::start(&["--width", "320", "--height", "240"]);
    let s = d
        .wait_status(20, |s| {
            s["source"]["state"] == "running" && s["frames"].as_u64() > Some(5)
        })
        .await;
    assert_eq!(s["source"]["kind"], "test");
    assert_eq!(s["stream"]["width"], 320);
    assert_eq!(s["stream"]["height"], 240);

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/h264", d.addr))
        .await
        .expect("connect");
    let mut first = None;
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Binary(b) = m {
            first.get_or_insert(b);
            count += 1;
        }
    }
    let types = nal_types(&first.expect("a frame"));
    assert!(
        types.contains(&7) && types.contains(&8) && types.contains(&5),
        "first AU NAL types {types:?}"
    );
    assert!(count >= 45, "{count} frames in 2 s at 30 fps");
}

#[tokio::test]
async fn a_pipe_command_that_dies_is_restarted_and_viewers_resume() {
    // The command plays the clip, then dies by SIGKILL, as a crashed camera tool would.
    let cmd = format!("pipe:cat {0}; sleep 1; kill -9 $$", fixture());
    let d = Daemon::start(&["--source", &cmd]);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/h264", d.addr))
        .await
        .expect("connect");
    // The command dies; once the restart is logged, a keyframe from the
    // new run must reach the same connection.
    let mut frames = 0;
    let mut restarted = false;
    let mut logs = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                frames += 1;
                for l in d.logs() {
                    logs.push_str(&l);
                    logs.push('\n');
                }
                if !restarted && logs.contains("restarting") {
                    restarted = true;
                    continue;
                }
                if restarted && nal_types(&b).contains(&5) {
                    break;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!(
                "viewer lost its stream after {frames} frames (restarted: {restarted}): {other:?}\n{logs}"
            ),
        }
    }
    assert!(logs.contains("signal 9"), "the cause is logged:\n{logs}");
}

#[tokio::test]
async fn garbage_from_a_pipe_is_a_clear_error_not_a_crash() {
    let d = Daemon::start(&["--source", "pipe:head -c 3000000 /dev/urandom; sleep 30"]);
    let s = d
        .wait_status(10, |s| s["source"]["state"] == "failed")
        .await;
    let err = s["source"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!err.is_empty(), "a reason is given: {s}");
    assert!(s["stream"].is_null(), "no stream from garbage: {s}");
    // Still serving.
    let r = http_get(&d.addr, "/").await;
    assert!(r.contains("<title>pinhole"), "{r}");
}

#[tokio::test]
async fn sigterm_stops_the_daemon_cleanly_with_viewers_connected() {
    let mut d = Daemon::start(&["--width", "320", "--height", "240"]);
    d.wait_status(20, |s| s["frames"].as_u64() > Some(3)).await;
    let (_ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/fmp4", d.addr))
        .await
        .expect("connect");
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let t = Instant::now();
    loop {
        if let Some(status) = d.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "still running 8 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cli_errors_name_the_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_pinholed"))
        .args(["--width", "1281"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("video.width") && err.contains("1281"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_pinholed"))
        .args(["--listen", "example.com:80"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(env!("CARGO_BIN_EXE_pinholed"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pinholed "));
}

/// One RTSP request on `s`; the response head (its body is read and dropped).
async fn rtsp_request(s: &mut tokio::net::TcpStream, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(req.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    // Error answers carry a text body: read it, so the next answer starts clean.
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut body)).await;
    head
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x:
/// one more client address for the per-address limit).
async fn connect_from(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().expect("socket");
    s.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    s.connect(to).await.expect("connect")
}

/// `[rtsp_server]` limits from the config file reach the server: past the
/// configured numbers a connection gets 503 (per address and in all), a
/// SETUP 453, and sessions announce the configured timeout.
#[tokio::test]
async fn rtsp_limits_come_from_the_config_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "rtsp = [\"127.0.0.1:0\"]\n[rtsp_server]\nmax_connections = 4\n\
         max_connections_per_ip = 3\nmax_sessions = 2\nsession_timeout_s = 25\n",
    )
    .expect("write config");
    let data = dir.path().join("data");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8 temp path").to_owned();
    let (config, data) = (s(&config), s(&data));
    let d = Daemon::start(&[
        "--config",
        &config,
        "--data-dir",
        &data,
        "--width",
        "320",
        "--height",
        "240",
    ]);
    let st = d
        .wait_status(20, |s| {
            s["frames"].as_u64() > Some(2) && s["rtsp"]["port"].as_u64().is_some()
        })
        .await;
    let port = st["rtsp"]["port"].as_u64().expect("port") as u16;
    let to: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let options = |cseq: u32| format!("OPTIONS {url} RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n");
    let setup = |cseq: u32| {
        format!(
            "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: {cseq}\r\n\
             Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        )
    };

    // Three from 127.0.0.1 are served; the fourth from there is refused.
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.1", to).await;
        let r = rtsp_request(&mut c, &options(1)).await;
        assert!(r.starts_with("RTSP/1.0 200"), "{r}");
        conns.push(c);
    }
    let mut c = connect_from("127.0.0.1", to).await;
    let r = rtsp_request(&mut c, &options(1)).await;
    assert!(r.starts_with("RTSP/1.0 503"), "per-address limit: {r}");
    // Another address takes the fourth slot in all; a fifth is refused.
    let mut c = connect_from("127.0.0.2", to).await;
    let r = rtsp_request(&mut c, &options(1)).await;
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    conns.push(c);
    let mut c = connect_from("127.0.0.3", to).await;
    let r = rtsp_request(&mut c, &options(1)).await;
    assert!(r.starts_with("RTSP/1.0 503"), "connection limit: {r}");

    // Two sessions, then 453.
    for c in &mut conns[..2] {
        let r = rtsp_request(c, &setup(2)).await;
        assert!(r.starts_with("RTSP/1.0 200"), "{r}");
        assert!(r.contains(";timeout=25\r\n"), "configured timeout: {r}");
    }
    let r = rtsp_request(&mut conns[2], &setup(2)).await;
    assert!(r.starts_with("RTSP/1.0 453"), "session limit: {r}");
    // A session ended frees its slot.
    drop(conns.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = rtsp_request(&mut conns[1], &setup(3)).await;
        if r.starts_with("RTSP/1.0 200") {
            break;
        }
        assert!(r.starts_with("RTSP/1.0 453"), "{r}");
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Multicast (`[rtsp_server] multicast_group`): two ffprobes asking for
/// `udp_multicast` only read the one group at the right size, and the
/// sender report reaches the group's RTCP port; in a network namespace
/// of its own (`tests/onvif/netns.sh`), so nothing leaves loopback.
#[test]
fn rtsp_multicast_to_two_ffprobes() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(common::repo().join("tests/onvif/netns.sh"))
        .arg(common::repo().join("tests/rtsp/multicast.sh"))
        .arg(env!("CARGO_BIN_EXE_pinholed"))
        .arg(dir.path())
        .output()
        .expect("run netns.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "multicast.sh failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for probe in &lines[..2] {
        let f: Vec<&str> = probe.split(',').collect();
        assert_eq!(&f[..3], ["h264", "320", "240"], "{stdout}");
        // 2 s at 30 fps; some slack for a loaded machine.
        let packets: u32 = f[3].trim().parse().expect("packets");
        assert!(packets >= 20, "{stdout}");
    }
    assert!(lines[2].starts_with("rtcp pt=200 "), "{stdout}");
}
