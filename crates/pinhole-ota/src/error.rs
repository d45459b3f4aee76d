//! One error type for the whole update path. Its [`ErrorKind`] maps to an HTTP
//! status, and it carries where in the bundle it happened (image, byte offset)
//! so a user's report is enough to find the bad byte.

use std::fmt;

/// What class of failure this is; decides the HTTP status and whether the
/// user should retry, rebuild the bundle or check the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed, truncated or damaged bundle (bad magic, bad manifest,
    /// hash mismatch, trailing bytes). HTTP 400.
    BadBundle,
    /// Signature missing, invalid, or by a key we do not trust. HTTP 403.
    Signature,
    /// Another update is running, or the running system is an uncommitted
    /// trial and must not have its fallback overwritten. HTTP 409.
    Busy,
    /// A valid bundle that does not fit this device: other product or
    /// board, unsupported format, downgrade, too large for the slot. HTTP 422.
    Incompatible,
    /// Device I/O failed (write, fsync, read back, boot control). HTTP 500.
    Io,
    /// A bug or an invariant we refuse to break (e.g. writing the active
    /// slot). HTTP 500.
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadBundle => 400,
            ErrorKind::Signature => 403,
            ErrorKind::Busy => 409,
            ErrorKind::Incompatible => 422,
            ErrorKind::Io | ErrorKind::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadBundle => "bad-bundle",
            ErrorKind::Signature => "signature",
            ErrorKind::Busy => "busy",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An update error: kind + message + where (image index, bundle byte offset)
/// + the underlying I/O error if any.
#[derive(Debug, thiserror::Error)]
pub struct OtaError {
    kind: ErrorKind,
    msg: String,
    image: Option<usize>,
    offset: Option<u64>,
    #[source]
    source: Option<std::io::Error>,
}

impl OtaError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        OtaError {
            kind,
            msg: msg.into(),
            image: None,
            offset: None,
            source: None,
        }
    }
    pub fn bad_bundle(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadBundle, msg)
    }
    pub fn signature(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Signature, msg)
    }
    pub fn busy(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, msg)
    }
    pub fn incompatible(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Incompatible, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, msg)
    }
    /// An I/O failure: `what` says what we were doing and on which path.
    pub fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        OtaError {
            source: Some(e),
            ..Self::new(ErrorKind::Io, what)
        }
    }
    pub fn at_image(mut self, index: usize) -> Self {
        self.image = Some(index);
        self
    }
    pub fn at_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }
    pub fn message(&self) -> &str {
        &self.msg
    }
    pub fn image(&self) -> Option<usize> {
        self.image
    }
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
}

impl fmt::Display for OtaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        match (self.image, self.offset) {
            (Some(i), Some(o)) => write!(f, " (image {i}, bundle byte {o})")?,
            (Some(i), None) => write!(f, " (image {i})")?,
            (None, Some(o)) => write!(f, " (bundle byte {o})")?,
            (None, None) => {}
        }
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

pub type Result<T, E = OtaError> = std::result::Result<T, E>;
