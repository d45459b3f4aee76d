//! LL-HLS (RFC 8216bis) without I/O: the playlist model and renderer
//! ([`playlist`]) and the segmenter state machine ([`segmenter`]) that turns
//! frames into files to write, files to delete and playlists to publish.
//!
//! File layout in the segment directory (all names carry a per-run prefix,
//! so a restarted daemon never reuses a URL a client or cache may hold as
//! `immutable`):
//!
//! | file | content |
//! |---|---|
//! | `index.m3u8` | multivariant playlist (one variant) |
//! | `live.m3u8` | media playlist with LL-HLS tags |
//! | `{run}-init{gen}.mp4` | `ftyp`+`moov`, one per stream generation |
//! | `{run}-{msn}.{i}.m4s` | partial segment `i` of segment `msn`: one `prft`+`moof`+`mdat` (a `traf` per track) |
//! | `{run}-{msn}.m4s` | the whole segment: its parts concatenated, byte for byte |
//!
//! Segments are separate files rather than byte ranges of the parts so
//! that every file is written once and renamed into place (nginx never sees
//! a growing file) and plain HLS clients need no range requests. The cost is
//! writing each byte twice to tmpfs, which is cheap next to encoding.

mod names;
pub mod playlist;
pub mod segmenter;
mod time;

pub use playlist::{MediaPlaylist, MultivariantPlaylist, PartEntry, SegmentEntry};
pub use segmenter::{
    Action, DashInfo, FrameIn, NameKind, OtherFrameIn, Published, Segmenter, SegmenterConfig,
    StreamDesc,
};
pub use time::iso8601_ms;
