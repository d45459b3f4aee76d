//! Writing images into the inactive slot. The I/O is behind [`SlotDevice`];
//! [`FileSlots`] works on partitions (`/dev/disk/by-partlabel/root_b`) and
//! on regular files (tests, QEMU disk experiments).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{OtaError, Result};
use crate::format::{ImageKind, Slot};

/// Read-back and invalidation work in chunks of this size: memory stays
/// bounded whatever the image size.
pub const IO_CHUNK: usize = 1 << 20;

/// The partitions of the inactive slot, as the update state machine sees
/// them. Implementations must refuse to touch the active slot.
pub trait SlotDevice {
    /// Prepare `kind` of `slot` for an image of `size` bytes.
    fn begin(&mut self, slot: Slot, kind: ImageKind, size: u64) -> Result<()>;
    /// Write `data` at byte `offset` of the image.
    fn write(&mut self, slot: Slot, kind: ImageKind, offset: u64, data: &[u8]) -> Result<()>;
    /// Make everything written durable.
    fn sync(&mut self, slot: Slot, kind: ImageKind) -> Result<()>;
    /// Re-read the first `size` bytes from the device and hash them.
    fn read_back_sha256(&mut self, slot: Slot, kind: ImageKind, size: u64) -> Result<[u8; 32]>;
    /// Make the partition unusable (its filesystem signature destroyed), so
    /// a half-written slot can never be mounted or booted.
    fn mark_invalid(&mut self, slot: Slot, kind: ImageKind) -> Result<()>;
}

/// Where each slot's partitions are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPaths {
    pub boot_a: PathBuf,
    pub boot_b: PathBuf,
    pub root_a: PathBuf,
    pub root_b: PathBuf,
}

impl SlotPaths {
    /// The GPT partition names of image/boards/*/partitions, under `dev_dir`
    /// (normally `/dev/disk/by-partlabel`).
    pub fn by_partlabel(dev_dir: &Path) -> Self {
        SlotPaths {
            boot_a: dev_dir.join("boot_a"),
            boot_b: dev_dir.join("boot_b"),
            root_a: dev_dir.join("root_a"),
            root_b: dev_dir.join("root_b"),
        }
    }

    pub fn get(&self, slot: Slot, kind: ImageKind) -> &Path {
        match (slot, kind) {
            (Slot::A, ImageKind::Boot) => &self.boot_a,
            (Slot::B, ImageKind::Boot) => &self.boot_b,
            (Slot::A, ImageKind::Root) => &self.root_a,
            (Slot::B, ImageKind::Root) => &self.root_b,
        }
    }
}

/// File- or block-device-backed slots.
pub struct FileSlots {
    paths: SlotPaths,
    active: Slot,
    open: Option<(Slot, ImageKind, File)>,
}

impl FileSlots {
    /// `active` is the slot we are running from: every call for it fails.
    pub fn new(paths: SlotPaths, active: Slot) -> Self {
        FileSlots {
            paths,
            active,
            open: None,
        }
    }

    fn guard(&self, slot: Slot) -> Result<()> {
        if slot == self.active {
            return Err(OtaError::internal(format!(
                "refusing to touch slot {slot}: it is the running slot"
            )));
        }
        Ok(())
    }

    fn file(&mut self, slot: Slot, kind: ImageKind) -> Result<&File> {
        self.guard(slot)?;
        match &self.open {
            Some((s, k, f)) if *s == slot && *k == kind => Ok(f),
            _ => Err(OtaError::internal(format!(
                "{kind} of slot {slot} is not open for writing"
            ))),
        }
    }

    fn path_str(&self, slot: Slot, kind: ImageKind) -> String {
        self.paths.get(slot, kind).display().to_string()
    }
}

impl SlotDevice for FileSlots {
    fn begin(&mut self, slot: Slot, kind: ImageKind, size: u64) -> Result<()> {
        self.guard(slot)?;
        self.open = None;
        let path = self.paths.get(slot, kind).to_path_buf();
        let what = |op: &str| format!("{op} {} ({kind} of slot {slot})", path.display());
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| OtaError::io(what("opening"), e))?;
        let meta = f.metadata().map_err(|e| OtaError::io(what("stat"), e))?;
        if meta.file_type().is_block_device() {
            // A partition cannot grow: the image must fit.
            let cap = std::io::Seek::seek(&mut &f, std::io::SeekFrom::End(0))
                .map_err(|e| OtaError::io(what("sizing"), e))?;
            if size > cap {
                return Err(OtaError::incompatible(format!(
                    "{kind} image is {size} bytes but {} holds only {cap}",
                    path.display()
                )));
            }
        } else {
            // A regular file stands for the partition: make it the image's size.
            f.set_len(size)
                .map_err(|e| OtaError::io(what("resizing"), e))?;
        }
        self.open = Some((slot, kind, f));
        Ok(())
    }

    fn write(&mut self, slot: Slot, kind: ImageKind, offset: u64, data: &[u8]) -> Result<()> {
        let p = self.path_str(slot, kind);
        self.file(slot, kind)?
            .write_all_at(data, offset)
            .map_err(|e| OtaError::io(format!("writing {p} at {offset}"), e))
    }

    fn sync(&mut self, slot: Slot, kind: ImageKind) -> Result<()> {
        let p = self.path_str(slot, kind);
        self.file(slot, kind)?
            .sync_all()
            .map_err(|e| OtaError::io(format!("fsync {p}"), e))
    }

    fn read_back_sha256(&mut self, slot: Slot, kind: ImageKind, size: u64) -> Result<[u8; 32]> {
        self.guard(slot)?;
        self.open = None;
        let path = self.paths.get(slot, kind);
        let what = |op: &str| format!("{op} {} for verification", path.display());
        let f = File::open(path).map_err(|e| OtaError::io(what("opening"), e))?;
        // Drop the (clean, just synced) cached pages so the hash is over what
        // the medium returns, not over what we wrote into RAM. Advisory: on
        // failure the check is weaker, not wrong.
        // SAFETY: plain syscall on a valid fd.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        let mut h = Sha256::new();
        let mut buf = vec![0u8; IO_CHUNK];
        let mut left = size;
        let mut r = f.take(size);
        while left > 0 {
            let n = r
                .read(&mut buf)
                .map_err(|e| OtaError::io(what("reading"), e))?;
            if n == 0 {
                return Err(OtaError::io(
                    what("reading"),
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{left} bytes short"),
                    ),
                ));
            }
            h.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(h.finalize().into())
    }

    fn mark_invalid(&mut self, slot: Slot, kind: ImageKind) -> Result<()> {
        self.guard(slot)?;
        self.open = None;
        let path = self.paths.get(slot, kind);
        let what = |op: &str| format!("{op} {} to invalidate it", path.display());
        let f = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            // Nothing there, nothing to invalidate.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(OtaError::io(what("opening"), e)),
        };
        // squashfs, erofs and vfat all keep their signature in the first
        // sectors: zeroing the first MiB makes the partition unmountable and
        // unbootable, which is what "invalid" must mean after a power cut.
        let len = std::io::Seek::seek(&mut &f, std::io::SeekFrom::End(0))
            .map_err(|e| OtaError::io(what("sizing"), e))?;
        let n = len.min(IO_CHUNK as u64) as usize;
        f.write_all_at(&vec![0u8; n], 0)
            .map_err(|e| OtaError::io(what("zeroing"), e))?;
        f.sync_all().map_err(|e| OtaError::io(what("fsync"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, FileSlots) {
        let d = tempfile::tempdir().unwrap();
        for n in ["boot_a", "boot_b", "root_a", "root_b"] {
            std::fs::write(d.path().join(n), vec![0xAA; 3 << 20]).unwrap();
        }
        let s = FileSlots::new(SlotPaths::by_partlabel(d.path()), Slot::A);
        (d, s)
    }

    #[test]
    fn write_sync_read_back() {
        let (d, mut s) = setup();
        let img: Vec<u8> = (0..2_500_000u32).map(|i| (i * 31) as u8).collect();
        s.begin(Slot::B, ImageKind::Root, img.len() as u64).unwrap();
        for (i, c) in img.chunks(100_000).enumerate() {
            s.write(Slot::B, ImageKind::Root, (i * 100_000) as u64, c)
                .unwrap();
        }
        s.sync(Slot::B, ImageKind::Root).unwrap();
        let h = s
            .read_back_sha256(Slot::B, ImageKind::Root, img.len() as u64)
            .unwrap();
        assert_eq!(h, <[u8; 32]>::from(Sha256::digest(&img)));
        assert_eq!(std::fs::read(d.path().join("root_b")).unwrap(), img);
    }

    #[test]
    fn never_touches_the_active_slot() {
        let (d, mut s) = setup();
        let before = std::fs::read(d.path().join("root_a")).unwrap();
        assert_eq!(
            s.begin(Slot::A, ImageKind::Root, 10)
                .unwrap_err()
                .http_status(),
            500
        );
        assert!(s.write(Slot::A, ImageKind::Root, 0, b"x").is_err());
        assert!(s.mark_invalid(Slot::A, ImageKind::Root).is_err());
        assert!(s.read_back_sha256(Slot::A, ImageKind::Root, 1).is_err());
        assert_eq!(std::fs::read(d.path().join("root_a")).unwrap(), before);
    }

    #[test]
    fn write_without_begin_fails() {
        let (_d, mut s) = setup();
        assert!(s.write(Slot::B, ImageKind::Boot, 0, b"x").is_err());
        s.begin(Slot::B, ImageKind::Boot, 1).unwrap();
        assert!(s.write(Slot::B, ImageKind::Root, 0, b"x").is_err());
    }

    #[test]
    fn mark_invalid_zeroes_the_head() {
        let (d, mut s) = setup();
        s.mark_invalid(Slot::B, ImageKind::Boot).unwrap();
        let b = std::fs::read(d.path().join("boot_b")).unwrap();
        assert!(b[..IO_CHUNK].iter().all(|&x| x == 0));
        assert!(b[IO_CHUNK..].iter().all(|&x| x == 0xAA));
    }

    #[test]
    fn short_device_fails_read_back() {
        let (_d, mut s) = setup();
        assert!(s
            .read_back_sha256(Slot::B, ImageKind::Boot, 10 << 20)
            .is_err());
    }
}
