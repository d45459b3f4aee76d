//! The messages and their byte layout. Pure: no sockets, no descriptors —
//! a message says how many descriptors travel with it and [`decode`]
//! checks that count against what arrived.
//!
//! Every datagram is one message (SOCK_SEQPACKET keeps the boundaries):
//!
//! ```text
//! magic "PHC1" | kind u16 | reserved u16 (0) | payload length u32 | payload
//! ```
//! little-endian; strings are u16 length + UTF-8; lists are u16 count +
//! items. Every length and count is bounded, so a hostile peer cannot make
//! the reader allocate more than [`MAX_MESSAGE`] bytes.

use crate::control::{ControlInfo, ControlValue, MAX_CONTROLS, MAX_CONTROL_NAME};
use crate::ProtoError;

/// Bumped on any incompatible change; both sides must agree exactly.
/// 2: camera controls (`Controls`, `SetControls`, `ControlsSet`,
/// `ControlsRefused`).
pub const PROTOCOL_VERSION: u16 = 2;
pub const MAGIC: [u8; 4] = *b"PHC1";
pub const HEADER_LEN: usize = 12;
/// Largest datagram either side sends or accepts.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Most buffers a helper may announce (libcamera allocates 4–8).
pub const MAX_BUFFERS: usize = 16;
const MAX_STRING: usize = 512;
const MAX_CAMERAS: usize = 32;
/// Largest picture side accepted, and the largest buffer (64 MiB).
pub const MAX_SIDE: u32 = 8192;
pub const MAX_BUFFER_LEN: u64 = 64 << 20;

/// `V4L2_PIX_FMT_NV12` / `V4L2_PIX_FMT_YUV420` fourccs (libcamera uses
/// the DRM ones, which have the same 4:2:0 layouts).
pub const FOURCC_NV12: u32 = u32::from_le_bytes(*b"NV12");
pub const FOURCC_I420: u32 = u32::from_le_bytes(*b"YU12");

/// A camera the helper can open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraDesc {
    /// libcamera's id, e.g. `/base/soc/i2c0mux/i2c@1/imx708@1a`.
    pub id: String,
    /// Sensor model, e.g. `imx708`.
    pub model: String,
}

/// How pictures lie in every buffer of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// [`FOURCC_NV12`] or [`FOURCC_I420`].
    pub fourcc: u32,
    pub width: u32,
    pub height: u32,
    /// Bytes per luma row (chroma rows: the same for NV12, half for I420).
    pub stride: u32,
    /// Where the chroma plane starts (NV12: the UV plane; I420: U).
    pub chroma_offset: u32,
    /// I420 only: where V starts; 0 for NV12.
    pub v_offset: u32,
}

impl Layout {
    /// Luma rows allotted in the buffer (≥ height when the driver pads).
    pub fn plane_rows(&self) -> u32 {
        self.chroma_offset / self.stride.max(1)
    }

    /// Bytes one picture occupies from offset 0. Chroma planes are padded
    /// like the luma plane (half its allotted rows), as drivers lay them
    /// out and as the converter (`RawFrame::needed_len`) expects.
    pub fn frame_len(&self) -> u64 {
        let s = u64::from(self.stride);
        let rows = u64::from(self.plane_rows()).div_ceil(2);
        match self.fourcc {
            FOURCC_I420 => u64::from(self.v_offset) + s / 2 * rows,
            _ => u64::from(self.chroma_offset) + s * rows,
        }
    }

    /// Checks the layout is one the daemon can convert: a known format,
    /// sane sizes, planes in order and not overlapping, the chroma plane at
    /// a whole number of luma rows.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |why: String| Err(ProtoError::BadLayout(why));
        if self.fourcc != FOURCC_NV12 && self.fourcc != FOURCC_I420 {
            return bad(format!(
                "pixel format {:?} (only NV12 and YU12)",
                String::from_utf8_lossy(&self.fourcc.to_le_bytes())
            ));
        }
        if self.width < 2 || self.height < 2 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return bad(format!("size {}x{}", self.width, self.height));
        }
        if self.stride < self.width || self.stride > 4 * MAX_SIDE {
            return bad(format!("stride {} for width {}", self.stride, self.width));
        }
        let stride = self.stride;
        if self.fourcc == FOURCC_I420 && !stride.is_multiple_of(2) {
            return bad(format!("odd stride {stride} for YU12"));
        }
        if !self.chroma_offset.is_multiple_of(stride) || self.plane_rows() < self.height {
            return bad(format!(
                "chroma at {} is not a whole number of {}-byte rows below {} rows",
                self.chroma_offset, stride, self.height
            ));
        }
        match self.fourcc {
            FOURCC_I420 => {
                let u_len = stride / 2 * (self.plane_rows() / 2);
                if u64::from(self.v_offset) != u64::from(self.chroma_offset) + u64::from(u_len) {
                    return bad(format!(
                        "V plane at {}, expected {} right after U",
                        self.v_offset,
                        u64::from(self.chroma_offset) + u64::from(u_len)
                    ));
                }
            }
            _ if self.v_offset != 0 => return bad("NV12 with a V offset".into()),
            _ => {}
        }
        if self.frame_len() > MAX_BUFFER_LEN {
            return bad(format!("{} bytes per picture", self.frame_len()));
        }
        Ok(())
    }
}

/// One buffer the helper shares; its descriptor travels with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferDesc {
    /// Mapped length in bytes.
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// helper → daemon, first: who and which protocol.
    Hello { version: u16, software: String },
    /// daemon → helper: answer with [`Message::Cameras`].
    ListCameras,
    /// helper → daemon.
    Cameras(Vec<CameraDesc>),
    /// daemon → helper: open a camera (empty id: the first) and stream.
    Start {
        camera: String,
        width: u32,
        height: u32,
        fps: u32,
    },
    /// helper → daemon: what was opened, the layout, and the buffers (one
    /// descriptor each, in order; buffer `i` is `buffers[i]`).
    Started {
        camera: CameraDesc,
        layout: Layout,
        /// Frame rate in millihertz (libcamera may pick a fraction).
        fps_milli: u32,
        buffers: Vec<BufferDesc>,
    },
    /// helper → daemon: buffer `buffer` holds a picture; the daemon owns it
    /// until it sends [`Message::Release`].
    Frame {
        buffer: u16,
        sequence: u64,
        /// Sensor timestamp, µs (CLOCK_MONOTONIC in libcamera).
        pts_us: u64,
    },
    /// daemon → helper: buffer may be refilled.
    Release { buffer: u16 },
    /// helper → daemon: a fatal problem, said for a person.
    Error(String),
    /// helper → daemon, right after `Started` (possibly empty): the
    /// camera's controls with their ranges and defaults.
    Controls(Vec<ControlInfo>),
    /// daemon → helper: set these on every following request; answered, in
    /// order, by [`Message::ControlsSet`] or [`Message::ControlsRefused`].
    /// All or nothing: a refusal changes none of them.
    SetControls(Vec<(String, ControlValue)>),
    /// helper → daemon: the last `SetControls` is in effect.
    ControlsSet,
    /// helper → daemon: the last `SetControls` was refused because of
    /// `control`; nothing changed.
    ControlsRefused { control: String, reason: String },
}

impl Message {
    fn kind(&self) -> u16 {
        match self {
            Message::Hello { .. } => 1,
            Message::ListCameras => 2,
            Message::Cameras(_) => 3,
            Message::Start { .. } => 4,
            Message::Started { .. } => 5,
            Message::Frame { .. } => 6,
            Message::Release { .. } => 7,
            Message::Error(_) => 8,
            Message::Controls(_) => 9,
            Message::SetControls(_) => 10,
            Message::ControlsSet => 11,
            Message::ControlsRefused { .. } => 12,
        }
    }

    /// Descriptors that must travel with this message.
    pub fn fd_count(&self) -> usize {
        match self {
            Message::Started { buffers, .. } => buffers.len(),
            _ => 0,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::ListCameras => "ListCameras",
            Message::Cameras(_) => "Cameras",
            Message::Start { .. } => "Start",
            Message::Started { .. } => "Started",
            Message::Frame { .. } => "Frame",
            Message::Release { .. } => "Release",
            Message::Error(_) => "Error",
            Message::Controls(_) => "Controls",
            Message::SetControls(_) => "SetControls",
            Message::ControlsSet => "ControlsSet",
            Message::ControlsRefused { .. } => "ControlsRefused",
        }
    }
}

const TAG_BOOL: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;

struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Strings longer than the limit are cut (at a char boundary): the
    /// peer would refuse them, and they are only ever descriptive.
    fn str(&mut self, s: &str) {
        let mut end = s.len().min(MAX_STRING);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
    fn camera(&mut self, c: &CameraDesc) {
        self.str(&c.id);
        self.str(&c.model);
    }
    /// A control name: refused (not cut) when too long, since a cut name
    /// would name another control.
    fn name(&mut self, n: &str) -> Result<(), ProtoError> {
        if n.is_empty() || n.len() > MAX_CONTROL_NAME {
            return Err(ProtoError::TooLong(
                "control name",
                n.len(),
                MAX_CONTROL_NAME,
            ));
        }
        self.str(n);
        Ok(())
    }
    /// tag u8 + value: bool u8, int i64, float f32 bits.
    fn value(&mut self, v: &ControlValue) -> Result<(), ProtoError> {
        match v {
            ControlValue::Bool(b) => {
                self.0.push(TAG_BOOL);
                self.0.push(u8::from(*b));
            }
            ControlValue::Int(i) => {
                self.0.push(TAG_INT);
                self.u64(*i as u64);
            }
            ControlValue::Float(f) => {
                if !f.is_finite() {
                    return Err(ProtoError::BadControl(format!("a non-finite value {f}")));
                }
                self.0.push(TAG_FLOAT);
                self.u32(f.to_bits());
            }
        }
        Ok(())
    }
    fn controls_count(&mut self, n: usize) -> Result<(), ProtoError> {
        if n > MAX_CONTROLS {
            return Err(ProtoError::TooMany("controls", n, MAX_CONTROLS));
        }
        self.u16(n as u16);
        Ok(())
    }
}

/// The bytes of one datagram. `Err` if the message breaks a limit the
/// receiver enforces (too many cameras or buffers, an invalid layout).
pub fn encode(msg: &Message) -> Result<Vec<u8>, ProtoError> {
    let mut w = Writer(Vec::with_capacity(64));
    w.0.extend_from_slice(&MAGIC);
    w.u16(msg.kind());
    w.u16(0);
    w.u32(0); // length, filled in below
    match msg {
        Message::Hello { version, software } => {
            w.u16(*version);
            w.str(software);
        }
        Message::ListCameras => {}
        Message::Cameras(list) => {
            if list.len() > MAX_CAMERAS {
                return Err(ProtoError::TooMany("cameras", list.len(), MAX_CAMERAS));
            }
            w.u16(list.len() as u16);
            for c in list {
                w.camera(c);
            }
        }
        Message::Start {
            camera,
            width,
            height,
            fps,
        } => {
            w.str(camera);
            w.u32(*width);
            w.u32(*height);
            w.u32(*fps);
        }
        Message::Started {
            camera,
            layout,
            fps_milli,
            buffers,
        } => {
            layout.validate()?;
            if buffers.is_empty() || buffers.len() > MAX_BUFFERS {
                return Err(ProtoError::TooMany("buffers", buffers.len(), MAX_BUFFERS));
            }
            w.camera(camera);
            for v in [
                layout.fourcc,
                layout.width,
                layout.height,
                layout.stride,
                layout.chroma_offset,
                layout.v_offset,
                *fps_milli,
            ] {
                w.u32(v);
            }
            w.u16(buffers.len() as u16);
            for b in buffers {
                w.u64(b.len);
            }
        }
        Message::Frame {
            buffer,
            sequence,
            pts_us,
        } => {
            w.u16(*buffer);
            w.u64(*sequence);
            w.u64(*pts_us);
        }
        Message::Release { buffer } => w.u16(*buffer),
        Message::Error(text) => w.str(text),
        Message::Controls(list) => {
            w.controls_count(list.len())?;
            for c in list {
                c.validate()?;
                w.name(&c.name)?;
                for v in [&c.min, &c.max, &c.default] {
                    w.value(v)?;
                }
            }
        }
        Message::SetControls(list) => {
            w.controls_count(list.len())?;
            for (name, v) in list {
                w.name(name)?;
                w.value(v)?;
            }
        }
        Message::ControlsSet => {}
        Message::ControlsRefused { control, reason } => {
            w.str(control);
            w.str(reason);
        }
    }
    if w.0.len() > MAX_MESSAGE {
        return Err(ProtoError::TooLong("message", w.0.len(), MAX_MESSAGE));
    }
    let len = (w.0.len() - HEADER_LEN) as u32;
    w.0[8..12].copy_from_slice(&len.to_le_bytes());
    Ok(w.0)
}

/// Reads a payload with bounds checks; every failure names the field.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    msg: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(ProtoError::Truncated {
                message: self.msg,
                field,
                offset: HEADER_LEN + self.pos,
            });
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self, field: &'static str) -> Result<String, ProtoError> {
        let n = usize::from(self.u16(field)?);
        if n > MAX_STRING {
            return Err(ProtoError::TooLong(field, n, MAX_STRING));
        }
        let b = self.take(n, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::NotUtf8(field))
    }
    fn camera(&mut self) -> Result<CameraDesc, ProtoError> {
        Ok(CameraDesc {
            id: self.str("camera id")?,
            model: self.str("camera model")?,
        })
    }
    fn name(&mut self) -> Result<String, ProtoError> {
        let n = self.str("control name")?;
        if n.is_empty() || n.len() > MAX_CONTROL_NAME {
            return Err(ProtoError::TooLong(
                "control name",
                n.len(),
                MAX_CONTROL_NAME,
            ));
        }
        Ok(n)
    }
    fn value(&mut self, field: &'static str) -> Result<ControlValue, ProtoError> {
        let offset = HEADER_LEN + self.pos;
        match self.take(1, field)?[0] {
            TAG_BOOL => match self.take(1, field)?[0] {
                0 => Ok(ControlValue::Bool(false)),
                1 => Ok(ControlValue::Bool(true)),
                b => Err(ProtoError::BadControl(format!(
                    "{field}: bool byte {b} at byte {offset}"
                ))),
            },
            TAG_INT => Ok(ControlValue::Int(self.u64(field)? as i64)),
            TAG_FLOAT => {
                let f = f32::from_bits(self.u32(field)?);
                if !f.is_finite() {
                    return Err(ProtoError::BadControl(format!(
                        "{field}: non-finite float {f} at byte {offset}"
                    )));
                }
                Ok(ControlValue::Float(f))
            }
            t => Err(ProtoError::BadControl(format!(
                "{field}: unknown value type {t} at byte {offset}"
            ))),
        }
    }
    fn count(&mut self, field: &'static str, max: usize) -> Result<usize, ProtoError> {
        let n = usize::from(self.u16(field)?);
        if n > max {
            return Err(ProtoError::TooMany(field, n, max));
        }
        Ok(n)
    }
    fn done(&self) -> Result<(), ProtoError> {
        if self.pos != self.buf.len() {
            return Err(ProtoError::Trailing {
                message: self.msg,
                extra: self.buf.len() - self.pos,
            });
        }
        Ok(())
    }
}

/// Parses one datagram that arrived with `fds` descriptors. Never panics;
/// every `Err` says what was wrong and where.
pub fn decode(datagram: &[u8], fds: usize) -> Result<Message, ProtoError> {
    if datagram.len() > MAX_MESSAGE {
        return Err(ProtoError::TooLong("message", datagram.len(), MAX_MESSAGE));
    }
    if datagram.len() < HEADER_LEN {
        return Err(ProtoError::ShortHeader(datagram.len()));
    }
    if datagram[..4] != MAGIC {
        return Err(ProtoError::BadMagic([
            datagram[0],
            datagram[1],
            datagram[2],
            datagram[3],
        ]));
    }
    let kind = u16::from_le_bytes([datagram[4], datagram[5]]);
    let reserved = u16::from_le_bytes([datagram[6], datagram[7]]);
    let len = u32::from_le_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]) as usize;
    if reserved != 0 {
        return Err(ProtoError::Reserved(reserved));
    }
    if len != datagram.len() - HEADER_LEN {
        return Err(ProtoError::LengthMismatch {
            header: len,
            actual: datagram.len() - HEADER_LEN,
        });
    }
    let name = match kind {
        1 => "Hello",
        2 => "ListCameras",
        3 => "Cameras",
        4 => "Start",
        5 => "Started",
        6 => "Frame",
        7 => "Release",
        8 => "Error",
        9 => "Controls",
        10 => "SetControls",
        11 => "ControlsSet",
        12 => "ControlsRefused",
        k => return Err(ProtoError::UnknownKind(k)),
    };
    let mut r = Reader {
        buf: &datagram[HEADER_LEN..],
        pos: 0,
        msg: name,
    };
    let msg = match kind {
        1 => Message::Hello {
            version: r.u16("version")?,
            software: r.str("software")?,
        },
        2 => Message::ListCameras,
        3 => {
            let n = r.count("cameras", MAX_CAMERAS)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(r.camera()?);
            }
            Message::Cameras(list)
        }
        4 => Message::Start {
            camera: r.str("camera")?,
            width: r.u32("width")?,
            height: r.u32("height")?,
            fps: r.u32("fps")?,
        },
        5 => {
            let camera = r.camera()?;
            let layout = Layout {
                fourcc: r.u32("fourcc")?,
                width: r.u32("width")?,
                height: r.u32("height")?,
                stride: r.u32("stride")?,
                chroma_offset: r.u32("chroma offset")?,
                v_offset: r.u32("v offset")?,
            };
            let fps_milli = r.u32("fps")?;
            let n = r.count("buffers", MAX_BUFFERS)?;
            if n == 0 {
                return Err(ProtoError::TooMany("buffers", 0, MAX_BUFFERS));
            }
            let mut buffers = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u64("buffer length")?;
                if len > MAX_BUFFER_LEN {
                    return Err(ProtoError::BadLayout(format!(
                        "a buffer of {len} bytes (at most {MAX_BUFFER_LEN})"
                    )));
                }
                if len < layout.frame_len() {
                    return Err(ProtoError::BadLayout(format!(
                        "a buffer of {len} bytes cannot hold a {} byte picture",
                        layout.frame_len()
                    )));
                }
                buffers.push(BufferDesc { len });
            }
            layout.validate()?;
            Message::Started {
                camera,
                layout,
                fps_milli,
                buffers,
            }
        }
        6 => Message::Frame {
            buffer: r.u16("buffer")?,
            sequence: r.u64("sequence")?,
            pts_us: r.u64("pts")?,
        },
        7 => Message::Release {
            buffer: r.u16("buffer")?,
        },
        8 => Message::Error(r.str("text")?),
        9 => {
            let n = r.count("controls", MAX_CONTROLS)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                let c = ControlInfo {
                    name: r.name()?,
                    min: r.value("control min")?,
                    max: r.value("control max")?,
                    default: r.value("control default")?,
                };
                c.validate()?;
                if list.iter().any(|o: &ControlInfo| o.name == c.name) {
                    return Err(ProtoError::BadControl(format!(
                        "{} announced twice",
                        c.name
                    )));
                }
                list.push(c);
            }
            Message::Controls(list)
        }
        10 => {
            let n = r.count("controls", MAX_CONTROLS)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push((r.name()?, r.value("control value")?));
            }
            Message::SetControls(list)
        }
        11 => Message::ControlsSet,
        _ => Message::ControlsRefused {
            control: r.str("control")?,
            reason: r.str("reason")?,
        },
    };
    r.done()?;
    if fds != msg.fd_count() {
        return Err(ProtoError::FdCount {
            message: name,
            expected: msg.fd_count(),
            got: fds,
        });
    }
    Ok(msg)
}

/// The daemon's half of the version handshake.
pub fn check_hello(msg: &Message) -> Result<&str, ProtoError> {
    match msg {
        Message::Hello { version, software } if *version == PROTOCOL_VERSION => Ok(software),
        Message::Hello { version, software } => Err(ProtoError::Version {
            theirs: *version,
            software: software.clone(),
        }),
        other => Err(ProtoError::Unexpected {
            expected: "Hello",
            got: other.name(),
        }),
    }
}
