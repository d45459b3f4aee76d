//! MPEG-TS (ISO/IEC 13818-1) for SRT push: one program, H.264 video on
//! one PID, PAT and PMT before every keyframe (a receiver that joins or
//! reconnects starts there), a PCR in every picture's first packet; and,
//! when the stream has sound, Opus on a second PID as ffmpeg muxes it
//! (ETSI TS 102 366's Opus-in-TS: stream type 0x06 with the registration
//! descriptor `Opus` and the DVB extension descriptor 0x80 giving the
//! channels; every access unit behind the 0x7fe0 control header with its
//! size; private_stream_1 PES).
//!
//! Pure: access units in, 188-byte packets out.

use pinhole_media::annexb::{nal_type, nal_unit_type, nal_units};

pub const PACKET: usize = 188;
const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x0100;
pub const AUDIO_PID: u16 = 0x0101;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_PRIVATE: u8 = 0x06;
/// PTS start (1.4 s) and PCR lead (0.7 s, as ffmpeg's default mux delay):
/// the PCR must run ahead of the PTS it announces, and neither may wrap
/// below zero.
const PTS_BASE: u64 = 126_000;
const PCR_LEAD: u64 = 63_000;
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

/// Turns the hub's access units into TS packets for one session; nothing
/// until the first keyframe.
#[derive(Debug, Default)]
pub struct TsMuxer {
    origin_us: Option<u64>,
    cc: [u8; 4], // PAT, PMT, video, audio
    /// Opus channels (1 or 2) when the program carries sound.
    audio: Option<u8>,
    /// Samples to trim from the first packet (Opus pre-skip), until sent.
    trim_start: u16,
    /// The PMT's version: bumped when sound joins mid-session.
    version: u8,
    /// A PMT listing the sound went out (no audio PES before it).
    pmt_sent_audio: bool,
}

impl TsMuxer {
    /// A muxer for video and Opus with `channels` (1 or 2) and the
    /// encoder's `pre_skip` (48 kHz samples), trimmed from the first
    /// packet as the Ogg header would.
    pub fn with_opus(channels: u8, pre_skip: u16) -> TsMuxer {
        TsMuxer {
            audio: Some(channels.clamp(1, 2)),
            trim_start: pre_skip,
            ..TsMuxer::default()
        }
    }

    /// Sound joined after the session started: the PMT lists it from the
    /// next keyframe on, with a new version number (receivers re-read it).
    pub fn enable_opus(&mut self, channels: u8, pre_skip: u16) {
        if self.audio.is_none() {
            self.audio = Some(channels.clamp(1, 2));
            self.trim_start = pre_skip;
            self.version = (self.version + 1) & 0x1f;
        }
    }

    /// Whether the program carries sound.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Appends the packets for one Opus packet; nothing before the first
    /// picture (the program starts on a keyframe) or without sound in the
    /// program.
    pub fn audio(&mut self, pts_us: u64, packet: &[u8], out: &mut Vec<u8>) {
        let (Some(origin), Some(_), true) = (self.origin_us, self.audio, self.pmt_sent_audio)
        else {
            return;
        };
        if pts_us < origin || packet.is_empty() {
            return;
        }
        let pts = (PTS_BASE + (pts_us - origin) * 9 / 100) & ((1 << 33) - 1);
        let mut au = Vec::with_capacity(packet.len() + 8);
        au.push(0x7f);
        let trim = std::mem::take(&mut self.trim_start);
        au.push(0xe0 | if trim > 0 { 0x10 } else { 0 });
        // au_size: 0xff while 255 or more is left, then the rest.
        let mut n = packet.len();
        while n >= 255 {
            au.push(0xff);
            n -= 255;
        }
        au.push(n as u8);
        if trim > 0 {
            au.extend_from_slice(&trim.to_be_bytes());
        }
        au.extend_from_slice(packet);
        let pes = pes(0xbd, pts, &au);
        self.packetize(AUDIO_PID, &pes, None, out);
    }

    /// Appends the packets for one access unit to `out` (none before the
    /// first keyframe); `pts_us` on the capture clock.
    pub fn frame(&mut self, pts_us: u64, keyframe: bool, annexb: &[u8], out: &mut Vec<u8>) {
        if self.origin_us.is_none() {
            if !keyframe {
                return;
            }
            self.origin_us = Some(pts_us);
        }
        let origin = self.origin_us.unwrap_or(pts_us);
        // 90 kHz; 33 bits wrap after 26 h, which the receiver expects.
        let pts = (PTS_BASE + pts_us.saturating_sub(origin) * 9 / 100) & ((1 << 33) - 1);
        if keyframe {
            self.psi(0, &pat(), out);
            self.psi(PMT_PID, &pmt(self.audio, self.version), out);
            self.pmt_sent_audio = self.audio.is_some();
        }
        // Each access unit starts with an access unit delimiter in TS
        // (13818-1 2.14.1); the hub's start without one.
        let has_aud = nal_units(annexb)
            .next()
            .is_some_and(|n| nal_unit_type(n) == Some(nal_type::AUD));
        let mut es = Vec::with_capacity(annexb.len() + 6);
        if !has_aud {
            es.extend_from_slice(&AUD);
        }
        es.extend_from_slice(annexb);
        let pes = pes(0xe0, pts, &es);
        let pcr = pts.wrapping_sub(PCR_LEAD) & ((1 << 33) - 1);
        self.packetize(VIDEO_PID, &pes, Some((pcr, keyframe)), out);
    }

    fn psi(&mut self, pid: u16, section: &[u8], out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(section.len() + 1);
        payload.push(0); // pointer_field
        payload.extend_from_slice(section);
        self.packetize(pid, &payload, None, out);
    }

    /// Splits a PES packet or PSI section into TS packets; the first gets
    /// the PCR (and the random-access flag on keyframes). The last is
    /// padded with adaptation-field stuffing, never with payload bytes.
    fn packetize(
        &mut self,
        pid: u16,
        mut data: &[u8],
        pcr: Option<(u64, bool)>,
        out: &mut Vec<u8>,
    ) {
        let cc_slot = match pid {
            0 => 0,
            PMT_PID => 1,
            VIDEO_PID => 2,
            _ => 3,
        };
        let mut first = true;
        while !data.is_empty() {
            let start = out.len();
            out.extend_from_slice(&[0x47, 0, 0, 0]);
            let pusi = if first { 0x40 } else { 0 };
            out[start + 1] = pusi | ((pid >> 8) as u8 & 0x1f);
            out[start + 2] = pid as u8;
            let cc = self.cc[cc_slot];
            self.cc[cc_slot] = (cc + 1) & 0x0f;
            // Adaptation field: the PCR on the first packet, then stuffing.
            let mut af = Vec::new();
            if let (true, Some((pcr, random_access))) = (first, pcr) {
                let flags = 0x10 | if random_access { 0x40 } else { 0 };
                af.push(flags);
                // 33-bit base, 6 reserved bits, 9-bit extension (0).
                af.extend_from_slice(&[
                    (pcr >> 25) as u8,
                    (pcr >> 17) as u8,
                    (pcr >> 9) as u8,
                    (pcr >> 1) as u8,
                    ((pcr & 1) << 7) as u8 | 0x7e,
                    0,
                ]);
            }
            let room = |af: &Vec<u8>| PACKET - 4 - if af.is_empty() { 0 } else { 1 + af.len() };
            if data.len() < room(&af) {
                // Stuff: an adaptation field of exactly the missing length.
                let need = PACKET - 4 - data.len(); // bytes for length + field
                if af.is_empty() && need >= 2 {
                    af.push(0); // no flags
                }
                while 1 + af.len() < need {
                    af.push(0xff);
                }
            }
            let has_af = !af.is_empty() || data.len() == PACKET - 5;
            let afc = if has_af { 0x30 } else { 0x10 };
            out[start + 3] = afc | cc;
            if has_af {
                out.push(af.len() as u8);
                out.extend_from_slice(&af);
            }
            let n = (PACKET - (out.len() - start)).min(data.len());
            out.extend_from_slice(&data[..n]);
            data = &data[n..];
            first = false;
        }
    }
}

fn pat() -> Vec<u8> {
    let mut s = vec![
        0x00, // table_id
        0xb0,
        0x0d, // section_syntax_indicator, length 13
        0x00,
        0x01, // transport_stream_id
        0xc1, // version 0, current
        0x00,
        0x00, // section numbers
        0x00,
        0x01, // program 1
        0xe0 | (PMT_PID >> 8) as u8,
        PMT_PID as u8,
    ];
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn pmt(audio: Option<u8>, version: u8) -> Vec<u8> {
    let mut s = vec![
        0x02, // table_id
        0xb0,
        0x12, // length 18 (video only; set below)
        0x00,
        0x01,                  // program_number
        0xc1 | (version << 1), // version, current
        0x00,
        0x00,
        0xe0 | (VIDEO_PID >> 8) as u8, // PCR PID
        VIDEO_PID as u8,
        0xf0,
        0x00, // program_info_length 0
        STREAM_TYPE_H264,
        0xe0 | (VIDEO_PID >> 8) as u8,
        VIDEO_PID as u8,
        0xf0,
        0x00, // ES_info_length 0
    ];
    if let Some(channels) = audio {
        s.extend_from_slice(&[
            STREAM_TYPE_PRIVATE,
            0xe0 | (AUDIO_PID >> 8) as u8,
            AUDIO_PID as u8,
            0xf0,
            10,   // ES_info_length
            0x05, // registration descriptor
            4,
            b'O',
            b'p',
            b'u',
            b's',
            0x7f, // DVB extension descriptor
            2,
            0x80,     // Opus audio descriptor
            channels, // channel_config_code: 1 or 2 (mapping family 0)
        ]);
    }
    // section_length: from after the length field, CRC included.
    s[2] = (s.len() - 3 + 4) as u8;
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// A PES packet with a PTS (no B-frames: DTS = PTS is implied). Video may
/// leave the length 0 (unbounded); audio PES are short and say it.
fn pes(stream_id: u8, pts: u64, es: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(es.len() + 14);
    let len = if stream_id == 0xe0 {
        0
    } else {
        u16::try_from(es.len() + 8).unwrap_or(0)
    };
    p.extend_from_slice(&[0, 0, 1, stream_id]);
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0x80, 0x80, 5]);
    p.extend_from_slice(&[
        0x21 | ((pts >> 29) as u8 & 0x0e),
        (pts >> 22) as u8,
        0x01 | ((pts >> 14) as u8 & 0xfe),
        (pts >> 7) as u8,
        0x01 | ((pts << 1) as u8 & 0xfe),
    ]);
    p.extend_from_slice(es);
    p
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, not reflected, no final xor).
fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDR: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88,
    ];

    fn packets(out: &[u8]) -> Vec<&[u8]> {
        assert_eq!(out.len() % PACKET, 0);
        out.chunks(PACKET).collect()
    }
    fn payload(p: &[u8]) -> &[u8] {
        &p[if p[3] & 0x20 != 0 {
            5 + usize::from(p[4])
        } else {
            4
        }..]
    }
    fn pid(p: &[u8]) -> u16 {
        u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])
    }

    #[test]
    fn crc_of_the_standard_check_string() {
        // CRC-32/MPEG-2 check value.
        assert_eq!(crc32_mpeg(b"123456789"), 0x0376_e6e7);
        // A section followed by its CRC leaves a zero remainder.
        assert_eq!(crc32_mpeg(&pat()), 0);
        assert_eq!(crc32_mpeg(&pmt(None, 0)), 0);
        assert_eq!(crc32_mpeg(&pmt(Some(2), 3)), 0);
        assert_eq!(pmt(None, 0)[2], 0x12, "the video-only PMT as before");
    }

    #[test]
    fn keyframe_first_with_tables_pcr_and_aud() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.frame(1_000_000, false, &[0, 0, 1, 0x41, 0x9a], &mut out);
        assert!(out.is_empty(), "nothing before a keyframe");
        m.frame(1_033_333, true, IDR, &mut out);
        let p = packets(&out);
        assert_eq!(
            p.iter().map(|p| pid(p)).collect::<Vec<_>>(),
            vec![0, PMT_PID, VIDEO_PID]
        );
        assert!(p.iter().all(|p| p[0] == 0x47 && p[1] & 0x40 != 0));
        let v = p[2];
        // Adaptation field with PCR and random access, then the PES.
        assert_eq!(v[3] & 0x30, 0x30);
        assert_eq!(v[5] & 0x50, 0x50);
        let pcr = (u64::from(v[6]) << 25)
            | (u64::from(v[7]) << 17)
            | (u64::from(v[8]) << 9)
            | (u64::from(v[9]) << 1)
            | u64::from(v[10] >> 7);
        assert_eq!(pcr, PTS_BASE - PCR_LEAD);
        let pes = &v[5 + usize::from(v[4])..];
        assert_eq!(&pes[..4], &[0, 0, 1, 0xe0]);
        assert_eq!(&pes[14..20], &AUD, "an AUD first");
        assert_eq!(&pes[20..20 + IDR.len()], IDR);

        // The next picture: video only, PTS 3003 ticks later, CC advanced.
        let mut out2 = Vec::new();
        m.frame(1_066_666, false, &[0, 0, 1, 0x41, 0x9a], &mut out2);
        let p2 = packets(&out2);
        assert_eq!(p2.len(), 1);
        assert_eq!(p2[0][3] & 0x0f, 1);
        let pes = &p2[0][5 + usize::from(p2[0][4])..];
        let pts = (u64::from(pes[9] & 0x0e) << 29)
            | (u64::from(pes[10]) << 22)
            | (u64::from(pes[11] & 0xfe) << 14)
            | (u64::from(pes[12]) << 7)
            | u64::from(pes[13] >> 1);
        assert_eq!(pts, PTS_BASE + 2999);
    }

    #[test]
    fn big_pictures_split_and_every_length_fills_whole_packets() {
        for len in [
            1usize, 150, 160, 161, 162, 163, 170, 183, 184, 185, 367, 368, 369, 5000,
        ] {
            let mut au = vec![0, 0, 1, 0x41];
            au.resize(len + 4, 0x5a);
            let mut m = TsMuxer::default();
            let mut out = Vec::new();
            m.frame(0, true, &au, &mut out);
            let p = packets(&out);
            // Reassemble the video payload and find the whole PES in it.
            let mut pes = Vec::new();
            let mut cc = None;
            for p in p.iter().filter(|p| pid(p) == VIDEO_PID) {
                let c = p[3] & 0x0f;
                if let Some(prev) = cc {
                    assert_eq!(c, (prev + 1) & 0x0f, "continuity");
                }
                cc = Some(c);
                let off = if p[3] & 0x20 != 0 {
                    5 + usize::from(p[4])
                } else {
                    4
                };
                assert!(off <= PACKET, "len {len}");
                pes.extend_from_slice(&p[off..]);
            }
            assert_eq!(pes.len(), 14 + AUD.len() + au.len(), "len {len}");
            assert_eq!(&pes[14 + AUD.len()..], &au[..], "len {len}");
        }
    }

    #[test]
    fn opus_after_the_first_picture_with_control_header_and_descriptors() {
        let mut m = TsMuxer::with_opus(1, 312);
        let mut out = Vec::new();
        m.audio(900_000, &[0xf8, 0xff, 0xfe], &mut out);
        assert!(out.is_empty(), "no sound before the first picture");
        m.frame(1_000_000, true, IDR, &mut out);
        let pmt_pkt = packets(&out)[1];
        let sec = &payload(pmt_pkt)[1..]; // after the pointer field
        let len = usize::from(sec[2]) + 3;
        assert_eq!(crc32_mpeg(&sec[..len]), 0);
        let es = &sec[17..len - 4];
        assert_eq!(&es[..5], &[0x06, 0xe1, 0x01, 0xf0, 10]);
        assert_eq!(&es[5..], &[5, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80, 1]);

        let mut a = Vec::new();
        m.audio(1_020_000, &[0xf8, 0xff, 0xfe], &mut a);
        let p = packets(&a);
        assert_eq!((p.len(), pid(p[0])), (1, AUDIO_PID));
        let pes = payload(p[0]);
        assert_eq!(&pes[..4], &[0, 0, 1, 0xbd]);
        // PES length: 3 + 5 (header) + the access unit (2 + 1 + 2 + 3).
        assert_eq!(u16::from_be_bytes([pes[4], pes[5]]), 16);
        assert_eq!(&pes[14..], &[0x7f, 0xf0, 3, 0x01, 0x38, 0xf8, 0xff, 0xfe]);
        // Only the first packet trims; sizes of 255 and more take 0xff bytes.
        let mut b = Vec::new();
        m.audio(1_040_000, &[0x55; 300], &mut b);
        let p = packets(&b);
        assert_eq!(&payload(p[0])[14..18], &[0x7f, 0xe0, 0xff, 45]);
        assert_eq!(p[0][3] & 0x0f, 1, "the audio PID's own continuity");
        m.audio(999_999, &[1], &mut b);
        assert_eq!(b.len(), 2 * PACKET, "sound before the origin is dropped");
    }
}
