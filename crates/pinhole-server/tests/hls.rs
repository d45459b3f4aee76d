//! LL-HLS end to end: the writer into a real directory, blocking playlist
//! reload, real nginx (the overlay's site config) in front of the server on a
//! Unix socket, ffmpeg reading the live playlist, a bounded directory over a
//! long (fast-forwarded) run, and a full disk (injected ENOSPC, and a real
//! tiny tmpfs when this runs as root).
//!
//! Needs nginx (Debian `nginx-light`) and ffmpeg; fails loudly without them.

mod common;
#[path = "common/nginx.rs"]
mod nginx;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use pinhole_hub::{Hub, HubConfig};
use pinhole_media::AccessUnit;
use pinhole_server::hls::{start_writer, DirStore, SegmentStore};
use pinhole_server::{AppState, ServerConfig};
use pinhole_source_api::SourceInfo;

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A server with HLS into `dir`, on TCP port 0 and optionally a Unix socket.
/// `store` replaces the default directory writer.
async fn start_server(
    dir: &Path,
    unix: Option<&Path>,
    hub_cfg: HubConfig,
    store: Option<Box<dyn SegmentStore>>,
) -> TestServer {
    let info = SourceInfo {
        kind: "test",
        detail: "driven by the test".into(),
        fps: Some(30.0),
        bitrate: Some(500_000),
        keyframe_interval: Some(30),
    };
    let cfg = ServerConfig {
        hls_dir: Some(dir.to_owned()),
        ..ServerConfig::default()
    };
    let state = AppState::new(Hub::new(hub_cfg), info, cfg);
    if let Some(store) = store {
        start_writer(&state, store);
    }
    TestServer::serve(state, unix).await
}

async fn status(server: &TestServer) -> serde_json::Value {
    let r = get(&server.url("/api/status"), Duration::from_secs(2)).await;
    serde_json::from_slice(&r.body).expect("status json")
}

/// Feeds fixture frames; `pts_us` on a clock that starts at `t0`. `pad`
/// appends a filler NAL of that many bytes (to fill a disk quickly).
struct Feeder {
    aus: Vec<(Bytes, bool)>,
    i: usize,
    pad: usize,
}

impl Feeder {
    fn new(pad: usize) -> Feeder {
        Feeder {
            aus: fixture_aus(),
            i: 0,
            pad,
        }
    }

    fn publish(&mut self, state: &AppState, pts_us: u64) {
        let (data, keyframe) = self.aus[self.i % self.aus.len()].clone();
        self.i += 1;
        let data = if self.pad > 0 {
            let mut v = data.to_vec();
            v.extend_from_slice(&[0, 0, 0, 1, 0x0c]);
            v.resize(v.len() + self.pad, 0xff);
            v.push(0x80);
            Bytes::from(v)
        } else {
            data
        };
        state.hub.publish(AccessUnit {
            data,
            pts_us,
            wallclock_us: wall_us(),
            keyframe,
        });
    }

    /// Publishes `n` frames at 30 fps of media time starting at frame `self.i`,
    /// as fast as `pace` allows.
    async fn burst(&mut self, state: &AppState, n: usize, pace: Duration) {
        for _ in 0..n {
            let pts = self.i as u64 * 1_000_000 / 30;
            self.publish(state, pts);
            tokio::time::sleep(pace).await;
        }
    }
}

/// Real-time source: fixture frames at 30 fps; pts = µs since `t0`.
fn realtime_source(state: Arc<AppState>, t0: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut feeder = Feeder::new(0);
        let mut t = tokio::time::interval(Duration::from_micros(33_333));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            t.tick().await;
            feeder.publish(&state, t0.elapsed().as_micros() as u64);
        }
    })
}

fn media_playlist_edge(text: &str) -> (u64, u64) {
    // (msn, part) of the preload hint: the next part to appear.
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .expect("preload hint");
    let stem = hint.trim_end_matches("\"").trim_end_matches(".m4s");
    let mut it = stem.rsplit('-').next().expect("name").split('.');
    let msn = it.next().and_then(|s| s.parse().ok()).expect("msn");
    let part = it.next().and_then(|s| s.parse().ok()).expect("part");
    (msn, part)
}

fn media_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reload_waits_for_the_part_and_times_out_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start_server(tmp.path(), None, HubConfig::default(), None).await;
    let state = server.state.clone();
    let mut feeder = Feeder::new(0);
    // Two segments and a bit, at real pace so nothing is skipped.
    feeder.burst(&state, 70, Duration::from_millis(2)).await;
    let r = get(&server.url("/hls/live.m3u8"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"], "application/vnd.apple.mpegurl",
        "playlist MIME"
    );
    let text = String::from_utf8(r.body).expect("utf8");
    let (msn, part) = media_playlist_edge(&text);
    assert!(!text.contains(&format!("-{msn}.{part}.m4s\",")));

    // The next part: the request must wait until it is published.
    let url = server.url(&format!("/hls/live.m3u8?_HLS_msn={msn}&_HLS_part={part}"));
    let t0 = Instant::now();
    let pending =
        tokio::spawn(async move { (get(&url, Duration::from_secs(10)).await, t0.elapsed()) });
    // Also the preload-hinted file itself, requested before it exists.
    let hinted = server.url(&format!(
        "/hls/{}-{msn}.{part}.m4s",
        text.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .and_then(|u| u.split("-init").next())
            .expect("prefix")
    ));
    let pending_part = tokio::spawn(async move { get(&hinted, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !pending.is_finished(),
        "blocking reload answered before the part existed"
    );
    let fed_at = t0.elapsed();
    // Enough frames to close that part (7 frames at most).
    feeder.burst(&state, 8, Duration::from_millis(1)).await;
    let (resp, took) = pending.await.expect("join");
    assert_eq!(resp.status, 200);
    let body = String::from_utf8(resp.body).expect("utf8");
    assert!(body.contains(&format!("-{msn}.{part}.m4s\"")), "{body}");
    assert!(
        took >= fed_at,
        "answered at {took:?}, part fed at {fed_at:?}"
    );
    assert!(
        took < fed_at + Duration::from_millis(500),
        "answered late: {took:?} vs {fed_at:?}"
    );
    eprintln!(
        "blocking reload: held {:.0} ms, answered {:.1} ms after the part was fed",
        took.as_secs_f64() * 1e3,
        (took - fed_at).as_secs_f64() * 1e3
    );
    let part_resp = pending_part.await.expect("join");
    assert_eq!(part_resp.status, 200);
    assert_eq!(part_resp.headers["content-type"], "video/mp4");
    assert!(part_resp.body.len() > 100);

    // Too far ahead: 400 at once. Not published in time: 503 after 3 target durations.
    let r = get(
        &server.url(&format!("/hls/live.m3u8?_HLS_msn={}", msn + 3)),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, 400);
    let t = Instant::now();
    let r = get(
        &server.url(&format!("/hls/live.m3u8?_HLS_msn={}&_HLS_part=0", msn + 2)),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.status, 503);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // Malformed directives and unsafe names.
    for bad in ["/hls/live.m3u8?_HLS_part=1", "/hls/live.m3u8?_HLS_msn=x"] {
        assert_eq!(
            get(&server.url(bad), Duration::from_secs(2)).await.status,
            400,
            "{bad}"
        );
    }
    std::fs::write(tmp.path().join(".hidden.m4s"), b"x").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("link.m4s")).expect("symlink");
    for bad in [
        "/hls/..%2Fetc%2Fpasswd",
        "/hls/../Cargo.toml",
        "/hls/.hidden.m4s",
        "/hls/link.m4s",
        "/hls/nope.m4s",
    ] {
        assert_eq!(
            get(&server.url(bad), Duration::from_secs(5)).await.status,
            404,
            "{bad}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_stays_bounded_over_a_long_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start_server(
        tmp.path(),
        None,
        HubConfig {
            max_lag_frames: 600,
            ..HubConfig::default()
        },
        None,
    )
    .await;
    let state = server.state.clone();
    let mut feeder = Feeder::new(0);
    let mut max_files = 0;
    let mut max_bytes = 0u64;
    // 20 minutes of 30 fps media, fast-forwarded.
    for _ in 0..(20 * 60) {
        feeder.burst(&state, 30, Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let files = media_files(tmp.path());
        let bytes: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(tmp.path().join(f)).ok())
            .map(|m| m.len())
            .sum();
        max_files = max_files.max(files.len());
        max_bytes = max_bytes.max(bytes);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = status(&server).await;
    let segments = st["hls"]["segments"].as_u64().expect("segments");
    assert!(segments > 1000, "only {segments} segments written: {st}");
    assert_eq!(st["hls"]["errors"], 0);
    // (6 listed + 3 lingering + 1 open) segments × (1 + ≤ 7 parts) + init + 2 playlists.
    assert!(max_files <= 10 * 8 + 3, "{max_files} files");
    eprintln!(
        "long run: {segments} segments, at most {max_files} files / {max_bytes} bytes on disk"
    );
    server.stop().await;
}

/// Fails writes with ENOSPC while `fail` is non-zero (counting down).
struct FullDisk {
    inner: DirStore,
    fail: Arc<AtomicUsize>,
}

impl SegmentStore for FullDisk {
    fn prepare(&mut self) -> io::Result<()> {
        self.inner.prepare()
    }
    fn write(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::from_raw_os_error(28));
        }
        self.inner.write(name, data)
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&mut self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_and_a_vanished_directory_are_survived() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("hls");
    let fail = Arc::new(AtomicUsize::new(0));
    let store = FullDisk {
        inner: DirStore::new(&dir),
        fail: fail.clone(),
    };
    let server = start_server(&dir, None, HubConfig::default(), Some(Box::new(store))).await;
    let state = server.state.clone();
    let mut feeder = Feeder::new(0);
    feeder.burst(&state, 200, Duration::from_millis(1)).await;
    // The disk fills up: many writes fail in a row.
    fail.store(40, Ordering::SeqCst);
    feeder.burst(&state, 300, Duration::from_millis(1)).await;
    assert_eq!(fail.load(Ordering::SeqCst), 0, "writes were attempted");
    // The directory vanishes (someone cleaned /run).
    std::fs::remove_dir_all(&dir).expect("rm");
    feeder.burst(&state, 200, Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = status(&server).await;
    assert!(st["hls"]["errors"].as_u64().unwrap_or(0) >= 2, "{st}");
    // Still streaming: the live playlist's files exist, init included.
    let r = get(&server.url("/hls/live.m3u8"), Duration::from_secs(5)).await;
    let text = String::from_utf8(r.body).expect("utf8");
    for uri in text
        .lines()
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .filter(|u| !text.contains(&format!("PRELOAD-HINT:TYPE=PART,URI=\"{u}\"")))
        .filter(|u| u.contains("init") || u.contains(".m4s"))
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(3)
    {
        let r = get(&server.url(&format!("/hls/{uri}")), Duration::from_secs(5)).await;
        assert_eq!(r.status, 200, "{uri} after recovery");
    }
    server.stop().await;
}

/// A real full tmpfs (needs root and mount; skipped with a note otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_tiny_tmpfs_fills_up_and_streaming_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("hls");
    std::fs::create_dir(&dir).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
        .arg(&dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the injected ENOSPC test covers the path");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.clone());
    let server = start_server(&dir, None, HubConfig::default(), None).await;
    let state = server.state.clone();
    // 8 KB frames: ~240 KB per segment + as much again in parts; the window
    // needs ~4 MB, the tmpfs has 1 MB.
    let mut feeder = Feeder::new(8 << 10);
    feeder.burst(&state, 600, Duration::from_millis(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = status(&server).await;
    feeder.burst(&state, 150, Duration::from_millis(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = status(&server).await;
    assert!(
        before["hls"]["errors"].as_u64().unwrap_or(0) > 0,
        "{before}"
    );
    assert!(
        after["hls"]["parts"].as_u64() > before["hls"]["parts"].as_u64(),
        "parts stopped: {before} → {after}"
    );
    let r = get(&server.url("/hls/live.m3u8"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200);
    eprintln!("tiny tmpfs: {}", after["hls"]);
    server.stop().await;
}

// ---- nginx -------------------------------------------------------------------

/// (requests served by nginx from disk, requests proxied to pinholed).
fn request_share(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let proxied = text.lines().filter(|l| l.contains("unix:")).count();
    (text.lines().count() - proxied, proxied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_ffmpeg_and_an_ll_client_read_the_live_stream() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // nginx workers may run as another user: let them in.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let hls = tmp.path().join("hls");
    let sock = tmp.path().join("pinholed.sock");
    std::fs::create_dir(&hls).expect("mkdir");
    std::fs::create_dir(tmp.path().join("nginx")).expect("mkdir");
    let server = start_server(&hls, Some(&sock), HubConfig::default(), None).await;
    let t0 = Instant::now();
    let source = realtime_source(server.state.clone(), t0);
    let nginx = nginx::start_logging(
        &tmp.path().join("nginx"),
        &hls,
        &sock,
        "$request_uri $status $upstream_addr $request_time $body_bytes_sent",
    );
    let base = format!("http://127.0.0.1:{}", nginx.port);

    // Static + proxied paths through nginx.
    let r = get(&format!("{base}/hls/index.m3u8"), Duration::from_secs(15)).await;
    assert_eq!(r.status, 200);
    let mv = String::from_utf8(r.body).expect("utf8");
    assert!(
        mv.contains("CODECS=\"avc1.") && mv.contains("RESOLUTION=320x240"),
        "{mv}"
    );
    // A cache may keep the live playlists a second (docs/scale.md).
    assert_eq!(r.headers["cache-control"], "public, max-age=1");
    let r = get(&format!("{base}/hls/live.m3u8"), Duration::from_secs(5)).await;
    let text = String::from_utf8(r.body).expect("utf8");
    let seg = text
        .lines()
        .rev()
        .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .expect("a segment")
        .to_owned();
    let r = get(&format!("{base}/hls/{seg}"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "video/mp4");
    assert!(r.headers["cache-control"]
        .to_str()
        .unwrap_or("")
        .contains("immutable"));
    let r = get(&format!("{base}/api/status"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "/api/status via nginx");
    // The preload-hinted part, requested before it exists: nginx's 404 goes
    // to pinholed, which holds the request until the part is written.
    let r = get(&format!("{base}/hls/live.m3u8"), Duration::from_secs(5)).await;
    let text = String::from_utf8(r.body).expect("utf8");
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .map(|u| u.trim_end_matches('"').to_owned())
        .expect("hint");
    assert!(!hls.join(&hint).exists());
    let r = get(&format!("{base}/hls/{hint}"), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "preload hint {hint} through nginx");
    assert_eq!(r.headers["content-type"], "video/mp4");

    // ffmpeg decodes ≥ 5 s of the live stream, without errors. -copyts keeps
    // our timestamps (µs since t0 = capture time) for the latency figure.
    // A few segments first, so ffmpeg starts where it would on a camera
    // that has been running (three segments back from the end).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let url = format!("{base}/hls/index.m3u8");
    let ff = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "level+info",
            "-copyts",
            "-i",
            &url,
        ])
        .args([
            "-t",
            "5",
            // setpts after showinfo: the null muxer wants steady 1/30 s ticks.
            "-vf",
            "showinfo,setpts=N/30/TB",
            "-f",
            "null",
            "-",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is required for this test (apt-get install ffmpeg)");
    let ff_start = t0.elapsed();
    let out = tokio::time::timeout(Duration::from_secs(40), ff.wait_with_output())
        .await
        .expect("ffmpeg finished within 40 s")
        .expect("ffmpeg ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    // ffmpeg's HLS demuxer feeds the init segment again when it starts
    // mid-playlist; the mov demuxer skips it with this warning (not with
    // -live_start_index 0, i.e. not a problem of the files).
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("[warning]") || l.contains("[error]") || l.contains("[fatal]"))
        .filter(|l| {
            !l.contains("Found duplicated MOOV Atom") && !l.contains("Last message repeated")
        })
        .collect();
    assert!(problems.is_empty(), "ffmpeg complained: {problems:#?}");
    let frames: Vec<f64> = stderr
        .lines()
        .filter_map(|l| {
            l.split(" pts_time:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        frames.len() >= 140,
        "ffmpeg decoded only {} frames",
        frames.len()
    );
    let span = frames.last().copied().unwrap_or(0.0) - frames.first().copied().unwrap_or(0.0);
    assert!(span >= 4.5, "only {span:.2} s of media");
    // ffmpeg starts 3 segments back (its live_start_index) and reads as
    // fast as it can: the first frame it decodes tells how far behind live
    // it starts; the run ends when 5 s are read.
    let ff_end = t0.elapsed();
    let first_behind = ff_start.as_secs_f64() - frames.first().copied().unwrap_or(0.0);
    let last_behind = ff_end.as_secs_f64() - frames.last().copied().unwrap_or(0.0);
    eprintln!(
        "ffmpeg: {} frames, {span:.2} s of media; started {first_behind:.2} s behind live, \
         ended {last_behind:.2} s behind live",
        frames.len()
    );

    // An LL-HLS client loop (what hls.js does): blocking reload for the
    // next part, then fetch that part; latency = now - capture time of the
    // part's end.
    let (nginx_before, proxied_before) = request_share(&nginx.access_log());
    let mut lat = Vec::new();
    let r = get(&format!("{base}/hls/live.m3u8"), Duration::from_secs(5)).await;
    let mut text = String::from_utf8(r.body).expect("utf8");
    let prefix = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|u| u.split("-init").next())
        .expect("prefix")
        .to_owned();
    let mut sizes = Vec::new();
    let ll_t = Instant::now();
    while ll_t.elapsed() < Duration::from_secs(5) {
        let (msn, part) = media_playlist_edge(&text);
        let r = get(
            &format!("{base}/hls/live.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(r.status, 200);
        text = String::from_utf8(r.body).expect("utf8");
        // The newest part (may be msn.part, or msn+1.0 if the segment ended).
        let newest = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
            .and_then(|l| l.split("URI=\"").nth(1)?.split('"').next())
            .expect("a part")
            .to_owned();
        assert!(newest.starts_with(&prefix));
        let r = get(&format!("{base}/hls/{newest}"), Duration::from_secs(5)).await;
        assert_eq!(r.status, 200, "{newest}");
        sizes.push(r.body.len());
        // End of the part's media = capture time of its last frame + 1 frame.
        let end = part_end_us(&r.body);
        lat.push(t0.elapsed().as_secs_f64() - end as f64 / 1e6);
    }
    let (nginx_after, proxied_after) = request_share(&nginx.access_log());
    lat.sort_by(f64::total_cmp);
    sizes.sort_unstable();
    let med = lat[lat.len() / 2];
    eprintln!(
        "LL client via nginx: {} parts, part fetched {:.0} ms (median, max {:.0}) after its last frame's capture end; \
         part size median {} B; requests nginx-static {} / proxied {}",
        lat.len(),
        med * 1e3,
        lat.last().copied().unwrap_or(0.0) * 1e3,
        sizes[sizes.len() / 2],
        nginx_after - nginx_before,
        proxied_after - proxied_before
    );
    assert!(lat.len() >= 15, "only {} parts in 5 s", lat.len());
    assert!(med < 0.5, "parts arrive {med:.3} s after capture");
    let (n, p) = request_share(&nginx.access_log());
    eprintln!("all requests: nginx-static {n}, proxied to pinholed {p}");

    source.abort();
    drop(nginx);
    server.stop().await;
}

/// tfdt + sum of sample durations of a part (µs), read from its boxes.
fn part_end_us(data: &[u8]) -> u64 {
    let find = |tag: &[u8]| data.windows(4).position(|w| w == tag).map(|i| i + 4);
    let be32 = |i: usize| {
        data.get(i..i + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(tfdt), Some(trun)) = (find(b"tfdt"), find(b"trun")) else {
        return 0;
    };
    let base = if data[tfdt] == 1 {
        (u64::from(be32(tfdt + 4)) << 32) | u64::from(be32(tfdt + 8))
    } else {
        u64::from(be32(tfdt + 4))
    };
    let flags = be32(trun) & 0xff_ffff;
    let count = be32(trun + 4) as usize;
    let mut i = trun + 8;
    if flags & 0x1 != 0 {
        i += 4;
    }
    if flags & 0x4 != 0 {
        i += 4;
    }
    let per = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    let mut dur = 0u64;
    for _ in 0..count {
        if flags & 0x100 != 0 {
            dur += u64::from(be32(i));
        }
        i += per;
    }
    // The timescale is 1 MHz (µs); this once converted from 90 kHz and so
    // made every part look 10× older than captured, which the latency
    // assertion could never catch.
    base + dur
}
