//! What a track carries. A stream is one H.264 video track plus any number
//! of others (Opus audio, the camera's own JPEGs); every track shares the
//! capture clock (µs), and each muxer takes the codecs it can carry.

use crate::fmp4::TIMESCALE;
use crate::frame::StreamInfo;
use crate::opus::{OpusConfig, SAMPLE_RATE};

/// A track's codec and the parameters a decoder needs before its first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264 video (parameters from its SPS/PPS, which also travel in every
    /// keyframe).
    H264(StreamInfo),
    /// Opus audio, one packet per frame.
    Opus(OpusConfig),
    /// Whole JPEG pictures straight from an MJPEG camera (self-describing).
    Jpeg,
}

/// The broad kind of a track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
    /// Still pictures (camera JPEGs): for snapshots and MJPEG, not muxed.
    Picture,
}

impl Codec {
    pub fn kind(&self) -> TrackKind {
        match self {
            Codec::H264(_) => TrackKind::Video,
            Codec::Opus(_) => TrackKind::Audio,
            Codec::Jpeg => TrackKind::Picture,
        }
    }

    /// RFC 6381 codec string (`avc1.42c01f`, `opus`); `jpeg` for pictures.
    pub fn codec_string(&self) -> &str {
        match self {
            Codec::H264(info) => &info.codec,
            Codec::Opus(_) => OpusConfig::CODEC,
            Codec::Jpeg => "jpeg",
        }
    }

    /// Ticks per second of the track's media time in MP4: µs for video (the
    /// capture clock's unit, see [`TIMESCALE`]), 48 kHz for Opus (its sample
    /// clock, as the Opus-in-ISOBMFF mapping recommends: durations are exact).
    pub fn timescale(&self) -> u32 {
        match self {
            Codec::Opus(_) => SAMPLE_RATE,
            Codec::H264(_) | Codec::Jpeg => TIMESCALE,
        }
    }

    /// Whether fragmented MP4 (`/ws/fmp4`, `/stream.mp4`, LL-HLS) carries it.
    pub fn in_fmp4(&self) -> bool {
        matches!(self, Codec::H264(_) | Codec::Opus(_))
    }
}

/// Capture-clock microseconds to ticks of `timescale`.
pub fn us_to(timescale: u32, us: u64) -> u64 {
    (u128::from(us) * u128::from(timescale) / 1_000_000).min(u128::from(u64::MAX)) as u64
}
