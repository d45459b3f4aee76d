//! One error type for the WebRTC output, each kind mapped to an HTTP status.

/// Why a WHEP request or session failed.
#[derive(Debug, thiserror::Error)]
pub enum WebrtcError {
    /// The offer is not SDP we can read.
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    /// The offer has no video section, or none that offers H.264.
    #[error("the offer has no H.264 video (pinhole sends the camera's H.264 as it is): {0}")]
    NoH264(String),
    /// The session limit (`[webrtc] max_sessions`) is reached.
    #[error("too many WebRTC sessions ({0} open): try again later or use another player")]
    Full(usize),
    /// No session with this id (ended, expired, or never made).
    #[error("no WebRTC session '{0}'")]
    NoSession(String),
    /// The trickle fragment is not usable.
    #[error("bad trickle ICE fragment: {0}")]
    BadFragment(String),
    /// `If-Match` names another version of the session.
    #[error("the session's ETag does not match If-Match")]
    EtagMismatch,
    /// str0m refused something (a bug or an offer it cannot answer).
    #[error("WebRTC stack: {0}")]
    Rtc(String),
    #[error("WebRTC socket: {0}")]
    Io(#[from] std::io::Error),
}

impl WebrtcError {
    /// The HTTP status for a WHEP client.
    pub fn status(&self) -> u16 {
        match self {
            WebrtcError::BadOffer(_) | WebrtcError::BadFragment(_) => 400,
            // RFC 9725: an offer we cannot accept is a client error; 406 is
            // "not acceptable", and says exactly that.
            WebrtcError::NoH264(_) => 406,
            WebrtcError::Full(_) => 503,
            WebrtcError::NoSession(_) => 404,
            WebrtcError::EtagMismatch => 412,
            WebrtcError::Rtc(_) | WebrtcError::Io(_) => 500,
        }
    }
}

impl From<str0m::RtcError> for WebrtcError {
    fn from(e: str0m::RtcError) -> Self {
        WebrtcError::Rtc(e.to_string())
    }
}
