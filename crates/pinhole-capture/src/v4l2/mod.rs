//! V4L2 cameras: `/dev/videoN` capture nodes, mmap streaming.
//!
//! A session opens the node, negotiates a format ([`negotiate()`]), and streams
//! with a non-blocking fd and `poll()`: native H.264 goes straight to the
//! hub, raw YUV and MJPEG go through an encoder. Any fault — unplugged
//! camera, driver error, no frame within the stall timeout — ends the
//! session with the reason; the supervisor reports it ("no camera: …" in
//! the UI) and reopens with backoff until the camera is back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pinhole_media::{AccessUnit, AccessUnitAssembler, Clock};

use crate::encoder::convert::{rgb_to_i420, I420Image};
use crate::encoder::m2m::M2mEncoder;
use crate::encoder::soft::SoftEncoder;
use crate::encoder::{EncoderSettings, Profile, RawFrame, VideoEncoder};
use crate::{CaptureError, FrameSink, RetryPolicy, Source, SourceInfo, SourceState, StopFlag};

pub mod controls;
pub mod device;
pub mod negotiate;
pub mod sys;

use device::{enumerate_formats, Device, Format, PlaneFormat, RealDevice};
use negotiate::{negotiate, Choice, Pipeline, RawFormat, Wanted};
use sys::*;

/// Capture buffers: enough to ride out a slow encode, few for low latency.
const CAPTURE_BUFFERS: u32 = 4;
const POLL_MS: i32 = 200;

/// Which encoder turns raw/MJPEG pictures into H.264.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    #[default]
    Software,
    /// A V4L2 stateful M2M encoder node (e.g. `/dev/video11`).
    M2m(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct V4l2Config {
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    pub keyframe_interval: u32,
    /// Only this pixel format (else the best one is negotiated).
    pub fourcc: Option<u32>,
    pub encoder: EncoderChoice,
    /// No frame for this long: the device is closed and reopened.
    pub stall_timeout: Duration,
    /// The camera's own controls to set whenever the device is opened.
    pub controls: controls::SavedControls,
}

impl V4l2Config {
    pub fn new(device: impl Into<PathBuf>) -> Self {
        V4l2Config {
            device: device.into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_000_000,
            keyframe_interval: 30,
            fourcc: None,
            encoder: EncoderChoice::Software,
            stall_timeout: Duration::from_secs(3),
            controls: controls::SavedControls::default(),
        }
    }

    /// The stall timeout, never shorter than three frame intervals.
    fn stall_us(&self) -> u64 {
        crate::camera::stall_us(self.stall_timeout, self.fps)
    }
}

/// An errno as a person reads it: ENODEV is the usual "unplugged".
fn why(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(nix::libc::ENODEV) => "the camera was disconnected (ENODEV)".into(),
        // The device cgroup: systemd resolves DeviceAllow=char-video4linux
        // when the service starts, so a driver loaded later is refused.
        Some(nix::libc::EPERM) => format!(
            "{e} (the service's device policy refuses it: was the video driver loaded after \
             pinholed started? restart pinholed)"
        ),
        // udev has not (yet) given the node to group video.
        Some(nix::libc::EACCES) => format!("{e} (the node is not readable by group video yet)"),
        _ => e.to_string(),
    }
}

/// Opens a device node; tests substitute fakes.
pub type Opener = Box<dyn FnMut(&Path) -> io::Result<Box<dyn Device>> + Send>;

pub fn real_opener() -> Opener {
    Box::new(|p: &Path| RealDevice::open(p).map(|d| Box::new(d) as Box<dyn Device>))
}

/// A capture-capable node found by [`probe`].
#[derive(Clone, Debug, PartialEq)]
pub struct Probed {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    pub choice: Choice,
}

/// Why [`probe`] cannot use a node.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeError {
    /// For the `auto` log and status: `/dev/video1: … is not a streaming capture device`.
    pub reason: String,
    /// The node is no camera at all (M2M codec, metadata node): probing it
    /// again gives the same answer while it is the same device.
    pub not_capture: bool,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Open `path` and check it can feed pinhole: a capture node with a format
/// we can use. `Err` says why not (for the `auto` log and status).
pub fn probe(opener: &mut Opener, path: &Path, want: &Wanted) -> Result<Probed, ProbeError> {
    let err = |reason: String| ProbeError {
        reason,
        not_capture: false,
    };
    let mut dev = opener(path).map_err(|e| err(format!("{}: {}", path.display(), why(&e))))?;
    let cap = dev
        .querycap()
        .map_err(|e| err(format!("{}: not a V4L2 device: {e}", path.display())))?;
    if !cap.is_capture() {
        return Err(ProbeError {
            reason: format!(
                "{}: {} ({}) is not a streaming capture device",
                path.display(),
                cap.card,
                cap.driver
            ),
            not_capture: true,
        });
    }
    let formats = enumerate_formats(&mut *dev, cap.capture_type())
        .map_err(|e| err(format!("{}: listing formats: {e}", path.display())))?;
    let choice =
        negotiate(&formats, want).map_err(|e| err(format!("{}: {}", path.display(), e)))?;
    Ok(Probed {
        path: path.to_owned(),
        card: cap.card,
        driver: cap.driver,
        choice,
    })
}

/// `/dev/video*` in numeric order.
pub fn device_nodes(dir: &Path) -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n = name.strip_prefix("video")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// Parse `v4l2:` source options: `/dev/video0` or `/dev/video0?format=MJPG`.
pub fn parse_spec(spec: &str) -> (PathBuf, Option<u32>) {
    let (path, query) = spec.split_once('?').unwrap_or((spec, ""));
    let fourcc = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("format="))
        .find_map(|f| <[u8; 4]>::try_from(format!("{f:<4}").as_bytes()).ok())
        .map(|b| fourcc(&b));
    (PathBuf::from(path), fourcc)
}

pub struct V4l2Source {
    cfg: V4l2Config,
    clock: Arc<dyn Clock>,
    opener: Opener,
}

/// Turns dequeued buffers into access units.
enum Stage {
    H264 {
        asm: AccessUnitAssembler,
    },
    Mjpeg {
        enc: Box<dyn VideoEncoder>,
        pic: I420Image,
        contiguous: Vec<u8>,
    },
    Raw {
        enc: Box<dyn VideoEncoder>,
        format: RawFormat,
        stride: usize,
        plane_rows: usize,
    },
}

impl V4l2Source {
    pub fn new(cfg: V4l2Config, clock: Arc<dyn Clock>) -> Result<Self, CaptureError> {
        Self::with_opener(cfg, clock, real_opener())
    }

    pub fn with_opener(
        cfg: V4l2Config,
        clock: Arc<dyn Clock>,
        opener: Opener,
    ) -> Result<Self, CaptureError> {
        crate::camera::check_settings(
            "v4l2",
            cfg.width,
            cfg.height,
            cfg.fps,
            cfg.keyframe_interval,
        )?;
        Ok(V4l2Source { cfg, clock, opener })
    }

    fn wanted(&self) -> Wanted {
        Wanted {
            width: self.cfg.width,
            height: self.cfg.height,
            fps: self.cfg.fps,
            fourcc: self.cfg.fourcc,
        }
    }

    fn make_encoder(
        &self,
        width: u32,
        height: u32,
        fps: u32,
        input: RawFormat,
    ) -> Result<Box<dyn VideoEncoder>, String> {
        let settings = EncoderSettings {
            width: width & !1,
            height: height & !1,
            fps,
            bitrate: self.cfg.bitrate,
            keyframe_interval: self.cfg.keyframe_interval,
            profile: Profile::ConstrainedBaseline,
        };
        match &self.cfg.encoder {
            EncoderChoice::Software => SoftEncoder::new(settings)
                .map(|e| Box::new(e) as Box<dyn VideoEncoder>)
                .map_err(|e| e.to_string()),
            EncoderChoice::M2m(path) => {
                let dev = RealDevice::open(path)
                    .map_err(|e| format!("{}: {}", path.display(), why(&e)))?;
                M2mEncoder::open(dev, &path.display().to_string(), settings, input)
                    .map(|e| Box::new(e) as Box<dyn VideoEncoder>)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Set the camera's own H.264 encoder up explicitly (bcm2835-v4l2, UVC
    /// H.264). Refusals are logged, not fatal: the assembler repairs
    /// missing parameter sets and the stream still plays.
    fn setup_camera_h264(&self, dev: &mut dyn Device, fps: u32) {
        let level = {
            use openh264::encoder::Level;
            let l = crate::encoder::soft::pick_level(
                self.cfg.width,
                self.cfg.height,
                fps,
                self.cfg.bitrate,
            );
            // V4L2 level menu index, as in the M2M encoder.
            [
                Level::Level_1_0,
                Level::Level_1_0, // 1b
                Level::Level_1_1,
                Level::Level_1_2,
                Level::Level_1_3,
                Level::Level_2_0,
                Level::Level_2_1,
                Level::Level_2_2,
                Level::Level_3_0,
                Level::Level_3_1,
                Level::Level_3_2,
                Level::Level_4_0,
                Level::Level_4_1,
                Level::Level_4_2,
                Level::Level_5_0,
                Level::Level_5_1,
            ]
            .iter()
            .rposition(|x| std::mem::discriminant(x) == std::mem::discriminant(&l))
            .unwrap_or(16) as i64
        };
        let ctrls = [
            (
                CID_MPEG_VIDEO_BITRATE,
                i64::from(self.cfg.bitrate),
                "bitrate",
            ),
            (
                CID_MPEG_VIDEO_H264_I_PERIOD,
                i64::from(self.cfg.keyframe_interval),
                "keyframe interval",
            ),
            (
                CID_MPEG_VIDEO_H264_PROFILE,
                H264_PROFILE_CONSTRAINED_BASELINE,
                "profile",
            ),
            (CID_MPEG_VIDEO_H264_LEVEL, level, "level"),
            (CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 1, "inline SPS/PPS"),
        ];
        for (id, value, what) in ctrls {
            if let Err(e) = dev.set_ctrl(id, value) {
                tracing::warn!(control = what, value, error = %e, "v4l2: camera refused an H.264 control");
            }
        }
    }

    fn session(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        let path = self.cfg.device.clone();
        let end = CaptureError::Lost;
        let want = self.wanted();
        let mut dev =
            (self.opener)(&path).map_err(|e| end(format!("{}: {}", path.display(), why(&e))))?;
        let cap = dev
            .querycap()
            .map_err(|e| end(format!("{}: {}", path.display(), why(&e))))?;
        if !cap.is_capture() {
            return Err(end(format!(
                "{} ({}) is not a streaming capture device",
                path.display(),
                cap.driver
            )));
        }
        // A replugged camera or reloaded driver starts from its defaults.
        for w in controls::apply_saved(&mut *dev, &self.cfg.controls.get()) {
            tracing::warn!(device = %path.display(), "v4l2: saved control not applied: {w}");
        }
        let t = cap.capture_type();
        let formats = enumerate_formats(&mut *dev, t)
            .map_err(|e| end(format!("listing formats: {}", why(&e))))?;
        let choice = negotiate(&formats, &want).map_err(end)?;
        let fmt = dev
            .s_fmt(&Format {
                buf_type: t,
                width: choice.width,
                height: choice.height,
                fourcc: choice.fourcc,
                planes: vec![PlaneFormat::default()],
            })
            .map_err(|e| end(format!("setting the format: {}", why(&e))))?;
        if fmt.fourcc != choice.fourcc {
            return Err(end(format!(
                "driver switched {} to {}",
                fourcc_str(choice.fourcc),
                fourcc_str(fmt.fourcc)
            )));
        }
        let interval = match choice.interval {
            Some((n, d)) => dev.s_frame_interval(t, n, d).ok().flatten(),
            None => None,
        };
        let fps = interval
            .filter(|&(n, d)| n > 0 && d > 0)
            .map(|(n, d)| (f64::from(d) / f64::from(n)).round().max(1.0) as u32)
            .unwrap_or(self.cfg.fps);

        let plane = fmt.planes.first().copied().unwrap_or_default();
        let mut stage = match choice.pipeline {
            Pipeline::H264 => {
                self.setup_camera_h264(&mut *dev, fps);
                Stage::H264 {
                    asm: AccessUnitAssembler::new(),
                }
            }
            Pipeline::Mjpeg => Stage::Mjpeg {
                enc: self
                    .make_encoder(fmt.width, fmt.height, fps, RawFormat::I420)
                    .map_err(end)?,
                pic: I420Image::default(),
                contiguous: Vec::new(),
            },
            Pipeline::Raw(format) => {
                let min_stride = match format {
                    RawFormat::Yuyv => fmt.width as usize * 2,
                    _ => fmt.width as usize,
                };
                let stride = (plane.bytesperline as usize).max(min_stride);
                let plane_rows = match format {
                    RawFormat::Yuyv => fmt.height as usize,
                    _ => (plane.sizeimage as usize * 2 / 3 / stride).max(fmt.height as usize),
                };
                Stage::Raw {
                    enc: self
                        .make_encoder(fmt.width, fmt.height, fps, format)
                        .map_err(end)?,
                    format,
                    stride,
                    plane_rows,
                }
            }
        };
        let encoder_desc = match &stage {
            Stage::H264 { .. } => "camera H.264".to_owned(),
            Stage::Mjpeg { enc, .. } | Stage::Raw { enc, .. } => enc.describe(),
        };

        let n = dev
            .reqbufs(t, CAPTURE_BUFFERS)
            .map_err(|e| end(format!("allocating buffers: {}", why(&e))))?;
        if n < 2 {
            return Err(end(format!("the driver granted {n} buffer(s), need 2")));
        }
        for i in 0..n {
            dev.qbuf(t, i, &[0], 0)
                .map_err(|e| end(format!("queueing buffers: {}", why(&e))))?;
        }
        dev.streamon(t)
            .map_err(|e| end(format!("starting the stream: {}", why(&e))))?;
        sink.update_info(SourceInfo {
            kind: "v4l2",
            detail: format!(
                "{} ({}, {}): {} {}x{} @ {} fps → {}",
                path.display(),
                cap.card,
                cap.driver,
                fourcc_str(fmt.fourcc),
                fmt.width,
                fmt.height,
                fps,
                encoder_desc
            ),
            fps: Some(f64::from(fps)),
            bitrate: Some(self.cfg.bitrate),
            keyframe_interval: Some(self.cfg.keyframe_interval),
        });
        tracing::info!(
            device = %path.display(),
            card = %cap.card,
            format = %fourcc_str(fmt.fourcc),
            width = fmt.width,
            height = fmt.height,
            fps,
            encoder = %encoder_desc,
            "v4l2: streaming"
        );

        let result = self.stream(&mut *dev, t, &fmt, &mut stage, sink, stop);
        let _ = dev.streamoff(t);
        let _ = dev.reqbufs(t, 0);
        result
    }

    fn stream(
        &mut self,
        dev: &mut dyn Device,
        t: u32,
        fmt: &Format,
        stage: &mut Stage,
        sink: &dyn FrameSink,
        stop: &StopFlag,
    ) -> Result<(), CaptureError> {
        let stall_us = self.cfg.stall_us();
        let mut last_frame = self.clock.now_us();
        let mut running = false;
        let end = CaptureError::Lost;
        while !stop.is_stopped() {
            sink.heartbeat();
            let ready = dev
                .poll(POLL_MS)
                .map_err(|e| end(format!("waiting for a frame: {}", why(&e))))?;
            let now = self.clock.now_us();
            if !ready.readable {
                if ready.error {
                    return Err(end("the device reported an error (disconnected?)".into()));
                }
                if now.saturating_sub(last_frame) > stall_us {
                    return Err(end(format!(
                        "no frame for {:.1} s: restarting the camera",
                        stall_us as f64 / 1e6
                    )));
                }
                continue;
            }
            let d = match dev.dqbuf(t) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(end(format!("capture failed: {}", why(&e)))),
            };
            last_frame = now;
            let wall = self.clock.wall_us();
            if d.flags & BUF_FLAG_ERROR == 0 {
                let used = d.bytesused.first().copied().unwrap_or(0) as usize;
                let mem = dev.buffer(t, d.index, 0);
                let data = mem.get(..used).unwrap_or(mem);
                match process(stage, fmt, data, now, wall, sink) {
                    Ok(n) if n > 0 => {
                        if !running {
                            running = true;
                            sink.report(SourceState::Running);
                        }
                    }
                    Ok(_) => {}
                    // A corrupt frame (bad JPEG, short buffer) is skipped.
                    Err(e) => tracing::debug!(error = %e, "v4l2: frame skipped"),
                }
            }
            dev.qbuf(t, d.index, &[0], 0)
                .map_err(|e| end(format!("requeueing a buffer: {}", why(&e))))?;
        }
        Ok(())
    }
}

/// One dequeued buffer through the stage; returns access units published.
fn process(
    stage: &mut Stage,
    fmt: &Format,
    data: &[u8],
    pts_us: u64,
    wall_us: u64,
    sink: &dyn FrameSink,
) -> Result<usize, String> {
    let publish = |data: Bytes, keyframe: bool, pts: u64| {
        sink.publish(AccessUnit {
            data,
            pts_us: pts,
            wallclock_us: wall_us.saturating_sub(pts_us.saturating_sub(pts)),
            keyframe,
        })
    };
    let encoded = match stage {
        Stage::H264 { asm } => {
            // One buffer holds one frame: finishing after each buffer hands
            // the picture on now instead of when the next one starts.
            let mut aus = asm.push(data);
            aus.extend(asm.finish());
            let n = aus.len();
            for au in aus {
                publish(au.data, au.keyframe, pts_us);
            }
            return Ok(n);
        }
        Stage::Mjpeg {
            enc,
            pic,
            contiguous,
        } => {
            sink.publish_jpeg(Bytes::copy_from_slice(data), pts_us);
            let mut dec = jpeg_decoder::Decoder::new(data);
            let rgb = dec.decode().map_err(|e| format!("JPEG: {e}"))?;
            let info = dec.info().ok_or("JPEG without a header")?;
            if info.pixel_format != jpeg_decoder::PixelFormat::RGB24 {
                return Err(format!("JPEG pixel format {:?}", info.pixel_format));
            }
            let (w, h) = (usize::from(info.width), usize::from(info.height));
            if (w as u32 & !1, h as u32 & !1) != (fmt.width & !1, fmt.height & !1) {
                return Err(format!(
                    "JPEG is {w}x{h}, format says {}x{}",
                    fmt.width, fmt.height
                ));
            }
            rgb_to_i420(&rgb, w, h, pic)?;
            contiguous.clear();
            contiguous.extend_from_slice(&pic.y);
            contiguous.extend_from_slice(&pic.u);
            contiguous.extend_from_slice(&pic.v);
            let frame = RawFrame::packed(
                RawFormat::I420,
                pic.width as u32,
                pic.height as u32,
                contiguous,
            );
            enc.encode(&frame, pts_us).map_err(|e| e.to_string())?
        }
        Stage::Raw {
            enc,
            format,
            stride,
            plane_rows,
        } => {
            let frame = RawFrame {
                format: *format,
                width: fmt.width & !1,
                height: fmt.height & !1,
                data,
                stride: *stride,
                plane_rows: *plane_rows,
            };
            if data.len() < frame.needed_len() {
                return Err(format!(
                    "short buffer: {} of {} bytes",
                    data.len(),
                    frame.needed_len()
                ));
            }
            enc.encode(&frame, pts_us).map_err(|e| e.to_string())?
        }
    };
    let n = encoded.len();
    for e in encoded {
        publish(Bytes::from(e.data), e.keyframe, e.pts_us);
    }
    Ok(n)
}

impl Source for V4l2Source {
    fn info(&self) -> SourceInfo {
        let c = &self.cfg;
        SourceInfo {
            kind: "v4l2",
            detail: format!(
                "{} (wanted {}x{} @ {} fps)",
                c.device.display(),
                c.width,
                c.height,
                c.fps
            ),
            fps: Some(f64::from(c.fps)),
            bitrate: Some(c.bitrate),
            keyframe_interval: Some(c.keyframe_interval),
        }
    }

    /// One session: open, negotiate, stream until stopped or the camera is
    /// lost (the supervisor reopens it with backoff).
    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        self.session(sink, stop)
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::CAMERA
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
