//! RTSP with clients we did not write: ffprobe/ffmpeg over TCP and UDP
//! (plain, Frigate's input options, Digest credentials in the URL), Home
//! Assistant's PyAV options (Debian's python3-av, run with /usr/bin/python3:
//! `python3` on PATH may be another interpreter), and GStreamer's rtspsrc.
//! Each decodes >= 5 s of the 320x240 30 fps fixture. ci/install-deps.sh
//! installs them; a missing one fails the test with that hint.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp_server;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{post_json, TestServer};
use pinhole_hub::HubConfig;
use pinhole_server::rtsp::{RtspConfig, RtspListener};
use pinhole_server::AppState;
use rtsp_server::{start_rtsp, wait_for_stream};

/// A server with RTSP on 127.0.0.1:0 playing the 30 fps fixture.
async fn start() -> (TestServer, SocketAddr) {
    let server = TestServer::start(HubConfig::default()).await;
    let addr = start_rtsp(server.state.clone(), RtspConfig::default()).await;
    (server, addr)
}

/// Runs a client to completion (killed after 40 s) off the runtime.
async fn run(program: &str, args: Vec<String>) -> Output {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("timeout");
        cmd.arg("40").arg(&program).args(&args);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (ci/install-deps.sh installs it)"));
        assert_ne!(
            out.status.code(),
            Some(127),
            "{program} is not installed: run ci/install-deps.sh"
        );
        assert_ne!(
            out.status.code(),
            Some(124),
            "{program} did not finish in 40 s"
        );
        out
    })
    .await
    .expect("client task")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// ffmpeg decodes 5 s to raw video; `framecrc` lists every frame.
/// Returns (frames, sizes seen).
async fn ffmpeg_decode(input_opts: &[&str], url: &str) -> (usize, Vec<usize>) {
    let mut args: Vec<String> = ["-nostdin", "-v", "error"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(input_opts.iter().map(|s| s.to_string()));
    args.extend(
        [
            "-i", url, "-t", "5", "-an", "-pix_fmt", "yuv420p", "-f", "framecrc", "-",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let out = run("ffmpeg", args).await;
    assert!(out.status.success(), "ffmpeg failed: {}", text(&out.stderr));
    let mut sizes = Vec::new();
    let mut frames = 0;
    for line in text(&out.stdout).lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        frames += 1;
        let size: usize = cols[4].parse().expect("size");
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    (frames, sizes)
}

/// 5 s at 30 fps, every frame a whole 320x240 picture (4:2:0: 115200 bytes).
fn assert_five_seconds(what: &str, (frames, sizes): (usize, Vec<usize>)) {
    assert!(
        (145..=155).contains(&frames),
        "{what}: {frames} frames in 5 s"
    );
    assert_eq!(sizes, vec![320 * 240 * 3 / 2], "{what}: frame sizes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_size_and_rate() {
    let (_s, addr) = start().await;
    let out = run(
        "ffprobe",
        [
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name,width,height,r_frame_rate",
            "-of",
            "compact",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("rtsp://{addr}/stream")])
        .collect(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ffprobe guesses the rate from RTP timestamp deltas (the SPS has no VUI
    // timing): with frames skipped under load it may pick 30000/1001. A 90 kHz
    // clock mistake would give 15, 60 or 1000/1 here.
    let line = text(&out.stdout);
    let (head, rate) = line
        .trim()
        .rsplit_once("|r_frame_rate=")
        .unwrap_or_else(|| panic!("no r_frame_rate in {line:?}"));
    assert_eq!(head, "stream|codec_name=h264|width=320|height=240");
    let (num, den) = rate.split_once('/').expect("num/den");
    let fps = num.parse::<f64>().expect("num") / den.parse::<f64>().expect("den");
    assert!((29.9..=30.1).contains(&fps), "r_frame_rate {rate}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_five_seconds_over_tcp_and_udp() {
    let (_s, addr) = start().await;
    let url = format!("rtsp://{addr}/stream");
    assert_five_seconds(
        "tcp",
        ffmpeg_decode(&["-rtsp_transport", "tcp"], &url).await,
    );
    assert_five_seconds(
        "udp",
        ffmpeg_decode(&["-rtsp_transport", "udp"], &url).await,
    );
}

/// Frigate's default input arguments (`preset-rtsp-generic`) plus the
/// options the issue names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_input_options() {
    let (_s, addr) = start().await;
    let url = format!("rtsp://{addr}/stream");
    let opts = [
        "-avoid_negative_ts",
        "make_zero",
        "-fflags",
        "+genpts+discardcorrupt",
        "-rtsp_transport",
        "tcp",
        "-timeout",
        "5000000",
        "-use_wallclock_as_timestamps",
        "1",
    ];
    assert_five_seconds("frigate", ffmpeg_decode(&opts, &url).await);
}

/// With a viewer password, ffmpeg logs in from the URL (it picks Digest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_with_the_viewer_password_in_the_url() {
    let (s, addr) = start().await;
    let cookie = common::admin_cookie(s.addr).await;
    let r = post_json(
        s.addr,
        "/api/auth/viewer/password",
        "{\"password\":\"view-secret\"}",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200);
    let tcp = ["-rtsp_transport", "tcp"];
    assert_five_seconds(
        "digest",
        ffmpeg_decode(&tcp, &format!("rtsp://viewer:view-secret@{addr}/stream")).await,
    );
    let out = run(
        "ffprobe",
        vec![
            "-v".into(),
            "error".into(),
            "-rtsp_transport".into(),
            "tcp".into(),
            format!("rtsp://viewer:wrong@{addr}/stream"),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
}

/// Home Assistant's stream worker opens the source with PyAV and these options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_pyav() {
    let (_s, addr) = start().await;
    // Like HA's worker: demux, drop packets without a timestamp (HA gives
    // up after 6 in a row: MAX_MISSING_DTS), decode. ffmpeg's RTSP demuxer
    // leaves the very first packet without one (it is the keyframe, so
    // decoding starts at the next keyframe, as in HA); it does the same
    // with ffmpeg's own RTP output, so it is ffmpeg's (docs/rtsp.md).
    let script = r#"
import sys, av
c = av.open(sys.argv[1], options={"rtsp_flags": "prefer_tcp", "stimeout": "5000000"}, timeout=(10, 10))
s = c.streams.video[0]
n, missing, first, last, sizes = 0, 0, None, None, set()
for p in c.demux(s):
    if p.dts is None:
        missing += 1
        continue
    t = float(p.pts * p.time_base)
    first = t if first is None else first
    last = t
    for f in p.decode():
        sizes.add((f.width, f.height))
        n += 1
    if last - first >= 6.0:
        break
print(n, missing, sorted(sizes))
"#;
    let out = run(
        "/usr/bin/python3",
        vec!["-c".into(), script.into(), format!("rtsp://{addr}/stream")],
    )
    .await;
    assert!(out.status.success(), "PyAV failed: {}", text(&out.stderr));
    let line = text(&out.stdout);
    let parts: Vec<&str> = line.trim().splitn(3, ' ').collect();
    let frames: usize = parts[0].parse().expect("frames");
    let missing: usize = parts[1].parse().expect("missing");
    assert!(frames >= 150, "5 s decoded: {line}");
    assert!(missing <= 1, "packets without a timestamp: {line}");
    assert_eq!(parts[2], "[(320, 240)]", "{line}");
}

/// GStreamer: rtspsrc ! rtph264depay ! avdec_h264, over TCP and UDP; the
/// caps filter fails negotiation unless the pictures are 320x240.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtspsrc() {
    let (_s, addr) = start().await;
    for proto in ["tcp", "udp"] {
        let t = Instant::now();
        let pipeline = format!(
            "rtspsrc location=rtsp://{addr}/stream protocols={proto} latency=0 ! rtph264depay ! \
             avdec_h264 ! video/x-raw,width=320,height=240 ! identity eos-after=150 ! fakesink sync=false"
        );
        let args: Vec<String> = std::iter::once("-e".to_string())
            .chain(pipeline.split_whitespace().map(str::to_owned))
            .collect();
        let out = run("gst-launch-1.0", args).await;
        let o = text(&out.stdout);
        assert!(out.status.success(), "{proto}: {o}{}", text(&out.stderr));
        assert!(
            o.contains("Got EOS"),
            "{proto}: no EOS after 150 frames: {o}"
        );
        assert!(t.elapsed() < Duration::from_secs(30));
    }
}

/// A new stream generation (another encoder, another size) mid-stream:
/// the parameter sets come in-band with the keyframe, and ffprobe sees
/// the new size without reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_parameter_sets_reach_clients_in_band() {
    let server = TestServer::start(HubConfig::default()).await;
    let state: Arc<AppState> = server.state.clone();
    let first = common::fixture_aus();
    let second = {
        let data = std::fs::read(common::fixture_path(
            "x264_high_bframes_slices_aud_320x180_25fps_gop25.h264",
        ))
        .expect("fixture");
        let mut asm = pinhole_media::annexb::AccessUnitAssembler::new();
        let mut v: Vec<_> = asm
            .push(&data)
            .into_iter()
            .map(|a| (a.data, a.keyframe))
            .collect();
        v.extend(asm.finish().map(|a| (a.data, a.keyframe)));
        v
    };
    // 2 s of the 320x240 stream, then a 320x180 one (x264 High profile,
    // B-frames, slices, AUDs: its own SPS/PPS), looped.
    let st = state.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut t = tokio::time::interval(Duration::from_millis(33));
        let frames = first.iter().cycle().take(60).chain(second.iter().cycle());
        for (data, keyframe) in frames {
            t.tick().await;
            let us = start.elapsed().as_micros() as u64;
            st.hub.publish(pinhole_media::AccessUnit {
                data: data.clone(),
                pts_us: us,
                wallclock_us: us,
                keyframe: *keyframe,
            });
        }
    });
    wait_for_stream(&state).await;
    let gen0 = state.hub.stream().expect("stream").generation;
    let l = RtspListener::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(pinhole_server::rtsp::serve(
        vec![l],
        state.clone(),
        RtspConfig::default(),
        std::future::pending(),
    ));
    let out = run(
        "ffprobe",
        [
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=width,height,pict_type",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+5",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("rtsp://{addr}/stream")])
        .collect(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        state.hub.stream().expect("stream").generation > gen0,
        "the generation changed"
    );
    let frames = text(&out.stdout);
    let n = frames.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(n > 60, "{n} frames: {frames}");
    let sizes: Vec<String> = frames
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    let switch = sizes
        .iter()
        .position(|s| *s == "320,180")
        .expect("the new size");
    assert!(
        switch > 0 && sizes[..switch].iter().all(|s| *s == "320,240"),
        "{frames}"
    );
    assert!(sizes[switch..].iter().all(|s| *s == "320,180"), "{frames}");
    assert!(
        text(&out.stderr).is_empty(),
        "decode errors: {}",
        text(&out.stderr)
    );
}

/// An Opus track in the hub is a second `m=` line (RFC 7587); ffmpeg
/// decodes both, over TCP and UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_a_second_track() {
    let server = TestServer::start(HubConfig::default()).await;
    let state = server.state.clone();
    let ogg = {
        let data = std::fs::read(common::fixture_path("opus_silence_mono_48k_20ms.opus"))
            .expect("fixture");
        pinhole_media::opus::read_ogg(&data).expect("ogg")
    };
    let audio = state
        .hub
        .add_track(pinhole_media::Codec::Opus(ogg.config.clone()))
        .expect("audio track");
    let aus = common::fixture_aus();
    let st = state.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let (mut v, mut a) = (0u64, 0u64);
        loop {
            tick.tick().await;
            let now = start.elapsed().as_micros() as u64;
            while a * 20_000 <= now {
                let p = &ogg.packets[a as usize % ogg.packets.len()];
                st.hub.publish_on(
                    audio,
                    pinhole_media::AccessUnit {
                        data: p.clone(),
                        pts_us: a * 20_000,
                        wallclock_us: 1_700_000_000_000_000 + a * 20_000,
                        keyframe: true,
                    },
                );
                a += 1;
            }
            while v * 1_000_000 / 30 <= now {
                let (data, keyframe) = &aus[v as usize % aus.len()];
                let pts = v * 1_000_000 / 30;
                st.hub.publish(pinhole_media::AccessUnit {
                    data: data.clone(),
                    pts_us: pts,
                    wallclock_us: 1_700_000_000_000_000 + pts,
                    keyframe: *keyframe,
                });
                v += 1;
            }
        }
    });
    wait_for_stream(&state).await;
    let l = RtspListener::bind("127.0.0.1:0".parse().expect("addr"), true)
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(pinhole_server::rtsp::serve(
        vec![l],
        state.clone(),
        RtspConfig::default(),
        std::future::pending(),
    ));
    for proto in ["tcp", "udp"] {
        let out = run(
            "ffmpeg",
            [
                "-nostdin",
                "-v",
                "error",
                "-rtsp_transport",
                proto,
                "-i",
                &format!("rtsp://{addr}/stream"),
                "-t",
                "5",
                "-f",
                "framecrc",
                "-",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
        .await;
        assert!(out.status.success(), "{proto}: {}", text(&out.stderr));
        let o = text(&out.stdout);
        let count = |idx: &str| {
            o.lines()
                .filter(|l| !l.starts_with('#') && l.split(',').next().map(str::trim) == Some(idx))
                .count()
        };
        let (video, audio) = (count("0"), count("1"));
        assert!(
            (145..=155).contains(&video),
            "{proto}: {video} video frames"
        );
        // 20 ms packets: 250 in 5 s.
        assert!(
            (240..=260).contains(&audio),
            "{proto}: {audio} audio frames"
        );
        assert!(
            o.contains("#codec_id 1: pcm_s16le") || o.contains("#media_type 1: audio"),
            "{o:.400}"
        );
    }
}
