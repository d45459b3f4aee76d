//! A push target's pure parts: its state and backoff, and the FLV muxer
//! that starts every session on a keyframe.

use crate::flv;
use crate::rtmp::amf0::Value;
use pinhole_media::StreamInfo;

/// What a target is doing, for `/api/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Publishing,
    /// Waiting to try again after a failure.
    BackingOff,
    /// Turned off by the admin (the panel); kept in the list.
    Disabled,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Publishing => "publishing",
            State::BackingOff => "backing_off",
            State::Disabled => "disabled",
        }
    }
}

/// Reconnect delays: 0.5 s doubling to 30 s; back to 0.5 s once a session
/// published for 10 s (a server that accepts then drops us at once is
/// not hammered).
#[derive(Debug)]
pub struct Backoff {
    next_us: u64,
}

pub const BACKOFF_MIN_US: u64 = 500_000;
pub const BACKOFF_MAX_US: u64 = 30_000_000;
const HEALTHY_US: u64 = 10_000_000;

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_us: BACKOFF_MIN_US,
        }
    }
}

impl Backoff {
    /// A session ended after publishing for `published_us` (0 if it never
    /// published): how long to wait before the next attempt.
    pub fn failed(&mut self, published_us: u64) -> u64 {
        if published_us >= HEALTHY_US {
            self.next_us = BACKOFF_MIN_US;
        }
        let wait = self.next_us;
        self.next_us = (self.next_us * 2).min(BACKOFF_MAX_US);
        wait
    }
}

/// One message for the RTMP session.
#[derive(Debug, PartialEq)]
pub enum Out {
    Metadata(Vec<(String, Value)>),
    /// An FLV video tag body at a timestamp in ms.
    Video {
        ts_ms: u32,
        body: Vec<u8>,
    },
}

/// Turns the hub's video frames into FLV tags for one session: nothing
/// until a keyframe; the sequence header (and metadata) before the first
/// keyframe and again when the parameter sets change; timestamps in ms
/// from the capture clock, counted from the session's first keyframe.
#[derive(Debug, Default)]
pub struct Muxer {
    generation: Option<u64>,
    origin_us: Option<u64>,
}

impl Muxer {
    pub fn frame(
        &mut self,
        info: &StreamInfo,
        generation: u64,
        fps: f64,
        pts_us: u64,
        keyframe: bool,
        annexb: &[u8],
    ) -> Vec<Out> {
        let mut out = Vec::new();
        if self.origin_us.is_none() {
            if !keyframe {
                return out;
            }
            self.origin_us = Some(pts_us);
        }
        let origin = self.origin_us.unwrap_or(pts_us);
        // Capture time never goes back; if it did, hold the timestamp.
        let ts_ms = (pts_us.saturating_sub(origin) / 1000) as u32;
        if keyframe && self.generation != Some(generation) {
            self.generation = Some(generation);
            out.push(Out::Metadata(flv::metadata(info, fps)));
            out.push(Out::Video {
                ts_ms,
                body: flv::sequence_header(info),
            });
        }
        if self.generation != Some(generation) {
            // A frame of a new generation before its keyframe: undecodable.
            return out;
        }
        if let Some(body) = flv::video_tag(annexb, keyframe) {
            out.push(Out::Video { ts_ms, body });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn info(sps_last: u8) -> StreamInfo {
        StreamInfo {
            width: 320,
            height: 240,
            codec: "avc1.42c01f".into(),
            profile_idc: 66,
            constraint_flags: 0xc0,
            level_idc: 31,
            sps: Bytes::from(vec![0x67, 0x42, 0xc0, sps_last]),
            pps: Bytes::from_static(&[0x68, 0xce]),
        }
    }

    const IDR: &[u8] = &[0, 0, 1, 0x65, 0x88];
    const P: &[u8] = &[0, 0, 1, 0x41, 0x9a];

    fn kinds(out: &[Out]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Out::Metadata(_) => "meta".to_owned(),
                Out::Video { ts_ms, body } => format!("{:02x}/{}@{ts_ms}", body[0], body[1]),
            })
            .collect()
    }

    #[test]
    fn starts_on_a_keyframe_with_the_sequence_header() {
        let mut m = Muxer::default();
        let i = info(0x1f);
        assert!(m.frame(&i, 1, 30.0, 1_000_000, false, P).is_empty());
        assert_eq!(
            kinds(&m.frame(&i, 1, 30.0, 1_033_333, true, IDR)),
            vec!["meta", "17/0@0", "17/1@0"]
        );
        assert_eq!(
            kinds(&m.frame(&i, 1, 30.0, 1_066_666, false, P)),
            vec!["27/1@33"]
        );
        // New parameter sets: frames before their keyframe are dropped, the
        // keyframe comes with a new sequence header.
        assert!(m.frame(&i, 2, 30.0, 1_100_000, false, P).is_empty());
        assert_eq!(
            kinds(&m.frame(&info(0x28), 2, 30.0, 1_133_333, true, IDR)),
            vec!["meta", "17/0@100", "17/1@100"]
        );
    }

    #[test]
    fn backoff_grows_and_resets_after_a_healthy_session() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.failed(0) / 1000).collect();
        assert_eq!(
            waits,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
        );
        assert_eq!(b.failed(HEALTHY_US), BACKOFF_MIN_US);
        assert_eq!(b.failed(1_000_000), 2 * BACKOFF_MIN_US);
    }
}
