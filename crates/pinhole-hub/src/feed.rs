//! The hub's input side: the [`FrameSink`] a source publishes into.
//!
//! A source thread holds a [`Feed`]; frames go straight to [`Hub::publish`],
//! and what the source says about itself (info, state, heartbeats) is kept
//! here for the outputs (`/api/status`) and the daemon (the systemd
//! watchdog). So frames flow one way: source → feed → hub → viewers.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pinhole_media::AccessUnit;
use pinhole_source_api::{Clock, FrameSink, SourceInfo, SourceState};
use tokio::sync::watch;

use crate::Hub;

/// One picture from an MJPEG camera and when it arrived.
#[derive(Clone, Debug)]
pub struct CameraJpeg {
    pub data: Bytes,
    pub at: Instant,
}

pub struct Feed {
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    info: Mutex<SourceInfo>,
    state: Mutex<SourceState>,
    /// Last sign of life from the source thread, on `clock` (µs).
    heartbeat_us: Mutex<Option<u64>>,
    /// The newest JPEG straight from an MJPEG camera, for `/snapshot.jpg`
    /// and `/mjpeg` without a decode/encode round trip.
    camera_jpeg: watch::Sender<Option<CameraJpeg>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on the source thread must not take the outputs down.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// `info`: the source's description before it starts; `clock`: the one
    /// the source runs on (heartbeats are timed with it).
    pub fn new(hub: Arc<Hub>, info: SourceInfo, clock: Arc<dyn Clock>) -> Arc<Feed> {
        Arc::new(Feed {
            hub,
            clock,
            info: Mutex::new(info),
            state: Mutex::new(SourceState::Starting),
            heartbeat_us: Mutex::new(None),
            camera_jpeg: watch::channel(None).0,
        })
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn info(&self) -> SourceInfo {
        lock(&self.info).clone()
    }

    pub fn state(&self) -> SourceState {
        lock(&self.state).clone()
    }

    /// The source is not delivering but its thread is alive and retrying
    /// (a lost camera): the daemon should stay up for its viewers.
    pub fn recovering(&self, within: Duration) -> bool {
        let beat = *lock(&self.heartbeat_us);
        let now = self.clock.now_us();
        self.state() != SourceState::Running
            && beat.is_some_and(|t| now.saturating_sub(t) <= within.as_micros() as u64)
    }

    /// The camera's own JPEGs (MJPEG cameras): the newest one, and a way to
    /// wait for the next.
    pub fn camera_jpeg(&self) -> &watch::Sender<Option<CameraJpeg>> {
        &self.camera_jpeg
    }
}

impl FrameSink for Feed {
    fn publish(&self, au: AccessUnit) {
        self.hub.publish(au);
    }

    fn report(&self, state: SourceState) {
        let mut cur = lock(&self.state);
        if *cur != state {
            match &state {
                SourceState::Failed(reason) => tracing::error!(%reason, "source failed"),
                SourceState::Running => tracing::info!("source running"),
                SourceState::Starting => tracing::info!("source starting"),
            }
            *cur = state;
        }
    }

    fn update_info(&self, info: SourceInfo) {
        *lock(&self.info) = info;
    }

    fn heartbeat(&self) {
        *lock(&self.heartbeat_us) = Some(self.clock.now_us());
    }

    fn publish_jpeg(&self, jpeg: Bytes, _pts_us: u64) {
        // send_replace: stored even while nobody subscribes (a snapshot reads it).
        self.camera_jpeg.send_replace(Some(CameraJpeg {
            data: jpeg,
            at: Instant::now(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HubConfig;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct FakeClock(AtomicU64);
    impl Clock for FakeClock {
        fn now_us(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
        fn wall_us(&self) -> u64 {
            self.now_us()
        }
        fn sleep_until_us(&self, deadline_us: u64) {
            self.0.fetch_max(deadline_us, Ordering::SeqCst);
        }
    }

    fn info() -> SourceInfo {
        SourceInfo {
            kind: "test",
            detail: String::new(),
            fps: Some(30.0),
            bitrate: None,
            keyframe_interval: None,
        }
    }

    #[test]
    fn recovering_needs_a_recent_heartbeat_and_no_frames() {
        let clock = Arc::new(FakeClock(AtomicU64::new(1_000_000)));
        let feed = Feed::new(Hub::new(HubConfig::default()), info(), clock.clone());
        assert!(!feed.recovering(Duration::from_secs(2)), "no heartbeat yet");
        feed.heartbeat();
        feed.report(SourceState::Failed("camera lost".into()));
        assert!(feed.recovering(Duration::from_secs(2)));
        clock.sleep_until_us(3_500_000);
        assert!(
            !feed.recovering(Duration::from_secs(2)),
            "heartbeat too old"
        );
        feed.heartbeat();
        feed.report(SourceState::Running);
        assert!(
            !feed.recovering(Duration::from_secs(2)),
            "running is not recovering"
        );
        let mut i = info();
        i.detail = "negotiated".into();
        feed.update_info(i.clone());
        assert_eq!(feed.info(), i);
    }
}
