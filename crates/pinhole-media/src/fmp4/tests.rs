//! Unit tests of the fMP4 muxer, read back with mp4-atom and ffprobe.

use super::*;
use crate::annexb::{AccessUnitAssembler, AssembledAu};
use crate::h264::{find_parameter_sets, stream_info};
use mp4_atom::{Any, Decode, Mdat};

const BASELINE: &[u8] = include_bytes!("../../testdata/x264_baseline_320x240_30fps_gop30.h264");
const HIGH: &[u8] =
    include_bytes!("../../testdata/x264_high_bframes_slices_aud_320x180_25fps_gop25.h264");
const OPENH264: &[u8] =
    include_bytes!("../../testdata/openh264_testpattern_320x240_15fps_gop15.h264");

fn assemble(data: &[u8]) -> Vec<AssembledAu> {
    let mut a = AccessUnitAssembler::new();
    let mut aus = a.push(data);
    aus.extend(a.finish());
    aus
}

fn info(data: &[u8]) -> StreamInfo {
    let (sps, pps) = find_parameter_sets(data).unwrap();
    stream_info(sps, pps).unwrap()
}

/// Init segment plus one fragment per `per_fragment` access units.
fn mux(data: &[u8], fps: u32, per_fragment: usize, prft: bool) -> Vec<u8> {
    let aus = assemble(data);
    let mut file = init_segment(&info(data)).to_vec();
    let duration = TIMESCALE / fps;
    for (i, group) in aus.chunks(per_fragment).enumerate() {
        let samples: Vec<Sample> = group
            .iter()
            .map(|au| Sample {
                data: &au.data,
                duration,
                keyframe: au.keyframe,
            })
            .collect();
        let base = (i * per_fragment) as u64 * u64::from(duration);
        let producer = prft.then_some(1_700_000_000_000_000 + base);
        file.extend_from_slice(&fragment(i as u32 + 1, base, &samples, producer));
    }
    file
}

#[test]
fn init_segment_decodes_back() {
    let info = info(BASELINE);
    let init = init_segment(&info);
    let mut buf = &init[..];
    let ftyp = Ftyp::decode(&mut buf).unwrap();
    assert_eq!(ftyp.major_brand, FourCC::new(b"iso6"));
    let moov = Moov::decode(&mut buf).unwrap();
    assert!(buf.is_empty());
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.track_id, 1);
    assert_eq!(trak.mdia.mdhd.timescale, TIMESCALE);
    let Some(mp4_atom::Codec::Avc1(avc1)) = trak.mdia.minf.stbl.stsd.codecs.first() else {
        panic!("no avc1 sample entry");
    };
    assert_eq!((avc1.visual.width, avc1.visual.height), (320, 240));
    assert_eq!(avc1.avcc.sequence_parameter_sets, vec![info.sps.to_vec()]);
    assert_eq!(avc1.avcc.picture_parameter_sets, vec![info.pps.to_vec()]);
    assert!(avc1.avcc.ext.is_none());
    assert_eq!(moov.mvex.unwrap().trex[0].track_id, 1);

    // High profile carries the avcC extension.
    let init = init_segment(&self::info(HIGH));
    let mut buf = &init[..];
    Ftyp::decode(&mut buf).unwrap();
    let moov = Moov::decode(&mut buf).unwrap();
    let Some(mp4_atom::Codec::Avc1(avc1)) = moov.trak[0].mdia.minf.stbl.stsd.codecs.first() else {
        panic!("no avc1 sample entry");
    };
    assert_eq!(avc1.avcc.ext.as_ref().map(|e| e.chroma_format), Some(1));
}

#[test]
fn fragment_layout() {
    let aus = assemble(BASELINE);
    let samples = [
        Sample {
            data: &aus[0].data,
            duration: 3000,
            keyframe: true,
        },
        Sample {
            data: &aus[1].data,
            duration: 3000,
            keyframe: false,
        },
    ];
    let frag = fragment(7, 123_456_789_000, &samples, Some(1_700_000_000_250_000));
    let mut buf = &frag[..];
    let Any::Prft(prft) = Any::decode(&mut buf).unwrap() else {
        panic!("prft first")
    };
    assert_eq!(prft.media_time, 123_456_789_000);
    assert_eq!(prft.ntp_timestamp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET_S);
    assert_eq!(prft.ntp_timestamp & 0xffff_ffff, 1 << 30); // 0.25 s
    let moof_start = frag.len() - buf.len();
    let moof = Moof::decode(&mut buf).unwrap();
    let mdat_start = frag.len() - buf.len();
    let mdat = Mdat::decode(&mut buf).unwrap();
    assert!(buf.is_empty());

    assert_eq!(moof.mfhd.sequence_number, 7);
    let traf = &moof.traf[0];
    assert!(traf.tfhd.default_base_is_moof);
    assert_eq!(
        traf.tfdt.as_ref().unwrap().base_media_decode_time,
        123_456_789_000
    );
    let trun = &traf.trun[0];
    assert_eq!(trun.data_offset, Some((mdat_start - moof_start + 8) as i32));
    let entries: Vec<TrunEntry> = trun.samples.iter().collect();
    assert_eq!(entries[0].flags, Some(SYNC_SAMPLE_FLAGS));
    assert_eq!(entries[1].flags, Some(NON_SYNC_SAMPLE_FLAGS));
    let mut expected = Vec::new();
    to_avcc(&aus[0].data, &mut expected);
    assert_eq!(entries[0].size, Some(expected.len() as u32));
    to_avcc(&aus[1].data, &mut expected);
    assert_eq!(mdat.data, expected);
    // SPS/PPS are not in the sample; the IDR slice is.
    assert_eq!(&mdat.data[4] & 0x1f, 6); // x264's SEI comes first

    // Without prft the moof comes first.
    let frag = fragment(1, 0, &samples[..1], None);
    assert_eq!(&frag[4..8], b"moof");
    // Empty fragment is still well-formed.
    let frag = fragment(1, 0, &[], None);
    let mut buf = &frag[..];
    Moof::decode(&mut buf).unwrap();
    Mdat::decode(&mut buf).unwrap();
}

#[test]
fn ntp_conversion() {
    assert_eq!(ntp_timestamp(0), NTP_UNIX_OFFSET_S << 32);
    assert_eq!(
        ntp_timestamp(500_000),
        (NTP_UNIX_OFFSET_S << 32) | (1 << 31)
    );
}

/// ffprobe's view of a file: codec, size, frame count.
fn ffprobe(path: &std::path::Path) -> String {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,codec_tag_string,profile,width,height,nb_read_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect(
            "ffprobe is required for this test and was not found \
             (install ffmpeg: apt-get install -y ffmpeg)",
        );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffprobe complained: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ffprobe_accepts_muxed_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], u32, usize, bool, &str); 4] = [
        (
            BASELINE,
            30,
            1,
            true,
            "width=320\nheight=240\nnb_read_frames=60",
        ),
        (
            BASELINE,
            30,
            7,
            false,
            "width=320\nheight=240\nnb_read_frames=60",
        ),
        (
            HIGH,
            25,
            1,
            true,
            "width=320\nheight=180\nnb_read_frames=50",
        ),
        (
            OPENH264,
            15,
            5,
            true,
            "width=320\nheight=240\nnb_read_frames=45",
        ),
    ];
    for (i, (data, fps, per, prft, expect)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}.mp4"));
        std::fs::write(&path, mux(data, fps, per, prft)).unwrap();
        let probe = ffprobe(&path);
        assert!(probe.contains("codec_name=h264"), "{probe}");
        assert!(probe.contains("codec_tag_string=avc1"), "{probe}");
        assert!(probe.contains(expect), "case {i}: {probe}");
    }
}

const OPUS: &[u8] = include_bytes!("../../testdata/opus_silence_mono_48k_20ms.opus");

/// 2 s of video (one fragment per frame, track 1) and Opus (one
/// fragment per packet, track 2), interleaved by capture time, as the
/// hub hands them out.
fn mux_av() -> Vec<u8> {
    let ogg = crate::opus::read_ogg(OPUS).unwrap();
    let video = Codec::H264(info(BASELINE));
    let audio = Codec::Opus(ogg.config.clone());
    let mut file = try_init_segment_tracks(&[
        InitTrack {
            id: 1,
            codec: &video,
        },
        InitTrack {
            id: 2,
            codec: &audio,
        },
    ])
    .unwrap()
    .to_vec();
    let aus = assemble(BASELINE);
    // (capture µs, track, index)
    let mut order: Vec<(u64, u32, usize)> = (0..aus.len())
        .map(|i| (i as u64 * 1_000_000 / 30, 1, i))
        .chain((0..ogg.packets.len()).map(|i| (i as u64 * 20_000, 2, i)))
        .collect();
    order.sort();
    for (seq, (t, track, i)) in order.into_iter().enumerate() {
        let (sample, run_t, payload) = if track == 1 {
            let s = Sample {
                data: &aus[i].data,
                duration: TIMESCALE / 30,
                keyframe: aus[i].keyframe,
            };
            (s, us_to_ticks(t), Payload::AnnexB)
        } else {
            let p = &ogg.packets[i];
            let s = Sample {
                data: p,
                duration: crate::opus::packet_samples(p).unwrap(),
                keyframe: true,
            };
            (s, crate::track::us_to(SAMPLE_RATE, t), Payload::Raw)
        };
        let samples = [sample];
        let run = Run {
            track_id: track,
            base_decode_time: run_t,
            samples: &samples,
            payload,
        };
        let prft = ProducerTime {
            track_id: track,
            media_time: run_t,
            wallclock_us: 1_700_000_000_000_000 + t,
        };
        file.extend_from_slice(&try_fragment_runs(seq as u32 + 1, &[run], Some(prft)).unwrap());
    }
    file
}

#[test]
fn multi_track_init_and_fragment_decode_back() {
    let file = mux_av();
    let mut buf = &file[..];
    Ftyp::decode(&mut buf).unwrap();
    let moov = Moov::decode(&mut buf).unwrap();
    assert_eq!(moov.trak.len(), 2);
    assert_eq!(moov.mvhd.next_track_id, 3);
    let audio = &moov.trak[1];
    assert_eq!(audio.tkhd.track_id, 2);
    assert_eq!(audio.mdia.hdlr.handler, FourCC::new(b"soun"));
    assert_eq!(audio.mdia.mdhd.timescale, 48_000);
    let Some(mp4_atom::Codec::Opus(opus)) = audio.mdia.minf.stbl.stsd.codecs.first() else {
        panic!("no Opus sample entry");
    };
    assert_eq!(opus.dops.output_channel_count, 1);
    assert_eq!(opus.dops.pre_skip, 120);
    let trex: Vec<u32> = moov.mvex.unwrap().trex.iter().map(|t| t.track_id).collect();
    assert_eq!(trex, [1, 2]);

    // Two runs in one fragment: each trun points at its own bytes.
    let aus = assemble(BASELINE);
    let v = [Sample {
        data: &aus[0].data,
        duration: 33_333,
        keyframe: true,
    }];
    let a = [
        Sample {
            data: b"\xf8\x01",
            duration: 960,
            keyframe: true,
        },
        Sample {
            data: b"\xf8\x02\x03",
            duration: 960,
            keyframe: true,
        },
    ];
    let runs = [
        Run {
            track_id: 1,
            base_decode_time: 5_000_000,
            samples: &v,
            payload: Payload::AnnexB,
        },
        Run {
            track_id: 2,
            base_decode_time: 240_000,
            samples: &a,
            payload: Payload::Raw,
        },
    ];
    let frag = try_fragment_runs(9, &runs, None).unwrap();
    let mut buf = &frag[..];
    let moof = Moof::decode(&mut buf).unwrap();
    let mdat = Mdat::decode(&mut buf).unwrap();
    assert_eq!(moof.traf.len(), 2);
    let audio = &moof.traf[1];
    assert_eq!(audio.tfhd.track_id, 2);
    assert_eq!(audio.tfdt.as_ref().unwrap().base_media_decode_time, 240_000);
    let off = audio.trun[0].data_offset.unwrap() as usize;
    // From the moof start: its size, then the mdat header.
    let moof_len = frag.len() - 8 - mdat.data.len();
    assert_eq!(&frag[off..off + 5], b"\xf8\x01\xf8\x02\x03");
    assert_eq!(off - moof_len - 8, mdat.data.len() - 5);

    // Pictures are not carried; empty or duplicate track lists refused.
    assert!(try_init_segment_tracks(&[]).is_err());
    let jpeg = Codec::Jpeg;
    assert!(try_init_segment_tracks(&[InitTrack {
        id: 1,
        codec: &jpeg
    }])
    .is_err());
    let video = Codec::H264(info(BASELINE));
    let dup = InitTrack {
        id: 1,
        codec: &video,
    };
    assert!(try_init_segment_tracks(&[dup, dup]).is_err());
}

#[test]
fn ffprobe_reads_video_and_opus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("av.mp4");
    std::fs::write(&path, mux_av()).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=index,codec_type,codec_name,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe is required for this test (install ffmpeg)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffprobe complained: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("0,h264,video,60"), "{stdout}");
    assert!(lines[1].starts_with("1,opus,audio,"), "{stdout}");
}

/// Like LL-HLS parts: fragments of 200 ms with a video and an audio
/// `traf` each.
fn mux_av_parts() -> Vec<u8> {
    let ogg = crate::opus::read_ogg(OPUS).unwrap();
    let video = Codec::H264(info(BASELINE));
    let audio = Codec::Opus(ogg.config.clone());
    let tracks = [
        InitTrack {
            id: 1,
            codec: &video,
        },
        InitTrack {
            id: 2,
            codec: &audio,
        },
    ];
    let mut file = try_init_segment_tracks(&tracks).unwrap().to_vec();
    let aus = assemble(BASELINE);
    for (i, group) in aus.chunks(6).enumerate() {
        let v: Vec<Sample> = group
            .iter()
            .map(|au| Sample {
                data: &au.data,
                duration: TIMESCALE / 30,
                keyframe: au.keyframe,
            })
            .collect();
        let a: Vec<Sample> = ogg
            .packets
            .iter()
            .skip(i * 10)
            .take(10)
            .map(|p| Sample {
                data: p,
                duration: 960,
                keyframe: true,
            })
            .collect();
        let runs = [
            Run {
                track_id: 1,
                base_decode_time: i as u64 * 200_000,
                samples: &v,
                payload: Payload::AnnexB,
            },
            Run {
                track_id: 2,
                base_decode_time: i as u64 * 9_600,
                samples: &a,
                payload: Payload::Raw,
            },
        ];
        let frag = try_fragment_runs(i as u32 + 1, &runs, None).unwrap();
        file.extend_from_slice(&frag);
    }
    file
}

#[test]
fn ffprobe_reads_parts_with_two_trafs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parts.mp4");
    std::fs::write(&path, mux_av_parts()).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_name,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe is required for this test (install ffmpeg)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "h264,60\nopus,100", "{stdout}");
}
