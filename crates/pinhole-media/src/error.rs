//! Errors from parsing and muxing H.264 (and Opus). Each says what failed and where
//! (stream byte offset, NAL type) so a capture can be inspected by hand.

/// Something in the input could not be used.
///
/// Offsets are byte offsets into the whole stream fed to an
/// [`AccessUnitAssembler`](crate::annexb::AccessUnitAssembler) (counting from
/// the first byte ever pushed), so the spot can be found with `xxd -s`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Bytes that are not part of any NAL unit (no Annex B start code).
    #[error(
        "skipped {len} bytes at stream offset {offset} with no H.264 Annex B start code \
         (is this raw H.264?)"
    )]
    NoStartCode { offset: u64, len: u64 },

    /// An access unit (or a single NAL unit) grew past the memory limit.
    #[error(
        "access unit starting at stream offset {offset} exceeds the {limit}-byte limit; \
         dropped it and skipped to the next access unit"
    )]
    AccessUnitTooLarge { offset: u64, limit: usize },

    /// A NAL unit whose header is invalid (forbidden_zero_bit set, empty, …).
    #[error("invalid NAL unit (type {nal_type}) at stream offset {offset}: {reason}; dropped it")]
    InvalidNal {
        offset: u64,
        nal_type: u8,
        reason: &'static str,
    },

    /// Access units dropped because no IDR with SPS/PPS has been seen yet:
    /// a decoder could not start on them.
    #[error(
        "dropped {dropped} access units while waiting for the first keyframe (IDR) \
         with SPS and PPS"
    )]
    WaitingForKeyframe { dropped: u64 },

    /// A picture was sent when its writer paused, but more of it followed:
    /// the rest was dropped up to the next access unit.
    #[error(
        "more of a picture arrived at stream offset {offset} after the writer had paused and \
         the picture was sent; dropped the rest of it (pictures now end only after a longer pause)"
    )]
    PictureSplit { offset: u64 },

    /// More errors occurred than are kept between two `take_errors` calls.
    #[error("{count} further errors suppressed")]
    Suppressed { count: u64 },

    /// The sequence parameter set could not be parsed.
    #[error("invalid SPS ({len} bytes): {reason}")]
    Sps { len: usize, reason: String },

    /// The picture parameter set could not be parsed.
    #[error("invalid PPS ({len} bytes): {reason}")]
    Pps { len: usize, reason: String },

    /// Valid H.264 that pinhole cannot carry (e.g. a picture too large for mp4).
    #[error("unsupported stream: {0}")]
    Unsupported(String),

    /// An Ogg Opus stream (a fixture or an audio pipe) that cannot be read.
    #[error("invalid Ogg Opus data at byte {offset}: {reason}")]
    Ogg { offset: u64, reason: &'static str },

    /// An MP4 box could not be encoded (only possible for absurd sizes).
    #[error("cannot encode mp4 {what}: {reason}")]
    Mp4 { what: &'static str, reason: String },
}
