//! Sound with the picture, checked with tools we did not write: ffprobe
//! sees H.264 + Opus in `/stream.mp4`, ffmpeg decodes 10 s of both without
//! an error, and the A/V sync is measured by machine: the test tone clicks
//! at every whole second of the capture clock and the test pattern flashes
//! its marker on the same frame; decoded by ffmpeg, |skew| <= 20 ms.
//! Also: an audio command that dies leaves the video alone, says why, and
//! comes back. (docs/audio.md) Needs the `opus` feature (ci/test.sh
//! turns it on).
#![cfg(feature = "opus")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Daemon {
    child: Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Daemon {
    // A fresh data dir: no admin password yet, nothing of the user's touched.
    let data = tempdir();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", data.to_str().expect("utf-8 temp path")]);
    let (child, addr, _log) = common::spawn_daemon(&all);
    Daemon { child, addr }
}

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffmpeg is missing in CI (ci/install-deps.sh installs it)"
        );
        eprintln!("SKIPPED: ffmpeg not installed");
    }
    ok
}

async fn status(addr: &str) -> serde_json::Value {
    let (_, _, body) = common::http(addr, "GET", "/api/status", &[], "").await;
    serde_json::from_slice(&body).expect("status json")
}

async fn wait_status(
    addr: &str,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(addr).await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "status never matched: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `secs` of `/stream.mp4`, cut after its last whole top-level box.
async fn record(addr: &str, secs: f64, to: &Path) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET /stream.mp4 HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs_f64(secs), s.read_to_end(&mut buf)).await;
    let body = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| &buf[i + 4..])
        .expect("an HTTP response");
    let mut end = 0;
    while let Some(size) = body.get(end..end + 4) {
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if size < 8 || end + size > body.len() {
            break;
        }
        end += size;
    }
    std::fs::write(to, &body[..end]).expect("write the recording");
}

fn ffmpeg(args: &[&str]) -> (String, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "ffmpeg {args:?} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(|v| v.trim_end_matches(','))
}

/// Times (s) of the frames showing the sync marker (320x240: the square at
/// x 0..40, y 100..140; its centre is sampled).
fn marker_times(file: &Path, dir: &Path) -> Vec<f64> {
    let meta = dir.join("video.txt");
    let filter = format!(
        "crop=20:20:10:110,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file={}",
        meta.display()
    );
    ffmpeg(&[
        "-v",
        "error",
        "-i",
        file.to_str().unwrap(),
        "-map",
        "0:v",
        "-vf",
        &filter,
        "-enc_time_base:v",
        "-1",
        "-f",
        "null",
        "-",
    ]);
    let text = std::fs::read_to_string(&meta).expect("video metadata");
    let mut times = Vec::new();
    let mut t = None;
    for line in text.lines() {
        if let Some(pt) = field(line, "pts_time:") {
            t = pt.parse::<f64>().ok();
        } else if let Some(y) = line.strip_prefix("lavfi.signalstats.YAVG=") {
            if y.parse::<f64>().is_ok_and(|y| y > 128.0) {
                times.extend(t);
            }
        }
    }
    times
}

/// Times (s) where a click starts: the first sample above 0.3 of full scale
/// after at least 0.5 s of quiet, on the decoded audio's own timestamps.
fn click_times(file: &Path, dir: &Path) -> Vec<f64> {
    let raw = dir.join("audio.raw");
    let (_, log) = ffmpeg(&[
        "-v",
        "info",
        "-i",
        file.to_str().unwrap(),
        "-map",
        "0:a",
        "-af",
        "ashowinfo",
        "-f",
        "s16le",
        "-ac",
        "1",
        "-ar",
        "48000",
        raw.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&raw).expect("decoded audio");
    let pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    // Each decoded frame: its pts and sample count, in output order.
    let mut frames = Vec::new();
    for line in log.lines().filter(|l| l.contains("ashowinfo")) {
        let pts = field(line, "pts_time:").and_then(|v| v.parse::<f64>().ok());
        let n = field(line, "nb_samples:").and_then(|v| v.parse::<usize>().ok());
        if let (Some(pts), Some(n)) = (pts, n) {
            frames.push((pts, n));
        }
    }
    assert!(!frames.is_empty(), "ashowinfo printed no frames: {log}");
    let mut clicks = Vec::new();
    let mut at = 0usize;
    let mut last_loud: Option<f64> = None;
    for (pts, n) in frames {
        for i in 0..n.min(pcm.len().saturating_sub(at)) {
            if pcm[at + i].unsigned_abs() > 9_830 {
                let t = pts + i as f64 / 48_000.0;
                if last_loud.is_none_or(|l| t - l > 0.5) {
                    clicks.push(t);
                }
                last_loud = Some(t);
            }
        }
        at += n;
    }
    clicks
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_mp4_carries_opus_in_step_with_the_picture() {
    if !have_ffmpeg() {
        return;
    }
    let d = start(&["--audio", "test", "--width", "320", "--height", "240"]);
    wait_status(&d.addr, 20, |s| {
        s["audio"]["state"] == "running" && s["stream"].is_object()
    })
    .await;
    // The audio joins the stream's init segment at the next keyframe.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let dir = tempdir();
    let file = dir.join("av.mp4");
    record(&d.addr, 10.5, &file).await;

    // ffprobe: one H.264 and one Opus stream.
    let streams = probe_streams(file.as_os_str());
    assert!(
        streams.contains("h264,video") && streams.contains("opus,audio"),
        "{streams}"
    );

    // The LL-HLS playlist carries both too (CMAF parts with a second traf).
    let hls = format!("http://{}/hls/index.m3u8", d.addr);
    let streams = probe_streams(hls.as_ref());
    assert!(
        streams.contains("h264,video") && streams.contains("opus,audio"),
        "HLS: {streams}"
    );

    // ffmpeg decodes both without a single error. (Frames keep their own
    // µs times: in the null muxer's default 1/30 s a late frame would share
    // a tick with the next, which it reports as an error of ours.)
    let (_, errors) = ffmpeg(&[
        "-v",
        "error",
        "-i",
        file.to_str().unwrap(),
        "-map",
        "0",
        "-enc_time_base:v",
        "-1",
        "-f",
        "null",
        "-",
    ]);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");

    let markers = marker_times(&file, &dir);
    let clicks = click_times(&file, &dir);
    assert!(markers.len() >= 8, "markers at {markers:?}");
    assert!(clicks.len() >= 8, "clicks at {clicks:?}");
    let mut skews = Vec::new();
    for m in &markers {
        let c = clicks
            .iter()
            .min_by(|a, b| (*a - m).abs().total_cmp(&(*b - m).abs()))
            .expect("a click");
        skews.push((m - c) * 1000.0);
    }
    eprintln!("A/V skew (video - audio), ms: {skews:.1?}");
    // The issue's bound is 20 ms. Both are stamped on the same capture-clock
    // grid at the source, so anything above ~0 is ours: 2 ms catches a
    // packet stamped at its end (20 ms), a wrong timescale, or the encoder's
    // 2.5 ms look-ahead not taken off.
    assert!(
        skews.iter().all(|s| s.abs() <= 2.0),
        "skew over 2 ms: {skews:.1?} (markers {markers:?}, clicks {clicks:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_audio_command_leaves_the_video_alone_and_comes_back() {
    if !have_ffmpeg() {
        return;
    }
    // 1.5 s of tone in real time, then the command exits.
    let cmd =
        "pipe:exec ffmpeg -v error -re -f lavfi -i sine=f=440:d=1.5 -f s16le -ac 1 -ar 48000 -";
    // Keyframes every 10 frames: the audio track joins the stream (a new
    // generation) at the first keyframe after it is added, well before the
    // failure 1.5 s later.
    let d = start(&[
        "--audio",
        cmd,
        "--width",
        "320",
        "--height",
        "240",
        "--keyframe-interval",
        "10",
    ]);
    let s = wait_status(&d.addr, 20, |s| {
        s["audio"]["state"] == "running" && s["audio"]["frames"].as_u64() > Some(0)
    })
    .await;
    let frames0 = s["frames"].as_u64().unwrap();
    let failed = wait_status(&d.addr, 10, |s| s["audio"]["state"] == "failed").await;
    // The sound's track (and so the stream generation) must outlive the
    // failure: `/stream.mp4` downloads go on, players are not re-initialised.
    let generation = failed["stream"]["generation"].clone();
    let audio_frames = failed["audio"]["frames"].as_u64().unwrap_or_default();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let still = wait_status(&d.addr, 5, |s| s["audio"]["state"] == "failed").await;
    assert!(
        still["audio"]["frames"].as_u64().unwrap_or_default() >= audio_frames + 5,
        "silence fills the gap: {audio_frames} then {}",
        still["audio"]["frames"]
    );
    let why = failed["audio"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("exited with status 0") && why.contains("retrying in"),
        "{why}"
    );
    assert_eq!(failed["source"]["state"], "running", "video unaffected");
    // Restarted after the backoff: sound again, and the video went on.
    let back = wait_status(&d.addr, 10, |s| s["audio"]["state"] == "running").await;
    assert!(
        back["frames"].as_u64().unwrap() > frames0 + 30,
        "video kept flowing"
    );
    assert_eq!(back["source"]["state"], "running");
    assert_eq!(
        back["stream"]["generation"], generation,
        "the audio failure did not start a new stream generation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_switches_the_sound_on_and_off_without_restarting_the_picture() {
    let d = start(&["--width", "320", "--height", "240"]);
    let s = wait_status(&d.addr, 20, |s| s["source"]["state"] == "running").await;
    assert!(s["audio"].is_null(), "off by default: {s}");
    let cookie = common::admin(&d.addr, "audio test admin password").await;
    let (st, body) = common::put_camera(&d.addr, &cookie, r#"{"audio": 1}"#).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["fields"]["audio"]["value"], 1, "{body}");
    assert_eq!(
        body["restarted"], false,
        "the picture is not restarted: {body}"
    );
    let on = wait_status(&d.addr, 10, |s| s["audio"]["state"] == "running").await;
    assert_eq!(on["audio"]["kind"], "audio-test");
    let (st, body) = common::put_camera(&d.addr, &cookie, r#"{"audio": 0}"#).await;
    assert_eq!(st, 200, "{body}");
    let off = wait_status(&d.addr, 10, |s| s["audio"].is_null()).await;
    assert_eq!(off["source"]["state"], "running");
    // `auto` follows the camera: the test pattern has no microphone, so
    // there is no audio track, and the menu says auto.
    let (st, body) = common::put_camera(&d.addr, &cookie, r#"{"audio": 3}"#).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["fields"]["audio"]["value"], 3, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let auto = wait_status(&d.addr, 10, |s| s["source"]["state"] == "running").await;
    assert!(
        auto["audio"].is_null(),
        "no microphone beside the test pattern: {auto}"
    );
    // Not a choice: refused, naming the field.
    let (st, body) = common::put_camera(&d.addr, &cookie, r#"{"audio": 7}"#).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("audio"), "{body}");
}

#[test]
fn bad_audio_settings_are_refused_with_a_reason() {
    for (args, want) in [
        (vec!["--audio", "mic"], "unknown audio source `mic`"),
        (vec!["--audio", "alsa:hw:1;reboot"], "expected an ALSA name"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pinholed"))
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .expect("run pinholed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
    let dir = tempdir();
    let conf = dir.join("pinhole.toml");
    std::fs::write(&conf, "[audio]\nsource = \"test\"\nrate = 44100\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinholed"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&conf)
        .output()
        .expect("run pinholed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("44100 Hz"), "{err}");
}

/// ffprobe's `codec_name,codec_type` lines for a file or URL.
fn probe_streams(input: &std::ffi::OsStr) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type",
        ])
        .args(["-of", "csv=p=0"])
        .arg(input)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pinhole-audio-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Server-added audio latency, for bench/README.md: from the moment a
/// packet's last sample is captured (its prft time + its 20 ms − the
/// encoder's 2.5 ms look-ahead shift) to its bytes arriving on a
/// /ws/fmp4 client on the same machine; p50/p99 over 15 s.
/// `cargo test -p pinholed --test audio audio_latency -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn audio_latency() {
    use futures_util::StreamExt;
    let d = start(&["--audio", "test", "--width", "640", "--height", "360"]);
    wait_status(&d.addr, 20, |s| s["audio"]["state"] == "running").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/fmp4", d.addr))
        .await
        .expect("connect");
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await
        else {
            continue;
        };
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as f64;
        let b = msg.into_data();
        // prft first: size, 'prft', version/flags, track_ID, NTP 64-bit.
        if b.len() < 24
            || &b[4..8] != b"prft"
            || u32::from_be_bytes([b[12], b[13], b[14], b[15]]) == 1
        {
            continue; // not an audio fragment
        }
        let secs = u32::from_be_bytes([b[16], b[17], b[18], b[19]]) as f64 - 2_208_988_800.0;
        let frac = u32::from_be_bytes([b[20], b[21], b[22], b[23]]) as f64 / 4_294_967_296.0;
        let captured_us = (secs + frac) * 1e6 + 20_000.0 - 2_500.0;
        lat.push((now_us - captured_us) / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    assert!(lat.len() > 500, "{} audio fragments", lat.len());
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    eprintln!(
        "audio capture -> bytes on a /ws/fmp4 client: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} packets)",
        q(0.5),
        q(0.99),
        q(1.0),
        lat.len()
    );
}
