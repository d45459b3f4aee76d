//! `/snapshot.jpg` and `/mjpeg`: JPEG pictures decoded from the H.264 stream,
//! or, when the camera itself delivers MJPEG, its own JPEGs (the hub's
//! picture track) passed through untouched (no decode, no re-encode, the
//! camera's quality).
//!
//! One decoder thread serves every MJPEG viewer (it must decode every frame
//! to follow the references, and encodes a JPEG at the configured rate); it
//! runs only while someone watches. A snapshot without MJPEG viewers decodes
//! the held GOP, once per new frame and one at a time (the JPEG is cached).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::Response;
use tokio::sync::watch;

use pinhole_media::TrackKind;

use crate::snapshot::JpegMaker;
use crate::state::Output;
use crate::{full, AppState, Body, ServerError};

const BOUNDARY: &str = "pinholeframe";
/// A camera JPEG older than this is stale: the camera stopped or the source
/// changed to one without JPEGs, so outputs go back to decoding H.264.
const CAMERA_JPEG_FRESH: Duration = Duration::from_secs(2);

/// The camera's newest JPEG, if it is fresh.
fn fresh_camera_jpeg(state: &AppState) -> Option<Bytes> {
    let track = state.hub.track_of(TrackKind::Picture)?;
    state
        .hub
        .latest(track.id)
        .filter(|j| state.hub.age(j.published_us) < CAMERA_JPEG_FRESH)
        .map(|j| j.au.data)
}

/// One multipart part around a JPEG.
fn part(jpeg: &Bytes) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut part = Vec::with_capacity(head.len() + jpeg.len() + 2);
    part.extend_from_slice(head.as_bytes());
    part.extend_from_slice(jpeg);
    part.extend_from_slice(b"\r\n");
    Bytes::from(part)
}

#[derive(Default)]
pub(crate) struct MjpegShared {
    tx: Mutex<Option<Arc<watch::Sender<Option<Bytes>>>>>,
    running: Arc<AtomicBool>,
    /// The last snapshot decoded from the GOP: (hub seq of its newest frame,
    /// JPEG). Held across the decode, so one runs at a time and requests
    /// for the same frame wait for it instead of decoding in parallel.
    snapshot: tokio::sync::Mutex<Option<(u64, Bytes)>>,
    /// GOP decodes for snapshots since start (`/metrics`).
    pub(crate) snapshot_decodes: AtomicU64,
}

impl MjpegShared {
    /// The latest MJPEG picture, if the decoder thread is running.
    fn latest(&self) -> Option<Bytes> {
        if !self.running.load(Ordering::SeqCst) {
            return None;
        }
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.as_ref().and_then(|t| t.borrow().clone())
    }

    fn subscribe(&self, state: &Arc<AppState>) -> watch::Receiver<Option<Bytes>> {
        let mut slot = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = slot.as_ref() {
            if self.running.load(Ordering::SeqCst) {
                return tx.subscribe();
            }
        }
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        *slot = Some(tx.clone());
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let state = state.clone();
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("mjpeg".into())
            .spawn(move || {
                if let Err(e) = decode_loop(&state, &tx, &handle) {
                    tracing::error!(error = %e, "MJPEG decoder stopped");
                }
                running.store(false, Ordering::SeqCst);
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the MJPEG thread"))
            .ok();
        rx
    }
}

fn decode_loop(
    state: &Arc<AppState>,
    tx: &watch::Sender<Option<Bytes>>,
    handle: &tokio::runtime::Handle,
) -> Result<(), crate::snapshot::SnapshotError> {
    let mut viewer = state.hub.subscribe();
    let mut maker = JpegMaker::new()?;
    let fps = state.config.mjpeg_fps.clamp(0.1, 60.0);
    let interval = interval_us(fps);
    // Pacing is a decision about time: on the daemon's clock (µs).
    let mut due = state.clock.now_us();
    let mut generation = 0;
    tracing::info!(fps, "MJPEG decoder started");
    while tx.receiver_count() > 0 {
        let next = handle
            .block_on(async { tokio::time::timeout(Duration::from_secs(1), viewer.recv()).await });
        let frame = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => continue, // no frame for a second: re-check for viewers
        };
        if !frame.is_video() {
            continue;
        }
        if frame.stream.generation != generation {
            generation = frame.stream.generation;
            maker.reset();
        }
        let decoded = match maker.decode(&frame.au.data) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decode frame for MJPEG");
                false
            }
        };
        let now = state.clock.now_us();
        if decoded && now >= due {
            if let Some(Ok(jpeg)) = maker.jpeg(state.config.jpeg_quality) {
                tx.send_replace(Some(jpeg));
            }
            due = (due + interval).max(now);
        }
    }
    tracing::info!("MJPEG decoder stopped: no viewers");
    Ok(())
}

pub(crate) async fn snapshot(state: &Arc<AppState>) -> Result<Response<Body>, ServerError> {
    let jpeg = match fresh_camera_jpeg(state).or_else(|| state.mjpeg.latest()) {
        Some(j) => j,
        None => gop_snapshot(state).await?,
    };
    let mut resp = full(StatusCode::OK, "image/jpeg", jpeg);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

fn no_picture() -> ServerError {
    ServerError::Unavailable("no picture yet: the source has not delivered a keyframe".into())
}

/// A JPEG of the newest frame, decoded from the held GOP: at most one decode
/// per new frame, one at a time (48 parallel requests used to start 46
/// decoder threads; the unit allows 64 tasks).
async fn gop_snapshot(state: &Arc<AppState>) -> Result<Bytes, ServerError> {
    // The newest frame when the request came: any JPEG of it or later will do.
    let wanted = state
        .hub
        .gop()
        .last()
        .map(|f| f.seq)
        .ok_or_else(no_picture)?;
    // In its own task: a client that hangs up must not cancel the decode
    // half-way (its thread would run on unlocked, beside the next one).
    let state = state.clone();
    tokio::spawn(async move { cached_or_decode(&state, wanted).await })
        .await
        .map_err(|e| ServerError::Internal(format!("snapshot task: {e}")))?
}

async fn cached_or_decode(state: &AppState, wanted: u64) -> Result<Bytes, ServerError> {
    let mut cache = state.mjpeg.snapshot.lock().await;
    if let Some((seq, jpeg)) = cache.as_ref() {
        if *seq >= wanted {
            return Ok(jpeg.clone());
        }
    }
    let gop = state.hub.gop();
    let seq = gop.last().map(|f| f.seq).ok_or_else(no_picture)?;
    let quality = state.config.jpeg_quality;
    state.mjpeg.snapshot_decodes.fetch_add(1, Ordering::Relaxed);
    let jpeg = tokio::task::spawn_blocking(move || {
        let mut maker = JpegMaker::new()?;
        for f in &gop {
            maker.decode(&f.au.data)?;
        }
        maker.jpeg(quality).transpose()
    })
    .await
    .map_err(|e| ServerError::Internal(format!("snapshot task: {e}")))?
    .map_err(|e| ServerError::Internal(format!("snapshot: {e}")))?
    .ok_or_else(|| ServerError::Unavailable("the decoder produced no picture".into()))?;
    *cache = Some((seq, jpeg.clone()));
    Ok(jpeg)
}

pub(crate) fn stream(state: &Arc<AppState>) -> Result<Response<Body>, ServerError> {
    if fresh_camera_jpeg(state).is_some() {
        return Ok(multipart(camera_parts(state)));
    }
    if state.hub.stream().is_none() {
        return Err(ServerError::Unavailable(
            "no video yet: the source has not delivered a keyframe".into(),
        ));
    }
    let rx = state.mjpeg.subscribe(state);
    let guard = state.viewer(Output::Mjpeg);
    let parts = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        loop {
            rx.changed().await.ok()?;
            let jpeg = rx.borrow_and_update().clone();
            if let Some(jpeg) = jpeg {
                return Some((
                    Ok::<_, std::io::Error>(BodyFrame::data(part(&jpeg))),
                    (rx, guard),
                ));
            }
        }
    });
    Ok(multipart(parts))
}

/// The camera's own JPEGs as they come, at most `mjpeg_fps` a second (the
/// same cap as decoded MJPEG: it bounds every viewer's bandwidth). Ends when
/// the camera stops sending for [`CAMERA_JPEG_FRESH`]; the page reconnects
/// and gets decoded pictures if the source no longer has JPEGs.
type PartStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<BodyFrame<Bytes>, std::io::Error>> + Send>,
>;

fn camera_parts(state: &Arc<AppState>) -> PartStream {
    let rx = state
        .hub
        .track_of(TrackKind::Picture)
        .and_then(|t| state.hub.watch_latest(t.id));
    let Some(rx) = rx else {
        // Only called after a fresh picture was seen; the track stays.
        return Box::pin(futures_util::stream::empty());
    };
    let guard = state.viewer(Output::Mjpeg);
    let interval = interval_us(state.config.mjpeg_fps.clamp(0.1, 60.0));
    // The newest picture goes out at once, then one per interval.
    let first = fresh_camera_jpeg(state);
    let clock = state.clock.clone();
    let due = clock.now_us();
    Box::pin(futures_util::stream::unfold(
        (rx, guard, first, due),
        move |(mut rx, guard, mut first, mut due)| {
            let clock = clock.clone();
            async move {
                loop {
                    if let Some(jpeg) = first.take() {
                        due += interval;
                        let out = Ok(BodyFrame::data(part(&jpeg)));
                        return Some((out, (rx, guard, None, due)));
                    }
                    match tokio::time::timeout(CAMERA_JPEG_FRESH, rx.changed()).await {
                        Ok(Ok(())) => {}
                        _ => return None, // the camera stopped, or the daemon is going
                    }
                    let jpeg = rx.borrow_and_update().as_ref().map(|j| j.au.data.clone());
                    let now = clock.now_us();
                    if let (Some(jpeg), true) = (jpeg, now >= due) {
                        due = (due + interval).max(now);
                        return Some((Ok(BodyFrame::data(part(&jpeg))), (rx, guard, None, due)));
                    }
                }
            }
        },
    ))
}

/// One picture per this many µs at `fps` (clamped by the callers).
fn interval_us(fps: f64) -> u64 {
    (1e6 / fps) as u64
}

fn multipart<S>(parts: S) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<BodyFrame<Bytes>, std::io::Error>> + Send + 'static,
{
    let mut resp = Response::new(StreamBody::new(parts).boxed_unsync());
    let h = resp.headers_mut();
    if let Ok(v) =
        header::HeaderValue::from_str(&format!("multipart/x-mixed-replace; boundary={BOUNDARY}"))
    {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
