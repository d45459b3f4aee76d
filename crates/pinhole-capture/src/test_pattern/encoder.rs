//! The software H.264 encoder (OpenH264), set up for live streaming.

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::{OpenH264API, Timestamp};

use super::picture::Picture;
use crate::CaptureError;

/// One encoded picture in Annex B form.
pub(crate) struct Encoded {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

pub(crate) struct H264Encoder {
    inner: Encoder,
    /// SPS + PPS (Annex B) from the last IDR, to repair an IDR without them.
    param_sets: Vec<u8>,
    last_size: usize,
}

fn enc_err(context: &'static str) -> impl FnOnce(openh264::Error) -> CaptureError {
    move |e| CaptureError::Encoder {
        context,
        reason: e.to_string(),
    }
}

/// Lowest H.264 level (Table A-1) whose MaxMBPS, MaxFS, frame-width and
/// MaxBR limits admit this stream; 5.2 when none does.
pub(crate) fn pick_level(width: u32, height: u32, fps: u32, bitrate: u32) -> Level {
    // (level, MaxMBPS, MaxFS, MaxBR in kbit/s)
    const TABLE: [(Level, u64, u64, u64); 16] = [
        (Level::Level_1_0, 1_485, 99, 64),
        (Level::Level_1_1, 3_000, 396, 192),
        (Level::Level_1_2, 6_000, 396, 384),
        (Level::Level_1_3, 11_880, 396, 768),
        (Level::Level_2_0, 11_880, 396, 2_000),
        (Level::Level_2_1, 19_800, 792, 4_000),
        (Level::Level_2_2, 20_250, 1_620, 4_000),
        (Level::Level_3_0, 40_500, 1_620, 10_000),
        (Level::Level_3_1, 108_000, 3_600, 14_000),
        (Level::Level_3_2, 216_000, 5_120, 20_000),
        (Level::Level_4_0, 245_760, 8_192, 20_000),
        (Level::Level_4_1, 245_760, 8_192, 50_000),
        (Level::Level_4_2, 522_240, 8_704, 50_000),
        (Level::Level_5_0, 589_824, 22_080, 135_000),
        (Level::Level_5_1, 983_040, 36_864, 240_000),
        (Level::Level_5_2, 2_073_600, 36_864, 240_000),
    ];
    let mbw = u64::from(width.div_ceil(16));
    let mbh = u64::from(height.div_ceil(16));
    let fs = mbw * mbh;
    let mbps = fs * u64::from(fps);
    let kbps = u64::from(bitrate).div_ceil(1000);
    TABLE
        .iter()
        .find(|&&(_, max_mbps, max_fs, max_br)| {
            // Neither dimension may exceed sqrt(8 · MaxFS) macroblocks.
            let max_dim = 8 * max_fs;
            mbps <= max_mbps
                && fs <= max_fs
                && mbw * mbw <= max_dim
                && mbh * mbh <= max_dim
                && kbps <= max_br
        })
        .map_or(Level::Level_5_2, |&(level, ..)| level)
}

/// NAL unit types present in an Annex B buffer.
pub(crate) fn nal_types(annexb: &[u8]) -> impl Iterator<Item = u8> + '_ {
    annexb
        .windows(4)
        .filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1)
        .map(|w| w[3] & 0x1f)
}

/// Split Annex B into NAL units (start codes included), keeping those whose
/// type satisfies `keep`.
fn collect_nals(annexb: &[u8], keep: impl Fn(u8) -> bool, out: &mut Vec<u8>) {
    // Positions of each 3-byte start code; a 4-byte one starts one earlier.
    let mut starts: Vec<usize> = Vec::new();
    let mut i = 0;
    while i + 3 <= annexb.len() {
        if annexb[i] == 0 && annexb[i + 1] == 0 && annexb[i + 2] == 1 {
            starts.push(if i > 0 && annexb[i - 1] == 0 {
                i - 1
            } else {
                i
            });
            i += 3;
        } else {
            i += 1;
        }
    }
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(annexb.len());
        let header = if annexb[s + 2] == 1 { s + 3 } else { s + 4 };
        if let Some(&h) = annexb.get(header) {
            if keep(h & 0x1f) {
                out.extend_from_slice(&annexb[s..end]);
            }
        }
    }
}

impl H264Encoder {
    pub fn new(width: u32, height: u32, fps: u32, bitrate: u32) -> Result<Self, CaptureError> {
        let config = EncoderConfig::new()
            // Constrained Baseline (OpenH264 sets constraint_set0+1): no B
            // frames, no CABAC; every browser decodes it.
            .profile(Profile::Baseline)
            .level(pick_level(width, height, fps, bitrate))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            // A live stream must not drop frames to meet the rate: the
            // barcode would then skip and latency figures lie.
            .skip_frames(false)
            // IDRs come only when we force them, so they land exactly every
            // keyframe_interval frames (no scene-cut or periodic extras).
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .scene_change_detect(false)
            .background_detection(false)
            .long_term_reference(false)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .complexity(Complexity::Low)
            // One thread, one slice: predictable, and the daemon has other work.
            .num_threads(1)
            .vui(VuiConfig::bt601());
        let inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(enc_err("creating encoder"))?;
        Ok(H264Encoder {
            inner,
            param_sets: Vec::new(),
            last_size: 64 * 1024,
        })
    }

    /// Encode one picture; `force_idr` makes it an IDR with SPS/PPS.
    /// `Ok(None)` if the encoder produced nothing for this picture.
    pub fn encode(
        &mut self,
        pic: &Picture,
        pts_us: u64,
        force_idr: bool,
    ) -> Result<Option<Encoded>, CaptureError> {
        if force_idr {
            self.inner.force_intra_frame();
        }
        let bs = self
            .inner
            .encode_at(pic, Timestamp::from_millis(pts_us / 1000))
            .map_err(enc_err("encoding a frame"))?;
        let keyframe = bs.frame_type() == FrameType::IDR;
        if matches!(bs.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(self.last_size + self.last_size / 4);
        bs.write_vec(&mut data);
        if data.is_empty() {
            return Ok(None);
        }
        if keyframe {
            let has_sps = nal_types(&data).any(|t| t == 7);
            let has_pps = nal_types(&data).any(|t| t == 8);
            if has_sps && has_pps {
                self.param_sets.clear();
                collect_nals(&data, |t| t == 7 || t == 8, &mut self.param_sets);
            } else if !self.param_sets.is_empty() {
                // The design promises SPS/PPS with every keyframe.
                let mut fixed = Vec::with_capacity(self.param_sets.len() + data.len());
                fixed.extend_from_slice(&self.param_sets);
                collect_nals(&data, |t| t != 7 && t != 8, &mut fixed);
                data = fixed;
            }
        }
        self.last_size = data.len();
        Ok(Some(Encoded { data, keyframe }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert!(matches!(
            pick_level(1280, 720, 30, 2_000_000),
            Level::Level_3_1
        ));
        assert!(matches!(
            pick_level(640, 480, 30, 2_000_000),
            Level::Level_3_0
        ));
        assert!(matches!(
            pick_level(1920, 1080, 30, 4_000_000),
            Level::Level_4_0
        ));
        assert!(matches!(
            pick_level(320, 240, 15, 300_000),
            Level::Level_1_2
        ));
        assert!(matches!(
            pick_level(3840, 2160, 120, 2_000_000),
            Level::Level_5_2
        ));
        // A very wide picture needs a higher level for its width alone.
        assert!(matches!(pick_level(3840, 16, 1, 100_000), Level::Level_4_0));
    }

    #[test]
    fn nal_splitting() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        assert_eq!(nal_types(&au).collect::<Vec<_>>(), vec![7, 8, 5]);
        let mut ps = Vec::new();
        collect_nals(&au, |t| t == 7 || t == 8, &mut ps);
        assert_eq!(ps, vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3]);
        let mut rest = Vec::new();
        collect_nals(&au, |t| t == 5, &mut rest);
        assert_eq!(rest, vec![0, 0, 0, 1, 0x65, 4, 5]);
    }
}
