//! RTP packets (RFC 3550) for H.264 (RFC 6184: single NAL unit packets and
//! FU-A fragments, non-interleaved mode) and for one-frame-per-packet
//! payloads such as Opus (RFC 7587).
//!
//! A packet is a small header plus a slice of the frame's shared `Bytes`
//! (no copy of the picture per viewer until the socket write).

use bytes::Bytes;

/// Payload bytes per packet: fits a 1500-byte Ethernet MTU with IP, UDP,
/// RTP and FU headers to spare.
pub const MAX_PAYLOAD: usize = 1400;

/// One RTP packet: `header` (12 bytes RTP, then 0–2 bytes FU-A indicator
/// and header) followed by `payload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    header: [u8; 14],
    header_len: u8,
    pub payload: Bytes,
}

impl Packet {
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes([self.header[2], self.header[3]])
    }
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ])
    }
    pub fn marker(&self) -> bool {
        self.header[1] & 0x80 != 0
    }
    /// The whole packet in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write_to(&mut v);
        v
    }
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.header());
        out.extend_from_slice(&self.payload);
    }
}

/// One RTP stream (one SSRC): its sequence numbers continue across
/// everything sent on it, keyframe skips and new stream generations
/// included, so a client only sees a gap where packets were really lost.
#[derive(Clone, Debug)]
pub struct Packetizer {
    pub ssrc: u32,
    pub payload_type: u8,
    seq: u16,
    packets: u32,
    octets: u32,
}

impl Packetizer {
    /// `first_seq` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, payload_type: u8, first_seq: u16) -> Packetizer {
        Packetizer {
            ssrc,
            payload_type,
            seq: first_seq,
            packets: 0,
            octets: 0,
        }
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Packets and payload octets sent so far (for sender reports; both wrap).
    pub fn counts(&self) -> (u32, u32) {
        (self.packets, self.octets)
    }

    /// The next packet's 12-byte RTP header; counts the packet and its
    /// `payload_len` octets (FU header included) as sent.
    fn rtp_header(&mut self, ts: u32, marker: bool, payload_len: usize) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = 0x80; // V=2, no padding, no extension, no CSRC
        h[1] = (u8::from(marker) << 7) | (self.payload_type & 0x7f);
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&ts.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        h
    }

    fn packet(&mut self, ts: u32, marker: bool, fu: Option<[u8; 2]>, payload: Bytes) -> Packet {
        let fu_len = if fu.is_some() { 2 } else { 0 };
        let mut header = [0u8; 14];
        header[..12].copy_from_slice(&self.rtp_header(ts, marker, payload.len() + fu_len));
        if let Some(fu) = fu {
            header[12..14].copy_from_slice(&fu);
        }
        Packet {
            header,
            header_len: 12 + fu_len as u8,
            payload,
        }
    }

    /// One packet carrying the whole frame (Opus: RFC 7587 §4.2).
    pub fn whole(&mut self, frame: Bytes, ts: u32, marker: bool) -> Packet {
        self.packet(ts, marker, None, frame)
    }

    /// An H.264 access unit (Annex B) as RTP packets: see [`h264_fragments`].
    pub fn h264(&mut self, annexb: &Bytes, ts: u32, out: &mut Vec<Packet>) {
        for f in h264_fragments(annexb) {
            out.push(self.packet(ts, f.last, f.fu, f.payload));
        }
    }

    /// This stream's headers for a frame's shared fragments, all with
    /// timestamp `ts`, appended to `out`: per fragment, with `interleaved`
    /// the 4-byte `$` block header of RTSP's TCP transport (RFC 2326
    /// §10.12), then the RTP header and the FU-A bytes, so that each
    /// header followed by its fragment's payload is one packet
    /// ([`Fragment::header_len`] says where each header ends).
    pub fn headers(
        &mut self,
        frags: &[Fragment],
        ts: u32,
        interleaved: Option<u8>,
        out: &mut Vec<u8>,
    ) {
        for f in frags {
            let fu_len = if f.fu.is_some() { 2 } else { 0 };
            let len = 12 + fu_len + f.payload.len();
            if let Some(ch) = interleaved {
                out.push(b'$');
                out.push(ch);
                // Fragments are at most MAX_PAYLOAD bytes, but a whole NAL
                // or Opus frame is whatever it is: saturate rather than lie
                // (a client then sees a short packet, never a desync).
                out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            }
            out.extend_from_slice(&self.rtp_header(ts, f.last, f.payload.len() + fu_len));
            if let Some(fu) = f.fu {
                out.extend_from_slice(&fu);
            }
        }
    }
}

/// One RTP payload of a frame, the same for every session that sends it
/// (only the RTP header differs: SSRC, sequence number, timestamp offset):
/// a whole NAL unit or one FU-A fragment, and whether it ends the access
/// unit (the marker bit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// FU indicator and FU header (RFC 6184 §5.8), for FU-A fragments.
    pub fu: Option<[u8; 2]>,
    pub payload: Bytes,
    pub last: bool,
}

impl Fragment {
    /// The whole frame as one payload (Opus).
    pub fn whole(payload: Bytes) -> Fragment {
        Fragment {
            fu: None,
            payload,
            last: false,
        }
    }

    /// Bytes [`Packetizer::headers`] writes before this fragment's payload.
    pub fn header_len(&self, interleaved: bool) -> usize {
        4 * usize::from(interleaved) + 12 + if self.fu.is_some() { 2 } else { 0 }
    }
}

/// An H.264 access unit (Annex B) as RTP payloads (RFC 6184 §5.1): NAL
/// units that fit go whole; larger ones as FU-A fragments; the last carries
/// the marker. Access unit delimiters and filler data are dropped (RFC 6184
/// leaves them optional; they only cost bytes). SPS/PPS stay in-band, so a
/// client gets new parameter sets with the keyframe that starts a new
/// stream generation. The payloads are slices of `annexb` (no copy): a
/// frame is split once and every session sends the same pieces.
pub fn h264_fragments(annexb: &Bytes) -> Vec<Fragment> {
    let nals: Vec<(usize, usize)> = nal_ranges(annexb)
        .into_iter()
        .filter(|&(s, e)| e > s && !matches!(annexb[s] & 0x1f, 9 | 12))
        .collect();
    let count = nals.len();
    let mut out = Vec::with_capacity(count + annexb.len() / (MAX_PAYLOAD - 2));
    for (i, (s, e)) in nals.into_iter().enumerate() {
        let last = i + 1 == count;
        let nal = annexb.slice(s..e);
        if nal.len() <= MAX_PAYLOAD {
            out.push(Fragment {
                fu: None,
                payload: nal,
                last,
            });
            continue;
        }
        let hdr = nal[0];
        let indicator = (hdr & 0xe0) | 28; // F and NRI kept, type FU-A
        let nal_type = hdr & 0x1f;
        let body = nal.slice(1..);
        let chunk = MAX_PAYLOAD - 2;
        let mut off = 0;
        while off < body.len() {
            let end = (off + chunk).min(body.len());
            let start_bit = if off == 0 { 0x80 } else { 0 };
            let end_bit = if end == body.len() { 0x40 } else { 0 };
            out.push(Fragment {
                fu: Some([indicator, start_bit | end_bit | nal_type]),
                payload: body.slice(off..end),
                last: last && end == body.len(),
            });
            off = end;
        }
    }
    out
}

/// (start, end) of each NAL unit's bytes (header byte first, start codes
/// and trailing zeros excluded) in Annex B data.
pub fn nal_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    let mut starts = Vec::new(); // (start code position, payload start)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(_, begin)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&(sc, _)| sc);
        while end > begin && data[end - 1] == 0 {
            end -= 1;
        }
        if end > begin {
            out.push((begin, end));
        }
    }
    out
}

/// A capture time (µs on the capture clock) as a 90 kHz RTP timestamp
/// plus a per-stream random offset (RFC 3550 §5.1).
pub fn video_ts(pts_us: u64, offset: u32) -> u32 {
    let ticks = (u128::from(pts_us) * 90_000 / 1_000_000) as u64;
    (ticks as u32).wrapping_add(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(nals: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    #[test]
    fn small_nals_go_whole_marker_on_the_last() {
        let sps = [0x67, 0x42, 0xc0, 0x1f];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let aud = [0x09, 0xf0];
        let idr = [0x65, 1, 2, 3, 0];
        let data = au(&[&aud, &sps, &pps, &idr]);
        let mut p = Packetizer::new(0x1234_5678, 96, 65534);
        let mut out = Vec::new();
        p.h264(&data, 9000, &mut out);
        assert_eq!(out.len(), 3, "AUD dropped");
        assert_eq!(&out[0].payload[..], &sps);
        assert_eq!(
            &out[2].payload[..],
            &idr[..4],
            "trailing zero is not part of the NAL"
        );
        assert_eq!(
            out.iter().map(|p| p.seq()).collect::<Vec<_>>(),
            [65534, 65535, 0]
        );
        assert_eq!(
            out.iter().map(|p| p.marker()).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(out.iter().all(|p| p.timestamp() == 9000));
        let h = out[0].header();
        assert_eq!(h[0], 0x80);
        assert_eq!(h[1], 96);
        assert_eq!(&h[8..12], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(p.counts(), (3, 4 + 4 + 4));
    }

    #[test]
    fn large_nals_become_fu_a_that_reassemble() {
        let mut idr = vec![0x65];
        idr.extend((0..5000u32).map(|i| (i % 251) as u8 + 1));
        let data = au(&[&[0x06, 5, 1, 0x80], &idr]);
        let mut p = Packetizer::new(1, 96, 10);
        let mut out = Vec::new();
        p.h264(&data, 1, &mut out);
        assert_eq!(out[0].payload.len(), 4, "SEI whole");
        let frags = &out[1..];
        assert_eq!(frags.len(), 4); // 5000 bytes in 1398-byte pieces
        let mut re = vec![0u8];
        for (i, f) in frags.iter().enumerate() {
            let h = f.header();
            assert_eq!(h.len(), 14);
            assert_eq!(h[12], 0x60 | 28, "FU indicator keeps NRI");
            assert_eq!(h[13] & 0x80 != 0, i == 0, "start bit");
            assert_eq!(h[13] & 0x40 != 0, i == frags.len() - 1, "end bit");
            assert_eq!(h[13] & 0x1f, 5);
            assert_eq!(f.marker(), i == frags.len() - 1);
            assert!(f.len() <= MAX_PAYLOAD + 12);
            re.extend_from_slice(&f.payload);
        }
        re[0] = (frags[0].header()[12] & 0xe0) | (frags[0].header()[13] & 0x1f);
        assert_eq!(re, idr);
        let seqs: Vec<u16> = out.iter().map(|p| p.seq()).collect();
        assert_eq!(seqs, (10..15).collect::<Vec<_>>());
    }

    #[test]
    fn shared_fragments_with_per_session_headers_are_the_same_packets() {
        let mut idr = vec![0x65];
        idr.extend((0..3000u32).map(|i| (i % 251) as u8 + 1));
        let data = au(&[&[0x09, 0xf0], &[0x67, 0x42], &[0x68, 0xce], &idr]);
        let mut a = Packetizer::new(7, 96, 65530);
        let mut want = Vec::new();
        a.h264(&data, 42, &mut want);
        let frags = h264_fragments(&data);
        let mut b = Packetizer::new(7, 96, 65530);
        let mut heads = Vec::new();
        b.headers(&frags, 42, Some(2), &mut heads);
        // Header, payload, header, payload…: the interleaved stream.
        let mut off = 0;
        for (f, p) in frags.iter().zip(&want) {
            let h = &heads[off..off + f.header_len(true)];
            off += f.header_len(true);
            assert_eq!(&h[..2], b"$\x02");
            assert_eq!(usize::from(u16::from_be_bytes([h[2], h[3]])), p.len());
            assert_eq!(&h[4..], p.header());
            assert_eq!(f.payload, p.payload);
        }
        assert_eq!(off, heads.len());
        assert_eq!(frags.len(), want.len());
        assert_eq!(a.counts(), b.counts());
        assert_eq!(a.next_seq(), b.next_seq());
        let mut plain = Vec::new();
        Packetizer::new(7, 96, 1).headers(&frags[..1], 0, None, &mut plain);
        assert_eq!(plain.len(), frags[0].header_len(false));
    }

    #[test]
    fn three_and_four_byte_start_codes() {
        let d = [0, 0, 1, 0x41, 9, 0, 0, 0, 1, 0x41, 8, 0, 0, 1, 0x41];
        assert_eq!(nal_ranges(&d), vec![(3, 5), (9, 11), (14, 15)]);
        assert!(nal_ranges(&[0, 0, 0, 0]).is_empty());
    }

    #[test]
    fn ninety_khz_from_microseconds() {
        assert_eq!(video_ts(1_000_000, 0), 90_000);
        assert_eq!(video_ts(33_333, 0), 2_999);
        assert_eq!(video_ts(0, u32::MAX), u32::MAX);
        assert_eq!(video_ts(1_000_000, u32::MAX), 89_999, "wraps");
    }
}
