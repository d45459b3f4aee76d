//! The RTMP chunk stream: messages cut into chunks (writer) and chunks put
//! back together into messages (reader). Pure: bytes in, messages out.
//! The reader eats the server's bytes, so it bounds everything it keeps:
//! message size, chunk streams, chunk size.

use std::collections::HashMap;

use crate::PushError;

/// One RTMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub type_id: u8,
    pub stream_id: u32,
    /// Milliseconds (RTMP's 32-bit timestamp, wrapping).
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// Message types a publisher meets.
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
}

/// Chunk size every RTMP peer starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// A message from the server larger than this is refused (servers send a
/// publisher only small control and command messages).
pub const MAX_INBOUND_MESSAGE: usize = 1 << 20;
/// Chunk streams the server may have open at once.
const MAX_CHUNK_STREAMS: usize = 64;
const EXTENDED: u32 = 0x00ff_ffff;

/// Writes messages as chunks. Every message starts with a type-0 header
/// (11 bytes; simple, and what a publisher's chunk rate makes cheap),
/// continuation chunks are type 3.
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: usize,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkWriter {
    /// Use `size` for the messages written after this one. The caller sends
    /// the Set Chunk Size message first (with the old size).
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, 0x7fff_ffff);
    }

    /// Append `msg` as chunks on chunk stream `csid` (2..=63).
    pub fn write(&self, csid: u8, msg: &Message, out: &mut Vec<u8>) {
        debug_assert!((2..64).contains(&csid));
        let csid = csid & 0x3f;
        let extended = msg.timestamp >= EXTENDED;
        let ts = if extended { EXTENDED } else { msg.timestamp };
        let len = msg.payload.len().min(0x00ff_ffff) as u32;
        out.reserve(msg.payload.len() + 16 + msg.payload.len() / self.chunk_size * 5);
        out.push(csid);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(msg.type_id);
        out.extend_from_slice(&msg.stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&msg.timestamp.to_be_bytes());
        }
        let mut chunks = msg.payload[..len as usize].chunks(self.chunk_size);
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for c in chunks {
            out.push(0xc0 | csid);
            // Type-3 chunks repeat the extended timestamp (as Adobe's and
            // ffmpeg's peers expect).
            if extended {
                out.extend_from_slice(&msg.timestamp.to_be_bytes());
            }
            out.extend_from_slice(c);
        }
    }
}

#[derive(Debug, Default, Clone)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    partial: Vec<u8>,
}

/// Reassembles the server's chunks into messages.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    streams: HashMap<u32, StreamState>,
    buf: Vec<u8>,
    /// Bytes received in all (for acknowledgements).
    pub received: u64,
}

impl Default for ChunkReader {
    fn default() -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            buf: Vec::new(),
            received: 0,
        }
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl ChunkReader {
    /// Feed bytes from the server; whole messages come out. Set Chunk Size
    /// and Abort are applied here (and returned too). An error means the
    /// connection cannot go on.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<Message>, PushError> {
        self.received += input.len() as u64;
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(used) = self.chunk(at, &mut out)? {
            at += used;
        }
        self.buf.drain(..at);
        Ok(out)
    }

    /// Parse one chunk at `at`; `None` if it is not all there yet.
    fn chunk(&mut self, at: usize, out: &mut Vec<Message>) -> Result<Option<usize>, PushError> {
        let b = &self.buf[at..];
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + x as u32, 2),
                None => return Ok(None),
            },
            1 => match b.get(1..3) {
                Some(x) => (64 + x[0] as u32 + 256 * x[1] as u32, 3),
                None => return Ok(None),
            },
            n => (n as u32, 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        let Some(h) = b.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        if !self.streams.contains_key(&csid) {
            if fmt != 0 {
                return Err(PushError::Protocol(format!(
                    "chunk type {fmt} on chunk stream {csid} before any type-0 header"
                )));
            }
            if self.streams.len() >= MAX_CHUNK_STREAMS {
                return Err(PushError::Protocol(format!(
                    "more than {MAX_CHUNK_STREAMS} chunk streams"
                )));
            }
        }
        let mut st = self.streams.get(&csid).cloned().unwrap_or_default();
        let ts_field = if fmt < 3 { be24(&h[0..3]) } else { 0 };
        let extended = if fmt < 3 {
            ts_field == EXTENDED
        } else {
            st.extended
        };
        let ext = if extended {
            match b.get(pos..pos + 4) {
                Some(x) => {
                    pos += 4;
                    Some(u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        if fmt <= 1 {
            st.length = be24(&h[3..6]) as usize;
            st.type_id = h[6];
            if st.length > MAX_INBOUND_MESSAGE {
                return Err(PushError::Protocol(format!(
                    "message of {} bytes (type {}) on chunk stream {csid}: more than {MAX_INBOUND_MESSAGE}",
                    st.length, st.type_id
                )));
            }
        }
        if fmt == 0 {
            st.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        let starts_message = st.partial.is_empty();
        if !starts_message && fmt != 3 {
            return Err(PushError::Protocol(format!(
                "chunk type {fmt} on chunk stream {csid} in the middle of a message"
            )));
        }
        if fmt < 3 {
            st.extended = extended;
        }
        if starts_message {
            match fmt {
                0 => st.timestamp = ext.unwrap_or(ts_field),
                1 | 2 => {
                    st.delta = ext.unwrap_or(ts_field);
                    st.timestamp = st.timestamp.wrapping_add(st.delta);
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
        }
        let want = st
            .length
            .saturating_sub(st.partial.len())
            .min(self.chunk_size);
        let Some(data) = b.get(pos..pos + want) else {
            return Ok(None);
        };
        st.partial.extend_from_slice(data);
        pos += want;
        if st.partial.len() == st.length {
            let msg = Message {
                type_id: st.type_id,
                stream_id: st.stream_id,
                timestamp: st.timestamp,
                payload: std::mem::take(&mut st.partial),
            };
            self.apply(&msg)?;
            out.push(msg);
        }
        self.streams.insert(csid, st);
        Ok(Some(pos))
    }

    fn apply(&mut self, msg: &Message) -> Result<(), PushError> {
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let p = &msg.payload;
                if p.len() < 4 {
                    return Err(PushError::Protocol("short Set Chunk Size".into()));
                }
                let size = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                if size == 0 {
                    return Err(PushError::Protocol("Set Chunk Size 0".into()));
                }
                self.chunk_size = size as usize;
            }
            msg_type::ABORT => {
                if let Some(p) = msg.payload.get(0..4) {
                    let csid = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                    if let Some(st) = self.streams.get_mut(&csid) {
                        st.partial.clear();
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(type_id: u8, ts: u32, len: usize) -> Message {
        Message {
            type_id,
            stream_id: 1,
            timestamp: ts,
            payload: (0..len).map(|i| i as u8).collect(),
        }
    }

    #[test]
    fn writer_and_reader_agree_at_any_split() {
        let mut w = ChunkWriter::default();
        let mut bytes = Vec::new();
        let a = msg(msg_type::VIDEO, 40, 300);
        let b = msg(msg_type::VIDEO, 0x0100_0000, 1000); // extended timestamp
        let resize = Message {
            type_id: msg_type::SET_CHUNK_SIZE,
            stream_id: 0,
            timestamp: 0,
            payload: 256u32.to_be_bytes().to_vec(),
        };
        w.write(6, &a, &mut bytes);
        w.write(2, &resize, &mut bytes);
        w.set_chunk_size(256);
        w.write(6, &b, &mut bytes);
        for split in [1, 7, 128, 129, bytes.len()] {
            let mut r = ChunkReader::default();
            let mut got = Vec::new();
            for part in bytes.chunks(split) {
                got.extend(r.push(part).unwrap());
            }
            assert_eq!(
                got,
                vec![a.clone(), resize.clone(), b.clone()],
                "split {split}"
            );
            assert_eq!(r.chunk_size, 256);
        }
    }

    #[test]
    fn header_types_1_2_3_and_set_chunk_size() {
        // As nginx-rtmp sends: Set Chunk Size 4096 (type 0), then a command
        // whose next message uses type-1 and type-2 headers.
        let mut b = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        b.extend_from_slice(&4096u32.to_be_bytes());
        b.extend_from_slice(&[0x03, 0, 0, 10, 0, 0, 2, 20, 0, 0, 0, 0, 0xaa, 0xbb]);
        b.extend_from_slice(&[0x43, 0, 0, 5, 0, 0, 1, 20, 0xcc]);
        b.extend_from_slice(&[0x83, 0, 0, 5, 0xdd]);
        b.extend_from_slice(&[0xc3, 0xee]);
        let mut r = ChunkReader::default();
        let got = r.push(&b).unwrap();
        assert_eq!(r.chunk_size, 4096);
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![0, 10, 15, 20, 25]);
        assert_eq!(got[4].payload, vec![0xee]);
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        let mut r = ChunkReader::default();
        assert!(r.push(&[0x43, 0, 0, 0, 0, 0, 1, 20]).is_err());
        let mut r = ChunkReader::default();
        // 16 MiB message announced.
        assert!(r
            .push(&[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0])
            .is_err());
        let mut r = ChunkReader::default();
        assert!(r
            .push(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0])
            .is_err());
        // Chunk streams are bounded.
        let mut r = ChunkReader::default();
        let mut b = Vec::new();
        for cs in 0..100u8 {
            b.extend_from_slice(&[0x00, cs, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0]);
        }
        assert!(r.push(&b).is_err());
    }
}
