//! The camera helper protocol: how `pinholed` (static, no C++) talks to a
//! camera helper process (`pinhole-libcamera`, dynamically linked against
//! libcamera). See docs/cameras.md, "libcamera".
//!
//! * [`msg`]: the messages and their bytes — pure, unit-tested, fuzzed.
//! * [`wire`]: one message per SOCK_SEQPACKET datagram, buffers passed as
//!   file descriptors (SCM_RIGHTS), never copied through the socket.
//! * [`fake`]: a helper with synthetic frames in memfds, for tests and
//!   for `pinhole-libcamera --fake`.
//!
//! Session: helper `Hello` → daemon `ListCameras` (→ `Cameras`, end) or
//! `Start` → helper `Started` (layout + buffer fds) → `Frame`s, each
//! answered by a `Release` once the daemon has read the buffer. Right
//! after `Started` the helper sends `Controls` (the camera's controls);
//! the daemon may send `SetControls` at any time during the stream, each
//! answered in order by `ControlsSet` or `ControlsRefused`.

pub mod control;
pub mod fake;
pub mod msg;
pub mod wire;

pub use control::{ControlInfo, ControlType, ControlValue};
pub use msg::{
    check_hello, decode, encode, BufferDesc, CameraDesc, Layout, Message, FOURCC_I420, FOURCC_NV12,
    PROTOCOL_VERSION,
};
pub use wire::{Channel, Received};

/// The environment variable that tells a helper which inherited descriptor
/// is its socket.
pub const SOCKET_FD_ENV: &str = "PINHOLE_CAMERA_SOCKET_FD";

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("message of {0} bytes is shorter than the 12-byte header")]
    ShortHeader(usize),
    #[error("bad magic {0:02x?} (not a pinhole camera helper, or a different protocol)")]
    BadMagic([u8; 4]),
    #[error("reserved header field is {0}, must be 0")]
    Reserved(u16),
    #[error("header says {header} payload bytes, the message has {actual}")]
    LengthMismatch { header: usize, actual: usize },
    #[error("unknown message kind {0}")]
    UnknownKind(u16),
    #[error("{message}: truncated at {field} (byte {offset})")]
    Truncated {
        message: &'static str,
        field: &'static str,
        offset: usize,
    },
    #[error("{message}: {extra} unexpected trailing bytes")]
    Trailing { message: &'static str, extra: usize },
    #[error("{0}: {1} bytes, at most {2}")]
    TooLong(&'static str, usize, usize),
    #[error("{0}: {1}, allowed 1..={2}")]
    TooMany(&'static str, usize, usize),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unusable camera control: {0}")]
    BadControl(String),
    #[error("unusable picture layout: {0}")]
    BadLayout(String),
    #[error("{message} must carry {expected} file descriptor(s), it carried {got}")]
    FdCount {
        message: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(
        "the camera helper ({software}) speaks protocol version {theirs}, this pinholed speaks {}: \
         install the helper from the same pinhole release",
        msg::PROTOCOL_VERSION
    )]
    Version { theirs: u16, software: String },
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("buffer {buffer} does not exist (the helper shared {count})")]
    NoSuchBuffer { buffer: u16, count: usize },
    #[error("buffer {0} is already held by the daemon")]
    BufferBusy(u16),
    #[error("the peer closed the socket")]
    Closed,
    #[error("no message within {0} ms")]
    Timeout(u32),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl ProtoError {
    pub(crate) fn io(what: &'static str, e: impl Into<std::io::Error>) -> Self {
        ProtoError::Io {
            what,
            source: e.into(),
        }
    }
}

#[cfg(test)]
mod tests;
