//! A/B boot-slot backends behind one trait: [`RpiTryboot`] (Raspberry Pi
//! firmware, `autoboot.txt` + `reboot "0 tryboot"`) and [`FileBootControl`]
//! (the U-Boot script of image/common/uboot/boot.cmd). Both
//! take their root paths as parameters, so tests run in a temp dir.
//!
//! Semantics shared by both: one slot is *committed* (booted by default);
//! `set_trial` arms a one-shot boot of the other slot, and any reset during
//! that trial boots the committed slot again; `commit` makes the running
//! slot the committed one with one atomic file replace.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{OtaError, Result};
use crate::format::Slot;

pub trait BootControl {
    /// The slot the running system booted from.
    fn active_slot(&self) -> Result<Slot>;
    /// The slot booted by default (what a reset falls back to).
    fn committed_slot(&self) -> Result<Slot>;
    /// Whether this boot is the one-shot trial.
    fn is_trial_boot(&self) -> Result<bool>;
    /// Arm a one-shot boot of `next` (never the active slot).
    fn set_trial(&mut self, next: Slot) -> Result<()>;
    /// Make `slot` the committed slot (one atomic write).
    fn commit(&mut self, slot: Slot) -> Result<()>;
    /// Make sure `slot` is not booted: cancel a trial of it. Refused for the
    /// committed slot (there would be nothing left to boot).
    fn mark_bad(&mut self, slot: Slot) -> Result<()>;
    /// Reboot into the armed trial.
    fn reboot_into_trial(&mut self) -> Result<()>;
    /// Plain reboot (into the committed slot): the rollback path.
    fn reboot(&mut self) -> Result<()>;
}

/// What the state machine needs to know about this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    pub active: Slot,
    /// Booted in trial and not (yet) committed: the fallback slot must not
    /// be overwritten and a health check decides.
    pub trial: bool,
}

impl BootInfo {
    pub fn read(b: &dyn BootControl) -> Result<BootInfo> {
        let active = b.active_slot()?;
        // A restart of pinholed after commit in the same boot still sees the
        // firmware's trial flag; the committed slot tells us it is settled.
        let trial = b.is_trial_boot()? && b.committed_slot()? != active;
        Ok(BootInfo { active, trial })
    }
}

/// How a backend reboots. Tests use `Disabled` so a test run as root can
/// never reboot the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootMethod {
    /// sync(2) then reboot(2).
    Syscall,
    /// Record the request only ([`RpiTryboot::reboots`]/[`FileBootControl::reboots`]).
    Disabled,
}

/// The reboot request a backend received (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootRequest {
    Trial,
    Normal,
}

fn do_reboot(method: RebootMethod, arg: Option<&std::ffi::CStr>) -> Result<()> {
    if method == RebootMethod::Disabled {
        return Ok(());
    }
    // SAFETY: sync and reboot take no pointers except `arg`, a valid C string
    // that outlives the call.
    let r = unsafe {
        libc::sync();
        match arg {
            Some(a) => libc::syscall(
                libc::SYS_reboot,
                libc::LINUX_REBOOT_MAGIC1,
                libc::LINUX_REBOOT_MAGIC2,
                libc::LINUX_REBOOT_CMD_RESTART2,
                a.as_ptr(),
            ),
            None => libc::reboot(libc::RB_AUTOBOOT) as libc::c_long,
        }
    };
    if r != 0 {
        return Err(OtaError::io("reboot(2)", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Replaces `dir/name` atomically: write a temp file, fsync it, rename over
/// the old one, fsync the directory. A power cut leaves the old or the new
/// file, never a mix. (On vfat the rename is as close to atomic as the
/// filesystem allows; the Pi firmware documents the same procedure.)
pub fn atomic_write(dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let what = |op: &str| format!("{op} {}", dst.display());
    {
        let mut f = File::create(&tmp).map_err(|e| OtaError::io(what("creating temp for"), e))?;
        f.write_all(contents)
            .map_err(|e| OtaError::io(what("writing temp for"), e))?;
        f.sync_all()
            .map_err(|e| OtaError::io(what("fsync temp for"), e))?;
    }
    fs::rename(&tmp, &dst).map_err(|e| OtaError::io(what("renaming temp onto"), e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| OtaError::io(format!("opening {}", dir.display()), e))?;
    match d.sync_all() {
        Ok(()) => Ok(()),
        // Some filesystems do not support fsync on a directory; the rename
        // itself is then all we can do.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(OtaError::io(format!("fsync {}", dir.display()), e)),
    }
}

fn read_text(p: &Path) -> Result<String> {
    fs::read_to_string(p).map_err(|e| OtaError::io(format!("reading {}", p.display()), e))
}

/// Raspberry Pi firmware tryboot.
///
/// `autoboot.txt` on the bootsel partition:
/// ```text
/// [all]
/// tryboot_a_b=1
/// boot_partition=2      <- committed slot
/// [tryboot]
/// boot_partition=3      <- booted once after `reboot "0 tryboot"`
/// ```
pub struct RpiTryboot {
    /// Mount point of the bootsel partition (holds autoboot.txt).
    pub bootsel_dir: PathBuf,
    /// `/proc/device-tree/chosen/bootloader`.
    pub dt_dir: PathBuf,
    /// Boot partition numbers of slot A and B (image/boards/rpi4/partitions).
    pub partitions: [u32; 2],
    pub method: RebootMethod,
    /// Reboot requests received, for tests.
    pub reboots: Vec<RebootRequest>,
}

impl RpiTryboot {
    pub fn new(
        bootsel_dir: impl Into<PathBuf>,
        dt_dir: impl Into<PathBuf>,
        method: RebootMethod,
    ) -> Self {
        RpiTryboot {
            bootsel_dir: bootsel_dir.into(),
            dt_dir: dt_dir.into(),
            partitions: [2, 3],
            method,
            reboots: Vec::new(),
        }
    }

    fn part(&self, s: Slot) -> u32 {
        match s {
            Slot::A => self.partitions[0],
            Slot::B => self.partitions[1],
        }
    }

    fn slot_of(&self, p: u32) -> Result<Slot> {
        if p == self.partitions[0] {
            Ok(Slot::A)
        } else if p == self.partitions[1] {
            Ok(Slot::B)
        } else {
            Err(OtaError::internal(format!(
                "boot partition {p} is neither slot A ({}) nor B ({})",
                self.partitions[0], self.partitions[1]
            )))
        }
    }

    fn dt_u32(&self, name: &str) -> Result<u32> {
        let p = self.dt_dir.join(name);
        let b = fs::read(&p).map_err(|e| OtaError::io(format!("reading {}", p.display()), e))?;
        // Device-tree cells are 4-byte big-endian.
        let c: [u8; 4] = b.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(|| {
            OtaError::internal(format!("{} is {} bytes, expected 4", p.display(), b.len()))
        })?;
        Ok(u32::from_be_bytes(c))
    }

    /// (committed, tryboot) partitions from autoboot.txt.
    fn read_autoboot(&self) -> Result<(u32, Option<u32>)> {
        let p = self.bootsel_dir.join("autoboot.txt");
        let (all, tryb) = parse_autoboot(&read_text(&p)?);
        let all = all.ok_or_else(|| {
            OtaError::internal(format!("{} has no [all] boot_partition", p.display()))
        })?;
        Ok((all, tryb))
    }

    fn write_autoboot(&self, committed: Slot, tryboot: Slot) -> Result<()> {
        let text = format!(
            "# Raspberry Pi A/B boot, written by pinholed (pinhole-ota); see docs/ota.md.\n\
             # [all]: the committed slot. [tryboot]: booted once after reboot \"0 tryboot\".\n\
             [all]\ntryboot_a_b=1\nboot_partition={}\n[tryboot]\nboot_partition={}\n",
            self.part(committed),
            self.part(tryboot)
        );
        atomic_write(&self.bootsel_dir, "autoboot.txt", text.as_bytes())
    }
}

/// `boot_partition` under `[all]` and under `[tryboot]`.
pub fn parse_autoboot(text: &str) -> (Option<u32>, Option<u32>) {
    let (mut all, mut tryb) = (None, None);
    let mut section = String::from("all");
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "boot_partition" {
                let v = v.trim().parse().ok();
                match section.as_str() {
                    "all" => all = v,
                    "tryboot" => tryb = v,
                    _ => {}
                }
            }
        }
    }
    (all, tryb)
}

impl BootControl for RpiTryboot {
    fn active_slot(&self) -> Result<Slot> {
        self.slot_of(self.dt_u32("partition")?)
    }
    fn committed_slot(&self) -> Result<Slot> {
        self.slot_of(self.read_autoboot()?.0)
    }
    fn is_trial_boot(&self) -> Result<bool> {
        Ok(self.dt_u32("tryboot")? == 1)
    }
    fn set_trial(&mut self, next: Slot) -> Result<()> {
        if next == self.active_slot()? {
            return Err(OtaError::internal(format!(
                "slot {next} is running; cannot try it"
            )));
        }
        // Keep the committed slot as is; only the one-shot entry changes.
        let committed = self.committed_slot()?;
        self.write_autoboot(committed, next)
    }
    fn commit(&mut self, slot: Slot) -> Result<()> {
        self.write_autoboot(slot, slot.other())
    }
    fn mark_bad(&mut self, slot: Slot) -> Result<()> {
        let committed = self.committed_slot()?;
        if committed == slot {
            return Err(OtaError::internal(format!(
                "slot {slot} is the committed slot; refusing to mark it bad"
            )));
        }
        // A stray tryboot now boots the committed slot, not the bad one.
        self.write_autoboot(committed, committed)
    }
    fn reboot_into_trial(&mut self) -> Result<()> {
        self.reboots.push(RebootRequest::Trial);
        // What `reboot "0 tryboot"` passes to the kernel; the Pi firmware
        // driver hands "tryboot" to the bootloader for the next boot only.
        do_reboot(self.method, Some(c"0 tryboot"))
    }
    fn reboot(&mut self) -> Result<()> {
        self.reboots.push(RebootRequest::Normal);
        do_reboot(self.method, None)
    }
}

/// U-Boot script backend (qemu-arm64), matching
/// image/common/uboot/boot.cmd:
/// - `slot.txt`: `boot_slot=a|b`, the committed slot;
/// - `tryboot.txt`: `try_slot=a|b` arms a one-shot trial; the script
///   rewrites it to `tried_slot=…` before booting it, so any reset falls back;
/// - the kernel command line carries `pinhole.slot=a|b pinhole.trial=0|1`.
pub struct FileBootControl {
    /// Mount point of the bootsel partition.
    pub bootsel_dir: PathBuf,
    /// Normally `/proc/cmdline`.
    pub cmdline: PathBuf,
    pub method: RebootMethod,
    pub reboots: Vec<RebootRequest>,
}

impl FileBootControl {
    pub fn new(
        bootsel_dir: impl Into<PathBuf>,
        cmdline: impl Into<PathBuf>,
        method: RebootMethod,
    ) -> Self {
        FileBootControl {
            bootsel_dir: bootsel_dir.into(),
            cmdline: cmdline.into(),
            method,
            reboots: Vec::new(),
        }
    }

    fn cmdline_param(&self, key: &str) -> Result<Option<String>> {
        let text = read_text(&self.cmdline)?;
        Ok(text
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .next_back()
            .map(str::to_string))
    }

    fn read_kv(&self, file: &str, key: &str) -> Result<Option<String>> {
        let p = self.bootsel_dir.join(file);
        match fs::read_to_string(&p) {
            Ok(t) => Ok(t
                .lines()
                .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .next_back()
                .map(|v| v.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OtaError::io(format!("reading {}", p.display()), e)),
        }
    }
}

impl BootControl for FileBootControl {
    fn active_slot(&self) -> Result<Slot> {
        let v = self.cmdline_param("pinhole.slot")?;
        v.as_deref().and_then(Slot::parse).ok_or_else(|| {
            OtaError::internal(format!(
                "{} has no valid pinhole.slot= (got {v:?})",
                self.cmdline.display()
            ))
        })
    }
    fn committed_slot(&self) -> Result<Slot> {
        // boot.cmd defaults to a when slot.txt is missing or unreadable.
        Ok(self
            .read_kv("slot.txt", "boot_slot")?
            .as_deref()
            .and_then(Slot::parse)
            .unwrap_or(Slot::A))
    }
    fn is_trial_boot(&self) -> Result<bool> {
        Ok(self.cmdline_param("pinhole.trial")?.as_deref() == Some("1"))
    }
    fn set_trial(&mut self, next: Slot) -> Result<()> {
        if next == self.active_slot()? {
            return Err(OtaError::internal(format!(
                "slot {next} is running; cannot try it"
            )));
        }
        atomic_write(
            &self.bootsel_dir,
            "tryboot.txt",
            format!("try_slot={next}\n").as_bytes(),
        )
    }
    fn commit(&mut self, slot: Slot) -> Result<()> {
        atomic_write(
            &self.bootsel_dir,
            "slot.txt",
            format!("boot_slot={slot}\n").as_bytes(),
        )
    }
    fn mark_bad(&mut self, slot: Slot) -> Result<()> {
        if self.committed_slot()? == slot {
            return Err(OtaError::internal(format!(
                "slot {slot} is the committed slot; refusing to mark it bad"
            )));
        }
        if self
            .read_kv("tryboot.txt", "try_slot")?
            .as_deref()
            .and_then(Slot::parse)
            == Some(slot)
        {
            let p = self.bootsel_dir.join("tryboot.txt");
            fs::remove_file(&p)
                .map_err(|e| OtaError::io(format!("removing {}", p.display()), e))?;
            sync_dir(&self.bootsel_dir)?;
        }
        Ok(())
    }
    fn reboot_into_trial(&mut self) -> Result<()> {
        // The trial request is in tryboot.txt; any reboot picks it up.
        self.reboots.push(RebootRequest::Trial);
        do_reboot(self.method, None)
    }
    fn reboot(&mut self) -> Result<()> {
        self.reboots.push(RebootRequest::Normal);
        do_reboot(self.method, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpi(partition: u32, tryboot: u32) -> (tempfile::TempDir, RpiTryboot) {
        let d = tempfile::tempdir().unwrap();
        let sel = d.path().join("bootsel");
        let dt = d.path().join("dt");
        fs::create_dir_all(&sel).unwrap();
        fs::create_dir_all(&dt).unwrap();
        // The file the image ships (image/boards/rpi4/bootsel/autoboot.txt).
        fs::write(
            sel.join("autoboot.txt"),
            "# comment\n[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
        )
        .unwrap();
        fs::write(dt.join("partition"), partition.to_be_bytes()).unwrap();
        fs::write(dt.join("tryboot"), tryboot.to_be_bytes()).unwrap();
        (d, RpiTryboot::new(sel, dt, RebootMethod::Disabled))
    }

    #[test]
    fn rpi_reads_device_tree_and_autoboot() {
        let (_d, b) = rpi(2, 0);
        assert_eq!(b.active_slot().unwrap(), Slot::A);
        assert_eq!(b.committed_slot().unwrap(), Slot::A);
        assert!(!b.is_trial_boot().unwrap());
        assert_eq!(
            BootInfo::read(&b).unwrap(),
            BootInfo {
                active: Slot::A,
                trial: false
            }
        );
        let (_d, b) = rpi(3, 1);
        assert_eq!(
            BootInfo::read(&b).unwrap(),
            BootInfo {
                active: Slot::B,
                trial: true
            }
        );
        let (_d, b) = rpi(7, 0);
        assert!(b.active_slot().is_err());
    }

    #[test]
    fn rpi_trial_commit_mark_bad() {
        let (d, mut b) = rpi(2, 0);
        let auto = d.path().join("bootsel/autoboot.txt");
        b.set_trial(Slot::B).unwrap();
        assert_eq!(
            parse_autoboot(&fs::read_to_string(&auto).unwrap()),
            (Some(2), Some(3))
        );
        assert!(fs::read_to_string(&auto).unwrap().contains("tryboot_a_b=1"));
        assert!(b.set_trial(Slot::A).is_err());
        b.mark_bad(Slot::B).unwrap();
        assert_eq!(
            parse_autoboot(&fs::read_to_string(&auto).unwrap()),
            (Some(2), Some(2))
        );
        assert!(b.mark_bad(Slot::A).is_err());
        b.reboot_into_trial().unwrap();
        assert_eq!(b.reboots, [RebootRequest::Trial]);

        // Now "booted" into B on trial; commit it.
        fs::write(d.path().join("dt/partition"), 3u32.to_be_bytes()).unwrap();
        fs::write(d.path().join("dt/tryboot"), 1u32.to_be_bytes()).unwrap();
        assert!(BootInfo::read(&b).unwrap().trial);
        b.commit(Slot::B).unwrap();
        assert_eq!(
            parse_autoboot(&fs::read_to_string(&auto).unwrap()),
            (Some(3), Some(2))
        );
        // Same boot, daemon restarted: no longer a trial.
        assert!(!BootInfo::read(&b).unwrap().trial);
        assert!(!d.path().join("bootsel/autoboot.txt.tmp").exists());
    }

    fn qemu(cmdline: &str) -> (tempfile::TempDir, FileBootControl) {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("slot.txt"), "boot_slot=a\n").unwrap();
        fs::write(d.path().join("cmdline"), cmdline).unwrap();
        let c = d.path().join("cmdline");
        let b = FileBootControl::new(d.path(), c, RebootMethod::Disabled);
        (d, b)
    }

    #[test]
    fn file_boot_control_matches_boot_cmd() {
        let (d, mut b) = qemu("root=PARTUUID=x ro quiet pinhole.slot=a pinhole.trial=0\n");
        assert_eq!(
            BootInfo::read(&b).unwrap(),
            BootInfo {
                active: Slot::A,
                trial: false
            }
        );
        b.set_trial(Slot::B).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("tryboot.txt")).unwrap(),
            "try_slot=b\n"
        );
        assert!(b.set_trial(Slot::A).is_err());
        b.mark_bad(Slot::B).unwrap();
        assert!(!d.path().join("tryboot.txt").exists());
        assert!(b.mark_bad(Slot::A).is_err());

        // U-Boot consumed the request and booted b on trial.
        fs::write(d.path().join("tryboot.txt"), "tried_slot=b\n").unwrap();
        fs::write(
            d.path().join("cmdline"),
            "ro pinhole.slot=b pinhole.trial=1",
        )
        .unwrap();
        assert_eq!(
            BootInfo::read(&b).unwrap(),
            BootInfo {
                active: Slot::B,
                trial: true
            }
        );
        b.commit(Slot::B).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("slot.txt")).unwrap(),
            "boot_slot=b\n"
        );
        assert!(!BootInfo::read(&b).unwrap().trial);
        // mark_bad of a slot that is not armed changes nothing.
        b.mark_bad(Slot::A).unwrap();
        assert!(d.path().join("tryboot.txt").exists());
    }

    #[test]
    fn file_boot_control_defaults_and_errors() {
        let (d, b) = qemu("quiet");
        assert!(b.active_slot().is_err());
        fs::remove_file(d.path().join("slot.txt")).unwrap();
        assert_eq!(b.committed_slot().unwrap(), Slot::A);
    }

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        atomic_write(d.path(), "f", b"one").unwrap();
        atomic_write(d.path(), "f", b"two").unwrap();
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
