//! Push the live stream to media servers that fan it out further (nginx-rtmp,
//! mediamtx, Owncast, YouTube, Twitch): pinhole feeds them rather than
//! growing its own relay.
//!
//! Pure parts: [`rtmp`] (AMF0, the chunk stream, the publishing session),
//! [`flv`] (video tags from access units), [`ts`] (MPEG-TS for SRT), [`target`] (state, backoff, the
//! keyframe-first muxer), [`url`]. The I/O shell is [`run`]: one task per
//! target, each with its own hub viewer; SRT through `srt-tokio`.

mod error;
pub mod flv;
pub mod http;
pub mod rtmp;
pub mod run;
mod set;
mod srt;
pub mod target;
mod tls;
pub mod ts;
pub mod url;
mod whip;

pub use error::PushError;
pub use run::{PushTarget, TargetStatus};
pub use set::{Listed, PushSet, SetError, MAX_TARGETS};
pub use target::State;
pub use tls::check_ca_pem;
pub use url::PushUrl;
