//! Arbitrary bytes, fed in arbitrary chunk sizes (with pictures ended at
//! some chunk ends, as a writer's pause does), through the assembler and
//! on to AVCC and an fMP4 fragment: nothing may panic, memory stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_media::annexb::{nal_units, to_avcc, AccessUnitAssembler};
use pinhole_media::fmp4::{fragment, Sample};
use pinhole_media::h264::{find_parameter_sets, find_timestamp_sei, stream_info};

// Small, so oversize access units and NAL units are reachable within
// max_len (fuzz_targets/annexb_assembler.options).
const LIMIT: usize = 300;
/// Largest chunk pushed at once.
const MAX_STEP: usize = 522;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    // A small access-unit limit so the oversize paths are reachable.
    let mut assembler = AccessUnitAssembler::with_limit(LIMIT);
    let mut aus = Vec::new();
    let mut rest = stream;
    let mut step = usize::from(seed) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        aus.extend(assembler.push(&rest[..n]));
        rest = &rest[n..];
        // A writer's pause (the pipe source ends a picture there).
        if step % 3 == 0 {
            aus.extend(assembler.end_picture());
        }
        step = (step * 7 + 3) % (MAX_STEP - 1) + 1;
    }
    aus.extend(assembler.finish());
    let _ = assembler.take_errors();

    let mut avcc = Vec::new();
    for au in &aus {
        // At most LIMIT, plus the remembered SPS and PPS put in front of an
        // IDR that came without them. A parameter set is remembered even
        // when it is larger than LIMIT, if it arrived whole: at most the
        // bytes pending (LIMIT) plus one chunk (MAX_STEP), with a start code.
        let ps = LIMIT + MAX_STEP + 4;
        assert!(
            au.data.len() <= LIMIT + 2 * ps,
            "access unit over the limit"
        );
        avcc.clear();
        to_avcc(&au.data, &mut avcc);
        let _ = find_timestamp_sei(&au.data);
        if au.keyframe {
            if let Some((sps, pps)) = find_parameter_sets(&au.data) {
                let _ = stream_info(sps, pps);
            }
        }
    }
    let samples: Vec<Sample> = aus
        .iter()
        .map(|au| Sample {
            data: &au.data,
            duration: 3000,
            keyframe: au.keyframe,
        })
        .collect();
    let frag = fragment(1, u64::from(seed), &samples, Some(u64::from(seed)));
    assert!(!frag.is_empty());
    let _ = nal_units(stream).count();
});
