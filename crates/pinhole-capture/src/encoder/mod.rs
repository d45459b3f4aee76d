//! H.264 encoders behind one trait: OpenH264 in software ([`soft`]) and the
//! V4L2 stateful memory-to-memory encoder ([`m2m`], e.g. `/dev/video11` on
//! Raspberry Pi OS kernels).
//!
//! Every encoder is set up explicitly — bitrate, keyframe interval,
//! profile/level, SPS/PPS on every keyframe — and can be asked for a
//! keyframe at any time (a new viewer, a lost packet downstream).

use crate::v4l2::negotiate::RawFormat;
use crate::CaptureError;

pub mod convert;
pub mod m2m;
pub mod soft;

pub use convert::I420Image;

/// H.264 profile to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// No B-frames, no CABAC: every browser decodes it. The default.
    #[default]
    ConstrainedBaseline,
    Main,
    High,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target bitrate, bit/s.
    pub bitrate: u32,
    /// Frames from one IDR to the next.
    pub keyframe_interval: u32,
    pub profile: Profile,
}

/// One uncompressed picture as a driver lays it out in one buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
    /// All planes, back to back.
    pub data: &'a [u8],
    /// Bytes per line of the first plane (luma, or the packed picture).
    pub stride: usize,
    /// Lines allotted to the luma plane (≥ height when the driver pads).
    pub plane_rows: usize,
}

impl<'a> RawFrame<'a> {
    /// A tightly packed frame (stride = minimal, no row padding).
    pub fn packed(format: RawFormat, width: u32, height: u32, data: &'a [u8]) -> Self {
        let stride = match format {
            RawFormat::Yuyv => width as usize * 2,
            _ => width as usize,
        };
        RawFrame {
            format,
            width,
            height,
            data,
            stride,
            plane_rows: height as usize,
        }
    }

    /// Bytes a frame of this geometry occupies.
    pub fn needed_len(&self) -> usize {
        let luma = self.stride * self.plane_rows;
        match self.format {
            RawFormat::Yuyv => {
                self.stride * (self.height as usize).saturating_sub(1) + self.width as usize * 2
            }
            RawFormat::I420 | RawFormat::Nv12 => luma + luma / 2,
        }
    }
}

/// One encoded access unit (Annex B).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// The capture time of the picture it encodes.
    pub pts_us: u64,
}

pub trait VideoEncoder: Send {
    /// e.g. "openh264 (software)" or "v4l2 m2m /dev/video11 (bcm2835-codec)".
    fn describe(&self) -> String;
    /// Encode one picture. Hardware encoders may return the output of an
    /// earlier picture, or several, or none yet.
    fn encode(&mut self, frame: &RawFrame<'_>, pts_us: u64) -> Result<Vec<Encoded>, CaptureError>;
    /// Make the next encoded picture an IDR (with SPS/PPS).
    fn request_keyframe(&mut self);
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
pub(crate) fn collect_nals(annexb: &[u8], keep: impl Fn(u8) -> bool, out: &mut Vec<u8>) {
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

/// Keeps the last SPS/PPS and puts them in front of any IDR that lacks them:
/// the design promises parameter sets with every keyframe, whatever the
/// encoder does with "repeat sequence header".
#[derive(Default)]
pub(crate) struct ParamSets {
    cached: Vec<u8>,
}

impl ParamSets {
    pub fn fix(&mut self, data: Vec<u8>, keyframe: bool) -> Vec<u8> {
        if !keyframe {
            return data;
        }
        let has_sps = nal_types(&data).any(|t| t == 7);
        let has_pps = nal_types(&data).any(|t| t == 8);
        if has_sps && has_pps {
            self.cached.clear();
            collect_nals(&data, |t| t == 7 || t == 8, &mut self.cached);
            data
        } else if !self.cached.is_empty() {
            let mut fixed = Vec::with_capacity(self.cached.len() + data.len());
            fixed.extend_from_slice(&self.cached);
            collect_nals(&data, |t| t != 7 && t != 8, &mut fixed);
            fixed
        } else {
            data
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn parameter_sets_are_repeated_on_bare_idrs() {
        let mut ps = ParamSets::default();
        let first = vec![
            0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3,
        ];
        assert_eq!(ps.fix(first.clone(), true), first);
        let p = vec![0, 0, 0, 1, 0x41, 9];
        assert_eq!(ps.fix(p.clone(), false), p);
        let bare = vec![0, 0, 0, 1, 0x65, 4];
        assert_eq!(
            ps.fix(bare, true),
            vec![0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 4]
        );
    }
}
