//! The LL-HLS segmenter: a state machine fed one frame at a time that says
//! what to write, what to delete and what to publish. No clock, no files:
//! time comes from the frames (decode time in `TIMESCALE` ticks, wall-clock
//! capture time).
//!
//! Cutting rules:
//! * a **segment** starts on a keyframe (every keyframe by default, or the
//!   first keyframe after `min_segment_ms`), or on a new stream generation
//!   (new SPS/PPS: `EXT-X-DISCONTINUITY` + a new `EXT-X-MAP`);
//! * a **part** is closed when the next frame arrives and would push it past
//!   the part target (or starts a segment). Waiting for that next frame costs
//!   one frame interval but gives every sample its exact duration (next
//!   decode time minus its own), so the timeline has no gaps or overlaps.
//!   Capture jitter may still make a full part a little longer than the
//!   target once its last frame's duration is known; the part is then
//!   published without that frame, which starts the next part, so parts
//!   never exceed `PART-TARGET` (RFC 8216bis §4.4.4.9 makes that a MUST)
//!   and the timeline stays gapless.
//! * a **late frame** lengthens the sample before it (the picture holds); a
//!   wait longer than a part (a stalled source) keeps one part target and the
//!   rest is cut out of the media timeline, never left as a hole: to MSE a
//!   hole is a discontinuity, after which Chromium drops every frame up to the
//!   next keyframe and hls.js reloads the segment to fill it, in a loop.
//!
//! A playlist is published only once a complete segment exists, so plain
//! HLS clients never see an empty playlist.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::playlist::{MediaPlaylist, MultivariantPlaylist, PartEntry, SegmentEntry};
use crate::fmp4::{self, Sample, TIMESCALE};

/// Segmenter settings.
#[derive(Clone, Debug)]
pub struct SegmenterConfig {
    /// Maximum part duration (`PART-TARGET`), milliseconds.
    pub part_target_ms: u32,
    /// Initial `EXT-X-TARGETDURATION` (seconds, ≥ 1); raised, with a warning
    /// counted in [`Segmenter::target_raised`], if a segment turns out longer.
    pub target_duration_s: u64,
    /// Cut segments only at keyframes at least this far into the segment
    /// (0: every keyframe starts a segment).
    pub min_segment_ms: u32,
    /// A stream without keyframes is still cut after this long, so memory
    /// and the directory stay bounded (such a segment is not independent).
    pub max_segment_ms: u32,
    /// Complete segments listed in the media playlist.
    pub window_segments: usize,
    /// Segments whose files stay on disk after leaving the playlist (clients
    /// that just loaded an older playlist may still fetch them; §6.2.2).
    pub linger_segments: usize,
    /// Per-run file name prefix.
    pub prefix: String,
    /// Media playlist name, as referenced by the multivariant playlist.
    pub media_playlist: String,
    /// Multivariant playlist name.
    pub multivariant_playlist: String,
    /// Bit/s to announce until segments have been measured (encoder setting).
    pub bandwidth_hint: Option<u64>,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            part_target_ms: 200,
            target_duration_s: 1,
            min_segment_ms: 0,
            max_segment_ms: 10_000,
            window_segments: 6,
            linger_segments: 3,
            prefix: "live".into(),
            media_playlist: "live.m3u8".into(),
            multivariant_playlist: "index.m3u8".into(),
            bandwidth_hint: None,
        }
    }
}

/// The stream the frames belong to (one per SPS/PPS generation).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamDesc {
    pub generation: u64,
    /// `ftyp` + `moov` for this generation.
    pub init: Bytes,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
}

/// One encoded frame.
#[derive(Clone, Debug)]
pub struct FrameIn {
    /// Annex B access unit.
    pub data: Bytes,
    pub keyframe: bool,
    /// Decode (= presentation) time in `TIMESCALE` ticks, increasing.
    pub decode_time: u64,
    /// Estimated duration in ticks (used for the newest frame only).
    pub duration: u32,
    /// Capture wall-clock time, µs since the Unix epoch.
    pub wallclock_us: u64,
}

/// What the I/O side must do, in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Write `data` to `name` in the segment directory, atomically.
    Write { name: String, data: Bytes },
    /// Remove `name`: no playlist refers to it any more.
    Delete { name: String },
    /// New playlists, valid once every earlier `Write` is done.
    Publish(Published),
}

/// A published pair of playlists and where the live edge is.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub media_name: String,
    pub media: String,
    pub multivariant_name: String,
    pub multivariant: String,
    /// Newest complete segment.
    pub last_complete: u64,
    /// The segment being written and how many of its parts are listed.
    pub open_msn: u64,
    pub open_parts: u64,
    pub target_duration_s: u64,
    pub prefix: String,
}

impl Published {
    /// Whether this playlist answers a blocking reload for `_HLS_msn=msn`
    /// (and `_HLS_part=part`): it lists that part, that whole segment, or
    /// anything later (§6.2.5.2).
    pub fn satisfies(&self, msn: u64, part: Option<u64>) -> bool {
        if msn <= self.last_complete {
            return true;
        }
        match part {
            _ if msn < self.open_msn => true,
            Some(p) => msn == self.open_msn && p < self.open_parts,
            None => false,
        }
    }

    /// A request this far ahead is refused (§6.2.5.2: more than two
    /// segments beyond the last one in the playlist → 400).
    pub fn too_far(&self, msn: u64) -> bool {
        msn > self.open_msn.saturating_add(2)
    }
}

/// What a file name in the segment directory refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Init { generation: u64 },
    Segment { msn: u64 },
    Part { msn: u64, part: u64 },
}

impl NameKind {
    /// Parses a media file name written with `prefix`; `None` for anything
    /// else.
    pub fn parse(prefix: &str, name: &str) -> Option<NameKind> {
        let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
        if let Some(gen) = rest
            .strip_prefix("init")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(NameKind::Init {
                generation: gen.parse().ok()?,
            });
        }
        let stem = rest.strip_suffix(".m4s")?;
        match stem.split_once('.') {
            Some((msn, part)) => Some(NameKind::Part {
                msn: msn.parse().ok()?,
                part: part.parse().ok()?,
            }),
            None => Some(NameKind::Segment {
                msn: stem.parse().ok()?,
            }),
        }
    }
}

struct Pending {
    data: Bytes,
    keyframe: bool,
    decode_time: u64,
    duration: u32,
    wallclock_us: u64,
}

struct Seg {
    msn: u64,
    init_name: String,
    discontinuity: bool,
    pdt_us: u64,
    start_dt: u64,
    parts: Vec<PartEntry>,
    /// Part bytes, kept until the segment file is written.
    part_data: Vec<Bytes>,
    duration: u64,
    bytes: u64,
    complete: Option<String>,
}

impl Seg {
    fn files(&self) -> impl Iterator<Item = String> + '_ {
        self.parts
            .iter()
            .map(|p| p.uri.clone())
            .chain(self.complete.clone())
    }
}

/// The state machine. See the module documentation.
pub struct Segmenter {
    cfg: SegmenterConfig,
    part_target: u64,
    target_duration_s: u64,
    target_raised: u64,
    stream: Option<StreamDesc>,
    init_name: String,
    /// Complete segments in the playlist window, oldest first.
    window: VecDeque<Seg>,
    open: Option<Seg>,
    part: Vec<Pending>,
    next_msn: u64,
    fragment_seq: u32,
    discontinuity_sequence: u64,
    retired: VecDeque<Vec<String>>,
    peak_bandwidth: u64,
    parts_written: u64,
    segments_written: u64,
    /// Source stalls cut out of this generation's media timeline, in ticks.
    cut: u64,
}

impl Segmenter {
    pub fn new(cfg: SegmenterConfig) -> Segmenter {
        let part_target = u64::from(cfg.part_target_ms.max(1)) * u64::from(TIMESCALE) / 1000;
        let target_duration_s = cfg.target_duration_s.max(1);
        Segmenter {
            cfg,
            part_target,
            target_duration_s,
            target_raised: 0,
            stream: None,
            init_name: String::new(),
            window: VecDeque::new(),
            open: None,
            part: Vec::new(),
            next_msn: 0,
            fragment_seq: 0,
            discontinuity_sequence: 0,
            retired: VecDeque::new(),
            peak_bandwidth: 0,
            parts_written: 0,
            segments_written: 0,
            cut: 0,
        }
    }

    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    /// Parts and segments written so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.parts_written, self.segments_written)
    }

    /// How often a segment was longer than the target duration.
    pub fn target_raised(&self) -> u64 {
        self.target_raised
    }

    /// Feeds one frame of `stream`.
    pub fn push(&mut self, stream: &StreamDesc, mut frame: FrameIn) -> Vec<Action> {
        let mut actions = Vec::new();
        let new_gen = self
            .stream
            .as_ref()
            .is_none_or(|s| s.generation != stream.generation);
        if new_gen {
            // A discontinuity: the new timeline may start anywhere.
            self.cut = 0;
        }
        frame.decode_time = frame.decode_time.saturating_sub(self.cut);
        if (new_gen || self.open.is_none()) && !frame.keyframe {
            // Decoding can only start on a keyframe.
            return actions;
        }

        // The newest pending sample lasts until this frame starts: a late frame
        // keeps the previous one on screen. Never leave a hole instead: to MSE a
        // step of more than twice the last frame's duration is a discontinuity,
        // and Chromium then drops every frame up to the next keyframe (hls.js
        // reloads the segment to fill the hole, forever). A sample may not
        // outlast a part, so a longer wait (a stalled source) is cut out of the
        // media timeline; the program date-time still follows the capture clock.
        if let Some(last) = self.part.last_mut() {
            let exact = frame.decode_time.saturating_sub(last.decode_time);
            if !new_gen && exact > 0 {
                let kept = exact.min(self.part_target);
                self.cut += exact - kept;
                frame.decode_time -= exact - kept;
                last.duration = u32::try_from(kept).unwrap_or(u32::MAX);
            }
        }

        let mut changed = false;
        // Capture jitter made the open part longer than the target: publish
        // it without its newest frame, which starts the next part. Samples
        // keep their exact durations, so the timeline has no gaps.
        if !new_gen && self.part.len() > 1 && self.pending_duration() > self.part_target {
            if let Some(carry) = self.part.pop() {
                self.close_part(&mut actions);
                self.part.push(carry);
                changed = true;
            }
        }

        let seg_elapsed = self
            .open
            .as_ref()
            .map_or(0, |s| frame.decode_time.saturating_sub(s.start_dt));
        let min_seg = u64::from(self.cfg.min_segment_ms) * u64::from(TIMESCALE) / 1000;
        let max_seg = u64::from(self.cfg.max_segment_ms.max(1)) * u64::from(TIMESCALE) / 1000;
        let cut_segment = self.open.is_some()
            && (new_gen
                || (frame.keyframe && seg_elapsed >= min_seg)
                || seg_elapsed + u64::from(frame.duration) > max_seg);
        let part_start = self.part.first().map(|p| p.decode_time);
        let cut_part = cut_segment
            || frame.keyframe
            || part_start.is_some_and(|s| {
                // Allow 5 % for capture jitter; close_part trims the rest.
                frame.decode_time + u64::from(frame.duration) - s.min(frame.decode_time)
                    > self.part_target + self.part_target / 20
            });

        if cut_part && !self.part.is_empty() {
            self.close_part(&mut actions);
            changed = true;
        }
        if cut_segment {
            self.close_segment(&mut actions);
        }
        if new_gen {
            self.init_name = format!("{}-init{}.mp4", self.cfg.prefix, stream.generation);
            actions.push(Action::Write {
                name: self.init_name.clone(),
                data: stream.init.clone(),
            });
        }
        if self.open.is_none() {
            let discontinuity = new_gen && self.stream.is_some();
            self.open = Some(Seg {
                msn: self.next_msn,
                init_name: self.init_name.clone(),
                discontinuity,
                pdt_us: frame.wallclock_us,
                start_dt: frame.decode_time,
                parts: Vec::new(),
                part_data: Vec::new(),
                duration: 0,
                bytes: 0,
                complete: None,
            });
            self.next_msn += 1;
        }
        if new_gen {
            self.stream = Some(stream.clone());
        }
        self.part.push(Pending {
            data: frame.data,
            keyframe: frame.keyframe,
            decode_time: frame.decode_time,
            duration: frame.duration.max(1),
            wallclock_us: frame.wallclock_us,
        });
        if changed {
            if let Some(p) = self.published() {
                actions.push(Action::Publish(p));
            }
        }
        actions
    }

    fn pending_duration(&self) -> u64 {
        self.part.iter().map(|p| u64::from(p.duration)).sum()
    }

    fn close_part(&mut self, actions: &mut Vec<Action>) {
        let Some(seg) = self.open.as_mut() else {
            self.part.clear();
            return;
        };
        let total: u64 = self.part.iter().map(|p| u64::from(p.duration)).sum();
        if total > self.part_target {
            // Only a single frame longer than the part target gets here (the
            // server keeps the target above the frame interval): shorten it
            // rather than break PART-TARGET; keep ≥ 1 tick.
            let excess = total - self.part_target;
            if let Some(last) = self.part.last_mut() {
                let d = u64::from(last.duration).saturating_sub(excess).max(1);
                last.duration = u32::try_from(d).unwrap_or(1);
            }
        }
        let duration: u64 = self.part.iter().map(|p| u64::from(p.duration)).sum();
        let samples: Vec<Sample> = self
            .part
            .iter()
            .map(|p| Sample {
                data: &p.data,
                duration: p.duration,
                keyframe: p.keyframe,
            })
            .collect();
        let first = &self.part[0];
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        let data = fmp4::fragment(
            self.fragment_seq,
            first.decode_time,
            &samples,
            Some(first.wallclock_us),
        );
        let name = format!("{}-{}.{}.m4s", self.cfg.prefix, seg.msn, seg.parts.len());
        seg.parts.push(PartEntry {
            uri: name.clone(),
            duration,
            independent: first.keyframe,
        });
        seg.duration += duration;
        seg.bytes += data.len() as u64;
        seg.part_data.push(data.clone());
        self.part.clear();
        self.parts_written += 1;
        actions.push(Action::Write { name, data });
    }

    fn close_segment(&mut self, actions: &mut Vec<Action>) {
        let Some(mut seg) = self.open.take() else {
            return;
        };
        if seg.parts.is_empty() {
            return;
        }
        let mut buf = BytesMut::with_capacity(seg.bytes as usize);
        for p in seg.part_data.drain(..) {
            buf.extend_from_slice(&p);
        }
        let name = format!("{}-{}.m4s", self.cfg.prefix, seg.msn);
        actions.push(Action::Write {
            name: name.clone(),
            data: buf.freeze(),
        });
        seg.complete = Some(name);
        self.segments_written += 1;
        if let Some(bw) = (seg.bytes * 8 * u64::from(TIMESCALE)).checked_div(seg.duration) {
            self.peak_bandwidth = self.peak_bandwidth.max(bw);
        }
        // §4.4.3.1: EXTINF rounded must not exceed the target duration.
        let rounded = (seg.duration + u64::from(TIMESCALE) / 2) / u64::from(TIMESCALE);
        if rounded > self.target_duration_s {
            self.target_duration_s = rounded;
            self.target_raised += 1;
        }
        self.window.push_back(seg);
        while self.window.len() > self.cfg.window_segments.max(1) {
            let Some(old) = self.window.pop_front() else {
                break;
            };
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
            let mut files: Vec<String> = old.files().collect();
            let still_used = self
                .window
                .iter()
                .chain(self.open.iter())
                .any(|s| s.init_name == old.init_name)
                || old.init_name == self.init_name;
            if !still_used {
                files.push(old.init_name.clone());
            }
            self.retired.push_back(files);
        }
        while self.retired.len() > self.cfg.linger_segments {
            if let Some(files) = self.retired.pop_front() {
                actions.extend(files.into_iter().map(|name| Action::Delete { name }));
            }
        }
    }

    /// The current playlists, once a complete segment exists.
    pub fn published(&self) -> Option<Published> {
        let last = self.window.back()?;
        let open = self.open.as_ref();
        let media = self.media_playlist().render();
        let stream = self.stream.as_ref()?;
        let mv = MultivariantPlaylist {
            media_uri: self.cfg.media_playlist.clone(),
            // BANDWIDTH must cover the peak segment bitrate; the encoder's
            // setting (+10 % container overhead) until a bigger one is seen.
            bandwidth: self
                .peak_bandwidth
                .max(self.cfg.bandwidth_hint.map_or(0, |b| b + b / 10)),
            average_bandwidth: None,
            codecs: stream.codec.clone(),
            width: stream.width,
            height: stream.height,
            frame_rate: stream.fps,
        };
        Some(Published {
            media_name: self.cfg.media_playlist.clone(),
            media,
            multivariant_name: self.cfg.multivariant_playlist.clone(),
            multivariant: mv.render(),
            last_complete: last.msn,
            open_msn: open.map_or(last.msn + 1, |s| s.msn),
            open_parts: open.map_or(0, |s| s.parts.len() as u64),
            target_duration_s: self.target_duration_s,
            prefix: self.cfg.prefix.clone(),
        })
    }

    /// The media playlist model for the current state.
    pub fn media_playlist(&self) -> MediaPlaylist {
        let all: Vec<&Seg> = self.window.iter().chain(self.open.iter()).collect();
        // §4.4.4.9: parts older than three target durations from the end
        // are no longer listed.
        let horizon = 3 * self.target_duration_s * u64::from(TIMESCALE);
        let mut later = 0u64;
        let mut with_parts = vec![false; all.len()];
        for (i, s) in all.iter().enumerate().rev() {
            with_parts[i] = later < horizon;
            later += s.duration;
        }
        let mut prev_init: Option<&str> = None;
        let segments = all
            .iter()
            .zip(with_parts)
            .map(|(s, parts)| {
                let map = (prev_init != Some(s.init_name.as_str())).then(|| s.init_name.clone());
                prev_init = Some(&s.init_name);
                SegmentEntry {
                    msn: s.msn,
                    map,
                    discontinuity: s.discontinuity,
                    program_date_time_us: s.pdt_us,
                    parts: if parts { s.parts.clone() } else { Vec::new() },
                    complete: s.complete.clone().map(|uri| (uri, s.duration)),
                }
            })
            .collect();
        let preload_hint = self
            .open
            .as_ref()
            .map(|s| format!("{}-{}.{}.m4s", self.cfg.prefix, s.msn, s.parts.len()));
        MediaPlaylist {
            target_duration_s: self.target_duration_s,
            part_target: self.part_target,
            part_hold_back: 3 * self.part_target,
            media_sequence: all.first().map_or(0, |s| s.msn),
            discontinuity_sequence: self.discontinuity_sequence,
            segments,
            preload_hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};
    use std::collections::BTreeSet;

    const T0_WALL: u64 = 1_700_000_000_000_000;

    fn stream(generation: u64) -> StreamDesc {
        StreamDesc {
            generation,
            init: Bytes::from_static(b"init"),
            codec: "avc1.42c01f".into(),
            width: 640,
            height: 360,
            fps: Some(30.0),
        }
    }

    /// Capture time of frame `i` at 30 fps, µs after the first.
    fn at(i: u64) -> u64 {
        i * 100_000 / 3
    }

    /// `n` frames at 30 fps, keyframe every `gop`, with up to `jitter_us` of
    /// capture jitter (deterministic).
    fn frames(n: u64, gop: u64, jitter_us: u64) -> impl Iterator<Item = FrameIn> {
        (0..n).map(move |i| {
            let j = if jitter_us > 0 {
                (i * 7919) % (2 * jitter_us + 1)
            } else {
                0
            };
            let t = at(i) + j;
            FrameIn {
                // A minimal Annex B NAL (IDR or non-IDR slice).
                data: Bytes::from(if i % gop == 0 {
                    vec![0, 0, 0, 1, 0x65, 0x88, i as u8]
                } else {
                    vec![0, 0, 0, 1, 0x41, 0x9a, i as u8]
                }),
                keyframe: i % gop == 0,
                decode_time: fmp4::us_to_ticks(1_000_000 + t),
                duration: fmp4::us_to_ticks(33_333) as u32,
                wallclock_us: T0_WALL + t,
            }
        })
    }

    struct Run {
        writes: Vec<(String, Bytes)>,
        published: Vec<Published>,
        live: BTreeSet<String>,
        max_live: usize,
    }

    fn run(seg: &mut Segmenter, input: impl Iterator<Item = FrameIn>, s: &StreamDesc) -> Run {
        run_on(seg, input, s, BTreeSet::new())
    }

    /// [`run`], continuing from the files `live` left by an earlier run.
    fn run_on(
        seg: &mut Segmenter,
        input: impl Iterator<Item = FrameIn>,
        s: &StreamDesc,
        live: BTreeSet<String>,
    ) -> Run {
        let mut r = Run {
            writes: Vec::new(),
            published: Vec::new(),
            live,
            max_live: 0,
        };
        for f in input {
            for a in seg.push(s, f) {
                match a {
                    Action::Write { name, data } => {
                        r.live.insert(name.clone());
                        r.writes.push((name, data));
                    }
                    Action::Delete { name } => {
                        assert!(
                            r.live.remove(&name),
                            "deleted {name} twice or never written"
                        );
                    }
                    Action::Publish(p) => {
                        // Every file a playlist names exists when it is published.
                        for line in p.media.lines() {
                            let uri = line
                                .split("URI=\"")
                                .nth(1)
                                .and_then(|u| u.split('"').next())
                                .or_else(|| (!line.starts_with('#')).then_some(line));
                            if let Some(uri) = uri {
                                if !line.starts_with("#EXT-X-PRELOAD-HINT") {
                                    assert!(r.live.contains(uri), "{uri} listed but not on disk");
                                } else {
                                    assert!(!r.live.contains(uri), "hint {uri} already exists");
                                }
                            }
                        }
                        r.published.push(p);
                    }
                }
            }
            r.max_live = r.max_live.max(r.live.len());
        }
        r
    }

    fn part_durations(media: &str) -> Vec<f64> {
        media
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn parts_fit_the_target_and_pack_well() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let r = run(&mut seg, frames(300, 30, 450), &stream(1));
        let last = r.published.last().expect("published");
        // All but the last part of each segment (that one may be short).
        let lines: Vec<&str> = last.media.lines().collect();
        let durs: Vec<f64> = lines
            .windows(2)
            .filter(|w| !w[1].starts_with("#EXTINF"))
            .flat_map(|w| part_durations(w[0]))
            .collect();
        assert!(!durs.is_empty());
        for d in &durs {
            assert!(*d <= 0.2, "part of {d} s exceeds PART-TARGET");
            // 5 or 6 frames of 1/30 s, whatever the jitter.
            assert!(*d >= 0.16, "part of {d} s is badly packed");
        }
        let mean = durs.iter().sum::<f64>() / durs.len() as f64;
        assert!(mean >= 0.175, "parts average {mean} s");
        // Gapless: every segment lasts exactly its 30 frames.
        for l in last
            .media
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
        {
            let d: f64 = l.trim_end_matches(',').parse().expect("extinf");
            assert!((d - 1.0).abs() < 0.002, "segment of {d} s");
        }
        assert!(last.media.contains("PART-HOLD-BACK=0.600"));
        assert!(last.media.contains("PART-TARGET=0.200"));
    }

    #[test]
    fn sequence_monotonic_and_hint_names_next_part() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let r = run(&mut seg, frames(600, 30, 110), &stream(1));
        let mut last_seq = 0;
        let mut hint: Option<String> = None;
        for p in &r.published {
            let seq: u64 = p
                .media
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .and_then(|s| s.parse().ok())
                .expect("media sequence");
            assert!(seq >= last_seq);
            last_seq = seq;
            let parts: Vec<&str> = p
                .media
                .lines()
                .filter(|l| l.starts_with("#EXT-X-PART:"))
                .collect();
            if let Some(h) = &hint {
                // The previous hint is now the newest part, unless a new
                // segment began (then its first part is `msn.0`).
                let newest = parts.last().expect("parts");
                if !newest.contains(".0.m4s") {
                    assert!(newest.contains(h.as_str()), "{newest} vs hint {h}");
                }
            }
            hint = p
                .media
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
                .map(|u| u.trim_end_matches('"').to_owned());
            assert!(hint.is_some());
        }
        assert!(last_seq > 10);
    }

    #[test]
    fn window_and_directory_stay_bounded_for_hours() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        // Two hours at 30 fps.
        let r = run(&mut seg, frames(2 * 3600 * 30, 30, 55), &stream(1));
        let last = r.published.last().expect("published");
        let segments = last
            .media
            .lines()
            .filter(|l| l.starts_with("#EXTINF"))
            .count();
        assert_eq!(segments, 6);
        // (window + linger + open) segments, each 1 segment file + parts, + init.
        // 30 frames make 5 to 7 parts (jitter moves part boundaries).
        assert!(r.max_live <= (6 + 3 + 1) * 8 + 1, "{} files", r.max_live);
        assert!(r.live.len() > 20);
        assert_eq!(seg.counts().1, 2 * 3600 - 1);
    }

    #[test]
    fn segments_start_with_a_keyframe_and_concatenate_their_parts() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let r = run(&mut seg, frames(200, 45, 0), &stream(1));
        let files: std::collections::HashMap<_, _> = r.writes.iter().cloned().collect();
        let mut checked = 0;
        for (name, data) in &r.writes {
            let Some(NameKind::Segment { msn }) = NameKind::parse("live", name) else {
                continue;
            };
            let mut concat = Vec::new();
            for i in 0.. {
                match files.get(&format!("live-{msn}.{i}.m4s")) {
                    Some(p) => concat.extend_from_slice(p),
                    None => break,
                }
            }
            assert_eq!(&concat[..], &data[..], "segment {msn}");
            let mut buf = &data[..];
            let Any::Prft(_) = Any::decode(&mut buf).expect("prft") else {
                panic!("prft first")
            };
            let Any::Moof(moof) = Any::decode(&mut buf).expect("moof") else {
                panic!("moof second")
            };
            let first = moof.traf[0].trun[0].samples.iter().next().expect("sample");
            assert_eq!(first.flags, Some(fmp4::SYNC_SAMPLE_FLAGS), "segment {msn}");
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    /// (tfdt, sample durations) of every part, in write order.
    fn part_spans(r: &Run) -> Vec<(u64, Vec<u32>)> {
        r.writes
            .iter()
            .filter(|(n, _)| matches!(NameKind::parse("live", n), Some(NameKind::Part { .. })))
            .map(|(_, data)| {
                let mut buf = &data[..];
                let _prft = Any::decode(&mut buf).expect("prft");
                let Any::Moof(moof) = Any::decode(&mut buf).expect("moof") else {
                    panic!("moof second")
                };
                let traf = &moof.traf[0];
                let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
                let durs = traf.trun[0]
                    .samples
                    .iter()
                    .map(|s| s.duration.expect("duration"))
                    .collect();
                (tfdt, durs)
            })
            .collect()
    }

    #[test]
    fn late_frames_and_stalls_leave_no_hole_in_the_timeline() {
        // Frame 10 is 150 ms late (more than 4 frame intervals), frame 40
        // comes after a further 3 s stall; both are P-frames. A hole before either
        // would make MSE drop everything up to the next keyframe.
        let delay = |i: u64| match i {
            0..10 => 0,
            10..40 => 150_000,
            _ => 3_150_000,
        };
        let late = frames(90, 60, 0).zip(0..).map(|(mut f, i)| {
            f.decode_time += fmp4::us_to_ticks(delay(i));
            f.wallclock_us += delay(i);
            f
        });
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let r = run(&mut seg, late, &stream(1));
        let spans = part_spans(&r);
        assert!(spans.len() > 10);
        for w in spans.windows(2) {
            let end = w[0].0 + w[0].1.iter().map(|&d| u64::from(d)).sum::<u64>();
            assert_eq!(end, w[1].0, "hole or overlap between parts");
        }
        for d in part_durations(&r.published.last().expect("published").media) {
            assert!(d <= 0.2, "part of {d} s exceeds PART-TARGET");
        }
        // The late frame's predecessor is shown 150 ms longer; of the stall,
        // one part target (0.2 s) stays in the timeline, the rest is cut out.
        let durs: Vec<u32> = spans.iter().flat_map(|(_, d)| d.clone()).collect();
        assert!(durs.len() > 60);
        for (i, &d) in (0..).zip(&durs) {
            let want = match i {
                39 => fmp4::us_to_ticks(200_000),
                _ => fmp4::us_to_ticks(at(i + 1) + delay(i + 1) - at(i) - delay(i)),
            };
            assert_eq!(u64::from(d), want, "sample {i}");
        }
        // The program date-time of the segment after the stall is still the
        // capture time of its first frame (2 s of frames + 0.15 s + 3 s).
        let media = &r.published.last().expect("published").media;
        assert!(
            media.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.150Z"),
            "{media}"
        );
    }

    #[test]
    fn program_date_time_is_the_first_frames_capture_time() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let r = run(&mut seg, frames(95, 30, 0), &stream(1));
        let media = &r.published.last().expect("published").media;
        let pdts: Vec<&str> = media
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
            .collect();
        assert_eq!(
            pdts,
            [
                "2023-11-14T22:13:20.000Z",
                "2023-11-14T22:13:21.000Z",
                "2023-11-14T22:13:22.000Z",
                "2023-11-14T22:13:23.000Z"
            ]
        );
    }

    #[test]
    fn golden_playlist_after_two_segments() {
        let mut seg = Segmenter::new(SegmenterConfig {
            prefix: "r".into(),
            bandwidth_hint: Some(1_000_000),
            ..SegmenterConfig::default()
        });
        let r = run(&mut seg, frames(64, 30, 0), &stream(1));
        let p = r.published.last().expect("published");
        let parts_of = |msn: u32, n: u32, last: &str| -> String {
            (0..n)
                .map(|i| {
                    let d = if i + 1 == n { last } else { "0.200000" };
                    let ind = if i == 0 { ",INDEPENDENT=YES" } else { "" };
                    format!("#EXT-X-PART:DURATION={d},URI=\"r-{msn}.{i}.m4s\"{ind}\n")
                })
                .collect()
        };
        let expected = format!(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n\
             #EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"r-init1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n{}\
             #EXTINF:1.000000,\nr-0.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z\n{}\
             #EXTINF:1.000000,\nr-1.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"r-2.0.m4s\"\n",
            parts_of(0, 5, "0.200000"),
            parts_of(1, 5, "0.200000"),
        );
        assert_eq!(p.media, expected);
        assert_eq!(
            p.multivariant,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-STREAM-INF:BANDWIDTH=1100000,\
             CODECS=\"avc1.42c01f\",RESOLUTION=640x360,FRAME-RATE=30.000\nlive.m3u8\n"
        );
        assert_eq!((p.last_complete, p.open_msn, p.open_parts), (1, 2, 0));
    }

    #[test]
    fn new_generation_is_a_discontinuity_with_a_new_map() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let mut all = frames(200, 30, 0);
        let s1 = stream(1);
        let r0 = run(&mut seg, all.by_ref().take(95), &s1);
        let mut s2 = stream(2);
        s2.width = 1280;
        s2.height = 720;
        // The generation changes on the next keyframe (frame 120).
        let r1 = run_on(&mut seg, all.by_ref().take(25), &s1, r0.live);
        let r = run_on(&mut seg, all, &s2, r1.live.clone());
        assert!(r1
            .published
            .iter()
            .all(|p| !p.media.contains("DISCONTINUITY")));
        let media = &r.published.last().expect("published").media;
        let i_disc = media.find("#EXT-X-DISCONTINUITY\n").expect("discontinuity");
        let i_map = media
            .find("#EXT-X-MAP:URI=\"live-init2.mp4\"")
            .expect("map");
        assert!(i_map > i_disc);
        assert!(r.writes.iter().any(|(n, _)| n == "live-init2.mp4"));
        assert!(r
            .published
            .last()
            .unwrap()
            .multivariant
            .contains("1280x720"));
    }

    #[test]
    fn old_init_and_discontinuity_age_out() {
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let mut all = frames(900, 30, 0);
        let r0 = run(&mut seg, all.by_ref().take(60), &stream(1));
        let r = run_on(&mut seg, all, &stream(2), r0.live);
        let media = &r.published.last().expect("published").media;
        assert!(media.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{media}");
        assert!(!media.contains("#EXT-X-DISCONTINUITY\n"));
        assert!(media.contains("#EXT-X-MAP:URI=\"live-init2.mp4\""));
        assert!(!r.live.contains("live-init1.mp4"));
    }

    #[test]
    fn min_segment_groups_gops_and_parts_stay_independent_at_keyframes() {
        let mut seg = Segmenter::new(SegmenterConfig {
            min_segment_ms: 900,
            target_duration_s: 1,
            ..SegmenterConfig::default()
        });
        // Keyframe every 0.5 s: segments of two GOPs.
        let r = run(&mut seg, frames(300, 15, 0), &stream(1));
        let media = &r.published.last().expect("published").media;
        assert!(media.contains("#EXTINF:1.000000,"), "{media}");
        // Part 3 starts on the mid-segment keyframe (frame 15).
        assert!(media.contains(".3.m4s\",INDEPENDENT=YES"), "{media}");
    }

    #[test]
    fn keyframeless_stream_is_still_cut() {
        let mut seg = Segmenter::new(SegmenterConfig {
            max_segment_ms: 2000,
            ..SegmenterConfig::default()
        });
        let r = run(&mut seg, frames(30 * 60, 100_000, 0), &stream(1));
        assert!(r.max_live < 120, "{}", r.max_live);
        assert!(seg.target_raised() > 0);
    }

    #[test]
    fn blocking_reload_predicate() {
        let p = Published {
            media_name: String::new(),
            media: String::new(),
            multivariant_name: String::new(),
            multivariant: String::new(),
            last_complete: 9,
            open_msn: 10,
            open_parts: 2,
            target_duration_s: 1,
            prefix: "r".into(),
        };
        assert!(p.satisfies(9, None));
        assert!(p.satisfies(9, Some(7)));
        assert!(p.satisfies(10, Some(1)));
        assert!(!p.satisfies(10, Some(2)));
        assert!(!p.satisfies(10, None));
        assert!(!p.satisfies(11, Some(0)));
        assert!(!p.too_far(12));
        assert!(p.too_far(13));
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            NameKind::parse("ab12", "ab12-7.3.m4s"),
            Some(NameKind::Part { msn: 7, part: 3 })
        );
        assert_eq!(
            NameKind::parse("ab12", "ab12-7.m4s"),
            Some(NameKind::Segment { msn: 7 })
        );
        assert_eq!(
            NameKind::parse("ab12", "ab12-init2.mp4"),
            Some(NameKind::Init { generation: 2 })
        );
        assert_eq!(NameKind::parse("ab12", "zz-7.m4s"), None);
        assert_eq!(NameKind::parse("ab12", "ab12-x.m4s"), None);
        assert_eq!(NameKind::parse("ab12", "ab12-7.3.m4s.tmp"), None);
    }
}
