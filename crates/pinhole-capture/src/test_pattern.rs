//! The built-in test pattern: the default "camera", needing no hardware.
//!
//! Each frame is drawn straight into I420 — scrolling colour bars, a grey
//! ramp, a bouncing box, the capture wall-clock time in big digits with a
//! frame counter, and a barcode of the capture time ([`read_barcode`], layout
//! in `docs/test-pattern.md`) — then encoded with OpenH264 as Constrained
//! Baseline at the configured bitrate, an IDR with SPS/PPS every
//! `keyframe_interval` frame slots of the capture clock (frames skipped
//! under load do not stretch the GOP).

use std::sync::Arc;

use bytes::Bytes;
use pinhole_media::{AccessUnit, Clock};

use crate::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};

mod barcode;
mod encoder;
mod font;
mod picture;
mod scene;
#[cfg(test)]
mod tests;

pub use barcode::{read_barcode, DATA_BITS as BARCODE_DATA_BITS};
pub use scene::marker_rect;

use encoder::H264Encoder;
use picture::Picture;
use scene::Scene;

/// Longest single sleep, so a stop request is noticed promptly even at 1 fps.
const MAX_SLEEP_US: u64 = 50_000;
/// Consecutive encoder failures after which the source gives up.
const MAX_ENCODER_FAILURES: u32 = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPatternConfig {
    /// Picture width in pixels: even, 16..=3840.
    pub width: u32,
    /// Picture height in pixels: even, 16..=2160.
    pub height: u32,
    /// Frames per second: 1..=120.
    pub fps: u32,
    /// Target bitrate in bit/s.
    pub bitrate: u32,
    /// Frame slots from one IDR to the next (1 = every frame is an IDR); a
    /// slot skipped because encoding fell behind still counts.
    pub keyframe_interval: u32,
}

impl Default for TestPatternConfig {
    fn default() -> Self {
        TestPatternConfig {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_000_000,
            keyframe_interval: 30,
        }
    }
}

impl TestPatternConfig {
    fn validate(&self) -> Result<(), CaptureError> {
        let bad = |reason: String| {
            Err(CaptureError::InvalidConfig {
                source_kind: "test",
                reason,
            })
        };
        let (w, h) = (self.width, self.height);
        if !(16..=3840).contains(&w) || !(16..=2160).contains(&h) {
            return bad(format!("size {w}x{h} outside 16x16..=3840x2160"));
        }
        if w % 2 != 0 || h % 2 != 0 {
            return bad(format!("size {w}x{h} must be even in both directions"));
        }
        if !(1..=120).contains(&self.fps) {
            return bad(format!("fps {} outside 1..=120", self.fps));
        }
        if !(10_000..=240_000_000).contains(&self.bitrate) {
            return bad(format!(
                "bitrate {} bit/s outside 10000..=240000000",
                self.bitrate
            ));
        }
        if self.keyframe_interval == 0 {
            return bad("keyframe_interval must be at least 1 frame".into());
        }
        Ok(())
    }
}

pub struct TestPattern {
    cfg: TestPatternConfig,
    clock: Arc<dyn Clock>,
    pic: Picture,
    scene: Scene,
}

impl TestPattern {
    pub fn new(cfg: TestPatternConfig, clock: Arc<dyn Clock>) -> Result<Self, CaptureError> {
        cfg.validate()?;
        let (w, h) = (cfg.width as usize, cfg.height as usize);
        Ok(TestPattern {
            pic: Picture::new(w, h),
            scene: Scene::new(w, h),
            cfg,
            clock,
        })
    }

    pub fn config(&self) -> &TestPatternConfig {
        &self.cfg
    }

    fn new_encoder(&self) -> Result<H264Encoder, CaptureError> {
        let c = &self.cfg;
        H264Encoder::new(c.width, c.height, c.fps, c.bitrate)
    }

    /// Sleep until `deadline_us` in short steps; false if asked to stop.
    fn sleep_until(&self, deadline_us: u64, stop: &StopFlag) -> bool {
        loop {
            if stop.is_stopped() {
                return false;
            }
            let now = self.clock.now_us();
            if now >= deadline_us {
                return true;
            }
            self.clock
                .sleep_until_us(deadline_us.min(now.saturating_add(MAX_SLEEP_US)));
        }
    }

    /// Draw the current picture for slot time `t_us` and capture time `wall_us`.
    fn draw(&mut self, t_us: u64, wall_us: u64, frame_no: u64, marker: bool) {
        self.scene
            .draw(&mut self.pic, t_us / 1000, wall_us, frame_no, marker);
    }
}

/// The access unit with pinhole's capture-time SEI
/// ([`pinhole_media::h264::timestamp_sei_nal`]) inserted before its first
/// slice: after SPS/PPS (an IDR still starts with them), before any picture
/// data, so byte-level clients can read the same time as the barcode.
fn with_timestamp_sei(au: Vec<u8>, wall_us: u64) -> Vec<u8> {
    let sei = pinhole_media::h264::timestamp_sei_nal(wall_us);
    // First 3-byte start code whose NAL is a slice (type 1) or IDR (type 5);
    // a 4-byte start code begins one byte earlier.
    let at = au
        .windows(4)
        .position(|w| w[..3] == [0, 0, 1] && matches!(w[3] & 0x1f, 1 | 5))
        .map_or(0, |i| if i > 0 && au[i - 1] == 0 { i - 1 } else { i });
    let mut out = Vec::with_capacity(au.len() + sei.len());
    out.extend_from_slice(&au[..at]);
    out.extend_from_slice(&sei);
    out.extend_from_slice(&au[at..]);
    out
}

impl Source for TestPattern {
    fn info(&self) -> SourceInfo {
        let c = &self.cfg;
        SourceInfo {
            kind: "test",
            detail: format!(
                "test pattern {}x{} @ {} fps, {} kbit/s, IDR every {} frames",
                c.width,
                c.height,
                c.fps,
                c.bitrate / 1000,
                c.keyframe_interval
            ),
            fps: Some(f64::from(c.fps)),
            bitrate: Some(c.bitrate),
            keyframe_interval: Some(c.keyframe_interval),
        }
    }

    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        sink.report(SourceState::Starting);
        let mut enc = self.new_encoder()?;
        let fps = u64::from(self.cfg.fps);
        let interval = u64::from(self.cfg.keyframe_interval);
        // Slot n is due at start + n/fps, computed from n so no drift
        // accumulates; `start` is a whole second of the capture clock, so
        // every fps-th slot falls on one: those frames carry the sync
        // marker, captured when the test tone clicks (audio/tone.rs).
        let due = |start: u64, n: u64| start + n * 1_000_000 / fps;
        let run_start = self.clock.now_us();
        let start = run_start - run_start % 1_000_000;
        // The first frame at once, then on the grid.
        let mut slot: u64 = (run_start - start) * fps / 1_000_000;
        let mut frames: u64 = 0;
        // The GOP (slot / interval) of the last IDR; None: the next frame is one.
        let mut idr_gop: Option<u64> = None;
        let mut failures: u32 = 0;
        let mut running = false;

        while self.sleep_until(due(start, slot), stop) {
            // The picture is the scene at its slot's time, so that is its
            // capture time (a thread that woke late does not move it; the
            // delay then shows as latency downstream). The first frame of a
            // run that began between slots is captured now.
            let (now, wall_now) = (self.clock.now_us(), self.clock.wall_us());
            let pts_us = due(start, slot).max(run_start);
            let wall_us = wall_now.saturating_sub(now.saturating_sub(pts_us));
            // A whole-second slot: the test tone clicks at this instant.
            let marker = slot.is_multiple_of(fps) && pts_us == due(start, slot);
            self.draw(due(0, slot), wall_us, frames, marker);
            // Keyframes on the capture clock's grid (every `interval` slots),
            // not every `interval` frames: when encoding falls behind and
            // slots are skipped, GOPs and so HLS/DASH segments keep their
            // nominal duration, which DASH's `SegmentTemplate@duration`
            // numbering (segment n starts at n × duration) relies on; counted
            // in frames, a 21 fps spell stretched 1 s GOPs to 1.4 s and
            // dash.js asked for segments that did not exist yet.
            // A viewer's keyframe request (WebRTC PLI/FIR) forces one too.
            let gop = slot / interval;
            let force_idr = idr_gop != Some(gop) || sink.keyframe_wanted();
            if force_idr {
                idr_gop = Some(gop);
            }
            match enc.encode(&self.pic, pts_us, force_idr) {
                Ok(Some(out)) => {
                    failures = 0;
                    sink.publish(AccessUnit {
                        data: Bytes::from(with_timestamp_sei(out.data, wall_us)),
                        pts_us,
                        wallclock_us: wall_us,
                        keyframe: out.keyframe,
                    });
                    frames += 1;
                    if !running {
                        running = true;
                        sink.report(SourceState::Running);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "test pattern: encoder failed");
                    if failures >= MAX_ENCODER_FAILURES {
                        sink.report(SourceState::Failed(format!("{e}; giving up")));
                        return Err(e);
                    }
                    sink.report(SourceState::Failed(format!("{e}; restarting encoder")));
                    running = false;
                    enc = self.new_encoder()?;
                    // The new encoder starts on an IDR: ask for one.
                    idr_gop = None;
                }
            }
            // Next slot, skipping any whose time has already passed: when
            // encoding falls behind we drop frames rather than burst.
            let elapsed = self.clock.now_us().saturating_sub(start);
            let current = elapsed * fps / 1_000_000;
            slot = (slot + 1).max(current);
        }
        Ok(())
    }
}
