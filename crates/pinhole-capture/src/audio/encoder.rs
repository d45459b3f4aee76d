//! Opus encoding (libopus through the `opus` crate): 20 ms frames in the
//! restricted low-delay mode (CELT only, 2.5 ms look-ahead).

use opus::{Application, Bitrate, Channels};

use crate::CaptureError;

pub struct OpusEncoder {
    enc: opus::Encoder,
    out: Vec<u8>,
    /// Input samples (per channel) the encoder delays its output by.
    lookahead: u32,
}

fn err(context: &'static str) -> impl Fn(opus::Error) -> CaptureError {
    move |e| CaptureError::AudioEncoder {
        context,
        reason: e.to_string(),
    }
}

impl OpusEncoder {
    pub fn new(rate: u32, channels: u8, bitrate: u32) -> Result<Self, CaptureError> {
        let ch = if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        let mut enc =
            opus::Encoder::new(rate, ch, Application::LowDelay).map_err(err("creating"))?;
        enc.set_bitrate(Bitrate::Bits(bitrate as i32))
            .map_err(err("setting the bitrate"))?;
        let lookahead = enc.get_lookahead().map_err(err("reading the look-ahead"))?;
        Ok(OpusEncoder {
            enc,
            // The largest packet libopus produces (RFC 6716 §3.2.1 bound).
            out: vec![0; 1275 * 3],
            lookahead: lookahead.max(0) as u32,
        })
    }

    pub fn lookahead(&self) -> u32 {
        self.lookahead
    }

    /// One frame of interleaved samples to one Opus packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, CaptureError> {
        let n = self
            .enc
            .encode(pcm, &mut self.out)
            .map_err(err("encoding a frame"))?;
        Ok(self.out[..n].to_vec())
    }
}
