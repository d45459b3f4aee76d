//! ONVIF Profile S, the minimal part NVRs and Home Assistant use: find the
//! camera (WS-Discovery), read its name and clock, its one media profile,
//! and the RTSP and snapshot URLs. Pure: bytes and time in, text out; the
//! HTTP and UDP sockets are `pinhole-server`'s (`onvif.rs`).
//!
//! - [`soap`]: the request parser (limits, namespaces, UsernameToken);
//! - [`wsse`]: PasswordDigest, freshness and replay checks;
//! - [`service`]: which operations need credentials, the answers, faults;
//! - [`discovery`]: Probe → ProbeMatch, Hello.
//!
//! Not offered: PTZ, events, imaging, media2, device configuration (every
//! such operation is a SOAP fault).

pub mod discovery;
pub mod service;
pub mod soap;
pub mod wsse;
mod xml;

pub use service::{Access, Context, DeviceInfo, Fault, StreamInfo};
pub use soap::{parse, Request};

/// RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) kept, every
/// other byte `%XX`: for a URI segment or query value.
pub const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` with every byte but the unreserved ones escaped.
pub fn escape_unreserved(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// Why a request could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("request too large")]
    TooLarge,
    #[error("not a SOAP envelope")]
    NotSoap,
    #[error("no operation in the SOAP Body")]
    NoOperation,
    #[error("XML: {0}")]
    Xml(String),
    #[error("refused: {0}")]
    Limit(&'static str),
}

impl Error {
    /// The fault a client gets for it.
    pub fn fault(&self) -> Fault {
        Fault::bad_request(self.to_string())
    }
}
