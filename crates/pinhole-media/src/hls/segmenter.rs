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
//!
//! Other tracks (audio, [`Segmenter::push_other`]) ride along: their frames
//! go into the part open when they arrive, as a second `traf` of the same
//! fragment, on the same timeline (a stall cut out of the video is cut out
//! of them too). Parts and segments are still cut by the video alone.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

pub use super::names::NameKind;
use super::playlist::{MediaPlaylist, MultivariantPlaylist, PartEntry, SegmentEntry};
use crate::fmp4::{self, Payload, ProducerTime, Run, Sample, TIMESCALE};
use crate::track::us_to;

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

/// One frame of a track besides video (an audio packet).
#[derive(Clone, Debug)]
pub struct OtherFrameIn {
    /// The track's fMP4 `track_ID` (as in the init segment).
    pub track: u32,
    /// Ticks per second of `decode_time` and `duration`.
    pub timescale: u32,
    /// The sample, as it goes into the `mdat`.
    pub data: Bytes,
    /// Decode time on the capture clock, in `timescale` ticks, increasing.
    pub decode_time: u64,
    pub duration: u32,
}

/// The pending samples of one other track.
struct OtherTrack {
    track: u32,
    samples: Vec<(Bytes, u64, u32)>,
    /// Where its timeline ends so far (in this generation).
    end: Option<u64>,
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
    /// What a DASH manifest of the same files needs ([`crate::dash`]).
    pub dash: Box<DashInfo>,
}

/// The current stream generation as DASH sees it: the same init segment
/// and segments, numbered by media sequence number (`$Number$`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DashInfo {
    pub generation: u64,
    pub init: String,
    pub prefix: String,
    /// The generation's first segment: its number, decode time (ticks) and
    /// capture wall-clock time (µs since the epoch): the MPD's anchor.
    pub start_number: u64,
    pub start_decode_time: u64,
    pub start_wallclock_us: u64,
    /// The newest complete segment: its number and start (decode ticks,
    /// wall µs; also the producer reference time).
    pub newest_number: u64,
    pub newest_decode_time: u64,
    pub newest_wallclock_us: u64,
    /// The segment being written (chunked delivery).
    pub open_number: u64,
    /// Media in the playlist window, ticks.
    pub window: u64,
    pub part_target: u64,
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
    pub bandwidth: u64,
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
    others: Vec<OtherTrack>,
    /// Decode time of the newest video frame (after cuts).
    video_last: Option<u64>,
    next_msn: u64,
    fragment_seq: u32,
    discontinuity_sequence: u64,
    retired: VecDeque<Vec<String>>,
    peak_bandwidth: u64,
    parts_written: u64,
    segments_written: u64,
    /// Source stalls cut out of this generation's media timeline, in ticks.
    cut: u64,
    /// The generation's first segment: (msn, decode time, wall µs).
    gen_start: Option<(u64, u64, u64)>,
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
            others: Vec::new(),
            video_last: None,
            next_msn: 0,
            fragment_seq: 0,
            discontinuity_sequence: 0,
            retired: VecDeque::new(),
            peak_bandwidth: 0,
            parts_written: 0,
            segments_written: 0,
            cut: 0,
            gen_start: None,
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
            // The other tracks' timelines restart with the video's.
            self.others.clear();
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
            if new_gen {
                self.gen_start = Some((self.next_msn, frame.decode_time, frame.wallclock_us));
            }
            self.next_msn += 1;
        }
        if new_gen {
            self.stream = Some(stream.clone());
        }
        self.video_last = Some(frame.decode_time);
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

    /// Feeds one frame of another track (audio) of `stream`. It goes into
    /// the part being filled; frames before the first video keyframe of a
    /// generation, or falling in a stretch cut out of the timeline, are
    /// dropped.
    pub fn push_other(&mut self, stream: &StreamDesc, frame: OtherFrameIn) {
        let current = self
            .stream
            .as_ref()
            .is_some_and(|s| s.generation == stream.generation);
        if !current || self.open.is_none() || frame.timescale == 0 {
            return;
        }
        let i = match self.others.iter().position(|o| o.track == frame.track) {
            Some(i) => i,
            None => {
                self.others.push(OtherTrack {
                    track: frame.track,
                    samples: Vec::new(),
                    end: None,
                });
                self.others.len() - 1
            }
        };
        let cut = us_to(frame.timescale, self.cut * 1_000_000 / u64::from(TIMESCALE));
        let Some(o) = self.others.get_mut(i) else {
            return;
        };
        let duration = frame.duration.max(1);
        let mut dt = frame.decode_time.saturating_sub(cut);
        // Further ahead of the video than a sample may last: captured while
        // the video stalls, in a stretch the next video frame cuts out of
        // the timeline (audio comes sooner than video, so it arrives first).
        let ahead = u128::from(dt) * u128::from(TIMESCALE) / u128::from(frame.timescale);
        if self
            .video_last
            .is_some_and(|v| ahead > u128::from(v + self.part_target))
        {
            return;
        }
        if let Some(end) = o.end {
            if dt < end {
                // Overlaps what was already placed: captured during a stall
                // that was cut out (drop it), or by at most a frame (move it).
                if end - dt > u64::from(duration) {
                    return;
                }
                dt = end;
            }
        }
        o.end = Some(dt + u64::from(duration));
        o.samples.push((frame.data, dt, duration));
    }

    fn pending_duration(&self) -> u64 {
        self.part.iter().map(|p| u64::from(p.duration)).sum()
    }

    fn close_part(&mut self, actions: &mut Vec<Action>) {
        let Some(seg) = self.open.as_mut() else {
            self.part.clear();
            for o in &mut self.others {
                o.samples.clear();
            }
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
        let other_samples: Vec<(u32, u64, Vec<Sample>)> = self
            .others
            .iter()
            .filter_map(|o| {
                let &(_, base, _) = o.samples.first()?;
                let samples = o
                    .samples
                    .iter()
                    .map(|(data, _, duration)| Sample {
                        data,
                        duration: *duration,
                        keyframe: true,
                    })
                    .collect();
                Some((o.track, base, samples))
            })
            .collect();
        let mut runs = vec![Run {
            track_id: fmp4::TRACK_ID,
            base_decode_time: first.decode_time,
            samples: &samples,
            payload: Payload::AnnexB,
        }];
        runs.extend(other_samples.iter().map(|(track, base, samples)| Run {
            track_id: *track,
            base_decode_time: *base,
            samples,
            payload: Payload::Raw,
        }));
        let prft = ProducerTime {
            track_id: fmp4::TRACK_ID,
            media_time: first.decode_time,
            wallclock_us: first.wallclock_us,
        };
        let data =
            fmp4::try_fragment_runs(self.fragment_seq, &runs, Some(prft)).unwrap_or_default();
        drop(runs);
        drop(other_samples);
        for o in &mut self.others {
            o.samples.clear();
        }
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
        let bandwidth = self
            .peak_bandwidth
            .max(self.cfg.bandwidth_hint.map_or(0, |b| b + b / 10));
        let (start_number, start_decode_time, start_wallclock_us) =
            self.gen_start
                .unwrap_or((last.msn, last.start_dt, last.pdt_us));
        let dash = DashInfo {
            generation: stream.generation,
            init: self.init_name.clone(),
            prefix: self.cfg.prefix.clone(),
            start_number,
            start_decode_time,
            start_wallclock_us,
            newest_number: last.msn,
            newest_decode_time: last.start_dt,
            newest_wallclock_us: last.pdt_us,
            open_number: open.map_or(last.msn + 1, |s| s.msn),
            window: self.window.iter().map(|s| s.duration).sum(),
            part_target: self.part_target,
            codecs: stream.codec.clone(),
            width: stream.width,
            height: stream.height,
            fps: stream.fps,
            bandwidth,
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
            dash: Box::new(dash),
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
mod tests;
