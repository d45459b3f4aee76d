//! LL-HLS behind a caching edge (docs/scale.md): the image's nginx site in
//! front of a real server (the origin), a second nginx on loopback as the
//! edge (`proxy_cache` + `proxy_cache_lock`, keeping what our
//! `Cache-Control` allows), and many light LL-HLS viewers on the edge, each
//! doing what hls.js does at the live edge: a blocking playlist reload for
//! the next part, then that part. The origin must see about one request per
//! part and playlist update, not one per viewer, and every viewer must get
//! each part soon enough to play within the LL-HLS latency target.
//!
//! `PINHOLE_EDGE_VIEWERS` (default 200) and `PINHOLE_EDGE_SECS` (default 15)
//! size the run; `bench/edge.sh` runs it longer. Needs nginx.

mod common;
#[path = "common/ll.rs"]
mod ll;
#[path = "common/nginx.rs"]
mod nginx;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use pinhole_hub::{Hub, HubConfig};
use pinhole_media::AccessUnit;
use pinhole_server::{AppState, ServerConfig};
use pinhole_source_api::SourceInfo;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fixture frames at 30 fps in real time; pts = µs since `t0`.
fn realtime_source(state: Arc<AppState>, t0: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let aus = fixture_aus();
        let mut t = tokio::time::interval(Duration::from_micros(33_333));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        for i in 0.. {
            t.tick().await;
            let (data, keyframe) = aus[i % aus.len()].clone();
            let wallclock_us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            state.hub.publish(AccessUnit {
                data,
                pts_us: t0.elapsed().as_micros() as u64,
                wallclock_us,
                keyframe,
            });
        }
    })
}

/// One keep-alive connection to the edge, reopened when nginx closes it.
struct Conn {
    port: u16,
    sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
}

impl Conn {
    async fn get(&mut self, path: &str) -> Option<(u16, Bytes)> {
        for _ in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .ok()?;
                self.sender = Some(http1(stream).await);
            }
            let sender = self.sender.as_mut()?;
            if sender.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            let req = http::Request::get(path)
                .header("host", format!("127.0.0.1:{}", self.port))
                .body(Empty::<Bytes>::new())
                .ok()?;
            let Ok(resp) = sender.send_request(req).await else {
                self.sender = None;
                continue;
            };
            let status = resp.status().as_u16();
            let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
                .await
                .ok()?
                .ok()?
                .to_bytes();
            return Some((status, body));
        }
        None
    }
}

#[derive(Default)]
struct ViewerStats {
    /// Seconds from the end of a part's media (capture time) to having it.
    delays: Vec<f64>,
    requests: u64,
    failures: u64,
}

/// A light LL-HLS viewer: blocking reload for the next part, then fetch
/// the newest part listed; until `until`.
async fn viewer(port: u16, t0: Instant, until: Instant) -> ViewerStats {
    let mut st = ViewerStats::default();
    let mut conn = Conn { port, sender: None };
    let mut next = None;
    while Instant::now() < until {
        let path = match next {
            Some((msn, part)) => format!("/hls/live.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
            None => "/hls/live.m3u8".to_owned(),
        };
        st.requests += 1;
        let Some((200, text)) = conn.get(&path).await else {
            st.failures += 1;
            next = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        next = ll::media_playlist_edge(&text);
        let Some(part) = ll::newest_part(&text) else {
            st.failures += 1;
            continue;
        };
        st.requests += 1;
        match conn.get(&format!("/hls/{part}")).await {
            Some((200, body)) => {
                let end = ll::part_end_us(&body) as f64 / 1e6;
                st.delays.push(t0.elapsed().as_secs_f64() - end);
            }
            _ => st.failures += 1,
        }
    }
    st
}

/// Origin requests by kind: (blocking playlist reloads, plain playlists,
/// parts, other).
fn origin_requests(log: &Path, skip: usize) -> (usize, usize, usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut n = (0, 0, 0, 0);
    for l in text.lines().skip(skip) {
        let uri = l.split_whitespace().next().unwrap_or("");
        if uri.contains("_HLS_msn=") {
            n.0 += 1;
        } else if uri.contains(".m3u8") {
            n.1 += 1;
        } else if uri.ends_with(".m4s") && uri.matches('.').count() == 2 {
            n.2 += 1;
        } else {
            n.3 += 1;
        }
    }
    n
}

fn lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_viewers_behind_a_caching_edge_cost_the_origin_one_request_per_part() {
    let viewers = env_or("PINHOLE_EDGE_VIEWERS", 200) as usize;
    let secs = env_or("PINHOLE_EDGE_SECS", 15);
    let tmp = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let hls = tmp.path().join("hls");
    let sock = tmp.path().join("pinholed.sock");
    for d in ["hls", "origin", "edge"] {
        std::fs::create_dir(tmp.path().join(d)).expect("mkdir");
    }
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
    let origin = nginx::start_logging(
        &tmp.path().join("origin"),
        &hls,
        &sock,
        "$request_uri $status $upstream_addr",
    );
    let edge = nginx::start_edge(&tmp.path().join("edge"), origin.port);
    let edge_url = |p: &str| format!("http://127.0.0.1:{}{p}", edge.port);

    // The headers a cache needs, through both nginx.
    let r = get(&edge_url("/hls/live.m3u8"), Duration::from_secs(15)).await;
    assert_eq!(r.status, 200);
    let cc = |r: &HttpResponse| {
        r.headers
            .get_all("cache-control")
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(cc(&r), ["public, max-age=1"], "plain playlist");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let (msn, part) = ll::media_playlist_edge(&text).expect("preload hint");
    let r = get(
        &edge_url(&format!("/hls/live.m3u8?_HLS_msn={msn}&_HLS_part={part}")),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(cc(&r), ["public, max-age=6"], "blocking reload");
    let again = get(
        &edge_url(&format!("/hls/live.m3u8?_HLS_msn={msn}&_HLS_part={part}")),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(again.headers["x-cache"], "HIT", "the edge keeps it");
    assert_eq!(again.body, r.body);
    let newest = ll::newest_part(&String::from_utf8_lossy(&r.body)).expect("a part");
    let r = get(&edge_url(&format!("/hls/{newest}")), Duration::from_secs(5)).await;
    assert_eq!(r.status, 200);
    assert_eq!(cc(&r), ["public, max-age=60, immutable"], "part");
    // An error is never kept: the part after next does not exist yet.
    let r = get(
        &edge_url(&format!("/hls/live.m3u8?_HLS_msn={}", msn + 5)),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(cc(&r), ["no-store"]);

    // Many viewers for `secs`.
    let parts_before = status_parts(&server).await;
    let skip = lines(&origin.access_log());
    let edge_skip = lines(&edge.access_log());
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..viewers)
        .map(|_| tokio::spawn(viewer(edge.port, t0, until)))
        .collect();
    let mut all = ViewerStats::default();
    let mut worst_viewer_p50: f64 = 0.0;
    for t in tasks {
        let mut s = t.await.expect("viewer");
        s.delays.sort_by(f64::total_cmp);
        worst_viewer_p50 = worst_viewer_p50.max(pct(&s.delays, 0.5));
        all.delays.extend(s.delays);
        all.requests += s.requests;
        all.failures += s.failures;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let parts = status_parts(&server).await - parts_before;
    // Requests still held at the end land in the log when they finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (blocking, plain, part_reqs, other) = origin_requests(&origin.access_log(), skip);
    let edge_reqs = lines(&edge.access_log()) - edge_skip;
    all.delays.sort_by(f64::total_cmp);
    let (p50, p95, p99) = (
        pct(&all.delays, 0.5),
        pct(&all.delays, 0.95),
        pct(&all.delays, 0.99),
    );
    eprintln!(
        "edge: {viewers} viewers for {elapsed:.1} s; {parts} parts made; viewers made {} requests \
         ({edge_reqs} logged by the edge, {} failed), got {} parts; origin saw {} requests: \
         {blocking} blocking reloads, {plain} plain playlists, {part_reqs} parts, {other} other \
         ({:.2} origin requests per part made); part delay after capture p50 {:.0} ms, p95 {:.0} ms, \
         p99 {:.0} ms, worst viewer's p50 {:.0} ms",
        all.requests,
        all.failures,
        all.delays.len(),
        blocking + plain + part_reqs + other,
        (blocking + plain + part_reqs + other) as f64 / parts.max(1) as f64,
        p50 * 1e3,
        p95 * 1e3,
        p99 * 1e3,
        worst_viewer_p50 * 1e3,
    );
    source.abort();
    let parts = parts as usize;
    assert!(
        parts >= (secs as usize) * 4,
        "only {parts} parts in {secs} s"
    );
    assert!(
        all.delays.len() >= viewers * parts / 2,
        "viewers got {} parts, expected about {} each",
        all.delays.len(),
        parts
    );
    assert!(
        all.failures * 100 <= all.requests,
        "{} failures",
        all.failures
    );
    // About one request per part and playlist update: parts, plus the
    // blocking reloads for them (a few URLs per part: viewers that got the
    // newest part ask for the next, slower ones for the one after).
    assert!(
        part_reqs <= parts + parts / 4 + 5,
        "origin saw {part_reqs} part requests for {parts} parts"
    );
    assert!(
        blocking + plain <= 3 * parts + 10,
        "origin saw {blocking} blocking + {plain} plain playlist requests for {parts} parts"
    );
    // One viewer alone gets a part ~35 ms after its media ends; behind the
    // edge, requests waiting on the cache lock are woken by nginx's 500 ms
    // timer, not when the first one's answer arrives (~300 ms p50 with 200
    // viewers at load 15-21, 506 ms at load ~27). The bounds leave room
    // for a loaded CI machine and still catch what matters: a viewer
    // waiting for a stale answer or a timeout (seconds), not for the lock.
    assert!(p50 < 0.8, "part delay p50 {p50:.3} s");
    assert!(p95 < 1.5, "part delay p95 {p95:.3} s");
    drop(edge);
    drop(origin);
    server.stop().await;
}

async fn status_parts(server: &TestServer) -> u64 {
    let r = get(&server.url("/api/status"), Duration::from_secs(2)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("status json");
    v["hls"]["parts"].as_u64().expect("hls.parts")
}
