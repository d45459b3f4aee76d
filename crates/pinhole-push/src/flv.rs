//! FLV video tag bodies (what RTMP video messages carry) from the hub's
//! H.264 access units: the AVC sequence header from SPS/PPS, then every
//! access unit as length-prefixed NAL units. No B-frames here, so the
//! composition time is always 0.

use pinhole_media::annexb::{nal_type, nal_unit_type, nal_units, to_avcc};
use pinhole_media::StreamInfo;

/// FLV codec ID of H.264.
const AVC: u8 = 7;
const KEYFRAME: u8 = 1 << 4;
const INTER: u8 = 2 << 4;

/// `AVCDecoderConfigurationRecord` (ISO 14496-15 §5.2.4.1) for one SPS and
/// one PPS, 4-byte NAL lengths.
pub fn avc_decoder_config(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(11 + sps.len() + pps.len());
    v.push(1);
    // profile_idc, constraint flags, level_idc: SPS bytes 1..4.
    v.extend_from_slice(sps.get(1..4).unwrap_or(&[66, 0, 31]));
    v.push(0xff); // 6 reserved bits + lengthSizeMinusOne = 3
    v.push(0xe1); // 3 reserved bits + one SPS
    v.extend_from_slice(&(sps.len().min(0xffff) as u16).to_be_bytes());
    v.extend_from_slice(&sps[..sps.len().min(0xffff)]);
    v.push(1);
    v.extend_from_slice(&(pps.len().min(0xffff) as u16).to_be_bytes());
    v.extend_from_slice(&pps[..pps.len().min(0xffff)]);
    v
}

/// The video tag body announcing the stream's decoder configuration; sent
/// before the first keyframe and again whenever SPS/PPS change.
pub fn sequence_header(info: &StreamInfo) -> Vec<u8> {
    let mut v = vec![KEYFRAME | AVC, 0, 0, 0, 0];
    v.extend_from_slice(&avc_decoder_config(&info.sps, &info.pps));
    v
}

/// One access unit as a video tag body (`None` if it holds no picture NAL
/// unit, e.g. only parameter sets).
pub fn video_tag(annexb: &[u8], keyframe: bool) -> Option<Vec<u8>> {
    let has_picture = nal_units(annexb).any(|n| {
        matches!(
            nal_unit_type(n),
            Some(nal_type::SLICE | nal_type::SLICE_PARTITION_A..=nal_type::IDR)
        )
    });
    if !has_picture {
        return None;
    }
    let mut v = Vec::with_capacity(annexb.len() + 8);
    v.push(if keyframe { KEYFRAME } else { INTER } | AVC);
    v.extend_from_slice(&[1, 0, 0, 0]); // AVC NALU, composition time 0
    to_avcc(annexb, &mut v);
    Some(v)
}

/// `onMetaData` properties for the stream.
pub fn metadata(info: &StreamInfo, fps: f64) -> Vec<(String, crate::rtmp::amf0::Value)> {
    use crate::rtmp::amf0::Value;
    vec![
        ("width".into(), Value::Number(info.width as f64)),
        ("height".into(), Value::Number(info.height as f64)),
        ("videocodecid".into(), Value::Number(AVC as f64)),
        ("framerate".into(), Value::Number(fps)),
        ("encoder".into(), Value::str("pinhole")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 4] = [0x67, 0x42, 0xc0, 0x1f];
    const PPS: [u8; 2] = [0x68, 0xce];

    #[test]
    fn decoder_config_record() {
        let rec = avc_decoder_config(&SPS, &PPS);
        assert_eq!(
            rec,
            vec![
                1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 1, 0, 2, 0x68, 0xce
            ]
        );
    }

    #[test]
    fn keyframe_tag_drops_parameter_sets_and_length_prefixes() {
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        let tag = video_tag(&au, true).unwrap();
        assert_eq!(tag, vec![0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let p = video_tag(&[0, 0, 1, 0x41, 0x9a], false).unwrap();
        assert_eq!(p, vec![0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]);
        assert_eq!(video_tag(&[0, 0, 1, 0x67, 0x42], true), None);
    }
}
