//! The contract between where frames enter and where they go: what a
//! source hands over ([`FrameSink`]), what it says about itself
//! ([`SourceInfo`], [`SourceState`]), how it is told to stop ([`StopFlag`])
//! and how it reads time ([`Clock`]).
//!
//! Sources (`pinhole-capture`) implement against this; the hub's
//! `Feed` is the sink; the daemon wires one to the other. Nothing here
//! knows a device, a hub or a socket, so neither side depends on the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use pinhole_media::{AccessUnit, Clock, Codec, SimClock, SystemClock};

/// A track of the stream, as [`FrameSink::add_track`] returns it.
pub type TrackId = u32;

/// Receives what a source produces. Implementations must not block.
pub trait FrameSink: Send + Sync {
    fn publish(&self, au: AccessUnit);
    /// Health of the source, shown in `/api/status` and logged.
    fn report(&self, state: SourceState);
    /// What the source found once it opened its device (negotiated format,
    /// encoder), replacing the description it gave before it started.
    fn update_info(&self, _info: SourceInfo) {}
    /// The source thread is alive and handling things (also while it waits
    /// for a lost camera), so the daemon can tell a fault being retried
    /// from a hung thread.
    fn heartbeat(&self) {}
    /// A JPEG picture straight from the camera (MJPEG devices), for
    /// `/snapshot.jpg` and `/mjpeg` without a decode/encode round trip.
    fn publish_jpeg(&self, _jpeg: bytes::Bytes, _pts_us: u64) {}
    /// A viewer lost a picture and asked for a keyframe (WebRTC PLI/FIR).
    /// Taking it clears it; a source that can force an IDR does so on its
    /// next frame, others wait for their GOP.
    fn keyframe_wanted(&self) -> bool {
        false
    }
    /// A track beside the video (Opus audio) that this source publishes
    /// on with [`FrameSink::publish_on`]. Asking again for the same kind
    /// (a restarted source) returns the same track, with `codec` as its new
    /// parameters. `None`: this sink carries no such track.
    fn add_track(&self, _codec: Codec) -> Option<TrackId> {
        None
    }
    /// One frame of a track from [`FrameSink::add_track`], stamped on the
    /// same capture clock as the video (`pts_us`: its first sample).
    fn publish_on(&self, _track: TrackId, _au: AccessUnit) {}
    /// The source of a track stopped delivering (a lost microphone): its
    /// frames will not come until it is added again.
    fn remove_track(&self, _track: TrackId) {}
}

/// What a source says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceState {
    Starting,
    Running,
    /// Not delivering frames; the text says why and what happens next.
    Failed(String),
}

/// Static description of a source, for status and for pacing the outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    /// `test`, `pipe`, `v4l2`, …
    pub kind: &'static str,
    /// Human-readable detail, e.g. the command or device.
    pub detail: String,
    /// Nominal frame rate (frames per second), if known.
    pub fps: Option<f64>,
    /// Configured bitrate in bit/s, if the source encodes.
    pub bitrate: Option<u32>,
    /// Configured keyframe interval in frames, if the source encodes.
    pub keyframe_interval: Option<u32>,
}

/// Cooperative stop signal shared between the daemon and a source thread.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
