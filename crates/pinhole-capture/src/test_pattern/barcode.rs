//! The machine-readable capture-time barcode (layout: `docs/test-pattern.md`).
//!
//! Geometry is proportional to the picture width, so a reader needs nothing
//! but the (uniformly scaled) picture: unit `u = width / 36`, a grey panel at
//! x ∈ [1u, 35u), y ∈ [0, 4u), and 2 rows × 32 square cells of side `u`
//! starting at (2u, 1u). 64 bits, row-major, MSB first:
//! start marker `1101`, 48-bit wall-clock milliseconds, CRC-8 of those 6
//! bytes, stop marker `1011`. White (Y=235) is 1, black (Y=16) is 0.

use super::picture::{Picture, Yuv, BLACK, WHITE};

/// The picture width is divided into this many units of one cell each.
pub const UNITS_ACROSS: usize = 36;
pub const COLUMNS: usize = 32;
pub const ROWS: usize = 2;
pub const BITS: usize = COLUMNS * ROWS;
/// Number of timestamp bits carried (milliseconds since the Unix epoch, mod 2^48).
pub const DATA_BITS: usize = 48;
const START: [bool; 4] = [true, true, false, true];
const STOP: [bool; 4] = [true, false, true, true];
const DATA_AT: usize = START.len();
const CRC_AT: usize = DATA_AT + DATA_BITS;
const STOP_AT: usize = CRC_AT + 8;
/// Smallest width with cells of at least 4 px.
pub const MIN_WIDTH: usize = 4 * UNITS_ACROSS;
/// Neutral grey quiet zone around the cells.
const PANEL: Yuv = Yuv::grey(128);
/// Minimum white-minus-black difference of the marker cells, in luma steps.
const MIN_CONTRAST: f64 = 60.0;

/// Pixel position of unit boundary `k`: round(k · width / 36).
fn edge(k: usize, width: usize) -> usize {
    (k * width + UNITS_ACROSS / 2) / UNITS_ACROSS
}

/// Height of the barcode panel in pixels (4 units).
pub(crate) fn panel_height(width: usize) -> usize {
    edge(4, width)
}

/// Whether a picture of this size carries a barcode.
pub fn fits(width: usize, height: usize) -> bool {
    width >= MIN_WIDTH && panel_height(width) <= height
}

/// CRC-8, polynomial x^8+x^2+x+1 (0x07), init 0, no reflection, no final xor.
pub fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn data_bytes(ms: u64) -> [u8; 6] {
    let b = ms.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The 64 cell values for a millisecond timestamp (taken mod 2^48).
pub fn encode_bits(ms: u64) -> [bool; BITS] {
    let ms = ms & ((1u64 << DATA_BITS) - 1);
    let mut bits = [false; BITS];
    bits[..DATA_AT].copy_from_slice(&START);
    for k in 0..DATA_BITS {
        bits[DATA_AT + k] = (ms >> (DATA_BITS - 1 - k)) & 1 == 1;
    }
    let crc = crc8(&data_bytes(ms));
    for k in 0..8 {
        bits[CRC_AT + k] = (crc >> (7 - k)) & 1 == 1;
    }
    bits[STOP_AT..].copy_from_slice(&STOP);
    bits
}

/// Draw the panel and cells for `ms` into the top of `pic` (if it fits).
pub(crate) fn draw(pic: &mut Picture, ms: u64) {
    let (w, h) = (pic.width, pic.height);
    if !fits(w, h) {
        return;
    }
    let (px0, px1) = (edge(1, w), edge(UNITS_ACROSS - 1, w));
    pic.fill_rect(px0, 0, px1 - px0, panel_height(w), PANEL);
    for (i, bit) in encode_bits(ms).into_iter().enumerate() {
        let (r, c) = (i / COLUMNS, i % COLUMNS);
        let (x0, x1) = (edge(2 + c, w), edge(3 + c, w));
        let (y0, y1) = (edge(1 + r, w), edge(2 + r, w));
        pic.fill_rect(x0, y0, x1 - x0, y1 - y0, if bit { WHITE } else { BLACK });
    }
}

/// Mean luma of the central half (in each direction) of cell (`c`, `r`).
fn sample(y_plane: &[u8], stride: usize, width: usize, c: usize, r: usize) -> Option<f64> {
    let u = width as f64 / UNITS_ACROSS as f64;
    let span = |start: f64| -> (usize, usize) {
        let a = ((start + 0.25) * u).round() as usize;
        let b = ((start + 0.75) * u).round() as usize;
        (a, b.max(a + 1))
    };
    let (xa, xb) = span((2 + c) as f64);
    let (ya, yb) = span((1 + r) as f64);
    let mut sum = 0u64;
    for y in ya..yb {
        let row = y_plane.get(y * stride + xa..y * stride + xb)?;
        sum += row.iter().map(|&p| u64::from(p)).sum::<u64>();
    }
    Some(sum as f64 / ((xb - xa) * (yb - ya)) as f64)
}

/// Read the barcode from a decoded luma plane; `None` if absent or unreliable.
///
/// Returns the wall-clock milliseconds mod 2^48. Rejects the read when the
/// marker cells lack contrast, any cell is too close to the threshold, a
/// marker is wrong, or the CRC does not match.
pub fn read_barcode(y_plane: &[u8], stride: usize, width: usize, height: usize) -> Option<u64> {
    if !fits(width, height) || stride < width {
        return None;
    }
    let mut lumas = [0f64; BITS];
    for (i, l) in lumas.iter_mut().enumerate() {
        *l = sample(y_plane, stride, width, i % COLUMNS, i / COLUMNS)?;
    }
    // Reference levels from the 8 marker cells (6 white, 2 black).
    let markers = START
        .iter()
        .zip(&lumas[..DATA_AT])
        .chain(STOP.iter().zip(&lumas[STOP_AT..]));
    let (mut white, mut nw, mut black, mut nb) = (0.0, 0.0, 0.0, 0.0);
    for (&bit, &l) in markers {
        if bit {
            white += l;
            nw += 1.0;
        } else {
            black += l;
            nb += 1.0;
        }
    }
    let (white, black) = (white / nw, black / nb);
    if white - black < MIN_CONTRAST {
        return None;
    }
    let threshold = (white + black) / 2.0;
    let guard = (white - black) / 4.0;
    let mut bits = [false; BITS];
    for (b, &l) in bits.iter_mut().zip(&lumas) {
        if (l - threshold).abs() < guard {
            return None;
        }
        *b = l > threshold;
    }
    if bits[..DATA_AT] != START || bits[STOP_AT..] != STOP {
        return None;
    }
    let ms = bits[DATA_AT..CRC_AT]
        .iter()
        .fold(0u64, |acc, &b| (acc << 1) | u64::from(b));
    let crc = bits[CRC_AT..STOP_AT]
        .iter()
        .fold(0u8, |acc, &b| (acc << 1) | u8::from(b));
    (crc8(&data_bytes(ms)) == crc).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc8_check_value() {
        // The catalogued check value of CRC-8 (poly 0x07, init 0) over "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
    }

    #[test]
    fn roundtrip_on_raw_picture() {
        for (w, h) in [(1280, 720), (640, 480), (144, 16), (1922, 1080)] {
            let mut pic = Picture::new(w, h);
            for ms in [0u64, 1, 1_700_000_000_123, (1 << 48) - 1] {
                draw(&mut pic, ms);
                assert_eq!(read_barcode(&pic.y, w, w, h), Some(ms), "{w}x{h} {ms}");
            }
        }
    }

    #[test]
    fn rejects_blank_and_corrupted() {
        let mut pic = Picture::new(640, 480);
        assert_eq!(read_barcode(&pic.y, 640, 640, 480), None);
        draw(&mut pic, 1_700_000_000_123);
        // Flip one data cell (column 10, row 0) to its opposite colour.
        let u = 640.0 / 36.0;
        let (x0, x1) = ((12.0 * u) as usize + 2, (13.0 * u) as usize - 2);
        let (y0, y1) = (u as usize + 2, (2.0 * u) as usize - 2);
        let was = pic.y[(y0 + 3) * 640 + x0 + 3];
        for y in y0..y1 {
            pic.y[y * 640 + x0..y * 640 + x1].fill(if was > 128 { 16 } else { 235 });
        }
        assert_eq!(read_barcode(&pic.y, 640, 640, 480), None);
        assert_eq!(read_barcode(&pic.y, 640, 100, 480), None);
        assert_eq!(read_barcode(&pic.y[..1000], 640, 640, 480), None);
    }
}
