//! Where a frame leaves as WebRTC (WHEP, RFC 9725).
//!
//! - [`offer`]: checks a WHEP offer and trickle fragment (pure).
//! - [`stun`]: finds which session a datagram on the shared port is for (pure, fuzzed).
//! - [`session`]: one viewer's session on str0m, sans-I/O: packets and time in,
//!   datagrams and the next deadline out.
//! - [`start`]: how a new viewer starts (on a fresh keyframe) and how
//!   keyframe requests are rate-limited (pure).
//! - [`publish`]: the sending side (WHIP push): our offer, the server's
//!   answer, we check ICE; sans-I/O like `session`.
//! - [`tcp`]: ICE-TCP framing (RFC 4571, pure).
//! - [`endpoint`]: the I/O shell: one UDP socket for every session, a task per
//!   session pulling frames from the hub at its own pace.
//!
//! Access (viewer policy, CORS) is decided before any of this, by the
//! server's access policy; this crate only ever sees allowed requests.

pub mod endpoint;
pub mod error;
pub mod offer;
pub mod publish;
pub mod session;
pub mod start;
pub mod stun;
pub mod tcp;

pub use endpoint::{Created, Endpoint, EndpointConfig, IceServer, PatchAnswer};
pub use error::WebrtcError;
