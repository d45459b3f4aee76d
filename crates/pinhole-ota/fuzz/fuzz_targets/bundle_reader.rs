//! Any bytes, split into chunks at fuzzer-chosen points: the reader must
//! never panic, never emit image data without a verified manifest, never
//! hand out more image bytes than the manifest declares, and (compressed
//! images) never more than about the budget per `feed_limited` call.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pinhole_ota::{BundleEvent, BundleReader, Policy};

// The corpus seeds are signed with this key (seed [7; 32]) so the fuzzer
// also reaches the image-streaming states. Derived once: the scalar
// multiplication cost more than a typical iteration.
static KEY: std::sync::LazyLock<ed25519_dalek::VerifyingKey> =
    std::sync::LazyLock::new(|| ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key());

fn policy() -> Policy {
    Policy {
        trusted_keys: vec![*KEY],
        compatible: Some("qemu-arm64".into()),
        current_version: None,
        allow_downgrade: true, // else every manifest stops at the version check
    }
}

fuzz_target!(|data: &[u8]| {
    let (split, rest) = match data.split_first() {
        Some((s, r)) => (*s as usize + 1, r),
        None => return,
    };
    let mut r = BundleReader::new(policy());
    let mut manifest = None;
    let mut sizes = Vec::new();
    for mut chunk in rest.chunks(split) {
        // As the device does: a bounded batch of decompressed bytes, then
        // the rest of the chunk.
        while !chunk.is_empty() {
            let mut ev = Vec::new();
            let res = r.feed_limited(chunk, &mut ev, 1 << 20);
            let mut out = 0usize;
            for e in ev {
                match e {
                    BundleEvent::Manifest(m) => {
                        sizes = m.images.iter().map(|i| i.size).collect();
                        manifest = Some(m);
                    }
                    BundleEvent::ImageStart { index, size, .. } => assert_eq!(sizes[index], size),
                    BundleEvent::ImageData { index, data } => {
                        assert!(manifest.is_some());
                        out += data.len();
                        sizes[index] = sizes[index].checked_sub(data.len() as u64).unwrap();
                    }
                    BundleEvent::ImageEnd { index, .. } => assert_eq!(sizes[index], 0),
                }
            }
            match res {
                Err(_) => return,
                Ok(used) => {
                    // never more than one decompressed block past the budget
                    assert!(out <= (1 << 20) + pinhole_ota::format::ZSTD_BLOCK + chunk.len());
                    assert!(used > 0 || chunk.is_empty());
                    chunk = &chunk[used..];
                }
            }
        }
    }
    let _ = r.finish();
});
