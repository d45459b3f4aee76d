//! Fragmented MP4 (CMAF-style) for one H.264 video track: the init segment
//! (`ftyp` + `moov`) and media fragments (`prft`? + `moof` + `mdat`), as used
//! by MSE over WebSocket, progressive `/stream.mp4` and LL-HLS parts.
//!
//! Boxes are built with `mp4-atom`, except the `mdat` header, which is written
//! by hand so sample data is copied once, straight into the output (mp4-atom's
//! `Mdat` would need its own `Vec` of the payload first).

use bytes::Bytes;
use mp4_atom::{
    Avc1, Avcc, AvccExt, Dinf, Dref, Encode, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof,
    Moov, Mvex, Mvhd, Prft, ReferenceTime, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd,
    Traf, Trak, Trex, Trun, TrunEntry, Url, Visual, Vmhd,
};

use crate::annexb::to_avcc;
use crate::error::MediaError;
use crate::frame::StreamInfo;

/// Media timescale of the video track (ticks per second): microseconds, the
/// capture clock's unit. Browsers keep media time in whole microseconds too, so
/// the buffered ranges they report end exactly where our durations say. With
/// 90 kHz they ended up to a tick short, and hls.js kept reloading a segment it
/// had already buffered, for a position a few µs before its end.
pub const TIMESCALE: u32 = 1_000_000;

/// Capture-clock microseconds to [`TIMESCALE`] ticks.
pub fn us_to_ticks(us: u64) -> u64 {
    us.saturating_mul(u64::from(TIMESCALE)) / 1_000_000
}

/// The only track.
pub const TRACK_ID: u32 = 1;

/// Sample flags (ISO/IEC 14496-12 §8.8.3.1) of a sync sample: depends on no
/// other sample.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: depends on others, is_non_sync_sample.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

fn mp4_err(what: &'static str) -> impl Fn(mp4_atom::Error) -> MediaError {
    move |e| MediaError::Mp4 {
        what,
        reason: e.to_string(),
    }
}

/// `ftyp` + `moov` for one H.264 (`avc1`) track described by `info`.
///
/// Never panics; see [`try_init_segment`] for the (absurd-input) error case,
/// in which this returns empty `Bytes`.
pub fn init_segment(info: &StreamInfo) -> Bytes {
    try_init_segment(info).unwrap_or_default()
}

/// [`init_segment`], reporting why the boxes cannot be written (a picture
/// wider or taller than 65535, or parameter sets over 64 KiB).
pub fn try_init_segment(info: &StreamInfo) -> Result<Bytes, MediaError> {
    let (Ok(width), Ok(height)) = (u16::try_from(info.width), u16::try_from(info.height)) else {
        return Err(MediaError::Unsupported(format!(
            "picture size {}x{} does not fit an mp4 sample entry",
            info.width, info.height
        )));
    };
    if info.sps.len() > usize::from(u16::MAX) || info.pps.len() > usize::from(u16::MAX) {
        return Err(MediaError::Unsupported(format!(
            "parameter sets of {} and {} bytes do not fit an avcC box",
            info.sps.len(),
            info.pps.len()
        )));
    }

    let ftyp = Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: vec![
            FourCC::new(b"iso6"),
            FourCC::new(b"cmfc"),
            FourCC::new(b"avc1"),
            FourCC::new(b"mp41"),
        ],
    };

    // ISO/IEC 14496-15 §5.3.3.1: profiles other than Baseline/Main/Extended
    // carry chroma format and bit depths in the avcC (ffmpeg writes them too).
    let ext = (!matches!(info.profile_idc, 66 | 77 | 88)).then(|| {
        let (chroma_format, bit_depth_luma, bit_depth_chroma) =
            crate::h264::sps_chroma(&info.sps).unwrap_or((1, 8, 8));
        AvccExt {
            chroma_format,
            bit_depth_luma,
            bit_depth_chroma,
            sequence_parameter_sets_ext: Vec::new(),
        }
    });
    let avcc = Avcc {
        configuration_version: 1,
        avc_profile_indication: info.profile_idc,
        profile_compatibility: info.constraint_flags,
        avc_level_indication: info.level_idc,
        length_size: 4,
        sequence_parameter_sets: vec![info.sps.to_vec()],
        picture_parameter_sets: vec![info.pps.to_vec()],
        ext,
    };
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        avcc,
        ..Default::default()
    };

    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                ..Default::default()
            }],
            ..Default::default()
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK_ID,
                enabled: true,
                in_movie: true,
                width: width.into(),
                height: height.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(b"vide"),
                    name: "pinhole video".into(),
                },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![Url {
                                location: String::new(),
                            }
                            .into()],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![avc1.into()],
                        },
                        stts: Stts::default(),
                        stsc: Stsc::default(),
                        stsz: Stsz::default(),
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };

    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out).map_err(mp4_err("ftyp"))?;
    moov.encode(&mut out).map_err(mp4_err("moov"))?;
    Ok(Bytes::from(out))
}

/// One video sample (one access unit) for [`fragment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Annex B bytes; converted to length-prefixed NAL units in the `mdat`
    /// (SPS, PPS and AUD are left out: they are in the init segment).
    pub data: &'a [u8],
    /// Duration in [`TIMESCALE`] ticks.
    pub duration: u32,
    /// True for an IDR (sync sample).
    pub keyframe: bool,
}

/// Wall-clock µs since the Unix epoch as a 64-bit NTP timestamp.
pub fn ntp_timestamp(unix_us: u64) -> u64 {
    let secs = unix_us / 1_000_000 + NTP_UNIX_OFFSET_S;
    let frac = ((unix_us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// One media fragment: an optional `prft` (the wall-clock time
/// `producer_time_us`, µs since the Unix epoch, at which the first sample was
/// captured, paired with its decode time), then `moof` (`mfhd` with
/// `sequence`, `traf` with `tfhd` default-base-is-moof, `tfdt` =
/// `base_decode_time`, `trun` with per-sample duration, size and flags) and
/// `mdat` with the samples in AVCC form.
///
/// Never panics; see [`try_fragment`] for the error case (a fragment over
/// 2 GiB), in which this returns empty `Bytes`.
pub fn fragment(
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
    producer_time_us: Option<u64>,
) -> Bytes {
    try_fragment(sequence, base_decode_time, samples, producer_time_us).unwrap_or_default()
}

/// [`fragment`], reporting why it cannot be written.
pub fn try_fragment(
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
    producer_time_us: Option<u64>,
) -> Result<Bytes, MediaError> {
    let too_large = || MediaError::Unsupported("fragment larger than 2 GiB".into());

    let mut mdat_payload = Vec::with_capacity(samples.iter().map(|s| s.data.len()).sum());
    let mut entries = Vec::with_capacity(samples.len());
    for sample in samples {
        let before = mdat_payload.len();
        to_avcc(sample.data, &mut mdat_payload);
        let size = u32::try_from(mdat_payload.len() - before).map_err(|_| too_large())?;
        entries.push(TrunEntry {
            duration: Some(sample.duration),
            size: Some(size),
            flags: Some(if sample.keyframe {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            }),
            cts: None,
        });
    }

    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: entries.into(),
            }],
            ..Default::default()
        }],
    };

    // The data offset counts from the start of the moof to the first sample
    // byte (after the 8-byte mdat header); its own size does not depend on
    // its value, so measure once with a placeholder.
    let mut probe = Vec::new();
    moof.encode(&mut probe).map_err(mp4_err("moof"))?;
    let data_offset = i32::try_from(probe.len() + 8).map_err(|_| too_large())?;
    if let Some(trun) = moof.traf.first_mut().and_then(|t| t.trun.first_mut()) {
        trun.data_offset = Some(data_offset);
    }
    let mdat_size = u32::try_from(mdat_payload.len() + 8).map_err(|_| too_large())?;

    let mut out = Vec::with_capacity(probe.len() + 8 + mdat_payload.len() + 40);
    if let Some(producer_time_us) = producer_time_us {
        let prft = Prft {
            reference_track_id: TRACK_ID,
            ntp_timestamp: ntp_timestamp(producer_time_us),
            media_time: base_decode_time,
            utc_time_semantics: ReferenceTime::Input,
        };
        prft.encode(&mut out).map_err(mp4_err("prft"))?;
    }
    moof.encode(&mut out).map_err(mp4_err("moof"))?;
    out.extend_from_slice(&mdat_size.to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(&mdat_payload);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annexb::{AccessUnitAssembler, AssembledAu};
    use crate::h264::{find_parameter_sets, stream_info};
    use mp4_atom::{Any, Decode, Mdat};

    const BASELINE: &[u8] = include_bytes!("../testdata/x264_baseline_320x240_30fps_gop30.h264");
    const HIGH: &[u8] =
        include_bytes!("../testdata/x264_high_bframes_slices_aud_320x180_25fps_gop25.h264");
    const OPENH264: &[u8] =
        include_bytes!("../testdata/openh264_testpattern_320x240_15fps_gop15.h264");

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
        let Some(mp4_atom::Codec::Avc1(avc1)) = moov.trak[0].mdia.minf.stbl.stsd.codecs.first()
        else {
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
}
