//! Fragmented MP4 (CMAF-style) for a stream of tracks: the init segment
//! (`ftyp` + `moov` with one `trak` per track: H.264 `avc1`, Opus `Opus` +
//! `dOps`) and media fragments (`prft`? + `moof` with one `traf` per track +
//! one `mdat`), as used by MSE over WebSocket, progressive `/stream.mp4` and
//! LL-HLS parts. The single-track functions ([`init_segment`], [`fragment`])
//! are the video-only case with track 1.
//!
//! Boxes are built with `mp4-atom`, except the `mdat` header, which is written
//! by hand so sample data is copied once, straight into the output (mp4-atom's
//! `Mdat` would need its own `Vec` of the payload first).

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avcc, AvccExt, Dinf, Dops, Dref, Encode, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mfhd,
    Minf, Moof, Moov, Mvex, Mvhd, Opus, Prft, ReferenceTime, Smhd, Stbl, Stco, Stsc, Stsd, Stsz,
    Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Url, Visual, Vmhd,
};

use crate::annexb::to_avcc;
use crate::error::MediaError;
use crate::frame::StreamInfo;
use crate::opus::{OpusConfig, SAMPLE_RATE};
use crate::track::Codec;

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

/// The video track's ID (video-only streams have only this one).
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
    let codec = Codec::H264(info.clone());
    try_init_segment_tracks(&[InitTrack {
        id: TRACK_ID,
        codec: &codec,
    }])
}

/// One track of a multi-track init segment.
#[derive(Clone, Copy, Debug)]
pub struct InitTrack<'a> {
    /// `track_ID` (≥ 1, unique); fragments name the track by it.
    pub id: u32,
    pub codec: &'a Codec,
}

/// `ftyp` + `moov` with one `trak` per track, in the order given. Every
/// codec must be one fMP4 carries ([`Codec::in_fmp4`]).
pub fn try_init_segment_tracks(tracks: &[InitTrack]) -> Result<Bytes, MediaError> {
    if tracks.is_empty() {
        return Err(MediaError::Unsupported(
            "an init segment needs a track".into(),
        ));
    }
    let mut traks = Vec::with_capacity(tracks.len());
    for t in tracks {
        if t.id == 0 || tracks.iter().filter(|o| o.id == t.id).count() > 1 {
            return Err(MediaError::Unsupported(format!(
                "track ID {} is zero or used twice",
                t.id
            )));
        }
        traks.push(match t.codec {
            Codec::H264(info) => video_trak(t.id, info)?,
            Codec::Opus(cfg) => opus_trak(t.id, cfg)?,
            Codec::Jpeg => {
                return Err(MediaError::Unsupported(
                    "camera JPEG pictures are not carried in fMP4".into(),
                ))
            }
        });
    }
    let next_track_id = tracks
        .iter()
        .map(|t| t.id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);

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
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id,
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex: tracks
                .iter()
                .map(|t| Trex {
                    track_id: t.id,
                    default_sample_description_index: 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        trak: traks,
        ..Default::default()
    };

    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out).map_err(mp4_err("ftyp"))?;
    moov.encode(&mut out).map_err(mp4_err("moov"))?;
    Ok(Bytes::from(out))
}

fn data_info() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url {
                location: String::new(),
            }
            .into()],
        },
    }
}

fn empty_stbl(stsd: Stsd) -> Stbl {
    Stbl {
        stsd,
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn video_trak(id: u32, info: &StreamInfo) -> Result<Trak, MediaError> {
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
    Ok(Trak {
        tkhd: Tkhd {
            track_id: id,
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
                dinf: data_info(),
                stbl: empty_stbl(Stsd {
                    codecs: vec![avc1.into()],
                }),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

/// An Opus track (Encapsulation of Opus in ISOBMFF, §4): `Opus` sample
/// entry with a `dOps` box, 48 kHz timescale.
fn opus_trak(id: u32, cfg: &OpusConfig) -> Result<Trak, MediaError> {
    if !(1..=2).contains(&cfg.channels) {
        return Err(MediaError::Unsupported(format!(
            "{} Opus channels (only mono and stereo are carried)",
            cfg.channels
        )));
    }
    let opus = Opus {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(cfg.channels),
            sample_size: 16,
            sample_rate: (SAMPLE_RATE as u16).into(),
        },
        dops: Dops {
            output_channel_count: cfg.channels,
            pre_skip: cfg.pre_skip,
            input_sample_rate: cfg.input_sample_rate,
            output_gain: 0,
            channel_mapping: None,
        },
        btrt: None,
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: id,
            enabled: true,
            in_movie: true,
            // Audio tracks form their own alternate group (§8.3.2.3).
            alternate_group: 1,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: SAMPLE_RATE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(b"soun"),
                name: "pinhole audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: data_info(),
                stbl: empty_stbl(Stsd {
                    codecs: vec![opus.into()],
                }),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

/// One sample (a video access unit or an audio packet) for [`fragment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Video: Annex B bytes, converted to length-prefixed NAL units in the
    /// `mdat` (SPS, PPS and AUD are left out: they are in the init segment).
    /// Other tracks ([`Payload::Raw`]): the sample as it is.
    pub data: &'a [u8],
    /// Duration in the track's timescale.
    pub duration: u32,
    /// True for a sync sample (an IDR; every audio packet).
    pub keyframe: bool,
}

/// How a run's sample bytes go into the `mdat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// H.264 Annex B, written as AVCC (4-byte lengths).
    AnnexB,
    /// Copied unchanged (Opus packets).
    Raw,
}

impl Payload {
    pub fn of(codec: &Codec) -> Payload {
        match codec {
            Codec::H264(_) => Payload::AnnexB,
            _ => Payload::Raw,
        }
    }
}

/// The samples of one track in a fragment (one `traf`).
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: &'a [Sample<'a>],
    pub payload: Payload,
}

/// The `prft` of a fragment: when the sample at `media_time` of
/// `track_id` was captured (wall clock, µs since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerTime {
    pub track_id: u32,
    pub media_time: u64,
    pub wallclock_us: u64,
}

/// Wall-clock µs since the Unix epoch as a 64-bit NTP timestamp.
pub fn ntp_timestamp(unix_us: u64) -> u64 {
    let secs = unix_us / 1_000_000 + NTP_UNIX_OFFSET_S;
    let frac = ((unix_us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// One video-only media fragment: an optional `prft` (the wall-clock time
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
    let run = Run {
        track_id: TRACK_ID,
        base_decode_time,
        samples,
        payload: Payload::AnnexB,
    };
    let prft = producer_time_us.map(|wallclock_us| ProducerTime {
        track_id: TRACK_ID,
        media_time: base_decode_time,
        wallclock_us,
    });
    try_fragment_runs(sequence, &[run], prft)
}

/// A media fragment with one `traf` per run (in the order given) and one
/// `mdat` holding every run's samples, run after run.
pub fn try_fragment_runs(
    sequence: u32,
    runs: &[Run],
    prft: Option<ProducerTime>,
) -> Result<Bytes, MediaError> {
    let too_large = || MediaError::Unsupported("fragment larger than 2 GiB".into());

    let total: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mut mdat_payload = Vec::with_capacity(total);
    // Offset of each run's first byte in the mdat payload.
    let mut starts = Vec::with_capacity(runs.len());
    let mut trafs = Vec::with_capacity(runs.len());
    for run in runs {
        starts.push(mdat_payload.len());
        let mut entries = Vec::with_capacity(run.samples.len());
        for sample in run.samples {
            let before = mdat_payload.len();
            match run.payload {
                Payload::AnnexB => to_avcc(sample.data, &mut mdat_payload),
                Payload::Raw => mdat_payload.extend_from_slice(sample.data),
            }
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
        trafs.push(Traf {
            tfhd: Tfhd {
                track_id: run.track_id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: run.base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: entries.into(),
            }],
            ..Default::default()
        });
    }

    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: trafs,
    };

    // A data offset counts from the start of the moof to the run's first
    // sample byte (after the 8-byte mdat header); the moof's size does not
    // depend on the values, so measure once with placeholders.
    let mut probe = Vec::new();
    moof.encode(&mut probe).map_err(mp4_err("moof"))?;
    for (traf, start) in moof.traf.iter_mut().zip(&starts) {
        let offset = i32::try_from(probe.len() + 8 + start).map_err(|_| too_large())?;
        if let Some(trun) = traf.trun.first_mut() {
            trun.data_offset = Some(offset);
        }
    }
    let mdat_size = u32::try_from(mdat_payload.len() + 8).map_err(|_| too_large())?;

    let mut out = Vec::with_capacity(probe.len() + 8 + mdat_payload.len() + 40);
    if let Some(p) = prft {
        let prft = Prft {
            reference_track_id: p.track_id,
            ntp_timestamp: ntp_timestamp(p.wallclock_us),
            media_time: p.media_time,
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
mod tests;
