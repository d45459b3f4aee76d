//! SRT push (caller, MPEG-TS, passphrase, stream id) against a listener we
//! did not write: `srt-live-transmit` (Debian's srt-tools, libsrt 1.5;
//! ci/install-deps.sh) piping what it receives into `ffprobe`, which must
//! read H.264 320x240. ffprobe then exits, which kills the listener
//! mid-push; the target notices, backs off, and when a new listener comes
//! up on the same port it resumes by itself, starting on a keyframe (the
//! second recording decodes from its first packet). Then ffmpeg's own SRT
//! listener (libsrt inside ffmpeg) reads it. A local hub viewer never
//! notices any of it.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_hub::{Hub, HubConfig};
use pinhole_media::SystemClock;
use pinhole_push::{PushTarget, PushUrl, State};

mod common;
use common::{feed, wait_for, Fed};

const PASS: &str = "correct-horse-battery";
const STREAM_ID: &str = "publish:cam/secret-id-0123456789";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `srt-live-transmit` listening on `port`, writing the stream to `out`.
fn listener(port: u16, out: Stdio) -> Killed {
    let uri = format!("srt://127.0.0.1:{port}?mode=listener&passphrase={PASS}&pbkeylen=16");
    Killed(
        Command::new("srt-live-transmit")
            .args(["-q", "-a:no", &uri, "file://con"])
            .stdout(out)
            .spawn()
            .expect("srt-live-transmit (ci/install-deps.sh: srt-tools)"),
    )
}

const PROBE: [&str; 8] = [
    "-v",
    "error",
    "-select_streams",
    "v:0",
    "-show_entries",
    "stream=codec_name,width,height",
    "-of",
    "csv=p=0",
];

#[test]
fn pushes_over_srt_and_resumes_after_the_listener_dies() {
    assert!(
        Command::new("srt-live-transmit")
            .arg("-version")
            .output()
            .is_ok(),
        "srt-live-transmit missing: run ci/install-deps.sh (srt-tools)"
    );
    let port = free_udp_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clock = Arc::new(SystemClock::new());
    let hub = Hub::with_clock(HubConfig::default(), clock.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (hub, clock, stop) = (hub.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || feed(hub, clock, stop, Arc::new(AtomicBool::new(false))))
    };
    let max_gap_ms = Arc::new(AtomicU64::new(0));
    let local = {
        let (hub, max_gap_ms) = (hub.clone(), max_gap_ms.clone());
        rt.spawn(async move {
            let mut v = hub.subscribe();
            let mut last: Option<Instant> = None;
            while v.recv().await.is_some() {
                if let Some(l) = last {
                    max_gap_ms.fetch_max(l.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                last = Some(Instant::now());
            }
        })
    };

    // 1: srt-live-transmit | ffprobe. ffprobe exits once it has read
    // enough, and the listener dies with it: the server gone mid-push.
    let mut first = listener(port, Stdio::piped());
    let probe = Command::new("timeout")
        .args(["30", "ffprobe"])
        .args(PROBE)
        .arg("-")
        .stdin(Stdio::from(first.0.stdout.take().expect("pipe")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffprobe");
    let url = format!(
        "srt://127.0.0.1:{port}?streamid={}&passphrase={PASS}",
        STREAM_ID.replace('/', "%2F").replace(':', "%3A")
    );
    let target = {
        let _g = rt.enter();
        PushTarget::spawn(hub.clone(), PushUrl::parse(&url).unwrap())
    };
    let out = probe.wait_with_output().expect("ffprobe");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or(""),
        "h264,320,240",
        "ffprobe through srt-live-transmit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = target.status();
    assert_eq!(
        st.url,
        format!("srt://127.0.0.1:{port}?streamid=***789&passphrase=***")
    );
    drop(first);
    wait_for("the push to notice the listener is gone", 20, || {
        target.status().state != State::Publishing
    });
    let failed = target.status();
    eprintln!("after the listener died: {failed:?}");
    assert!(failed.last_error.is_some(), "{failed:?}");

    // 2: a new listener on the same port, recording to a file.
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("second.ts");
    let second = listener(port, Stdio::from(std::fs::File::create(&rec).unwrap()));
    wait_for("publishing again", 45, || {
        let s = target.status();
        s.state == State::Publishing && s.reconnects >= 1
    });
    let before = target.status().frames;
    wait_for("90 more frames", 20, || {
        target.status().frames > before + 90
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(second);
    // Decodable from its first byte: the session starts on a keyframe with
    // PAT/PMT; -count_frames decodes every picture.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&rec)
        .output()
        .expect("ffprobe");
    // A TS lists the stream under its program too: the first line.
    let probe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let frames: u64 = probe
        .rsplit(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    eprintln!("second recording: {probe}");
    assert!(
        probe.starts_with("h264,320,240,"),
        "{probe}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        frames >= 60,
        "{frames} frames decoded from the second session"
    );

    // 33 ms at 30 fps; a viewer held up by the push would wait seconds
    // (the peer-idle timeout). On a loaded machine the source itself
    // stalls: only what the viewer waited beyond that counts.
    let gap = max_gap_ms.load(Ordering::Relaxed);
    let source_gap = common::FEED_MAX_GAP_MS.load(Ordering::Relaxed);
    eprintln!("local viewer max gap {gap} ms, source's own {source_gap} ms");
    assert!(
        gap < source_gap + 400,
        "a local viewer waited {gap} ms for a frame (the source {source_gap} ms)"
    );
    let s = format!("{:?}", target.status());
    assert!(!s.contains("0123456789") && !s.contains("horse"), "{s}");

    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    hub.close();
    drop(target);
    rt.block_on(local).unwrap();
}

/// ffmpeg's SRT listener (libsrt) reads what we push, without a passphrase.
#[test]
fn ffmpeg_reads_an_srt_push() {
    let port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("ffmpeg.ts");
    let ffmpeg = Killed(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-t", "3", "-i"])
            .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(&rec)
            .stdin(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );
    let fed = Fed::new();
    // ffmpeg needs a moment to listen; the target's backoff retries.
    let target = fed.push(&format!("srt://127.0.0.1:{port}"));
    let mut ffmpeg = ffmpeg;
    let t = Instant::now();
    let status = loop {
        if let Some(s) = ffmpeg.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "ffmpeg never finished: {:?}",
            target.status()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "ffmpeg failed");
    let out = Command::new("ffprobe")
        .args(PROBE)
        .arg(&rec)
        .output()
        .unwrap();
    let probe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!("ffmpeg's recording: {probe}");
    assert!(probe.starts_with("h264,320,240"), "{probe}");
    drop(target);
}

/// Sound goes along: what srt-live-transmit relays has H.264 and Opus
/// (ffmpeg's Opus-in-TS), and ffmpeg decodes both.
#[test]
fn opus_goes_along_and_ffmpeg_decodes_it() {
    let port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("av.ts");
    let relay = listener(port, Stdio::from(std::fs::File::create(&rec).unwrap()));
    let fed = Fed::with_sound();
    let target = fed.push(&format!("srt://127.0.0.1:{port}?passphrase={PASS}"));
    wait_for("100 pictures over SRT", 30, || target.status().frames > 100);
    drop(target);
    std::thread::sleep(Duration::from_millis(300));
    drop(relay);
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames"])
        .args(["-show_entries", "stream=codec_name,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(&rec)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("relayed: {text:?} {}", String::from_utf8_lossy(&out.stderr));
    let count = |codec: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{codec},")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(count("h264") >= 90, "{text}");
    // ~3.3 s of 20 ms packets; decoded, not just listed.
    assert!(count("opus") >= 100, "{text}");
}

/// A push without the listener's passphrase never publishes: the
/// encryption is really negotiated, not just accepted as an option.
#[test]
fn a_missing_passphrase_is_refused() {
    let port = free_udp_port();
    let _listener = listener(port, Stdio::null());
    let fed = Fed::new();
    let target = fed.push(&format!("srt://127.0.0.1:{port}"));
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        assert_ne!(
            target.status().state,
            State::Publishing,
            "published without the passphrase"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = target.status();
    eprintln!("without the passphrase: {s:?}");
    assert!(s.last_error.is_some(), "{s:?}");
    drop(target);
}
