//! Tests of NAL unit splitting, AVCC conversion and access-unit assembly,
//! on real encoder captures and on garbage.

use super::*;
use crate::error::MediaError;

const BASELINE: &[u8] = include_bytes!("../../testdata/x264_baseline_320x240_30fps_gop30.h264");
const HIGH: &[u8] =
    include_bytes!("../../testdata/x264_high_bframes_slices_aud_320x180_25fps_gop25.h264");
const OPENH264: &[u8] =
    include_bytes!("../../testdata/openh264_testpattern_320x240_15fps_gop15.h264");

/// Small deterministic PRNG (xorshift64*), so tests need no extra crate.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn assemble(data: &[u8], chunk: impl FnMut() -> usize) -> (Vec<AssembledAu>, Vec<MediaError>) {
    let mut chunk = chunk;
    let mut a = AccessUnitAssembler::new();
    let mut aus = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = chunk().clamp(1, rest.len());
        aus.extend(a.push(&rest[..n]));
        rest = &rest[n..];
    }
    aus.extend(a.finish());
    (aus, a.take_errors())
}

fn keyframe_positions(aus: &[AssembledAu]) -> Vec<usize> {
    aus.iter()
        .enumerate()
        .filter(|(_, au)| au.keyframe)
        .map(|(i, _)| i)
        .collect()
}

fn types(au: &[u8]) -> Vec<u8> {
    nal_units(au).filter_map(nal_unit_type).collect()
}

#[test]
fn nal_units_handles_3_and_4_byte_start_codes() {
    let data = [
        0xff, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 0, 0,
    ];
    let nals: Vec<&[u8]> = nal_units(&data).collect();
    assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
    assert_eq!(nal_units(&[]).count(), 0);
    assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
    assert_eq!(
        nal_units(&[0, 0, 1, 0, 0, 1, 9]).collect::<Vec<_>>(),
        vec![&[9u8][..]]
    );
}

#[test]
fn baseline_fixture_in_one_piece() {
    let (aus, errors) = assemble(BASELINE, || usize::MAX);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(aus.len(), 60);
    assert_eq!(keyframe_positions(&aus), vec![0, 30]);
    for au in aus.iter().filter(|au| au.keyframe) {
        let t = types(&au.data);
        assert!(
            t.contains(&nal_type::SPS) && t.contains(&nal_type::PPS),
            "{t:?}"
        );
    }
    // Nothing lost: every NAL unit of the input comes out once.
    let all_in: Vec<&[u8]> = nal_units(BASELINE).collect();
    let all_out: Vec<Vec<u8>> = aus
        .iter()
        .flat_map(|au| nal_units(&au.data).map(<[u8]>::to_vec).collect::<Vec<_>>())
        .collect();
    assert_eq!(all_in.len(), all_out.len());
    assert!(all_in.iter().zip(&all_out).all(|(a, b)| *a == b.as_slice()));
}

#[test]
fn high_profile_bframes_slices_aud_fixture() {
    let (aus, errors) = assemble(HIGH, || usize::MAX);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(aus.len(), 50);
    assert_eq!(keyframe_positions(&aus), vec![0, 25]);
    for au in &aus {
        let t = types(&au.data);
        assert_eq!(t[0], nal_type::AUD, "every AU starts with its AUD");
        assert_eq!(t.iter().filter(|&&t| t == nal_type::AUD).count(), 1);
        // 4 slices per picture
        assert_eq!(t.iter().filter(|&&t| t == 1 || t == 5).count(), 4, "{t:?}");
    }
}

#[test]
fn openh264_fixture() {
    let (aus, errors) = assemble(OPENH264, || usize::MAX);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(aus.len(), 45);
    assert_eq!(keyframe_positions(&aus), vec![0, 15, 30]);
    let mut rng = Rng::new(99);
    let (chunked, _) = assemble(OPENH264, || 1 + rng.below(3000));
    assert_eq!(chunked, aus);
}

#[test]
fn random_chunking_gives_identical_output() {
    let (whole, _) = assemble(BASELINE, || usize::MAX);
    let (whole_high, _) = assemble(HIGH, || usize::MAX);
    for seed in 1..20u64 {
        let mut rng = Rng::new(seed);
        let max = [1, 2, 3, 5, 17, 1000, 70_000][seed as usize % 7];
        let (aus, errors) = assemble(BASELINE, || 1 + rng.below(max));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(aus, whole, "seed {seed}");
        let (aus, _) = assemble(HIGH, || 1 + rng.below(max));
        assert_eq!(aus, whole_high, "seed {seed}");
    }
}

#[test]
fn prepends_cached_parameter_sets_to_bare_idr() {
    // Remove SPS/PPS from all but the first keyframe of the fixture.
    let mut stripped = Vec::new();
    let mut seen = 0;
    for nal in nal_units(BASELINE) {
        let t = nal_unit_type(nal);
        if matches!(t, Some(nal_type::SPS | nal_type::PPS)) {
            seen += 1;
            if seen > 2 {
                continue;
            }
        }
        stripped.extend_from_slice(&[0, 0, 1]);
        stripped.extend_from_slice(nal);
    }
    let (aus, errors) = assemble(&stripped, || 4096);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(aus.len(), 60);
    let t = types(&aus[30].data);
    assert!(aus[30].keyframe);
    assert_eq!(&t[..3], &[nal_type::SPS, nal_type::PPS, nal_type::IDR]);
}

#[test]
fn drops_and_reports_aus_before_first_keyframe() {
    // Start in the middle of the first GOP: AU 10 onwards.
    let (aus, _) = assemble(BASELINE, || usize::MAX);
    let mut tail = Vec::new();
    for au in &aus[10..] {
        tail.extend_from_slice(&au.data);
    }
    let mut a = AccessUnitAssembler::new();
    let mut out = a.push(&tail);
    out.extend(a.finish());
    assert_eq!(out.len(), 30);
    assert!(out[0].keyframe);
    assert_eq!(a.stats().dropped_before_keyframe, 20);
    assert_eq!(
        a.take_errors(),
        vec![MediaError::WaitingForKeyframe { dropped: 20 }]
    );
    assert!(a.take_errors().is_empty());
}

#[test]
fn garbage_without_start_codes_is_reported_and_bounded() {
    let mut a = AccessUnitAssembler::new();
    let garbage = vec![0x5au8; 64 * 1024];
    for _ in 0..40 {
        assert!(a.push(&garbage).is_empty());
        assert!(a.pending.len() <= 2);
    }
    assert!(a.finish().is_none());
    let errors = a.take_errors();
    assert_eq!(errors.len(), 3, "{errors:?}");
    let mut expect_offset = 0;
    for e in &errors {
        let MediaError::NoStartCode { offset, len } = *e else {
            panic!("{e:?}");
        };
        assert_eq!(offset, expect_offset);
        expect_offset += len;
    }
    assert_eq!(expect_offset, 40 * 64 * 1024);
    assert!(errors[0]
        .to_string()
        .contains("no H.264 Annex B start code"));
}

#[test]
fn random_garbage_never_panics_and_produces_nothing_decodable() {
    let mut rng = Rng::new(7);
    let mut a = AccessUnitAssembler::with_limit(64 * 1024);
    for _ in 0..200 {
        let n = rng.below(5000);
        let mut chunk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        // Sprinkle start codes and zeros so the NAL paths get exercised.
        for _ in 0..rng.below(8) {
            if chunk.len() > 4 {
                let at = rng.below(chunk.len() - 4);
                chunk[at..at + 3].copy_from_slice(&[0, 0, 1]);
            }
        }
        for au in a.push(&chunk) {
            // Only possible if a random IDR came after a random SPS/PPS.
            assert!(!au.data.is_empty());
        }
    }
    a.finish();
    assert!(!a.take_errors().is_empty());
    assert!(a.pending.len() <= 64 * 1024 + 2);
}

#[test]
fn oversize_access_unit_is_dropped_and_stream_recovers() {
    let (aus, _) = assemble(BASELINE, || usize::MAX);
    let limit = 2000;
    assert!(aus.iter().any(|au| au.data.len() > limit));
    let mut a = AccessUnitAssembler::with_limit(limit);
    let mut out = Vec::new();
    for chunk in BASELINE.chunks(333) {
        out.extend(a.push(chunk));
    }
    out.extend(a.finish());
    let errors = a.take_errors();
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, MediaError::AccessUnitTooLarge { limit: 2000, .. })),
        "{errors:?}"
    );
    assert!(a.stats().dropped_oversize >= 1);
    assert!(out.len() < aus.len());
    assert!(out.iter().all(|au| au.data.len() <= limit));
}

#[test]
fn truncated_input_never_panics() {
    for cut in (0..BASELINE.len()).step_by(997) {
        let (aus, _) = assemble(&BASELINE[..cut], || 1000);
        assert!(aus.len() <= 60);
    }
}

#[test]
fn forbidden_bit_nal_is_reported() {
    let mut a = AccessUnitAssembler::new();
    a.push(&[0, 0, 1, 0xe5, 1, 2, 0, 0, 1]);
    assert!(matches!(
        a.take_errors()[..],
        [MediaError::InvalidNal {
            offset: 3,
            nal_type: 5,
            ..
        }]
    ));
}

#[test]
fn to_avcc_skips_parameter_sets_and_aud() {
    let annexb = [
        0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x06, 5, 0, 0, 1,
        0x65, 7, 8, 9,
    ];
    let mut out = vec![0xaa];
    to_avcc(&annexb, &mut out);
    assert_eq!(
        out,
        vec![0xaa, 0, 0, 0, 2, 0x06, 5, 0, 0, 0, 4, 0x65, 7, 8, 9]
    );
}

#[test]
fn end_picture_after_each_whole_picture_changes_nothing_but_when() {
    for data in [BASELINE, HIGH, OPENH264] {
        let (whole, _) = assemble(data, || usize::MAX);
        let mut a = AccessUnitAssembler::new();
        let mut out = Vec::new();
        for au in &whole {
            // Every access unit is complete before the next one begins.
            assert!(a.push(&au.data).is_empty());
            assert!(a.picture_ready());
            out.push(a.end_picture().unwrap());
            assert!(!a.picture_ready() && a.end_picture().is_none());
        }
        assert!(a.finish().is_none());
        assert_eq!(out, whole);
        assert_eq!(a.stats().ended_at_pause, whole.len() as u64);
        assert!(a.take_errors().is_empty());
    }
}

#[test]
fn end_picture_keeps_zeros_that_may_begin_the_next_start_code() {
    let (whole, _) = assemble(BASELINE, || usize::MAX);
    let mut a = AccessUnitAssembler::new();
    let mut out = a.push(&whole[0].data);
    out.extend(a.push(&[0, 0]));
    out.extend(a.end_picture());
    out.extend(a.push(&whole[1].data[2..]));
    out.extend(a.finish());
    assert_eq!(out, whole[..2]);
    assert!(a.take_errors().is_empty());
}

#[test]
fn end_picture_inside_a_picture_drops_its_rest() {
    let (whole, _) = assemble(HIGH, || usize::MAX);
    let au = &whole[3].data;
    let starts: Vec<usize> = (0..au.len() - 4)
        .filter(|&i| au[i..i + 4] == [0, 0, 0, 1])
        .collect();
    // Inside the first slice's NAL unit; between the 2nd and 3rd slice.
    for cut in [starts[1] + 40, starts[3]] {
        let mut a = AccessUnitAssembler::new();
        let mut out = Vec::new();
        for au in &whole[..3] {
            out.extend(a.push(&au.data));
        }
        out.extend(a.push(&au[..cut]));
        let early = a.end_picture().unwrap();
        assert!(au.starts_with(&early.data[..early.data.len() - 1]));
        out.push(early);
        for au in &whole[3..] {
            let from = if std::ptr::eq(au, &whole[3]) { cut } else { 0 };
            out.extend(a.push(&au.data[from..]));
        }
        out.extend(a.finish());
        assert_eq!(out.len(), whole.len(), "cut at {cut}");
        assert_eq!(out[..3], whole[..3]);
        assert_eq!(out[4..], whole[4..]);
        assert_eq!(a.stats().split_pictures, 1);
        assert_eq!(
            a.take_errors(),
            vec![MediaError::PictureSplit {
                offset: (whole[..3].iter().map(|au| au.data.len()).sum::<usize>() + cut) as u64
                    // the slice's header, after its start code
                    + if cut == starts[3] { 4 } else { 0 }
            }]
        );
    }
}
