//! A planar I420 picture we draw into directly, and hand to the encoder as is.

/// Limited-range ("video range") BT.601 colours, as the encoder expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Yuv {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

impl Yuv {
    pub const fn new(y: u8, u: u8, v: u8) -> Self {
        Yuv { y, u, v }
    }
    pub const fn grey(y: u8) -> Self {
        Yuv { y, u: 128, v: 128 }
    }
}

pub(crate) const BLACK: Yuv = Yuv::grey(16);
pub(crate) const WHITE: Yuv = Yuv::grey(235);

/// I420: full-resolution luma, then 2×2-subsampled Cb and Cr, no padding.
/// The same buffer the camera path converts into; here we draw into it.
pub(crate) type Picture = crate::encoder::convert::I420Image;

impl Picture {
    /// `width` and `height` must be even (checked by the config validation).
    pub(crate) fn new(width: usize, height: usize) -> Self {
        let cw = width / 2;
        let ch = height / 2;
        Picture {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
        }
    }

    /// Fill a rectangle, clipped to the picture. Chroma is written for every
    /// 2×2 block the rectangle touches, so keep edges even for clean colour.
    pub(crate) fn fill_rect(&mut self, x0: usize, y0: usize, w: usize, h: usize, c: Yuv) {
        let x1 = (x0.saturating_add(w)).min(self.width);
        let y1 = (y0.saturating_add(h)).min(self.height);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for row in self.y.chunks_exact_mut(self.width).take(y1).skip(y0) {
            row[x0..x1].fill(c.y);
        }
        let cw = self.width / 2;
        let (cx0, cx1) = (x0 / 2, x1.div_ceil(2).min(cw));
        let (cy0, cy1) = (y0 / 2, y1.div_ceil(2).min(self.height / 2));
        for (urow, vrow) in self
            .u
            .chunks_exact_mut(cw)
            .zip(self.v.chunks_exact_mut(cw))
            .take(cy1)
            .skip(cy0)
        {
            urow[cx0..cx1].fill(c.u);
            vrow[cx0..cx1].fill(c.v);
        }
    }
}
