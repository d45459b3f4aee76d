//! The test tone: a quiet 440 Hz sine with a loud 2 ms click at every whole
//! second of the capture clock, the instant the test pattern flashes its
//! marker frame, so A/V sync can be measured by a machine (docs/audio.md).
//! Pure: sample `n` is `n / rate` seconds of the capture clock.

use std::f64::consts::TAU;

/// Tone frequency (Hz).
pub const TONE_HZ: f64 = 440.0;
/// Tone amplitude: about -26 dBFS, quiet beside the click.
pub const TONE_AMPLITUDE: f64 = 0.05;
/// Click amplitude: a square burst, far above the tone.
pub const CLICK_AMPLITUDE: f64 = 0.7;
/// Click length in milliseconds.
pub const CLICK_MS: u64 = 2;

/// Fills `out` (interleaved, `channels` per sample) with the tone starting
/// at absolute sample `first` of a `rate` Hz capture-clock timeline.
pub fn fill(rate: u32, channels: usize, first: u64, out: &mut [i16]) {
    let rate64 = u64::from(rate);
    let click_len = rate64 * CLICK_MS / 1000;
    // A 2 kHz square burst: sharp onset, survives Opus as a clear transient.
    let half_period = (rate64 / 4000).max(1);
    for (i, frame) in out.chunks_exact_mut(channels.max(1)).enumerate() {
        let n = first + i as u64;
        let in_second = n % rate64;
        let v = if in_second < click_len {
            if (in_second / half_period).is_multiple_of(2) {
                CLICK_AMPLITUDE
            } else {
                -CLICK_AMPLITUDE
            }
        } else {
            // Phase from the sample index within the second: no float drift.
            TONE_AMPLITUDE * (TAU * TONE_HZ * in_second as f64 / rate as f64).sin()
        };
        let s = (v * f64::from(i16::MAX)) as i16;
        frame.fill(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_at_whole_seconds_only() {
        let rate = 48_000;
        let mut buf = vec![0i16; 2 * rate as usize];
        // Starts half a second before second 10.
        let first = 10 * u64::from(rate) - 24_000;
        fill(rate, 1, first, &mut buf);
        let loud: Vec<usize> = (0..buf.len())
            .filter(|&i| buf[i].unsigned_abs() > 10_000)
            .collect();
        let first_loud = loud.first().copied();
        assert_eq!(first_loud, Some(24_000), "click starts at second 10");
        assert!(loud
            .iter()
            .all(|&i| (24_000..24_096).contains(&i) || (72_000..72_096).contains(&i)));
        assert!(loud.iter().any(|&i| i >= 72_000), "and at second 11");
        // Stereo: both channels alike.
        let mut st = vec![0i16; 20];
        fill(rate, 2, 5, &mut st);
        assert!(st.chunks(2).all(|c| c[0] == c[1]));
    }
}
