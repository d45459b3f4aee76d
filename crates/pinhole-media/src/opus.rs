//! Opus audio as a track: its decoder configuration (the fields of the Ogg
//! `OpusHead`, RFC 7845 §5.1, which the MP4 `dOps` box repeats), the duration
//! of a packet from its TOC byte (RFC 6716 §3.1), and a small Ogg reader for
//! fixtures and audio pipes that deliver `.opus` files.

use bytes::Bytes;

use crate::error::MediaError;

/// Opus always decodes at 48 kHz; durations and the MP4 timescale use it.
pub const SAMPLE_RATE: u32 = 48_000;

/// What an Opus decoder needs before the first packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusConfig {
    /// 1 or 2 (channel mapping family 0).
    pub channels: u8,
    /// Samples (at 48 kHz) to drop at the start of decoding.
    pub pre_skip: u16,
    /// The sample rate of the source before encoding (informational).
    pub input_sample_rate: u32,
}

impl OpusConfig {
    /// RFC 6381 / WebCodecs codec string.
    pub const CODEC: &'static str = "opus";
}

/// Samples (at 48 kHz) in one Opus packet, from its TOC byte and, for code 3
/// packets, the frame count byte. `None` for an empty or malformed packet.
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples per configuration range (RFC 6716 Table 2).
    let frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = frame * frames;
    // At most 120 ms per packet (§3.2.5); zero frames is malformed.
    (frames > 0 && total <= 5_760).then_some(total)
}

/// An Ogg Opus stream (`.opus` file): its configuration and audio packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OggOpus {
    pub config: OpusConfig,
    pub packets: Vec<Bytes>,
}

/// Reads a whole Ogg Opus stream with one logical bitstream (what
/// `ffmpeg -c:a libopus x.opus` writes). Page CRCs are not checked.
pub fn read_ogg(data: &[u8]) -> Result<OggOpus, MediaError> {
    let err = |offset: usize, reason| MediaError::Ogg {
        offset: offset as u64,
        reason,
    };
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data
            .get(pos..pos + 27)
            .ok_or(err(pos, "truncated page header"))?;
        if &header[..4] != b"OggS" || header[4] != 0 {
            return Err(err(pos, "no OggS page (version 0) here"));
        }
        let nsegs = usize::from(header[26]);
        let table = data
            .get(pos + 27..pos + 27 + nsegs)
            .ok_or(err(pos, "truncated segment table"))?;
        let mut body = pos + 27 + nsegs;
        for &lace in table {
            let seg = data
                .get(body..body + usize::from(lace))
                .ok_or(err(body, "truncated page body"))?;
            current.extend_from_slice(seg);
            body += usize::from(lace);
            // A lacing value below 255 ends the packet.
            if lace < 255 {
                packets.push(Bytes::from(std::mem::take(&mut current)));
            }
        }
        pos = body;
    }
    let mut it = packets.into_iter();
    let head = it.next().ok_or(err(0, "no OpusHead packet"))?;
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err(err(0, "the first packet is not an OpusHead"));
    }
    if head[9] == 0 || head[9] > 2 || head[18] != 0 {
        return Err(err(
            0,
            "only mono or stereo (mapping family 0) is supported",
        ));
    }
    let config = OpusConfig {
        channels: head[9],
        pre_skip: u16::from_le_bytes([head[10], head[11]]),
        input_sample_rate: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
    };
    match it.next() {
        Some(tags) if tags.starts_with(b"OpusTags") => {}
        _ => return Err(err(0, "the second packet is not OpusTags")),
    }
    Ok(OggOpus {
        config,
        packets: it.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENCE: &[u8] = include_bytes!("../testdata/opus_silence_mono_48k_20ms.opus");

    #[test]
    fn reads_the_ffmpeg_fixture() {
        let ogg = read_ogg(SILENCE).unwrap();
        assert_eq!(
            ogg.config,
            OpusConfig {
                channels: 1,
                pre_skip: 120,
                input_sample_rate: 48_000
            }
        );
        // 2 s of 20 ms packets (libopus adds one for its look-ahead).
        assert!(
            (100..=102).contains(&ogg.packets.len()),
            "{}",
            ogg.packets.len()
        );
        for p in &ogg.packets {
            assert_eq!(packet_samples(p), Some(960));
        }
    }

    #[test]
    fn toc_durations() {
        // CELT 20 ms, one frame; SILK 60 ms; hybrid 10 ms two frames;
        // code 3 with 3 frames of 2.5 ms.
        assert_eq!(packet_samples(&[31 << 3]), Some(960));
        assert_eq!(packet_samples(&[3 << 3]), Some(2880));
        assert_eq!(packet_samples(&[(12 << 3) | 1]), Some(960));
        assert_eq!(packet_samples(&[(16 << 3) | 3, 3]), Some(360));
        // Malformed: empty, code 3 without count, zero frames, over 120 ms.
        assert_eq!(packet_samples(&[]), None);
        assert_eq!(packet_samples(&[3]), None);
        assert_eq!(packet_samples(&[3, 0]), None);
        assert_eq!(packet_samples(&[(3 << 3) | 3, 3]), None);
    }

    #[test]
    fn bad_ogg_is_an_error_not_a_panic() {
        assert!(read_ogg(b"").is_err());
        assert!(read_ogg(b"OggS").is_err());
        assert!(read_ogg(&SILENCE[..40]).is_err());
        let mut bad = SILENCE.to_vec();
        bad[0] = b'X';
        assert!(read_ogg(&bad).is_err());
        for cut in [27, 28, 100, 300] {
            let _ = read_ogg(&SILENCE[..cut]);
        }
    }
}
