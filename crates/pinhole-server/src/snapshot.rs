//! H.264 access units in, JPEG pictures out (for `/snapshot.jpg` and MJPEG).
//!
//! [`JpegMaker`] decodes every access unit it is fed (P-frames need their
//! references) and keeps a copy of the last picture; [`JpegMaker::jpeg`]
//! encodes that picture at full resolution. The decoder's YCbCr goes to the
//! JPEG encoder directly — no RGB round trip — after mapping the H.264
//! limited range (Y 16–235, C 16–240) to JPEG's full range.

use bytes::Bytes;
use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType};
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot create the H.264 decoder: {0}")]
    DecoderInit(String),
    #[error("cannot decode a {len}-byte access unit: {reason}")]
    Decode { len: usize, reason: String },
    #[error("picture {width}x{height} is too large for JPEG (max 65535x65535)")]
    TooLarge { width: usize, height: usize },
    #[error("cannot encode a {width}x{height} JPEG: {reason}")]
    Encode {
        width: usize,
        height: usize,
        reason: String,
    },
}

/// The last decoded picture, copied out of the decoder (I420, no padding).
struct Picture {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

pub struct JpegMaker {
    decoder: Decoder,
    last: Option<Picture>,
    /// Lookup tables from limited to full range.
    luma_lut: [u8; 256],
    chroma_lut: [u8; 256],
}

fn new_decoder() -> Result<Decoder, SnapshotError> {
    // Flush after each AU so the picture of this AU comes out now: the
    // stream has no B-frames, so there is no reordering to wait for.
    let config = DecoderConfig::new().flush_after_decode(Flush::Flush);
    Decoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| SnapshotError::DecoderInit(e.to_string()))
}

fn range_lut(lo: f32, hi: f32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    for (i, out) in lut.iter_mut().enumerate() {
        let v = (i as f32 - lo) * 255.0 / (hi - lo);
        *out = v.round().clamp(0.0, 255.0) as u8;
    }
    lut
}

/// Copy `rows` rows of `width` bytes out of a strided plane.
fn copy_plane(src: &[u8], stride: usize, width: usize, rows: usize, dst: &mut Vec<u8>) {
    dst.clear();
    dst.reserve(width * rows);
    for row in src.chunks(stride).take(rows) {
        dst.extend_from_slice(&row[..width.min(row.len())]);
    }
    // A short buffer from the decoder would be a bug there; pad rather than panic.
    dst.resize(width * rows, 128);
}

impl JpegMaker {
    pub fn new() -> Result<Self, SnapshotError> {
        Ok(JpegMaker {
            decoder: new_decoder()?,
            last: None,
            luma_lut: range_lut(16.0, 235.0),
            // Chroma: 16..240 around 128 maps to 0..255 around 128.
            chroma_lut: range_lut(16.0, 240.0),
        })
    }

    /// Feed one access unit (Annex B). `Ok(true)` if it produced a picture,
    /// which then becomes the one [`JpegMaker::jpeg`] encodes.
    pub fn decode(&mut self, annexb: &[u8]) -> Result<bool, SnapshotError> {
        let decoded = self
            .decoder
            .decode(annexb)
            .map_err(|e| SnapshotError::Decode {
                len: annexb.len(),
                reason: e.to_string(),
            })?;
        let Some(yuv) = decoded else {
            return Ok(false);
        };
        let (width, height) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        // Reuse the previous buffers: at 30 fps this avoids 3 allocations per frame.
        let mut pic = self.last.take().unwrap_or(Picture {
            width,
            height,
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
        });
        pic.width = width;
        pic.height = height;
        copy_plane(yuv.y(), sy, width, height, &mut pic.y);
        copy_plane(yuv.u(), su, cw, ch, &mut pic.u);
        copy_plane(yuv.v(), sv, cw, ch, &mut pic.v);
        self.last = Some(pic);
        Ok(true)
    }

    /// The last decoded picture as a JPEG (`quality` 1–100, clamped), or
    /// `None` if nothing has been decoded since creation or [`reset`](Self::reset).
    pub fn jpeg(&self, quality: u8) -> Option<Result<Bytes, SnapshotError>> {
        let pic = self.last.as_ref()?;
        Some(self.encode(pic, quality.clamp(1, 100)))
    }

    fn encode(&self, pic: &Picture, quality: u8) -> Result<Bytes, SnapshotError> {
        let (width, height) = (pic.width, pic.height);
        let (Ok(w16), Ok(h16)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(SnapshotError::TooLarge { width, height });
        };
        let mut out = Vec::with_capacity(width * height / 8);
        let encoder = Encoder::new(&mut out, quality);
        let image = YcbcrImage {
            pic,
            width: w16,
            height: h16,
            luma: &self.luma_lut,
            chroma: &self.chroma_lut,
        };
        encoder
            .encode_image(image)
            .map_err(|e| SnapshotError::Encode {
                width,
                height,
                reason: e.to_string(),
            })?;
        Ok(Bytes::from(out))
    }

    /// Forget the decoder state and the last picture (e.g. the stream changed).
    pub fn reset(&mut self) {
        self.last = None;
        match new_decoder() {
            Ok(d) => self.decoder = d,
            // Keep the old decoder: it resynchronises on the next IDR anyway.
            Err(e) => tracing::warn!(error = %e, "snapshot: cannot recreate decoder"),
        }
    }
}

/// Feeds the I420 picture to the JPEG encoder row by row as full-range YCbCr.
struct YcbcrImage<'a> {
    pic: &'a Picture,
    width: u16,
    height: u16,
    luma: &'a [u8; 256],
    chroma: &'a [u8; 256],
}

impl ImageBuffer for YcbcrImage<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }
    fn width(&self) -> u16 {
        self.width
    }
    fn height(&self) -> u16 {
        self.height
    }
    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let (w, y) = (self.pic.width, usize::from(y));
        let cw = w.div_ceil(2);
        let (Some(ys), Some(us), Some(vs)) = (
            self.pic.y.get(y * w..(y + 1) * w),
            self.pic.u.get(y / 2 * cw..(y / 2 + 1) * cw),
            self.pic.v.get(y / 2 * cw..(y / 2 + 1) * cw),
        ) else {
            return;
        };
        let [b0, b1, b2, _] = buffers;
        b0.extend(ys.iter().map(|&p| self.luma[usize::from(p)]));
        for x in 0..w {
            b1.push(self.chroma[usize::from(us[x / 2])]);
            b2.push(self.chroma[usize::from(vs[x / 2])]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::encoder::{Encoder as H264Encoder, EncoderConfig, FrameType, IntraFramePeriod};
    use openh264::formats::YUVBuffer;

    /// A picture whose left half is red and right half is grey, with a
    /// brightness that changes by frame (so P-frames carry something).
    fn frame(w: usize, h: usize, n: usize) -> YUVBuffer {
        let mut data = vec![0u8; w * h * 3 / 2];
        let (y, rest) = data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(w * h / 4);
        for r in 0..h {
            for c in 0..w {
                y[r * w + c] = if c < w / 2 { 81 } else { (100 + n * 10) as u8 };
            }
        }
        for r in 0..h / 2 {
            for c in 0..w / 2 {
                let red = c < w / 4;
                u[r * w / 2 + c] = if red { 90 } else { 128 };
                v[r * w / 2 + c] = if red { 240 } else { 128 };
            }
        }
        YUVBuffer::from_vec(data, w, h)
    }

    fn encode_stream(w: usize, h: usize, n: usize) -> Vec<(Vec<u8>, bool)> {
        let config = EncoderConfig::new().intra_frame_period(IntraFramePeriod::from_num_frames(30));
        let mut enc =
            H264Encoder::with_api_config(OpenH264API::from_source(), config).expect("encoder");
        (0..n)
            .map(|i| {
                let bs = enc.encode(&frame(w, h, i)).expect("encode");
                (bs.to_vec(), bs.frame_type() == FrameType::IDR)
            })
            .collect()
    }

    fn decode_jpeg(jpeg: &[u8]) -> (jpeg_decoder::ImageInfo, Vec<u8>) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        let pixels = d.decode().expect("valid JPEG");
        (d.info().expect("info"), pixels)
    }

    #[test]
    fn decodes_stream_and_makes_full_size_jpeg() {
        let (w, h) = (320, 240);
        let stream = encode_stream(w, h, 5);
        assert!(stream[0].1 && !stream[4].1, "IDR then P-frames");
        let mut maker = JpegMaker::new().expect("maker");
        assert!(maker.jpeg(80).is_none(), "nothing decoded yet");
        for (au, _) in &stream {
            assert!(maker.decode(au).expect("decode"), "one picture per AU");
        }
        let jpeg = maker.jpeg(80).expect("picture").expect("jpeg");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let (info, rgb) = decode_jpeg(&jpeg);
        assert_eq!((info.width, info.height), (w as u16, h as u16));
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        let px = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            (rgb[i], rgb[i + 1], rgb[i + 2])
        };
        // Left: BT.601 red (Y 81, Cb 90, Cr 240) -> roughly (255, 0, 0).
        let (r, g, b) = px(w / 4, h / 2);
        assert!(r > 220 && g < 40 && b < 40, "red spot is {r},{g},{b}");
        // Right: grey at Y = 140 (frame 4) -> full range (140-16)*255/219 = 144.
        let (r, g, b) = px(3 * w / 4, h / 2);
        for c in [r, g, b] {
            assert!((134..=154).contains(&c), "grey spot is {r},{g},{b}");
        }
    }

    #[test]
    fn odd_input_is_an_error_or_nothing_never_a_panic() {
        let mut maker = JpegMaker::new().expect("maker");
        for junk in [
            &[][..],
            &[0, 0, 0, 1, 0x65, 0xff, 0x00][..],
            &[1, 2, 3, 4, 5][..],
        ] {
            let out = maker.decode(junk);
            assert!(!matches!(out, Ok(true)), "junk produced a picture");
        }
        assert!(maker.jpeg(50).is_none());
    }

    #[test]
    fn reset_forgets_the_picture_and_resyncs_on_idr() {
        let stream = encode_stream(160, 120, 3);
        let mut maker = JpegMaker::new().expect("maker");
        for (au, _) in &stream {
            maker.decode(au).expect("decode");
        }
        assert!(maker.jpeg(90).is_some());
        maker.reset();
        assert!(maker.jpeg(90).is_none());
        assert!(maker.decode(&stream[0].0).expect("IDR decodes"));
        let jpeg = maker
            .jpeg(0)
            .expect("picture")
            .expect("quality clamped to 1");
        let (info, _) = decode_jpeg(&jpeg);
        assert_eq!((info.width, info.height), (160, 120));
    }
}
