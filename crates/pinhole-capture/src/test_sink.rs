//! What the camera sources' tests share: a `FrameSink` that records what a
//! source gives it, and a bounded wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pinhole_media::AccessUnit;

use crate::{FrameSink, SourceInfo, SourceState};

#[derive(Default)]
pub(crate) struct Sink {
    pub aus: Mutex<Vec<AccessUnit>>,
    pub states: Mutex<Vec<SourceState>>,
    pub info: Mutex<Option<SourceInfo>>,
    pub heartbeats: AtomicUsize,
    /// Keyframe requests to hand out (`keyframe_wanted`).
    pub keyframes_wanted: AtomicUsize,
}

impl FrameSink for Sink {
    fn publish(&self, au: AccessUnit) {
        self.aus.lock().expect("lock").push(au);
    }
    fn report(&self, state: SourceState) {
        self.states.lock().expect("lock").push(state);
    }
    fn update_info(&self, info: SourceInfo) {
        *self.info.lock().expect("lock") = Some(info);
    }
    fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
    }
    fn keyframe_wanted(&self) -> bool {
        self.keyframes_wanted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Sink {
    pub fn count(&self) -> usize {
        self.aus.lock().expect("lock").len()
    }
    /// The first failure reported, if any.
    pub fn failure(&self) -> Option<String> {
        self.states
            .lock()
            .expect("lock")
            .iter()
            .find_map(|s| match s {
                SourceState::Failed(r) => Some(r.clone()),
                _ => None,
            })
    }
    /// Whether any failure reported mentions `what`.
    pub fn failed_with(&self, what: &str) -> bool {
        self.states
            .lock()
            .expect("lock")
            .iter()
            .any(|s| matches!(s, SourceState::Failed(r) if r.contains(what)))
    }
}

/// Polls `f` until it holds; fails the test after 20 s.
pub(crate) fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
