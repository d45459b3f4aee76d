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

use std::path::PathBuf;

mod scan;
mod source;
#[cfg(test)]
mod tests;

pub use scan::{media_nodes, scanner, v4l2_scanner, LibcameraProbe, Scanner};
pub use source::{AutoSource, CameraBuilder};

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
