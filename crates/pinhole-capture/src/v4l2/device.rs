//! The ioctl boundary: [`Device`] is every V4L2 operation pinhole performs,
//! one method per ioctl, in plain Rust types. [`RealDevice`] (`device/real.rs`)
//! issues them on a `/dev/videoN` file descriptor; tests drive the capture
//! and encoder state machines with scripted fakes instead.

use std::io;

use super::sys::*;

/// What the driver says it is and can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// Capabilities of this device node (device_caps when the driver reports
    /// them, else the whole-device capabilities).
    pub caps: u32,
}

impl Capability {
    pub fn is_capture(&self) -> bool {
        self.caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE) != 0
            && self.caps & (CAP_VIDEO_M2M | CAP_VIDEO_M2M_MPLANE) == 0
            && self.caps & CAP_STREAMING != 0
    }
    pub fn is_m2m_mplane(&self) -> bool {
        self.caps & CAP_VIDEO_M2M_MPLANE != 0 && self.caps & CAP_STREAMING != 0
    }
    /// The buffer type to capture with on this node.
    pub fn capture_type(&self) -> u32 {
        if self.caps & CAP_VIDEO_CAPTURE != 0 {
            BUF_TYPE_VIDEO_CAPTURE
        } else {
            BUF_TYPE_VIDEO_CAPTURE_MPLANE
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FmtDesc {
    pub fourcc: u32,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSize {
    Discrete {
        width: u32,
        height: u32,
    },
    /// Continuous sizes are reported as stepwise with step 1.
    Stepwise {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    },
}

/// A frame interval as a fraction of a second (num/den), or a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameInterval {
    Discrete { num: u32, den: u32 },
    Stepwise { min: (u32, u32), max: (u32, u32) },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PlaneFormat {
    pub bytesperline: u32,
    pub sizeimage: u32,
}

/// `v4l2_format` for single- and multi-planar buffer types alike.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Format {
    pub buf_type: u32,
    pub width: u32,
    pub height: u32,
    pub fourcc: u32,
    /// One entry for single-planar types (and for contiguous multi-planar
    /// formats such as NV12 or YU12).
    pub planes: Vec<PlaneFormat>,
}

/// A buffer handed back by the driver.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Dequeued {
    pub index: u32,
    pub flags: u32,
    /// Bytes used in each plane.
    pub bytesused: Vec<u32>,
    pub timestamp_us: u64,
    pub sequence: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ready {
    /// A capture buffer can be dequeued.
    pub readable: bool,
    /// An output buffer can be dequeued (M2M).
    pub writable: bool,
    /// The device reported an error (unplugged, not streaming, driver fault).
    pub error: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtrlInfo {
    pub id: u32,
    pub kind: u32,
    pub name: String,
    pub minimum: i64,
    pub maximum: i64,
    pub step: i64,
    pub default: i64,
    pub flags: u32,
}

/// Every V4L2 operation pinhole uses. Errors are the driver's errno as
/// `io::Error`; "end of enumeration" (EINVAL) is `Ok(None)`.
pub trait Device: Send {
    fn querycap(&mut self) -> io::Result<Capability>;
    fn enum_fmt(&mut self, buf_type: u32, index: u32) -> io::Result<Option<FmtDesc>>;
    fn enum_framesizes(&mut self, fourcc: u32, index: u32) -> io::Result<Option<FrameSize>>;
    fn enum_frameintervals(
        &mut self,
        fourcc: u32,
        width: u32,
        height: u32,
        index: u32,
    ) -> io::Result<Option<FrameInterval>>;
    fn g_fmt(&mut self, buf_type: u32) -> io::Result<Format>;
    /// VIDIOC_S_FMT; returns what the driver actually set.
    fn s_fmt(&mut self, fmt: &Format) -> io::Result<Format>;
    /// VIDIOC_S_PARM time-per-frame; `None` if the driver cannot set it.
    fn s_frame_interval(
        &mut self,
        buf_type: u32,
        num: u32,
        den: u32,
    ) -> io::Result<Option<(u32, u32)>>;
    /// VIDIOC_REQBUFS with MMAP memory, then maps every buffer (count 0
    /// unmaps and frees). Returns the count the driver granted.
    fn reqbufs(&mut self, buf_type: u32, count: u32) -> io::Result<u32>;
    fn qbuf(
        &mut self,
        buf_type: u32,
        index: u32,
        bytesused: &[u32],
        timestamp_us: u64,
    ) -> io::Result<()>;
    /// `ErrorKind::WouldBlock` when nothing is ready; EPIPE after the last
    /// buffer of a drained encoder.
    fn dqbuf(&mut self, buf_type: u32) -> io::Result<Dequeued>;
    /// The mapped memory of one plane (empty if there is no such buffer).
    fn buffer(&self, buf_type: u32, index: u32, plane: usize) -> &[u8];
    fn buffer_mut(&mut self, buf_type: u32, index: u32, plane: usize) -> &mut [u8];
    fn streamon(&mut self, buf_type: u32) -> io::Result<()>;
    fn streamoff(&mut self, buf_type: u32) -> io::Result<()>;
    fn poll(&mut self, timeout_ms: i32) -> io::Result<Ready>;
    /// VIDIOC_QUERYCTRL; pass `id | CTRL_FLAG_NEXT_CTRL` to enumerate.
    fn queryctrl(&mut self, id: u32) -> io::Result<Option<CtrlInfo>>;
    /// VIDIOC_QUERYMENU: the item's name (MENU) or value (INTEGER_MENU).
    fn querymenu(&mut self, id: u32, index: u32) -> io::Result<Option<String>>;
    fn get_ctrl(&mut self, id: u32) -> io::Result<i64>;
    fn set_ctrl(&mut self, id: u32, value: i64) -> io::Result<()>;
    fn encoder_cmd(&mut self, cmd: u32) -> io::Result<()>;
}

mod real;
pub use real::RealDevice;

/// Every format, size and frame rate a capture node offers.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FormatCaps {
    pub fourcc: u32,
    pub description: String,
    pub sizes: Vec<SizeCaps>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SizeCaps {
    pub size: FrameSize,
    /// Frame intervals at this size (for stepwise sizes: at the largest).
    pub intervals: Vec<FrameInterval>,
}

/// Enumerate formats → sizes → intervals (bounded, so a buggy driver that
/// never says EINVAL cannot loop us forever).
pub fn enumerate_formats(dev: &mut dyn Device, buf_type: u32) -> io::Result<Vec<FormatCaps>> {
    const LIMIT: u32 = 256;
    let mut out = Vec::new();
    for i in 0..LIMIT {
        let Some(desc) = dev.enum_fmt(buf_type, i)? else {
            break;
        };
        let mut sizes = Vec::new();
        for j in 0..LIMIT {
            // Some drivers (no ENUM_FRAMESIZES) answer ENOTTY: no sizes known.
            let size = match dev.enum_framesizes(desc.fourcc, j) {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOTTY) => break,
                Err(e) => return Err(e),
            };
            let (w, h) = match size {
                FrameSize::Discrete { width, height } => (width, height),
                FrameSize::Stepwise {
                    max_width,
                    max_height,
                    ..
                } => (max_width, max_height),
            };
            let mut intervals = Vec::new();
            for k in 0..LIMIT {
                match dev.enum_frameintervals(desc.fourcc, w, h, k) {
                    Ok(Some(iv)) => {
                        let stepwise = matches!(iv, FrameInterval::Stepwise { .. });
                        intervals.push(iv);
                        if stepwise {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOTTY) => break,
                    Err(e) => return Err(e),
                }
            }
            let stepwise = matches!(size, FrameSize::Stepwise { .. });
            sizes.push(SizeCaps { size, intervals });
            if stepwise {
                break;
            }
        }
        out.push(FormatCaps {
            fourcc: desc.fourcc,
            description: desc.description,
            sizes,
        });
    }
    Ok(out)
}

/// Every control the device offers (enumerated with NEXT_CTRL), class
/// headers and disabled ones left out.
pub fn enumerate_controls(dev: &mut dyn Device) -> io::Result<Vec<CtrlInfo>> {
    let mut out = Vec::new();
    let mut id = 0u32;
    for _ in 0..1024 {
        let Some(c) = dev.queryctrl(id | CTRL_FLAG_NEXT_CTRL)? else {
            break;
        };
        if c.id <= id && id != 0 {
            break; // a driver that does not advance: stop rather than spin
        }
        id = c.id;
        if c.kind == CTRL_TYPE_CTRL_CLASS || c.flags & CTRL_FLAG_DISABLED != 0 {
            continue;
        }
        out.push(c);
    }
    Ok(out)
}
