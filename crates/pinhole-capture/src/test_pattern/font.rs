//! A tiny built-in 5×7 bitmap font, scaled up by whole pixels.
//!
//! Only what the overlay needs: digits, `:`, `.`, `#` and the letters of
//! `UTC`. Anything else draws as a blank cell.

use super::picture::{Picture, Yuv};

pub(crate) const GLYPH_W: usize = 5;
pub(crate) const GLYPH_H: usize = 7;
/// Horizontal advance per character, in font pixels (glyph + 1 column gap).
pub(crate) const ADVANCE: usize = GLYPH_W + 1;

/// Rows top to bottom; bit 4 is the leftmost column.
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        _ => [0; GLYPH_H],
    }
}

/// Width in picture pixels of `chars` characters at `scale` (no trailing gap).
pub(crate) fn text_width(chars: usize, scale: usize) -> usize {
    (chars * ADVANCE).saturating_sub(1) * scale
}

/// Draw `text` with its top-left corner at (`x`, `y`); clipped to the picture.
pub(crate) fn draw_text(pic: &mut Picture, x: usize, y: usize, scale: usize, text: &str, fg: Yuv) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i * ADVANCE * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            // Merge horizontal runs of set bits into one rectangle each.
            let mut col = 0;
            while col < GLYPH_W {
                if bits & (0x10 >> col) == 0 {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < GLYPH_W && bits & (0x10 >> col) != 0 {
                    col += 1;
                }
                pic.fill_rect(
                    gx + start * scale,
                    y + row * scale,
                    (col - start) * scale,
                    scale,
                    fg,
                );
            }
        }
    }
}
