//! A camera helper without a camera: the same protocol as
//! `pinhole-libcamera`, with synthetic NV12 pictures in sealed memfds.
//! Used by tests (pinholed's libcamera integration test) and by
//! `pinhole-libcamera --fake` to try the daemon side on any machine.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

use crate::control::{check_all, ControlInfo, ControlValue};
use crate::msg::{BufferDesc, CameraDesc, Layout, Message, FOURCC_NV12, PROTOCOL_VERSION};
use crate::wire::{Channel, Ownership};
use crate::ProtoError;

const BUFFERS: usize = 4;

#[derive(Clone, Debug)]
pub struct FakeOptions {
    pub cameras: Vec<CameraDesc>,
    /// Announced after `Started`; `Brightness` (a float) shifts the luma
    /// of every picture by `Brightness × 100`, so tests can see a set
    /// value reach the camera side.
    pub controls: Vec<ControlInfo>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            cameras: vec![CameraDesc {
                id: "fake/0".into(),
                model: "fake-imx708".into(),
            }],
            controls: fake_controls(),
        }
    }
}

/// A few controls shaped like the Raspberry Pi IPA's.
pub fn fake_controls() -> Vec<ControlInfo> {
    use ControlValue::{Bool, Float, Int};
    let c = |name: &str, min, max, default| ControlInfo {
        name: name.into(),
        min,
        max,
        default,
    };
    vec![
        c("AeEnable", Bool(false), Bool(true), Bool(true)),
        c("Brightness", Float(-1.0), Float(1.0), Float(0.0)),
        c("Contrast", Float(0.0), Float(32.0), Float(1.0)),
        c("ExposureTime", Int(100), Int(66_666), Int(20_000)),
    ]
}

/// The luma offset a `Brightness` value gives in the fake's pictures.
pub fn brightness_offset(values: &[(String, ControlValue)]) -> i32 {
    values
        .iter()
        .rev()
        .find_map(|(n, v)| match (n.as_str(), v) {
            ("Brightness", ControlValue::Float(b)) => Some((b * 100.0).round() as i32),
            _ => None,
        })
        .unwrap_or(0)
}

/// A memfd mapped writable in the helper.
struct FakeBuffer {
    fd: OwnedFd,
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

impl FakeBuffer {
    fn new(len: usize) -> Result<FakeBuffer, ProtoError> {
        let nz = NonZeroUsize::new(len).ok_or(ProtoError::BadLayout("empty buffer".into()))?;
        let fd = memfd_create(
            c"pinhole-fake-frame",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| ProtoError::io("memfd_create", e))?;
        nix::unistd::ftruncate(&fd, len as i64).map_err(|e| ProtoError::io("ftruncate", e))?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
        )
        .map_err(|e| ProtoError::io("sealing a memfd", e))?;
        // SAFETY: a fresh shared mapping of a memfd of exactly `len` bytes.
        let ptr = unsafe {
            mmap(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| ProtoError::io("mmap", e))?;
        Ok(FakeBuffer { fd, ptr, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` writable bytes while self lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for FakeBuffer {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// A layout with a padded stride and padded rows, like an ISP's.
pub fn fake_layout(width: u32, height: u32) -> Layout {
    let (w, h) = (width.max(2) & !1, height.max(2) & !1);
    let stride = w.div_ceil(64) * 64;
    Layout {
        fourcc: FOURCC_NV12,
        width: w,
        height: h,
        stride,
        chroma_offset: stride * h.div_ceil(16) * 16,
        v_offset: 0,
    }
}

/// Draws picture `n`: a diagonal gradient moving right, a bright bar
/// moving down, chroma that cycles; luma shifted by `offset` (clamped).
pub fn draw(layout: &Layout, n: u64, offset: i32, buf: &mut [u8]) {
    let (w, h, s) = (
        layout.width as usize,
        layout.height as usize,
        layout.stride as usize,
    );
    let shift = (n * 4) as usize;
    let bar = (n as usize * 2) % h.max(1);
    for y in 0..h {
        let row = &mut buf[y * s..y * s + w];
        for (x, px) in row.iter_mut().enumerate() {
            let luma = if y.abs_diff(bar) < 8 {
                235
            } else {
                16 + (x + y + shift) as i32 % 200
            };
            *px = (luma + offset).clamp(0, 255) as u8;
        }
    }
    let c0 = layout.chroma_offset as usize;
    let (u, v) = ((n % 64) as u8 + 96, 160 - (n % 64) as u8);
    for y in 0..h / 2 {
        for pair in buf[c0 + y * s..c0 + y * s + w].chunks_exact_mut(2) {
            pair[0] = u;
            pair[1] = v;
        }
    }
}

/// Serves one session on `ch` until the daemon closes it.
pub fn serve(ch: &Channel, opts: &FakeOptions) -> Result<(), ProtoError> {
    ch.send(
        &Message::Hello {
            version: PROTOCOL_VERSION,
            software: format!("pinhole fake camera helper {}", env!("CARGO_PKG_VERSION")),
        },
        &[],
    )?;
    let (camera, width, height, fps) = match ch.recv(None)?.msg {
        Message::ListCameras => {
            return ch.send(&Message::Cameras(opts.cameras.clone()), &[]);
        }
        Message::Start {
            camera,
            width,
            height,
            fps,
        } => (camera, width, height, fps),
        other => {
            return Err(ProtoError::Unexpected {
                expected: "ListCameras or Start",
                got: other.name(),
            })
        }
    };
    let Some(cam) = opts
        .cameras
        .iter()
        .find(|c| camera.is_empty() || c.id == camera)
        .cloned()
    else {
        let text = format!("no camera {camera:?}");
        ch.send(&Message::Error(text.clone()), &[])?;
        return Err(ProtoError::BadLayout(text));
    };
    let layout = fake_layout(width.min(4096), height.min(4096));
    let len = layout.frame_len() as usize;
    let mut buffers = (0..BUFFERS)
        .map(|_| FakeBuffer::new(len))
        .collect::<Result<Vec<_>, _>>()?;
    let fds: Vec<BorrowedFd<'_>> = buffers.iter().map(|b| b.fd.as_fd()).collect();
    let fps = fps.clamp(1, 120);
    ch.send(
        &Message::Started {
            camera: cam,
            layout,
            fps_milli: fps * 1000,
            buffers: vec![BufferDesc { len: len as u64 }; BUFFERS],
        },
        &fds,
    )?;
    drop(fds);
    ch.send(&Message::Controls(opts.controls.clone()), &[])?;
    // What SetControls chose, in the order set (later entries win).
    let mut values: Vec<(String, ControlValue)> = Vec::new();
    let start = Instant::now();
    let interval = Duration::from_micros(1_000_000 / u64::from(fps));
    let mut owned = Ownership::new(BUFFERS);
    let mut sequence = 0u64;
    let mut next = start;
    loop {
        // Collect releases until the next frame is due.
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            let wait = (next - now).as_millis().clamp(1, 1000) as u32;
            if !ch.wait_readable(wait)? {
                continue;
            }
            match ch.recv(Some(0)) {
                Ok(r) => match r.msg {
                    Message::Release { buffer } => {
                        owned.release(buffer);
                    }
                    Message::SetControls(set) => {
                        let answer = match check_all(&opts.controls, &set) {
                            Ok(()) => {
                                values.extend(set);
                                Message::ControlsSet
                            }
                            Err((control, reason)) => Message::ControlsRefused { control, reason },
                        };
                        ch.send(&answer, &[])?;
                    }
                    other => {
                        return Err(ProtoError::Unexpected {
                            expected: "Release or SetControls",
                            got: other.name(),
                        })
                    }
                },
                Err(ProtoError::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        next += interval;
        // The daemon holds every buffer: drop this picture, like a camera.
        let Some(b) = owned.free() else { continue };
        draw(
            &layout,
            sequence,
            brightness_offset(&values),
            buffers[usize::from(b)].bytes(),
        );
        owned.take(b)?;
        let pts_us = start.elapsed().as_micros() as u64;
        match ch.send(
            &Message::Frame {
                buffer: b,
                sequence,
                pts_us,
            },
            &[],
        ) {
            Ok(()) => {}
            Err(ProtoError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
        sequence += 1;
    }
}
