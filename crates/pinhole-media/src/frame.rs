//! The unit that flows from a source through the hub to every output.

use bytes::Bytes;

/// One encoded picture: Annex B NAL units with their start codes.
///
/// Keyframes (IDR) always carry SPS and PPS in `data`, so any output can start
/// a viewer on any keyframe without side information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// Annex B bytes (start codes included). Shared, never copied per viewer.
    pub data: Bytes,
    /// Capture time on the monotonic clock, in microseconds.
    pub pts_us: u64,
    /// Capture time on the wall clock, microseconds since the Unix epoch.
    /// Used for `EXT-X-PROGRAM-DATE-TIME` and latency measurement.
    pub wallclock_us: u64,
    /// True for an IDR access unit (a point where decoding can start).
    pub keyframe: bool,
}

/// What a decoder needs to know about the stream, taken from its SPS/PPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string, e.g. `avc1.42c01f`.
    pub codec: String,
    /// profile_idc, constraint flags byte, level_idc (as in the avcC box).
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// SPS NAL unit without start code (header byte included).
    pub sps: Bytes,
    /// PPS NAL unit without start code (header byte included).
    pub pps: Bytes,
}
