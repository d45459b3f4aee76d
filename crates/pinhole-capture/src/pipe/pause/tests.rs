//! The pause rule against simulated writers on real encoder captures:
//! random chunking, writers that pause inside pictures, one that does so
//! only after it was trusted.

use super::*;
use pinhole_media::annexb::{nal_units, AccessUnitAssembler};
use pinhole_media::MediaError;

const BASELINE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../pinhole-media/testdata/x264_baseline_320x240_30fps_gop30.h264"
));
/// B-frames, 4 slices per picture, AUDs.
const HIGH: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../pinhole-media/testdata/x264_high_bframes_slices_aud_320x180_25fps_gop25.h264"
));
const OPENH264: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../pinhole-media/testdata/openh264_testpattern_320x240_15fps_gop15.h264"
));
const FIXTURES: [&[u8]; 3] = [BASELINE, HIGH, OPENH264];

const FRAME_US: u64 = 33_333;

/// xorshift64*, so the tests need no extra crate.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The fixture's access units, assembled from the whole file at once.
fn reference(data: &[u8]) -> Vec<AssembledAu> {
    let mut a = AccessUnitAssembler::new();
    let mut aus = a.push(data);
    aus.extend(a.finish());
    aus
}

/// A writer's output: (time µs, bytes) and when each picture's last byte
/// was written.
struct Written {
    chunks: Vec<(u64, Vec<u8>)>,
    picture_done_us: Vec<u64>,
}

/// Picture `i` starts at `i × FRAME_US` (or half a frame after the last
/// one was written, if that is later), written in random pieces of at
/// most `max_piece` bytes with 0–200 µs between them; `sleep(i, len)`
/// may return a byte position inside picture `i` and how long the writer
/// sleeps there.
fn write(
    aus: &[AssembledAu],
    rng: &mut Rng,
    max_piece: u64,
    mut sleep: impl FnMut(usize, usize) -> Option<(usize, u64)>,
) -> Written {
    let mut chunks = Vec::new();
    let mut picture_done_us = Vec::new();
    let mut last = 0;
    for (i, au) in aus.iter().enumerate() {
        let mut t = (i as u64 * FRAME_US).max(last + FRAME_US / 2);
        let data = &au.data[..];
        let pause = sleep(i, data.len());
        let mut at = 0;
        while at < data.len() {
            let mut end = (at + 1 + rng.below(max_piece) as usize).min(data.len());
            if let Some((p, us)) = pause {
                if at == p {
                    t += us;
                } else if at < p && end > p {
                    end = p;
                }
            }
            chunks.push((t, data[at..end].to_vec()));
            at = end;
            t += rng.below(200);
        }
        last = chunks.last().map_or(t, |c| c.0);
        picture_done_us.push(last);
    }
    Written {
        chunks,
        picture_done_us,
    }
}

/// The pipe source's loop, on simulated time: before each chunk arrives,
/// `idle` at every deadline that has passed. Returns each access unit with
/// the time it was sent, and the rule.
fn read(written: &Written) -> (Vec<(AssembledAu, u64)>, PauseRule) {
    let mut rule = PauseRule::new(AccessUnitAssembler::new());
    let mut out = Vec::new();
    for (t, chunk) in &written.chunks {
        while let Some(d) = rule.deadline().filter(|d| d <= t) {
            match rule.idle(d) {
                Some(au) => out.push((au, d)),
                None => panic!("idle at its own deadline ended nothing"),
            }
        }
        out.extend(rule.push(chunk, *t).into_iter().map(|au| (au, *t)));
    }
    let end = written.chunks.last().map_or(0, |c| c.0) + FRAME_US;
    if let Some(au) = rule.deadline().and_then(|d| rule.idle(d)) {
        out.push((au, end));
    }
    out.extend(rule.assembler().finish().map(|au| (au, end)));
    (out, rule)
}

fn aus_of(out: &[(AssembledAu, u64)]) -> Vec<AssembledAu> {
    out.iter().map(|(au, _)| au.clone()).collect()
}

#[test]
fn a_writer_of_whole_pictures_gets_each_sent_after_the_pause() {
    for (f, data) in FIXTURES.iter().enumerate() {
        let expected = reference(data);
        for seed in 1..6u64 {
            let mut rng = Rng(seed * 7919 + f as u64);
            let max_piece = [1, 7, 300, 4096, 70_000][seed as usize % 5];
            let written = write(&expected, &mut rng, max_piece, |_, _| None);
            let (out, mut rule) = read(&written);
            assert_eq!(aus_of(&out), expected, "fixture {f} seed {seed}");
            assert_eq!(rule.assembler().stats().split_pictures, 0);
            assert!(rule.assembler().take_errors().is_empty());
            // Learned after CONFIRMATIONS pauses; from then on every
            // picture is sent MIN_PAUSE_US after its last byte.
            for (i, (_, sent)) in out.iter().enumerate().take(expected.len() - 1) {
                let delay = sent - written.picture_done_us[i];
                if i >= CONFIRMATIONS as usize {
                    assert_eq!(delay, MIN_PAUSE_US, "fixture {f} seed {seed} AU {i}");
                } else {
                    assert!(
                        delay >= FRAME_US / 2,
                        "fixture {f} seed {seed} AU {i} sent early"
                    );
                }
            }
        }
    }
}

#[test]
fn a_writer_that_sleeps_inside_every_picture_is_never_cut() {
    for (f, data) in FIXTURES.iter().enumerate() {
        let expected = reference(data);
        for seed in 1..6u64 {
            let mut rng = Rng(seed * 104_729 + f as u64);
            let mut pos = Rng(seed);
            let written = write(&expected, &mut rng, 1000, |_, len| {
                Some((
                    1 + pos.below(len as u64 - 1) as usize,
                    2_000 + pos.below(6_000),
                ))
            });
            let (out, mut rule) = read(&written);
            assert_eq!(aus_of(&out), expected, "fixture {f} seed {seed}");
            assert_eq!(rule.assembler().stats().ended_at_pause, 0);
            assert!(rule.assembler().take_errors().is_empty());
        }
    }
}

#[test]
fn sleeps_inside_some_pictures_lengthen_the_pause_and_cut_nothing() {
    // The first sleep comes before the writer is trusted; later ones, in
    // random pictures, are no longer than twice it.
    for (f, data) in FIXTURES.iter().enumerate() {
        let expected = reference(data);
        for seed in 1..6u64 {
            let mut rng = Rng(seed * 31 + f as u64);
            let mut pos = Rng(seed * 17);
            let written = write(&expected, &mut rng, 500, |i, len| {
                let sleep = || 3_000 + 100 * (i as u64 % 20);
                (i == 1 || pos.below(3) == 0)
                    .then(|| (1 + pos.below(len as u64 - 1) as usize, sleep()))
            });
            let (out, mut rule) = read(&written);
            assert_eq!(aus_of(&out), expected, "fixture {f} seed {seed}");
            assert!(rule.assembler().take_errors().is_empty());
            let pause = rule.pause_us();
            assert!(
                pause.is_none() || pause >= Some(6_000),
                "fixture {f} seed {seed}: {pause:?}"
            );
        }
    }
}

#[test]
fn a_first_sleep_inside_a_trusted_picture_cuts_it_once() {
    // Inside a NAL unit, and (4-slice fixture) between two slices.
    let high = reference(HIGH);
    let third_slice = {
        let au = &high[20].data;
        let mut starts = (0..au.len() - 4).filter(|&i| au[i..i + 4] == [0, 0, 0, 1]);
        // AUD, then slices: the third slice's start code.
        starts.nth(3).unwrap()
    };
    for (data, position) in [(BASELINE, None), (HIGH, None), (HIGH, Some(third_slice))] {
        let expected = reference(data);
        let mut rng = Rng(5);
        let written = write(&expected, &mut rng, 2000, |i, len| {
            (i == 20).then(|| (position.unwrap_or(len / 2), 5_000))
        });
        let (out, mut rule) = read(&written);
        let aus = aus_of(&out);
        assert_eq!(aus.len(), expected.len(), "{position:?}");
        assert_eq!(aus[..20], expected[..20]);
        assert_eq!(aus[21..], expected[21..]);
        // What came before the sleep, sent as the picture; the rest dropped.
        let cut = &aus[20].data;
        assert!(cut.len() < expected[20].data.len());
        let whole = &expected[20].data;
        let cut_nals: Vec<&[u8]> = nal_units(cut).collect();
        let whole_nals: Vec<&[u8]> = nal_units(whole).collect();
        let last = cut_nals.len() - 1;
        assert_eq!(cut_nals[..last], whole_nals[..last]);
        assert!(whole_nals[last].starts_with(cut_nals[last]));
        assert_eq!(rule.assembler().stats().split_pictures, 1);
        let errors = rule.assembler().take_errors();
        assert!(
            matches!(errors[..], [MediaError::PictureSplit { .. }]),
            "{errors:?}"
        );
        // Sleeps that long (plus up to 200 µs between pieces) no longer
        // end a picture.
        let pause = rule.pause_us().unwrap();
        assert!((10_000..10_400).contains(&pause), "{pause}");
    }
}

#[test]
fn nothing_ends_before_the_pause_or_without_a_slice_last() {
    let expected = reference(BASELINE);
    let mut rule = PauseRule::new(AccessUnitAssembler::new());
    let mut t = 0;
    for au in &expected[..6] {
        rule.push(&au.data, t);
        t += FRAME_US;
    }
    // Trusted now; the last picture's slice is pending.
    let deadline = rule.deadline().unwrap();
    assert_eq!(deadline, t - FRAME_US + MIN_PAUSE_US);
    assert!(rule.idle(deadline - 1).is_none());
    assert_eq!(rule.idle(deadline).unwrap(), expected[5]);
    assert_eq!(rule.deadline(), None);
    // Only the parameter sets of the next keyframe: no picture to end.
    let sps_pps_len = {
        let au = &expected[30].data;
        (4..au.len() - 4)
            .find(|&i| au[i..i + 4] == [0, 0, 0, 1] && au[i + 4] & 0x1f == 5)
            .unwrap()
    };
    rule.push(&expected[30].data[..sps_pps_len], t);
    assert_eq!(rule.deadline(), None);
    assert!(rule.idle(t + FRAME_US).is_none());
}
