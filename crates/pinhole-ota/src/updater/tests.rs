use super::*;
use crate::format::{encode_head, hex, ImageInfo};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

const BOOT: &[u8] = b"BOOT-IMAGE-0123456789";
const ROOT: &[u8] = b"ROOT-FILESYSTEM-abcdefghijklmnopqrstuvwxyz";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn info(kind: ImageKind, slot: Option<Slot>, d: &[u8]) -> ImageInfo {
    ImageInfo {
        kind,
        slot,
        size: d.len() as u64,
        sha256: hex(&Sha256::digest(d)),
        encoding: crate::format::Encoding::None,
        stored_size: None,
    }
}

fn bundle_with(f: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let mut m = Manifest {
        format: 1,
        product: "pinhole".into(),
        compatible: "rpi4".into(),
        version: "2.0.0".into(),
        build_time: 0,
        images: vec![
            info(ImageKind::Boot, None, BOOT),
            info(ImageKind::Root, None, ROOT),
        ],
    };
    f(&mut m);
    let mut b = encode_head(&m, &key()).unwrap();
    b.extend_from_slice(BOOT);
    b.extend_from_slice(ROOT);
    b
}

fn bundle() -> Vec<u8> {
    bundle_with(|_| {})
}

fn cfg() -> Config {
    let mut c = Config::new(Policy {
        trusted_keys: vec![key().verifying_key()],
        compatible: Some("rpi4".into()),
        current_version: Some(semver::Version::new(1, 0, 0)),
        allow_downgrade: false,
    });
    c.reboot_delay = Duration::from_secs(2);
    c.health_timeout = Duration::from_secs(100);
    c
}

fn idle() -> Updater {
    Updater::new(
        cfg(),
        BootInfo {
            active: Slot::A,
            trial: false,
        },
    )
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The invariant every test checks: nothing touches the active slot.
fn assert_untouched(acts: &[Action], active: Slot) {
    for a in acts {
        let slot = match a {
            Action::BeginImage { slot, .. }
            | Action::Write { slot, .. }
            | Action::Sync { slot, .. }
            | Action::VerifyImage { slot, .. }
            | Action::MarkInvalid { slot, .. }
            | Action::SetTrial { slot } => Some(*slot),
            _ => None,
        };
        assert_ne!(slot, Some(active), "action on the active slot: {a:?}");
    }
}

/// Feeds the bundle in `step`-byte chunks; returns all actions.
fn upload(u: &mut Updater, b: &[u8], step: usize) -> Vec<Action> {
    let mut acts = u.handle(Event::UploadStarted, s(0));
    for c in b.chunks(step) {
        acts.extend(u.handle(Event::UploadChunk(Bytes::copy_from_slice(c)), s(1)));
    }
    assert_untouched(&acts, u.boot().active);
    acts
}

fn assert_a_untouched(acts: &[Action]) {
    assert_untouched(acts, Slot::A)
}

/// A prefix of the bundle that ends inside the boot image.
fn into_boot(b: &[u8]) -> &[u8] {
    &b[..b.len() - ROOT.len() - 5]
}

fn written(acts: &[Action], kind: ImageKind) -> Vec<u8> {
    let mut v = Vec::new();
    for a in acts {
        if let Action::Write {
            kind: k,
            offset,
            data,
            ..
        } = a
        {
            if *k == kind {
                assert_eq!(*offset as usize, v.len());
                v.extend_from_slice(data);
            }
        }
    }
    v
}

fn count(acts: &[Action], f: impl Fn(&Action) -> bool) -> usize {
    acts.iter().filter(|a| f(a)).count()
}

/// How often `kind` on slot B is marked invalid.
fn marked_invalid(acts: &[Action], kind: ImageKind) -> usize {
    count(
        acts,
        |a| matches!(a, Action::MarkInvalid { slot: Slot::B, kind: k } if *k == kind),
    )
}

fn error(acts: &[Action]) -> Option<&OtaError> {
    acts.iter().find_map(|a| match a {
        Action::Error(e) => Some(e),
        _ => None,
    })
}

fn is_io_to_slot(a: &Action) -> bool {
    matches!(
        a,
        Action::BeginImage { .. }
            | Action::Write { .. }
            | Action::MarkBad { .. }
            | Action::MarkInvalid { .. }
            | Action::SetTrial { .. }
            | Action::Sync { .. }
    )
}

#[test]
fn happy_path_to_reboot() {
    let mut u = idle();
    let b = bundle();
    let acts = upload(&mut u, &b, 7);
    assert_eq!(written(&acts, ImageKind::Boot), BOOT);
    assert_eq!(written(&acts, ImageKind::Root), ROOT);
    // MarkBad(target) comes before the first write.
    let first_bad = acts
        .iter()
        .position(|a| matches!(a, Action::MarkBad { slot: Slot::B }))
        .unwrap();
    let first_begin = acts
        .iter()
        .position(|a| matches!(a, Action::BeginImage { .. }))
        .unwrap();
    assert!(first_bad < first_begin);
    assert_eq!(count(&acts, |a| matches!(a, Action::VerifyImage { .. })), 2);
    assert_eq!(count(&acts, |a| matches!(a, Action::Sync { .. })), 2);
    assert!(error(&acts).is_none());

    let acts = u.handle(Event::VerifyOk { index: 0 }, s(2));
    assert!(acts.is_empty());
    assert_eq!(u.phase(), Phase::Writing { image: 1 });
    let acts = u.handle(Event::VerifyOk { index: 1 }, s(2));
    assert!(acts.is_empty(), "not staged before the upload is finished");
    let acts = u.handle(Event::UploadFinished, s(2));
    assert!(matches!(
        acts.last(),
        Some(Action::SetTrial { slot: Slot::B })
    ));
    let acts = u.handle(Event::TrialArmed, s(3));
    assert_eq!(u.phase(), Phase::Staged);
    assert_eq!(count(&acts, |a| matches!(a, Action::RebootIntoTrial)), 0);
    assert_eq!(u.next_deadline(), Some(s(5)), "the reboot delay");
    assert!(u.handle(Event::Tick, s(4)).is_empty());
    let acts = u.handle(Event::Tick, s(5));
    assert!(matches!(acts.last(), Some(Action::RebootIntoTrial)));
    assert_eq!(u.phase(), Phase::Rebooting);
    assert_eq!(u.next_deadline(), None);
    // Nothing more to do; a new upload is refused.
    let acts = u.handle(Event::UploadStarted, s(6));
    assert_eq!(error(&acts).unwrap().http_status(), 409);
}

#[test]
fn finish_before_verify_waits_for_read_back() {
    let mut u = idle();
    upload(&mut u, &bundle(), 1000);
    assert!(u
        .handle(Event::UploadFinished, s(2))
        .iter()
        .all(|a| matches!(a, Action::Progress(_))));
    assert_eq!(u.phase(), Phase::Verifying);
    assert!(u.handle(Event::VerifyOk { index: 0 }, s(2)).is_empty());
    let acts = u.handle(Event::VerifyOk { index: 1 }, s(2));
    assert!(matches!(
        acts.last(),
        Some(Action::SetTrial { slot: Slot::B })
    ));
}

#[test]
fn zero_reboot_delay_reboots_at_once() {
    let mut c = cfg();
    c.reboot_delay = Duration::ZERO;
    let mut u = Updater::new(
        c,
        BootInfo {
            active: Slot::A,
            trial: false,
        },
    );
    upload(&mut u, &bundle(), 1000);
    u.handle(Event::UploadFinished, s(1));
    u.handle(Event::VerifyOk { index: 0 }, s(1));
    u.handle(Event::VerifyOk { index: 1 }, s(1));
    let acts = u.handle(Event::TrialArmed, s(1));
    assert!(matches!(acts.last(), Some(Action::RebootIntoTrial)));
}

#[test]
fn aborted_mid_image_marks_invalid() {
    let mut u = idle();
    let b = bundle();
    let cut = b.len() - ROOT.len() / 2; // inside the root image
    upload(&mut u, &b[..cut], 11);
    let acts = u.handle(
        Event::UploadAborted {
            reason: "client went away".into(),
        },
        s(2),
    );
    assert_a_untouched(&acts);
    assert_eq!(marked_invalid(&acts, ImageKind::Boot), 1);
    assert_eq!(marked_invalid(&acts, ImageKind::Root), 1);
    assert_eq!(count(&acts, |a| matches!(a, Action::SetTrial { .. })), 0);
    assert!(error(&acts).unwrap().to_string().contains("aborted"));
    assert_eq!(u.phase(), Phase::Failed);
    // A late read-back answer is ignored, and a new upload may start.
    assert!(u.handle(Event::VerifyOk { index: 0 }, s(3)).is_empty());
    assert!(error(&u.handle(Event::UploadStarted, s(3))).is_none());
}

#[test]
fn aborted_in_first_image_invalidates_only_what_was_begun() {
    let mut u = idle();
    let b = bundle();
    upload(&mut u, &b[..b.len() - ROOT.len() - 5], 11);
    let acts = u.handle(Event::UploadAborted { reason: "x".into() }, s(2));
    assert_eq!(count(&acts, |a| matches!(a, Action::MarkInvalid { .. })), 1);
}

#[test]
fn truncated_upload_fails_at_finish() {
    let mut u = idle();
    let b = bundle();
    upload(&mut u, &b[..b.len() - 1], 13);
    let acts = u.handle(Event::UploadFinished, s(2));
    assert_eq!(count(&acts, |a| matches!(a, Action::MarkInvalid { .. })), 2);
    let e = error(&acts).unwrap();
    assert_eq!(e.http_status(), 400);
    assert_eq!(e.image(), Some(1));
    assert!(e.to_string().contains("truncated"));
}

#[test]
fn forged_signature_writes_nothing() {
    let mut u = idle();
    let mut b = bundle();
    b[100] ^= 4; // manifest byte
    let acts = upload(&mut u, &b, 9);
    assert_eq!(count(&acts, is_io_to_slot), 0);
    assert_eq!(error(&acts).unwrap().http_status(), 403);
    // The rest of the upload is ignored, not an error storm.
    assert!(u
        .handle(Event::UploadChunk(Bytes::from_static(b"more")), s(2))
        .is_empty());
}

#[test]
fn wrong_board_writes_nothing() {
    let mut u = idle();
    let acts = upload(
        &mut u,
        &bundle_with(|m| m.compatible = "qemu-arm64".into()),
        50,
    );
    assert_eq!(count(&acts, is_io_to_slot), 0);
    let e = error(&acts).unwrap();
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("qemu-arm64"));
}

#[test]
fn downgrade_refused_unless_allowed() {
    let old = bundle_with(|m| m.version = "0.9.0".into());
    let mut u = idle();
    let acts = upload(&mut u, &old, 50);
    assert_eq!(count(&acts, is_io_to_slot), 0);
    assert_eq!(error(&acts).unwrap().http_status(), 422);

    let mut c = cfg();
    c.policy.allow_downgrade = true;
    let mut u = Updater::new(
        c,
        BootInfo {
            active: Slot::A,
            trial: false,
        },
    );
    let acts = upload(&mut u, &old, 50);
    assert!(error(&acts).is_none());
    assert_eq!(written(&acts, ImageKind::Root), ROOT);
}

#[test]
fn flipped_byte_fails_at_image_end() {
    let mut u = idle();
    let mut b = bundle();
    let i = b.len() - ROOT.len() - 3; // inside the boot image
    b[i] ^= 0x10;
    let acts = upload(&mut u, &b, 8);
    // The damaged image is never synced/verified; it and only it is invalidated.
    assert_eq!(count(&acts, |a| matches!(a, Action::VerifyImage { .. })), 0);
    assert_eq!(marked_invalid(&acts, ImageKind::Boot), 1);
    assert_eq!(
        count(&acts, |a| matches!(
            a,
            Action::BeginImage {
                kind: ImageKind::Root,
                ..
            }
        )),
        0
    );
    let e = error(&acts).unwrap();
    assert_eq!((e.http_status(), e.image()), (400, Some(0)));
    assert_eq!(count(&acts, |a| matches!(a, Action::SetTrial { .. })), 0);
}

#[test]
fn read_back_mismatch_marks_invalid() {
    let mut u = idle();
    upload(&mut u, &bundle(), 1000);
    let e = OtaError::io("read back", std::io::Error::other("EIO"));
    let acts = u.handle(Event::VerifyFailed { index: 1, error: e }, s(2));
    assert_eq!(count(&acts, |a| matches!(a, Action::MarkInvalid { .. })), 2);
    assert_eq!(error(&acts).unwrap().image(), Some(1));
    assert_eq!(error(&acts).unwrap().http_status(), 500);
    assert!(u.handle(Event::UploadFinished, s(2)).is_empty());
}

#[test]
fn write_failure_marks_invalid() {
    let mut u = idle();
    upload(&mut u, into_boot(&bundle()), 1000);
    let acts = u.handle(
        Event::ActionFailed(OtaError::io("write", std::io::Error::other("ENOSPC"))),
        s(2),
    );
    assert!(count(&acts, |a| matches!(a, Action::MarkInvalid { .. })) >= 1);
    assert!(error(&acts).is_some());
}

#[test]
fn second_upload_is_busy() {
    let mut u = idle();
    let b = bundle();
    upload(&mut u, &b[..120], 1000);
    let acts = u.handle(Event::UploadStarted, s(2));
    assert_eq!(error(&acts).unwrap().http_status(), 409);
    assert_eq!(count(&acts, |a| !matches!(a, Action::Error(_))), 0);
    // The first upload carries on.
    let acts = u.handle(Event::UploadChunk(Bytes::copy_from_slice(&b[120..])), s(2));
    assert!(error(&acts).is_none());
}

#[test]
fn stalled_upload_times_out() {
    let mut u = idle();
    upload(&mut u, into_boot(&bundle()), 1000);
    let due = u.next_deadline().expect("an idle timeout while receiving");
    assert!(u.handle(Event::Tick, s(30)).is_empty());
    assert_eq!(u.next_deadline(), Some(due), "a tick is no activity");
    assert!(u
        .handle(Event::Tick, due - Duration::from_micros(1))
        .is_empty());
    let acts = u.handle(Event::Tick, due);
    assert!(error(&acts).unwrap().to_string().contains("stalled"));
    assert_eq!(count(&acts, |a| matches!(a, Action::MarkInvalid { .. })), 1);
}

#[test]
fn arming_failure_cancels_the_trial() {
    let mut u = idle();
    upload(&mut u, &bundle(), 1000);
    u.handle(Event::UploadFinished, s(1));
    u.handle(Event::VerifyOk { index: 0 }, s(1));
    u.handle(Event::VerifyOk { index: 1 }, s(1));
    let acts = u.handle(
        Event::ActionFailed(OtaError::io("autoboot", std::io::Error::other("EROFS"))),
        s(1),
    );
    assert!(matches!(acts[0], Action::MarkBad { slot: Slot::B }));
    assert!(error(&acts).is_some());
    assert_eq!(u.phase(), Phase::Failed);
}

#[test]
fn slot_specific_images_only_for_the_target() {
    let boot_a: &[u8] = b"boot for slot a";
    let m = Manifest {
        format: 1,
        product: "pinhole".into(),
        compatible: "rpi4".into(),
        version: "2.0.0".into(),
        build_time: 0,
        images: vec![
            info(ImageKind::Boot, Some(Slot::A), boot_a),
            info(ImageKind::Boot, Some(Slot::B), BOOT),
            info(ImageKind::Root, None, ROOT),
        ],
    };
    m.validate().unwrap();
    let mut b = encode_head(&m, &key()).unwrap();
    b.extend_from_slice(boot_a);
    b.extend_from_slice(BOOT);
    b.extend_from_slice(ROOT);
    let mut u = idle();
    let acts = upload(&mut u, &b, 5);
    assert_eq!(written(&acts, ImageKind::Boot), BOOT);
    assert_eq!(written(&acts, ImageKind::Root), ROOT);
    let verified: Vec<usize> = acts
        .iter()
        .filter_map(|a| match a {
            Action::VerifyImage { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(verified, [1, 2]);
    u.handle(Event::VerifyOk { index: 1 }, s(1));
    u.handle(Event::VerifyOk { index: 2 }, s(1));
    let acts = u.handle(Event::UploadFinished, s(1));
    assert!(matches!(
        acts.last(),
        Some(Action::SetTrial { slot: Slot::B })
    ));
}

#[test]
fn progress_reports_total() {
    let mut c = cfg();
    c.progress_step = 10;
    let mut u = Updater::new(
        c,
        BootInfo {
            active: Slot::A,
            trial: false,
        },
    );
    let b = bundle();
    let acts = upload(&mut u, &b, 20);
    let last = acts
        .iter()
        .filter_map(|a| match a {
            Action::Progress(p) => Some(*p),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last.total, Some(b.len() as u64));
    assert!(last.bytes > 0);
}

// ---- trial boot ------------------------------------------------------------

fn trial() -> Updater {
    Updater::new(
        cfg(),
        BootInfo {
            active: Slot::B,
            trial: true,
        },
    )
}

fn healthy() -> Health {
    Health {
        ready: true,
        frames_flowing: true,
        http_answering: true,
    }
}

#[test]
fn uploads_refused_during_an_uncommitted_trial() {
    let mut u = trial();
    let acts = u.handle(Event::UploadStarted, s(10));
    let e = error(&acts).unwrap();
    assert_eq!(e.http_status(), 409);
    assert!(e.to_string().contains("trial"));
    assert_eq!(u.phase(), Phase::Trial);
}

#[test]
fn health_ok_commits_exactly_once() {
    let mut u = trial();
    let acts = u.handle(Event::Health(healthy()), s(20));
    assert_eq!(acts.len(), 1);
    assert!(matches!(acts[0], Action::Commit { slot: Slot::B }));
    assert!(u.handle(Event::Health(healthy()), s(21)).is_empty());
    assert!(
        u.handle(Event::Tick, s(500)).is_empty(),
        "no rollback while committing"
    );
    let acts = u.handle(Event::Committed, s(22));
    assert!(matches!(
        acts[0],
        Action::Progress(Progress {
            phase: Phase::Committed,
            ..
        })
    ));
    assert_eq!(u.phase(), Phase::Committed);
    assert!(u.handle(Event::Health(healthy()), s(23)).is_empty());
    assert!(u.handle(Event::Tick, s(1000)).is_empty());
    // Committed: updates allowed again, now targeting slot A.
    let acts = upload(&mut u, &bundle(), 1000);
    assert!(error(&acts).is_none());
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::BeginImage { slot: Slot::A, .. })));
}

#[test]
fn health_signals_accumulate() {
    let mut u = trial();
    assert!(u
        .handle(
            Event::Health(Health {
                ready: true,
                ..Default::default()
            }),
            s(5)
        )
        .is_empty());
    assert!(u
        .handle(
            Event::Health(Health {
                http_answering: true,
                ..Default::default()
            }),
            s(6)
        )
        .is_empty());
    let acts = u.handle(
        Event::Health(Health {
            frames_flowing: true,
            ..Default::default()
        }),
        s(7),
    );
    assert!(matches!(acts[0], Action::Commit { slot: Slot::B }));
}

#[test]
fn health_timeout_rolls_back() {
    let mut u = trial();
    u.handle(
        Event::Health(Health {
            ready: true,
            http_answering: true,
            ..Default::default()
        }),
        s(5),
    );
    assert_eq!(u.next_deadline(), Some(s(100)), "health_timeout after boot");
    assert!(u.handle(Event::Tick, s(99)).is_empty());
    let acts = u.handle(Event::Tick, s(100));
    assert_eq!(u.next_deadline(), None);
    let e = error(&acts).unwrap();
    assert!(e.to_string().contains("frames flowing"), "{e}");
    assert!(matches!(acts[1], Action::MarkBad { slot: Slot::B }));
    assert!(matches!(acts[2], Action::Reboot));
    assert_eq!(u.phase(), Phase::RollingBack);
    // Late good news does not commit a slot we are leaving.
    assert!(u.handle(Event::Health(healthy()), s(101)).is_empty());
}

#[test]
fn deadline_counts_from_boot_not_from_daemon_start() {
    // pinholed restarted 150 s into a 100 s trial: roll back at the first tick.
    let mut u = trial();
    let acts = u.handle(Event::Tick, s(150));
    assert!(acts.iter().any(|a| matches!(a, Action::Reboot)));
}

#[test]
fn health_failure_rolls_back_at_once() {
    let mut u = trial();
    let acts = u.handle(
        Event::HealthFailed {
            reason: "camera source gave up".into(),
        },
        s(3),
    );
    assert!(error(&acts).unwrap().to_string().contains("camera source"));
    assert!(matches!(acts.last(), Some(Action::Reboot)));
}

#[test]
fn commit_failure_rolls_back() {
    let mut u = trial();
    u.handle(Event::Health(healthy()), s(3));
    let acts = u.handle(
        Event::ActionFailed(OtaError::io("autoboot", std::io::Error::other("EIO"))),
        s(3),
    );
    assert!(matches!(acts.last(), Some(Action::Reboot)));
}

#[test]
fn normal_boot_ignores_health_and_ticks() {
    let mut u = idle();
    assert!(u.handle(Event::Health(healthy()), s(1)).is_empty());
    assert!(u.handle(Event::Tick, s(10_000)).is_empty());
    assert!(u.handle(Event::Committed, s(1)).is_empty());
}

/// A format-2 bundle whose boot image is 6 MiB of zeros, zstd-compressed.
fn zstd_bundle() -> (Vec<u8>, Vec<u8>) {
    let zeros = vec![0u8; 6 << 20];
    let mut z = Vec::new();
    let (size, sha, n) = crate::format::compress_image(&mut &zeros[..], &mut z).unwrap();
    let m = Manifest {
        format: 2,
        product: "pinhole".into(),
        compatible: "rpi4".into(),
        version: "2.0.0".into(),
        build_time: 0,
        images: vec![
            ImageInfo {
                kind: ImageKind::Boot,
                slot: None,
                size,
                sha256: hex(&sha),
                encoding: crate::format::Encoding::Zstd,
                stored_size: Some(n),
            },
            info(ImageKind::Root, None, ROOT),
        ],
    };
    m.validate().unwrap();
    let mut b = encode_head(&m, &key()).unwrap();
    b.extend_from_slice(&z);
    b.extend_from_slice(ROOT);
    (b, zeros)
}

#[test]
fn compressed_chunk_is_fed_in_bounded_batches() {
    let (b, zeros) = zstd_bundle();
    let mut c = cfg();
    c.batch_bytes = 2 << 20;
    let mut u = Updater::new(
        c,
        BootInfo {
            active: Slot::A,
            trial: false,
        },
    );
    let mut acts = u.handle(Event::UploadStarted, s(0));
    // the whole bundle (a few KiB) in one chunk: 6 MiB once decompressed
    let mut batch = u.handle(Event::UploadChunk(Bytes::copy_from_slice(&b)), s(1));
    let mut batches = 0;
    loop {
        let data: usize = batch
            .iter()
            .map(|a| match a {
                Action::Write { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert!(data <= 3 << 20, "{data} bytes in one batch");
        let more = matches!(batch.last(), Some(Action::Continue));
        acts.extend(batch);
        batches += 1;
        if !more {
            break;
        }
        batch = u.handle(Event::UploadContinue, s(1));
    }
    assert!(batches >= 3, "{batches}");
    assert_a_untouched(&acts);
    assert_eq!(written(&acts, ImageKind::Boot), zeros);
    assert_eq!(written(&acts, ImageKind::Root), ROOT);
    assert!(error(&acts).is_none(), "{:?}", error(&acts));
    // finished and verified: armed
    let mut acts = u.handle(Event::UploadFinished, s(2));
    acts.extend(u.handle(Event::VerifyOk { index: 0 }, s(2)));
    acts.extend(u.handle(Event::VerifyOk { index: 1 }, s(2)));
    assert_eq!(
        count(&acts, |a| matches!(a, Action::SetTrial { slot: Slot::B })),
        1
    );
}

#[test]
fn chunk_or_finish_before_continue_is_refused() {
    let (b, _) = zstd_bundle();
    for next in [
        Event::UploadChunk(Bytes::from_static(b"x")),
        Event::UploadFinished,
    ] {
        let mut c = cfg();
        c.batch_bytes = 1;
        let mut u = Updater::new(
            c,
            BootInfo {
                active: Slot::A,
                trial: false,
            },
        );
        u.handle(Event::UploadStarted, s(0));
        let acts = u.handle(Event::UploadChunk(Bytes::copy_from_slice(&b)), s(1));
        assert!(matches!(acts.last(), Some(Action::Continue)));
        let acts = u.handle(next, s(1));
        assert!(error(&acts).is_some(), "{acts:?}");
        assert_eq!(u.phase(), Phase::Failed);
        assert!(
            count(&acts, |a| matches!(
                a,
                Action::MarkInvalid { slot: Slot::B, .. }
            )) >= 1
        );
    }
}
