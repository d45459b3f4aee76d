//! LL-DASH over the LL-HLS writer's files (no second muxer): `/dash/index.mpd`
//! (rendered per request by `pinhole_media::dash`), `/dash/time` for the
//! manifest's `UTCTiming`, and the media files, the same as under `/hls/`.
//! The segment being written (and the next two, asked for early) is sent
//! with chunked transfer: each part as it is written, then the rest of the
//! segment once it is complete, so the client gets CMAF chunks as they are
//! made (`availabilityTimeOffset`). With nginx in front, complete files come
//! from tmpfs and only the segment being written reaches pinholed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::Response;
use pinhole_media::dash::{render_mpd, MpdOptions};
use pinhole_media::hls::{iso8601_ms, NameKind};

use crate::hls::{plain_name, read_media, Cache, FIRST_PLAYLIST_WAIT};
use crate::{full, AppState, Body, ServerError};

/// The manifest's latency target (`ServiceDescription`), ms: parts are
/// 200 ms, and the player keeps about three of them.
const TARGET_LATENCY_MS: u64 = 800;

/// `GET /dash/<name>`.
pub(crate) async fn handle(
    state: &Arc<AppState>,
    path: &str,
) -> Result<Response<Body>, ServerError> {
    let not_found = || ServerError::NotFound(path.to_owned());
    let Some(dir) = &state.config.hls_dir else {
        return Err(ServerError::NotFound(format!("{path} (HLS/DASH is off)")));
    };
    let name = path.strip_prefix("/dash/").unwrap_or_default();
    if !plain_name(name) {
        return Err(not_found());
    }
    let shared_cache = state.auth.shared_cache_ok();
    match name {
        "index.mpd" => {
            let p = state
                .hls
                .wait_for(FIRST_PLAYLIST_WAIT, |_| true)
                .await
                .ok_or_else(|| ServerError::Unavailable("no segment yet".into()))?;
            let mpd = render_mpd(
                &p.dash,
                &MpdOptions {
                    now_us: state.clock.wall_us(),
                    segment_duration_us: segment_duration_us(state, p.target_duration_s),
                    time_url: "/dash/time",
                    target_latency_ms: TARGET_LATENCY_MS,
                },
            );
            let mut resp = full(StatusCode::OK, "application/dash+xml", mpd);
            set_cache(&mut resp, &Cache::Live.header(shared_cache));
            Ok(resp)
        }
        "time" => {
            let mut resp = full(
                StatusCode::OK,
                "text/plain",
                iso8601_ms(state.clock.wall_us()),
            );
            set_cache(&mut resp, "no-store");
            Ok(resp)
        }
        _ => {
            if let Some(resp) = read_media(&dir.join(name), name, shared_cache).await? {
                return Ok(resp);
            }
            let current = state.hls.current().ok_or_else(not_found)?;
            match NameKind::parse(&current.prefix, name) {
                Some(NameKind::Segment { msn })
                    if msn >= current.open_msn && !current.too_far(msn) =>
                {
                    Ok(chunked(
                        state,
                        dir.clone(),
                        current.prefix.clone(),
                        msn,
                        shared_cache,
                    ))
                }
                _ => Err(not_found()),
            }
        }
    }
}

/// The nominal segment duration: the keyframe interval, as the encoder is
/// set (segments are cut on keyframes); else the target duration.
fn segment_duration_us(state: &AppState, target_duration_s: u64) -> u64 {
    let src = state.source_info();
    match (src.keyframe_interval, src.fps) {
        (Some(k), Some(f)) if k > 0 && f.is_finite() && f > 0.0 => {
            (f64::from(k) * 1e6 / f).round() as u64
        }
        _ => target_duration_s.max(1) * 1_000_000,
    }
}

fn set_cache(resp: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
}

struct Chunking {
    state: Arc<AppState>,
    dir: PathBuf,
    prefix: String,
    msn: u64,
    next_part: u64,
    sent: usize,
    done: bool,
}

/// A regular file's bytes (never through a symlink), or `None`.
async fn read_file(path: &std::path::Path) -> Option<Vec<u8>> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_file() => tokio::fs::read(path).await.ok(),
        _ => None,
    }
}

impl Chunking {
    /// The next chunk: a part as soon as it is written, or, once the
    /// segment is complete, whatever of it has not been sent (a segment is
    /// its parts concatenated, byte for byte). `None`: the end (or nothing
    /// new for three target durations: the source stopped).
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut changes = self.state.hls.changes();
        loop {
            changes.borrow_and_update();
            let segment = self.dir.join(format!("{}-{}.m4s", self.prefix, self.msn));
            if let Some(data) = read_file(&segment).await {
                self.done = true;
                return (data.len() > self.sent).then(|| Bytes::from(data).slice(self.sent..));
            }
            let part = self.dir.join(format!(
                "{}-{}.{}.m4s",
                self.prefix, self.msn, self.next_part
            ));
            if let Some(data) = read_file(&part).await {
                self.next_part += 1;
                self.sent += data.len();
                return Some(Bytes::from(data));
            }
            let wait = self.state.hls.current().map_or(FIRST_PLAYLIST_WAIT, |p| {
                Duration::from_secs(3 * p.target_duration_s.max(1))
            });
            // How long a client's request is held: a guard on the
            // connection, on tokio's timer (docs/design.md).
            match tokio::time::timeout(wait, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

fn chunked(
    state: &Arc<AppState>,
    dir: PathBuf,
    prefix: String,
    msn: u64,
    shared_cache: bool,
) -> Response<Body> {
    let start = Chunking {
        state: state.clone(),
        dir,
        prefix,
        msn,
        next_part: 0,
        sent: 0,
        done: false,
    };
    let chunks = futures_util::stream::unfold(start, |mut c| async move {
        let data = c.next().await?;
        Some((Ok::<_, std::io::Error>(BodyFrame::data(data)), c))
    });
    let mut resp = Response::new(StreamBody::new(chunks).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    // Once complete, the same bytes as the segment's file.
    if let Ok(v) = HeaderValue::from_str(&Cache::Immutable.header(shared_cache)) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}
