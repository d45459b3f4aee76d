//! The auto policy on given scans, and the auto source with fake cameras
//! and a fake libcamera helper.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pinhole_capture::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};
use pinhole_media::{AccessUnit, SystemClock};

use super::*;
use crate::camera_ctl::Active;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("lock")
}

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
        || {
            Err(crate::error::SourceError::Unknown(
                "the pattern must not be built".into(),
            ))
        },
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
