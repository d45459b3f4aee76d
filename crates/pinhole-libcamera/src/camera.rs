//! The real camera side, through the `libcamera` crate (0.2.3 ↔ libcamera
//! 0.0.3 on Debian bookworm). Compiled only with the `libcamera` feature.
//!
//! Unverified without a libcamera camera (docs/cameras.md): the buffer
//! layout the Pi ISP gives (one dmabuf per buffer, planes at offsets),
//! the frame rate (0.2.3 cannot set FrameDurationLimits, so the sensor
//! mode's default rate is what arrives).

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
use pinhole_camera_proto::{
    BufferDesc, CameraDesc, Channel, Layout, Message, ProtoError, FOURCC_I420, FOURCC_NV12,
    PROTOCOL_VERSION,
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
    let (camera, width, height) = match ch.recv(None).map_err(|e| e.to_string())?.msg {
        Message::ListCameras => {
            return ch
                .send(&Message::Cameras(describe(&mgr)), &[])
                .map_err(|e| e.to_string())
        }
        Message::Start {
            camera,
            width,
            height,
            ..
        } => (camera, width, height),
        other => {
            return Err(format!(
                "expected ListCameras or Start, got {}",
                other.name()
            ))
        }
    };
    let result = stream(ch, &mgr, &camera, width, height);
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
    Closed(Option<ProtoError>),
}

fn stream(
    ch: &Channel,
    mgr: &CameraManager,
    id: &str,
    width: u32,
    height: u32,
) -> Result<(), String> {
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
                // 0.2.3 cannot set the frame duration; 30 is the usual default.
                fps_milli: 30_000,
                buffers: descs,
            },
            &borrowed,
        )
        .map_err(|e| e.to_string())?;
    }
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
                        active
                            .queue_request(req)
                            .map_err(|e| format!("queue: {e}"))?;
                    }
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
