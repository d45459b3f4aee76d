//! The software H.264 encoder (OpenH264), set up for live streaming: shared
//! by the test pattern and the camera sources that deliver raw pictures.
//! Always Constrained Baseline (all OpenH264 does well; every browser
//! decodes it).

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::{OpenH264API, Timestamp};

use super::convert::{to_i420, I420Image};
use super::{Encoded, EncoderSettings, ParamSets, RawFrame, VideoEncoder};
use crate::v4l2::negotiate::RawFormat;
use crate::CaptureError;

pub struct H264Encoder {
    inner: Encoder,
    /// SPS + PPS from the last IDR, to repair an IDR without them.
    param_sets: ParamSets,
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
            param_sets: ParamSets::default(),
            last_size: 64 * 1024,
        })
    }

    /// Encode one picture; `force_idr` makes it an IDR with SPS/PPS.
    /// `Ok(None)` if the encoder produced nothing for this picture.
    pub fn encode(
        &mut self,
        pic: &impl YUVSource,
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
        let data = self.param_sets.fix(data, keyframe);
        self.last_size = data.len();
        Ok(Some(Encoded {
            data,
            keyframe,
            pts_us,
        }))
    }
}

/// [`H264Encoder`] behind [`VideoEncoder`]: IDR every `keyframe_interval`
/// pictures or on request, any raw layout in.
pub struct SoftEncoder {
    enc: H264Encoder,
    settings: EncoderSettings,
    frames: u64,
    want_keyframe: bool,
    scratch: I420Image,
}

impl SoftEncoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, CaptureError> {
        Ok(SoftEncoder {
            enc: H264Encoder::new(
                settings.width,
                settings.height,
                settings.fps,
                settings.bitrate,
            )?,
            settings,
            frames: 0,
            want_keyframe: true,
            scratch: I420Image::default(),
        })
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Encode a picture that is already I420 (e.g. a decoded JPEG).
    pub fn encode_i420(
        &mut self,
        pic: &impl YUVSource,
        pts_us: u64,
    ) -> Result<Vec<Encoded>, CaptureError> {
        let interval = u64::from(self.settings.keyframe_interval.max(1));
        let force = self.want_keyframe || self.frames.is_multiple_of(interval);
        let out = self.enc.encode(pic, pts_us, force)?;
        if let Some(e) = &out {
            if e.keyframe {
                // Count from this IDR so the interval stays regular.
                self.frames = 0;
                self.want_keyframe = false;
            }
            self.frames += 1;
        }
        Ok(out.into_iter().collect())
    }
}

impl VideoEncoder for SoftEncoder {
    fn describe(&self) -> String {
        "openh264 (software, Constrained Baseline)".into()
    }

    fn encode(&mut self, frame: &RawFrame<'_>, pts_us: u64) -> Result<Vec<Encoded>, CaptureError> {
        let (w, h) = (frame.width as usize, frame.height as usize);
        if (frame.width, frame.height) != (self.settings.width, self.settings.height) {
            return Err(CaptureError::Encoder {
                context: "encoding a frame",
                reason: format!(
                    "picture is {w}x{h}, the encoder was set up for {}x{}",
                    self.settings.width, self.settings.height
                ),
            });
        }
        // I420 without odd padding goes in without a copy.
        if frame.format == RawFormat::I420
            && w.is_multiple_of(2)
            && h.is_multiple_of(2)
            && frame.stride.is_multiple_of(2)
            && frame.data.len() >= frame.needed_len()
        {
            let s = frame.stride;
            let luma = s * frame.plane_rows;
            let chroma = s / 2 * (frame.plane_rows / 2);
            let pic = YUVSlices::new(
                (
                    &frame.data[..luma],
                    &frame.data[luma..luma + chroma],
                    &frame.data[luma + chroma..luma + 2 * chroma],
                ),
                (w, h),
                (s, s / 2, s / 2),
            );
            return self.encode_i420(&pic, pts_us);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let converted = to_i420(frame, &mut scratch).map_err(|reason| CaptureError::Encoder {
            context: "converting a frame",
            reason,
        });
        let out = converted.and_then(|()| self.encode_i420(&scratch, pts_us));
        self.scratch = scratch;
        out
    }

    fn request_keyframe(&mut self) {
        self.want_keyframe = true;
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
    fn soft_encoder_keyframes_on_interval_and_on_request() {
        let s = EncoderSettings {
            width: 64,
            height: 48,
            fps: 30,
            bitrate: 300_000,
            keyframe_interval: 5,
            profile: super::super::Profile::ConstrainedBaseline,
        };
        let mut enc = SoftEncoder::new(s).expect("encoder");
        let yuyv = vec![0x80u8; 64 * 48 * 2];
        let frame = RawFrame::packed(RawFormat::Yuyv, 64, 48, &yuyv);
        let mut keys = Vec::new();
        for n in 0..12u64 {
            if n == 7 {
                enc.request_keyframe();
            }
            for e in enc.encode(&frame, n * 33_333).expect("encode") {
                assert_eq!(e.pts_us, n * 33_333);
                if e.keyframe {
                    let types: Vec<u8> = super::super::nal_types(&e.data).collect();
                    assert!(types.contains(&7) && types.contains(&8), "{types:?}");
                    keys.push(n);
                }
            }
        }
        assert_eq!(keys, vec![0, 5, 7]);
        let wrong = RawFrame::packed(RawFormat::I420, 32, 32, &yuyv);
        assert!(enc.encode(&wrong, 0).is_err());
    }
}
