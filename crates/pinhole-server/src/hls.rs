//! LL-HLS output: the writer (a hub viewer feeding the pure segmenter, with
//! file I/O on its own thread) and the `/hls/` handler (playlists with
//! blocking reload; media files from the segment directory for when no nginx
//! is in front).
//!
//! Data flow: `hub.subscribe()` → async task runs [`Segmenter::push`] (video)
//! and [`Segmenter::push_other`] (audio) (pure, cheap) → bounded channel → "hls-io" thread writes/deletes files and then
//! publishes the playlist to [`HlsShared`], which wakes blocked requests.
//! A slow disk makes the writer lag in the hub like any slow viewer (it
//! skips to a keyframe); it never blocks `publish` or other outputs.

use std::collections::HashMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use hyper::Response;
use pinhole_media::hls::{
    Action, FrameIn, NameKind, OtherFrameIn, Published, Segmenter, SegmenterConfig, StreamDesc,
};
use pinhole_media::Clock;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::{full, ui, AppState, Body, ServerError};

/// How long a request for the first playlist (or manifest) waits while the first segment
/// is still being made (daemon start).
pub(crate) const FIRST_PLAYLIST_WAIT: Duration = Duration::from_secs(10);

/// Where the segmenter's files go. [`DirStore`] is the real one; tests wrap
/// it to inject failures (ENOSPC) at this boundary.
pub trait SegmentStore: Send + 'static {
    /// Creates the directory (again) and removes files from earlier runs.
    fn prepare(&mut self) -> io::Result<()>;
    /// Writes a whole file so that readers never see it half-written.
    fn write(&mut self, name: &str, data: &[u8]) -> io::Result<()>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Names of the files in the directory.
    fn list(&mut self) -> io::Result<Vec<String>>;
}

/// Files in a directory (tmpfs on the device), written as `.name.tmp` and
/// renamed into place.
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    pub fn new(dir: impl Into<PathBuf>) -> DirStore {
        DirStore { dir: dir.into() }
    }
}

/// Ours: media files and playlists (also stale ones from earlier runs).
fn is_hls_file(name: &str) -> bool {
    [".m4s", ".mp4", ".m3u8", ".tmp"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

impl SegmentStore for DirStore {
    fn prepare(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        for name in self.list()? {
            if is_hls_file(&name) {
                let _ = std::fs::remove_file(self.dir.join(&name));
            }
        }
        Ok(())
    }

    fn write(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let res =
            std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, self.dir.join(name)));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn list(&mut self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
}

/// Shared between the writer and the request handlers.
pub struct HlsShared {
    current: Mutex<Option<Arc<Published>>>,
    version: watch::Sender<u64>,
    started: AtomicBool,
    segments: AtomicU64,
    parts: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Default for HlsShared {
    fn default() -> Self {
        HlsShared {
            current: Mutex::new(None),
            version: watch::channel(0).0,
            started: AtomicBool::new(false),
            segments: AtomicU64::new(0),
            parts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl HlsShared {
    pub(crate) fn current(&self) -> Option<Arc<Published>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wakes on every publish.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn publish(&self, p: Published) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(p));
        self.version.send_modify(|v| *v += 1);
    }

    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    /// Waits until the published playlist satisfies `pred`, at most `wait`.
    /// (How long a client's request is held: a guard on the connection, so
    /// it stays on tokio's timer, not on the daemon's clock.)
    pub(crate) async fn wait_for(
        &self,
        wait: Duration,
        pred: impl Fn(&Published) -> bool,
    ) -> Option<Arc<Published>> {
        let mut rx = self.version.subscribe();
        let expired = tokio::time::sleep(wait);
        tokio::pin!(expired);
        loop {
            // Mark as seen before looking, so a publish in between wakes us.
            rx.borrow_and_update();
            if let Some(p) = self.current() {
                if pred(&p) {
                    return Some(p);
                }
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return None },
                () = &mut expired => return None,
            }
        }
    }
}

/// The `"hls"` block of `/api/status` (`null` when HLS is off).
/// The writer's counters; the directory and the last error (which names
/// paths) only for the admin.
pub(crate) fn status_json(state: &AppState, admin: bool) -> Value {
    let Some(dir) = &state.config.hls_dir else {
        return Value::Null;
    };
    let h = &state.hls;
    let last_error = h
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    json!({
        "dir": admin.then(|| dir.display().to_string()),
        "segments": h.segments.load(Ordering::Relaxed),
        "parts": h.parts.load(Ordering::Relaxed),
        "errors": h.errors.load(Ordering::Relaxed),
        "last_error": last_error.filter(|_| admin),
        "live": h.current().map(|p| json!({
            "msn": p.open_msn,
            "part": p.open_parts,
            "target_duration_s": p.target_duration_s,
        })),
    })
}

/// Starts the writer into `config.hls_dir` unless one was already started
/// (tests start theirs with an injected store first).
pub(crate) fn start_default(state: &Arc<AppState>) {
    if let Some(dir) = &state.config.hls_dir {
        start_writer(state, Box::new(DirStore::new(dir.clone())));
    }
}

/// Starts the HLS writer on `store`: an async hub viewer plus an I/O thread.
/// Ends when the hub closes. Only the first call per state does anything.
pub fn start_writer(state: &Arc<AppState>, store: Box<dyn SegmentStore>) {
    if state.hls.started.swap(true, Ordering::SeqCst) {
        return;
    }
    let cfg = segmenter_config(state);
    let (tx, rx) = mpsc::channel::<Vec<Action>>(32);
    let io_state = state.clone();
    let prefix = cfg.prefix.clone();
    let spawned = std::thread::Builder::new()
        .name("hls-io".into())
        .spawn(move || io_thread(store, rx, &io_state, &prefix));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the HLS writer thread; HLS is off");
        state
            .hls
            .error(format!("cannot start the writer thread: {e}"));
        return;
    }
    tracing::info!(
        dir = ?state.config.hls_dir,
        part_target_ms = cfg.part_target_ms,
        target_duration_s = cfg.target_duration_s,
        prefix = %cfg.prefix,
        "HLS writer"
    );
    let state = state.clone();
    tokio::spawn(async move {
        let mut viewer = state.hub.subscribe();
        let mut seg = Segmenter::new(cfg);
        let mut desc: Option<StreamDesc> = None;
        while let Some(frame) = viewer.recv().await {
            let st = &frame.stream;
            // Camera JPEGs, and a track added since this generation began.
            if !st.carries(&frame.track) {
                continue;
            }
            if desc.as_ref().is_none_or(|d| d.generation != st.generation) {
                desc = Some(StreamDesc {
                    generation: st.generation,
                    init: st.init.clone(),
                    // Every track's codec: CODECS="avc1.…,opus".
                    codec: st.codecs(),
                    width: st.info.width,
                    height: st.info.height,
                    fps: state.source_info().fps,
                });
            }
            let Some(d) = &desc else { continue };
            if !frame.is_video() {
                seg.push_other(
                    d,
                    OtherFrameIn {
                        track: frame.track.id,
                        timescale: frame.track.codec.timescale(),
                        data: frame.au.data.clone(),
                        decode_time: frame.decode_time,
                        duration: frame.duration,
                    },
                );
                continue;
            }
            let actions = seg.push(
                d,
                FrameIn {
                    data: frame.au.data.clone(),
                    keyframe: frame.au.keyframe,
                    decode_time: frame.decode_time,
                    duration: frame.duration,
                    wallclock_us: frame.au.wallclock_us,
                },
            );
            if !actions.is_empty() && tx.send(actions).await.is_err() {
                break;
            }
        }
    });
}

fn segmenter_config(state: &AppState) -> SegmenterConfig {
    let src = state.source_info();
    let fps = src.fps.filter(|f| f.is_finite() && *f > 0.0);
    // A part holds at least one frame, so it cannot be shorter than one.
    let frame_ms = fps.map_or(0, |f| (1000.0 / f).ceil() as u32);
    let part_target_ms = state.config.hls_part_target_ms.max(frame_ms).max(1);
    // Segments are keyframe intervals; unknown (pipe): guess 2 s, the
    // segmenter raises it if segments turn out longer.
    let target_duration_s = match (src.keyframe_interval, fps) {
        (Some(k), Some(f)) if k > 0 => (f64::from(k) / f).ceil().max(1.0) as u64,
        _ => 2,
    };
    // Names differ from run to run (caches, players holding old URLs).
    let run = state.clock.wall_us() / 1000;
    SegmenterConfig {
        part_target_ms,
        target_duration_s,
        prefix: format!("{:08x}", run & 0xffff_ffff),
        bandwidth_hint: src.bitrate.map(u64::from),
        ..SegmenterConfig::default()
    }
}

/// Rate-limits repeated I/O error logs (a full tmpfs fails 5 times a second).
struct ErrorLog {
    clock: Arc<dyn Clock>,
    /// When the last one was logged, on `clock` (µs).
    last: Option<u64>,
    suppressed: u64,
}

/// At most one logged error per this many µs; the rest are counted.
const ERROR_LOG_EVERY_US: u64 = 10_000_000;

impl ErrorLog {
    fn log(&mut self, shared: &HlsShared, msg: String) {
        shared.error(msg.clone());
        let now = self.clock.now_us();
        if self
            .last
            .is_some_and(|t| now.saturating_sub(t) < ERROR_LOG_EVERY_US)
        {
            self.suppressed += 1;
            return;
        }
        tracing::error!(suppressed = self.suppressed, "HLS: {msg}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

fn io_thread(
    mut store: Box<dyn SegmentStore>,
    mut rx: mpsc::Receiver<Vec<Action>>,
    state: &AppState,
    prefix: &str,
) {
    let shared = &state.hls;
    let mut log = ErrorLog {
        clock: state.clock.clone(),
        last: None,
        suppressed: 0,
    };
    if let Err(e) = store.prepare() {
        log.log(shared, format!("cannot prepare the segment directory: {e}"));
    }
    // Init segments still in use: rewritten if the directory is recreated.
    let mut inits: HashMap<String, Bytes> = HashMap::new();
    while let Some(batch) = rx.blocking_recv() {
        for action in batch {
            match action {
                Action::Write { name, data } => {
                    if matches!(NameKind::parse(prefix, &name), Some(NameKind::Init { .. })) {
                        inits.insert(name.clone(), data.clone());
                    }
                    if write(&mut *store, &name, &data, &inits, prefix, &mut log, shared) {
                        match NameKind::parse(prefix, &name) {
                            Some(NameKind::Part { .. }) => {
                                shared.parts.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(NameKind::Segment { .. }) => {
                                shared.segments.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                }
                Action::Delete { name } => {
                    inits.remove(&name);
                    if let Err(e) = store.remove(&name) {
                        tracing::debug!(%name, error = %e, "HLS: cannot delete");
                    }
                }
                Action::Publish(p) => {
                    // Files on disk for nginx/plain clients; memory for us.
                    write(
                        &mut *store,
                        &p.media_name,
                        p.media.as_bytes(),
                        &inits,
                        prefix,
                        &mut log,
                        shared,
                    );
                    write(
                        &mut *store,
                        &p.multivariant_name,
                        p.multivariant.as_bytes(),
                        &inits,
                        prefix,
                        &mut log,
                        shared,
                    );
                    shared.publish(p);
                }
            }
        }
    }
    tracing::debug!("HLS writer stopped");
}

/// Writes one file, recovering from a full or vanished directory. Returns
/// whether it was written; a file that cannot be written is skipped (its
/// clients get a 404) and streaming goes on.
fn write(
    store: &mut dyn SegmentStore,
    name: &str,
    data: &[u8],
    inits: &HashMap<String, Bytes>,
    prefix: &str,
    log: &mut ErrorLog,
    shared: &HlsShared,
) -> bool {
    for _attempt in 0..3 {
        let err = match store.write(name, data) {
            Ok(()) => return true,
            Err(e) => e,
        };
        if is_no_space(&err) {
            let freed = evict_oldest(store, prefix, name);
            log.log(
                shared,
                format!("segment directory full writing {name} ({err}); deleted the {freed} oldest files"),
            );
            if freed == 0 {
                return false;
            }
        } else if err.kind() == io::ErrorKind::NotFound {
            log.log(
                shared,
                format!("segment directory vanished writing {name} ({err}); recreating it"),
            );
            if let Err(e) = store.prepare() {
                log.log(
                    shared,
                    format!("cannot recreate the segment directory: {e}"),
                );
                return false;
            }
            for (init, bytes) in inits {
                if init != name {
                    let _ = store.write(init, bytes);
                }
            }
        } else {
            log.log(shared, format!("cannot write {name}: {err}"));
            return false;
        }
    }
    false
}

fn is_no_space(e: &io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux.
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

/// Deletes the oldest media files (a third of them, at least one segment's
/// worth): other runs' first, then ours by segment number. Never the file
/// being written or init segments in use.
fn evict_oldest(store: &mut dyn SegmentStore, prefix: &str, writing: &str) -> usize {
    let Ok(names) = store.list() else { return 0 };
    let mut victims: Vec<(u64, String)> = names
        .into_iter()
        .filter(|n| n != writing && (n.ends_with(".m4s") || n.ends_with(".tmp")))
        .map(|n| {
            let msn = match NameKind::parse(prefix, &n) {
                Some(NameKind::Segment { msn } | NameKind::Part { msn, .. }) => msn + 1,
                _ => 0,
            };
            (msn, n)
        })
        .collect();
    victims.sort();
    let Some(&(oldest, _)) = victims.first() else {
        return 0;
    };
    let count = (victims.len() / 3).max(1);
    let cut = victims[count - 1].0.max(oldest);
    let mut freed = 0;
    for (msn, n) in victims {
        if msn <= cut && store.remove(&n).is_ok() {
            freed += 1;
        }
    }
    freed
}

pub(crate) fn query_u64(query: Option<&str>, key: &str) -> Result<Option<u64>, ServerError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return v
                .parse()
                .map(Some)
                .map_err(|_| ServerError::BadRequest(format!("{key}={v} is not a number")));
        }
    }
    Ok(None)
}

/// Cache lifetimes for a CDN or caching proxy in front (docs/scale.md).
/// Media files never change (names are unique per run), so they are
/// immutable; a plain playlist changes every part, so a cache may keep it
/// a second at most (a player that gets an older one asks for the next part
/// with a blocking reload, which the cache answers at once); a blocking
/// reload's answer (`_HLS_msn`/`_HLS_part` in its URL) lists that part or
/// later for as long as the part stays in the playlist, so caches keep it:
/// N viewers asking for the same part cost the origin one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cache {
    /// A part, a segment or an init segment.
    Immutable,
    /// A playlist without delivery directives.
    Live,
    /// A blocking reload's answer, for a stream of this target duration (s).
    Blocking(u64),
}

impl Cache {
    /// The `Cache-Control` value; `shared`: whether shared caches may keep
    /// it (`public`) or only the viewer's own (`private`, a stream that
    /// needs credentials).
    pub(crate) fn header(self, shared: bool) -> String {
        let scope = if shared { "public" } else { "private" };
        match self {
            Cache::Immutable => format!("{scope}, max-age=60, immutable"),
            Cache::Live => format!("{scope}, max-age=1"),
            // Six target durations: the part stays listed that long (the
            // window is 6 segments, plus 3 lingering on disk).
            Cache::Blocking(target) => format!("{scope}, max-age={}", 6 * target.max(1)),
        }
    }
}

fn with_headers(mut resp: Response<Body>, cache: &str) -> Response<Body> {
    let h = resp.headers_mut();
    // CORS is the access policy's (routes.rs), only for allowed origins.
    if let Ok(v) = HeaderValue::from_str(cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

fn playlist(state: &AppState, text: &str, cache: Cache) -> Response<Body> {
    with_headers(
        full(
            StatusCode::OK,
            "application/vnd.apple.mpegurl",
            text.to_owned(),
        ),
        &cache.header(state.auth.shared_cache_ok()),
    )
}

/// One plain file name: no separators, no "..", no hidden files.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && matches!(
            Path::new(name).components().next(),
            Some(Component::Normal(_))
        )
}

/// `GET /hls/<name>`: playlists (with `_HLS_msn`/`_HLS_part` blocking
/// reload) and, without nginx, the media files.
pub(crate) async fn handle(
    state: &Arc<AppState>,
    path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ServerError> {
    let not_found = || ServerError::NotFound(path.to_owned());
    let Some(dir) = &state.config.hls_dir else {
        return Err(ServerError::NotFound(format!("{path} (HLS is off)")));
    };
    let name = path.strip_prefix("/hls/").unwrap_or_default();
    if !plain_name(name) {
        return Err(not_found());
    }
    let shared = &state.hls;
    let defaults = SegmenterConfig::default();

    if name == defaults.multivariant_playlist {
        let p = shared
            .wait_for(FIRST_PLAYLIST_WAIT, |_| true)
            .await
            .ok_or_else(|| ServerError::Unavailable("no HLS segment yet".into()))?;
        return Ok(playlist(state, &p.multivariant, Cache::Live));
    }
    if name == defaults.media_playlist {
        let msn = query_u64(query, "_HLS_msn")?;
        let part = query_u64(query, "_HLS_part")?;
        let Some(msn) = msn else {
            if part.is_some() {
                return Err(ServerError::BadRequest("_HLS_part needs _HLS_msn".into()));
            }
            let p = shared
                .wait_for(FIRST_PLAYLIST_WAIT, |_| true)
                .await
                .ok_or_else(|| ServerError::Unavailable("no HLS segment yet".into()))?;
            return Ok(playlist(state, &p.media, Cache::Live));
        };
        // §6.2.5.2: hold the request until the playlist has that part, at
        // most three target durations; refuse requests too far ahead.
        let current = shared.current();
        if current.as_ref().is_some_and(|p| p.too_far(msn)) {
            return Err(ServerError::BadRequest(format!(
                "_HLS_msn={msn} is more than two segments ahead"
            )));
        }
        let wait = current.map_or(FIRST_PLAYLIST_WAIT, |p| {
            Duration::from_secs(3 * p.target_duration_s.max(1))
        });
        let p = shared
            .wait_for(wait, |p| p.satisfies(msn, part))
            .await
            .ok_or_else(|| {
                ServerError::Unavailable(format!(
                    "_HLS_msn={msn} _HLS_part={part:?} not available in time"
                ))
            })?;
        let cache = Cache::Blocking(p.target_duration_s);
        return Ok(playlist(state, &p.media, cache));
    }

    let file = dir.join(name);
    let shared_cache = state.auth.shared_cache_ok();
    if let Some(resp) = read_media(&file, name, shared_cache).await? {
        return Ok(resp);
    }
    // Not there yet: a preload-hinted part (or the segment it belongs to) is
    // held until it is written (§6.2.6), anything else is a 404.
    let current = shared.current().ok_or_else(not_found)?;
    let (msn, part) = match NameKind::parse(&current.prefix, name) {
        Some(NameKind::Part { msn, part }) => (msn, Some(part)),
        Some(NameKind::Segment { msn }) => (msn, None),
        _ => return Err(not_found()),
    };
    if current.satisfies(msn, part) || current.too_far(msn) {
        return Err(not_found());
    }
    let wait = Duration::from_secs(3 * current.target_duration_s.max(1));
    shared
        .wait_for(wait, |p| p.satisfies(msn, part))
        .await
        .ok_or_else(not_found)?;
    read_media(&file, name, shared_cache)
        .await?
        .ok_or_else(not_found)
}

/// A regular file (never through a symlink), or `None` if there is none.
pub(crate) async fn read_media(
    file: &Path,
    name: &str,
    shared_cache: bool,
) -> Result<Option<Response<Body>>, ServerError> {
    match tokio::fs::symlink_metadata(file).await {
        Ok(m) if m.is_file() => {}
        _ => return Ok(None),
    }
    let body = match tokio::fs::read(file).await {
        Ok(b) => b,
        // Deleted between the look and the read: gone for good.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ServerError::Internal(format!("{}: {e}", file.display()))),
    };
    // Playlists are answered from memory; a stale one on disk is not ours.
    let cache = if name.ends_with(".m3u8") {
        "no-store".to_owned()
    } else {
        Cache::Immutable.header(shared_cache)
    };
    Ok(Some(with_headers(
        full(StatusCode::OK, ui::mime(name), body),
        &cache,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(
            query_u64(Some("_HLS_msn=12&_HLS_part=3"), "_HLS_part").ok(),
            Some(Some(3))
        );
        assert_eq!(query_u64(Some("_HLS_msn=12"), "_HLS_part").ok(), Some(None));
        assert!(query_u64(Some("_HLS_msn=x"), "_HLS_msn").is_err());
        assert_eq!(query_u64(None, "_HLS_msn").ok(), Some(None));
    }

    #[test]
    fn cache_lifetimes() {
        assert_eq!(
            Cache::Immutable.header(true),
            "public, max-age=60, immutable"
        );
        assert_eq!(Cache::Live.header(true), "public, max-age=1");
        assert_eq!(Cache::Blocking(2).header(true), "public, max-age=12");
        assert_eq!(Cache::Blocking(0).header(false), "private, max-age=6");
    }

    #[test]
    fn eviction_takes_oldest_segments_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DirStore::new(dir.path());
        for n in [
            "p-0.m4s",
            "p-0.0.m4s",
            "p-1.m4s",
            "p-1.0.m4s",
            "p-2.0.m4s",
            "p-init1.mp4",
            "old-5.m4s",
        ] {
            store.write(n, b"x").expect("write");
        }
        let freed = evict_oldest(&mut store, "p", "p-2.1.m4s");
        assert_eq!(freed, 3);
        let mut left = store.list().expect("list");
        left.sort();
        assert_eq!(left, ["p-1.0.m4s", "p-1.m4s", "p-2.0.m4s", "p-init1.mp4"]);
    }
}
