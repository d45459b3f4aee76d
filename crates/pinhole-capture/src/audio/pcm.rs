//! Raw s16le PCM from a byte stream: whole samples out of arbitrary reads,
//! fixed-size frames for the encoder, and a check that the bytes look like
//! sound at all (a pipe sending text, a WAV/Ogg file or noise says so,
//! instead of being encoded as a roar). Pure.

/// Collects interleaved s16le samples and hands out whole frames.
#[derive(Debug)]
pub struct Framer {
    /// Samples (all channels) per frame.
    frame_len: usize,
    pending: Vec<i16>,
    odd: Option<u8>,
}

impl Framer {
    pub fn new(frame_len: usize) -> Self {
        Framer {
            frame_len: frame_len.max(1),
            pending: Vec::with_capacity(frame_len * 2),
            odd: None,
        }
    }

    /// Adds bytes; returns the frames completed by them.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Vec<i16>> {
        if let (Some(lo), Some(&hi)) = (self.odd, bytes.first()) {
            self.pending.push(i16::from_le_bytes([lo, hi]));
            self.odd = None;
            bytes = &bytes[1..];
        }
        let mut chunks = bytes.chunks_exact(2);
        self.pending
            .extend(chunks.by_ref().map(|c| i16::from_le_bytes([c[0], c[1]])));
        if let [b] = chunks.remainder() {
            self.odd = Some(*b);
        }
        let mut out = Vec::new();
        while self.pending.len() >= self.frame_len {
            let rest = self.pending.split_off(self.frame_len);
            out.push(std::mem::replace(&mut self.pending, rest));
        }
        out
    }

    /// Samples waiting for the next frame.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// What a byte stream that is not raw PCM starts with.
pub fn container_magic(start: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 6] = [
        (b"RIFF", "a WAV file (RIFF header)"),
        (b"OggS", "an Ogg stream"),
        (b"ID3", "an MP3 file (ID3 tag)"),
        (b"fLaC", "a FLAC stream"),
        (b"\x1a\x45\xdf\xa3", "a Matroska/WebM stream"),
        (b"\x00\x00\x00\x01", "H.264 Annex B video"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| start.starts_with(m))
        .map(|(_, what)| *what)
}

/// Share of samples above half scale from which loud input is examined.
const LOUD_SHARE: f64 = 0.25;

/// `Err(reason)` if `samples` (about a second) do not look like audio:
/// loud, and either far off centre (text: its high bytes are letters, all
/// positive) or with no relation between neighbouring samples (noise: each
/// step as big as the signal, where any sampled sound moves in small steps).
pub fn check_plausible(samples: &[i16]) -> Result<(), String> {
    if samples.len() < 2 {
        return Ok(());
    }
    let n = samples.len() as f64;
    let loud = samples
        .iter()
        .filter(|s| s.unsigned_abs() >= 16_384)
        .count() as f64
        / n;
    if loud <= LOUD_SHARE {
        return Ok(());
    }
    let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let level = samples.iter().map(|&s| f64::from(s).abs()).sum::<f64>() / n;
    let step = samples
        .windows(2)
        .map(|w| (f64::from(w[1]) - f64::from(w[0])).abs())
        .sum::<f64>()
        / (n - 1.0);
    if mean.abs() > 8_192.0 {
        return Err(format!(
            "the samples sit far off zero (mean {mean:.0}): text or another format, not raw s16le PCM"
        ));
    }
    if step > 0.9 * level {
        return Err(format!(
            "{:.0} % of the samples are above half scale and neighbours are unrelated: noise, not raw s16le PCM",
            loud * 100.0
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_from_any_split_of_the_bytes() {
        let samples: Vec<i16> = (0..10).map(|i| i * 1000 - 3000).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for cut in 0..bytes.len() {
            let mut f = Framer::new(4);
            let mut got: Vec<Vec<i16>> = f.push(&bytes[..cut]);
            got.extend(f.push(&bytes[cut..]));
            assert_eq!(got, vec![samples[..4].to_vec(), samples[4..8].to_vec()]);
            assert_eq!(f.pending(), 2);
        }
    }

    #[test]
    fn garbage_is_told_apart_from_sound() {
        assert_eq!(
            container_magic(b"RIFF\x24\0\0\0WAVE"),
            Some("a WAV file (RIFF header)")
        );
        assert_eq!(container_magic(b"\x01\x02"), None);
        let text: Vec<i16> = b"hello world, this is text not audio at all!!"
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert!(check_plausible(&text).is_err());
        // Pseudo-random noise.
        let mut x: u32 = 12345;
        let noise: Vec<i16> = (0..48_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as i16
            })
            .collect();
        assert!(check_plausible(&noise).is_err());
        // A loud sine (-3 dBFS) and silence are sound.
        let sine: Vec<i16> = (0..48_000)
            .map(|i| (23_000.0 * (i as f64 * 0.0576).sin()) as i16)
            .collect();
        assert_eq!(check_plausible(&sine), Ok(()));
        assert_eq!(check_plausible(&[0; 960]), Ok(()));
    }
}
