//! ICE-TCP framing (RFC 4571, as RFC 6544 uses it): every STUN, DTLS,
//! RTP or RTCP packet on a TCP connection is a 16-bit big-endian length and
//! the packet. Pure: bytes in, packets out; the endpoint does the I/O.

/// Bytes a connection may hold unframed: one maximal frame plus its length.
const MAX_BUFFER: usize = 2 + u16::MAX as usize;

/// Splits a TCP byte stream into packets.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        debug_assert!(self.buf.len() <= MAX_BUFFER + data.len());
    }

    /// The next whole packet, if one has arrived. Empty frames are skipped.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.buf.len() < 2 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
            if self.buf.len() < 2 + len {
                return None;
            }
            let packet = self.buf[2..2 + len].to_vec();
            self.buf.drain(..2 + len);
            if !packet.is_empty() {
                return Some(packet);
            }
        }
    }

    /// How many bytes to read at most before calling [`Self::next_packet`]
    /// again: a frame can never need more than `MAX_BUFFER`.
    pub fn room(&self) -> usize {
        MAX_BUFFER.saturating_sub(self.buf.len()).max(1)
    }
}

/// One packet framed for the connection; `None` if it cannot be (> 65535
/// bytes: never for what str0m sends, which stays under the MTU).
pub fn frame(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok()?;
    let mut out = Vec::with_capacity(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_and_within_reads_come_out_whole() {
        let a = frame(b"hello").unwrap();
        let b = frame(&[7u8; 1300]).unwrap();
        let mut stream = a.clone();
        stream.extend_from_slice(&[0, 0]); // an empty frame: skipped
        stream.extend_from_slice(&b);
        let mut d = Deframer::default();
        let mut out = Vec::new();
        // One byte at a time, the worst a TCP read can do.
        for byte in &stream {
            d.push(&[*byte]);
            while let Some(p) = d.next_packet() {
                out.push(p);
            }
        }
        assert_eq!(out, vec![b"hello".to_vec(), vec![7u8; 1300]]);
        assert!(d.next_packet().is_none());
        assert!(frame(&vec![0u8; 70_000]).is_none());
    }

    #[test]
    fn a_partial_frame_waits_and_room_never_exceeds_one_frame() {
        let mut d = Deframer::default();
        d.push(&[0xff, 0xff, 1, 2, 3]);
        assert!(d.next_packet().is_none());
        assert_eq!(d.room(), MAX_BUFFER - 5);
        d.push(&vec![9u8; 65535 - 3]);
        let p = d.next_packet().unwrap();
        assert_eq!(p.len(), 65535);
        assert_eq!(d.room(), MAX_BUFFER);
    }
}
