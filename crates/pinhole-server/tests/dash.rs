//! LL-DASH end to end, through the image's nginx site: the manifest, its
//! time source, the segment being written delivered in chunks as its parts
//! are made (byte for byte the segment file once complete), and ffprobe and
//! ffmpeg (clients we did not write) reading the live manifest.
//! Needs nginx and ffmpeg.

mod common;
#[path = "common/nginx.rs"]
mod nginx;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use pinhole_hub::{Hub, HubConfig};
use pinhole_media::AccessUnit;
use pinhole_server::{AppState, ServerConfig};
use pinhole_source_api::SourceInfo;

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Fixture frames at 30 fps in real time (1 s GOP); pts = µs since `t0`.
fn realtime_source(state: Arc<AppState>, t0: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let aus = fixture_aus();
        let mut t = tokio::time::interval(Duration::from_micros(33_333));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        for i in 0.. {
            t.tick().await;
            let (data, keyframe) = aus[i % aus.len()].clone();
            state.hub.publish(AccessUnit {
                data,
                pts_us: t0.elapsed().as_micros() as u64,
                wallclock_us: wall_us(),
                keyframe,
            });
        }
    })
}

/// `name="value"` in `text`.
fn attr<'a>(text: &'a str, name: &str) -> &'a str {
    text.split(&format!(" {name}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_dash_through_nginx_chunked_and_read_by_ffmpeg() {
    let tmp = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let hls = tmp.path().join("hls");
    let sock = tmp.path().join("pinholed.sock");
    std::fs::create_dir(&hls).expect("mkdir");
    std::fs::create_dir(tmp.path().join("nginx")).expect("mkdir");
    let info = SourceInfo {
        kind: "test",
        detail: "driven by the test".into(),
        fps: Some(30.0),
        bitrate: Some(500_000),
        keyframe_interval: Some(30),
    };
    let cfg = ServerConfig {
        hls_dir: Some(hls.clone()),
        ..ServerConfig::default()
    };
    let state = AppState::new(Hub::new(HubConfig::default()), info, cfg);
    let server = TestServer::serve(state, Some(&sock)).await;
    let t0 = Instant::now();
    let source = realtime_source(server.state.clone(), t0);
    let nginx = nginx::start(&tmp.path().join("nginx"), &hls, &sock);
    let base = format!("http://127.0.0.1:{}", nginx.port);

    // The manifest.
    let r = get(&format!("{base}/dash/index.mpd"), Duration::from_secs(15)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/dash+xml");
    assert_eq!(r.headers["cache-control"], "public, max-age=1");
    let mpd = String::from_utf8(r.body).expect("utf8");
    for needle in [
        "type=\"dynamic\"",
        "<SegmentTemplate ",
        "availabilityTimeComplete=\"false\"",
        "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"/dash/time\"/>",
        "<ProducerReferenceTime ",
        "codecs=\"avc1.",
        "width=\"320\" height=\"240\" frameRate=\"30\"",
    ] {
        assert!(mpd.contains(needle), "{needle} not in {mpd}");
    }
    // Segments are the keyframe interval (1 s; until two exist, the
    // nominal one, then their average), available from their start.
    let d: u64 = attr(&mpd, "duration").parse().expect("duration");
    assert!((990_000..=1_010_000).contains(&d), "{mpd}");
    assert_eq!(
        attr(&mpd, "availabilityTimeOffset"),
        format!("{}.{:03}", d / 1_000_000, (d % 1_000_000) / 1000)
    );
    let media = attr(&mpd, "media").to_owned();
    let prefix = media.trim_end_matches("-$Number$.m4s").to_owned();
    let init = attr(&mpd, "initialization").to_owned();
    let r = get(&format!("{base}/dash/{init}"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.windows(4).any(|w| w == b"moov"));

    // The time source: the server's wall clock.
    let r = get(&format!("{base}/dash/time"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "no-store");
    let now = String::from_utf8(r.body).expect("utf8");
    assert!(now.ends_with('Z') && now.len() == 24, "{now}");

    // The segment after the one being written, asked for before it exists:
    // its chunks arrive as its parts are made, not when it is complete.
    let status = get(&server.url("/api/status"), Duration::from_secs(2)).await;
    let v: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
    let msn = v["hls"]["live"]["msn"].as_u64().expect("live msn") + 1;
    let name = format!("{prefix}-{msn}.m4s");
    assert!(!hls.join(&name).exists());
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", nginx.port))
        .await
        .expect("connect");
    let mut sender = http1(stream).await;
    let req = http::Request::get(format!("/dash/{name}"))
        .header("host", format!("127.0.0.1:{}", nginx.port))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let asked = Instant::now();
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let mut arrivals = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a chunk within 5 s")
    {
        if let Ok(data) = frame.expect("body").into_data() {
            arrivals.push(asked.elapsed().as_secs_f64());
            got.extend_from_slice(&data);
        }
    }
    let file = std::fs::read(hls.join(&name)).expect("the complete segment");
    assert_eq!(got, file, "chunked delivery == the segment file");
    let spread = arrivals.last().copied().unwrap_or(0.0) - arrivals[0];
    eprintln!(
        "{name}: {} B in {} reads over {spread:.3} s (first after {:.3} s)",
        got.len(),
        arrivals.len(),
        arrivals[0]
    );
    assert!(
        arrivals.len() >= 3 && spread > 0.5,
        "not delivered as it was made: {arrivals:?}"
    );
    let moofs = got.windows(4).filter(|w| w == b"moof").count();
    assert!(moofs >= 4, "{moofs} chunks in the segment");

    // ffprobe and ffmpeg read the live manifest.
    let url = format!("{base}/dash/index.mpd");
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json", &url])
        .output()
        .await
        .expect("ffprobe is required for this test (apt-get install ffmpeg)");
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let st = &probe["streams"][0];
    assert_eq!(st["codec_name"], "h264", "{probe}");
    assert_eq!(st["width"], 320);
    assert_eq!(st["height"], 240);
    let ff = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "level+info", "-i"])
        // setpts after showinfo: the null muxer wants steady 1/30 s ticks
        // (µs capture times with jitter round to equal ones otherwise).
        .args([&url, "-t", "3", "-vf", "showinfo,setpts=N/30/TB"])
        .args(["-f", "null", "-"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let out = tokio::time::timeout(Duration::from_secs(40), ff.wait_with_output())
        .await
        .expect("ffmpeg finished within 40 s")
        .expect("ffmpeg ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    let frames = stderr.lines().filter(|l| l.contains(" pts_time:")).count();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("[error]") || l.contains("[fatal]"))
        .collect();
    eprintln!("ffmpeg decoded {frames} frames from the MPD");
    assert!(
        frames >= 60,
        "ffmpeg decoded only {frames} frames: {stderr}"
    );
    assert!(errors.is_empty(), "ffmpeg errors: {errors:#?}");

    source.abort();
    drop(nginx);
    server.stop().await;
}
