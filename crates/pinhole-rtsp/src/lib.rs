//! RTSP 1.0 (RFC 2326) for pinhole's `rtsp://<host>:8554/stream`, without
//! I/O: the wire format ([`message`]), one connection's state machine
//! ([`session`]), the session description ([`sdp`]), RTP packets for H.264
//! and Opus ([`rtp`]), RTCP sender reports ([`rtcp`]) and Basic/Digest
//! authentication ([`auth`]). The server that feeds them from the hub is
//! `pinhole-server`'s `rtsp` module.

pub mod auth;
pub mod message;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;

pub use message::{parse, Input, Method, Request, Response};
pub use session::{Action, Config, Conn, Media, Multicast, State, Transport};

/// What went wrong with a request, with its RTSP status.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtspError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request too large: {0}")]
    TooLarge(String),
    #[error("request body of {0} bytes is too large")]
    BodyTooLarge(usize),
    #[error("unsupported protocol version '{0}': this server speaks RTSP/1.0")]
    Version(String),
    #[error("not found: {0} (the stream is /stream, its tracks /stream/trackID=N)")]
    NotFound(String),
    #[error("only application/sdp descriptions are offered")]
    NotAcceptable,
    #[error("no such session")]
    SessionNotFound,
    #[error("not valid in this state: {0}")]
    WrongState(String),
    #[error("no supported transport: use RTP/AVP/TCP (interleaved) or RTP/AVP (UDP unicast)")]
    UnsupportedTransport,
    #[error("method {0} is not implemented")]
    NotImplemented(String),
    #[error("the stream has not started yet; try again shortly")]
    NotReady,
}

impl RtspError {
    pub fn status(&self) -> u16 {
        match self {
            RtspError::BadRequest(_) | RtspError::TooLarge(_) => 400,
            RtspError::BodyTooLarge(_) => 413,
            RtspError::Version(_) => 505,
            RtspError::NotFound(_) => 404,
            RtspError::NotAcceptable => 406,
            RtspError::SessionNotFound => 454,
            RtspError::WrongState(_) => 455,
            RtspError::UnsupportedTransport => 461,
            RtspError::NotImplemented(_) => 501,
            RtspError::NotReady => 503,
        }
    }
}
