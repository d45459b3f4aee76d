//! What `auto` looks at: the V4L2 nodes (probed for a usable format) and
//! the libcamera helper's cameras (asked only when due, in a thread).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use pinhole_capture::v4l2::{self, negotiate::Wanted};

use super::{libcamera_due, Camera, Candidate, Listed, Policy, Scan};

/// One scan, given the time.
pub type Scanner = Box<dyn FnMut(u64) -> Scan + Send>;

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
