//! Arbitrary SPS/PPS pairs through stream_info, sps_fps and init_segment.
//! Input: one byte `n`, then `n` bytes of SPS, then the PPS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_media::fmp4::init_segment;
use pinhole_media::h264::{sps_fps, stream_info};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (sps, pps) = rest.split_at(usize::from(n).min(rest.len()));
    let _ = sps_fps(sps);
    if let Ok(info) = stream_info(sps, pps) {
        assert!(info.width > 0 && info.height > 0);
        assert_eq!(info.codec.len(), "avc1.000000".len());
        let _ = init_segment(&info);
    }
});
