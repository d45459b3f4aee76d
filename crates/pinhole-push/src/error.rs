//! The one error type of the push crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PushError {
    /// The target URL cannot be used (scheme, host, missing app or key).
    #[error("bad push URL: {0}")]
    Url(String),
    /// Connecting, reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The server sent bytes that are not valid RTMP/AMF0 (with where).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered, but refused (e.g. `NetStream.Publish.BadName`).
    #[error("server refused: {0}")]
    Refused(String),
    /// The server stopped answering or accepting bytes in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// TLS failed: the handshake, the server's certificate, the CA file.
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebRTC session (WHIP) failed or ended.
    #[error("WebRTC: {0}")]
    Webrtc(String),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
}

impl PushError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> PushError {
        move |source| PushError::Io { context, source }
    }
}
