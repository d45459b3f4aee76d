//! Any bytes, split into chunks at fuzzer-chosen points: the reader must
//! never panic, never emit image data without a verified manifest, and
//! never hand out more image bytes than the manifest declares.
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
        allow_downgrade: false,
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
    for chunk in rest.chunks(split) {
        let mut ev = Vec::new();
        let res = r.feed(chunk, &mut ev);
        for e in ev {
            match e {
                BundleEvent::Manifest(m) => {
                    sizes = m.images.iter().map(|i| i.size).collect();
                    manifest = Some(m);
                }
                BundleEvent::ImageStart { index, size, .. } => assert_eq!(sizes[index], size),
                BundleEvent::ImageData { index, data } => {
                    assert!(manifest.is_some());
                    sizes[index] = sizes[index].checked_sub(data.len() as u64).unwrap();
                }
                BundleEvent::ImageEnd { index, .. } => assert_eq!(sizes[index], 0),
            }
        }
        if res.is_err() {
            return;
        }
    }
    let _ = r.finish();
});
