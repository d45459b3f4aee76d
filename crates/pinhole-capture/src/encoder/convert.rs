//! Pixel layout conversions into I420 (what OpenH264 takes). Pure and
//! allocation-free after the first frame: the destination is reused.

use openh264::formats::YUVSource;

use super::RawFrame;
use crate::v4l2::negotiate::RawFormat;

/// A tightly packed I420 picture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct I420Image {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl I420Image {
    /// Resize for `width`×`height` (both even).
    pub fn reset(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.y.resize(width * height, 16);
        self.u.resize(width / 2 * (height / 2), 128);
        self.v.resize(width / 2 * (height / 2), 128);
    }
}

impl YUVSource for I420Image {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Convert `src` into `dst` (I420), cropping to even dimensions. `Err` if the
/// buffer is shorter than its geometry says (a truncated driver buffer).
pub fn to_i420(src: &RawFrame<'_>, dst: &mut I420Image) -> Result<(), String> {
    let need = src.needed_len();
    if src.data.len() < need {
        return Err(format!(
            "short frame: {} bytes, {}x{} {:?} needs {need}",
            src.data.len(),
            src.width,
            src.height,
            src.format
        ));
    }
    let (w, h) = (src.width as usize & !1, src.height as usize & !1);
    dst.reset(w, h);
    let s = src.stride;
    let (cw, ch) = (w / 2, h / 2);
    match src.format {
        RawFormat::I420 => {
            let luma = s * src.plane_rows;
            let cs = s / 2;
            let (u0, v0) = (luma, luma + cs * (src.plane_rows / 2));
            for r in 0..h {
                dst.y[r * w..][..w].copy_from_slice(&src.data[r * s..][..w]);
            }
            for r in 0..ch {
                dst.u[r * cw..][..cw].copy_from_slice(&src.data[u0 + r * cs..][..cw]);
                dst.v[r * cw..][..cw].copy_from_slice(&src.data[v0 + r * cs..][..cw]);
            }
        }
        RawFormat::Nv12 => {
            let uv0 = s * src.plane_rows;
            for r in 0..h {
                dst.y[r * w..][..w].copy_from_slice(&src.data[r * s..][..w]);
            }
            for r in 0..ch {
                let row = &src.data[uv0 + r * s..][..cw * 2];
                for (c, pair) in row.chunks_exact(2).enumerate() {
                    dst.u[r * cw + c] = pair[0];
                    dst.v[r * cw + c] = pair[1];
                }
            }
        }
        RawFormat::Yuyv => {
            for r in 0..h {
                let row = &src.data[r * s..][..w * 2];
                let ydst = &mut dst.y[r * w..][..w];
                for (i, px) in row.chunks_exact(4).enumerate() {
                    ydst[2 * i] = px[0];
                    ydst[2 * i + 1] = px[2];
                }
                // 4:2:2 → 4:2:0: average the chroma of each row pair.
                if r % 2 == 1 {
                    let above = &src.data[(r - 1) * s..][..w * 2];
                    let cr = r / 2;
                    for (i, (a, b)) in above.chunks_exact(4).zip(row.chunks_exact(4)).enumerate() {
                        dst.u[cr * cw + i] = (u16::from(a[1]) + u16::from(b[1])).div_ceil(2) as u8;
                        dst.v[cr * cw + i] = (u16::from(a[3]) + u16::from(b[3])).div_ceil(2) as u8;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Full-range RGB24 (a decoded JPEG) to limited-range BT.601 I420.
pub fn rgb_to_i420(
    rgb: &[u8],
    width: usize,
    height: usize,
    dst: &mut I420Image,
) -> Result<(), String> {
    if rgb.len() < width * height * 3 {
        return Err(format!(
            "short RGB picture: {} bytes for {width}x{height}",
            rgb.len()
        ));
    }
    let (w, h) = (width & !1, height & !1);
    dst.reset(w, h);
    let px = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        (
            i32::from(rgb[i]),
            i32::from(rgb[i + 1]),
            i32::from(rgb[i + 2]),
        )
    };
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            dst.y[y * w + x] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(0, 255) as u8;
        }
    }
    let cw = w / 2;
    for cy in 0..h / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * cx + dx, 2 * cy + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            dst.u[cy * cw + cx] =
                (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            dst.v[cy * cw + cx] =
                (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_with_padding() {
        // 4x2, stride 10 (2 bytes of padding per row).
        let data = [
            10, 100, 11, 200, 12, 102, 13, 202, 0, 0, //
            20, 110, 21, 210, 22, 112, 23, 212, 0, 0,
        ];
        let f = RawFrame {
            format: RawFormat::Yuyv,
            width: 4,
            height: 2,
            data: &data,
            stride: 10,
            plane_rows: 2,
        };
        let mut out = I420Image::default();
        to_i420(&f, &mut out).expect("convert");
        assert_eq!(out.y, vec![10, 11, 12, 13, 20, 21, 22, 23]);
        assert_eq!(out.u, vec![105, 107]);
        assert_eq!(out.v, vec![205, 207]);
    }

    #[test]
    fn nv12_and_i420_with_padded_rows() {
        // 2x2 picture in a buffer with 4 luma rows allotted (driver padding).
        let mut nv12 = vec![0u8; 2 * 4 + 2 * 2];
        nv12[..4].copy_from_slice(&[1, 2, 3, 4]);
        nv12[8..10].copy_from_slice(&[50, 60]);
        let f = RawFrame {
            format: RawFormat::Nv12,
            width: 2,
            height: 2,
            data: &nv12,
            stride: 2,
            plane_rows: 4,
        };
        let mut out = I420Image::default();
        to_i420(&f, &mut out).expect("nv12");
        assert_eq!(
            (out.y.as_slice(), out.u.as_slice(), out.v.as_slice()),
            (&[1, 2, 3, 4][..], &[50][..], &[60][..])
        );

        let i420 = [1, 2, 3, 4, 7, 9];
        to_i420(&RawFrame::packed(RawFormat::I420, 2, 2, &i420), &mut out).expect("i420");
        assert_eq!((out.u[0], out.v[0]), (7, 9));
    }

    #[test]
    fn short_buffers_are_errors_not_panics() {
        let mut out = I420Image::default();
        let e = to_i420(
            &RawFrame::packed(RawFormat::Yuyv, 640, 480, &[0; 100]),
            &mut out,
        )
        .unwrap_err();
        assert!(e.contains("short frame"), "{e}");
        assert!(rgb_to_i420(&[0; 5], 2, 2, &mut out).is_err());
    }

    #[test]
    fn rgb_primaries() {
        let mut out = I420Image::default();
        rgb_to_i420(&[255; 12], 2, 2, &mut out).expect("white");
        assert_eq!((out.y[0], out.u[0], out.v[0]), (235, 128, 128));
        rgb_to_i420(&[0; 12], 2, 2, &mut out).expect("black");
        assert_eq!(out.y[0], 16);
    }
}
