//! The real camera side, through the `libcamera` crate (0.2.3 ↔ libcamera
//! 0.0.3 on Debian bookworm). Compiled only with the `libcamera` feature.
//!
//! Unverified without a libcamera camera (docs/cameras.md): the buffer
//! layout the Pi ISP gives (one dmabuf per buffer, planes at offsets),
//! the frame rate (0.2.3 cannot set FrameDurationLimits, so the sensor
//! mode's default rate is what arrives), and the camera controls (read
//! from the ControlInfoMap and set on every request through
//! `controls_shim.cpp`, since 0.2.3 can do neither by id).

use std::ffi::{c_char, c_void, CStr};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::mpsc;
use std::time::Duration;

use libcamera::camera::CameraConfigurationStatus;
use libcamera::camera_manager::CameraManager;
use libcamera::framebuffer::AsFrameBuffer;
use libcamera::framebuffer_allocator::{FrameBuffer, FrameBufferAllocator};
use libcamera::geometry::Size;
use libcamera::pixel_format::PixelFormat;
use libcamera::properties;
use libcamera::request::{Request, RequestStatus, ReuseFlag};
use libcamera::stream::StreamRole;
use pinhole_camera_proto::control::{check_all, MAX_CONTROLS};
use pinhole_camera_proto::{
    BufferDesc, CameraDesc, Channel, ControlInfo, ControlValue, Layout, Message, ProtoError,
    FOURCC_I420, FOURCC_NV12, PROTOCOL_VERSION,
};

const NV12: PixelFormat = PixelFormat::new(FOURCC_NV12, 0);

pub fn version() -> String {
    CameraManager::new()
        .map(|m| m.version().to_owned())
        .unwrap_or_else(|e| format!("unavailable: {e}"))
}

fn describe(mgr: &CameraManager) -> Vec<CameraDesc> {
    let cameras = mgr.cameras();
    (0..cameras.len())
        .filter_map(|i| cameras.get(i))
        .map(|cam| CameraDesc {
            id: cam.id().to_owned(),
            model: cam
                .properties()
                .get::<properties::Model>()
                .map(|m| m.0)
                .unwrap_or_default(),
        })
        .collect()
}

pub fn list() -> Result<Vec<CameraDesc>, String> {
    let mgr = CameraManager::new().map_err(|e| format!("libcamera camera manager: {e}"))?;
    Ok(describe(&mgr))
}

/// Serves one pinholed session.
pub fn serve(ch: &Channel) -> Result<(), String> {
    let mgr = CameraManager::new().map_err(|e| format!("libcamera camera manager: {e}"))?;
    ch.send(
        &Message::Hello {
            version: PROTOCOL_VERSION,
            software: format!(
                "pinhole-libcamera {} (libcamera {})",
                env!("CARGO_PKG_VERSION"),
                mgr.version()
            ),
        },
        &[],
    )
    .map_err(|e| e.to_string())?;
    let (camera, width, height, fps) = match ch.recv(None).map_err(|e| e.to_string())?.msg {
        Message::ListCameras => {
            return ch
                .send(&Message::Cameras(describe(&mgr)), &[])
                .map_err(|e| e.to_string())
        }
        Message::Start {
            camera,
            width,
            height,
            fps,
        } => (camera, width, height, fps),
        other => {
            return Err(format!(
                "expected ListCameras or Start, got {}",
                other.name()
            ))
        }
    };
    let result = stream(ch, &mgr, &camera, width, height, fps);
    if let Err(e) = &result {
        let _ = ch.send(&Message::Error(e.clone()), &[]);
    }
    result
}

/// Where each plane of a buffer lies; all planes must share one dmabuf.
fn buffer_layout(fb: &FrameBuffer) -> Result<(RawFd, Vec<usize>, u64), String> {
    let planes = fb.planes();
    let mut fd = None;
    let mut offsets = Vec::new();
    let mut end = 0u64;
    for i in 0..planes.len() {
        let p = planes.get(i).ok_or("plane vanished")?;
        match fd {
            None => fd = Some(p.fd()),
            Some(f) if f == p.fd() => {}
            Some(_) => {
                return Err(
                    "the buffer's planes are in separate dmabufs (not supported yet)".into(),
                )
            }
        }
        let off = p.offset().unwrap_or(0);
        offsets.push(off);
        end = end.max((off + p.len()) as u64);
    }
    Ok((fd.ok_or("a buffer without planes")?, offsets, end))
}

enum Event {
    Done(Request),
    Release(u16),
    Set(Vec<(String, ControlValue)>),
    Closed(Option<ProtoError>),
}

/// `struct pinhole_control_info` in controls_shim.cpp.
#[repr(C)]
struct RawInfo {
    id: u32,
    ctype: i32,
    min: f64,
    max: f64,
    def: f64,
    has_def: i32,
    name: [c_char; 65],
}

extern "C" {
    fn pinhole_control_infos(map: *const c_void, out: *mut RawInfo, cap: usize) -> usize;
    fn pinhole_control_list_set(list: *mut c_void, id: u32, ctype: i32, i: i64, f: f64) -> i32;
    fn pinhole_set_frame_duration(list: *mut c_void, us: i64);
}

// libcamera::ControlType values (controls.h, 0.0.3).
const CTYPE_BOOL: i32 = 1;
const CTYPE_INT32: i32 = 3;
const CTYPE_INT64: i32 = 4;
const CTYPE_FLOAT: i32 = 5;

/// One control of the camera: what is announced, and how libcamera names
/// and types it.
struct Known {
    info: ControlInfo,
    id: u32,
    ctype: i32,
}

/// The camera's scalar controls, from its ControlInfoMap. A missing
/// default is taken as the minimum, and a default outside the range is
/// clamped (the protocol requires min ≤ default ≤ max).
fn camera_controls(map: &libcamera::control::ControlInfoMap) -> Vec<Known> {
    let mut raw: Vec<RawInfo> = (0..MAX_CONTROLS)
        .map(|_| RawInfo {
            id: 0,
            ctype: 0,
            min: 0.0,
            max: 0.0,
            def: 0.0,
            has_def: 0,
            name: [0; 65],
        })
        .collect();
    // ControlInfoMap is #[repr(transparent)] over libcamera::ControlInfoMap.
    let ptr = std::ptr::from_ref(map).cast::<c_void>();
    // SAFETY: `ptr` is the camera's live ControlInfoMap; `raw` has room for
    // `raw.len()` entries, and the shim fills at most that many.
    let n = unsafe { pinhole_control_infos(ptr, raw.as_mut_ptr(), raw.len()) };
    let mut out = Vec::new();
    for r in raw.iter().take(n) {
        // SAFETY: the shim NUL-terminates (64 bytes at most + NUL in 65).
        let name = unsafe { CStr::from_ptr(r.name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let def = if r.has_def != 0 { r.def } else { r.min };
        // f64::clamp panics on NaN or min > max: such a control is skipped.
        if !(r.min.is_finite() && r.max.is_finite() && def.is_finite()) || r.min > r.max {
            continue;
        }
        let v = |x: f64| match r.ctype {
            CTYPE_BOOL => Some(ControlValue::Bool(x != 0.0)),
            CTYPE_INT32 | CTYPE_INT64 => Some(ControlValue::Int(x as i64)),
            CTYPE_FLOAT => Some(ControlValue::Float(x as f32)),
            _ => None,
        };
        let (Some(min), Some(max), Some(default)) =
            (v(r.min), v(r.max), v(def.clamp(r.min, r.max)))
        else {
            continue;
        };
        let info = ControlInfo {
            name,
            min,
            max,
            default,
        };
        if info.validate().is_ok() {
            out.push(Known {
                info,
                id: r.id,
                ctype: r.ctype,
            });
        }
    }
    out.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    out
}

/// Puts the chosen values into a request (libcamera clears a reused
/// request's controls, so this runs before every queueing).
fn apply(req: &mut Request, known: &[Known], values: &[(String, ControlValue)], frame_us: i64) {
    // ControlList is #[repr(transparent)] over libcamera::ControlList.
    let list = std::ptr::from_mut(req.controls_mut()).cast::<c_void>();
    // SAFETY: as below; the shim takes a plain integer.
    unsafe { pinhole_set_frame_duration(list, frame_us) };
    for (name, v) in values {
        let Some(k) = known.iter().find(|k| &k.info.name == name) else {
            continue;
        };
        let (i, f) = match *v {
            ControlValue::Bool(b) => (i64::from(b), 0.0),
            ControlValue::Int(i) => (i, 0.0),
            ControlValue::Float(f) => (0, f64::from(f)),
        };
        // SAFETY: `list` is the request's live ControlList; id and type
        // come from the camera's own ControlInfoMap.
        unsafe { pinhole_control_list_set(list, k.id, k.ctype, i, f) };
    }
}

fn stream(
    ch: &Channel,
    mgr: &CameraManager,
    id: &str,
    width: u32,
    height: u32,
    fps: u32,
) -> Result<(), String> {
    let fps = fps.clamp(1, 120);
    let frame_us = 1_000_000 / i64::from(fps);
    let cameras = mgr.cameras();
    let cam = (0..cameras.len())
        .filter_map(|i| cameras.get(i))
        .find(|c| id.is_empty() || c.id() == id)
        .ok_or_else(|| {
            if id.is_empty() {
                "libcamera sees no camera".to_owned()
            } else {
                format!("libcamera has no camera {id:?}")
            }
        })?;
    let desc = CameraDesc {
        id: cam.id().to_owned(),
        model: cam
            .properties()
            .get::<properties::Model>()
            .map(|m| m.0)
            .unwrap_or_default(),
    };
    let mut active = cam
        .acquire()
        .map_err(|e| format!("{}: cannot acquire (in use?): {e}", desc.id))?;
    let mut cfgs = active
        .generate_configuration(&[StreamRole::VideoRecording])
        .ok_or("no configuration for video recording")?;
    {
        let mut s = cfgs.get_mut(0).ok_or("empty configuration")?;
        s.set_pixel_format(NV12);
        s.set_size(Size { width, height });
    }
    if let CameraConfigurationStatus::Invalid = cfgs.validate() {
        return Err(format!(
            "{}: NV12 {width}x{height} is not possible",
            desc.id
        ));
    }
    active
        .configure(&mut cfgs)
        .map_err(|e| format!("configure: {e}"))?;
    let s = cfgs.get(0).ok_or("empty configuration")?;
    let fourcc = s.get_pixel_format().fourcc();
    if fourcc != FOURCC_NV12 && fourcc != FOURCC_I420 {
        return Err(format!(
            "the camera offers {:?}, not NV12 or YU12",
            String::from_utf8_lossy(&fourcc.to_le_bytes())
        ));
    }
    let size = s.get_size();
    let stride = s.get_stride();
    let stream = s.stream().ok_or("no stream after configure")?;
    let mut alloc = FrameBufferAllocator::new(&active);
    let buffers = alloc.alloc(&stream).map_err(|e| format!("buffers: {e}"))?;
    let mut descs = Vec::new();
    let mut fds: Vec<RawFd> = Vec::new();
    let mut layout = None;
    for fb in &buffers {
        let (fd, offsets, len) = buffer_layout(fb)?;
        let l = Layout {
            fourcc,
            width: size.width,
            height: size.height,
            stride,
            chroma_offset: offsets.get(1).copied().unwrap_or(0) as u32,
            v_offset: if fourcc == FOURCC_I420 {
                offsets.get(2).copied().unwrap_or(0) as u32
            } else {
                0
            },
        };
        l.validate().map_err(|e| e.to_string())?;
        if layout.is_some_and(|x| x != l) {
            return Err("buffers with different layouts".into());
        }
        layout = Some(l);
        descs.push(BufferDesc { len });
        fds.push(fd);
    }
    let layout = layout.ok_or("no buffers allocated")?;
    {
        // SAFETY: the descriptors belong to `buffers`, alive until the end.
        let borrowed: Vec<BorrowedFd<'_>> = fds
            .iter()
            .map(|&f| unsafe { BorrowedFd::borrow_raw(f) })
            .collect();
        ch.send(
            &Message::Started {
                camera: desc,
                layout,
                // Asked for with FrameDurationLimits on every request (the
                // shim); libcamera does not say here what the sensor grants.
                fps_milli: fps * 1000,
                buffers: descs,
            },
            &borrowed,
        )
        .map_err(|e| e.to_string())?;
    }
    let known = camera_controls(active.controls());
    ch.send(
        &Message::Controls(known.iter().map(|k| k.info.clone()).collect()),
        &[],
    )
    .map_err(|e| e.to_string())?;
    let infos: Vec<ControlInfo> = known.iter().map(|k| k.info.clone()).collect();
    // What the daemon chose, set on every request from now on.
    let mut values: Vec<(String, ControlValue)> = Vec::new();
    let mut requests = Vec::new();
    for (i, fb) in buffers.into_iter().enumerate() {
        let mut req = active
            .create_request(Some(i as u64))
            .ok_or("cannot create a request")?;
        req.add_buffer(&stream, fb)
            .map_err(|e| format!("request: {e}"))?;
        requests.push(req);
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let done = tx.clone();
    active.on_request_completed(move |req| {
        let _ = done.send(Event::Done(req));
    });
    active.start(None).map_err(|e| format!("start: {e}"))?;
    for req in requests {
        active
            .queue_request(req)
            .map_err(|e| format!("queue: {e}"))?;
    }
    let mut held: Vec<Option<Request>> = Vec::new();
    let result = std::thread::scope(|scope| {
        scope.spawn(move || loop {
            match ch.recv(None) {
                Ok(r) => match r.msg {
                    Message::Release { buffer } => {
                        if tx.send(Event::Release(buffer)).is_err() {
                            return;
                        }
                    }
                    Message::SetControls(list) => {
                        if tx.send(Event::Set(list)).is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = tx.send(Event::Closed(None));
                        return;
                    }
                },
                Err(ProtoError::Closed) => {
                    let _ = tx.send(Event::Closed(None));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Event::Closed(Some(e)));
                    return;
                }
            }
        });
        let r = (|| loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Event::Done(mut req)) => {
                    let i = req.cookie() as usize;
                    if req.status() != RequestStatus::Complete {
                        req.reuse(ReuseFlag::REUSE_BUFFERS);
                        apply(&mut req, &known, &values, frame_us);
                        active
                            .queue_request(req)
                            .map_err(|e| format!("queue: {e}"))?;
                        continue;
                    }
                    let (sequence, pts_us) = req
                        .buffer::<FrameBuffer>(&stream)
                        .and_then(|b| b.metadata())
                        .map(|m| (u64::from(m.sequence()), m.timestamp() / 1000))
                        .unwrap_or((0, 0));
                    if held.len() <= i {
                        held.resize_with(i + 1, || None);
                    }
                    held[i] = Some(req);
                    ch.send(
                        &Message::Frame {
                            buffer: i as u16,
                            sequence,
                            pts_us,
                        },
                        &[],
                    )
                    .map_err(|e| e.to_string())?;
                }
                Ok(Event::Release(b)) => {
                    if let Some(mut req) = held.get_mut(usize::from(b)).and_then(Option::take) {
                        req.reuse(ReuseFlag::REUSE_BUFFERS);
                        apply(&mut req, &known, &values, frame_us);
                        active
                            .queue_request(req)
                            .map_err(|e| format!("queue: {e}"))?;
                    }
                }
                Ok(Event::Set(list)) => {
                    // All or nothing, like the fake: the answer names the
                    // first control that cannot be set.
                    let answer = match check_all(&infos, &list) {
                        Ok(()) => {
                            for (name, v) in list {
                                values.retain(|(n, _)| n != &name);
                                values.push((name, v));
                            }
                            Message::ControlsSet
                        }
                        Err((control, reason)) => Message::ControlsRefused { control, reason },
                    };
                    ch.send(&answer, &[]).map_err(|e| e.to_string())?;
                }
                Ok(Event::Closed(None)) => return Ok(()),
                Ok(Event::Closed(Some(e))) => return Err(e.to_string()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err("the camera delivered nothing for 5 s".to_owned())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        })();
        // Unblocks the reader thread if we are the side that gave up.
        let _ = nix_shutdown(ch);
        r
    });
    let _ = active.stop();
    result
}

fn nix_shutdown(ch: &Channel) -> nix::Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    nix::sys::socket::shutdown(ch.as_fd().as_raw_fd(), nix::sys::socket::Shutdown::Both)
}
