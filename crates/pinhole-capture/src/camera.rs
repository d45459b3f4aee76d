//! What the camera sources (V4L2, libcamera) share: the settings check and
//! the stall timeout. (Restarting a lost camera is the supervisor's job.)

use std::time::Duration;

use crate::CaptureError;

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
