//! The V4L2 stateful memory-to-memory H.264 encoder (kernel doc
//! "Memory-to-Memory Stateful Video Encoder Interface"), multi-planar API:
//! raw pictures go in on the OUTPUT queue, H.264 comes out on CAPTURE.
//!
//! On a Raspberry Pi this is `bcm2835-codec` (`/dev/video11`), present in
//! the Raspberry Pi OS kernel only — Debian's kernel lacks it — so the state
//! machine here is tested against a scripted fake of the ioctl boundary
//! (tests below) and still needs a run on real hardware.

use std::io;

use super::{Encoded, EncoderSettings, ParamSets, Profile, RawFrame, VideoEncoder};
use crate::v4l2::device::{Device, Format, PlaneFormat};
use crate::v4l2::negotiate::RawFormat;
use crate::v4l2::sys::*;
use crate::CaptureError;

const OUT: u32 = BUF_TYPE_VIDEO_OUTPUT_MPLANE;
const CAP: u32 = BUF_TYPE_VIDEO_CAPTURE_MPLANE;
/// Buffers per queue: enough to keep the hardware busy, few enough for latency.
const BUFFERS: u32 = 4;

fn err(context: &'static str, reason: impl std::fmt::Display) -> CaptureError {
    CaptureError::Encoder {
        context,
        reason: reason.to_string(),
    }
}

/// V4L2 H.264 level control value for a level_idc (Table A-1 order).
fn level_ctrl(width: u32, height: u32, fps: u32, bitrate: u32) -> i64 {
    use openh264::encoder::Level;
    match super::soft::pick_level(width, height, fps, bitrate) {
        Level::Level_1_0 => 0,
        Level::Level_1_1 => 2,
        Level::Level_1_2 => 3,
        Level::Level_1_3 => 4,
        Level::Level_2_0 => 5,
        Level::Level_2_1 => 6,
        Level::Level_2_2 => 7,
        Level::Level_3_0 => 8,
        Level::Level_3_1 => 9,
        Level::Level_3_2 => 10,
        Level::Level_4_0 => 11,
        Level::Level_4_1 => 12,
        Level::Level_4_2 => 13,
        Level::Level_5_0 => 14,
        Level::Level_5_1 => 15,
        _ => 16,
    }
}

fn profile_ctrl(p: Profile) -> i64 {
    match p {
        Profile::ConstrainedBaseline => H264_PROFILE_CONSTRAINED_BASELINE,
        Profile::Main => H264_PROFILE_MAIN,
        Profile::High => H264_PROFILE_HIGH,
    }
}

/// Copy a picture into a driver buffer laid out with `dst_stride` bytes per
/// line and `dst_rows` luma lines; returns the bytes used.
pub fn copy_to_driver_layout(
    src: &RawFrame<'_>,
    dst: &mut [u8],
    dst_stride: usize,
    dst_rows: usize,
) -> Result<usize, String> {
    let (w, h) = (src.width as usize, src.height as usize);
    let line = if src.format == RawFormat::Yuyv {
        w * 2
    } else {
        w
    };
    if src.data.len() < src.needed_len() || dst_stride < line || dst_rows < h {
        return Err(format!(
            "cannot place a {w}x{h} picture ({} bytes, stride {}) into stride {dst_stride} x {dst_rows} lines",
            src.data.len(),
            src.stride
        ));
    }
    let used = match src.format {
        RawFormat::Yuyv => dst_stride * h,
        _ => dst_stride * dst_rows * 3 / 2,
    };
    if dst.len() < used {
        return Err(format!("driver buffer of {} bytes, need {used}", dst.len()));
    }
    let rows =
        |dst: &mut [u8], d0: usize, ds: usize, s0: usize, ss: usize, n: usize, len: usize| {
            for r in 0..n {
                dst[d0 + r * ds..][..len].copy_from_slice(&src.data[s0 + r * ss..][..len]);
            }
        };
    let (s, sr) = (src.stride, src.plane_rows);
    rows(dst, 0, dst_stride, 0, s, h, line);
    match src.format {
        RawFormat::Yuyv => {}
        RawFormat::Nv12 => rows(dst, dst_stride * dst_rows, dst_stride, s * sr, s, h / 2, w),
        RawFormat::I420 => {
            let (d0, dcs) = (dst_stride * dst_rows, dst_stride / 2);
            let (s0, scs) = (s * sr, s / 2);
            rows(dst, d0, dcs, s0, scs, h / 2, w / 2);
            rows(
                dst,
                d0 + dcs * (dst_rows / 2),
                dcs,
                s0 + scs * (sr / 2),
                scs,
                h / 2,
                w / 2,
            );
        }
    }
    Ok(used)
}

pub struct M2mEncoder<D: Device> {
    dev: D,
    label: String,
    settings: EncoderSettings,
    input: RawFormat,
    out_fmt: Format,
    free_out: Vec<u32>,
    want_keyframe: bool,
    param_sets: ParamSets,
    /// How long `encode` waits for the picture it queued to come out.
    wait_ms: i32,
}

impl<D: Device> M2mEncoder<D> {
    /// Initialise the encoder: formats, rate, explicit controls, buffers,
    /// streaming. `label` names the device in messages.
    pub fn open(
        dev: D,
        label: &str,
        settings: EncoderSettings,
        input: RawFormat,
    ) -> Result<Self, CaptureError> {
        let mut enc = M2mEncoder {
            dev,
            label: label.to_owned(),
            settings,
            input,
            out_fmt: Format::default(),
            free_out: Vec::new(),
            want_keyframe: true,
            param_sets: ParamSets::default(),
            wait_ms: 200,
        };
        enc.setup()?;
        Ok(enc)
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    fn setup(&mut self) -> Result<(), CaptureError> {
        let s = self.settings;
        let cap = self
            .dev
            .querycap()
            .map_err(|e| err("querying the device", e))?;
        if !cap.is_m2m_mplane() {
            return Err(err(
                "opening",
                format!(
                    "{} ({}) is not a multi-planar M2M device",
                    self.label, cap.driver
                ),
            ));
        }
        let has = |dev: &mut D, t: u32, fourcc: u32| -> io::Result<bool> {
            for i in 0..64 {
                match dev.enum_fmt(t, i)? {
                    Some(d) if d.fourcc == fourcc => return Ok(true),
                    Some(_) => {}
                    None => break,
                }
            }
            Ok(false)
        };
        if !has(&mut self.dev, CAP, PIX_FMT_H264).map_err(|e| err("listing formats", e))? {
            return Err(err(
                "opening",
                format!("{} does not produce H.264", self.label),
            ));
        }
        let fourcc = self.input.fourcc();
        if !has(&mut self.dev, OUT, fourcc).map_err(|e| err("listing formats", e))? {
            return Err(err(
                "opening",
                format!("{} does not take {} input", self.label, fourcc_str(fourcc)),
            ));
        }
        // The coded format goes first, on CAPTURE (the spec's order).
        let coded_size = (s.width * s.height * 3 / 2 / 2).max(512 * 1024);
        self.dev
            .s_fmt(&Format {
                buf_type: CAP,
                width: s.width,
                height: s.height,
                fourcc: PIX_FMT_H264,
                planes: vec![PlaneFormat {
                    bytesperline: 0,
                    sizeimage: coded_size,
                }],
            })
            .map_err(|e| err("setting the coded format", e))?;
        let out = self
            .dev
            .s_fmt(&Format {
                buf_type: OUT,
                width: s.width,
                height: s.height,
                fourcc,
                planes: vec![PlaneFormat::default()],
            })
            .map_err(|e| err("setting the input format", e))?;
        if out.fourcc != fourcc || out.width < s.width || out.height < s.height {
            return Err(err(
                "setting the input format",
                format!(
                    "asked {} {}x{}, driver gave {} {}x{}",
                    fourcc_str(fourcc),
                    s.width,
                    s.height,
                    fourcc_str(out.fourcc),
                    out.width,
                    out.height
                ),
            ));
        }
        self.out_fmt = out;
        if let Err(e) = self.dev.s_frame_interval(OUT, 1, s.fps) {
            tracing::debug!(error = %e, "m2m: frame interval not set");
        }
        // Set every encoding parameter explicitly: driver defaults differ.
        let required = [
            (CID_MPEG_VIDEO_BITRATE, i64::from(s.bitrate), "bitrate"),
            (
                CID_MPEG_VIDEO_H264_I_PERIOD,
                i64::from(s.keyframe_interval.max(1)),
                "keyframe interval",
            ),
        ];
        for (id, v, what) in required {
            self.dev
                .set_ctrl(id, v)
                .map_err(|e| err("setting controls", format!("{what} = {v}: {e}")))?;
        }
        let optional = [
            (
                CID_MPEG_VIDEO_H264_PROFILE,
                profile_ctrl(s.profile),
                "profile",
            ),
            (
                CID_MPEG_VIDEO_H264_LEVEL,
                level_ctrl(s.width, s.height, s.fps, s.bitrate),
                "level",
            ),
            // SPS/PPS before every IDR; if refused, ParamSets repairs it.
            (
                CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
                1,
                "repeat sequence header",
            ),
        ];
        for (id, v, what) in optional {
            if let Err(e) = self.dev.set_ctrl(id, v) {
                tracing::warn!(control = what, value = v, error = %e, "m2m encoder: control not accepted");
            }
        }
        let n_out = self
            .dev
            .reqbufs(OUT, BUFFERS)
            .map_err(|e| err("allocating input buffers", e))?;
        let n_cap = self
            .dev
            .reqbufs(CAP, BUFFERS)
            .map_err(|e| err("allocating output buffers", e))?;
        if n_out == 0 || n_cap == 0 {
            return Err(err("allocating buffers", "the driver granted none"));
        }
        for i in 0..n_cap {
            self.dev
                .qbuf(CAP, i, &[0], 0)
                .map_err(|e| err("queueing output buffers", e))?;
        }
        self.dev
            .streamon(OUT)
            .map_err(|e| err("starting the input queue", e))?;
        self.dev
            .streamon(CAP)
            .map_err(|e| err("starting the output queue", e))?;
        self.free_out = (0..n_out).rev().collect();
        self.want_keyframe = true;
        Ok(())
    }

    fn teardown(&mut self) {
        // Best effort: the device may already be gone.
        let _ = self.dev.streamoff(OUT);
        let _ = self.dev.streamoff(CAP);
        let _ = self.dev.reqbufs(OUT, 0);
        let _ = self.dev.reqbufs(CAP, 0);
        self.free_out.clear();
    }

    fn reclaim_inputs(&mut self) -> Result<(), CaptureError> {
        loop {
            match self.dev.dqbuf(OUT) {
                Ok(d) => self.free_out.push(d.index),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(err("dequeuing an input buffer", e)),
            }
        }
    }

    /// Dequeue finished H.264 buffers, waiting up to `wait_ms` for the
    /// first. Returns true when the LAST buffer (end of a drain) was seen.
    fn collect(&mut self, out: &mut Vec<Encoded>, wait_ms: i32) -> Result<bool, CaptureError> {
        let mut waited = false;
        loop {
            match self.dev.dqbuf(CAP) {
                Ok(d) => {
                    let n = d.bytesused.first().copied().unwrap_or(0) as usize;
                    let mem = self.dev.buffer(CAP, d.index, 0);
                    let data = mem.get(..n).unwrap_or(mem).to_vec();
                    self.dev
                        .qbuf(CAP, d.index, &[0], 0)
                        .map_err(|e| err("requeuing an output buffer", e))?;
                    if !data.is_empty() && d.flags & BUF_FLAG_ERROR == 0 {
                        let keyframe = d.flags & BUF_FLAG_KEYFRAME != 0;
                        out.push(Encoded {
                            data: self.param_sets.fix(data, keyframe),
                            keyframe,
                            pts_us: d.timestamp_us,
                        });
                    }
                    if d.flags & BUF_FLAG_LAST != 0 {
                        return Ok(true);
                    }
                    waited = true; // got one: take the rest without waiting
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if waited || wait_ms <= 0 {
                        return Ok(false);
                    }
                    waited = true;
                    let r = self
                        .dev
                        .poll(wait_ms)
                        .map_err(|e| err("waiting for output", e))?;
                    if r.error && !r.readable {
                        return Err(err("waiting for output", "the device reported an error"));
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => return Ok(true),
                Err(e) => return Err(err("dequeuing an output buffer", e)),
            }
        }
    }

    /// Drain: encode everything queued, up to the LAST buffer, then resume.
    pub fn drain(&mut self) -> Result<Vec<Encoded>, CaptureError> {
        let mut out = Vec::new();
        self.dev
            .encoder_cmd(ENC_CMD_STOP)
            .map_err(|e| err("draining", e))?;
        let mut last = false;
        for _ in 0..50 {
            if self.collect(&mut out, 100)? {
                last = true;
                break;
            }
        }
        if !last {
            return Err(err("draining", "no LAST buffer within 5 s"));
        }
        self.reclaim_inputs()?;
        self.dev
            .encoder_cmd(ENC_CMD_START)
            .map_err(|e| err("resuming after a drain", e))?;
        Ok(out)
    }

    /// Apply new settings. Bitrate and keyframe interval change on the fly;
    /// a new size, rate or profile drains and re-initialises the encoder
    /// (the hub then sees a new SPS and starts a new stream generation).
    pub fn reconfigure(&mut self, new: EncoderSettings) -> Result<Vec<Encoded>, CaptureError> {
        let old = self.settings;
        let same_stream = EncoderSettings {
            bitrate: old.bitrate,
            keyframe_interval: old.keyframe_interval,
            ..new
        } == old;
        if same_stream {
            if new.bitrate != old.bitrate {
                self.dev
                    .set_ctrl(CID_MPEG_VIDEO_BITRATE, i64::from(new.bitrate))
                    .map_err(|e| err("changing the bitrate", e))?;
            }
            if new.keyframe_interval != old.keyframe_interval {
                self.dev
                    .set_ctrl(
                        CID_MPEG_VIDEO_H264_I_PERIOD,
                        i64::from(new.keyframe_interval.max(1)),
                    )
                    .map_err(|e| err("changing the keyframe interval", e))?;
            }
            self.settings = new;
            return Ok(Vec::new());
        }
        let out = self.drain()?;
        self.teardown();
        self.settings = new;
        self.setup()?;
        Ok(out)
    }
}

impl<D: Device> Drop for M2mEncoder<D> {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl<D: Device> VideoEncoder for M2mEncoder<D> {
    fn describe(&self) -> String {
        format!("v4l2 m2m {}", self.label)
    }

    fn encode(&mut self, frame: &RawFrame<'_>, pts_us: u64) -> Result<Vec<Encoded>, CaptureError> {
        let s = self.settings;
        if (frame.width, frame.height, frame.format) != (s.width, s.height, self.input) {
            return Err(err(
                "encoding a frame",
                format!(
                    "picture {}x{} {:?}, encoder set up for {}x{} {:?}",
                    frame.width, frame.height, frame.format, s.width, s.height, self.input
                ),
            ));
        }
        self.reclaim_inputs()?;
        if self.free_out.is_empty() {
            let r = self
                .dev
                .poll(self.wait_ms)
                .map_err(|e| err("waiting for input", e))?;
            if r.writable {
                self.reclaim_inputs()?;
            }
        }
        let Some(index) = self.free_out.pop() else {
            return Err(err(
                "encoding a frame",
                "encoder stalled: no input buffer came back",
            ));
        };
        if self.want_keyframe {
            if let Err(e) = self.dev.set_ctrl(CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1) {
                tracing::warn!(error = %e, "m2m encoder: cannot force a keyframe");
            }
            self.want_keyframe = false;
        }
        let plane = self.out_fmt.planes.first().copied().unwrap_or_default();
        let stride = (plane.bytesperline as usize).max(frame.width as usize);
        let rows = match self.input {
            RawFormat::Yuyv => self.out_fmt.height as usize,
            // Some drivers pad the luma rows (bcm2835-codec: height to 16).
            _ => (plane.sizeimage as usize * 2 / 3 / stride).max(frame.height as usize),
        };
        let dst = self.dev.buffer_mut(OUT, index, 0);
        let used = match copy_to_driver_layout(frame, dst, stride, rows) {
            Ok(n) => n,
            Err(reason) => {
                self.free_out.push(index);
                return Err(err("copying a frame", reason));
            }
        };
        self.dev
            .qbuf(OUT, index, &[used as u32], pts_us)
            .map_err(|e| err("queueing a frame", e))?;
        let mut out = Vec::new();
        let wait = self.wait_ms;
        self.collect(&mut out, wait)?;
        Ok(out)
    }

    fn request_keyframe(&mut self) {
        self.want_keyframe = true;
    }
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests;
