//! [`Device`] on a real `/dev/videoN`: one ioctl per method, buffers
//! mapped with mmap, and the raw `v4l2_format` conversions.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::*;

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn is_mplane(buf_type: u32) -> bool {
    buf_type == BUF_TYPE_VIDEO_CAPTURE_MPLANE || buf_type == BUF_TYPE_VIDEO_OUTPUT_MPLANE
}

/// EINVAL ends an enumeration; anything else is a real error.
fn end_on_einval<T>(r: nix::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(nix::errno::Errno::EINVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One mmap'ed plane, unmapped on drop.
struct Mapping {
    ptr: NonNull<std::ffi::c_void>,
    len: usize,
}

// The mapping is plain memory owned by this value; only one thread uses it.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe {
            let _ = nix::sys::mman::munmap(self.ptr, self.len);
        }
    }
}

impl Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is valid for `len` bytes while self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
}

/// A V4L2 device node, opened non-blocking (waits go through `poll`, so a
/// stalled driver is noticed instead of hanging the thread).
pub struct RealDevice {
    file: File,
    path: PathBuf,
    /// buf_type → buffers → planes.
    maps: HashMap<u32, Vec<Vec<Mapping>>>,
}

impl RealDevice {
    pub fn open(path: &Path) -> io::Result<RealDevice> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)?;
        Ok(RealDevice {
            file,
            path: path.to_owned(),
            maps: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    fn map_buffers(&mut self, buf_type: u32, count: u32) -> io::Result<()> {
        let mut bufs = Vec::with_capacity(count as usize);
        for index in 0..count {
            let mut planes = [v4l2_plane::default(); 8];
            let mut b = v4l2_buffer {
                index,
                type_: buf_type,
                memory: MEMORY_MMAP,
                ..Default::default()
            };
            if is_mplane(buf_type) {
                b.length = planes.len() as u32;
                b.m.planes = planes.as_mut_ptr();
            }
            // SAFETY: b (and planes, which outlives the call) are valid.
            unsafe { vidioc_querybuf(self.fd(), &mut b) }?;
            let mut regions = Vec::new();
            if is_mplane(buf_type) {
                for p in planes.iter().take(b.length.min(8) as usize) {
                    // SAFETY: the driver filled mem_offset for MMAP buffers.
                    regions.push((p.length, unsafe { p.m.mem_offset }));
                }
            } else {
                // SAFETY: as above, for the single-planar union member.
                regions.push((b.length, unsafe { b.m.offset }));
            }
            let mut maps = Vec::new();
            for (len, offset) in regions {
                let Some(nz) = std::num::NonZeroUsize::new(len as usize) else {
                    return Err(io::Error::other("driver reported a zero-length buffer"));
                };
                use nix::sys::mman::{mmap, MapFlags, ProtFlags};
                // SAFETY: mapping a driver buffer at the offset it gave us.
                let ptr = unsafe {
                    mmap(
                        None,
                        nz,
                        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                        MapFlags::MAP_SHARED,
                        self.file.as_fd(),
                        i64::from(offset),
                    )
                }?;
                maps.push(Mapping {
                    ptr,
                    len: len as usize,
                });
            }
            bufs.push(maps);
        }
        self.maps.insert(buf_type, bufs);
        Ok(())
    }
}

impl Device for RealDevice {
    fn querycap(&mut self) -> io::Result<Capability> {
        let mut c = v4l2_capability::default();
        // SAFETY: c is a valid v4l2_capability.
        unsafe { vidioc_querycap(self.fd(), &mut c) }?;
        let caps = if c.capabilities & CAP_DEVICE_CAPS != 0 {
            c.device_caps
        } else {
            c.capabilities
        };
        Ok(Capability {
            driver: cstr(&c.driver),
            card: cstr(&c.card),
            bus_info: cstr(&c.bus_info),
            caps,
        })
    }

    fn enum_fmt(&mut self, buf_type: u32, index: u32) -> io::Result<Option<FmtDesc>> {
        let mut d = v4l2_fmtdesc {
            index,
            type_: buf_type,
            ..Default::default()
        };
        // SAFETY: d is valid.
        Ok(
            end_on_einval(unsafe { vidioc_enum_fmt(self.fd(), &mut d) })?.map(|_| FmtDesc {
                fourcc: d.pixelformat,
                description: cstr(&d.description),
            }),
        )
    }

    fn enum_framesizes(&mut self, fourcc: u32, index: u32) -> io::Result<Option<FrameSize>> {
        let mut s = v4l2_frmsizeenum {
            index,
            pixel_format: fourcc,
            ..Default::default()
        };
        // SAFETY: s is valid.
        if end_on_einval(unsafe { vidioc_enum_framesizes(self.fd(), &mut s) })?.is_none() {
            return Ok(None);
        }
        let z = s.size;
        Ok(Some(match s.type_ {
            FRMSIZE_TYPE_DISCRETE => FrameSize::Discrete {
                width: z[0],
                height: z[1],
            },
            t => FrameSize::Stepwise {
                min_width: z[0],
                max_width: z[1],
                step_width: if t == FRMSIZE_TYPE_CONTINUOUS {
                    1
                } else {
                    z[2].max(1)
                },
                min_height: z[3],
                max_height: z[4],
                step_height: if t == FRMSIZE_TYPE_CONTINUOUS {
                    1
                } else {
                    z[5].max(1)
                },
            },
        }))
    }

    fn enum_frameintervals(
        &mut self,
        fourcc: u32,
        width: u32,
        height: u32,
        index: u32,
    ) -> io::Result<Option<FrameInterval>> {
        let mut f = v4l2_frmivalenum {
            index,
            pixel_format: fourcc,
            width,
            height,
            ..Default::default()
        };
        // SAFETY: f is valid.
        if end_on_einval(unsafe { vidioc_enum_frameintervals(self.fd(), &mut f) })?.is_none() {
            return Ok(None);
        }
        let v = f.ival;
        Ok(Some(if f.type_ == FRMIVAL_TYPE_DISCRETE {
            FrameInterval::Discrete {
                num: v[0],
                den: v[1],
            }
        } else {
            FrameInterval::Stepwise {
                min: (v[0], v[1]),
                max: (v[2], v[3]),
            }
        }))
    }

    fn g_fmt(&mut self, buf_type: u32) -> io::Result<Format> {
        let mut f = v4l2_format {
            type_: buf_type,
            ..Default::default()
        };
        // SAFETY: f is valid.
        unsafe { vidioc_g_fmt(self.fd(), &mut f) }?;
        Ok(from_raw_format(&f))
    }

    fn s_fmt(&mut self, fmt: &Format) -> io::Result<Format> {
        let mut f = to_raw_format(fmt);
        // SAFETY: f is valid.
        unsafe { vidioc_s_fmt(self.fd(), &mut f) }?;
        Ok(from_raw_format(&f))
    }

    fn s_frame_interval(
        &mut self,
        buf_type: u32,
        num: u32,
        den: u32,
    ) -> io::Result<Option<(u32, u32)>> {
        let mut p = v4l2_streamparm {
            type_: buf_type,
            ..Default::default()
        };
        p.parm.capture = v4l2_captureparm {
            timeperframe: v4l2_fract {
                numerator: num,
                denominator: den,
            },
            ..Default::default()
        };
        // SAFETY: p is valid.
        match unsafe { vidioc_s_parm(self.fd(), &mut p) } {
            Ok(_) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOTTY) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // SAFETY: the driver filled the capture member.
        let c = unsafe { p.parm.capture };
        if c.capability & CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        Ok(Some((c.timeperframe.numerator, c.timeperframe.denominator)))
    }

    fn reqbufs(&mut self, buf_type: u32, count: u32) -> io::Result<u32> {
        // Unmap before freeing: the driver refuses to free mapped buffers.
        self.maps.remove(&buf_type);
        let mut r = v4l2_requestbuffers {
            count,
            type_: buf_type,
            memory: MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: r is valid.
        unsafe { vidioc_reqbufs(self.fd(), &mut r) }?;
        if r.count > 0 {
            self.map_buffers(buf_type, r.count)?;
        }
        Ok(r.count)
    }

    fn qbuf(
        &mut self,
        buf_type: u32,
        index: u32,
        bytesused: &[u32],
        timestamp_us: u64,
    ) -> io::Result<()> {
        let lens: Vec<u32> = self
            .maps
            .get(&buf_type)
            .and_then(|b| b.get(index as usize))
            .map(|p| p.iter().map(|m| m.len as u32).collect())
            .unwrap_or_default();
        let mut planes = [v4l2_plane::default(); 8];
        let mut b = v4l2_buffer {
            index,
            type_: buf_type,
            memory: MEMORY_MMAP,
            field: FIELD_NONE,
            timestamp: timeval {
                tv_sec: (timestamp_us / 1_000_000) as i64,
                tv_usec: (timestamp_us % 1_000_000) as i64,
            },
            ..Default::default()
        };
        if is_mplane(buf_type) {
            for (i, p) in planes.iter_mut().enumerate().take(lens.len()) {
                p.bytesused = bytesused.get(i).copied().unwrap_or(0);
                p.length = lens[i];
            }
            b.length = lens.len().clamp(1, 8) as u32;
            b.m.planes = planes.as_mut_ptr();
        } else {
            b.bytesused = bytesused.first().copied().unwrap_or(0);
            b.length = lens.first().copied().unwrap_or(0);
        }
        // SAFETY: b and planes are valid for the call.
        unsafe { vidioc_qbuf(self.fd(), &mut b) }?;
        Ok(())
    }

    fn dqbuf(&mut self, buf_type: u32) -> io::Result<Dequeued> {
        let mut planes = [v4l2_plane::default(); 8];
        let mut b = v4l2_buffer {
            type_: buf_type,
            memory: MEMORY_MMAP,
            ..Default::default()
        };
        if is_mplane(buf_type) {
            b.length = planes.len() as u32;
            b.m.planes = planes.as_mut_ptr();
        }
        // SAFETY: b and planes are valid for the call.
        unsafe { vidioc_dqbuf(self.fd(), &mut b) }?;
        let bytesused = if is_mplane(buf_type) {
            planes
                .iter()
                .take(b.length.min(8) as usize)
                .map(|p| p.bytesused.saturating_sub(p.data_offset))
                .collect()
        } else {
            vec![b.bytesused]
        };
        Ok(Dequeued {
            index: b.index,
            flags: b.flags,
            bytesused,
            timestamp_us: (b.timestamp.tv_sec.max(0) as u64) * 1_000_000
                + b.timestamp.tv_usec.max(0) as u64,
            sequence: b.sequence,
        })
    }

    fn buffer(&self, buf_type: u32, index: u32, plane: usize) -> &[u8] {
        self.maps
            .get(&buf_type)
            .and_then(|b| b.get(index as usize))
            .and_then(|p| p.get(plane))
            .map_or(&[], |m| m.bytes())
    }

    fn buffer_mut(&mut self, buf_type: u32, index: u32, plane: usize) -> &mut [u8] {
        self.maps
            .get_mut(&buf_type)
            .and_then(|b| b.get_mut(index as usize))
            .and_then(|p| p.get_mut(plane))
            .map_or(&mut [], |m| m.bytes_mut())
    }

    fn streamon(&mut self, buf_type: u32) -> io::Result<()> {
        let t = buf_type as i32;
        // SAFETY: t is a valid int.
        unsafe { vidioc_streamon(self.fd(), &t) }?;
        Ok(())
    }

    fn streamoff(&mut self, buf_type: u32) -> io::Result<()> {
        let t = buf_type as i32;
        // SAFETY: t is a valid int.
        unsafe { vidioc_streamoff(self.fd(), &t) }?;
        Ok(())
    }

    fn poll(&mut self, timeout_ms: i32) -> io::Result<Ready> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(
            self.file.as_fd(),
            PollFlags::POLLIN | PollFlags::POLLOUT | PollFlags::POLLPRI,
        )];
        let timeout = PollTimeout::try_from(timeout_ms.max(0)).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Ready::default()),
            Err(e) => return Err(e.into()),
        }
        let r = fds[0].revents().unwrap_or(PollFlags::empty());
        Ok(Ready {
            readable: r.contains(PollFlags::POLLIN),
            writable: r.contains(PollFlags::POLLOUT),
            error: r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL),
        })
    }

    fn queryctrl(&mut self, id: u32) -> io::Result<Option<CtrlInfo>> {
        let mut q = v4l2_queryctrl {
            id,
            ..Default::default()
        };
        // SAFETY: q is valid.
        if end_on_einval(unsafe { vidioc_queryctrl(self.fd(), &mut q) })?.is_none() {
            return Ok(None);
        }
        Ok(Some(CtrlInfo {
            id: q.id,
            kind: q.type_,
            name: cstr(&q.name),
            minimum: i64::from(q.minimum),
            maximum: i64::from(q.maximum),
            step: i64::from(q.step),
            default: i64::from(q.default_value),
            flags: q.flags,
        }))
    }

    fn querymenu(&mut self, id: u32, index: u32) -> io::Result<Option<String>> {
        let mut m = v4l2_querymenu {
            id,
            index,
            ..Default::default()
        };
        // SAFETY: m is valid.
        if end_on_einval(unsafe { vidioc_querymenu(self.fd(), &mut m) })?.is_none() {
            return Ok(None);
        }
        Ok(Some(cstr(&m.name)))
    }

    fn get_ctrl(&mut self, id: u32) -> io::Result<i64> {
        let mut c = v4l2_ext_control {
            id,
            ..Default::default()
        };
        let mut cs = v4l2_ext_controls {
            which: 0,
            count: 1,
            error_idx: 0,
            request_fd: 0,
            reserved: 0,
            controls: &mut c,
        };
        // SAFETY: cs points at one valid control for the call.
        unsafe { vidioc_g_ext_ctrls(self.fd(), &mut cs) }?;
        // The driver fills only the 32-bit `value` for every type but
        // INTEGER64: sign-extend it, or hue -10 reads as 4294967286.
        let wide = matches!(self.queryctrl(id), Ok(Some(q)) if q.kind == CTRL_TYPE_INTEGER64);
        Ok(if wide {
            c.value64
        } else {
            i64::from(c.value64 as i32)
        })
    }

    fn set_ctrl(&mut self, id: u32, value: i64) -> io::Result<()> {
        let mut c = v4l2_ext_control {
            id,
            size: 0,
            reserved2: 0,
            value64: value,
        };
        let mut cs = v4l2_ext_controls {
            which: 0,
            count: 1,
            error_idx: 0,
            request_fd: 0,
            reserved: 0,
            controls: &mut c,
        };
        // SAFETY: cs points at one valid control for the call.
        unsafe { vidioc_s_ext_ctrls(self.fd(), &mut cs) }?;
        Ok(())
    }

    fn encoder_cmd(&mut self, cmd: u32) -> io::Result<()> {
        let mut c = v4l2_encoder_cmd {
            cmd,
            ..Default::default()
        };
        // SAFETY: c is valid.
        unsafe { vidioc_encoder_cmd(self.fd(), &mut c) }?;
        Ok(())
    }
}

fn to_raw_format(fmt: &Format) -> v4l2_format {
    let mut f = v4l2_format {
        type_: fmt.buf_type,
        ..Default::default()
    };
    let p0 = fmt.planes.first().copied().unwrap_or_default();
    if is_mplane(fmt.buf_type) {
        let mut mp = v4l2_pix_format_mplane {
            width: fmt.width,
            height: fmt.height,
            pixelformat: fmt.fourcc,
            field: FIELD_NONE,
            num_planes: fmt.planes.len().clamp(1, 8) as u8,
            ..Default::default()
        };
        for (i, p) in fmt.planes.iter().take(8).enumerate() {
            mp.plane_fmt[i].bytesperline = p.bytesperline;
            mp.plane_fmt[i].sizeimage = p.sizeimage;
        }
        f.fmt.pix_mp = mp;
    } else {
        f.fmt.pix = v4l2_pix_format {
            width: fmt.width,
            height: fmt.height,
            pixelformat: fmt.fourcc,
            field: FIELD_NONE,
            bytesperline: p0.bytesperline,
            sizeimage: p0.sizeimage,
            ..Default::default()
        };
    }
    f
}

fn from_raw_format(f: &v4l2_format) -> Format {
    if is_mplane(f.type_) {
        // SAFETY: the multi-planar member is the active one for this type.
        let mp = unsafe { f.fmt.pix_mp };
        let n = usize::from(mp.num_planes).clamp(1, 8);
        let plane_fmt = mp.plane_fmt;
        Format {
            buf_type: f.type_,
            width: mp.width,
            height: mp.height,
            fourcc: mp.pixelformat,
            planes: plane_fmt[..n]
                .iter()
                .map(|p| PlaneFormat {
                    bytesperline: p.bytesperline,
                    sizeimage: p.sizeimage,
                })
                .collect(),
        }
    } else {
        // SAFETY: the single-planar member is the active one for this type.
        let p = unsafe { f.fmt.pix };
        Format {
            buf_type: f.type_,
            width: p.width,
            height: p.height,
            fourcc: p.pixelformat,
            planes: vec![PlaneFormat {
                bytesperline: p.bytesperline,
                sizeimage: p.sizeimage,
            }],
        }
    }
}
