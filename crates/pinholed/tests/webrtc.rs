//! WebRTC (WHEP) against a stack that is not ours: aiortc (PyPI, in a venv
//! that `tests/webrtc/venv.sh` makes) plays the real daemon's 720p30 test
//! pattern, as itself, as Mainsail's `webrtc-mediamtx` client does it, and
//! through a lossy UDP relay. Plus the refusals, over plain HTTP.
//! Loopback only: the daemon offers 127.0.0.1 alone, aiortc gathers it alone.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// One at a time: each runs a daemon encoding 720p30 and a client decoding
/// it, and the machine has two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use common::repo;

/// The venv's python (made on first use, ~10 s).
fn python() -> String {
    common::venv_python("tests/webrtc/venv.sh")
}

/// Runs the aiortc WHEP client; its JSON report.
fn client(url: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo().join("tests/webrtc/whep_client.py"))
        .arg(url)
        .args(args)
        .output()
        .expect("run whep_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "whep_client.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line")
}

/// A running daemon, killed (and its directory removed) when dropped: a
/// failing assertion leaves no process behind.
struct Daemon {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon with WebRTC on 127.0.0.1 only; `extra` is more TOML.
fn daemon(name: &str, extra: &str) -> (Daemon, String) {
    daemon_with(name, extra, &[])
}

/// The same with more command-line arguments.
fn daemon_with(name: &str, extra: &str, args: &[&str]) -> (Daemon, String) {
    let dir = std::env::temp_dir().join(format!("pinhole-webrtc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("pinhole.toml");
    std::fs::write(
        &conf,
        format!("[webrtc]\nlan_candidates = false\nextra_candidates = [\"127.0.0.1\"]\n{extra}"),
    )
    .expect("config");
    let mut all = vec![
        "--config",
        conf.to_str().expect("utf8"),
        "--data-dir",
        dir.to_str().expect("utf8"),
    ];
    all.extend_from_slice(args);
    let (child, addr, _log) = common::spawn_daemon(&all);
    (Daemon { child, dir }, addr)
}

fn steps(v: &serde_json::Value) -> Vec<(String, u64)> {
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap_or("").to_owned(),
                s[1].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn step(v: &serde_json::Value, name: &str) -> u64 {
    steps(v)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .unwrap_or(0)
}

/// The rate the client must decode at: 25 fps of the 30 the pattern makes;
/// on a machine too loaded for the debug daemon to make 30 (a shared
/// 2-core box: it made 4–12), 80 % of what the source did make over the
/// same seconds, so the test still fails if WebRTC loses frames.
fn wanted_fps(source_fps: f64) -> f64 {
    if source_fps >= 29.0 {
        25.0
    } else {
        eprintln!("warning: the source made only {source_fps:.1} fps (machine loaded)");
        0.8 * source_fps
    }
}

async fn metric(addr: &str, name: &str) -> f64 {
    let (_, _, body) = common::http(addr, "GET", "/metrics", &[], "").await;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("pinhole_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_decodes_the_720p30_pattern_at_25_fps_or_more() {
    let _one = SERIAL.lock().await;
    let (_daemon, addr) = daemon("play", "");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let f0 = metric(&addr, "frames_total").await;
    let t0 = std::time::Instant::now();
    let r = client(&format!("http://{addr}/whep"), &["--seconds", "10"]);
    let source_fps = (metric(&addr, "frames_total").await - f0) / t0.elapsed().as_secs_f64();
    eprintln!("aiortc: {r}; source {source_fps:.1} fps");
    assert_eq!(step(&r, "POST"), 201);
    assert!(r["location"].as_str().unwrap_or("").starts_with("/whep/"));
    assert!(r["etag"].as_str().is_some_and(|e| e.starts_with('"')));
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let frames = r["frames"].as_u64().unwrap_or(0);
    let fps = r["fps"].as_f64().unwrap_or(0.0);
    let want = wanted_fps(source_fps);
    assert!(
        frames as f64 >= want * 9.0 && fps >= want,
        "{frames} frames, {fps} fps; wanted {want:.1} fps"
    );
    // The first frame within a second of the answer: it starts on the GOP's keyframe.
    assert!(r["first_frame_s"].as_f64().unwrap_or(9.0) < 1.0, "{r}");
    // DELETE ends it; a second DELETE finds nothing.
    assert_eq!(step(&r, "DELETE"), 200);
    assert_eq!(step(&r, "DELETE again"), 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric(&addr, "webrtc_sessions").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainsails_request_sequence_plays_from_stream_whep() {
    let _one = SERIAL.lock().await;
    let printer = "http://printer.local";
    let (_daemon, addr) = daemon_with(
        "mainsail",
        &format!(
            "ice_servers = [{{ url = \"stun:stun.example.org:3478\" }}, \
             {{ url = \"turn:turn.example.org:3478\", username = \"u\", credential = \"p\" }}]\n\
             [security]\nallowed_origins = [\"{printer}\"]\n"
        ),
        // The request sequence is the point; 360p spares a loaded machine.
        &["--width", "640", "--height", "360"],
    );
    // The browser's pre-flight from the printer's page: granted to the listed origin only.
    let pre = |origin: &'static str| {
        let addr = addr.clone();
        async move {
            common::http(
                &addr,
                "OPTIONS",
                "/stream/whep",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
                "",
            )
            .await
        }
    };
    let (status, head, _) = pre(printer).await;
    let head = head.to_ascii_lowercase();
    assert!(status == 204 || status == 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://printer.local"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: post"),
        "{head}"
    );
    assert!(
        head.contains("<stun:stun.example.org:3478>; rel=\"ice-server\""),
        "{head}"
    );
    assert!(head.contains("credential-type=\"password\""), "{head}");
    assert!(head.contains("access-control-expose-headers:"), "{head}");
    let (_, head, _) = pre("http://evil.example").await;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{head}"
    );
    assert!(!head.contains('*'), "{head}");

    let r = client(
        &format!("http://{addr}/stream/whep"),
        &[
            "--mainsail",
            "--seconds",
            "4",
            "--header",
            &format!("Origin:{printer}"),
        ],
    );
    eprintln!("mainsail: {r}");
    assert_eq!(
        steps(&r),
        [
            ("OPTIONS".into(), 204),
            ("POST".into(), 201),
            ("PATCH".into(), 204),
            ("DELETE".into(), 200),
            ("DELETE again".into(), 404)
        ]
    );
    assert!(r["location"]
        .as_str()
        .unwrap_or("")
        .starts_with("/stream/whep/"));
    assert!(r["link"]
        .as_str()
        .unwrap_or("")
        .contains("rel=\"ice-server\""));
    // Video flows (4 s of it: 120 frames on an idle machine; the GOP it
    // starts on is sent at once).
    assert!(r["frames"].as_u64().unwrap_or(0) >= 20, "{r}");
}

const AIORTC_OFFER: &str = include_str!("../../pinhole-webrtc/testdata/aiortc_offer.sdp");

async fn post(addr: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut h = vec![("content-type", "application/sdp")];
    h.extend_from_slice(headers);
    let (status, _, body) = common::http(addr, "POST", "/whep", &h, body).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// ICE restart over plain HTTP (RFC 9725 §4.4): a PATCH with a new ufrag
/// and pwd is answered 200 with our new ufrag/pwd and a new ETag; a stale
/// or wrong `If-Match` is 412; a new ufrag without its pwd 400. (A real
/// client's restart: tests/browser/webrtc.test.mjs, Chromium.)
async fn ice_restart_by_patch(addr: &str) {
    let (s, head, body) = common::http(
        addr,
        "POST",
        "/whep",
        &[("content-type", "application/sdp")],
        AIORTC_OFFER,
    )
    .await;
    assert_eq!(s, 201);
    let answer = String::from_utf8_lossy(&body).into_owned();
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:").map(str::to_owned))
    };
    let old_ufrag = ufrag(&answer).expect("answer ufrag");
    let loc = header(&head, "location").expect("Location").to_owned();
    let etag = header(&head, "etag").expect("ETag").to_owned();
    let frag = "a=ice-ufrag:rst1
a=ice-pwd:0123456789abcdef012345
";
    let patch = |if_match: String, body: &'static str| {
        let loc = loc.clone();
        async move {
            common::http(
                addr,
                "PATCH",
                &loc,
                &[
                    ("content-type", "application/trickle-ice-sdpfrag"),
                    ("if-match", &if_match),
                ],
                body,
            )
            .await
        }
    };
    let (s, _, _) = patch("\"not-the-etag\"".into(), frag).await;
    assert_eq!(s, 412, "a wrong If-Match");
    let (s, _, _) = patch(etag.clone(), "a=ice-ufrag:rst1\r\n").await;
    assert_eq!(s, 400, "a restart without its pwd");
    let (s, head2, body2) = patch(etag.clone(), frag).await;
    let frag2 = String::from_utf8_lossy(&body2).into_owned();
    assert_eq!(s, 200, "{frag2}");
    assert!(
        header(&head2, "content-type")
            .is_some_and(|t| t.starts_with("application/trickle-ice-sdpfrag")),
        "{head2}"
    );
    let new_ufrag = ufrag(&frag2).expect("a new ufrag");
    assert_ne!(new_ufrag, old_ufrag);
    assert!(frag2.contains("a=ice-pwd:"), "{frag2}");
    assert!(frag2.contains("typ host"), "our candidates again: {frag2}");
    let etag2 = header(&head2, "etag").expect("a new ETag").to_owned();
    assert_ne!(etag2, etag);
    // The old ETag names the session before the restart: 412.
    let (s, _, _) = patch(etag, frag).await;
    assert_eq!(s, 412);
    let (s, _, _) = patch(
        etag2,
        "a=candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host\r\n",
    )
    .await;
    assert_eq!(s, 204, "trickle after the restart");
    let (s, _, _) = common::http(addr, "DELETE", &loc, &[], "").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_the_daemon_stays_healthy() {
    let _one = SERIAL.lock().await;
    let (_daemon, addr) = daemon("refusals", "max_sessions = 2\n");
    // Malformed SDP.
    let (s, body) = post(&addr, "this is not SDP", &[]).await;
    assert_eq!(s, 400, "{body}");
    // No H.264: the same offer with only VP8.
    let vp8: String = AIORTC_OFFER
        .split_inclusive('\n')
        .filter(|l| !l.contains("H264") && !l.contains("profile-level-id"))
        .collect();
    let (s, body) = post(&addr, &vp8, &[]).await;
    assert_eq!(s, 406, "{body}");
    assert!(body.contains("H.264"), "{body}");
    // Not SDP by its type.
    let (s, _, _) = common::http(
        &addr,
        "POST",
        "/whep",
        &[("content-type", "text/plain")],
        AIORTC_OFFER,
    )
    .await;
    assert_eq!(s, 415);
    // PATCH/DELETE of an unknown session.
    let (s, _, _) = common::http(&addr, "DELETE", "/whep/00aa", &[], "").await;
    assert_eq!(s, 404);
    // Past the session limit: 503 with the reason.
    assert_eq!(post(&addr, AIORTC_OFFER, &[]).await.0, 201);
    ice_restart_by_patch(&addr).await;
    assert_eq!(post(&addr, AIORTC_OFFER, &[]).await.0, 201);
    let (s, body) = post(&addr, AIORTC_OFFER, &[]).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("too many WebRTC sessions"), "{body}");
    assert_eq!(metric(&addr, "webrtc_refused_full_total").await, 1.0);
    // A viewer password closes WHEP like every live output: 401 before any ICE work.
    let cookie = common::admin(&addr, "webrtc admin password").await;
    let origin = format!("http://{addr}");
    let (s, _, _) = common::http(
        &addr,
        "POST",
        "/api/auth/viewer/password",
        &[
            ("cookie", &cookie),
            ("origin", &origin),
            ("content-type", "application/json"),
        ],
        "{\"password\":\"viewer password 1\"}",
    )
    .await;
    assert_eq!(s, 200);
    let before = metric(&addr, "webrtc_sessions_total").await;
    let (s, body) = post(&addr, AIORTC_OFFER, &[]).await;
    assert_eq!(s, 401, "{body}");
    // A foreign page without a listed origin: 403.
    let (s, _) = post(
        &addr,
        AIORTC_OFFER,
        &[("cookie", &cookie), ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(metric(&addr, "webrtc_sessions_total").await, before);
    // Healthy.
    let (s, _, _) = common::http(&addr, "GET", "/api/health", &[], "").await;
    assert_eq!(s, 200);
}

/// 5 % of RTP/RTCP dropped both ways and 100 ms of round trip (a poor
/// Wi-Fi link): lost packets are resent on NACK, and when a picture is lost
/// anyway the viewer's PLI makes the source send a keyframe at once. This
/// froze 3-6 s before: resends a GOP burst provoked arrived after aiortc had
/// moved on (it then waits 512 packets), and PLIs never reached the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_is_recovered() {
    let _one = SERIAL.lock().await;
    // 360p: the test is about recovery, and it must not starve a loaded machine.
    let (_daemon, addr) = daemon_with("loss", "", &["--width", "640", "--height", "360"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let f0 = metric(&addr, "frames_total").await;
    let t0 = std::time::Instant::now();
    let r = client(
        &format!("http://{addr}/whep"),
        &["--seconds", "10", "--loss", "0.05", "--delay-ms", "50"],
    );
    let source_fps = (metric(&addr, "frames_total").await - f0) / t0.elapsed().as_secs_f64();
    eprintln!("5 % loss: {r}; source {source_fps:.1} fps");
    let dropped = r["relay"]["dropped"].as_u64().unwrap_or(0);
    let passed = r["relay"]["passed"].as_u64().unwrap_or(0);
    assert!(
        dropped * 100 >= (dropped + passed) * 3,
        "the relay dropped {dropped} of {}",
        dropped + passed
    );
    let fps = r["fps"].as_f64().unwrap_or(0.0);
    assert!(fps >= 0.8 * wanted_fps(source_fps), "{r}");
    // No freeze a viewer would call one: at most 1 s without a new picture,
    // plus three frame intervals of a source a loaded machine slows down.
    let bound_ms = 1000.0 + 3000.0 / source_fps.clamp(1.0, 30.0);
    let gap = r["max_gap_ms"].as_u64().unwrap_or(99_999) as f64;
    assert!(gap <= bound_ms, "froze {gap} ms (bound {bound_ms:.0}): {r}");
    let nacks = metric(&addr, "webrtc_nacks_total").await;
    eprintln!("NACKs received: {nacks}");
    assert!(nacks > 0.0, "no NACK was received: {nacks}");
}

/// `--audio test`: the Opus track goes out beside the video, passed through
/// (20 ms packets at 48 kHz), and aiortc decodes it.
#[cfg(feature = "opus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_receives_the_opus_track() {
    let _one = SERIAL.lock().await;
    let (_daemon, addr) = daemon_with(
        "audio",
        "",
        &["--width", "640", "--height", "360", "--audio", "test"],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = client(
        &format!("http://{addr}/whep"),
        &["--seconds", "6", "--audio"],
    );
    eprintln!("audio: {r}");
    assert_eq!(step(&r, "POST"), 201);
    assert!(r["frames"].as_u64().unwrap_or(0) > 30, "no video: {r}");
    let a = &r["audio"];
    assert_eq!(a["rate"].as_u64(), Some(48_000), "{r}");
    let first = a["first_s"].as_f64().unwrap_or(99.0);
    assert!(first < 1.5, "sound began after {first} s: {r}");
    // Every packet from the first on: 20 ms each, a loaded machine may lose a few.
    let secs = a["seconds"].as_f64().unwrap_or(0.0);
    assert!(
        secs >= 0.8 * (6.0 - first),
        "{secs} s of sound in {:.1} s: {r}",
        6.0 - first
    );
    let (_, _, body) = common::http(&addr, "GET", "/api/status", &[], "").await;
    let status: serde_json::Value = serde_json::from_slice(&body).expect("status JSON");
    let sent = status["webrtc"]["audio_sent"].as_u64().unwrap_or(0);
    assert!(
        sent >= a["frames"].as_u64().unwrap_or(u64::MAX),
        "{sent} sent: {status}"
    );
}
