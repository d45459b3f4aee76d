//! `--source auto`: which source runs, and switching to a camera that is
//! plugged in later (docs/cameras.md, *Auto-detect*).
//!
//! At start: a libcamera camera (the helper is asked, blocking), else the
//! first usable V4L2 camera, else the test pattern. While the test pattern
//! runs, `/dev/video*` is rescanned every [`Policy::scan_interval_us`], and
//! the libcamera helper is asked again — in a thread, so a slow or hung
//! helper never holds up the V4L2 scan — when the set of `/dev/media*`
//! nodes changed (every libcamera camera has one) or
//! [`Policy::libcamera_interval_us`] passed ([`libcamera_due`]). A camera
//! that appears replaces the pattern on the same source thread — no daemon
//! restart, viewers stay connected (the hub starts a new stream generation
//! if the SPS changes). libcamera wins over V4L2 as at start.
//!
//! A camera that goes away is *not* replaced by the test pattern: it is
//! retried with backoff (`pinhole_capture::supervisor`, inside auto's run)
//! and the status says why there is no picture. Auto only moves on if the lost camera's node is gone and
//! another usable camera is there.
//!
//! [`decide`] and [`libcamera_due`] are the whole policy, pure, with the
//! scan and the time given.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use pinhole_capture::supervisor::{run_restarting, Ended};
use pinhole_capture::v4l2::{self, negotiate::Wanted};
use pinhole_capture::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};
use pinhole_media::{AccessUnit, Clock};

use crate::camera_ctl::Active;

/// A camera auto can run.
#[derive(Clone, Debug, PartialEq)]
pub enum Camera {
    /// A V4L2 capture node.
    V4l2(PathBuf),
    /// A libcamera camera id, run by the `pinhole-libcamera` helper.
    Libcamera(String),
}

impl std::fmt::Display for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Camera::V4l2(p) => write!(f, "{}", p.display()),
            Camera::Libcamera(id) => write!(f, "libcamera camera {id}"),
        }
    }
}

/// A usable camera a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub camera: Camera,
    /// For people: `/dev/video0 (vivid, vivid) offers YUYV 640x480`.
    pub what: String,
}

/// What one scan saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Every V4L2 device node present, usable or not.
    pub nodes: Vec<PathBuf>,
    /// Usable cameras: libcamera ones (fresh from a listing that ended
    /// since the last scan), then V4L2 ones best first.
    pub found: Vec<Candidate>,
    /// Why the others were not used.
    pub skipped: Vec<String>,
    /// A libcamera listing runs since then; its answer comes with a later
    /// scan.
    pub libcamera_pending_since_us: Option<u64>,
}

/// What auto is running now.
#[derive(Clone, Debug, PartialEq)]
pub enum Running {
    Pattern,
    Camera {
        camera: Camera,
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
    /// How often `/dev/video*` is rescanned while a scan is wanted.
    pub scan_interval_us: u64,
    /// A failing camera whose node is gone is given this long to come back
    /// (a USB re-enumeration) before auto moves to another camera.
    pub grace_us: u64,
    /// While a scan is wanted, the libcamera helper is asked again after
    /// this long even if no `/dev/media*` node changed; 0: only on changes.
    pub libcamera_interval_us: u64,
    /// A V4L2 camera found while a libcamera listing runs waits this long
    /// for its answer (libcamera first, as at start), and no longer (a hung
    /// helper must not hold up V4L2 hotplug).
    pub libcamera_hold_us: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            scan_interval_us: 2_000_000,
            grace_us: 5_000_000,
            libcamera_interval_us: 60_000_000,
            libcamera_hold_us: 5_000_000,
        }
    }
}

/// A healthy camera is left alone: no scanning (no opening of other nodes,
/// no helper started) while video flows. A failing libcamera camera is not
/// scanned around either: its source respawns the helper itself.
pub fn wants_scan(running: &Running) -> bool {
    matches!(
        running,
        Running::Pattern
            | Running::Camera {
                camera: Camera::V4l2(_),
                failing_since_us: Some(_),
            }
    )
}

/// The auto policy.
pub fn decide(running: &Running, scan: &Scan, now_us: u64, policy: &Policy) -> Action {
    match running {
        Running::Pattern => pick(scan, None, now_us, policy),
        Running::Camera {
            camera: Camera::V4l2(path),
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
            pick(scan, Some(&Camera::V4l2(path.clone())), now_us, policy)
        }
        // Healthy, or a libcamera camera (its source retries).
        Running::Camera { .. } => Action::Stay,
    }
}

/// The camera to switch to: a libcamera one first, else the best V4L2 one
/// unless a libcamera listing that may still name one is under way (for at
/// most [`Policy::libcamera_hold_us`]).
fn pick(scan: &Scan, not: Option<&Camera>, now_us: u64, policy: &Policy) -> Action {
    let usable = || scan.found.iter().filter(|c| Some(&c.camera) != not);
    if let Some(c) = usable().find(|c| matches!(c.camera, Camera::Libcamera(_))) {
        return Action::Switch(c.clone());
    }
    let Some(c) = usable().next() else {
        return Action::Stay;
    };
    match scan.libcamera_pending_since_us {
        Some(since) if now_us.saturating_sub(since) < policy.libcamera_hold_us => Action::Stay,
        _ => Action::Switch(c.clone()),
    }
}

/// The last libcamera listing: when, and the `/dev/media*` nodes then.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub at_us: u64,
    pub media: Vec<(PathBuf, u64)>,
}

/// Whether to ask the libcamera helper (a process start) again: never
/// asked, a `/dev/media*` node appeared, went or was re-created (every
/// libcamera camera, CSI or USB, has a media device), or the fallback
/// interval passed.
pub fn libcamera_due(
    last: Option<&Listed>,
    media: &[(PathBuf, u64)],
    now_us: u64,
    policy: &Policy,
) -> bool {
    match last {
        None => true,
        Some(l) => {
            l.media != media
                || (policy.libcamera_interval_us > 0
                    && now_us.saturating_sub(l.at_us) >= policy.libcamera_interval_us)
        }
    }
}

/// One scan, given the time.
pub type Scanner = Box<dyn FnMut(u64) -> Scan + Send>;
pub type CameraBuilder = Box<dyn FnMut(&Candidate) -> Result<Box<dyn Source>, String> + Send>;

/// Asks the libcamera helper for its cameras; the parts are injected so
/// tests need no helper process.
pub struct LibcameraProbe {
    /// The helper, or why there is none (cheap: no process is started).
    pub locate: Box<dyn FnMut() -> Result<PathBuf, String> + Send>,
    /// The helper's cameras. Blocks; the helper protocol's timeouts bound
    /// it (a hung helper is killed).
    pub list: Arc<dyn Fn(&Path) -> Listing + Send + Sync>,
    /// The `/dev/media*` nodes and their device numbers, sorted.
    pub media: Box<dyn FnMut() -> Vec<(PathBuf, u64)> + Send>,
}

/// What the helper answered: its cameras, or why not.
pub type Listing = Result<Vec<Candidate>, String>;

/// The libcamera half of a scan: the first call asks the helper and waits
/// (start-up), later ones ask in a thread when [`libcamera_due`] and pick
/// the answer up in a later scan.
struct LibcameraWatch {
    probe: LibcameraProbe,
    last: Option<Listed>,
    pending: Option<(u64, mpsc::Receiver<Listing>)>,
    /// Why no libcamera camera is used.
    why: String,
}

impl LibcameraWatch {
    fn take(&mut self, listing: Listing) -> Vec<Candidate> {
        match listing {
            Ok(list) if list.is_empty() => {
                self.why = "the camera helper sees no camera".into();
                list
            }
            Ok(list) => {
                self.why.clear();
                list
            }
            Err(e) => {
                self.why = e;
                Vec::new()
            }
        }
    }

    fn poll(&mut self, now_us: u64, policy: &Policy, scan: &mut Scan) {
        if let Some((since, rx)) = &self.pending {
            let since = *since;
            match rx.try_recv() {
                Ok(listing) => {
                    self.pending = None;
                    let found = self.take(listing);
                    scan.found.extend(found);
                }
                Err(mpsc::TryRecvError::Empty) => scan.libcamera_pending_since_us = Some(since),
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.pending = None;
                    self.why = "the camera listing ended without an answer".into();
                }
            }
        } else {
            let media = (self.probe.media)();
            if libcamera_due(self.last.as_ref(), &media, now_us, policy) {
                let first = self.last.is_none();
                self.last = Some(Listed {
                    at_us: now_us,
                    media,
                });
                match (self.probe.locate)() {
                    Err(e) => self.why = e,
                    Ok(helper) if first => {
                        let found = self.take((self.probe.list)(&helper));
                        scan.found.extend(found);
                    }
                    Ok(helper) => {
                        let (tx, rx) = mpsc::channel();
                        let list = self.probe.list.clone();
                        let spawned = std::thread::Builder::new()
                            .name("auto-libcamera".into())
                            .spawn(move || {
                                let _ = tx.send(list(&helper));
                            });
                        match spawned {
                            Ok(_) => {
                                self.pending = Some((now_us, rx));
                                scan.libcamera_pending_since_us = Some(now_us);
                            }
                            Err(e) => self.why = format!("cannot start a thread: {e}"),
                        }
                    }
                }
            }
        }
        if !self.why.is_empty() {
            scan.skipped.insert(0, format!("libcamera: {}", self.why));
        }
    }
}

/// The scan `auto` runs: libcamera (if a probe is given), then V4L2.
pub fn scanner(
    mut v4l2: impl FnMut() -> Scan + Send + 'static,
    libcamera: Option<LibcameraProbe>,
    policy: Policy,
) -> Scanner {
    let mut lc = libcamera.map(|probe| LibcameraWatch {
        probe,
        last: None,
        pending: None,
        why: String::new(),
    });
    Box::new(move |now_us| {
        let mut s = Scan::default();
        if let Some(lc) = lc.as_mut() {
            lc.poll(now_us, &policy, &mut s);
        }
        let v = v4l2();
        s.nodes = v.nodes;
        s.found.extend(v.found);
        s.skipped.extend(v.skipped);
        s
    })
}

/// `/dev/media*` with device numbers, sorted (for [`libcamera_due`]).
pub fn media_nodes(dev_dir: &Path) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(dev_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("media"))
        .map(|e| {
            let p = e.path();
            let rdev = std::fs::metadata(&p).map(|m| m.rdev()).unwrap_or(0);
            (p, rdev)
        })
        .collect();
    v.sort();
    v
}

/// The real V4L2 scan: `/dev/video*` nodes probed for a usable capture
/// format. Nodes that are not capture devices at all (M2M codecs, metadata
/// nodes) are remembered by device number and not reopened every scan.
pub fn v4l2_scanner(dev_dir: PathBuf, want: Wanted) -> impl FnMut() -> Scan + Send + 'static {
    use std::os::unix::fs::MetadataExt;
    let mut opener = v4l2::real_opener();
    let mut not_capture: std::collections::HashMap<PathBuf, (u64, String)> = Default::default();
    move || {
        let mut s = Scan {
            nodes: v4l2::device_nodes(&dev_dir),
            ..Scan::default()
        };
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
                    camera: Camera::V4l2(p.path.clone()),
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
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use pinhole_media::SystemClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cam(n: u32) -> Candidate {
        Candidate {
            camera: Camera::V4l2(PathBuf::from(format!("/dev/video{n}"))),
            what: format!("/dev/video{n} (cam{n})"),
        }
    }

    fn lcam(id: &str) -> Candidate {
        Candidate {
            camera: Camera::Libcamera(id.into()),
            what: format!("libcamera camera {id}"),
        }
    }

    fn scan(nodes: &[u32], found: &[u32]) -> Scan {
        Scan {
            nodes: nodes
                .iter()
                .map(|n| PathBuf::from(format!("/dev/video{n}")))
                .collect(),
            found: found.iter().map(|&n| cam(n)).collect(),
            ..Scan::default()
        }
    }

    const P: Policy = Policy {
        scan_interval_us: 1_000_000,
        grace_us: 5_000_000,
        libcamera_interval_us: 30_000_000,
        libcamera_hold_us: 4_000_000,
    };

    fn failing(n: u32, since: Option<u64>) -> Running {
        Running::Camera {
            camera: Camera::V4l2(PathBuf::from(format!("/dev/video{n}"))),
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
        let scanner: Scanner = Box::new(move |_| match p.load(Ordering::SeqCst) {
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
                ..Policy::default()
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
            Box::new(|_| scan(&[0, 1], &[1])),
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

    #[test]
    fn libcamera_wins_and_a_listing_under_way_holds_v4l2_only_briefly() {
        let both = Scan {
            found: vec![cam(0), lcam("imx708")],
            ..Scan::default()
        };
        assert_eq!(
            decide(&Running::Pattern, &both, 0, &P),
            Action::Switch(lcam("imx708")),
            "libcamera first, whatever the scan's order"
        );
        // A USB camera: its /dev/video0 and /dev/media0 appear together; the
        // listing the media node started may name it through libcamera.
        let pending = Scan {
            libcamera_pending_since_us: Some(10_000_000),
            ..scan(&[0], &[0])
        };
        assert_eq!(
            decide(&Running::Pattern, &pending, 13_999_999, &P),
            Action::Stay
        );
        // A helper that hangs does not hold V4L2 hotplug up any longer.
        assert_eq!(
            decide(&Running::Pattern, &pending, 14_000_000, &P),
            Action::Switch(cam(0))
        );
        // A failing V4L2 camera whose node is gone: libcamera first there too.
        let r = failing(0, Some(0));
        let scan = Scan {
            found: vec![cam(1), lcam("imx708")],
            ..scan(&[1], &[])
        };
        assert_eq!(
            decide(&r, &scan, 60_000_000, &P),
            Action::Switch(lcam("imx708"))
        );
    }

    #[test]
    fn a_libcamera_camera_is_left_to_its_own_retry() {
        let r = Running::Camera {
            camera: Camera::Libcamera("imx708".into()),
            failing_since_us: Some(0),
        };
        assert!(!wants_scan(&r), "no helper started, no nodes opened");
        assert_eq!(decide(&r, &scan(&[0], &[0]), 99_000_000, &P), Action::Stay);
    }

    #[test]
    fn the_helper_is_asked_again_on_media_changes_and_the_fallback_interval() {
        let m = |nodes: &[(u32, u64)]| -> Vec<(PathBuf, u64)> {
            nodes
                .iter()
                .map(|&(n, dev)| (PathBuf::from(format!("/dev/media{n}")), dev))
                .collect()
        };
        assert!(libcamera_due(None, &[], 0, &P), "at start");
        let last = Listed {
            at_us: 100_000_000,
            media: m(&[(0, 0xf100)]),
        };
        let same = m(&[(0, 0xf100)]);
        assert!(!libcamera_due(Some(&last), &same, 129_999_999, &P));
        assert!(libcamera_due(Some(&last), &same, 130_000_000, &P));
        assert!(
            libcamera_due(
                Some(&last),
                &m(&[(0, 0xf100), (1, 0xf101)]),
                100_000_001,
                &P
            ),
            "appeared"
        );
        assert!(libcamera_due(Some(&last), &[], 100_000_001, &P), "went");
        assert!(
            libcamera_due(Some(&last), &m(&[(0, 0xf101)]), 100_000_001, &P),
            "re-created"
        );
        let changes_only = Policy {
            libcamera_interval_us: 0,
            ..P
        };
        assert!(!libcamera_due(Some(&last), &same, u64::MAX, &changes_only));
    }

    /// A probe whose helper lists what `cameras` holds, after `delay`, and
    /// counts how often it was asked.
    fn probe(
        present: bool,
        cameras: Arc<Mutex<Vec<Candidate>>>,
        media: Arc<Mutex<Vec<(PathBuf, u64)>>>,
        delay: std::time::Duration,
        asked: Arc<AtomicUsize>,
    ) -> LibcameraProbe {
        LibcameraProbe {
            locate: Box::new(move || {
                if present {
                    Ok(PathBuf::from("/helper"))
                } else {
                    Err("no pinhole-libcamera helper installed".into())
                }
            }),
            list: Arc::new(move |_: &Path| {
                asked.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                Ok(lock(&cameras).clone())
            }),
            media: Box::new(move || lock(&media).clone()),
        }
    }

    /// Calls `scanner` at `now` until it returns a scan without a pending
    /// listing (the listing thread is real).
    fn settled(scanner: &mut Scanner, now: u64) -> Scan {
        let start = std::time::Instant::now();
        loop {
            let s = scanner(now);
            if s.libcamera_pending_since_us.is_none() {
                return s;
            }
            assert!(start.elapsed().as_secs() < 10, "the listing never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn the_scanner_asks_the_helper_only_when_due_and_never_waits_for_it_after_start() {
        let cameras = Arc::new(Mutex::new(Vec::new()));
        let media = Arc::new(Mutex::new(Vec::new()));
        let asked = Arc::new(AtomicUsize::new(0));
        let v4l2_scans = Arc::new(AtomicUsize::new(0));
        let vs = v4l2_scans.clone();
        let mut scanner = scanner(
            move || {
                vs.fetch_add(1, Ordering::SeqCst);
                scan(&[], &[])
            },
            Some(probe(
                true,
                cameras.clone(),
                media.clone(),
                std::time::Duration::ZERO,
                asked.clone(),
            )),
            P,
        );
        // Start: asked and waited for.
        let s = scanner(0);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(s.libcamera_pending_since_us, None);
        assert_eq!(
            s.skipped,
            vec!["libcamera: the camera helper sees no camera".to_owned()]
        );
        // Nothing changed: V4L2 rescans, no helper process.
        for t in 1..29 {
            assert!(scanner(t * 1_000_000).found.is_empty());
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(v4l2_scans.load(Ordering::SeqCst), 29);
        // A media node appears (a camera plugged in): asked in a thread,
        // the answer comes with a later scan.
        *lock(&cameras) = vec![lcam("usb-cam")];
        lock(&media).push((PathBuf::from("/dev/media0"), 0xf100));
        let s = scanner(29_000_000);
        assert_eq!(s.libcamera_pending_since_us, Some(29_000_000));
        let s = settled(&mut scanner, 29_500_000);
        assert_eq!(s.found, vec![lcam("usb-cam")]);
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        // The fallback interval: asked again without a change.
        settled(&mut scanner, 58_000_000);
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        settled(&mut scanner, 59_500_000);
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn no_helper_installed_means_no_process_and_says_why() {
        let asked = Arc::new(AtomicUsize::new(0));
        let media = Arc::new(Mutex::new(vec![(PathBuf::from("/dev/media0"), 1)]));
        let mut scanner = scanner(
            || scan(&[], &[]),
            Some(probe(
                false,
                Arc::default(),
                media.clone(),
                std::time::Duration::ZERO,
                asked.clone(),
            )),
            P,
        );
        let s = scanner(0);
        lock(&media).clear();
        let s2 = scanner(1_000_000);
        assert_eq!(s2.libcamera_pending_since_us, None);
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        assert_eq!(
            s.skipped,
            vec!["libcamera: no pinhole-libcamera helper installed".to_owned()]
        );
    }

    #[test]
    fn a_hung_helper_does_not_hold_up_a_v4l2_camera() {
        let media = Arc::new(Mutex::new(Vec::new()));
        let asked = Arc::new(AtomicUsize::new(0));
        let plugged = Arc::new(AtomicUsize::new(0));
        let p = plugged.clone();
        let slow = probe(
            true,
            Arc::new(Mutex::new(vec![lcam("late")])),
            media.clone(),
            std::time::Duration::from_secs(2),
            asked.clone(),
        );
        let mut scanner = scanner(
            move || {
                if p.load(Ordering::SeqCst) == 1 {
                    scan(&[0], &[0])
                } else {
                    scan(&[], &[])
                }
            },
            Some(LibcameraProbe {
                // At start the helper answers at once with no camera.
                list: Arc::new({
                    let first = Arc::new(AtomicUsize::new(0));
                    let slow = slow.list.clone();
                    move |h: &Path| {
                        if first.fetch_add(1, Ordering::SeqCst) == 0 {
                            Ok(Vec::new())
                        } else {
                            slow(h)
                        }
                    }
                }),
                ..slow
            }),
            P,
        );
        scanner(0);
        // USB camera: node and media device at once; the helper is slow.
        plugged.store(1, Ordering::SeqCst);
        lock(&media).push((PathBuf::from("/dev/media0"), 0xf100));
        let start = std::time::Instant::now();
        let s = scanner(1_000_000);
        assert!(start.elapsed().as_millis() < 1000, "the scan did not wait");
        assert_eq!(s.found, vec![cam(0)]);
        assert_eq!(decide(&Running::Pattern, &s, 1_000_000, &P), Action::Stay);
        let s = scanner(5_000_000);
        assert_eq!(
            decide(&Running::Pattern, &s, 5_000_000, &P),
            Action::Switch(cam(0)),
            "after the hold: V4L2"
        );
        // Had the answer come in time, libcamera would have won.
        let s = settled(&mut scanner, 5_100_000);
        assert_eq!(s.found, vec![lcam("late"), cam(0)]);
        assert_eq!(
            decide(&Running::Pattern, &s, 5_100_000, &P),
            Action::Switch(lcam("late"))
        );
    }
}
