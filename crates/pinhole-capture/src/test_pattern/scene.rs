//! Draws one test-pattern picture straight into I420.
//!
//! Background rows are identical down each band, so one row template per
//! band is built and copied down: the whole frame costs little more than a
//! memcpy, which matters at 720p30 on a Pi.

use std::fmt::Write as _;

use super::barcode;
use super::font::{self, GLYPH_H};
use super::picture::{Picture, Yuv, BLACK, WHITE};

/// 75 % colour bars, BT.601 limited range: white, yellow, cyan, green,
/// magenta, red, blue, black.
const BARS: [Yuv; 8] = [
    Yuv::new(180, 128, 128),
    Yuv::new(162, 44, 142),
    Yuv::new(131, 156, 44),
    Yuv::new(112, 72, 58),
    Yuv::new(84, 184, 198),
    Yuv::new(65, 100, 212),
    Yuv::new(35, 212, 114),
    Yuv::new(16, 128, 128),
];
const BOX_INNER: Yuv = Yuv::new(81, 90, 240);
/// Full scroll period of the bars and the ramp.
const SCROLL_MS: u64 = 4000;

pub(crate) struct Scene {
    width: usize,
    height: usize,
    /// First row of the grey ramp band (bars above).
    ramp_top: usize,
    bar_y: Vec<u8>,
    bar_u: Vec<u8>,
    bar_v: Vec<u8>,
    ramp_y: Vec<u8>,
    text: String,
}

/// Where the sync marker is: `(x, y, side)`, on the left edge, centred
/// between the barcode (top) and the clock (bottom).
pub fn marker_rect(width: usize, height: usize) -> (usize, usize, usize) {
    let side = (height / 6).max(2).min(width) & !1;
    (0, (height / 2).saturating_sub(side / 2) & !1, side)
}

/// Triangle wave over `0..=range` with the given period.
fn bounce(t_ms: u64, period_ms: u64, range: usize) -> usize {
    if range == 0 {
        return 0;
    }
    let phase = (t_ms % period_ms) as usize * 2 * range / period_ms as usize;
    if phase <= range {
        phase
    } else {
        2 * range - phase
    }
}

impl Scene {
    pub fn new(width: usize, height: usize) -> Self {
        Scene {
            width,
            height,
            ramp_top: (height * 3 / 4) & !1,
            bar_y: vec![0; width],
            bar_u: vec![0; width / 2],
            bar_v: vec![0; width / 2],
            ramp_y: vec![0; width],
            text: String::with_capacity(32),
        }
    }

    /// `t_ms` drives the motion (slot time, so speed is constant even when
    /// frames are skipped); `wall_us` is the capture time drawn as text and
    /// barcode; `frame_no` is drawn as a counter; `marker`: this frame is
    /// captured at a whole second, when the test tone clicks.
    pub fn draw(
        &mut self,
        pic: &mut Picture,
        t_ms: u64,
        wall_us: u64,
        frame_no: u64,
        marker: bool,
    ) {
        let (w, h) = (self.width, self.height);
        debug_assert!(pic.width == w && pic.height == h);
        let cw = w / 2;

        // Bars scroll left, the ramp scrolls right, one width per SCROLL_MS.
        let off = (t_ms % SCROLL_MS) as usize * w / SCROLL_MS as usize;
        for (x, p) in self.bar_y.iter_mut().enumerate() {
            *p = BARS[((x + off) % w) * BARS.len() / w].y;
        }
        for (cx, (u, v)) in self.bar_u.iter_mut().zip(&mut self.bar_v).enumerate() {
            let bar = BARS[((2 * cx + off) % w) * BARS.len() / w];
            *u = bar.u;
            *v = bar.v;
        }
        for (x, p) in self.ramp_y.iter_mut().enumerate() {
            *p = (16 + ((x + w - off) % w) * 219 / w) as u8;
        }
        for (i, row) in pic.y.chunks_exact_mut(w).enumerate() {
            row.copy_from_slice(if i < self.ramp_top {
                &self.bar_y
            } else {
                &self.ramp_y
            });
        }
        let chroma_split = self.ramp_top / 2;
        for (i, (u, v)) in pic
            .u
            .chunks_exact_mut(cw)
            .zip(pic.v.chunks_exact_mut(cw))
            .enumerate()
        {
            if i < chroma_split {
                u.copy_from_slice(&self.bar_u);
                v.copy_from_slice(&self.bar_v);
            } else {
                u.fill(128);
                v.fill(128);
            }
        }

        // A bouncing box: white with a red core, even-aligned for clean chroma.
        let side = (h / 5).max(2) & !1;
        let bx = bounce(t_ms, 4200, w.saturating_sub(side)) & !1;
        let by = bounce(t_ms, 2600, h.saturating_sub(side)) & !1;
        pic.fill_rect(bx, by, side, side, WHITE);
        let inner = (side / 2) & !1;
        let margin = ((side - inner) / 2) & !1;
        pic.fill_rect(bx + margin, by + margin, inner, inner, BOX_INNER);

        // The A/V sync marker: a square on the left edge, black, white on
        // the frame of each whole second (docs/audio.md).
        let (x, y, side) = marker_rect(w, h);
        pic.fill_rect(x, y, side, side, if marker { WHITE } else { BLACK });

        self.draw_clock(pic, wall_us, frame_no);
        // Last, so nothing ever covers it.
        barcode::draw(pic, wall_us / 1000);
    }

    /// `HH:MM:SS.mmm UTC` in big digits and `#frame` below, on a black box
    /// at the bottom centre.
    fn draw_clock(&mut self, pic: &mut Picture, wall_us: u64, frame_no: u64) {
        let (w, h) = (self.width, self.height);
        let ms_total = wall_us / 1000;
        let secs = ms_total / 1000;
        self.text.clear();
        // Writing to a String cannot fail.
        let _ = write!(
            self.text,
            "{:02}:{:02}:{:02}.{:03} UTC",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            ms_total % 1000
        );
        let clock_len = self.text.len();
        let _ = write!(self.text, "#{frame_no}");
        let (clock, counter) = self.text.split_at(clock_len);

        let big = (w / 160).max(1);
        let small = (big / 2).max(1);
        let pad = big;
        let text_w = font::text_width(clock.len(), big).max(font::text_width(counter.len(), small));
        let box_w = text_w + 2 * pad;
        let box_h = GLYPH_H * big + big + GLYPH_H * small + 2 * pad;
        let x0 = (w.saturating_sub(box_w) / 2) & !1;
        let y0 = h.saturating_sub(box_h + big) & !1;
        pic.fill_rect(x0, y0, box_w, box_h, BLACK);
        font::draw_text(pic, x0 + pad, y0 + pad, big, clock, WHITE);
        font::draw_text(
            pic,
            x0 + pad,
            y0 + pad + (GLYPH_H + 1) * big,
            small,
            counter,
            WHITE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_stays_in_range() {
        for t in (0..10_000).step_by(7) {
            assert!(bounce(t, 2600, 100) <= 100);
        }
        assert_eq!(bounce(0, 1000, 50), 0);
        assert_eq!(bounce(500, 1000, 50), 50);
        assert_eq!(bounce(123, 1000, 0), 0);
    }

    #[test]
    fn draws_every_size_without_panicking() {
        for (w, h) in [
            (16, 16),
            (18, 16),
            (144, 16),
            (640, 480),
            (1280, 720),
            (3840, 16),
            (16, 2160),
        ] {
            let mut pic = Picture::new(w, h);
            let mut scene = Scene::new(w, h);
            for t in [0, 1234, 99_999] {
                scene.draw(&mut pic, t, 1_700_000_000_123_456 + t * 1000, t, t == 0);
            }
        }
    }

    #[test]
    fn clock_text_is_utc() {
        let mut scene = Scene::new(640, 480);
        let mut pic = Picture::new(640, 480);
        // 2023-11-14T22:13:20.123Z
        scene.draw(&mut pic, 0, 1_700_000_000_123_456, 42, false);
        assert_eq!(scene.text, "22:13:20.123 UTC#42");
    }
}
