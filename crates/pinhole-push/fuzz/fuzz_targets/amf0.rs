//! Arbitrary bytes through the AMF0 decoder; what decodes re-encodes and
//! decodes to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_push::rtmp::amf0::{decode_all, encode_all};

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = decode_all(data) {
        let again = decode_all(&encode_all(&values)).expect("our own encoding decodes");
        // NaN != NaN: compare the encodings instead.
        assert_eq!(encode_all(&again), encode_all(&values));
    }
});
