//! H.264 parameter sets (what the stream is) and pinhole's timestamp SEI
//! (when a frame was captured, carried inside the stream for latency tests).

use bytes::Bytes;
use h264_reader::nal::pps::PicParameterSet;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};
use h264_reader::Context;

use crate::annexb::{nal_type, nal_unit_type, nal_units, START_CODE};
use crate::error::MediaError;
use crate::frame::StreamInfo;

/// The first SPS and the first PPS NAL units (header byte included, no start
/// code) in an Annex B buffer, if both are present.
pub fn find_parameter_sets(annexb: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut sps = None;
    let mut pps = None;
    for nal in nal_units(annexb) {
        match nal_unit_type(nal) {
            Some(nal_type::SPS) if sps.is_none() => sps = Some(nal),
            Some(nal_type::PPS) if pps.is_none() => pps = Some(nal),
            _ => {}
        }
        if let (Some(s), Some(p)) = (sps, pps) {
            return Some((s, p));
        }
    }
    None
}

/// The RBSP (header byte dropped, emulation prevention removed) of a NAL unit
/// that must be of type `want`.
fn rbsp(nal: &[u8], want: u8) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match nal_unit_type(nal) {
        None => return Err("empty NAL unit".into()),
        Some(t) if t != want => return Err(format!("NAL type is {t}, expected {want}")),
        Some(_) => {}
    }
    if nal.len() < 2 {
        return Err("no payload after the NAL header".into());
    }
    decode_nal(nal).map_err(|e| format!("bad emulation prevention: {e}"))
}

fn parse_sps(sps: &[u8]) -> Result<(SeqParameterSet, [u8; 3]), MediaError> {
    let err = |reason: String| MediaError::Sps {
        len: sps.len(),
        reason,
    };
    let rbsp = rbsp(sps, nal_type::SPS).map_err(err)?;
    let Some(&[profile_idc, constraint_flags, level_idc]) = rbsp.get(..3) else {
        return Err(err("shorter than profile, constraints and level".into()));
    };
    let parsed =
        SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).map_err(|e| err(format!("{e:?}")))?;
    Ok((parsed, [profile_idc, constraint_flags, level_idc]))
}

/// Describe the stream from its SPS and PPS (NAL units without start code,
/// header byte included): picture size after cropping, profile and level, and
/// the RFC 6381 codec string (`avc1.PPCCLL`, lowercase hex).
pub fn stream_info(sps: &[u8], pps: &[u8]) -> Result<StreamInfo, MediaError> {
    let (parsed, [profile_idc, constraint_flags, level_idc]) = parse_sps(sps)?;
    let (width, height) = parsed.pixel_dimensions().map_err(|e| MediaError::Sps {
        len: sps.len(),
        reason: format!("picture size: {e:?}"),
    })?;
    if width == 0 || height == 0 {
        return Err(MediaError::Sps {
            len: sps.len(),
            reason: format!("picture size {width}x{height}"),
        });
    }

    let pps_err = |reason: String| MediaError::Pps {
        len: pps.len(),
        reason,
    };
    let pps_rbsp = rbsp(pps, nal_type::PPS).map_err(pps_err)?;
    let mut ctx = Context::new();
    let sps_id = parsed.id();
    ctx.put_seq_param_set(parsed);
    let parsed_pps = PicParameterSet::from_bits(&ctx, BitReader::new(&pps_rbsp[..]))
        .map_err(|e| pps_err(format!("{e:?}")))?;
    if parsed_pps.seq_parameter_set_id != sps_id {
        return Err(pps_err(format!(
            "refers to SPS id {}, but the SPS has id {}",
            parsed_pps.seq_parameter_set_id.id(),
            sps_id.id()
        )));
    }

    Ok(StreamInfo {
        width,
        height,
        codec: format!("avc1.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}"),
        profile_idc,
        constraint_flags,
        level_idc,
        sps: Bytes::copy_from_slice(sps),
        pps: Bytes::copy_from_slice(pps),
    })
}

/// Frame rate from the SPS's VUI timing info, if present and plausible
/// (assumes one frame per two ticks, i.e. progressive frames, as encoders
/// write it).
pub fn sps_fps(sps: &[u8]) -> Option<f64> {
    let (parsed, _) = parse_sps(sps).ok()?;
    let timing = parsed.vui_parameters.as_ref()?.timing_info.as_ref()?;
    if timing.num_units_in_tick == 0 || timing.time_scale == 0 {
        return None;
    }
    let fps = f64::from(timing.time_scale) / (2.0 * f64::from(timing.num_units_in_tick));
    (fps.is_finite() && fps > 0.0 && fps <= 1000.0).then_some(fps)
}

/// Chroma format and bit depths from an SPS, for the avcC extension
/// (`(chroma_format_idc, bit_depth_luma, bit_depth_chroma)`).
pub(crate) fn sps_chroma(sps: &[u8]) -> Option<(u8, u8, u8)> {
    let (parsed, _) = parse_sps(sps).ok()?;
    let c = &parsed.chroma_info;
    let luma = c.bit_depth_luma_minus8.checked_add(8)?;
    let chroma = c.bit_depth_chroma_minus8.checked_add(8)?;
    let format = u8::try_from(c.chroma_format.to_u32())
        .ok()
        .filter(|&f| f <= 3)?;
    Some((format, luma, chroma))
}

/// UUID of pinhole's capture-time SEI (`user_data_unregistered`).
pub const PINHOLE_SEI_UUID: [u8; 16] = [
    0x5b, 0x1f, 0x9a, 0x3e, 0x7c, 0x2d, 0x4e, 0x8a, 0x9b, 0x61, 0x0d, 0x3c, 0x7f, 0x2a, 0x8e, 0x14,
];

/// SEI payload type `user_data_unregistered`.
const SEI_USER_DATA_UNREGISTERED: u8 = 5;

/// Insert emulation prevention bytes: `00 00 0x` (x ≤ 3) becomes `00 00 03 0x`.
fn escape_rbsp(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// A complete Annex B SEI NAL unit (4-byte start code included) carrying
/// `wallclock_us` (µs since the Unix epoch) as a `user_data_unregistered`
/// message with [`PINHOLE_SEI_UUID`] and an 8-byte big-endian timestamp.
pub fn timestamp_sei_nal(wallclock_us: u64) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(27);
    rbsp.push(SEI_USER_DATA_UNREGISTERED);
    rbsp.push(24); // payload size: UUID + u64
    rbsp.extend_from_slice(&PINHOLE_SEI_UUID);
    rbsp.extend_from_slice(&wallclock_us.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits
    let mut nal = Vec::with_capacity(4 + 1 + rbsp.len() + 4);
    nal.extend_from_slice(&START_CODE);
    nal.push(nal_type::SEI); // nal_ref_idc 0
    escape_rbsp(&rbsp, &mut nal);
    nal
}

/// The capture time from pinhole's timestamp SEI, if the Annex B buffer
/// holds one.
pub fn find_timestamp_sei(annexb: &[u8]) -> Option<u64> {
    nal_units(annexb)
        .filter(|nal| nal_unit_type(nal) == Some(nal_type::SEI) && nal.len() >= 2)
        .find_map(|nal| {
            let rbsp = decode_nal(nal).ok()?;
            sei_timestamp(&rbsp)
        })
}

/// Walk the SEI messages of an SEI RBSP looking for ours.
fn sei_timestamp(mut rbsp: &[u8]) -> Option<u64> {
    fn read_value(rbsp: &mut &[u8]) -> Option<usize> {
        let mut value = 0usize;
        loop {
            let (&b, rest) = rbsp.split_first()?;
            *rbsp = rest;
            value = value.checked_add(usize::from(b))?;
            if b != 0xff {
                return Some(value);
            }
        }
    }
    // more_rbsp_data: stop at the trailing bits.
    while rbsp.len() > 1 || rbsp.first().is_some_and(|&b| b != 0x80) {
        let payload_type = read_value(&mut rbsp)?;
        let size = read_value(&mut rbsp)?;
        let payload = rbsp.get(..size)?;
        rbsp = &rbsp[size..];
        if payload_type == usize::from(SEI_USER_DATA_UNREGISTERED)
            && payload.get(..16) == Some(&PINHOLE_SEI_UUID[..])
        {
            let ts: [u8; 8] = payload.get(16..24)?.try_into().ok()?;
            return Some(u64::from_be_bytes(ts));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASELINE: &[u8] = include_bytes!("../testdata/x264_baseline_320x240_30fps_gop30.h264");
    const HIGH: &[u8] =
        include_bytes!("../testdata/x264_high_bframes_slices_aud_320x180_25fps_gop25.h264");

    #[test]
    fn baseline_stream_info() {
        let (sps, pps) = find_parameter_sets(BASELINE).unwrap();
        let info = stream_info(sps, pps).unwrap();
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.codec, "avc1.42c00d");
        assert_eq!(
            (info.profile_idc, info.constraint_flags, info.level_idc),
            (0x42, 0xc0, 0x0d)
        );
        assert_eq!(&info.sps[..], sps);
        assert_eq!(&info.pps[..], pps);
        assert_eq!(sps_fps(sps), Some(30.0));
    }

    #[test]
    fn high_profile_with_cropping() {
        let (sps, pps) = find_parameter_sets(HIGH).unwrap();
        let info = stream_info(sps, pps).unwrap();
        // 180 is not a multiple of 16: coded 192 lines, cropped to 180.
        assert_eq!((info.width, info.height), (320, 180));
        assert_eq!(info.profile_idc, 100);
        assert!(info.codec.starts_with("avc1.64"), "{}", info.codec);
        assert_eq!(info.codec, info.codec.to_lowercase());
        assert_eq!(sps_fps(sps), Some(25.0));
        assert_eq!(sps_chroma(sps), Some((1, 8, 8)));
    }

    #[test]
    fn openh264_stream_info_without_vui_timing() {
        let data = include_bytes!("../testdata/openh264_testpattern_320x240_15fps_gop15.h264");
        let (sps, pps) = find_parameter_sets(data).unwrap();
        let info = stream_info(sps, pps).unwrap();
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.codec, "avc1.42c00c");
        assert_eq!(sps_fps(sps), None);
    }

    #[test]
    fn bad_parameter_sets_are_errors() {
        let (sps, pps) = find_parameter_sets(BASELINE).unwrap();
        assert!(matches!(stream_info(pps, pps), Err(MediaError::Sps { .. })));
        assert!(matches!(stream_info(sps, sps), Err(MediaError::Pps { .. })));
        assert!(stream_info(&[], &[]).is_err());
        assert!(stream_info(&[0x67], pps).is_err());
        for cut in 0..sps.len() {
            let _ = stream_info(&sps[..cut], pps);
            let _ = sps_fps(&sps[..cut]);
        }
        for cut in 0..pps.len() {
            let _ = stream_info(sps, &pps[..cut]);
        }
        let err = stream_info(&sps[..4], pps).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid SPS (4 bytes)"),
            "{err}"
        );
        assert_eq!(find_parameter_sets(&[0, 0, 1, 0x67, 1]), None);
    }

    #[test]
    fn timestamp_sei_round_trip_with_emulation_prevention() {
        for ts in [
            0u64,
            1,
            3,
            0x0000_0300_0000_0001,
            1_700_000_000_123_456,
            u64::MAX,
        ] {
            let nal = timestamp_sei_nal(ts);
            assert_eq!(&nal[..5], &[0, 0, 0, 1, 6]);
            // No start-code emulation inside the NAL unit.
            assert!(!nal[4..]
                .windows(3)
                .any(|w| w == [0, 0, 1] || w == [0, 0, 0]));
            assert_eq!(find_timestamp_sei(&nal), Some(ts), "{ts:#x}");
            // Inside a real access unit, after x264's own SEI.
            let mut au = nal.clone();
            au.extend_from_slice(&BASELINE[..2000]);
            assert_eq!(find_timestamp_sei(&au), Some(ts));
        }
        assert!(timestamp_sei_nal(0).len() > timestamp_sei_nal(0x0101_0101_0101_0101).len());
        assert_eq!(find_timestamp_sei(BASELINE), None);
        assert_eq!(find_timestamp_sei(&[0, 0, 1, 6, 5, 200, 1]), None);
        assert_eq!(find_timestamp_sei(&[0, 0, 1, 6, 0xff, 0xff]), None);
    }
}
