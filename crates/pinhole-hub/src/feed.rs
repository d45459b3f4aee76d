//! The hub's input side: the [`FrameSink`] a source publishes into.
//!
//! A source thread holds a [`Feed`]; frames go straight to [`Hub::publish`]
//! (an MJPEG camera's own JPEGs to the hub's picture track), and what the
//! source says about itself (info, state, heartbeats) is kept
//! here for the outputs (`/api/status`) and the daemon (the systemd
//! watchdog). So frames flow one way: source → feed → hub → viewers.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pinhole_media::AccessUnit;
use pinhole_media::{Codec, TrackKind};
use pinhole_source_api::{Clock, FrameSink, SourceInfo, SourceState};

use crate::{Hub, TrackId};

pub struct Feed {
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    info: Mutex<SourceInfo>,
    state: Mutex<SourceState>,
    /// Last sign of life from the source thread, on `clock` (µs).
    heartbeat_us: Mutex<Option<u64>>,
    /// The hub track of an MJPEG camera's own JPEGs, once one arrived.
    picture_track: OnceLock<TrackId>,
    /// Tracks the source added (`FrameSink::add_track`), one per kind: a
    /// restarted source gets its track back.
    tracks: Mutex<Vec<(TrackKind, TrackId)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on the source thread must not take the outputs down.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// `info`: the source's description before it starts; `clock`: the one
    /// the source runs on (heartbeats are timed with it).
    pub fn new(hub: Arc<Hub>, info: SourceInfo, clock: Arc<dyn Clock>) -> Arc<Feed> {
        Arc::new(Feed {
            hub,
            clock,
            info: Mutex::new(info),
            state: Mutex::new(SourceState::Starting),
            heartbeat_us: Mutex::new(None),
            picture_track: OnceLock::new(),
            tracks: Mutex::new(Vec::new()),
        })
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn info(&self) -> SourceInfo {
        lock(&self.info).clone()
    }

    pub fn state(&self) -> SourceState {
        lock(&self.state).clone()
    }

    /// Whether a track the source added is still there (a stopped source
    /// removes its own).
    pub fn has_tracks(&self) -> bool {
        !lock(&self.tracks).is_empty()
    }

    /// The source is not delivering but its thread is alive and retrying
    /// (a lost camera): the daemon should stay up for its viewers.
    pub fn recovering(&self, within: Duration) -> bool {
        let beat = *lock(&self.heartbeat_us);
        let now = self.clock.now_us();
        self.state() != SourceState::Running
            && beat.is_some_and(|t| now.saturating_sub(t) <= within.as_micros() as u64)
    }
}

impl FrameSink for Feed {
    fn publish(&self, au: AccessUnit) {
        self.hub.publish(au);
    }

    fn report(&self, state: SourceState) {
        let mut cur = lock(&self.state);
        if *cur != state {
            match &state {
                SourceState::Failed(reason) => tracing::error!(%reason, "source failed"),
                SourceState::Running => tracing::info!("source running"),
                SourceState::Starting => tracing::info!("source starting"),
            }
            *cur = state;
        }
    }

    fn update_info(&self, info: SourceInfo) {
        *lock(&self.info) = info;
    }

    fn heartbeat(&self) {
        *lock(&self.heartbeat_us) = Some(self.clock.now_us());
    }

    fn keyframe_wanted(&self) -> bool {
        self.hub.take_keyframe_request()
    }

    fn publish_jpeg(&self, jpeg: Bytes, pts_us: u64) {
        // A track of the hub like the rest: snapshots and /mjpeg read its
        // latest picture there (also before any H.264 arrives).
        let track = *self.picture_track.get_or_init(|| self.hub.picture_track());
        self.hub.publish_on(
            track,
            AccessUnit {
                data: jpeg,
                pts_us,
                wallclock_us: self.clock.wall_us(),
                keyframe: true,
            },
        );
    }

    fn add_track(&self, codec: Codec) -> Option<TrackId> {
        let mut tracks = lock(&self.tracks);
        let kind = codec.kind();
        if let Some(&(_, id)) = tracks.iter().find(|(k, _)| *k == kind) {
            self.hub.update_track(id, codec);
            return Some(id);
        }
        let id = self.hub.add_track(codec)?;
        tracks.push((kind, id));
        Some(id)
    }

    fn publish_on(&self, track: TrackId, au: AccessUnit) {
        self.hub.publish_on(track, au);
    }

    fn remove_track(&self, track: TrackId) {
        let mut tracks = lock(&self.tracks);
        if let Some(i) = tracks.iter().position(|&(_, id)| id == track) {
            tracks.remove(i);
            self.hub.remove_track(track);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HubConfig;
    use pinhole_source_api::SimClock;

    fn info() -> SourceInfo {
        SourceInfo {
            kind: "test",
            detail: String::new(),
            fps: Some(30.0),
            bitrate: None,
            keyframe_interval: None,
        }
    }

    #[test]
    fn recovering_needs_a_recent_heartbeat_and_no_frames() {
        let clock = Arc::new(SimClock::new(1_000_000, 0));
        let feed = Feed::new(Hub::new(HubConfig::default()), info(), clock.clone());
        assert!(!feed.recovering(Duration::from_secs(2)), "no heartbeat yet");
        feed.heartbeat();
        feed.report(SourceState::Failed("camera lost".into()));
        assert!(feed.recovering(Duration::from_secs(2)));
        clock.sleep_until_us(3_500_000);
        assert!(
            !feed.recovering(Duration::from_secs(2)),
            "heartbeat too old"
        );
        feed.heartbeat();
        feed.report(SourceState::Running);
        assert!(
            !feed.recovering(Duration::from_secs(2)),
            "running is not recovering"
        );
        let mut i = info();
        i.detail = "negotiated".into();
        feed.update_info(i.clone());
        assert_eq!(feed.info(), i);
    }

    #[test]
    fn a_source_adds_its_track_once_and_removes_it() {
        let clock = Arc::new(SimClock::new(7_000, 0));
        let hub = Hub::with_clock(HubConfig::default(), clock.clone());
        let feed = Feed::new(hub.clone(), info(), clock);
        let opus = |channels| {
            Codec::Opus(pinhole_media::OpusConfig {
                channels,
                pre_skip: 120,
                input_sample_rate: 48_000,
            })
        };
        let a = feed.add_track(opus(1)).expect("an audio track");
        // A restarted source (now stereo) gets the same track, updated.
        assert_eq!(feed.add_track(opus(2)), Some(a));
        assert_eq!(hub.tracks().len(), 1);
        assert_eq!(hub.tracks()[0].codec, opus(2));
        feed.remove_track(a);
        assert!(hub.tracks().is_empty());
        let b = feed.add_track(opus(1)).expect("added again");
        assert_eq!(hub.tracks().len(), 1);
        assert_eq!(hub.tracks()[0].id, b);
    }

    #[test]
    fn camera_jpegs_are_the_hubs_picture_track() {
        let clock = Arc::new(SimClock::new(7_000, 0));
        let hub = Hub::with_clock(HubConfig::default(), clock.clone());
        let feed = Feed::new(hub.clone(), info(), clock.clone());
        let jpeg = Bytes::from_static(b"\xff\xd8jpeg\xff\xd9");
        feed.publish_jpeg(jpeg.clone(), 42);
        feed.publish_jpeg(jpeg.clone(), 43);
        let track = hub
            .track_of(pinhole_media::TrackKind::Picture)
            .expect("a picture track");
        let latest = hub.latest(track.id).expect("latest");
        assert_eq!((latest.au.pts_us, latest.au.wallclock_us), (43, 7_000));
        assert_eq!(latest.au.data, jpeg);
        // Stamped on the one clock: its age is simulated time.
        clock.advance(2_000_000);
        assert_eq!(hub.age(latest.published_us), Duration::from_secs(2));
        assert_eq!(hub.tracks().len(), 1, "one track for every picture");
        assert_eq!(hub.stats().tracks[0].frames, 2);
    }
}
