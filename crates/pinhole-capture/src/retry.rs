//! What the camera sources (V4L2, libcamera) share: the reconnect loop — run a
//! capture session until it ends cleanly or the source is stopped; after a
//! loss, say why in the status and wait a growing backoff.

use std::time::Duration;

use pinhole_media::Clock;

use crate::{CaptureError, FrameSink, SourceState, StopFlag};

pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Why a session ended, and whether it had delivered frames (which resets
/// the backoff).
pub(crate) struct SessionEnd {
    pub reason: String,
    pub delivered: bool,
}

/// `what` names the source in the log ("v4l2"), `retrying` is the status
/// wording ("retrying", "restarting it").
pub(crate) fn run_with_retry(
    what: &str,
    retrying: &str,
    clock: &dyn Clock,
    sink: &dyn FrameSink,
    stop: &StopFlag,
    mut session: impl FnMut(&dyn FrameSink, &StopFlag) -> Result<(), SessionEnd>,
) -> Result<(), CaptureError> {
    let mut backoff = MIN_BACKOFF;
    while !stop.is_stopped() {
        sink.report(SourceState::Starting);
        let Err(e) = session(sink, stop) else {
            return Ok(());
        };
        if stop.is_stopped() {
            break;
        }
        if e.delivered {
            backoff = MIN_BACKOFF;
        }
        tracing::warn!(reason = %e.reason, retry_s = backoff.as_secs_f64(), "{what}: camera lost");
        sink.report(SourceState::Failed(format!(
            "{}; {retrying} in {:.1} s",
            e.reason,
            backoff.as_secs_f64()
        )));
        // Sleep in slices: stop promptly and keep the heartbeat going
        // (a camera being retried is not a hung daemon).
        let deadline = clock.now_us() + backoff.as_micros() as u64;
        while !stop.is_stopped() && clock.now_us() < deadline {
            sink.heartbeat();
            let next = (clock.now_us() + 100_000).min(deadline);
            clock.sleep_until_us(next);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Ok(())
}

/// The settings every camera source checks before it starts.
pub(crate) fn check_settings(
    source_kind: &'static str,
    width: u32,
    height: u32,
    fps: u32,
    keyframe_interval: u32,
) -> Result<(), CaptureError> {
    if width.is_multiple_of(2) && height.is_multiple_of(2) && fps != 0 && keyframe_interval != 0 {
        return Ok(());
    }
    Err(CaptureError::InvalidConfig {
        source_kind,
        reason: format!(
            "{width}x{height} @ {fps} fps, keyframe every {keyframe_interval}: sizes must be even, rates positive"
        ),
    })
}

/// How long without a frame counts as a stall: the configured time, but
/// never less than three frame intervals.
pub(crate) fn stall_us(stall_timeout: Duration, fps: u32) -> u64 {
    let frames = 3_000_000 / u64::from(fps.max(1));
    (stall_timeout.as_micros() as u64).max(frames)
}
