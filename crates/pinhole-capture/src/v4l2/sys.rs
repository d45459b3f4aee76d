//! The slice of the V4L2 kernel ABI (`linux/videodev2.h`) that pinhole uses.
//!
//! Hand-written instead of bindgen so the static aarch64 build needs no
//! libclang; the tests pin every struct size and ioctl number to the values
//! the C header gives on LP64 (x86_64 and aarch64 agree: checked with gcc
//! and aarch64-linux-gnu-gcc).
#![allow(non_camel_case_types, dead_code)]

pub const fn fourcc(s: &[u8; 4]) -> u32 {
    (s[0] as u32) | ((s[1] as u32) << 8) | ((s[2] as u32) << 16) | ((s[3] as u32) << 24)
}

/// Printable form of a fourcc, e.g. `YUYV`.
pub fn fourcc_str(f: u32) -> String {
    f.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_owned()
}

pub const PIX_FMT_H264: u32 = fourcc(b"H264");
pub const PIX_FMT_MJPEG: u32 = fourcc(b"MJPG");
pub const PIX_FMT_JPEG: u32 = fourcc(b"JPEG");
pub const PIX_FMT_YUYV: u32 = fourcc(b"YUYV");
pub const PIX_FMT_NV12: u32 = fourcc(b"NV12");
pub const PIX_FMT_YUV420: u32 = fourcc(b"YU12");

pub const CAP_VIDEO_CAPTURE: u32 = 0x1;
pub const CAP_VIDEO_OUTPUT: u32 = 0x2;
pub const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x1000;
pub const CAP_VIDEO_OUTPUT_MPLANE: u32 = 0x2000;
pub const CAP_VIDEO_M2M_MPLANE: u32 = 0x4000;
pub const CAP_VIDEO_M2M: u32 = 0x8000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;

pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_NONE: u32 = 1;

pub const BUF_FLAG_KEYFRAME: u32 = 0x8;
pub const BUF_FLAG_ERROR: u32 = 0x40;
pub const BUF_FLAG_TIMESTAMP_COPY: u32 = 0x4000;
pub const BUF_FLAG_LAST: u32 = 0x0010_0000;

pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const FRMSIZE_TYPE_STEPWISE: u32 = 3;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

pub const CAP_TIMEPERFRAME: u32 = 0x1000;

pub const ENC_CMD_START: u32 = 0;
pub const ENC_CMD_STOP: u32 = 1;

pub const CTRL_FLAG_DISABLED: u32 = 0x1;
pub const CTRL_FLAG_READ_ONLY: u32 = 0x4;
pub const CTRL_FLAG_INACTIVE: u32 = 0x10;
pub const CTRL_FLAG_WRITE_ONLY: u32 = 0x40;
pub const CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;

pub const CTRL_TYPE_INTEGER: u32 = 1;
pub const CTRL_TYPE_BOOLEAN: u32 = 2;
pub const CTRL_TYPE_MENU: u32 = 3;
pub const CTRL_TYPE_BUTTON: u32 = 4;
pub const CTRL_TYPE_INTEGER64: u32 = 5;
pub const CTRL_TYPE_CTRL_CLASS: u32 = 6;
pub const CTRL_TYPE_INTEGER_MENU: u32 = 9;

pub const CID_BRIGHTNESS: u32 = 0x0098_0900;
pub const CID_HFLIP: u32 = 0x0098_0914;
pub const CID_VFLIP: u32 = 0x0098_0915;
pub const CID_ROTATE: u32 = 0x0098_0922;
pub const CID_MPEG_VIDEO_GOP_SIZE: u32 = 0x0099_09cb;
pub const CID_MPEG_VIDEO_BITRATE_MODE: u32 = 0x0099_09ce;
pub const CID_MPEG_VIDEO_BITRATE: u32 = 0x0099_09cf;
pub const CID_MPEG_VIDEO_HEADER_MODE: u32 = 0x0099_09d8;
pub const CID_MPEG_VIDEO_REPEAT_SEQ_HEADER: u32 = 0x0099_09e2;
pub const CID_MPEG_VIDEO_FORCE_KEY_FRAME: u32 = 0x0099_09e5;
pub const CID_MPEG_VIDEO_H264_I_PERIOD: u32 = 0x0099_0a66;
pub const CID_MPEG_VIDEO_H264_LEVEL: u32 = 0x0099_0a67;
pub const CID_MPEG_VIDEO_H264_PROFILE: u32 = 0x0099_0a6b;

pub const MPEG_VIDEO_BITRATE_MODE_CBR: i64 = 1;
pub const H264_PROFILE_BASELINE: i64 = 0;
pub const H264_PROFILE_CONSTRAINED_BASELINE: i64 = 1;
pub const H264_PROFILE_MAIN: i64 = 2;
pub const H264_PROFILE_HIGH: i64 = 4;

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    /// discrete: [w, h]; stepwise: [min_w, max_w, step_w, min_h, max_h, step_h]
    pub size: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    /// discrete: [num, den]; stepwise: [min n/d, max n/d, step n/d]
    pub ival: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_plane_pix_format {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_pix_format_mplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [v4l2_plane_pix_format; 8],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_format_union {
    pub pix: v4l2_pix_format,
    pub pix_mp: v4l2_pix_format_mplane,
    pub raw_data: [u8; 200],
    /// The kernel union holds pointers (v4l2_window): 8-byte aligned.
    pub _align: [u64; 25],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_union,
}

impl Default for v4l2_format {
    fn default() -> Self {
        v4l2_format {
            type_: 0,
            fmt: v4l2_format_union { _align: [0; 25] },
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_plane_m {
    pub mem_offset: u32,
    pub userptr: u64,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: v4l2_plane_m,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

impl Default for v4l2_plane {
    fn default() -> Self {
        v4l2_plane {
            bytesused: 0,
            length: 0,
            m: v4l2_plane_m { userptr: 0 },
            data_offset: 0,
            reserved: [0; 11],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_buffer_m {
    pub offset: u32,
    pub userptr: u64,
    pub planes: *mut v4l2_plane,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: v4l2_buffer_m,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

impl Default for v4l2_buffer {
    fn default() -> Self {
        v4l2_buffer {
            index: 0,
            type_: 0,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: timeval::default(),
            timecode: v4l2_timecode::default(),
            sequence: 0,
            memory: 0,
            m: v4l2_buffer_m { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_captureparm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: v4l2_fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_streamparm_union {
    /// capture and output parameters share this layout (outputparm has
    /// outputmode/writebuffers in the capturemode/readbuffers slots).
    pub capture: v4l2_captureparm,
    pub raw_data: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_streamparm {
    pub type_: u32,
    pub parm: v4l2_streamparm_union,
}

impl Default for v4l2_streamparm {
    fn default() -> Self {
        v4l2_streamparm {
            type_: 0,
            parm: v4l2_streamparm_union { raw_data: [0; 200] },
        }
    }
}

#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_ext_control {
    pub id: u32,
    pub size: u32,
    pub reserved2: u32,
    /// value / value64 (little-endian: the low half is `value`).
    pub value64: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_ext_controls {
    pub which: u32,
    pub count: u32,
    pub error_idx: u32,
    pub request_fd: i32,
    pub reserved: u32,
    pub controls: *mut v4l2_ext_control,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_queryctrl {
    pub id: u32,
    pub type_: u32,
    pub name: [u8; 32],
    pub minimum: i32,
    pub maximum: i32,
    pub step: i32,
    pub default_value: i32,
    pub flags: u32,
    pub reserved: [u32; 2],
}

#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_querymenu {
    pub id: u32,
    pub index: u32,
    /// `name[32]` for MENU, value (i64, first 8 bytes) for INTEGER_MENU.
    pub name: [u8; 32],
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_encoder_cmd {
    pub cmd: u32,
    pub flags: u32,
    pub data: [u32; 8],
}

nix::ioctl_read!(vidioc_querycap, b'V', 0, v4l2_capability);
nix::ioctl_readwrite!(vidioc_enum_fmt, b'V', 2, v4l2_fmtdesc);
nix::ioctl_readwrite!(vidioc_g_fmt, b'V', 4, v4l2_format);
nix::ioctl_readwrite!(vidioc_s_fmt, b'V', 5, v4l2_format);
nix::ioctl_readwrite!(vidioc_reqbufs, b'V', 8, v4l2_requestbuffers);
nix::ioctl_readwrite!(vidioc_querybuf, b'V', 9, v4l2_buffer);
nix::ioctl_readwrite!(vidioc_qbuf, b'V', 15, v4l2_buffer);
nix::ioctl_readwrite!(vidioc_dqbuf, b'V', 17, v4l2_buffer);
nix::ioctl_write_ptr!(vidioc_streamon, b'V', 18, i32);
nix::ioctl_write_ptr!(vidioc_streamoff, b'V', 19, i32);
nix::ioctl_readwrite!(vidioc_g_parm, b'V', 21, v4l2_streamparm);
nix::ioctl_readwrite!(vidioc_s_parm, b'V', 22, v4l2_streamparm);
nix::ioctl_readwrite!(vidioc_queryctrl, b'V', 36, v4l2_queryctrl);
nix::ioctl_readwrite!(vidioc_querymenu, b'V', 37, v4l2_querymenu);
nix::ioctl_readwrite!(vidioc_g_ext_ctrls, b'V', 71, v4l2_ext_controls);
nix::ioctl_readwrite!(vidioc_s_ext_ctrls, b'V', 72, v4l2_ext_controls);
nix::ioctl_readwrite!(vidioc_enum_framesizes, b'V', 74, v4l2_frmsizeenum);
nix::ioctl_readwrite!(vidioc_enum_frameintervals, b'V', 75, v4l2_frmivalenum);
nix::ioctl_readwrite!(vidioc_encoder_cmd, b'V', 77, v4l2_encoder_cmd);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn struct_sizes_match_the_c_header() {
        assert_eq!(size_of::<v4l2_capability>(), 104);
        assert_eq!(size_of::<v4l2_fmtdesc>(), 64);
        assert_eq!(size_of::<v4l2_frmsizeenum>(), 44);
        assert_eq!(size_of::<v4l2_frmivalenum>(), 52);
        assert_eq!(size_of::<v4l2_format>(), 208);
        assert_eq!(size_of::<v4l2_pix_format>(), 48);
        assert_eq!(size_of::<v4l2_pix_format_mplane>(), 192);
        assert_eq!(size_of::<v4l2_requestbuffers>(), 20);
        assert_eq!(size_of::<v4l2_buffer>(), 88);
        assert_eq!(std::mem::offset_of!(v4l2_buffer, m), 64);
        assert_eq!(std::mem::offset_of!(v4l2_buffer, timestamp), 24);
        assert_eq!(size_of::<v4l2_plane>(), 64);
        assert_eq!(size_of::<v4l2_streamparm>(), 204);
        assert_eq!(size_of::<v4l2_ext_control>(), 20);
        assert_eq!(size_of::<v4l2_ext_controls>(), 32);
        assert_eq!(size_of::<v4l2_queryctrl>(), 68);
        assert_eq!(size_of::<v4l2_querymenu>(), 44);
        assert_eq!(size_of::<v4l2_encoder_cmd>(), 40);
    }

    #[test]
    fn ioctl_numbers_match_the_c_header() {
        use nix::{request_code_read, request_code_readwrite, request_code_write};
        fn code(c: impl Into<u64>) -> u64 {
            c.into()
        }
        let rw = |nr, size| code(request_code_readwrite!(b'V', nr, size));
        assert_eq!(
            code(request_code_read!(b'V', 0, size_of::<v4l2_capability>())),
            0x8068_5600
        );
        assert_eq!(rw(2, size_of::<v4l2_fmtdesc>()), 0xc040_5602);
        assert_eq!(rw(5, size_of::<v4l2_format>()), 0xc0d0_5605);
        assert_eq!(rw(8, size_of::<v4l2_requestbuffers>()), 0xc014_5608);
        assert_eq!(rw(17, size_of::<v4l2_buffer>()), 0xc058_5611);
        assert_eq!(
            code(request_code_write!(b'V', 18, size_of::<i32>())),
            0x4004_5612
        );
        assert_eq!(rw(22, size_of::<v4l2_streamparm>()), 0xc0cc_5616);
        assert_eq!(rw(36, size_of::<v4l2_queryctrl>()), 0xc044_5624);
        assert_eq!(rw(37, size_of::<v4l2_querymenu>()), 0xc02c_5625);
        assert_eq!(rw(72, size_of::<v4l2_ext_controls>()), 0xc020_5648);
        assert_eq!(rw(74, size_of::<v4l2_frmsizeenum>()), 0xc02c_564a);
        assert_eq!(rw(75, size_of::<v4l2_frmivalenum>()), 0xc034_564b);
        assert_eq!(rw(77, size_of::<v4l2_encoder_cmd>()), 0xc028_564d);
    }

    #[test]
    fn fourccs() {
        assert_eq!(PIX_FMT_H264, 0x3436_3248);
        assert_eq!(PIX_FMT_MJPEG, 0x4750_4a4d);
        assert_eq!(PIX_FMT_YUYV, 0x5659_5559);
        assert_eq!(PIX_FMT_NV12, 0x3231_564e);
        assert_eq!(PIX_FMT_YUV420, 0x3231_5559);
        assert_eq!(fourcc_str(PIX_FMT_MJPEG), "MJPG");
    }
}
