//! Tests of the header, manifest validation, compression and key files.

use std::io::Read;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use super::*;

pub(crate) fn manifest() -> Manifest {
    Manifest {
        format: 1,
        product: "pinhole".into(),
        compatible: "rpi4".into(),
        version: "1.2.3".into(),
        build_time: 1_700_000_000,
        images: vec![
            ImageInfo {
                kind: ImageKind::Boot,
                slot: None,
                size: 3,
                sha256: hex(&Sha256::digest(b"abc")),
                encoding: Encoding::None,
                stored_size: None,
            },
            ImageInfo {
                kind: ImageKind::Root,
                slot: None,
                size: 3,
                sha256: hex(&Sha256::digest(b"def")),
                encoding: Encoding::None,
                stored_size: None,
            },
        ],
    }
}

#[test]
fn header_round_trip() {
    let h = Header {
        format: 1,
        manifest_len: 1234,
        key_id: [1, 2, 3, 4, 5, 6, 7, 8],
        signature: [9; 64],
    };
    assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
}

#[test]
fn header_rejects_bad_magic_version_reserved_and_length() {
    let good = Header {
        format: 1,
        manifest_len: 10,
        key_id: [0; 8],
        signature: [0; 64],
    }
    .to_bytes();
    let mut b = good;
    b[0] = b'X';
    assert_eq!(
        Header::parse(&b).unwrap_err().kind(),
        crate::ErrorKind::BadBundle
    );
    let mut b = good;
    b[9] = 3;
    assert_eq!(
        Header::parse(&b).unwrap_err().kind(),
        crate::ErrorKind::Incompatible
    );
    let mut b = good;
    b[11] = 1;
    assert_eq!(
        Header::parse(&b).unwrap_err().kind(),
        crate::ErrorKind::BadBundle
    );
    let mut b = good;
    b[12..16].copy_from_slice(&(MAX_MANIFEST_LEN as u32 + 1).to_be_bytes());
    assert_eq!(Header::parse(&b).unwrap_err().offset(), Some(12));
    let mut b = good;
    b[12..16].copy_from_slice(&0u32.to_be_bytes());
    assert!(Header::parse(&b).is_err());
}

#[test]
fn manifest_validation() {
    assert_eq!(
        manifest().validate().unwrap(),
        semver::Version::new(1, 2, 3)
    );
    let mut m = manifest();
    m.product = "other".into();
    assert_eq!(m.validate().unwrap_err().http_status(), 422);
    let mut m = manifest();
    m.version = "1.2".into();
    assert_eq!(m.validate().unwrap_err().http_status(), 400);
    let mut m = manifest();
    m.images.pop();
    assert!(m.validate().unwrap_err().to_string().contains("root"));
    let mut m = manifest();
    m.images[0].sha256 = "zz".into();
    assert_eq!(m.validate().unwrap_err().image(), Some(0));
    let mut m = manifest();
    m.images[1].size = 0;
    assert!(m.validate().is_err());
    // Slot-specific boot images: one per slot is fine, two for one slot is not.
    let mut m = manifest();
    let mut b = m.images[0].clone();
    m.images[0].slot = Some(Slot::A);
    b.slot = Some(Slot::B);
    m.images.push(b.clone());
    m.validate().unwrap();
    m.images.push(b);
    assert!(m.validate().is_err());
    let mut m = manifest();
    m.compatible = "rpi4; rm -rf".into();
    assert!(m.validate().is_err());
}

#[test]
fn encodings_need_format_2_and_a_stored_size() {
    let mut m = manifest();
    m.images[1].encoding = Encoding::Zstd;
    m.images[1].stored_size = Some(40);
    // format 1 has no encodings
    assert!(m.validate().unwrap_err().to_string().contains("format 1"));
    m.format = 2;
    m.validate().unwrap();
    assert_eq!(m.payload_len(), 3 + 40);
    m.images[1].stored_size = None;
    assert_eq!(m.validate().unwrap_err().image(), Some(1));
    m.images[1].stored_size = Some(3);
    m.images[1].encoding = Encoding::None;
    m.validate().unwrap();
    m.images[1].stored_size = Some(4);
    assert!(m.validate().is_err());
    let mut m = manifest();
    m.format = 3;
    assert_eq!(m.validate().unwrap_err().http_status(), 422);
}

#[test]
fn compress_image_round_trips_in_blocks() {
    // 2.5 blocks: zeros (the empty part of a vfat) then noise
    let mut img = vec![0u8; ZSTD_BLOCK * 5 / 2];
    let mut x = 1u32;
    for b in img[ZSTD_BLOCK * 2..].iter_mut() {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *b = (x >> 24) as u8;
    }
    let mut out = Vec::new();
    let (size, sha, stored) = compress_image(&mut &img[..], &mut out).unwrap();
    assert_eq!(size, img.len() as u64);
    assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&img)));
    assert_eq!(stored, out.len() as u64);
    assert!(stored < ZSTD_BLOCK as u64, "zeros must shrink: {stored}");
    // three blocks: 1 MiB, 1 MiB, the rest
    let mut rest = &out[..];
    let mut raws = Vec::new();
    let mut back = Vec::new();
    while !rest.is_empty() {
        let raw = u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize;
        let comp = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
        let mut d = ruzstd::decoding::StreamingDecoder::new(&rest[8..8 + comp]).unwrap();
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        assert_eq!(v.len(), raw);
        back.extend_from_slice(&v);
        raws.push(raw);
        rest = &rest[8 + comp..];
    }
    assert_eq!(raws, vec![ZSTD_BLOCK, ZSTD_BLOCK, ZSTD_BLOCK / 2]);
    assert_eq!(back, img);
}

#[test]
fn manifest_rejects_unknown_fields() {
    let mut v: serde_json::Value = serde_json::from_slice(&manifest().to_json()).unwrap();
    v["extra"] = 1.into();
    assert!(Manifest::parse(v.to_string().as_bytes()).is_err());
}

#[test]
fn key_files_round_trip_and_are_not_interchangeable() {
    let sk = SigningKey::from_bytes(&[7; 32]);
    let pk = sk.verifying_key();
    assert_eq!(parse_public_key(&encode_public_key(&pk)).unwrap(), pk);
    assert_eq!(
        parse_secret_key(&encode_secret_key(&sk))
            .unwrap()
            .to_bytes(),
        sk.to_bytes()
    );
    assert!(parse_public_key(&encode_secret_key(&sk)).is_err());
    assert!(parse_secret_key(&encode_public_key(&pk)).is_err());
    assert!(parse_public_key("pinhole-ed25519-public 12").is_err());
}

#[test]
fn hex_round_trip() {
    let b: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
    assert_eq!(hex_decode_32(&hex(&b)), Some(b));
    assert_eq!(hex_decode_32(&"g".repeat(64)), None);
}
