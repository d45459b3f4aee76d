//! A stream of several tracks over real sockets: video plus a synthetic
//! Opus track (silence from an ffmpeg-made fixture), read back by ffprobe
//! and ffmpeg, and the video-only outputs unchanged by it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use pinhole_hub::{HubConfig, TrackId};
use pinhole_media::{AccessUnit, Codec};
use pinhole_server::AppState;
use tokio_tungstenite::tungstenite::Message;

fn opus_fixture() -> pinhole_media::opus::OggOpus {
    let data = std::fs::read(fixture_path("opus_silence_mono_48k_20ms.opus")).expect("fixture");
    pinhole_media::opus::read_ogg(&data).expect("ogg")
}

/// Adds the Opus track and publishes video at 30 fps and 20 ms audio
/// packets in real time, audio 40 ms ahead of the video captured at the
/// same instant (as a real encoder pair would deliver them).
fn publish_av(state: Arc<AppState>) -> (TrackId, tokio::task::JoinHandle<()>) {
    let ogg = opus_fixture();
    let audio = state
        .hub
        .add_track(Codec::Opus(ogg.config.clone()))
        .expect("audio track");
    let aus = fixture_aus();
    let task = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let (mut v, mut a) = (0u64, 0u64);
        loop {
            tick.tick().await;
            let now = start.elapsed().as_micros() as u64;
            while a * 20_000 <= now {
                let p = &ogg.packets[a as usize % ogg.packets.len()];
                state.hub.publish_on(
                    audio,
                    AccessUnit {
                        data: p.clone(),
                        pts_us: 40_000 + a * 20_000,
                        wallclock_us: 1_700_000_000_000_000 + a * 20_000,
                        keyframe: true,
                    },
                );
                a += 1;
            }
            while v * 1_000_000 / 30 <= now {
                let (data, keyframe) = &aus[v as usize % aus.len()];
                let pts = v * 1_000_000 / 30;
                state.hub.publish(AccessUnit {
                    data: data.clone(),
                    pts_us: pts,
                    wallclock_us: 1_700_000_000_000_000 + pts,
                    keyframe: *keyframe,
                });
                v += 1;
            }
        }
    });
    (audio, task)
}

/// `Some(())` if ffprobe is there. Without it the test is skipped with a
/// message, except in CI (ci/install-deps.sh installs ffmpeg).
fn have_ffprobe() -> Option<()> {
    let found = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffprobe is missing in CI (ci/install-deps.sh installs ffmpeg)"
        );
        eprintln!("SKIPPED: ffprobe not installed (apt-get install ffmpeg)");
        return None;
    }
    Some(())
}

/// Every stream ffprobe finds: (codec_type, codec_name, packets read).
fn probe_streams(path: &std::path::Path) -> Vec<(String, String, u64)> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,codec_name,nb_read_packets,sample_rate,channels",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "ffprobe reported errors: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or_default().to_owned(),
                s["codec_name"].as_str().unwrap_or_default().to_owned(),
                s["nb_read_packets"]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_video_and_a_second_track_from_stream_mp4() {
    if have_ffprobe().is_none() {
        return;
    }
    let server = TestServer::start(HubConfig::default()).await;
    let (_audio, publisher) = publish_av(server.state.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // /api/status lists what the outputs will carry.
    let st = get(&server.url("/api/status"), Duration::from_secs(2)).await;
    let st: serde_json::Value = serde_json::from_slice(&st.body).expect("json");
    let kinds: Vec<(&str, &str)> = st["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter(|t| t["in_fmp4"] == true)
        .map(|t| {
            (
                t["kind"].as_str().unwrap_or(""),
                t["codec"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{st}");
    assert!(
        kinds[0].0 == "video" && kinds[0].1.starts_with("avc1."),
        "{st}"
    );
    assert_eq!(kinds[1], ("audio", "opus"), "{st}");

    let resp = get(&server.url("/stream.mp4"), Duration::from_secs(3)).await;
    assert_eq!(resp.status, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("av.mp4");
    std::fs::write(&mp4, &resp.body).expect("write");
    let streams = probe_streams(&mp4);
    assert_eq!(streams.len(), 2, "{streams:?}");
    let (kind, codec, video_packets) = &streams[0];
    assert_eq!((kind.as_str(), codec.as_str()), ("video", "h264"));
    let (kind, codec, audio_packets) = &streams[1];
    assert_eq!((kind.as_str(), codec.as_str()), ("audio", "opus"));
    // 3 s of stream: ~90 frames and ~150 packets, on a loaded machine fewer.
    assert!(*video_packets >= 40, "{streams:?}");
    assert!(*audio_packets >= 60, "{streams:?}");

    // And ffmpeg decodes both without a complaint.
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mp4)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors: {stderr}");

    publisher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_h264_stays_video_only_byte_for_byte() {
    let server = TestServer::start(HubConfig::default()).await;
    let (_audio, publisher) = publish_av(server.state.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let aus = fixture_aus();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/h264"))
        .await
        .expect("connect");
    let mut got: Vec<Bytes> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        match m {
            Message::Binary(b) => got.push(b),
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert!(got.len() >= 15, "only {} messages", got.len());
    assert_fixture_in_order(&got, &aus);
    publisher.abort();
    server.stop().await;
}

/// The text init message and the binary messages of a `/ws/fmp4` session.
async fn fmp4_session(url: String) -> (serde_json::Value, Vec<Bytes>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let mut init = serde_json::Value::Null;
    let mut bins = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        match m {
            Message::Text(t) => init = serde_json::from_str(&t).expect("json"),
            Message::Binary(b) => bins.push(b),
            _ => {}
        }
    }
    (init, bins)
}

/// The `track_ID` of a fragment's (first) `tfhd`.
fn fragment_track(frag: &[u8]) -> Option<u32> {
    let at = frag.windows(4).position(|w| w == b"tfhd")?;
    let id = frag.get(at + 8..at + 12)?;
    Some(u32::from_be_bytes(id.try_into().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_fmp4_carries_every_track_or_the_video_alone_on_request() {
    let server = TestServer::start(HubConfig::default()).await;
    let (audio, publisher) = publish_av(server.state.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stream = server.state.hub.stream().expect("stream");

    let (init, bins) = fmp4_session(server.ws_url("/ws/fmp4")).await;
    assert_eq!(init["codec"], stream.info.codec.as_str());
    assert_eq!(init["codecs"], format!("{},opus", stream.info.codec));
    assert_eq!(init["tracks"][1]["kind"], "audio");
    assert_eq!(init["tracks"][1]["timescale"], 48_000);
    assert_eq!(bins[0], stream.init);
    let tracks: Vec<Option<u32>> = bins[1..].iter().map(|b| fragment_track(b)).collect();
    assert!(tracks.contains(&Some(1)) && tracks.contains(&Some(audio)));

    let (init, bins) = fmp4_session(server.ws_url("/ws/fmp4?tracks=video")).await;
    assert_eq!(init["codecs"], stream.info.codec.as_str());
    assert_eq!(init["tracks"].as_array().map(Vec::len), Some(1));
    assert_eq!(bins[0], stream.video_init);
    assert!(bins.len() > 10);
    assert!(bins[1..].iter().all(|b| fragment_track(b) == Some(1)));

    publisher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_segments_carry_both_tracks() {
    if have_ffprobe().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = pinhole_server::ServerConfig {
        hls_dir: Some(dir.path().to_owned()),
        ..pinhole_server::ServerConfig::default()
    };
    let server = TestServer::start_with(HubConfig::default(), cfg).await;
    let (_audio, publisher) = publish_av(server.state.clone());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    publisher.abort();

    let mv = get(&server.url("/hls/index.m3u8"), Duration::from_secs(2)).await;
    let mv = String::from_utf8_lossy(&mv.body).into_owned();
    assert!(mv.contains(",opus\""), "{mv}");
    // A complete segment (`{run}-{msn}.m4s`) after its init segment.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let init = names
        .iter()
        .find(|n| n.ends_with("-init1.mp4"))
        .expect("init segment");
    let segment = names
        .iter()
        .find(|n| n.ends_with(".m4s") && n.matches('.').count() == 1)
        .expect("a complete segment");
    let mut file = std::fs::read(dir.path().join(init)).expect("init");
    file.extend(std::fs::read(dir.path().join(segment)).expect("segment"));
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("segment.mp4");
    std::fs::write(&path, &file).expect("write");
    let streams = probe_streams(&path);
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert_eq!(
        (streams[0].0.as_str(), streams[0].1.as_str()),
        ("video", "h264")
    );
    assert_eq!(
        (streams[1].0.as_str(), streams[1].1.as_str()),
        ("audio", "opus")
    );
    // A 1 s segment: 30 frames, ~50 packets.
    assert!(streams[0].2 >= 25 && streams[1].2 >= 40, "{streams:?}");
    server.stop().await;
}
