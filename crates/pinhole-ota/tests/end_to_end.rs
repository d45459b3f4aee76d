//! keygen → create (CLI) → stream through reader + state machine + file slot
//! writer into temp "partitions", in random-size chunks; then the same with
//! damaged bundles. The active slot must stay byte-identical throughout.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use pinhole_ota::boot::RebootRequest;
use pinhole_ota::format::parse_public_key;
use pinhole_ota::updater::Event;
use pinhole_ota::{
    Action, BootInfo, Config, FileBootControl, FileSlots, Installer, Phase, Policy, RebootMethod,
    SlotPaths, Updater,
};

const BIN: &str = env!("CARGO_BIN_EXE_pinhole-bundle");

struct Fixture {
    dir: tempfile::TempDir,
    boot: Vec<u8>,
    root: Vec<u8>,
    bundle: Vec<u8>,
}

impl Fixture {
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
}

fn cli(args: &[&str], cwd: &Path) -> std::process::Output {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    o
}

fn fixture(board: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = fastrand::Rng::with_seed(42);
    // Like a vfat boot partition: some files, then empty space (zstd in
    // the bundle); the root is noise, which does not shrink (stored).
    let mut boot: Vec<u8> = (0..400_000).map(|_| rng.u8(..)).collect();
    boot.resize(3_000_000, 0);
    let root: Vec<u8> = (0..5_000_000).map(|_| rng.u8(..)).collect();
    fs::write(d.join("boot.img"), &boot).unwrap();
    fs::write(d.join("root.img"), &root).unwrap();
    assert!(cli(&["keygen", "--out", "keys"], d).status.success());
    let o = cli(
        &[
            "create",
            "--key",
            "keys/pinhole-bundle.key",
            "--board",
            board,
            "--version",
            "1.1.0",
            "--boot",
            "boot.img",
            "--root",
            "root.img",
            "-o",
            "update.phb",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The "device": partitions as files, bootsel dir, /proc/cmdline.
    for n in ["boot_a", "root_a"] {
        fs::write(d.join(n), format!("ACTIVE {n} contents ").repeat(50_000)).unwrap();
    }
    for n in ["boot_b", "root_b"] {
        fs::write(d.join(n), vec![0x55u8; 1 << 20]).unwrap();
    }
    fs::create_dir(d.join("bootsel")).unwrap();
    fs::write(d.join("bootsel/slot.txt"), "boot_slot=a\n").unwrap();
    fs::write(d.join("cmdline"), "ro pinhole.slot=a pinhole.trial=0\n").unwrap();
    let bundle = fs::read(d.join("update.phb")).unwrap();
    Fixture {
        dir,
        boot,
        root,
        bundle,
    }
}

fn installer(fx: &Fixture, pubkey: &str) -> Installer<FileSlots, FileBootControl> {
    let key = parse_public_key(&fs::read_to_string(fx.p(pubkey)).unwrap()).unwrap();
    let boot = FileBootControl::new(fx.p("bootsel"), fx.p("cmdline"), RebootMethod::Disabled);
    let info = BootInfo::read(&boot).unwrap();
    let mut cfg = Config::new(Policy {
        trusted_keys: vec![key],
        compatible: Some("qemu-arm64".into()),
        current_version: Some(semver::Version::new(1, 0, 0)),
        allow_downgrade: false,
    });
    cfg.reboot_delay = Duration::ZERO;
    // One decompressed block per batch: every chunk goes through Continue.
    cfg.batch_bytes = 1;
    let slots = FileSlots::new(SlotPaths::by_partlabel(fx.dir.path()), info.active);
    Installer::new(Updater::new(cfg, info), slots, boot)
}

/// Streams `bundle` in random chunks (1 B .. 200 KiB); returns all reports.
fn stream(
    inst: &mut Installer<FileSlots, FileBootControl>,
    bundle: &[u8],
    seed: u64,
) -> Vec<Action> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let t = Duration::from_secs(1);
    let mut out = inst.handle(Event::UploadStarted, t);
    let mut rest = bundle;
    while !rest.is_empty() {
        let n = rng.usize(1..=200_000).min(rest.len());
        out.extend(inst.handle(Event::UploadChunk(Bytes::copy_from_slice(&rest[..n])), t));
        rest = &rest[n..];
    }
    out.extend(inst.handle(Event::UploadFinished, t));
    out
}

fn errors(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Error(e) => Some(format!("{} {e}", e.http_status())),
            _ => None,
        })
        .collect()
}

fn actives(fx: &Fixture) -> (Vec<u8>, Vec<u8>) {
    (
        fs::read(fx.p("boot_a")).unwrap(),
        fs::read(fx.p("root_a")).unwrap(),
    )
}

fn assert_b_invalid_or_untouched(fx: &Fixture) {
    for n in ["boot_b", "root_b"] {
        let b = fs::read(fx.p(n)).unwrap();
        let head = &b[..b.len().min(1 << 20)];
        assert!(
            head.iter().all(|&x| x == 0) || head.iter().all(|&x| x == 0x55),
            "{n} neither invalid nor untouched"
        );
    }
    assert!(!fx.p("bootsel/tryboot.txt").exists(), "a trial was armed");
}

#[test]
fn good_bundle_installs_into_the_inactive_slot() {
    let fx = fixture("qemu-arm64");
    let before = actives(&fx);
    let mut inst = installer(&fx, "keys/pinhole-bundle.pub");
    let acts = stream(&mut inst, &fx.bundle, 1);
    assert!(errors(&acts).is_empty(), "{:?}", errors(&acts));
    assert_eq!(fs::read(fx.p("boot_b")).unwrap(), fx.boot);
    assert_eq!(fs::read(fx.p("root_b")).unwrap(), fx.root);
    assert_eq!(actives(&fx), before);
    // Trial armed the way boot.cmd expects, and the reboot requested.
    assert_eq!(
        fs::read_to_string(fx.p("bootsel/tryboot.txt")).unwrap(),
        "try_slot=b\n"
    );
    assert_eq!(
        fs::read_to_string(fx.p("bootsel/slot.txt")).unwrap(),
        "boot_slot=a\n"
    );
    assert_eq!(inst.boot.reboots, [RebootRequest::Trial]);
    assert_eq!(inst.updater.phase(), Phase::Rebooting);

    // "Reboot": U-Boot consumes the request and boots b on trial.
    fs::write(fx.p("bootsel/tryboot.txt"), "tried_slot=b\n").unwrap();
    fs::write(fx.p("cmdline"), "ro pinhole.slot=b pinhole.trial=1\n").unwrap();
    let mut inst = installer(&fx, "keys/pinhole-bundle.pub");
    assert_eq!(inst.updater.phase(), Phase::Trial);
    let health = pinhole_ota::Health {
        ready: true,
        frames_flowing: true,
        http_answering: true,
    };
    inst.handle(Event::Health(health), Duration::from_secs(30));
    assert_eq!(inst.updater.phase(), Phase::Committed);
    assert_eq!(
        fs::read_to_string(fx.p("bootsel/slot.txt")).unwrap(),
        "boot_slot=b\n"
    );
}

#[test]
fn trial_that_never_gets_healthy_rolls_back() {
    let fx = fixture("qemu-arm64");
    fs::write(fx.p("bootsel/tryboot.txt"), "tried_slot=b\n").unwrap();
    fs::write(fx.p("cmdline"), "ro pinhole.slot=b pinhole.trial=1\n").unwrap();
    let mut inst = installer(&fx, "keys/pinhole-bundle.pub");
    let acts = inst.handle(Event::Tick, Duration::from_secs(1000));
    assert_eq!(errors(&acts).len(), 1);
    assert_eq!(inst.boot.reboots, [RebootRequest::Normal]);
    assert_eq!(
        fs::read_to_string(fx.p("bootsel/slot.txt")).unwrap(),
        "boot_slot=a\n"
    );
}

#[test]
fn truncated_bundle_leaves_the_device_bootable() {
    let fx = fixture("qemu-arm64");
    let before = actives(&fx);
    let mut inst = installer(&fx, "keys/pinhole-bundle.pub");
    let acts = stream(&mut inst, &fx.bundle[..fx.bundle.len() - 1_000_000], 2);
    let e = errors(&acts);
    assert!(
        e.len() == 1 && e[0].starts_with("400") && e[0].contains("truncated"),
        "{e:?}"
    );
    assert_b_invalid_or_untouched(&fx);
    assert_eq!(actives(&fx), before);
}

#[test]
fn flipped_byte_in_image_2_is_caught() {
    let fx = fixture("qemu-arm64");
    let before = actives(&fx);
    let mut b = fx.bundle.clone();
    let i = b.len() - 2_000_000;
    b[i] ^= 1;
    let mut inst = installer(&fx, "keys/pinhole-bundle.pub");
    let acts = stream(&mut inst, &b, 3);
    let e = errors(&acts);
    assert!(
        e.len() == 1 && e[0].contains("SHA-256 mismatch") && e[0].contains("image 1"),
        "{e:?}"
    );
    assert_b_invalid_or_untouched(&fx);
    assert!(
        fs::read(fx.p("root_b")).unwrap()[..1 << 20]
            .iter()
            .all(|&x| x == 0),
        "root_b invalidated"
    );
    assert_eq!(actives(&fx), before);
}

#[test]
fn wrong_key_writes_nothing() {
    let fx = fixture("qemu-arm64");
    let before = actives(&fx);
    assert!(cli(&["keygen", "--out", "other"], fx.dir.path())
        .status
        .success());
    let mut inst = installer(&fx, "other/pinhole-bundle.pub");
    let acts = stream(&mut inst, &fx.bundle, 4);
    let e = errors(&acts);
    assert!(e.len() == 1 && e[0].starts_with("403"), "{e:?}");
    assert_eq!(fs::read(fx.p("boot_b")).unwrap(), vec![0x55; 1 << 20]);
    assert_eq!(fs::read(fx.p("root_b")).unwrap(), vec![0x55; 1 << 20]);
    assert_eq!(actives(&fx), before);
}

#[test]
fn wrong_board_writes_nothing() {
    let fx = fixture("rpi4");
    let before = actives(&fx);
    let mut inst = installer(&fx, "keys/pinhole-bundle.pub");
    let acts = stream(&mut inst, &fx.bundle, 5);
    let e = errors(&acts);
    assert!(e.len() == 1 && e[0].starts_with("422"), "{e:?}");
    assert_eq!(fs::read(fx.p("root_b")).unwrap(), vec![0x55; 1 << 20]);
    assert_eq!(actives(&fx), before);
}

#[test]
fn cli_verify_exit_codes() {
    let fx = fixture("qemu-arm64");
    let d = fx.dir.path();
    let ok = cli(
        &[
            "verify",
            "--pubkey",
            "keys/pinhole-bundle.pub",
            "--board",
            "qemu-arm64",
            "update.phb",
        ],
        d,
    );
    assert!(ok.status.success());
    let mut b = fx.bundle.clone();
    let n = b.len();
    b[n - 10] ^= 0xff;
    fs::write(d.join("bad.phb"), &b).unwrap();
    let bad = cli(
        &["verify", "--pubkey", "keys/pinhole-bundle.pub", "bad.phb"],
        d,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SHA-256 mismatch"));
    let rel = cli(
        &[
            "create",
            "--release",
            "--board",
            "x",
            "--version",
            "1.0.0",
            "--boot",
            "boot.img",
            "--root",
            "root.img",
            "-o",
            "r.phb",
        ],
        d,
    );
    assert!(!rel.status.success());
    assert!(!d.join("r.phb").exists());
}
