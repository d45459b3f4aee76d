//! Choosing a capture format: pure, so every camera quirk becomes a unit test.
//!
//! Policy: the size closest to the wanted one wins first (a viewer cares
//! about resolution most); then a frame rate that reaches the wanted one;
//! then the cheapest path into H.264: native H.264 (no CPU), raw YUV (encode
//! only), MJPEG (decode + encode).

use super::device::{FormatCaps, FrameInterval, FrameSize};
use super::sys::*;

/// How frames of a pixel format reach the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipeline {
    /// Already H.264: parsed into access units and published as is.
    H264,
    /// JPEG pictures: decoded for the encoder (and usable as MJPEG directly).
    Mjpeg,
    /// Uncompressed: handed to the encoder.
    Raw(RawFormat),
}

/// Uncompressed layouts the encoders accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFormat {
    /// Planar 4:2:0, Y then U then V (`YU12`).
    I420,
    /// Y plane then interleaved UV, 4:2:0.
    Nv12,
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
}

impl RawFormat {
    pub fn fourcc(self) -> u32 {
        match self {
            RawFormat::I420 => PIX_FMT_YUV420,
            RawFormat::Nv12 => PIX_FMT_NV12,
            RawFormat::Yuyv => PIX_FMT_YUYV,
        }
    }
}

pub fn pipeline_for(fourcc: u32) -> Option<Pipeline> {
    match fourcc {
        PIX_FMT_H264 => Some(Pipeline::H264),
        PIX_FMT_MJPEG | PIX_FMT_JPEG => Some(Pipeline::Mjpeg),
        PIX_FMT_YUV420 => Some(Pipeline::Raw(RawFormat::I420)),
        PIX_FMT_NV12 => Some(Pipeline::Raw(RawFormat::Nv12)),
        PIX_FMT_YUYV => Some(Pipeline::Raw(RawFormat::Yuyv)),
        _ => None,
    }
}

fn pipeline_rank(p: Pipeline) -> u32 {
    match p {
        Pipeline::H264 => 3,
        Pipeline::Raw(_) => 2,
        Pipeline::Mjpeg => 1,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Only consider this pixel format (from `v4l2:/dev/videoN?format=MJPG`).
    pub fourcc: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub fourcc: u32,
    pub pipeline: Pipeline,
    pub width: u32,
    pub height: u32,
    /// Frame interval to request (num/den seconds), if the driver lists any.
    pub interval: Option<(u32, u32)>,
}

impl Choice {
    pub fn fps(&self) -> Option<f64> {
        self.interval
            .filter(|&(n, d)| n > 0 && d > 0)
            .map(|(n, d)| f64::from(d) / f64::from(n))
    }
}

/// Round `v` into `min..=max` on the `step` grid from `min`.
fn fit(v: u32, min: u32, max: u32, step: u32) -> u32 {
    let v = v.clamp(min, max.max(min));
    let step = step.max(1);
    min + (v - min) / step * step
}

fn closest_size(sizes: &[FrameSize], w: u32, h: u32) -> Option<(u32, u32, usize)> {
    let dist = |a: u32, b: u32| u64::from(a.abs_diff(w)) + u64::from(b.abs_diff(h));
    sizes
        .iter()
        .enumerate()
        .map(|(i, s)| match *s {
            FrameSize::Discrete { width, height } => (width, height, i),
            FrameSize::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => (
                fit(w, min_width, max_width, step_width),
                fit(h, min_height, max_height, step_height),
                i,
            ),
        })
        // Closest; on a tie the larger picture.
        .min_by_key(|&(a, b, _)| (dist(a, b), std::cmp::Reverse(u64::from(a) * u64::from(b))))
}

/// The interval whose rate is nearest `fps` (ties: the faster one).
fn closest_interval(ivals: &[FrameInterval], fps: u32) -> Option<(u32, u32)> {
    let want = f64::from(fps.max(1));
    let rate = |(n, d): (u32, u32)| f64::from(d) / f64::from(n.max(1));
    let mut candidates = Vec::new();
    for iv in ivals {
        match *iv {
            FrameInterval::Discrete { num, den } if num > 0 && den > 0 => {
                candidates.push((num, den))
            }
            FrameInterval::Stepwise { min, max } if min.0 > 0 && max.0 > 0 => {
                let (fast, slow) = (rate(min), rate(max));
                let r = want.clamp(slow.min(fast), fast.max(slow));
                candidates.push((1000, (r * 1000.0).round() as u32))
            }
            _ => {}
        }
    }
    candidates.into_iter().min_by(|&a, &b| {
        let (da, db) = ((rate(a) - want).abs(), (rate(b) - want).abs());
        da.total_cmp(&db).then(rate(b).total_cmp(&rate(a)))
    })
}

/// Pick the format, size and rate to capture with, or say why none fits.
pub fn negotiate(formats: &[FormatCaps], want: &Wanted) -> Result<Choice, String> {
    let mut best: Option<((u64, bool, u32), Choice)> = None;
    let mut offered = Vec::new();
    for f in formats {
        offered.push(fourcc_str(f.fourcc));
        let Some(pipeline) = pipeline_for(f.fourcc) else {
            continue;
        };
        if want.fourcc.is_some_and(|w| w != f.fourcc) {
            continue;
        }
        let sizes: Vec<FrameSize> = f.sizes.iter().map(|s| s.size).collect();
        let (width, height, idx) = if sizes.is_empty() {
            // No size enumeration (some drivers): ask for the wanted size and
            // let S_FMT adjust it.
            (want.width, want.height, usize::MAX)
        } else {
            match closest_size(&sizes, want.width, want.height) {
                Some(s) => s,
                None => continue,
            }
        };
        let interval = f
            .sizes
            .get(idx)
            .and_then(|s| closest_interval(&s.intervals, want.fps));
        let choice = Choice {
            fourcc: f.fourcc,
            pipeline,
            width,
            height,
            interval,
        };
        let dist = u64::from(width.abs_diff(want.width)) + u64::from(height.abs_diff(want.height));
        let fps_ok = choice.fps().is_none_or(|r| r + 0.5 >= f64::from(want.fps));
        // Lower distance better; then fps reached; then the cheaper pipeline.
        let key = (u64::MAX - dist, fps_ok, pipeline_rank(pipeline));
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, choice));
        }
    }
    best.map(|(_, c)| c).ok_or_else(|| {
        if offered.is_empty() {
            "the device lists no capture formats".to_owned()
        } else if let Some(w) = want.fourcc {
            format!(
                "format {} not offered (offered: {})",
                fourcc_str(w),
                offered.join(", ")
            )
        } else {
            format!(
                "no usable format (offered: {}; usable: H264, MJPG, YUYV, NV12, YU12)",
                offered.join(", ")
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4l2::device::SizeCaps;

    fn discrete(fourcc: u32, sizes: &[(u32, u32)], fps: &[u32]) -> FormatCaps {
        FormatCaps {
            fourcc,
            description: String::new(),
            sizes: sizes
                .iter()
                .map(|&(width, height)| SizeCaps {
                    size: FrameSize::Discrete { width, height },
                    intervals: fps
                        .iter()
                        .map(|&f| FrameInterval::Discrete { num: 1, den: f })
                        .collect(),
                })
                .collect(),
        }
    }

    fn want(width: u32, height: u32, fps: u32) -> Wanted {
        Wanted {
            width,
            height,
            fps,
            fourcc: None,
        }
    }

    #[test]
    fn exact_size_and_rate_on_a_vivid_like_device() {
        let sizes = [
            (320, 180),
            (640, 360),
            (640, 480),
            (1280, 720),
            (1920, 1080),
        ];
        let f = [discrete(PIX_FMT_YUYV, &sizes, &[5, 10, 15, 25, 30, 50, 60])];
        let c = negotiate(&f, &want(1280, 720, 30)).expect("choice");
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.interval, Some((1, 30)));
        assert_eq!(c.pipeline, Pipeline::Raw(RawFormat::Yuyv));
    }

    #[test]
    fn native_h264_beats_raw_at_the_same_size() {
        let f = [
            discrete(PIX_FMT_YUYV, &[(1280, 720)], &[30]),
            discrete(PIX_FMT_H264, &[(1280, 720)], &[30]),
            discrete(PIX_FMT_MJPEG, &[(1280, 720)], &[30]),
        ];
        assert_eq!(
            negotiate(&f, &want(1280, 720, 30)).expect("c").pipeline,
            Pipeline::H264
        );
    }

    #[test]
    fn a_uvc_webcam_mjpeg_wins_when_raw_is_too_slow() {
        // Typical USB 2 webcam: YUYV 720p only at 10 fps, MJPEG at 30.
        let f = [
            discrete(PIX_FMT_YUYV, &[(640, 480), (1280, 720)], &[10]),
            discrete(PIX_FMT_MJPEG, &[(640, 480), (1280, 720)], &[30, 15]),
        ];
        let c = negotiate(&f, &want(1280, 720, 30)).expect("c");
        assert_eq!(c.pipeline, Pipeline::Mjpeg);
        assert_eq!(c.interval, Some((1, 30)));
    }

    #[test]
    fn nearest_size_when_the_wanted_one_is_missing() {
        let f = [discrete(PIX_FMT_YUYV, &[(640, 480), (1600, 1200)], &[15])];
        let c = negotiate(&f, &want(1280, 720, 30)).expect("c");
        assert_eq!((c.width, c.height), (1600, 1200));
        assert_eq!(c.interval, Some((1, 15)), "the only rate there is");
    }

    #[test]
    fn stepwise_sizes_and_rates_are_fitted() {
        let f = [FormatCaps {
            fourcc: PIX_FMT_NV12,
            description: String::new(),
            sizes: vec![SizeCaps {
                size: FrameSize::Stepwise {
                    min_width: 32,
                    max_width: 1920,
                    step_width: 16,
                    min_height: 32,
                    max_height: 1080,
                    step_height: 2,
                },
                intervals: vec![FrameInterval::Stepwise {
                    min: (1, 60),
                    max: (1, 1),
                }],
            }],
        }];
        let c = negotiate(&f, &want(1000, 3000, 25)).expect("c");
        assert_eq!((c.width, c.height), (992, 1080));
        assert_eq!(c.fps(), Some(25.0));
    }

    #[test]
    fn forced_format_and_reasons() {
        let f = [
            discrete(PIX_FMT_YUYV, &[(640, 480)], &[30]),
            discrete(fourcc(b"BA81"), &[(640, 480)], &[30]),
        ];
        let mut w = want(640, 480, 30);
        w.fourcc = Some(PIX_FMT_MJPEG);
        let e = negotiate(&f, &w).unwrap_err();
        assert!(e.contains("MJPG not offered") && e.contains("YUYV"), "{e}");
        let only_bayer = [discrete(fourcc(b"BA81"), &[(640, 480)], &[30])];
        let e = negotiate(&only_bayer, &want(640, 480, 30)).unwrap_err();
        assert!(e.contains("no usable format") && e.contains("BA81"), "{e}");
        assert!(negotiate(&[], &want(640, 480, 30))
            .unwrap_err()
            .contains("no capture formats"));
    }

    #[test]
    fn drivers_without_size_enumeration() {
        let f = [FormatCaps {
            fourcc: PIX_FMT_YUV420,
            description: String::new(),
            sizes: vec![],
        }];
        let c = negotiate(&f, &want(640, 480, 30)).expect("c");
        assert_eq!((c.width, c.height, c.interval), (640, 480, None));
    }
}
