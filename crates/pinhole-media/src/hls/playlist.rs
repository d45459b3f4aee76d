//! Playlist model and text rendering (RFC 8216bis §4).

use std::fmt::Write as _;

use super::time::iso8601_ms;
use crate::fmp4::TIMESCALE;

/// One partial segment (`EXT-X-PART`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartEntry {
    pub uri: String,
    /// Duration in `TIMESCALE` ticks.
    pub duration: u64,
    /// Starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// One media segment, complete or still being written (the last one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    pub msn: u64,
    /// `EXT-X-MAP` to emit before this segment (first segment, new init).
    pub map: Option<String>,
    pub discontinuity: bool,
    /// Wall-clock capture time of the first frame, µs since the Unix epoch.
    pub program_date_time_us: u64,
    /// Parts listed with `EXT-X-PART` (empty once they aged out).
    pub parts: Vec<PartEntry>,
    /// `(uri, duration ticks)` once complete; `None` for the open segment.
    pub complete: Option<(String, u64)>,
}

/// A media playlist with LL-HLS tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaPlaylist {
    pub target_duration_s: u64,
    /// Part target in `TIMESCALE` ticks.
    pub part_target: u64,
    /// `PART-HOLD-BACK` in `TIMESCALE` ticks (≥ 3 × part target).
    pub part_hold_back: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<SegmentEntry>,
    pub preload_hint: Option<String>,
}

/// Decimals that print part and segment durations exactly (µs ticks): the
/// player adds them up to place each part, and a sum even 10 µs past the end
/// of what the browser buffered made hls.js load the finished segment again.
const EXACT: usize = 6;

/// Seconds from `TIMESCALE` ticks, with the given number of decimals.
fn secs(ticks: u64, decimals: usize) -> String {
    format!("{:.*}", decimals, ticks as f64 / f64::from(TIMESCALE))
}

impl MediaPlaylist {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.segments.len() * 400);
        out.push_str("#EXTM3U\n");
        // EXT-X-MAP without EXT-X-I-FRAMES-ONLY needs version 6 (§7).
        out.push_str("#EXT-X-VERSION:6\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration_s);
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
            secs(self.part_hold_back, 3)
        );
        let _ = writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={}",
            secs(self.part_target, 3)
        );
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for seg in &self.segments {
            if seg.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(map) = &seg.map {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{map}\"");
            }
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                iso8601_ms(seg.program_date_time_us)
            );
            for p in &seg.parts {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}\"",
                    secs(p.duration, EXACT),
                    p.uri
                );
                if p.independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
            if let Some((uri, duration)) = &seg.complete {
                let _ = writeln!(out, "#EXTINF:{},\n{uri}", secs(*duration, EXACT));
            }
        }
        if let Some(hint) = &self.preload_hint {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
        }
        out
    }
}

/// The multivariant playlist: one H.264 variant.
#[derive(Clone, Debug, PartialEq)]
pub struct MultivariantPlaylist {
    pub media_uri: String,
    /// Peak bit/s (`BANDWIDTH`).
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec string, e.g. `avc1.42c01f`.
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

impl MultivariantPlaylist {
    pub fn render(&self) -> String {
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", self.bandwidth.max(1));
        if let Some(avg) = self.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={}", avg.max(1));
        }
        let _ = write!(
            out,
            ",CODECS=\"{}\",RESOLUTION={}x{}",
            self.codecs, self.width, self.height
        );
        if let Some(fps) = self.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        let _ = writeln!(out, "\n{}", self.media_uri);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_media_playlist() {
        let us = crate::fmp4::us_to_ticks;
        let part = |uri: &str, duration, independent| PartEntry {
            uri: uri.into(),
            duration,
            independent,
        };
        let pl = MediaPlaylist {
            target_duration_s: 1,
            part_target: us(200_000),
            part_hold_back: us(600_000),
            media_sequence: 7,
            discontinuity_sequence: 0,
            segments: vec![
                SegmentEntry {
                    msn: 7,
                    map: Some("r-init1.mp4".into()),
                    discontinuity: false,
                    program_date_time_us: 1_700_000_000_000_000,
                    parts: vec![],
                    complete: Some(("r-7.m4s".into(), us(1_000_000))),
                },
                SegmentEntry {
                    msn: 8,
                    map: None,
                    discontinuity: false,
                    program_date_time_us: 1_700_000_001_000_000,
                    parts: vec![
                        part("r-8.0.m4s", us(200_000), true),
                        part("r-8.1.m4s", us(200_000), false),
                    ],
                    complete: Some(("r-8.m4s".into(), us(400_000))),
                },
                SegmentEntry {
                    msn: 9,
                    map: None,
                    discontinuity: false,
                    program_date_time_us: 1_700_000_001_400_000,
                    parts: vec![part("r-9.0.m4s", us(166_667), true)],
                    complete: None,
                },
            ],
            preload_hint: Some("r-9.1.m4s".into()),
        };
        let expected = "\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI=\"r-init1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXTINF:1.000000,
r-7.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z
#EXT-X-PART:DURATION=0.200000,URI=\"r-8.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.200000,URI=\"r-8.1.m4s\"
#EXTINF:0.400000,
r-8.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.400Z
#EXT-X-PART:DURATION=0.166667,URI=\"r-9.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"r-9.1.m4s\"
";
        assert_eq!(pl.render(), expected);
    }

    #[test]
    fn golden_multivariant() {
        let mv = MultivariantPlaylist {
            media_uri: "live.m3u8".into(),
            bandwidth: 2_200_000,
            average_bandwidth: Some(2_000_000),
            codecs: "avc1.42c01f".into(),
            width: 1280,
            height: 720,
            frame_rate: Some(30.0),
        };
        assert_eq!(
            mv.render(),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-STREAM-INF:BANDWIDTH=2200000,\
             AVERAGE-BANDWIDTH=2000000,CODECS=\"avc1.42c01f\",RESOLUTION=1280x720,\
             FRAME-RATE=30.000\nlive.m3u8\n"
        );
    }
}
