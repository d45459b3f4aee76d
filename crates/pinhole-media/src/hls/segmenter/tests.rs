//! Unit tests of the segmenter: cutting rules, timeline, playlists, names.

use super::*;
use mp4_atom::{Any, Decode};
use std::collections::BTreeSet;

const T0_WALL: u64 = 1_700_000_000_000_000;

fn stream(generation: u64) -> StreamDesc {
    StreamDesc {
        generation,
        init: Bytes::from_static(b"init"),
        codec: "avc1.42c01f".into(),
        width: 640,
        height: 360,
        fps: Some(30.0),
    }
}

/// Capture time of frame `i` at 30 fps, µs after the first.
fn at(i: u64) -> u64 {
    i * 100_000 / 3
}

/// `n` frames at 30 fps, keyframe every `gop`, with up to `jitter_us` of
/// capture jitter (deterministic).
fn frames(n: u64, gop: u64, jitter_us: u64) -> impl Iterator<Item = FrameIn> {
    (0..n).map(move |i| {
        let j = if jitter_us > 0 {
            (i * 7919) % (2 * jitter_us + 1)
        } else {
            0
        };
        let t = at(i) + j;
        FrameIn {
            // A minimal Annex B NAL (IDR or non-IDR slice).
            data: Bytes::from(if i % gop == 0 {
                vec![0, 0, 0, 1, 0x65, 0x88, i as u8]
            } else {
                vec![0, 0, 0, 1, 0x41, 0x9a, i as u8]
            }),
            keyframe: i % gop == 0,
            decode_time: fmp4::us_to_ticks(1_000_000 + t),
            duration: fmp4::us_to_ticks(33_333) as u32,
            wallclock_us: T0_WALL + t,
        }
    })
}

struct Run {
    writes: Vec<(String, Bytes)>,
    published: Vec<Published>,
    live: BTreeSet<String>,
    max_live: usize,
}

fn run(seg: &mut Segmenter, input: impl Iterator<Item = FrameIn>, s: &StreamDesc) -> Run {
    run_on(seg, input, s, BTreeSet::new())
}

/// [`run`], continuing from the files `live` left by an earlier run.
fn run_on(
    seg: &mut Segmenter,
    input: impl Iterator<Item = FrameIn>,
    s: &StreamDesc,
    live: BTreeSet<String>,
) -> Run {
    let mut r = Run {
        writes: Vec::new(),
        published: Vec::new(),
        live,
        max_live: 0,
    };
    for f in input {
        for a in seg.push(s, f) {
            match a {
                Action::Write { name, data } => {
                    r.live.insert(name.clone());
                    r.writes.push((name, data));
                }
                Action::Delete { name } => {
                    assert!(
                        r.live.remove(&name),
                        "deleted {name} twice or never written"
                    );
                }
                Action::Publish(p) => {
                    // Every file a playlist names exists when it is published.
                    for line in p.media.lines() {
                        let uri = line
                            .split("URI=\"")
                            .nth(1)
                            .and_then(|u| u.split('"').next())
                            .or_else(|| (!line.starts_with('#')).then_some(line));
                        if let Some(uri) = uri {
                            if !line.starts_with("#EXT-X-PRELOAD-HINT") {
                                assert!(r.live.contains(uri), "{uri} listed but not on disk");
                            } else {
                                assert!(!r.live.contains(uri), "hint {uri} already exists");
                            }
                        }
                    }
                    r.published.push(p);
                }
            }
        }
        r.max_live = r.max_live.max(r.live.len());
    }
    r
}

fn part_durations(media: &str) -> Vec<f64> {
    media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

#[test]
fn parts_fit_the_target_and_pack_well() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let r = run(&mut seg, frames(300, 30, 450), &stream(1));
    let last = r.published.last().expect("published");
    // All but the last part of each segment (that one may be short).
    let lines: Vec<&str> = last.media.lines().collect();
    let durs: Vec<f64> = lines
        .windows(2)
        .filter(|w| !w[1].starts_with("#EXTINF"))
        .flat_map(|w| part_durations(w[0]))
        .collect();
    assert!(!durs.is_empty());
    for d in &durs {
        assert!(*d <= 0.2, "part of {d} s exceeds PART-TARGET");
        // 5 or 6 frames of 1/30 s, whatever the jitter.
        assert!(*d >= 0.16, "part of {d} s is badly packed");
    }
    let mean = durs.iter().sum::<f64>() / durs.len() as f64;
    assert!(mean >= 0.175, "parts average {mean} s");
    // Gapless: every segment lasts exactly its 30 frames.
    for l in last
        .media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
    {
        let d: f64 = l.trim_end_matches(',').parse().expect("extinf");
        assert!((d - 1.0).abs() < 0.002, "segment of {d} s");
    }
    assert!(last.media.contains("PART-HOLD-BACK=0.600"));
    assert!(last.media.contains("PART-TARGET=0.200"));
}

#[test]
fn sequence_monotonic_and_hint_names_next_part() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let r = run(&mut seg, frames(600, 30, 110), &stream(1));
    let mut last_seq = 0;
    let mut hint: Option<String> = None;
    for p in &r.published {
        let seq: u64 = p
            .media
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|s| s.parse().ok())
            .expect("media sequence");
        assert!(seq >= last_seq);
        last_seq = seq;
        let parts: Vec<&str> = p
            .media
            .lines()
            .filter(|l| l.starts_with("#EXT-X-PART:"))
            .collect();
        if let Some(h) = &hint {
            // The previous hint is now the newest part, unless a new
            // segment began (then its first part is `msn.0`).
            let newest = parts.last().expect("parts");
            if !newest.contains(".0.m4s") {
                assert!(newest.contains(h.as_str()), "{newest} vs hint {h}");
            }
        }
        hint = p
            .media
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .map(|u| u.trim_end_matches('"').to_owned());
        assert!(hint.is_some());
    }
    assert!(last_seq > 10);
}

#[test]
fn window_and_directory_stay_bounded_for_hours() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    // Two hours at 30 fps.
    let r = run(&mut seg, frames(2 * 3600 * 30, 30, 55), &stream(1));
    let last = r.published.last().expect("published");
    let segments = last
        .media
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count();
    assert_eq!(segments, 6);
    // (window + linger + open) segments, each 1 segment file + parts, + init.
    // 30 frames make 5 to 7 parts (jitter moves part boundaries).
    assert!(r.max_live <= (6 + 3 + 1) * 8 + 1, "{} files", r.max_live);
    assert!(r.live.len() > 20);
    assert_eq!(seg.counts().1, 2 * 3600 - 1);
}

#[test]
fn segments_start_with_a_keyframe_and_concatenate_their_parts() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let r = run(&mut seg, frames(200, 45, 0), &stream(1));
    let files: std::collections::HashMap<_, _> = r.writes.iter().cloned().collect();
    let mut checked = 0;
    for (name, data) in &r.writes {
        let Some(NameKind::Segment { msn }) = NameKind::parse("live", name) else {
            continue;
        };
        let mut concat = Vec::new();
        for i in 0.. {
            match files.get(&format!("live-{msn}.{i}.m4s")) {
                Some(p) => concat.extend_from_slice(p),
                None => break,
            }
        }
        assert_eq!(&concat[..], &data[..], "segment {msn}");
        let mut buf = &data[..];
        let Any::Prft(_) = Any::decode(&mut buf).expect("prft") else {
            panic!("prft first")
        };
        let Any::Moof(moof) = Any::decode(&mut buf).expect("moof") else {
            panic!("moof second")
        };
        let first = moof.traf[0].trun[0].samples.iter().next().expect("sample");
        assert_eq!(first.flags, Some(fmp4::SYNC_SAMPLE_FLAGS), "segment {msn}");
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// (tfdt, sample durations) of every part, in write order.
fn part_spans(r: &Run) -> Vec<(u64, Vec<u32>)> {
    r.writes
        .iter()
        .filter(|(n, _)| matches!(NameKind::parse("live", n), Some(NameKind::Part { .. })))
        .map(|(_, data)| {
            let mut buf = &data[..];
            let _prft = Any::decode(&mut buf).expect("prft");
            let Any::Moof(moof) = Any::decode(&mut buf).expect("moof") else {
                panic!("moof second")
            };
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            let durs = traf.trun[0]
                .samples
                .iter()
                .map(|s| s.duration.expect("duration"))
                .collect();
            (tfdt, durs)
        })
        .collect()
}

#[test]
fn late_frames_and_stalls_leave_no_hole_in_the_timeline() {
    // Frame 10 is 150 ms late (more than 4 frame intervals), frame 40
    // comes after a further 3 s stall; both are P-frames. A hole before either
    // would make MSE drop everything up to the next keyframe.
    let delay = |i: u64| match i {
        0..10 => 0,
        10..40 => 150_000,
        _ => 3_150_000,
    };
    let late = frames(90, 60, 0).zip(0..).map(|(mut f, i)| {
        f.decode_time += fmp4::us_to_ticks(delay(i));
        f.wallclock_us += delay(i);
        f
    });
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let r = run(&mut seg, late, &stream(1));
    let spans = part_spans(&r);
    assert!(spans.len() > 10);
    for w in spans.windows(2) {
        let end = w[0].0 + w[0].1.iter().map(|&d| u64::from(d)).sum::<u64>();
        assert_eq!(end, w[1].0, "hole or overlap between parts");
    }
    for d in part_durations(&r.published.last().expect("published").media) {
        assert!(d <= 0.2, "part of {d} s exceeds PART-TARGET");
    }
    // The late frame's predecessor is shown 150 ms longer; of the stall,
    // one part target (0.2 s) stays in the timeline, the rest is cut out.
    let durs: Vec<u32> = spans.iter().flat_map(|(_, d)| d.clone()).collect();
    assert!(durs.len() > 60);
    for (i, &d) in (0..).zip(&durs) {
        let want = match i {
            39 => fmp4::us_to_ticks(200_000),
            _ => fmp4::us_to_ticks(at(i + 1) + delay(i + 1) - at(i) - delay(i)),
        };
        assert_eq!(u64::from(d), want, "sample {i}");
    }
    // The program date-time of the segment after the stall is still the
    // capture time of its first frame (2 s of frames + 0.15 s + 3 s).
    let media = &r.published.last().expect("published").media;
    assert!(
        media.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.150Z"),
        "{media}"
    );
}

#[test]
fn program_date_time_is_the_first_frames_capture_time() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let r = run(&mut seg, frames(95, 30, 0), &stream(1));
    let media = &r.published.last().expect("published").media;
    let pdts: Vec<&str> = media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .collect();
    assert_eq!(
        pdts,
        [
            "2023-11-14T22:13:20.000Z",
            "2023-11-14T22:13:21.000Z",
            "2023-11-14T22:13:22.000Z",
            "2023-11-14T22:13:23.000Z"
        ]
    );
}

#[test]
fn golden_playlist_after_two_segments() {
    let mut seg = Segmenter::new(SegmenterConfig {
        prefix: "r".into(),
        bandwidth_hint: Some(1_000_000),
        ..SegmenterConfig::default()
    });
    let r = run(&mut seg, frames(64, 30, 0), &stream(1));
    let p = r.published.last().expect("published");
    let parts_of = |msn: u32, n: u32, last: &str| -> String {
        (0..n)
            .map(|i| {
                let d = if i + 1 == n { last } else { "0.200000" };
                let ind = if i == 0 { ",INDEPENDENT=YES" } else { "" };
                format!("#EXT-X-PART:DURATION={d},URI=\"r-{msn}.{i}.m4s\"{ind}\n")
            })
            .collect()
    };
    let expected = format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n\
         #EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-MAP:URI=\"r-init1.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n{}\
         #EXTINF:1.000000,\nr-0.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z\n{}\
         #EXTINF:1.000000,\nr-1.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
         #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"r-2.0.m4s\"\n",
        parts_of(0, 5, "0.200000"),
        parts_of(1, 5, "0.200000"),
    );
    assert_eq!(p.media, expected);
    assert_eq!(
        p.multivariant,
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-STREAM-INF:BANDWIDTH=1100000,\
         CODECS=\"avc1.42c01f\",RESOLUTION=640x360,FRAME-RATE=30.000\nlive.m3u8\n"
    );
    assert_eq!((p.last_complete, p.open_msn, p.open_parts), (1, 2, 0));
}

#[test]
fn new_generation_is_a_discontinuity_with_a_new_map() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let mut all = frames(200, 30, 0);
    let s1 = stream(1);
    let r0 = run(&mut seg, all.by_ref().take(95), &s1);
    let mut s2 = stream(2);
    s2.width = 1280;
    s2.height = 720;
    // The generation changes on the next keyframe (frame 120).
    let r1 = run_on(&mut seg, all.by_ref().take(25), &s1, r0.live);
    let r = run_on(&mut seg, all, &s2, r1.live.clone());
    assert!(r1
        .published
        .iter()
        .all(|p| !p.media.contains("DISCONTINUITY")));
    let media = &r.published.last().expect("published").media;
    let i_disc = media.find("#EXT-X-DISCONTINUITY\n").expect("discontinuity");
    let i_map = media
        .find("#EXT-X-MAP:URI=\"live-init2.mp4\"")
        .expect("map");
    assert!(i_map > i_disc);
    assert!(r.writes.iter().any(|(n, _)| n == "live-init2.mp4"));
    assert!(r
        .published
        .last()
        .unwrap()
        .multivariant
        .contains("1280x720"));
}

#[test]
fn old_init_and_discontinuity_age_out() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let mut all = frames(900, 30, 0);
    let r0 = run(&mut seg, all.by_ref().take(60), &stream(1));
    let r = run_on(&mut seg, all, &stream(2), r0.live);
    let media = &r.published.last().expect("published").media;
    assert!(media.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{media}");
    assert!(!media.contains("#EXT-X-DISCONTINUITY\n"));
    assert!(media.contains("#EXT-X-MAP:URI=\"live-init2.mp4\""));
    assert!(!r.live.contains("live-init1.mp4"));
}

#[test]
fn min_segment_groups_gops_and_parts_stay_independent_at_keyframes() {
    let mut seg = Segmenter::new(SegmenterConfig {
        min_segment_ms: 900,
        target_duration_s: 1,
        ..SegmenterConfig::default()
    });
    // Keyframe every 0.5 s: segments of two GOPs.
    let r = run(&mut seg, frames(300, 15, 0), &stream(1));
    let media = &r.published.last().expect("published").media;
    assert!(media.contains("#EXTINF:1.000000,"), "{media}");
    // Part 3 starts on the mid-segment keyframe (frame 15).
    assert!(media.contains(".3.m4s\",INDEPENDENT=YES"), "{media}");
}

#[test]
fn keyframeless_stream_is_still_cut() {
    let mut seg = Segmenter::new(SegmenterConfig {
        max_segment_ms: 2000,
        ..SegmenterConfig::default()
    });
    let r = run(&mut seg, frames(30 * 60, 100_000, 0), &stream(1));
    assert!(r.max_live < 120, "{}", r.max_live);
    assert!(seg.target_raised() > 0);
}

#[test]
fn blocking_reload_predicate() {
    let p = Published {
        media_name: String::new(),
        media: String::new(),
        multivariant_name: String::new(),
        multivariant: String::new(),
        last_complete: 9,
        open_msn: 10,
        open_parts: 2,
        target_duration_s: 1,
        prefix: "r".into(),
        dash: Default::default(),
    };
    assert!(p.satisfies(9, None));
    assert!(p.satisfies(9, Some(7)));
    assert!(p.satisfies(10, Some(1)));
    assert!(!p.satisfies(10, Some(2)));
    assert!(!p.satisfies(10, None));
    assert!(!p.satisfies(11, Some(0)));
    assert!(!p.too_far(12));
    assert!(p.too_far(13));
}

#[test]
fn names_parse() {
    assert_eq!(
        NameKind::parse("ab12", "ab12-7.3.m4s"),
        Some(NameKind::Part { msn: 7, part: 3 })
    );
    assert_eq!(
        NameKind::parse("ab12", "ab12-7.m4s"),
        Some(NameKind::Segment { msn: 7 })
    );
    assert_eq!(
        NameKind::parse("ab12", "ab12-init2.mp4"),
        Some(NameKind::Init { generation: 2 })
    );
    assert_eq!(NameKind::parse("ab12", "zz-7.m4s"), None);
    assert_eq!(NameKind::parse("ab12", "ab12-x.m4s"), None);
    assert_eq!(NameKind::parse("ab12", "ab12-7.3.m4s.tmp"), None);
}

#[test]
fn other_tracks_ride_in_the_parts_on_one_timeline() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let s = stream(1);
    let mut writes = Vec::new();
    let mut next_audio = 0u64;
    // 20 ms Opus packets captured alongside 3 s of video with a
    // 0.5 s stall after frame 45 (cut out of the video timeline).
    for (i, mut f) in frames(90, 30, 0).enumerate() {
        if i >= 45 {
            f.decode_time += 500_000;
        }
        while fmp4::us_to_ticks(1_000_000 + next_audio * 20_000) <= f.decode_time {
            seg.push_other(
                &s,
                OtherFrameIn {
                    track: 2,
                    timescale: 48_000,
                    data: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                    decode_time: us_to(48_000, 1_000_000 + next_audio * 20_000),
                    duration: 960,
                },
            );
            next_audio += 1;
        }
        for a in seg.push(&s, f) {
            if let Action::Write { name, data } = a {
                writes.push((name, data));
            }
        }
    }
    // (video tfdt, audio tfdt, audio samples) of every part.
    let mut parts = Vec::new();
    for (name, data) in &writes {
        if !matches!(NameKind::parse("live", name), Some(NameKind::Part { .. })) {
            continue;
        }
        let mut buf = &data[..];
        let _prft = Any::decode(&mut buf).expect("prft");
        let Any::Moof(moof) = Any::decode(&mut buf).expect("moof") else {
            panic!("moof second")
        };
        assert_eq!(moof.traf[0].tfhd.track_id, 1);
        // A part may hold no audio (a lone frame held over a stall).
        let Some(audio) = moof.traf.get(1) else {
            continue;
        };
        assert_eq!(audio.tfhd.track_id, 2);
        let tfdt = |t: &mp4_atom::Traf| t.tfdt.as_ref().expect("tfdt").base_media_decode_time;
        parts.push((
            tfdt(&moof.traf[0]),
            tfdt(audio),
            audio.trun[0].samples.len(),
        ));
    }
    assert!(parts.len() > 10);
    // Audio is contiguous from part to part, and stays within a frame
    // of the video (µs vs 48 kHz ticks), the stall cut out of both.
    let mut gaps = 0;
    for w in parts.windows(2) {
        let end = w[0].1 + 960 * w[0].2 as u64;
        assert!(end <= w[1].1, "overlap: {parts:?}");
        gaps += usize::from(end != w[1].1);
    }
    assert!(gaps <= 1, "only across the stall: {parts:?}");
    for (v, a, _) in &parts {
        let a_us = a * 1_000_000 / 48_000;
        assert!(a_us.abs_diff(*v) <= 20_000, "video {v} µs, audio {a_us} µs");
    }
    // Audio captured during the stall is cut out with the video, not
    // piled up.
    let total: usize = parts.iter().map(|p| p.2).sum();
    assert!(total < next_audio as usize - 10, "{total} of {next_audio}");
}

#[test]
fn dash_info_stays_anchored_on_the_generation_start() {
    let mut seg = Segmenter::new(SegmenterConfig {
        prefix: "r".into(),
        ..SegmenterConfig::default()
    });
    // 12 s of 1 s GOPs: the 6-segment window has moved on.
    let r = run(&mut seg, frames(30 * 12, 30, 0), &stream(1));
    let p = r.published.last().expect("published");
    let d = &p.dash;
    assert_eq!(d.start_number, 0);
    assert_eq!(d.start_decode_time, fmp4::us_to_ticks(1_000_000));
    assert_eq!(d.start_wallclock_us, T0_WALL);
    assert_eq!(d.init, "r-init1.mp4");
    assert_eq!(d.prefix, "r");
    assert_eq!(d.open_number, p.open_msn);
    // The newest complete segment started one segment before the open one.
    assert_eq!(
        d.newest_decode_time,
        fmp4::us_to_ticks(1_000_000 + at(30 * p.last_complete))
    );
    assert_eq!(d.newest_wallclock_us, T0_WALL + at(30 * p.last_complete));
    assert!(d.window >= fmp4::us_to_ticks(5_900_000), "{}", d.window);
    // A new generation re-anchors.
    let mut f2 = frames(31, 30, 0).collect::<Vec<_>>();
    for (k, f) in f2.iter_mut().enumerate() {
        f.decode_time += fmp4::us_to_ticks(20_000_000);
        f.wallclock_us = T0_WALL + 20_000_000 + at(k as u64);
    }
    let r = run_on(&mut seg, f2.into_iter(), &stream(2), r.live);
    let d = &r.published.last().expect("published").dash;
    assert_eq!(d.generation, 2);
    assert_eq!(d.init, "r-init2.mp4");
    assert_eq!(d.start_wallclock_us, T0_WALL + 20_000_000);
    assert!(d.start_number > 0);
}
