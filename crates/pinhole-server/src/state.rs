//! Shared daemon state: the hub, the source's health, viewer counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pinhole_capture::{FrameSink, SourceInfo, SourceState};
use pinhole_hub::Hub;
use pinhole_media::AccessUnit;

/// The outputs whose viewers are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    WsH264,
    WsFmp4,
    Mp4,
    Mjpeg,
}

impl Output {
    pub const ALL: [Output; 4] = [Output::WsH264, Output::WsFmp4, Output::Mp4, Output::Mjpeg];
    pub fn name(self) -> &'static str {
        match self {
            Output::WsH264 => "ws_h264",
            Output::WsFmp4 => "ws_fmp4",
            Output::Mp4 => "mp4",
            Output::Mjpeg => "mjpeg",
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            mjpeg_fps: 5.0,
            jpeg_quality: 80,
            ui_dir: None,
        }
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
    pub started: Instant,
    source_info: Mutex<SourceInfo>,
    source_state: Mutex<SourceState>,
    viewers: [Counter; 4],
    pub(crate) mjpeg: crate::mjpeg::MjpegShared,
}

impl AppState {
    pub fn new(hub: Arc<Hub>, source: SourceInfo, config: ServerConfig) -> Arc<Self> {
        Arc::new(AppState {
            hub,
            config,
            started: Instant::now(),
            source_info: Mutex::new(source),
            source_state: Mutex::new(SourceState::Starting),
            viewers: Default::default(),
            mjpeg: Default::default(),
        })
    }

    pub fn source_info(&self) -> SourceInfo {
        self.source_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_source_info(&self, info: SourceInfo) {
        *self.source_info.lock().unwrap_or_else(|e| e.into_inner()) = info;
    }

    pub fn source_state(&self) -> SourceState {
        self.source_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

/// The source thread publishes straight into the hub through the state.
impl FrameSink for AppState {
    fn publish(&self, au: AccessUnit) {
        self.hub.publish(au);
    }

    fn report(&self, state: SourceState) {
        let mut cur = self.source_state.lock().unwrap_or_else(|e| e.into_inner());
        if *cur != state {
            match &state {
                SourceState::Failed(reason) => tracing::error!(%reason, "source failed"),
                SourceState::Running => tracing::info!("source running"),
                SourceState::Starting => tracing::info!("source starting"),
            }
            *cur = state;
        }
    }
}
