//! Where a frame fans out: one stream of tracks, many viewers.
//!
//! A stream is one H.264 video track ([`Hub::publish`]) plus any number of
//! others ([`Hub::add_track`], [`Hub::publish_on`]: Opus audio, the camera's
//! own JPEGs), all on the capture clock. Sources publish through a [`Feed`]
//! (the sink the sources' contract names). Publishing never blocks on
//! viewers: it appends the frame to one [`ring::Ring`] shared by every track
//! and bumps a watch channel. Each viewer task pulls from the ring at its own
//! pace through [`Viewer::recv`] and takes the tracks it can carry; every
//! viewer gets the same `Arc<Frame>` (the bytes are never copied per viewer),
//! and one that falls more than `max_lag` video frames behind a newer
//! keyframe skips to it instead of holding memory or slowing anyone else.

pub mod feed;
mod generation;
pub mod ring;
pub mod timing;
mod viewer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pinhole_media::fmp4::{self, Payload, ProducerTime, Run, Sample};
use pinhole_media::{opus, AccessUnit, Clock, Codec, StreamInfo, SystemClock, TrackKind};
use tokio::sync::watch;

pub use feed::Feed;
use generation::update_stream;
use ring::Ring;
use timing::TrackClock;
pub use viewer::Viewer;

/// A track's number: its `track_ID` in fMP4. The video track is 1.
pub type TrackId = u32;

/// The video track's ID.
pub const VIDEO: TrackId = fmp4::TRACK_ID;

/// Another track's frame captured this soon after a keyframe, but published
/// before it, still goes to a viewer starting at that keyframe.
const JOIN_WINDOW_US: u64 = 1_000_000;

/// Hub tuning. The defaults suit 720p30 (a 1 s lag window; a longer GOP is
/// still held whole for new viewers).
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Frames a viewer may trail the newest frame before it skips ahead.
    pub max_lag_frames: u64,
    /// Upper bound on the bytes held in the ring (GOP cache + lag window).
    pub max_bytes: usize,
    /// Frame rate assumed for sample durations until one is measured.
    pub nominal_fps: f64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_lag_frames: 30,
            max_bytes: 16 << 20,
            nominal_fps: 30.0,
        }
    }
}

/// One track: what it carries, and its own generation (bumped whenever its
/// parameters change).
#[derive(Debug, PartialEq, Eq)]
pub struct Track {
    pub id: TrackId,
    pub codec: Codec,
    pub generation: u64,
}

/// The stream as its fMP4 init segment describes it: the video track (from
/// its parameter sets) and every other track fMP4 carries. A new generation
/// starts, on a video keyframe, whenever one of them changes (new SPS/PPS,
/// e.g. a resolution change; an audio track added, changed or removed);
/// outputs then send a fresh init segment.
#[derive(Debug)]
pub struct Stream {
    /// The video track's parameters.
    pub info: StreamInfo,
    pub generation: u64,
    /// fMP4 initialization segment (ftyp + moov) for this generation, with
    /// every track in [`Stream::tracks`].
    pub init: Bytes,
    /// The tracks `init` carries, video first.
    pub tracks: Vec<Arc<Track>>,
    /// The init segment with the video track only (for outputs that carry
    /// video alone), and the video track's generation, which it follows.
    pub video_init: Bytes,
    pub video_generation: u64,
}

impl Stream {
    /// Whether `init` carries this track (same ID and generation): other
    /// frames (a track added or changed since the last keyframe, camera
    /// JPEGs) are not for fMP4 viewers of this generation.
    pub fn carries(&self, track: &Track) -> bool {
        self.tracks
            .iter()
            .any(|t| t.id == track.id && t.generation == track.generation)
    }

    /// RFC 6381 codecs of every track in `init`, comma-separated (e.g.
    /// `avc1.42c01f,opus`), as MSE and HLS `CODECS` want them.
    pub fn codecs(&self) -> String {
        let all: Vec<&str> = self.tracks.iter().map(|t| t.codec.codec_string()).collect();
        all.join(",")
    }
}

/// One published frame of any track, shared by every viewer.
#[derive(Debug)]
pub struct Frame {
    pub seq: u64,
    /// The frame's bytes and capture times (for other tracks: one audio
    /// packet, one JPEG; `keyframe` is true for frames that stand alone).
    pub au: AccessUnit,
    /// The stream current when the frame was published.
    pub stream: Arc<Stream>,
    pub track: Arc<Track>,
    /// Decode (= presentation, no B-frames) time in the track's timescale
    /// (`fmp4::TIMESCALE` ticks for video).
    pub decode_time: u64,
    /// Sample duration in the track's timescale (video: estimated from the
    /// recent frame rate; audio: the packet's own).
    pub duration: u32,
    /// When the hub received it, on the hub's clock (µs): for
    /// server-added latency.
    pub published_us: u64,
    fmp4: OnceLock<Bytes>,
}

impl Frame {
    /// Whether this is a frame of the video track.
    pub fn is_video(&self) -> bool {
        self.track.id == VIDEO
    }

    /// The frame as one fMP4 fragment (`prft` + `moof` + `mdat`, one `traf`
    /// for its track), built once by whichever viewer asks first, then
    /// shared. Empty for a track fMP4 does not carry (camera JPEGs).
    pub fn fmp4(&self) -> &Bytes {
        self.fmp4.get_or_init(|| {
            if !self.track.codec.in_fmp4() {
                return Bytes::new();
            }
            let sample = Sample {
                data: &self.au.data,
                duration: self.duration,
                keyframe: self.au.keyframe,
            };
            let run = Run {
                track_id: self.track.id,
                base_decode_time: self.decode_time,
                samples: &[sample],
                payload: Payload::of(&self.track.codec),
            };
            let prft = ProducerTime {
                track_id: self.track.id,
                media_time: self.decode_time,
                wallclock_us: self.au.wallclock_us,
            };
            fmp4::try_fragment_runs(self.seq as u32, &[run], Some(prft)).unwrap_or_default()
        })
    }
}

impl ring::Entry for Frame {
    fn is_keyframe(&self) -> bool {
        self.is_video() && self.au.keyframe
    }
    fn byte_len(&self) -> usize {
        self.au.data.len()
    }
    fn counts_for_lag(&self) -> bool {
        self.is_video()
    }
    fn joins(&self, key: &Self) -> bool {
        // Not across a new generation: those frames' init segment is gone.
        !self.is_video()
            && self.stream.generation == key.stream.generation
            && self.au.pts_us >= key.au.pts_us
            && self.au.pts_us - key.au.pts_us < JOIN_WINDOW_US
    }
}

/// Frames and bytes of one track, for `/api/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackStats {
    pub id: TrackId,
    pub codec: String,
    pub generation: u64,
    pub frames: u64,
    pub bytes: u64,
}

/// Counters shown in `/api/status` and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct HubStats {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    /// Frames viewers skipped because they fell behind (sum over viewers).
    pub viewer_drops: u64,
    /// Frames discarded because no decodable stream was known yet.
    pub undecodable: u64,
    pub stream: Option<Arc<Stream>>,
    /// Frame rate and bitrate measured over the last ~2 s of frames.
    pub measured_fps: f64,
    pub measured_bitrate: f64,
    /// When the latest frame was published, on the hub's clock (µs).
    pub last_publish_us: Option<u64>,
    pub ring_frames: usize,
    pub ring_bytes: usize,
    /// The tracks besides video (`frames`, `keyframes` and `bytes` above
    /// count video only).
    pub tracks: Vec<TrackStats>,
}

/// The newest frame of a track, for outputs that want the latest picture
/// (snapshots, MJPEG) rather than every frame.
#[derive(Clone, Debug)]
pub struct Latest {
    pub track: Arc<Track>,
    pub au: AccessUnit,
    /// When the hub received it, on the hub's clock (µs): a camera that
    /// stopped leaves a stale one.
    pub published_us: u64,
}

/// A track besides video.
struct OtherTrack {
    track: Arc<Track>,
    clock: TrackClock,
    /// Replaced on every frame, also before any video (an MJPEG camera's
    /// pictures are served before its H.264 encoder delivers).
    latest: watch::Sender<Option<Latest>>,
    frames: u64,
    bytes: u64,
}

struct State {
    ring: Ring<Frame>,
    stream: Option<Arc<Stream>>,
    /// Generation of the stream (the init segment).
    generation: u64,
    /// The video track (from the latest SPS/PPS) and its generation.
    video: Option<Arc<Track>>,
    video_generation: u64,
    others: Vec<OtherTrack>,
    next_track_id: TrackId,
    /// An fMP4 track changed since the stream was built: rebuild it on the
    /// next keyframe.
    tracks_changed: bool,
    latest_video: Option<Arc<Frame>>,
    last_decode_time: Option<u64>,
    last_pts_us: Option<u64>,
    /// Exponentially weighted frame interval in ticks.
    interval_ticks: f64,
    /// (pts_us, bytes) of recent frames for the measured rates.
    window: VecDeque<(u64, usize)>,
    stats: HubStats,
}

pub struct Hub {
    state: Mutex<State>,
    head: Mutex<Option<watch::Sender<u64>>>,
    head_rx: watch::Receiver<u64>,
    drops: AtomicU64,
    /// A viewer asked for a keyframe (`request_keyframe`); the feed hands
    /// it to the source (`FrameSink::keyframe_wanted`).
    keyframe_request: std::sync::atomic::AtomicBool,
    /// Stamps frames when they arrive (ages, server-added latency).
    clock: Arc<dyn Clock>,
}

const WINDOW_US: u64 = 2_000_000;

impl Hub {
    /// A hub on the real clock.
    pub fn new(cfg: HubConfig) -> Arc<Self> {
        Hub::with_clock(cfg, Arc::new(SystemClock::new()))
    }

    /// A hub whose frames are stamped with `clock`: the daemon's one clock,
    /// which the outputs (`AppState`) read too.
    pub fn with_clock(cfg: HubConfig, clock: Arc<dyn Clock>) -> Arc<Self> {
        let (tx, rx) = watch::channel(0);
        let fps = if cfg.nominal_fps > 0.0 {
            cfg.nominal_fps
        } else {
            30.0
        };
        Arc::new(Hub {
            state: Mutex::new(State {
                ring: Ring::new(cfg.max_lag_frames, cfg.max_bytes),
                stream: None,
                generation: 0,
                video: None,
                video_generation: 0,
                others: Vec::new(),
                next_track_id: VIDEO + 1,
                tracks_changed: false,
                latest_video: None,
                last_decode_time: None,
                last_pts_us: None,
                interval_ticks: f64::from(fmp4::TIMESCALE) / fps,
                window: VecDeque::new(),
                stats: HubStats::default(),
            }),
            head: Mutex::new(Some(tx)),
            head_rx: rx,
            drops: AtomicU64::new(0),
            keyframe_request: std::sync::atomic::AtomicBool::new(false),
            clock,
        })
    }

    /// The clock frames are stamped with.
    /// Asks the source for a keyframe (outputs throttle their asks).
    pub fn request_keyframe(&self) {
        self.keyframe_request.store(true, Ordering::Relaxed);
    }

    /// Takes a pending keyframe request.
    pub fn take_keyframe_request(&self) -> bool {
        self.keyframe_request.swap(false, Ordering::Relaxed)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How long ago `published_us` (a [`Frame`]'s or [`Latest`]'s) was, on
    /// the hub's clock.
    pub fn age(&self, published_us: u64) -> Duration {
        Duration::from_micros(self.clock.now_us().saturating_sub(published_us))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every viewer down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the hub the source's nominal frame rate (used for durations
    /// until the real rate has been measured).
    pub fn set_nominal_fps(&self, fps: f64) {
        if fps > 0.0 && fps.is_finite() {
            self.lock().interval_ticks = f64::from(fmp4::TIMESCALE) / fps;
        }
    }

    /// Adds a frame. Never waits for viewers. Frames that cannot be decoded
    /// yet (no parameter sets seen) are counted and dropped.
    pub fn publish(&self, au: AccessUnit) {
        let now_us = self.clock.now_us();
        let seq = {
            let mut st = self.lock();
            let st = &mut *st;
            if au.keyframe {
                if let Err(reason) = update_stream(st, &au) {
                    tracing::warn!(%reason, "keyframe without usable SPS/PPS");
                }
            }
            let Some(stream) = st.stream.clone() else {
                st.stats.undecodable += 1;
                return;
            };
            if st.ring.is_empty() && !au.keyframe {
                st.stats.undecodable += 1;
                return;
            }

            // Decode time from the capture clock, forced monotonic.
            let ticks = fmp4::us_to_ticks(au.pts_us);
            let decode_time = match st.last_decode_time {
                Some(last) if ticks <= last => last + 1,
                _ => ticks,
            };
            if let Some(prev) = st.last_pts_us {
                let delta = fmp4::us_to_ticks(au.pts_us.saturating_sub(prev)) as f64;
                // Ignore gaps (source restarts) when estimating the rate.
                if delta > 0.0 && delta < 4.0 * st.interval_ticks {
                    st.interval_ticks += (delta - st.interval_ticks) / 8.0;
                }
            }
            st.last_pts_us = Some(au.pts_us);
            st.last_decode_time = Some(decode_time);

            let len = au.data.len();
            let pts_us = au.pts_us;
            let keyframe = au.keyframe;
            let track = stream.tracks[0].clone();
            let frame = Arc::new(Frame {
                seq: st.ring.next_seq(),
                au,
                stream,
                track,
                decode_time,
                duration: st.interval_ticks.round().max(1.0) as u32,
                published_us: now_us,
                fmp4: OnceLock::new(),
            });
            st.latest_video = Some(frame.clone());
            let seq = st.ring.push(frame);

            let s = &mut st.stats;
            s.frames += 1;
            s.keyframes += u64::from(keyframe);
            s.bytes += len as u64;
            s.last_publish_us = Some(now_us);
            st.window.push_back((pts_us, len));
            while let Some(&(t, _)) = st.window.front() {
                if pts_us.saturating_sub(t) > WINDOW_US {
                    st.window.pop_front();
                } else {
                    break;
                }
            }
            if let (Some(&(t0, _)), Some(&(t1, _))) = (st.window.front(), st.window.back()) {
                let span = (t1.saturating_sub(t0)) as f64 / 1e6;
                if span > 0.0 {
                    let n = st.window.len() as f64;
                    let bytes: usize = st.window.iter().skip(1).map(|&(_, b)| b).sum();
                    st.stats.measured_fps = (n - 1.0) / span;
                    st.stats.measured_bitrate = bytes as f64 * 8.0 / span;
                }
            }
            seq
        };
        if let Some(tx) = &*self.head.lock().unwrap_or_else(|e| e.into_inner()) {
            tx.send_replace(seq + 1);
        }
    }

    /// Adds a track besides video (audio, camera JPEGs) and returns its ID.
    /// fMP4 outputs carry it from the next video keyframe on (a new stream
    /// generation). `None` for H.264: the one video track is [`Hub::publish`]'s.
    pub fn add_track(&self, codec: Codec) -> Option<TrackId> {
        if matches!(codec, Codec::H264(_)) {
            return None;
        }
        let mut st = self.lock();
        let id = st.next_track_id;
        st.next_track_id += 1;
        st.tracks_changed |= codec.in_fmp4();
        let clock = match &codec {
            // 20 ms until a packet says otherwise.
            Codec::Opus(_) => TrackClock::new(opus::SAMPLE_RATE, opus::SAMPLE_RATE / 50),
            _ => TrackClock::new(fmp4::TIMESCALE, fmp4::TIMESCALE / 30),
        };
        tracing::info!(track = id, codec = codec.codec_string(), "track added");
        st.others.push(OtherTrack {
            track: Arc::new(Track {
                id,
                codec,
                generation: 1,
            }),
            clock,
            latest: watch::channel(None).0,
            frames: 0,
            bytes: 0,
        });
        Some(id)
    }

    /// New parameters for a track added with [`Hub::add_track`] (a new
    /// generation of that track, and of the stream from the next keyframe).
    pub fn update_track(&self, id: TrackId, codec: Codec) {
        let mut st = self.lock();
        let Some(t) = st.others.iter_mut().find(|t| t.track.id == id) else {
            return;
        };
        if t.track.codec == codec {
            return;
        }
        let changed = t.track.codec.in_fmp4() || codec.in_fmp4();
        t.track = Arc::new(Track {
            id,
            codec,
            generation: t.track.generation + 1,
        });
        st.tracks_changed |= changed;
    }

    /// Removes a track added with [`Hub::add_track`] (its source stopped).
    pub fn remove_track(&self, id: TrackId) {
        let mut st = self.lock();
        let before = st.others.len();
        let mut changed = false;
        st.others.retain(|t| {
            let keep = t.track.id != id;
            changed |= !keep && t.track.codec.in_fmp4();
            keep
        });
        if st.others.len() != before {
            st.tracks_changed |= changed;
            tracing::info!(track = id, "track removed");
        }
    }

    /// Adds a frame of track `id` (from [`Hub::add_track`]). Never waits for
    /// viewers. It becomes the track's [`Hub::latest`] at once; it joins the
    /// ring (and so the viewers) once the video has started, as they start
    /// on a video keyframe. Pictures (camera JPEGs) are kept as the latest
    /// only: outputs of stills want the newest one, and 100–400 KB JPEGs in
    /// the GOP cache would crowd the video out of the byte budget.
    pub fn publish_on(&self, id: TrackId, au: AccessUnit) {
        let seq = {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(t) = st.others.iter_mut().find(|t| t.track.id == id) else {
                tracing::debug!(track = id, "frame for an unknown track dropped");
                return;
            };
            t.frames += 1;
            t.bytes += au.data.len() as u64;
            let published_us = self.clock.now_us();
            t.latest.send_replace(Some(Latest {
                track: t.track.clone(),
                au: au.clone(),
                published_us,
            }));
            let Some(stream) = st.stream.clone() else {
                return;
            };
            if st.ring.is_empty() || t.track.codec.kind() == TrackKind::Picture {
                return;
            }
            let known = match &t.track.codec {
                Codec::Opus(_) => opus::packet_samples(&au.data),
                _ => None,
            };
            let (decode_time, duration) = t.clock.stamp(au.pts_us, known);
            let frame = Arc::new(Frame {
                seq: st.ring.next_seq(),
                au,
                stream,
                track: t.track.clone(),
                decode_time,
                duration,
                published_us,
                fmp4: OnceLock::new(),
            });
            st.ring.push(frame)
        };
        if let Some(tx) = &*self.head.lock().unwrap_or_else(|e| e.into_inner()) {
            tx.send_replace(seq + 1);
        }
    }

    /// The track for the camera's own JPEGs, added on first use.
    pub fn picture_track(&self) -> TrackId {
        let existing = self
            .lock()
            .others
            .iter()
            .find(|t| t.track.codec == Codec::Jpeg)
            .map(|t| t.track.id);
        match existing {
            Some(id) => id,
            // Never None: only H.264 is refused.
            None => self.add_track(Codec::Jpeg).unwrap_or_default(),
        }
    }

    /// The first track with this kind of codec, if there is one.
    pub fn track_of(&self, kind: TrackKind) -> Option<Arc<Track>> {
        self.tracks().into_iter().find(|t| t.codec.kind() == kind)
    }

    /// Every track: video first (once its parameters are known), then the
    /// others in the order they were added.
    pub fn tracks(&self) -> Vec<Arc<Track>> {
        let st = self.lock();
        st.video
            .iter()
            .cloned()
            .chain(st.others.iter().map(|t| t.track.clone()))
            .collect()
    }

    /// The newest frame of track `id` (camera JPEGs for snapshots).
    pub fn latest(&self, id: TrackId) -> Option<Latest> {
        let st = self.lock();
        if id == VIDEO {
            return st.latest_video.as_ref().map(|f| Latest {
                track: f.track.clone(),
                au: f.au.clone(),
                published_us: f.published_us,
            });
        }
        let t = st.others.iter().find(|t| t.track.id == id)?;
        let latest = t.latest.borrow().clone();
        latest
    }

    /// Follows the newest frame of track `id` (not video): the receiver
    /// wakes on every frame published on it. `None` for an unknown track.
    pub fn watch_latest(&self, id: TrackId) -> Option<watch::Receiver<Option<Latest>>> {
        let st = self.lock();
        let t = st.others.iter().find(|t| t.track.id == id)?;
        Some(t.latest.subscribe())
    }

    /// A new viewer, positioned on the held keyframe (or the next one).
    pub fn subscribe(self: &Arc<Self>) -> Viewer {
        let cursor = self.lock().ring.join();
        Viewer {
            hub: self.clone(),
            cursor,
            rx: self.head_rx.clone(),
            skipped: 0,
        }
    }

    /// The current stream description, once a keyframe with SPS/PPS arrived.
    pub fn stream(&self) -> Option<Arc<Stream>> {
        self.lock().stream.clone()
    }

    /// The latest video keyframe and every video frame after it (for
    /// snapshots).
    pub fn gop(&self) -> Vec<Arc<Frame>> {
        let mut gop = self.lock().ring.gop();
        gop.retain(|f| f.is_video());
        gop
    }

    pub fn stats(&self) -> HubStats {
        let st = self.lock();
        let mut s = st.stats.clone();
        s.stream = st.stream.clone();
        s.viewer_drops = self.drops.load(Ordering::Relaxed);
        s.ring_frames = st.ring.len();
        s.ring_bytes = st.ring.bytes();
        s.tracks = st
            .others
            .iter()
            .map(|t| TrackStats {
                id: t.track.id,
                codec: t.track.codec.codec_string().to_owned(),
                generation: t.track.generation,
                frames: t.frames,
                bytes: t.bytes,
            })
            .collect();
        s
    }

    /// Ends every viewer's stream (`recv` returns `None`): used at shutdown.
    pub fn close(&self) {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
