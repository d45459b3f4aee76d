//! Arbitrary bytes as an Ogg Opus stream (what an audio pipe delivers),
//! then its packets muxed with a video track into a multi-track init
//! segment and fragment: nothing may panic, errors are values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_media::fmp4::{
    try_fragment_runs, try_init_segment_tracks, InitTrack, Payload, Run, Sample,
};
use pinhole_media::opus::{packet_samples, read_ogg};
use pinhole_media::Codec;

fuzz_target!(|data: &[u8]| {
    let Ok(ogg) = read_ogg(data) else {
        return;
    };
    let samples: Vec<Sample> = ogg
        .packets
        .iter()
        .map(|p| Sample {
            data: p,
            // Whatever the TOC says, or a malformed packet's 0 → 1.
            duration: packet_samples(p).unwrap_or(0).max(1),
            keyframe: true,
        })
        .collect();
    let audio = Codec::Opus(ogg.config.clone());
    let _ = try_init_segment_tracks(&[InitTrack {
        id: 2,
        codec: &audio,
    }]);
    let run = Run {
        track_id: 2,
        base_decode_time: u64::from(ogg.config.pre_skip),
        samples: &samples,
        payload: Payload::Raw,
    };
    let _ = try_fragment_runs(1, &[run], None);
});
