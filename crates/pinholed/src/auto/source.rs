//! The `auto` source: runs the chosen camera (or the test pattern) under
//! supervision while a watcher thread rescans, and switches when
//! [`decide`] says so.

use std::sync::{Arc, Mutex};

use pinhole_capture::supervisor::{run_restarting, Ended};
use pinhole_capture::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};
use pinhole_media::{AccessUnit, Clock};

use super::{decide, wants_scan, Action, Camera, Candidate, Policy, Running, Scanner};
use crate::camera_ctl::Active;
use crate::error::SourceError;

/// Builds the source for a camera a scan found.
pub type CameraBuilder = Box<dyn FnMut(&Candidate) -> Result<Box<dyn Source>, SourceError> + Send>;

/// The `auto` source: runs a camera or the test pattern and switches when
/// [`decide`] says so.
pub struct AutoSource {
    current: Box<dyn Source>,
    running: Running,
    /// Why `current` was chosen; appended to the status detail.
    note: String,
    scanner: Scanner,
    camera: CameraBuilder,
    clock: Arc<dyn Clock>,
    active: Active,
    policy: Policy,
}

impl AutoSource {
    /// Scans once and starts with the first camera that can be built, else
    /// the test pattern.
    pub fn new(
        mut scanner: Scanner,
        mut camera: CameraBuilder,
        pattern: impl FnOnce() -> Result<Box<dyn Source>, SourceError>,
        clock: Arc<dyn Clock>,
        active: Active,
        policy: Policy,
    ) -> Result<AutoSource, SourceError> {
        let scan = scanner(clock.now_us());
        let mut skipped = scan.skipped.clone();
        for c in &scan.found {
            match camera(c) {
                Ok(src) => {
                    let note = format!("auto: {}; skipped: {}", c.what, skipped.join("; "));
                    tracing::info!(reason = %note, "auto: using a camera");
                    activate(&active, &c.camera);
                    return Ok(AutoSource {
                        current: src,
                        running: Running::Camera {
                            camera: c.camera.clone(),
                            failing_since_us: None,
                        },
                        note,
                        scanner,
                        camera,
                        clock,
                        active,
                        policy,
                    });
                }
                Err(e) => skipped.push(format!("{}: {e}", c.camera)),
            }
        }
        let note = no_camera_note(&skipped, &policy);
        tracing::info!(reason = %note, "auto: using the test pattern");
        active.set("test", None);
        Ok(AutoSource {
            current: pattern()?,
            running: Running::Pattern,
            note,
            scanner,
            camera,
            clock,
            active,
            policy,
        })
    }

    fn annotated(&self, info: SourceInfo) -> SourceInfo {
        with_note(info, &self.note)
    }
}

fn activate(active: &Active, camera: &Camera) {
    match camera {
        Camera::V4l2(path) => active.set("v4l2", Some(path.clone())),
        Camera::Libcamera(_) => active.set("libcamera", None),
    }
}

fn no_camera_note(skipped: &[String], policy: &Policy) -> String {
    format!(
        "auto: no camera ({}); rescanning every {:.0} s",
        skipped.join("; "),
        policy.scan_interval_us as f64 / 1e6
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the source thread and the watcher thread of one run share.
struct Shared {
    /// When the camera last reported a failure (cleared when it runs).
    failing_since_us: Mutex<Option<u64>>,
    /// The camera to switch to.
    pending: Mutex<Option<Candidate>>,
    /// Why the current source runs (the watcher updates the reasons).
    note: Mutex<String>,
    /// The running source's own info, before the note is added.
    base: Mutex<SourceInfo>,
}

/// Passes everything on, adds the note to the detail, and keeps track of
/// whether the camera is failing (for [`decide`]).
struct Observer<'a> {
    inner: &'a dyn FrameSink,
    clock: &'a dyn Clock,
    shared: &'a Shared,
}

impl FrameSink for Observer<'_> {
    fn publish(&self, au: AccessUnit) {
        self.inner.publish(au);
    }
    fn report(&self, state: SourceState) {
        {
            let mut f = lock(&self.shared.failing_since_us);
            match &state {
                SourceState::Failed(_) => {
                    f.get_or_insert(self.clock.now_us());
                }
                SourceState::Running => *f = None,
                SourceState::Starting => {}
            }
        }
        self.inner.report(state);
    }
    fn update_info(&self, info: SourceInfo) {
        *lock(&self.shared.base) = info.clone();
        let note = lock(&self.shared.note).clone();
        self.inner.update_info(with_note(info, &note));
    }
    fn heartbeat(&self) {
        self.inner.heartbeat();
    }
    fn publish_jpeg(&self, jpeg: bytes::Bytes, pts_us: u64) {
        self.inner.publish_jpeg(jpeg, pts_us);
    }
    fn keyframe_wanted(&self) -> bool {
        self.inner.keyframe_wanted()
    }
    // Tracks beside the video (a camera's own stills, a microphone) pass
    // straight through, as in the supervisor's wrapper.
    fn add_track(&self, codec: pinhole_media::Codec) -> Option<pinhole_capture::TrackId> {
        self.inner.add_track(codec)
    }
    fn publish_on(&self, track: pinhole_capture::TrackId, au: AccessUnit) {
        self.inner.publish_on(track, au);
    }
    fn remove_track(&self, track: pinhole_capture::TrackId) {
        self.inner.remove_track(track);
    }
}

fn with_note(mut info: SourceInfo, note: &str) -> SourceInfo {
    info.detail = format!("{} [{}]", info.detail, note);
    info
}

impl Source for AutoSource {
    fn info(&self) -> SourceInfo {
        self.annotated(self.current.info())
    }

    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        loop {
            let shared = Shared {
                failing_since_us: Mutex::new(None),
                pending: Mutex::new(None),
                note: Mutex::new(self.note.clone()),
                base: Mutex::new(self.current.info()),
            };
            let child = StopFlag::new();
            let AutoSource {
                current,
                running,
                scanner,
                clock,
                policy,
                ..
            } = self;
            let result = std::thread::scope(|sc| {
                sc.spawn(|| {
                    watch(
                        Watch {
                            scanner,
                            running,
                            shared: &shared,
                            sink,
                            clock: &**clock,
                            policy,
                        },
                        stop,
                        &child,
                    )
                });
                let observer = Observer {
                    inner: sink,
                    clock: &**clock,
                    shared: &shared,
                };
                // A lost camera is retried here, under the same supervision
                // as any source, while the watcher keeps scanning.
                let ended = run_restarting(&mut **current, &observer, &child, &**clock);
                child.stop(); // ends the watcher
                ended
            });
            self.note = lock(&shared.note).clone();
            if stop.is_stopped() {
                return Ok(());
            }
            let Some(next) = lock(&shared.pending).take() else {
                // Finished by itself: the daemon's supervisor says so.
                debug_assert_eq!(result, Ended::ByItself);
                return Ok(());
            };
            let was = match &self.running {
                Running::Pattern => "the test pattern".to_owned(),
                Running::Camera { camera, .. } => format!("{camera} (gone)"),
            };
            match (self.camera)(&next) {
                Ok(src) => {
                    self.note = format!("auto: {}; found while {was} ran", next.what);
                    tracing::info!(reason = %self.note, "auto: switching to a camera");
                    self.current = src;
                    activate(&self.active, &next.camera);
                    self.running = Running::Camera {
                        camera: next.camera,
                        failing_since_us: None,
                    };
                    sink.update_info(self.annotated(self.current.info()));
                }
                // Keep what runs; the next scan tries again.
                Err(e) => {
                    tracing::warn!(camera = %next.camera, error = %e, "auto: cannot use the camera")
                }
            }
        }
    }
}

/// What the watcher of one run works with.
struct Watch<'a> {
    scanner: &'a mut Scanner,
    running: &'a Running,
    shared: &'a Shared,
    sink: &'a dyn FrameSink,
    clock: &'a dyn Clock,
    policy: &'a Policy,
}

/// The watcher thread of one run: rescans while [`wants_scan`], and stops
/// the run when [`decide`] says switch. While no camera is found, changed
/// reasons (a node that appeared but cannot be opened, say) are logged and
/// shown in the status.
fn watch(w: Watch<'_>, stop: &StopFlag, child: &StopFlag) {
    let mut next_scan = w.clock.now_us() + w.policy.scan_interval_us;
    while !child.is_stopped() {
        if stop.is_stopped() {
            child.stop();
            return;
        }
        let now = w.clock.now_us();
        if now < next_scan {
            w.clock.sleep_until_us((now + 100_000).min(next_scan));
            continue;
        }
        next_scan = now + w.policy.scan_interval_us;
        let state = match w.running {
            Running::Pattern => Running::Pattern,
            Running::Camera { camera, .. } => Running::Camera {
                camera: camera.clone(),
                failing_since_us: *lock(&w.shared.failing_since_us),
            },
        };
        if !wants_scan(&state) {
            continue;
        }
        let scan = (w.scanner)(now);
        tracing::debug!(?scan, "auto: rescan");
        if let Action::Switch(c) = decide(&state, &scan, w.clock.now_us(), w.policy) {
            *lock(&w.shared.pending) = Some(c);
            child.stop();
            return;
        }
        let note = no_camera_note(&scan.skipped, w.policy);
        if state == Running::Pattern && *lock(&w.shared.note) != note {
            tracing::info!(reason = %note, "auto: still no camera");
            *lock(&w.shared.note) = note.clone();
            let base = lock(&w.shared.base).clone();
            w.sink.update_info(with_note(base, &note));
        }
    }
}
