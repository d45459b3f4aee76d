//! `--source auto`: which source runs, and switching to a camera that is
//! plugged in later (docs/cameras.md, *Auto-detect*).
//!
//! At start: the first usable camera a scan finds, else the test pattern.
//! While the test pattern runs, the devices are rescanned every
//! [`Policy::scan_interval_us`]; a camera that appears replaces the pattern
//! on the same source thread — no daemon restart, viewers stay connected
//! (the hub starts a new stream generation if the SPS changes).
//!
//! A camera that goes away is *not* replaced by the test pattern: its own
//! source retries with backoff and the status says why there is no
//! picture. Auto only moves on if the lost camera's node is gone and
//! another usable camera is there.
//!
//! [`decide`] is the whole policy, pure, with the scan and the time given.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pinhole_capture::v4l2::{self, negotiate::Wanted};
use pinhole_capture::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};
use pinhole_media::{AccessUnit, Clock};

use crate::camera_ctl::Active;

/// A usable camera a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub path: PathBuf,
    /// For people: `/dev/video0 (vivid, vivid) offers YUYV 640x480`.
    pub what: String,
}

/// What one scan saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Every device node present, usable or not.
    pub nodes: Vec<PathBuf>,
    /// Usable cameras, best first.
    pub found: Vec<Candidate>,
    /// Why the others were not used.
    pub skipped: Vec<String>,
}

/// What auto is running now.
#[derive(Clone, Debug, PartialEq)]
pub enum Running {
    Pattern,
    Camera {
        path: PathBuf,
        /// When the camera last reported a failure (cleared when it runs).
        failing_since_us: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Stay,
    Switch(Candidate),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// How often devices are rescanned while a scan is wanted.
    pub scan_interval_us: u64,
    /// A failing camera whose node is gone is given this long to come back
    /// (a USB re-enumeration) before auto moves to another camera.
    pub grace_us: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            scan_interval_us: 2_000_000,
            grace_us: 5_000_000,
        }
    }
}

/// A healthy camera is left alone: no scanning (no opening of other nodes)
/// while video flows.
pub fn wants_scan(running: &Running) -> bool {
    !matches!(
        running,
        Running::Camera {
            failing_since_us: None,
            ..
        }
    )
}

/// The auto policy.
pub fn decide(running: &Running, scan: &Scan, now_us: u64, policy: &Policy) -> Action {
    match running {
        Running::Pattern => match scan.found.first() {
            Some(c) => Action::Switch(c.clone()),
            None => Action::Stay,
        },
        Running::Camera {
            failing_since_us: None,
            ..
        } => Action::Stay,
        Running::Camera {
            path,
            failing_since_us: Some(since),
        } => {
            // Its node is back (or never went): the camera source's own
            // retry reopens it.
            if scan.nodes.iter().any(|n| n == path) {
                return Action::Stay;
            }
            if now_us.saturating_sub(*since) < policy.grace_us {
                return Action::Stay;
            }
            match scan.found.iter().find(|c| &c.path != path) {
                Some(c) => Action::Switch(c.clone()),
                None => Action::Stay,
            }
        }
    }
}

pub type Scanner = Box<dyn FnMut() -> Scan + Send>;
pub type CameraBuilder = Box<dyn FnMut(&Candidate) -> Result<Box<dyn Source>, String> + Send>;

/// The real scan: `/dev/video*` nodes probed for a usable capture format.
/// Nodes that are not capture devices at all (M2M codecs, metadata nodes)
/// are remembered by device number and not reopened every scan.
/// `libcamera_skip` says why no libcamera camera is used (listed first).
pub fn v4l2_scanner(dev_dir: PathBuf, want: Wanted, libcamera_skip: String) -> Scanner {
    use std::os::unix::fs::MetadataExt;
    let mut opener = v4l2::real_opener();
    let mut not_capture: std::collections::HashMap<PathBuf, (u64, String)> = Default::default();
    Box::new(move || {
        let mut s = Scan {
            skipped: vec![libcamera_skip.clone()],
            ..Scan::default()
        };
        s.nodes = v4l2::device_nodes(&dev_dir);
        if s.nodes.is_empty() {
            s.skipped
                .push(format!("no {}/video* nodes", dev_dir.display()));
        }
        for node in &s.nodes {
            let rdev = std::fs::metadata(node).map(|m| m.rdev()).unwrap_or(0);
            if let Some((_, why)) = not_capture.get(node).filter(|(d, _)| *d == rdev) {
                s.skipped.push(why.clone());
                continue;
            }
            match v4l2::probe(&mut opener, node, &want) {
                Ok(p) => s.found.push(Candidate {
                    path: p.path.clone(),
                    what: format!(
                        "{} ({}, {}) offers {} {}x{}",
                        p.path.display(),
                        p.card,
                        p.driver,
                        v4l2::sys::fourcc_str(p.choice.fourcc),
                        p.choice.width,
                        p.choice.height
                    ),
                }),
                Err(e) => {
                    if e.not_capture {
                        not_capture.insert(node.clone(), (rdev, e.reason.clone()));
                    }
                    s.skipped.push(e.reason)
                }
            }
        }
        s
    })
}

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
        pattern: impl FnOnce() -> Result<Box<dyn Source>, String>,
        clock: Arc<dyn Clock>,
        active: Active,
        policy: Policy,
    ) -> Result<AutoSource, String> {
        let scan = scanner();
        let mut skipped = scan.skipped.clone();
        for c in &scan.found {
            match camera(c) {
                Ok(src) => {
                    let note = format!("auto: {}; skipped: {}", c.what, skipped.join("; "));
                    tracing::info!(reason = %note, "auto: using a camera");
                    active.set("v4l2", Some(c.path.clone()));
                    return Ok(AutoSource {
                        current: src,
                        running: Running::Camera {
                            path: c.path.clone(),
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
                Err(e) => skipped.push(format!("{}: {e}", c.path.display())),
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
}

/// A fixed source with the reason `auto` chose it in its status detail
/// (a libcamera camera: its source respawns a crashed helper itself).
pub struct Noted {
    inner: Box<dyn Source>,
    note: String,
    clock: Arc<dyn Clock>,
}

impl Noted {
    pub fn new(inner: Box<dyn Source>, note: String, clock: Arc<dyn Clock>) -> Self {
        Noted { inner, note, clock }
    }
}

impl Source for Noted {
    fn info(&self) -> SourceInfo {
        with_note(self.inner.info(), &self.note)
    }
    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        // The same pass-through as AutoSource's, with a note that never changes.
        let shared = Shared {
            failing_since_us: Mutex::new(None),
            pending: Mutex::new(None),
            note: Mutex::new(self.note.clone()),
            base: Mutex::new(self.inner.info()),
        };
        let observer = Observer {
            inner: sink,
            clock: &*self.clock,
            shared: &shared,
        };
        self.inner.run(&observer, stop)
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
                let r = current.run(&observer, &child);
                child.stop(); // ends the watcher
                r
            });
            self.note = lock(&shared.note).clone();
            if stop.is_stopped() {
                return Ok(());
            }
            let Some(next) = lock(&shared.pending).take() else {
                return result; // the source ended by itself: the supervisor retries
            };
            let was = match &self.running {
                Running::Pattern => "the test pattern".to_owned(),
                Running::Camera { path, .. } => format!("{} (gone)", path.display()),
            };
            match (self.camera)(&next) {
                Ok(src) => {
                    self.note = format!("auto: {}; found while {was} ran", next.what);
                    tracing::info!(reason = %self.note, "auto: switching to a camera");
                    self.current = src;
                    self.running = Running::Camera {
                        path: next.path.clone(),
                        failing_since_us: None,
                    };
                    self.active.set("v4l2", Some(next.path));
                    sink.update_info(self.annotated(self.current.info()));
                }
                // Keep what runs; the next scan tries again.
                Err(e) => {
                    tracing::warn!(device = %next.path.display(), error = %e, "auto: cannot use the camera")
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
            Running::Camera { path, .. } => Running::Camera {
                path: path.clone(),
                failing_since_us: *lock(&w.shared.failing_since_us),
            },
        };
        if !wants_scan(&state) {
            continue;
        }
        let scan = (w.scanner)();
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

#[cfg(test)]
mod tests {
    use super::*;
    use pinhole_media::SystemClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cam(n: u32) -> Candidate {
        Candidate {
            path: PathBuf::from(format!("/dev/video{n}")),
            what: format!("/dev/video{n} (cam{n})"),
        }
    }

    fn scan(nodes: &[u32], found: &[u32]) -> Scan {
        Scan {
            nodes: nodes
                .iter()
                .map(|n| PathBuf::from(format!("/dev/video{n}")))
                .collect(),
            found: found.iter().map(|&n| cam(n)).collect(),
            skipped: vec![],
        }
    }

    const P: Policy = Policy {
        scan_interval_us: 1_000_000,
        grace_us: 5_000_000,
    };

    fn failing(n: u32, since: Option<u64>) -> Running {
        Running::Camera {
            path: PathBuf::from(format!("/dev/video{n}")),
            failing_since_us: since,
        }
    }

    #[test]
    fn the_pattern_gives_way_to_the_first_camera_that_appears() {
        assert_eq!(
            decide(&Running::Pattern, &scan(&[], &[]), 0, &P),
            Action::Stay
        );
        // A node that is not usable (metadata node, M2M codec) changes nothing.
        assert_eq!(
            decide(&Running::Pattern, &scan(&[1], &[]), 0, &P),
            Action::Stay
        );
        assert_eq!(
            decide(&Running::Pattern, &scan(&[0, 1, 2], &[2, 0]), 0, &P),
            Action::Switch(cam(2)),
            "the scan's order (best first) decides"
        );
        assert!(wants_scan(&Running::Pattern));
    }

    #[test]
    fn a_healthy_camera_is_never_replaced_or_scanned_around() {
        let r = failing(0, None);
        assert!(!wants_scan(&r));
        assert_eq!(
            decide(&r, &scan(&[0, 1], &[1, 0]), 99_000_000, &P),
            Action::Stay
        );
    }

    #[test]
    fn a_lost_camera_is_retried_not_replaced_by_the_pattern() {
        let r = failing(0, Some(10_000_000));
        assert!(wants_scan(&r));
        // No camera at all: stay on the failing camera (status says why).
        assert_eq!(decide(&r, &scan(&[], &[]), 60_000_000, &P), Action::Stay);
        // Its node is back: its own retry reopens it, no switch.
        assert_eq!(
            decide(&r, &scan(&[0, 1], &[1]), 60_000_000, &P),
            Action::Stay
        );
        // Node gone, another camera there, but within the grace period
        // (a USB camera re-enumerating): wait.
        assert_eq!(decide(&r, &scan(&[1], &[1]), 14_000_000, &P), Action::Stay);
        // After it: move to the other camera.
        assert_eq!(
            decide(&r, &scan(&[1], &[1]), 15_000_000, &P),
            Action::Switch(cam(1))
        );
    }

    /// A source that counts runs and frames and stops when told.
    struct Fake {
        name: &'static str,
        runs: Arc<AtomicUsize>,
        fail: bool,
    }

    impl Source for Fake {
        fn info(&self) -> SourceInfo {
            SourceInfo {
                kind: if self.name == "pattern" {
                    "test"
                } else {
                    "v4l2"
                },
                detail: self.name.into(),
                fps: None,
                bitrate: None,
                keyframe_interval: None,
            }
        }
        fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            sink.report(if self.fail {
                SourceState::Failed("gone".into())
            } else {
                SourceState::Running
            });
            while !stop.is_stopped() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Sink {
        infos: Mutex<Vec<SourceInfo>>,
    }

    impl FrameSink for Sink {
        fn publish(&self, _: AccessUnit) {}
        fn report(&self, _: SourceState) {}
        fn update_info(&self, info: SourceInfo) {
            self.infos.lock().expect("lock").push(info);
        }
    }

    #[test]
    fn switches_from_the_pattern_to_a_camera_that_appears_while_running() {
        // 0: nothing, 1: a node that cannot be opened, 2: a camera.
        let plugged = Arc::new(AtomicUsize::new(0));
        let p = plugged.clone();
        let scanner: Scanner = Box::new(move || match p.load(Ordering::SeqCst) {
            0 => Scan {
                skipped: vec!["no /dev/video* nodes".into()],
                ..Scan::default()
            },
            1 => Scan {
                nodes: vec![PathBuf::from("/dev/video0")],
                skipped: vec!["/dev/video0: Operation not permitted".into()],
                ..Scan::default()
            },
            _ => scan(&[0], &[0]),
        });
        let cam_runs = Arc::new(AtomicUsize::new(0));
        let cr = cam_runs.clone();
        let camera: CameraBuilder = Box::new(move |_c: &Candidate| {
            Ok(Box::new(Fake {
                name: "camera",
                runs: cr.clone(),
                fail: false,
            }) as Box<dyn Source>)
        });
        let pat_runs = Arc::new(AtomicUsize::new(0));
        let pr = pat_runs.clone();
        let active = Active::default();
        let mut auto = AutoSource::new(
            scanner,
            camera,
            move || {
                Ok(Box::new(Fake {
                    name: "pattern",
                    runs: pr,
                    fail: false,
                }) as Box<dyn Source>)
            },
            Arc::new(SystemClock::new()),
            active.clone(),
            Policy {
                scan_interval_us: 20_000,
                grace_us: 0,
            },
        )
        .expect("auto");
        assert_eq!(auto.info().kind, "test");
        assert!(auto
            .info()
            .detail
            .contains("auto: no camera (no /dev/video* nodes)"));
        assert_eq!(active.get().0, "test");

        let sink = Arc::new(Sink::default());
        let stop = StopFlag::new();
        let (s2, st2) = (sink.clone(), stop.clone());
        let t = std::thread::spawn(move || auto.run(&*s2, &st2));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(cam_runs.load(Ordering::SeqCst), 0, "no camera yet");
        assert!(
            sink.infos.lock().expect("lock").is_empty(),
            "same reasons: no update"
        );
        // A node that cannot be used: the status says why.
        plugged.store(1, Ordering::SeqCst);
        let start = std::time::Instant::now();
        while !sink.infos.lock().expect("lock").last().is_some_and(|i| {
            i.kind == "test"
                && i.detail
                    .contains("auto: no camera (/dev/video0: Operation not permitted)")
        }) {
            assert!(
                start.elapsed().as_secs() < 10,
                "the new reason is not shown"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(cam_runs.load(Ordering::SeqCst), 0);
        plugged.store(2, Ordering::SeqCst);
        let start = std::time::Instant::now();
        while cam_runs.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed().as_secs() < 10, "no switch to the camera");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let info = sink
            .infos
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("info");
        assert_eq!(info.kind, "v4l2");
        assert!(
            info.detail
                .contains("/dev/video0 (cam0); found while the test pattern ran"),
            "{}",
            info.detail
        );
        assert_eq!(active.get(), ("v4l2", Some(PathBuf::from("/dev/video0"))));
        assert_eq!(pat_runs.load(Ordering::SeqCst), 1);
        stop.stop();
        t.join().expect("join").expect("clean stop");
    }

    #[test]
    fn at_start_a_camera_wins_over_the_pattern() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let auto = AutoSource::new(
            Box::new(|| scan(&[0, 1], &[1])),
            Box::new(move |_c: &Candidate| {
                Ok(Box::new(Fake {
                    name: "camera",
                    runs: r.clone(),
                    fail: true,
                }) as Box<dyn Source>)
            }),
            || Err("the pattern must not be built".into()),
            Arc::new(SystemClock::new()),
            Active::default(),
            P,
        )
        .expect("auto");
        assert_eq!(auto.info().kind, "v4l2");
        assert!(auto.info().detail.contains("auto: /dev/video1 (cam1)"));
    }
}
