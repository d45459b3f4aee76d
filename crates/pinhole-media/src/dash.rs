//! The LL-DASH manifest (ISO/IEC 23009-1, DASH-IF low-latency guidelines)
//! over the LL-HLS writer's files: no second muxer. The same init segment
//! and segments (`{prefix}-{msn}.m4s`, numbered by media sequence number:
//! `$Number$`); the segment being written is delivered chunked, one CMAF
//! chunk (an LL-HLS part: `prft`+`moof`+`mdat`) at a time, so
//! `availabilityTimeOffset` makes it available from its start.
//!
//! `SegmentTemplate@duration` is nominal: segments are cut on keyframes, so
//! it is the keyframe interval. A client uses it only to know which number
//! to ask for when; the media it gets carries its own exact times. The MPD
//! is anchored on the generation's first segment (`availabilityStartTime`
//! is its capture wall-clock time, `presentationTimeOffset` its decode
//! time). No clock here: `now_us` comes in.

use std::fmt::Write as _;

use crate::fmp4::TIMESCALE;
use crate::hls::{iso8601_ms, DashInfo};

/// What the server adds to [`DashInfo`] at request time.
#[derive(Clone, Debug)]
pub struct MpdOptions<'a> {
    /// Wall-clock time now (µs since the epoch): `publishTime`.
    pub now_us: u64,
    /// Nominal segment duration (the keyframe interval), µs: used until
    /// the average of the segments made is known ([`segment_duration_us`]).
    pub segment_duration_us: u64,
    /// `UTCTiming` (`urn:mpeg:dash:utc:http-iso:2014`) URL, e.g. `/dash/time`.
    pub time_url: &'a str,
    /// `ServiceDescription` latency target, ms.
    pub target_latency_ms: u64,
}

/// xs:duration in seconds with milliseconds, e.g. `PT1.200S`.
fn duration(us: u64) -> String {
    format!("PT{}.{:03}S", us / 1_000_000, (us % 1_000_000) / 1000)
}

/// Seconds with milliseconds, e.g. `0.800`.
fn secs(us: u64) -> String {
    format!("{}.{:03}", us / 1_000_000, (us % 1_000_000) / 1000)
}

fn ticks_to_us(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000 / u128::from(TIMESCALE)) as u64
}

fn us_to_ticks(us: u64) -> u64 {
    (u128::from(us) * u128::from(TIMESCALE) / 1_000_000) as u64
}

/// `frameRate` as an integer or a fraction over 1000 (29.97 → `29970/1000`).
fn frame_rate(fps: f64) -> String {
    let milli = (fps * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}/1000")
    }
}

/// Only names we made go into attributes, but keep the XML well-formed
/// whatever they hold.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// `@duration`: the generation's average segment duration so far, so that
/// segment numbers follow the segments actually made (a camera a little off
/// its nominal rate, or a loaded test pattern dropping frames, cuts its
/// keyframe intervals longer or shorter than nominal, and a fixed
/// `@duration` would drift from them: after a minute at 26 instead of
/// 30 fps a player asked for segments two ahead and stalled). At the newest
/// complete segment the template's time is its exact start. Until two
/// segments exist, the nominal duration.
pub fn segment_duration_us(info: &DashInfo, nominal_us: u64) -> u64 {
    let segments = info.newest_number.saturating_sub(info.start_number);
    let span = info
        .newest_decode_time
        .saturating_sub(info.start_decode_time);
    if segments == 0 || span == 0 {
        return nominal_us;
    }
    ticks_to_us(span / segments)
}

/// The dynamic MPD for the current generation.
pub fn render_mpd(info: &DashInfo, opt: &MpdOptions<'_>) -> String {
    let seg_us = segment_duration_us(info, opt.segment_duration_us).max(1000);
    let utc = format!(
        "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{}\"/>",
        attr(opt.time_url)
    );
    let mut out = String::with_capacity(2048);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,http://www.dashif.org/guidelines/low-latency-live-v5\" \
         type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
         minimumUpdatePeriod=\"PT10S\" timeShiftBufferDepth=\"{}\" maxSegmentDuration=\"{}\" \
         minBufferTime=\"{}\">",
        iso8601_ms(info.start_wallclock_us),
        iso8601_ms(opt.now_us),
        duration(ticks_to_us(info.window).max(seg_us)),
        duration(seg_us),
        duration(ticks_to_us(info.part_target).max(100_000)),
    );
    let target = opt.target_latency_ms;
    let _ = writeln!(
        out,
        "  <ServiceDescription id=\"0\">\n    <Latency referenceId=\"0\" target=\"{target}\" \
         min=\"{}\" max=\"{}\"/>\n    <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  </ServiceDescription>",
        target / 2,
        target * 3,
    );
    let _ = writeln!(out, "  <Period id=\"{}\" start=\"PT0S\">", info.generation);
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" \
         segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    // The capture wall-clock time of the newest complete segment's first
    // frame (also in every chunk's `prft` box: inband).
    let _ = writeln!(
        out,
        "      <ProducerReferenceTime id=\"0\" type=\"captured\" inband=\"true\" \
         wallClockTime=\"{}\" presentationTime=\"{}\">\n        {utc}\n      </ProducerReferenceTime>",
        iso8601_ms(info.newest_wallclock_us),
        info.newest_decode_time,
    );
    // Available from the segment's nominal start: its chunks follow as
    // they are made (availabilityTimeComplete="false").
    let _ = writeln!(
        out,
        "      <SegmentTemplate timescale=\"{TIMESCALE}\" duration=\"{}\" startNumber=\"{}\" \
         presentationTimeOffset=\"{}\" initialization=\"{}\" media=\"{}-$Number$.m4s\" \
         availabilityTimeOffset=\"{}\" availabilityTimeComplete=\"false\"/>",
        us_to_ticks(seg_us),
        info.start_number,
        info.start_decode_time,
        attr(&info.init),
        attr(&info.prefix),
        secs(seg_us),
    );
    let _ = write!(
        out,
        "      <Representation id=\"0\" bandwidth=\"{}\" codecs=\"{}\" width=\"{}\" height=\"{}\"",
        info.bandwidth.max(1),
        attr(&info.codecs),
        info.width,
        info.height,
    );
    if let Some(fps) = info.fps.filter(|f| f.is_finite() && *f > 0.0) {
        let _ = write!(out, " frameRate=\"{}\"", frame_rate(fps));
    }
    out.push_str("/>\n    </AdaptationSet>\n  </Period>\n");
    let _ = writeln!(out, "  {utc}\n</MPD>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_mpd() {
        let info = DashInfo {
            generation: 1,
            init: "r-init1.mp4".into(),
            prefix: "r".into(),
            start_number: 0,
            start_decode_time: 5_000_000,
            start_wallclock_us: 1_700_000_000_000_000,
            newest_number: 4,
            newest_decode_time: 9_000_000,
            newest_wallclock_us: 1_700_000_004_000_000,
            open_number: 5,
            window: 6_000_000,
            part_target: 200_000,
            codecs: "avc1.42c01f".into(),
            width: 1280,
            height: 720,
            fps: Some(29.97),
            bandwidth: 2_000_000,
        };
        let mpd = render_mpd(
            &info,
            &MpdOptions {
                now_us: 1_700_000_004_500_000,
                segment_duration_us: 1_000_000,
                time_url: "/dash/time",
                target_latency_ms: 800,
            },
        );
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,http://www.dashif.org/guidelines/low-latency-live-v5" type="dynamic" availabilityStartTime="2023-11-14T22:13:20.000Z" publishTime="2023-11-14T22:13:24.500Z" minimumUpdatePeriod="PT10S" timeShiftBufferDepth="PT6.000S" maxSegmentDuration="PT1.000S" minBufferTime="PT0.200S">
  <ServiceDescription id="0">
    <Latency referenceId="0" target="800" min="400" max="2400"/>
    <PlaybackRate min="0.96" max="1.04"/>
  </ServiceDescription>
  <Period id="1" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <ProducerReferenceTime id="0" type="captured" inband="true" wallClockTime="2023-11-14T22:13:24.000Z" presentationTime="9000000">
        <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/dash/time"/>
      </ProducerReferenceTime>
      <SegmentTemplate timescale="1000000" duration="1000000" startNumber="0" presentationTimeOffset="5000000" initialization="r-init1.mp4" media="r-$Number$.m4s" availabilityTimeOffset="1.000" availabilityTimeComplete="false"/>
      <Representation id="0" bandwidth="2000000" codecs="avc1.42c01f" width="1280" height="720" frameRate="29970/1000"/>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/dash/time"/>
</MPD>
"#;
        assert_eq!(mpd, expected);
    }

    #[test]
    fn duration_follows_the_segments_made() {
        let mut info = DashInfo {
            start_number: 10,
            start_decode_time: 1_000_000,
            newest_number: 10,
            newest_decode_time: 1_000_000,
            ..DashInfo::default()
        };
        assert_eq!(segment_duration_us(&info, 2_000_000), 2_000_000);
        // 30 segments of 60 frames at 26 fps instead of 30.
        info.newest_number = 40;
        info.newest_decode_time = 1_000_000 + 30 * 2_307_692;
        assert_eq!(segment_duration_us(&info, 2_000_000), 2_307_692);
        // So the template puts segment 40 where it started.
        let t40 = info.start_decode_time + 30 * segment_duration_us(&info, 2_000_000);
        assert_eq!(t40, info.newest_decode_time);
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(frame_rate(30.0), "30");
        assert_eq!(frame_rate(25.0001), "25");
        assert_eq!(duration(2_345_678), "PT2.345S");
        assert_eq!(secs(800_000), "0.800");
    }
}
