//! WHIP push (RFC 9725) against an endpoint we did not write: aiortc behind
//! a few lines of asyncio HTTP (`tests/webrtc/whip_server.py`, the pinned
//! venv of `tests/webrtc/venv.sh`). It decodes what it receives: H.264
//! 320x240 pictures and the Opus sound. The server is killed mid-push and
//! started again on the same port: the target notices, backs off and
//! resumes by itself (a new offer, a new session) while a local hub viewer
//! never notices. Removing the target DELETEs its session; a wrong bearer
//! token is refused (401) and shown as the target's error. A PLI from
//! aiortc reaches the source as a keyframe request.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pinhole_push::State;

mod common;
use common::{wait_for, Fed};

const TOKEN: &str = "tok-0123456789-secret";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> String {
    let out = Command::new(repo().join("tests/webrtc/venv.sh"))
        .output()
        .expect("tests/webrtc/venv.sh (python3 with venv)");
    assert!(
        out.status.success(),
        "venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    repo().join(rel).to_string_lossy().into_owned()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The WHIP server and its last stats line.
struct Server {
    child: Child,
    stats: Arc<Mutex<serde_json::Value>>,
}

impl Server {
    fn start(python: &str, port: u16) -> Server {
        let mut child = Command::new(python)
            .arg(repo().join("tests/webrtc/whip_server.py"))
            .args(["--port", &port.to_string(), "--token", TOKEN])
            .stdout(Stdio::piped())
            .spawn()
            .expect("whip_server.py");
        let stats = Arc::new(Mutex::new(serde_json::Value::Null));
        let out = child.stdout.take().expect("stdout");
        let s = stats.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    *s.lock().unwrap() = v;
                }
            }
        });
        wait_for("the WHIP server to listen", 30, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Server { child, stats }
    }

    /// Makes aiortc send a PLI for every video source: how many it sent.
    fn pli(&self, port: u16) -> u64 {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            c,
            "POST /pli HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out.rsplit("\r\n\r\n")
            .next()
            .and_then(|b| b.trim().parse().ok())
            .unwrap_or(0)
    }

    fn get(&self, key: &str) -> u64 {
        self.stats.lock().unwrap()[key].as_u64().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pushes_to_aiortc_over_whip_and_resumes_after_the_server_dies() {
    let python = python();
    let port = free_tcp_port();
    let fed = Fed::with_sound();
    let max_gap_ms = Arc::new(AtomicU64::new(0));
    let local = {
        let (hub, max_gap_ms) = (fed.hub.clone(), max_gap_ms.clone());
        fed.rt.spawn(async move {
            let mut v = hub.subscribe();
            let mut last: Option<Instant> = None;
            while let Some(f) = v.recv().await {
                if !f.is_video() {
                    continue;
                }
                if let Some(l) = last {
                    max_gap_ms.fetch_max(l.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                last = Some(Instant::now());
            }
        })
    };

    let first = Server::start(&python, port);
    // A wrong token: refused, and the error says so (without the token).
    let wrong = fed.push(&format!(
        "whip+http://127.0.0.1:{port}/whip#token=not-the-token-at-all"
    ));
    let target = fed.push(&format!("whip+http://127.0.0.1:{port}/whip#token={TOKEN}"));
    wait_for("the wrong token's refusal", 30, || {
        wrong.status().last_error.is_some()
    });
    let refused = wrong.status();
    eprintln!("wrong token: {refused:?}");
    assert!(refused.last_error.as_deref().unwrap_or("").contains("401"));
    assert!(!format!("{refused:?}").contains("not-the-token"));
    drop(wrong);

    wait_for(
        "aiortc to decode 60 pictures and 25 sound packets",
        60,
        || first.get("video") >= 60 && first.get("audio") >= 25,
    );
    assert_eq!((first.get("width"), first.get("height")), (320, 240));
    let st = target.status();
    assert_eq!(st.state, State::Publishing, "{st:?}");
    assert_eq!(
        st.url,
        format!("whip+http://127.0.0.1:{port}/***#token=***")
    );

    // aiortc reports a lost picture (RTCP PLI): the push asks the source
    // for a keyframe (rate-limited: the connect's own ask is > 0.5 s old).
    let asked = common::KEYFRAME_REQUESTS.load(Ordering::Relaxed);
    let sent = first.pli(port);
    assert!(sent >= 1, "aiortc sent no PLI (no video source?)");
    wait_for(
        "the PLI to reach the source as a keyframe request",
        10,
        || common::KEYFRAME_REQUESTS.load(Ordering::Relaxed) > asked,
    );

    // Killed mid-push: no DELETE reaches it; the target notices (nothing
    // from the server for a few seconds) and backs off.
    drop(first);
    wait_for("the push to notice the server is gone", 30, || {
        target.status().state != State::Publishing
    });
    let failed = target.status();
    eprintln!("after the server died: {failed:?}");
    assert!(failed.last_error.is_some(), "{failed:?}");

    let second = Server::start(&python, port);
    wait_for("publishing again", 60, || {
        let s = target.status();
        s.state == State::Publishing && s.reconnects >= 1
    });
    wait_for("the second server to decode 60 pictures", 60, || {
        second.get("video") >= 60 && second.get("audio") >= 25
    });
    assert_eq!(second.get("sessions"), 1);
    eprintln!("second server: {:?}", second.stats.lock().unwrap());

    // Removing the target ends its session with a DELETE.
    drop(target);
    wait_for("the DELETE", 10, || second.get("deletes") == 1);

    let gap = max_gap_ms.load(Ordering::Relaxed);
    let source_gap = common::FEED_MAX_GAP_MS.load(Ordering::Relaxed);
    eprintln!("local viewer max gap {gap} ms, source's own {source_gap} ms");
    assert!(
        gap < source_gap + 400,
        "a local viewer waited {gap} ms for a frame (the source {source_gap} ms)"
    );
    drop(fed);
    local.abort();
}
