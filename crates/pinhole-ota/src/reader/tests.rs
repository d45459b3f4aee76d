//! Tests of the streaming reader: any chunking, forged and damaged bundles,
//! policy refusals, truncation and compressed images.

use super::*;
use crate::format::{encode_head, ImageInfo, ZSTD_BLOCK};
use crate::ErrorKind;
use ed25519_dalek::SigningKey;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn bundle_with(key: &SigningKey, f: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let imgs: [&[u8]; 2] = [b"boot image bytes", b"the root filesystem, a bit longer"];
    let mut m = Manifest {
        format: 1,
        product: "pinhole".into(),
        compatible: "rpi4".into(),
        version: "1.2.3".into(),
        build_time: 1,
        images: vec![
            ImageInfo {
                kind: ImageKind::Boot,
                slot: None,
                size: imgs[0].len() as u64,
                sha256: hex(&Sha256::digest(imgs[0])),
                encoding: Encoding::None,
                stored_size: None,
            },
            ImageInfo {
                kind: ImageKind::Root,
                slot: None,
                size: imgs[1].len() as u64,
                sha256: hex(&Sha256::digest(imgs[1])),
                encoding: Encoding::None,
                stored_size: None,
            },
        ],
    };
    f(&mut m);
    let mut b = encode_head(&m, key).unwrap();
    b.extend_from_slice(imgs[0]);
    b.extend_from_slice(imgs[1]);
    b
}

fn bundle() -> Vec<u8> {
    bundle_with(&key(), |_| {})
}

fn policy() -> Policy {
    Policy {
        trusted_keys: vec![key().verifying_key()],
        compatible: Some("rpi4".into()),
        current_version: Some(semver::Version::new(1, 0, 0)),
        allow_downgrade: false,
    }
}

/// Feeds in chunks of `step` and collects owned events (data concatenated).
fn run(b: &[u8], step: usize, p: Policy) -> (Vec<String>, Vec<Vec<u8>>, Result<()>) {
    let mut r = BundleReader::new(p);
    let mut names = Vec::new();
    let mut data: Vec<Vec<u8>> = Vec::new();
    for c in b.chunks(step) {
        let mut ev = Vec::new();
        let res = r.feed(c, &mut ev);
        for e in ev {
            match e {
                Event::Manifest(_) => names.push("manifest".into()),
                Event::ImageStart { index, .. } => {
                    names.push(format!("start{index}"));
                    data.push(Vec::new());
                }
                Event::ImageData { index, data: d } => data[index].extend_from_slice(&d),
                Event::ImageEnd { index, sha256_ok } => {
                    names.push(format!("end{index}:{sha256_ok}"))
                }
            }
        }
        if res.is_err() {
            return (names, data, res);
        }
    }
    let res = r.finish();
    (names, data, res)
}

#[test]
fn good_bundle_any_chunking() {
    let b = bundle();
    for step in [1, 2, 7, 88, 89, 1000, b.len()] {
        let (names, data, res) = run(&b, step, policy());
        res.unwrap();
        assert_eq!(
            names,
            ["manifest", "start0", "end0:true", "start1", "end1:true"]
        );
        assert_eq!(data[0], b"boot image bytes");
        assert_eq!(data[1], b"the root filesystem, a bit longer");
    }
}

#[test]
fn forged_signature_emits_nothing() {
    let mut b = bundle();
    b[HEADER_LEN + 20] ^= 1; // inside the manifest
    let (names, _, res) = run(&b, 5, policy());
    assert!(names.is_empty());
    let e = res.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Signature);
    assert_eq!(e.http_status(), 403);
}

#[test]
fn unknown_key_is_refused() {
    let b = bundle_with(&SigningKey::from_bytes(&[2; 32]), |_| {});
    let (names, _, res) = run(&b, 100, policy());
    assert!(names.is_empty());
    assert!(res.unwrap_err().to_string().contains("does not trust"));
}

#[test]
fn flipped_signature_byte_is_refused() {
    let mut b = bundle();
    b[40] ^= 0x80;
    assert_eq!(
        run(&b, 100, policy()).2.unwrap_err().kind(),
        ErrorKind::Signature
    );
}

#[test]
fn no_trusted_keys_refuses_everything() {
    let mut p = policy();
    p.trusted_keys.clear();
    assert_eq!(run(&bundle(), 100, p).2.unwrap_err().http_status(), 403);
}

#[test]
fn wrong_board_and_downgrade_are_422() {
    let b = bundle_with(&key(), |m| m.compatible = "qemu-arm64".into());
    let (names, _, res) = run(&b, 64, policy());
    assert!(names.is_empty());
    assert_eq!(res.unwrap_err().http_status(), 422);

    let b = bundle_with(&key(), |m| m.version = "0.9.0".into());
    assert_eq!(run(&b, 64, policy()).2.unwrap_err().http_status(), 422);
    let mut p = policy();
    p.allow_downgrade = true;
    run(&b, 64, p).2.unwrap();
    // Same version reinstall is not a downgrade.
    let b = bundle_with(&key(), |m| m.version = "1.0.0".into());
    run(&b, 64, policy()).2.unwrap();
    // Pre-release of the running version is older.
    let b = bundle_with(&key(), |m| m.version = "1.0.0-rc.1".into());
    assert!(run(&b, 64, policy()).2.is_err());
}

#[test]
fn an_unknown_running_version_refuses_unless_downgrades_are_allowed() {
    let b = bundle_with(&key(), |m| m.version = "9.0.0".into());
    let mut p = policy();
    p.current_version = None;
    let e = run(&b, 64, p.clone()).2.unwrap_err();
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("version is unknown"), "{e}");
    p.allow_downgrade = true;
    run(&b, 64, p).2.unwrap();
}

#[test]
fn flipped_image_byte_fails_at_image_end() {
    let mut b = bundle();
    let last = b.len() - 1;
    b[last] ^= 1;
    let (names, _, res) = run(&b, 10, policy());
    assert_eq!(names.last().unwrap(), "end1:false");
    let e = res.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadBundle);
    assert_eq!(e.image(), Some(1));
    assert_eq!(e.offset(), Some(b.len() as u64));
}

#[test]
fn truncation_is_detected_everywhere() {
    let b = bundle();
    for cut in [0, 10, HEADER_LEN, HEADER_LEN + 5, b.len() - 20, b.len() - 1] {
        let (_, _, res) = run(&b[..cut], 3, policy());
        let e = res.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadBundle, "cut {cut}: {e}");
        assert_eq!(e.offset(), Some(cut as u64));
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}

#[test]
fn trailing_garbage_is_refused() {
    let mut b = bundle();
    b.push(0);
    let (names, _, res) = run(&b, 1000, policy());
    assert_eq!(names.last().unwrap(), "end1:true");
    assert!(res
        .unwrap_err()
        .to_string()
        .contains("after the last image"));
}

#[test]
fn failed_reader_stays_failed() {
    let mut r = BundleReader::new(policy());
    let mut ev = Vec::new();
    assert!(r.feed(b"NOTABUNDLE-----------------------------------------------------------------------------------", &mut ev).is_err());
    let b = bundle();
    let mut ev2 = Vec::new();
    assert!(r.feed(&b, &mut ev2).is_err());
    assert!(r.finish().is_err());
    assert!(ev.is_empty() && ev2.is_empty());
}

#[test]
fn total_len_matches() {
    let b = bundle();
    let mut r = BundleReader::new(policy());
    let mut ev = Vec::new();
    r.feed(&b, &mut ev).unwrap();
    assert_eq!(r.total_len(), Some(b.len() as u64));
    assert_eq!(r.position(), b.len() as u64);
}

/// A format-2 bundle whose images are zstd-compressed (compress_image).
fn zstd_bundle(imgs: &[&[u8]; 2]) -> Vec<u8> {
    let mut stored = Vec::new();
    let mut infos = Vec::new();
    for (kind, img) in [ImageKind::Boot, ImageKind::Root].into_iter().zip(imgs) {
        let mut z = Vec::new();
        let (size, sha, n) = crate::format::compress_image(&mut &img[..], &mut z).unwrap();
        infos.push(ImageInfo {
            kind,
            slot: None,
            size,
            sha256: hex(&sha),
            encoding: Encoding::Zstd,
            stored_size: Some(n),
        });
        stored.push(z);
    }
    let m = Manifest {
        format: 2,
        product: "pinhole".into(),
        compatible: "rpi4".into(),
        version: "1.2.3".into(),
        build_time: 1,
        images: infos,
    };
    let mut b = encode_head(&m, &key()).unwrap();
    for z in stored {
        b.extend_from_slice(&z);
    }
    b
}

fn noise(n: usize) -> Vec<u8> {
    let mut x = 7u32;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn compressed_images_any_chunking() {
    let mut boot = vec![0u8; ZSTD_BLOCK * 2 + 5];
    boot[..1000].copy_from_slice(&noise(1000));
    let root = noise(3000);
    let b = zstd_bundle(&[&boot, &root]);
    assert!(b.len() < 10_000, "zeros must shrink: {}", b.len());
    for step in [1, 7, 89, 4096, b.len()] {
        let (names, data, res) = run(&b, step, policy());
        res.unwrap();
        assert_eq!(
            names,
            ["manifest", "start0", "end0:true", "start1", "end1:true"]
        );
        assert_eq!(data[0], boot);
        assert_eq!(data[1], root);
    }
}

#[test]
fn feed_limited_bounds_the_decompressed_bytes_per_call() {
    // 8 MiB of zeros fit in a few hundred bundle bytes: one call of
    // `feed` would hand out all 8 MiB; `feed_limited` one block at a time.
    let zeros = vec![0u8; 8 * ZSTD_BLOCK];
    let b = zstd_bundle(&[&zeros, b"root"]);
    let mut r = BundleReader::new(policy());
    let mut rest = &b[..];
    let (mut calls, mut total) = (0, 0usize);
    while !rest.is_empty() {
        let mut ev = Vec::new();
        let used = r.feed_limited(rest, &mut ev, 1).unwrap();
        let out: usize = ev
            .iter()
            .map(|e| match e {
                Event::ImageData { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert!(out <= ZSTD_BLOCK, "{out} bytes in one call");
        total += out;
        calls += 1;
        rest = &rest[used..];
    }
    r.finish().unwrap();
    assert_eq!(total, zeros.len() + 4);
    assert!(calls >= 8, "{calls}");
}

#[test]
fn damaged_compressed_data_is_a_bad_bundle() {
    let boot = noise(5000);
    let b = zstd_bundle(&[&boot, b"root"]);
    // first image's block header: right after the manifest
    let m_len = u32::from_be_bytes(b[12..16].try_into().unwrap()) as usize;
    let img0 = HEADER_LEN + m_len;
    // a frame byte flipped, a block claiming too many bytes, a frame length beyond the image
    for (at, val) in [
        (img0 + 20, None),
        (img0 + 1, Some(0x7f)),
        (img0 + 4, Some(0x7f)),
    ] {
        let mut c = b.clone();
        match val {
            None => c[at] ^= 0x55,
            Some(v) => c[at] = v,
        }
        let (_, _, res) = run(&c, 64, policy());
        let e = res.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadBundle, "{e}");
        assert_eq!(e.image(), Some(0), "{e}");
    }
}

#[test]
fn format_2_uncompressed_and_format_mismatch() {
    // format 2 with stored images reads like format 1
    let b = bundle_with(&key(), |m| m.format = 2);
    assert_eq!(u16::from_be_bytes([b[8], b[9]]), 2);
    run(&b, 10, policy()).2.unwrap();
    // a manifest that says 2 under a header that says 1
    let mut b = bundle_with(&key(), |m| m.format = 2);
    b[9] = 1;
    assert!(run(&b, 1000, policy()).2.is_err());
    // unknown header format: 422 before the signature is even looked at
    let mut b = bundle();
    b[9] = 3;
    let e = run(&b, 1000, policy()).2.unwrap_err();
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("update in steps"), "{e}");
}
