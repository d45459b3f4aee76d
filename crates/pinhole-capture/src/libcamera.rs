//! libcamera cameras, through a helper process (`pinhole-libcamera`).
//!
//! libcamera is C++ and loads its IPA modules at run time, so it cannot be
//! linked into the static daemon. The helper is dynamically linked against
//! the system's libcamera; it opens the camera and shares its frame buffers
//! (dmabufs) over a SOCK_SEQPACKET socket (`pinhole-camera-proto`). This
//! side maps them read-only, encodes each picture (NV12/YU12 with the
//! helper's stride and padding) and hands the buffer back.
//!
//! A crash of the helper only ends a session: the supervisor reports it,
//! waits (backoff 0.5 → 4 s) and runs the source again, which spawns a new
//! helper; the hub and its viewers are
//! not touched, so they see the stream resume.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pinhole_camera_proto::wire::{Mapping, Ownership};
use pinhole_camera_proto::{
    check_hello, CameraDesc, Channel, Layout, Message, ProtoError, FOURCC_I420, SOCKET_FD_ENV,
};
use pinhole_media::{AccessUnit, Clock};

use crate::encoder::soft::SoftEncoder;
use crate::encoder::{EncoderSettings, Profile, RawFrame, VideoEncoder};
use crate::v4l2::negotiate::RawFormat;
use crate::{CaptureError, FrameSink, RetryPolicy, Source, SourceInfo, SourceState, StopFlag};

pub mod controls;
pub use controls::LibcameraControls;

/// The helper's file name, looked for next to `pinholed` and in the
/// package's libexec directory.
pub const HELPER_NAME: &str = "pinhole-libcamera";
const HELPER_DIRS: [&str; 2] = ["/usr/libexec/pinhole", "/usr/lib/pinhole"];
/// The descriptor number the helper finds its socket at.
const CHILD_FD: i32 = 3;
const HELLO_TIMEOUT_MS: u32 = 5_000;
/// libcamera enumerates and configures the pipeline before answering.
const START_TIMEOUT_MS: u32 = 15_000;
const POLL_MS: u32 = 200;

#[derive(Clone, Debug, PartialEq)]
pub struct LibcameraConfig {
    /// The helper executable.
    pub helper: PathBuf,
    /// libcamera camera id; `None`: the first camera.
    pub camera: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    pub keyframe_interval: u32,
    /// No frame for this long: the helper is stopped and started again.
    pub stall_timeout: Duration,
    /// The camera's controls: announced by each helper, saved values sent
    /// to each one, `PUT /api/camera` sets through it.
    pub controls: LibcameraControls,
}

impl LibcameraConfig {
    pub fn new(helper: PathBuf, camera: Option<String>) -> Self {
        LibcameraConfig {
            helper,
            camera,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_000_000,
            keyframe_interval: 30,
            stall_timeout: Duration::from_secs(3),
            controls: LibcameraControls::default(),
        }
    }
}

/// `libcamera` → first camera; `libcamera:<id>` → that one.
pub fn parse_spec(spec: &str) -> Option<Option<String>> {
    match spec.strip_prefix("libcamera")? {
        "" | ":" => Some(None),
        rest => rest.strip_prefix(':').map(|id| Some(id.to_owned())),
    }
}

/// Where the helper is: `configured` if set (it must exist), else the first
/// of `<pinholed's dir>/pinhole-libcamera`, `/usr/libexec/pinhole/…`,
/// `/usr/lib/pinhole/…` that exists.
pub fn find_helper(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = configured {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("camera helper {} does not exist", p.display()))
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        candidates.push(dir.join(HELPER_NAME));
    }
    candidates.extend(HELPER_DIRS.iter().map(|d| Path::new(d).join(HELPER_NAME)));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no {HELPER_NAME} helper installed (looked in {})",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// A running helper: the process side of a session.
pub trait HelperProcess: Send {
    /// Stop it (if it still runs) and reap it; says how it ended.
    fn finish(&mut self, grace: Duration) -> String;
    /// How it ended, if it already has.
    fn exited(&mut self) -> Option<String>;
}

/// Starts a helper and returns its socket; tests substitute threads.
pub type Spawner = Box<dyn FnMut() -> Result<(Box<dyn HelperProcess>, Channel), String> + Send>;

struct ChildProcess(Child);

fn describe_status(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(0), _) => "exited".into(),
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(sig)) => format!("was killed by signal {sig}"),
        _ => s.to_string(),
    }
}

impl HelperProcess for ChildProcess {
    fn finish(&mut self, grace: Duration) -> String {
        // The socket is closed by now: a healthy helper exits by itself.
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Some(s) = self.exited() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        match self.0.wait() {
            Ok(s) => describe_status(s),
            Err(e) => format!("could not be reaped: {e}"),
        }
    }
    fn exited(&mut self) -> Option<String> {
        self.0.try_wait().ok().flatten().map(describe_status)
    }
}

/// Spawns `helper` with its end of a fresh socket pair as descriptor 3
/// (named in `PINHOLE_CAMERA_SOCKET_FD`); stdout is discarded, stderr
/// (libcamera's log) is inherited, so it lands in the daemon's journal.
pub fn process_spawner(helper: PathBuf, args: Vec<String>) -> Spawner {
    Box::new(move || {
        let (ours, theirs) = Channel::pair().map_err(|e| e.to_string())?;
        let theirs: OwnedFd = theirs.into_fd();
        let raw = theirs.as_raw_fd();
        let mut cmd = Command::new(&helper);
        cmd.args(&args)
            .env(SOCKET_FD_ENV, CHILD_FD.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                use nix::libc;
                if raw == CHILD_FD {
                    if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, CHILD_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", helper.display()))?;
        drop(theirs);
        Ok((
            Box::new(ChildProcess(child)) as Box<dyn HelperProcess>,
            ours,
        ))
    })
}

fn proto(context: &str) -> impl Fn(ProtoError) -> String + '_ {
    move |e| format!("camera helper: {context}: {e}")
}

/// Asks the helper which cameras it sees (for `auto`).
pub fn list_cameras(spawn: &mut Spawner) -> Result<Vec<CameraDesc>, String> {
    let (mut proc, ch) = spawn()?;
    let result = (|| {
        let hello = ch.recv(Some(HELLO_TIMEOUT_MS)).map_err(proto("hello"))?;
        check_hello(&hello.msg).map_err(proto("hello"))?;
        ch.send(&Message::ListCameras, &[]).map_err(proto("list"))?;
        match ch.recv(Some(START_TIMEOUT_MS)).map_err(proto("list"))?.msg {
            Message::Cameras(list) => Ok(list),
            Message::Error(text) => Err(format!("camera helper: {text}")),
            other => Err(format!(
                "camera helper: expected Cameras, got {}",
                other.name()
            )),
        }
    })();
    drop(ch);
    proc.finish(Duration::from_secs(1));
    result
}

pub struct LibcameraSource {
    cfg: LibcameraConfig,
    clock: Arc<dyn Clock>,
    spawn: Spawner,
}

impl LibcameraSource {
    pub fn new(cfg: LibcameraConfig, clock: Arc<dyn Clock>) -> Result<Self, CaptureError> {
        let spawn = process_spawner(cfg.helper.clone(), Vec::new());
        Self::with_spawner(cfg, clock, spawn)
    }

    pub fn with_spawner(
        cfg: LibcameraConfig,
        clock: Arc<dyn Clock>,
        spawn: Spawner,
    ) -> Result<Self, CaptureError> {
        crate::camera::check_settings(
            "libcamera",
            cfg.width,
            cfg.height,
            cfg.fps,
            cfg.keyframe_interval,
        )?;
        Ok(LibcameraSource { cfg, clock, spawn })
    }

    fn stall_us(&self) -> u64 {
        crate::camera::stall_us(self.cfg.stall_timeout, self.cfg.fps)
    }

    fn session(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        let (mut proc, ch) = (self.spawn)().map_err(CaptureError::Lost)?;
        let result = self.stream(&ch, sink, stop);
        drop(ch); // EOF tells the helper to stop the camera and exit
        let how = proc.finish(Duration::from_secs(2));
        self.cfg.controls.session_ended(&how);
        result.map_err(|reason| {
            // A vanished socket is best explained by how the process ended.
            let reason = if reason.contains("closed the socket") {
                format!("the camera helper {how}")
            } else {
                reason
            };
            CaptureError::Lost(reason)
        })
    }

    fn stream(
        &mut self,
        ch: &Channel,
        sink: &dyn FrameSink,
        stop: &StopFlag,
    ) -> Result<(), String> {
        let hello = ch.recv(Some(HELLO_TIMEOUT_MS)).map_err(proto("hello"))?;
        let software = check_hello(&hello.msg).map_err(proto("hello"))?.to_owned();
        ch.send(
            &Message::Start {
                camera: self.cfg.camera.clone().unwrap_or_default(),
                width: self.cfg.width,
                height: self.cfg.height,
                fps: self.cfg.fps,
            },
            &[],
        )
        .map_err(proto("start"))?;
        let started = ch.recv(Some(START_TIMEOUT_MS)).map_err(proto("start"))?;
        let (camera, layout, fps_milli, buffers) = match started.msg {
            Message::Started {
                camera,
                layout,
                fps_milli,
                buffers,
            } => (camera, layout, fps_milli, buffers),
            Message::Error(text) => return Err(format!("camera helper: {text}")),
            other => {
                return Err(format!(
                    "camera helper: expected Started, got {}",
                    other.name()
                ))
            }
        };
        let maps = started
            .fds
            .into_iter()
            .zip(&buffers)
            .map(|(fd, b)| Mapping::new(fd, b.len))
            .collect::<Result<Vec<_>, _>>()
            .map_err(proto("buffers"))?;
        // A protocol-2 helper announces the camera's controls right after
        // Started; the saved values go back at once (a new helper, or a
        // restarted one, starts from libcamera's defaults).
        let announced = ch.recv(Some(START_TIMEOUT_MS)).map_err(proto("controls"))?;
        let infos = match announced.msg {
            Message::Controls(list) => list,
            Message::Error(text) => return Err(format!("camera helper: {text}")),
            other => {
                return Err(format!(
                    "camera helper: expected Controls, got {}",
                    other.name()
                ))
            }
        };
        let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        tracing::info!(controls = ?names, "libcamera: camera controls");
        let controls = self.cfg.controls.clone();
        // Sets sent and not answered yet, in order: `None` is the re-send
        // of the saved values, `Some(id)` a `PUT` waiting for its answer.
        let mut in_flight: VecDeque<Option<u64>> = VecDeque::new();
        let initial = controls.session_started(infos);
        if !initial.is_empty() {
            tracing::info!(values = ?initial, "libcamera: setting the saved controls");
            ch.send(&Message::SetControls(initial), &[])
                .map_err(proto("controls"))?;
            in_flight.push_back(None);
        }
        let fps = ((fps_milli + 500) / 1000).clamp(1, 240);
        let format = if layout.fourcc == FOURCC_I420 {
            RawFormat::I420
        } else {
            RawFormat::Nv12
        };
        let mut enc = SoftEncoder::new(EncoderSettings {
            width: layout.width & !1,
            height: layout.height & !1,
            fps,
            bitrate: self.cfg.bitrate,
            keyframe_interval: self.cfg.keyframe_interval,
            profile: Profile::ConstrainedBaseline,
        })
        .map_err(|e| e.to_string())?;
        let detail = format!(
            "libcamera {} ({}): {} {}x{} (stride {}) @ {:.3} fps → {} [{}]",
            camera.id,
            camera.model,
            if format == RawFormat::I420 {
                "YU12"
            } else {
                "NV12"
            },
            layout.width,
            layout.height,
            layout.stride,
            f64::from(fps_milli) / 1000.0,
            enc.describe(),
            software
        );
        tracing::info!(%detail, "libcamera: streaming");
        sink.update_info(SourceInfo {
            kind: "libcamera",
            detail,
            fps: Some(f64::from(fps_milli) / 1000.0),
            bitrate: Some(self.cfg.bitrate),
            keyframe_interval: Some(self.cfg.keyframe_interval),
        });

        let stall_us = self.stall_us();
        let mut last_frame = self.clock.now_us();
        let mut owned = Ownership::new(maps.len());
        let mut running = false;
        while !stop.is_stopped() {
            sink.heartbeat();
            while let Some((id, values)) = controls.take_request() {
                ch.send(&Message::SetControls(values), &[])
                    .map_err(proto("controls"))?;
                in_flight.push_back(Some(id));
            }
            let now = self.clock.now_us();
            let received = match ch.recv(Some(POLL_MS)) {
                Ok(r) => r,
                Err(ProtoError::Timeout(_)) => {
                    if now.saturating_sub(last_frame) > stall_us {
                        return Err(format!(
                            "no frame for {:.1} s: restarting the camera helper",
                            stall_us as f64 / 1e6
                        ));
                    }
                    continue;
                }
                Err(e) => return Err(proto("stream")(e)),
            };
            enum Got {
                Frame(u16),
                Answer(Result<(), String>),
            }
            let got = match received.msg {
                Message::Frame { buffer, .. } => Got::Frame(buffer),
                Message::ControlsSet => Got::Answer(Ok(())),
                Message::ControlsRefused { control, reason } => Got::Answer(Err(format!(
                    "controls.{control}: the camera refused: {reason}"
                ))),
                Message::Error(text) => return Err(format!("camera helper: {text}")),
                other => {
                    return Err(format!(
                        "camera helper: expected Frame, got {}",
                        other.name()
                    ))
                }
            };
            let buffer = match got {
                Got::Frame(buffer) => buffer,
                Got::Answer(result) => {
                    match in_flight.pop_front() {
                        Some(Some(id)) => controls.answer(id, result),
                        Some(None) => match result {
                            Ok(()) => tracing::info!("libcamera: saved controls set"),
                            Err(e) => {
                                tracing::warn!(error = %e, "libcamera: saved controls refused")
                            }
                        },
                        None => return Err("camera helper: an answer to no SetControls".into()),
                    }
                    continue;
                }
            };
            owned.take(buffer).map_err(proto("frame"))?;
            let now = self.clock.now_us();
            last_frame = now;
            let wall = self.clock.wall_us();
            let map = &maps[usize::from(buffer)];
            map.sync_read(true);
            let out = encode(&mut enc, &layout, format, map.bytes(), now);
            map.sync_read(false);
            owned.release(buffer);
            ch.send(&Message::Release { buffer }, &[])
                .map_err(proto("release"))?;
            match out {
                Ok(aus) => {
                    for e in aus {
                        sink.publish(AccessUnit {
                            data: Bytes::from(e.data),
                            pts_us: e.pts_us,
                            wallclock_us: wall.saturating_sub(now.saturating_sub(e.pts_us)),
                            keyframe: e.keyframe,
                        });
                        if !running {
                            running = true;
                            sink.report(SourceState::Running);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "libcamera: frame skipped"),
            }
        }
        Ok(())
    }
}

/// One shared picture through the encoder.
fn encode(
    enc: &mut dyn VideoEncoder,
    layout: &Layout,
    format: RawFormat,
    data: &[u8],
    pts_us: u64,
) -> Result<Vec<crate::encoder::Encoded>, String> {
    let frame = RawFrame {
        format,
        width: layout.width & !1,
        height: layout.height & !1,
        data: data
            .get(..layout.frame_len() as usize)
            .ok_or("buffer shorter than its layout")?,
        stride: layout.stride as usize,
        plane_rows: layout.plane_rows() as usize,
    };
    enc.encode(&frame, pts_us).map_err(|e| e.to_string())
}

impl Source for LibcameraSource {
    fn info(&self) -> SourceInfo {
        let c = &self.cfg;
        SourceInfo {
            kind: "libcamera",
            detail: format!(
                "libcamera {} (wanted {}x{} @ {} fps, helper {})",
                c.camera.as_deref().unwrap_or("(first camera)"),
                c.width,
                c.height,
                c.fps,
                c.helper.display()
            ),
            fps: Some(f64::from(c.fps)),
            bitrate: Some(c.bitrate),
            keyframe_interval: Some(c.keyframe_interval),
        }
    }

    /// One helper session: start it, stream until stopped or the helper is
    /// lost (the supervisor starts a new one with backoff).
    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        self.session(sink, stop)
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            verb: "restarting it",
            ..RetryPolicy::CAMERA
        }
    }
}

#[cfg(test)]
mod tests;
