//! Shared daemon state: the hub, the source's health, viewer counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pinhole_hub::{Feed, Hub};
use pinhole_media::Clock;
use pinhole_source_api::{SourceInfo, SourceState};

/// The outputs whose viewers are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    WsH264,
    WsFmp4,
    Mp4,
    Mjpeg,
    /// RTSP sessions that are playing.
    Rtsp,
}

impl Output {
    pub const ALL: [Output; 5] = [
        Output::WsH264,
        Output::WsFmp4,
        Output::Mp4,
        Output::Mjpeg,
        Output::Rtsp,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Output::WsH264 => "ws_h264",
            Output::WsFmp4 => "ws_fmp4",
            Output::Mp4 => "mp4",
            Output::Mjpeg => "mjpeg",
            Output::Rtsp => "rtsp",
        }
    }
}

/// Settings the HTTP side needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// MJPEG frame rate (frames per second).
    pub mjpeg_fps: f64,
    /// JPEG quality 1–100 for snapshots and MJPEG.
    pub jpeg_quality: u8,
    /// Serve the UI from this directory instead of the embedded copy.
    pub ui_dir: Option<std::path::PathBuf>,
    /// Write LL-HLS here (tmpfs on the device); `None`: no HLS.
    pub hls_dir: Option<std::path::PathBuf>,
    /// LL-HLS part target, milliseconds.
    pub hls_part_target_ms: u32,
    /// Access control and limits (auth/mod.rs, access.rs, docs/security.md).
    pub security: crate::auth::SecurityConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            mjpeg_fps: 5.0,
            jpeg_quality: 80,
            ui_dir: None,
            hls_dir: None,
            hls_part_target_ms: 200,
            security: crate::auth::SecurityConfig::default(),
        }
    }
}

/// Histogram of server-added latency: frame published → written to a viewer's
/// socket. One atomic add per send; exposed in `/metrics`.
pub struct SendLatency {
    buckets: [AtomicU64; SEND_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Upper bounds (µs) of the histogram buckets; +Inf is `count`.
pub const SEND_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

impl Default for SendLatency {
    fn default() -> Self {
        SendLatency {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl SendLatency {
    pub fn record(&self, d: std::time::Duration) {
        let us = d.as_micros() as u64;
        if let Some(i) = SEND_BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// (cumulative counts per bucket, count, sum in µs)
    pub fn snapshot(&self) -> (Vec<u64>, u64, u64) {
        let mut acc = 0;
        let cum = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect();
        (
            cum,
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed),
        )
    }
}

#[derive(Default)]
struct Counter {
    current: AtomicU64,
    total: AtomicU64,
}

pub struct AppState {
    pub hub: Arc<Hub>,
    pub config: ServerConfig,
    /// The daemon's one clock: sessions, login backoff, MJPEG pacing,
    /// uptime and every other decision about time read it.
    pub clock: Arc<dyn Clock>,
    /// When the server started, on `clock` (µs).
    started_us: u64,
    /// The hub's input: what the source says about itself. The daemon hands
    /// it to the source.
    pub source: Arc<Feed>,
    /// The audio source's own feed (same hub) while audio is on: its state
    /// is shown apart from the video's (docs/audio.md).
    pub audio: std::sync::Mutex<Option<Arc<Feed>>>,
    viewers: [Counter; 5],
    pub send_latency: SendLatency,
    /// The OTA installer, when this system is set up for updates.
    pub update: std::sync::OnceLock<Arc<crate::update::UpdateService>>,
    pub(crate) mjpeg: crate::mjpeg::MjpegShared,
    pub(crate) hls: crate::hls::HlsShared,
    /// The admin password, sessions, viewer policy and limits.
    pub auth: crate::auth::Auth,
    /// The push targets (RTMP to media servers), when the daemon has any.
    pub push: std::sync::OnceLock<Arc<pinhole_push::PushSet>>,
    /// Camera settings (`/api/camera`), when the daemon offers them.
    pub camera: std::sync::OnceLock<Arc<dyn crate::camera::CameraBackend>>,
    /// The WebRTC (WHEP) endpoint, when the daemon started one.
    pub webrtc: std::sync::OnceLock<Arc<pinhole_webrtc::Endpoint>>,
    /// The first RTSP listener's port, for `/api/status` (the UI shows the URL).
    pub rtsp_port: std::sync::OnceLock<u16>,
    /// ONVIF (onvif.rs), when the daemon offers it.
    pub onvif: std::sync::OnceLock<crate::onvif::Onvif>,
    /// One `PUT /api/camera` at a time.
    pub(crate) camera_lock: tokio::sync::Mutex<()>,
}

impl AppState {
    /// The outputs of the hub that `source` feeds. Time is the hub's clock
    /// (`Hub::with_clock`): one clock for the hub and every output.
    pub fn with_feed(source: Arc<Feed>, config: ServerConfig) -> Arc<Self> {
        let clock = source.hub().clock().clone();
        Arc::new(AppState {
            hub: source.hub().clone(),
            source,
            audio: std::sync::Mutex::new(None),
            auth: crate::auth::Auth::with_clock(config.security.clone(), clock.clone()),
            config,
            started_us: clock.now_us(),
            clock,
            viewers: Default::default(),
            send_latency: SendLatency::default(),
            update: std::sync::OnceLock::new(),
            mjpeg: Default::default(),
            hls: Default::default(),
            push: std::sync::OnceLock::new(),
            camera: std::sync::OnceLock::new(),
            webrtc: std::sync::OnceLock::new(),
            rtsp_port: std::sync::OnceLock::new(),
            onvif: std::sync::OnceLock::new(),
            camera_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// A server over a fresh feed of `hub` (tests and benchmarks that
    /// publish into `state.source` themselves).
    /// (On the hub's clock, like the feed.)
    pub fn new(hub: Arc<Hub>, source: SourceInfo, config: ServerConfig) -> Arc<Self> {
        let clock = hub.clock().clone();
        Self::with_feed(Feed::new(hub, source, clock), config)
    }

    /// Time since the server started.
    pub fn uptime(&self) -> Duration {
        Duration::from_micros(self.clock.now_us().saturating_sub(self.started_us))
    }

    pub fn source_info(&self) -> SourceInfo {
        self.source.info()
    }

    pub fn source_state(&self) -> SourceState {
        self.source.state()
    }

    /// Counts a viewer of `output` for as long as the guard lives.
    pub fn viewer(self: &Arc<Self>, output: Output) -> ViewerGuard {
        let c = &self.viewers[output as usize];
        c.current.fetch_add(1, Ordering::Relaxed);
        c.total.fetch_add(1, Ordering::Relaxed);
        ViewerGuard {
            state: self.clone(),
            output,
        }
    }

    /// (current, total since start) viewers of an output.
    pub fn viewers(&self, output: Output) -> (u64, u64) {
        let c = &self.viewers[output as usize];
        (
            c.current.load(Ordering::Relaxed),
            c.total.load(Ordering::Relaxed),
        )
    }
}

pub struct ViewerGuard {
    state: Arc<AppState>,
    output: Output,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.state.viewers[self.output as usize]
            .current
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppState {
    /// The source is not delivering but its thread is alive and retrying
    /// (a lost camera): the daemon should stay up for its viewers.
    pub fn source_recovering(&self, within: std::time::Duration) -> bool {
        self.source.recovering(within)
    }
}
