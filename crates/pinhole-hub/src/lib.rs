//! Where a frame fans out: one encoded stream, many viewers.
//!
//! The source thread publishes through a [`Feed`] (the sink the sources'
//! contract names) into [`Hub::publish`], which never blocks on viewers:
//! it appends the frame to a [`ring::Ring`] and bumps a watch channel. Each
//! viewer task pulls from the ring at its own pace through [`Viewer::recv`];
//! every viewer gets the same `Arc<Frame>` (the bytes are never copied per
//! viewer), and one that falls more than `max_lag` frames behind a newer
//! keyframe skips to it instead of holding memory or slowing anyone else.

pub mod feed;
pub mod ring;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use pinhole_media::{fmp4, h264, AccessUnit, StreamInfo};
use tokio::sync::watch;

pub use feed::Feed;
use ring::{Cursor, Ring, Step};

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

/// The stream as described by its parameter sets. A new generation starts
/// whenever SPS/PPS change (e.g. a resolution change); outputs then send a
/// fresh init segment.
#[derive(Debug)]
pub struct Stream {
    pub info: StreamInfo,
    pub generation: u64,
    /// fMP4 initialization segment (ftyp + moov) for this generation.
    pub init: Bytes,
}

/// One published frame, shared by every viewer.
#[derive(Debug)]
pub struct Frame {
    pub seq: u64,
    pub au: AccessUnit,
    pub stream: Arc<Stream>,
    /// Decode (= presentation, no B-frames) time in `fmp4::TIMESCALE` ticks.
    pub decode_time: u64,
    /// Sample duration in ticks (estimated from the recent frame rate).
    pub duration: u32,
    /// When the hub received it, for server-added latency.
    pub published: Instant,
    fmp4: OnceLock<Bytes>,
}

impl Frame {
    /// The frame as one fMP4 fragment (`prft` + `moof` + `mdat`), built once
    /// by whichever viewer asks first, then shared.
    pub fn fmp4(&self) -> &Bytes {
        self.fmp4.get_or_init(|| {
            let sample = fmp4::Sample {
                data: &self.au.data,
                duration: self.duration,
                keyframe: self.au.keyframe,
            };
            fmp4::fragment(
                self.seq as u32,
                self.decode_time,
                &[sample],
                Some(self.au.wallclock_us),
            )
        })
    }
}

impl ring::Entry for Frame {
    fn is_keyframe(&self) -> bool {
        self.au.keyframe
    }
    fn byte_len(&self) -> usize {
        self.au.data.len()
    }
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
    /// Monotonic time of the latest publish.
    pub last_publish: Option<Instant>,
    pub ring_frames: usize,
    pub ring_bytes: usize,
}

struct State {
    ring: Ring<Frame>,
    stream: Option<Arc<Stream>>,
    generation: u64,
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
}

const WINDOW_US: u64 = 2_000_000;

impl Hub {
    pub fn new(cfg: HubConfig) -> Arc<Self> {
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
                last_decode_time: None,
                last_pts_us: None,
                interval_ticks: f64::from(fmp4::TIMESCALE) / fps,
                window: VecDeque::new(),
                stats: HubStats::default(),
            }),
            head: Mutex::new(Some(tx)),
            head_rx: rx,
            drops: AtomicU64::new(0),
        })
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
            let frame = Arc::new(Frame {
                seq: st.ring.next_seq(),
                au,
                stream,
                decode_time,
                duration: st.interval_ticks.round().max(1.0) as u32,
                published: Instant::now(),
                fmp4: OnceLock::new(),
            });
            let seq = st.ring.push(frame);

            let s = &mut st.stats;
            s.frames += 1;
            s.keyframes += u64::from(keyframe);
            s.bytes += len as u64;
            s.last_publish = Some(Instant::now());
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

    /// The latest keyframe and every frame after it (for snapshots).
    pub fn gop(&self) -> Vec<Arc<Frame>> {
        self.lock().ring.gop()
    }

    pub fn stats(&self) -> HubStats {
        let st = self.lock();
        let mut s = st.stats.clone();
        s.stream = st.stream.clone();
        s.viewer_drops = self.drops.load(Ordering::Relaxed);
        s.ring_frames = st.ring.len();
        s.ring_bytes = st.ring.bytes();
        s
    }

    /// Ends every viewer's stream (`recv` returns `None`): used at shutdown.
    pub fn close(&self) {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn update_stream(st: &mut State, au: &AccessUnit) -> Result<(), String> {
    let Some((sps, pps)) = h264::find_parameter_sets(&au.data) else {
        return if st.stream.is_some() {
            Ok(()) // parameter sets unchanged; sources normally repeat them
        } else {
            Err("no SPS/PPS in the first keyframe".into())
        };
    };
    if let Some(cur) = &st.stream {
        if cur.info.sps == sps && cur.info.pps == pps {
            return Ok(());
        }
    }
    let info = h264::stream_info(sps, pps).map_err(|e| e.to_string())?;
    st.generation += 1;
    tracing::info!(
        width = info.width,
        height = info.height,
        codec = %info.codec,
        generation = st.generation,
        "stream parameters"
    );
    let init = fmp4::init_segment(&info);
    st.stream = Some(Arc::new(Stream {
        info,
        generation: st.generation,
        init,
    }));
    Ok(())
}

/// One viewer's position in the stream.
pub struct Viewer {
    hub: Arc<Hub>,
    cursor: Cursor,
    rx: watch::Receiver<u64>,
    skipped: u64,
}

impl Viewer {
    /// The next frame for this viewer, waiting if it is at the live edge.
    /// `None` once the hub is closed.
    pub async fn recv(&mut self) -> Option<Arc<Frame>> {
        loop {
            // Mark the head as seen *before* looking, so a publish between the
            // look and the wait still wakes us.
            self.rx.borrow_and_update();
            let step = self.hub.lock().ring.step(self.cursor);
            match step {
                Step::Deliver(frame, next) => {
                    self.cursor = next;
                    return Some(frame);
                }
                Step::Skip { dropped, next } => {
                    self.cursor = next;
                    self.skipped += dropped;
                    self.hub.drops.fetch_add(dropped, Ordering::Relaxed);
                }
                Step::Wait(c) => {
                    self.cursor = c;
                    self.rx.changed().await.ok()?;
                }
            }
        }
    }

    /// Frames this viewer skipped because it fell behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}
