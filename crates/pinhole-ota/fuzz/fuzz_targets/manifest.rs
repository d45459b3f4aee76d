//! The manifest parser and validator on arbitrary bytes (reached only after
//! the signature check on a device, but a key leak should not turn into
//! memory unsafety or a panic).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = pinhole_ota::Manifest::parse(data) {
        if m.validate().is_ok() {
            let _ = m.payload_len();
            for i in &m.images {
                let _ = i.sha256_bytes();
            }
        }
    }
});
