//! Pure media code for pinhole: no sockets, no files, no clocks of its own.
//!
//! A frame enters as Annex B bytes ([`annexb`]), its parameter sets describe
//! the stream ([`h264`]), and it leaves as fragmented MP4 ([`fmp4`]) with
//! the stream's other tracks ([`track`]: Opus audio, [`opus`]), in LL-HLS
//! parts and segments ([`hls`]) that a DASH manifest describes too ([`dash`]).

pub mod annexb;
pub mod clock;
pub mod dash;
pub mod error;
pub mod fmp4;
pub mod frame;
pub mod h264;
pub mod hls;
pub mod opus;
pub mod peer;
pub mod track;

pub use annexb::{AccessUnitAssembler, AssembledAu};
pub use clock::{Clock, SimClock, SystemClock};
pub use error::MediaError;
pub use frame::{AccessUnit, StreamInfo};
pub use opus::OpusConfig;
pub use track::{Codec, TrackKind};
