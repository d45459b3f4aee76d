//! A publishing RTMP client session, sans I/O: feed it the server's bytes,
//! take the bytes to send. The handshake (the simple one: C1 without a
//! digest, as ffmpeg and OBS send to servers that accept it), `connect`,
//! `releaseStream`/`FCPublish`/`createStream`, `publish`, then media.

use crate::rtmp::amf0::{self, Value};
use crate::rtmp::chunk::{msg_type, ChunkReader, ChunkWriter, Message};
use crate::PushError;

const HANDSHAKE_SIZE: usize = 1536;
/// Our outgoing chunk size: a frame goes out in few chunks.
pub const OUT_CHUNK_SIZE: usize = 4096;

const CSID_CONTROL: u8 = 2;
const CSID_COMMAND: u8 = 3;
const CSID_DATA: u8 = 5;
const CSID_VIDEO: u8 = 6;

const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 4.0;

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// C0+C1 sent, waiting for S0+S1+S2.
    Handshake,
    /// `connect` sent.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `publish` sent, waiting for `NetStream.Publish.Start`.
    PublishSent,
    /// Media may flow.
    Publishing,
}

/// What to publish where: from the URL `rtmp://host[:port]/app/key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishParams {
    pub app: String,
    pub tc_url: String,
    pub stream_key: String,
}

#[derive(Debug)]
pub struct Session {
    params: PublishParams,
    phase: Phase,
    out: Vec<u8>,
    hs_in: Vec<u8>,
    reader: ChunkReader,
    writer: ChunkWriter,
    stream_id: u32,
    /// Acknowledge every this many received bytes (the server's window).
    ack_window: u64,
    acked: u64,
}

impl Session {
    /// A new session; its first bytes (C0+C1) are ready in `take_output`.
    /// `seed` fills C1's random part (it need not be secret).
    pub fn new(params: PublishParams, now_ms: u32, seed: u64) -> Session {
        let mut out = Vec::with_capacity(1 + HANDSHAKE_SIZE);
        out.push(3); // C0: RTMP version 3
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // zero: the simple handshake
        let mut x = seed | 1;
        while out.len() < 1 + HANDSHAKE_SIZE {
            // xorshift64: filler bytes, not a secret.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes()[..(1 + HANDSHAKE_SIZE - out.len()).min(8)]);
        }
        Session {
            params,
            phase: Phase::Handshake,
            out,
            hs_in: Vec::new(),
            reader: ChunkReader::default(),
            writer: ChunkWriter::default(),
            stream_id: 0,
            ack_window: 0,
            acked: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes to send now (empty if none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, csid: u8, type_id: u8, stream_id: u32, timestamp: u32, payload: Vec<u8>) {
        let msg = Message {
            type_id,
            stream_id,
            timestamp,
            payload,
        };
        self.writer.write(csid, &msg, &mut self.out);
    }

    fn command(&mut self, stream_id: u32, values: &[Value]) {
        let body = amf0::encode_all(values);
        self.send(CSID_COMMAND, msg_type::COMMAND_AMF0, stream_id, 0, body);
    }

    /// Feed bytes received from the server.
    pub fn handle_input(&mut self, mut input: &[u8]) -> Result<(), PushError> {
        if self.phase == Phase::Handshake {
            let need = 1 + 2 * HANDSHAKE_SIZE - self.hs_in.len();
            let n = need.min(input.len());
            self.hs_in.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.hs_in.len() < 1 + 2 * HANDSHAKE_SIZE {
                return Ok(());
            }
            if self.hs_in[0] != 3 {
                return Err(PushError::Protocol(format!(
                    "handshake: server speaks RTMP version {}, not 3 (is this an RTMP server? RTMPS needs rtmps://)",
                    self.hs_in[0]
                )));
            }
            // C2 echoes S1.
            let s1 = self.hs_in[1..1 + HANDSHAKE_SIZE].to_vec();
            self.out.extend_from_slice(&s1);
            self.hs_in = Vec::new();
            self.start_connect();
        }
        if input.is_empty() {
            return Ok(());
        }
        let msgs = self.reader.push(input)?;
        for m in msgs {
            self.on_message(m)?;
        }
        if self.ack_window > 0 && self.reader.received - self.acked >= self.ack_window {
            self.acked = self.reader.received;
            let seq = (self.acked & 0xffff_ffff) as u32;
            self.send(
                CSID_CONTROL,
                msg_type::ACK,
                0,
                0,
                seq.to_be_bytes().to_vec(),
            );
        }
        Ok(())
    }

    fn start_connect(&mut self) {
        self.send(
            CSID_CONTROL,
            msg_type::SET_CHUNK_SIZE,
            0,
            0,
            (OUT_CHUNK_SIZE as u32).to_be_bytes().to_vec(),
        );
        self.writer.set_chunk_size(OUT_CHUNK_SIZE);
        let obj = Value::Object(vec![
            ("app".into(), Value::str(&self.params.app)),
            ("type".into(), Value::str("nonprivate")),
            (
                "flashVer".into(),
                Value::str("FMLE/3.0 (compatible; pinhole)"),
            ),
            ("tcUrl".into(), Value::str(&self.params.tc_url)),
        ]);
        self.command(0, &[Value::str("connect"), Value::Number(TXN_CONNECT), obj]);
        self.phase = Phase::Connecting;
    }

    fn on_message(&mut self, m: Message) -> Result<(), PushError> {
        match m.type_id {
            msg_type::WINDOW_ACK_SIZE => {
                if let Some(p) = m.payload.get(0..4) {
                    self.ack_window = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as u64;
                }
            }
            // Ping request (event 6): answer with a ping response (7).
            msg_type::USER_CONTROL if m.payload.len() >= 6 && m.payload[0..2] == [0, 6] => {
                let mut p = vec![0, 7];
                p.extend_from_slice(&m.payload[2..6]);
                self.send(CSID_CONTROL, msg_type::USER_CONTROL, 0, 0, p);
            }
            msg_type::COMMAND_AMF0 => self.on_command(&amf0::decode_all(&m.payload)?)?,
            _ => {}
        }
        Ok(())
    }

    fn on_command(&mut self, v: &[Value]) -> Result<(), PushError> {
        let name = v.first().and_then(Value::as_str).unwrap_or("");
        let txn = v.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let key = self.params.stream_key.clone();
        match (name, self.phase) {
            ("_result", Phase::Connecting) if txn == TXN_CONNECT => {
                self.command(
                    0,
                    &[
                        Value::str("releaseStream"),
                        Value::Number(2.0),
                        Value::Null,
                        Value::str(&key),
                    ],
                );
                self.command(
                    0,
                    &[
                        Value::str("FCPublish"),
                        Value::Number(3.0),
                        Value::Null,
                        Value::str(&key),
                    ],
                );
                self.command(
                    0,
                    &[
                        Value::str("createStream"),
                        Value::Number(TXN_CREATE_STREAM),
                        Value::Null,
                    ],
                );
                self.phase = Phase::CreatingStream;
            }
            ("_result", Phase::CreatingStream) if txn == TXN_CREATE_STREAM => {
                let id = v.get(3).and_then(Value::as_number).unwrap_or(1.0);
                self.stream_id = if (0.0..=u32::MAX as f64).contains(&id) {
                    id as u32
                } else {
                    1
                };
                self.command(
                    self.stream_id,
                    &[
                        Value::str("publish"),
                        Value::Number(5.0),
                        Value::Null,
                        Value::str(&key),
                        Value::str("live"),
                    ],
                );
                self.phase = Phase::PublishSent;
            }
            ("_error", _) => {
                return Err(PushError::Refused(describe(v.get(3))));
            }
            ("onStatus", _) => {
                let info = v.get(3);
                let code = info.and_then(|i| i.get("code")).and_then(Value::as_str);
                let level = info.and_then(|i| i.get("level")).and_then(Value::as_str);
                if level == Some("error") {
                    return Err(PushError::Refused(describe(info)));
                }
                if code == Some("NetStream.Publish.Start") && self.phase == Phase::PublishSent {
                    self.phase = Phase::Publishing;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Send `@setDataFrame onMetaData` (what players read as the stream's
    /// size and codec before the first frame).
    pub fn send_metadata(&mut self, props: Vec<(String, Value)>) {
        let body = amf0::encode_all(&[
            Value::str("@setDataFrame"),
            Value::str("onMetaData"),
            Value::Object(props),
        ]);
        self.send(CSID_DATA, msg_type::DATA_AMF0, self.stream_id, 0, body);
    }

    /// Send one FLV video tag body at `timestamp_ms`.
    pub fn send_video(&mut self, timestamp_ms: u32, tag_body: Vec<u8>) {
        self.send(
            CSID_VIDEO,
            msg_type::VIDEO,
            self.stream_id,
            timestamp_ms,
            tag_body,
        );
    }
}

/// "code: description" of a status/error object, for the target's last
/// error (what the server says; never our URL or key).
fn describe(info: Option<&Value>) -> String {
    let s = |k| info.and_then(|i| i.get(k)).and_then(Value::as_str);
    match (s("code"), s("description")) {
        (Some(c), Some(d)) => format!("{c}: {d}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => "no reason given".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PublishParams {
        PublishParams {
            app: "live".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into(),
            stream_key: "cam".into(),
        }
    }

    /// A scripted server: chunked messages as a server would send them.
    fn server_cmd(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        ChunkWriter::default().write(
            3,
            &Message {
                type_id: msg_type::COMMAND_AMF0,
                stream_id: 0,
                timestamp: 0,
                payload: amf0::encode_all(values),
            },
            &mut out,
        );
        out
    }

    fn sent_commands(bytes: &[u8], reader: &mut ChunkReader) -> Vec<String> {
        reader
            .push(bytes)
            .unwrap()
            .into_iter()
            .filter(|m| m.type_id == msg_type::COMMAND_AMF0)
            .map(|m| {
                amf0::decode_all(&m.payload).unwrap()[0]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    fn handshaken() -> (Session, ChunkReader) {
        let mut s = Session::new(params(), 0, 42);
        let c01 = s.take_output();
        assert_eq!(c01.len(), 1537);
        assert_eq!(c01[0], 3);
        let mut s012 = vec![3];
        s012.extend(std::iter::repeat_n(7u8, 1536));
        s012.extend(std::iter::repeat_n(9u8, 1536));
        // Arrives in two pieces.
        s.handle_input(&s012[..1000]).unwrap();
        assert_eq!(s.phase(), Phase::Handshake);
        s.handle_input(&s012[1000..]).unwrap();
        let out = s.take_output();
        assert_eq!(&out[..1536], &[7u8; 1536][..], "C2 echoes S1");
        let mut reader = ChunkReader::default();
        assert_eq!(sent_commands(&out[1536..], &mut reader), vec!["connect"]);
        (s, reader)
    }

    #[test]
    fn publishes_after_the_servers_answers() {
        let (mut s, mut reader) = handshaken();
        s.handle_input(&server_cmd(&[
            Value::str("_result"),
            Value::Number(1.0),
            Value::Null,
        ]))
        .unwrap();
        assert_eq!(
            sent_commands(&s.take_output(), &mut reader),
            vec!["releaseStream", "FCPublish", "createStream"]
        );
        s.handle_input(&server_cmd(&[
            Value::str("_result"),
            Value::Number(4.0),
            Value::Null,
            Value::Number(1.0),
        ]))
        .unwrap();
        assert_eq!(
            sent_commands(&s.take_output(), &mut reader),
            vec!["publish"]
        );
        assert_eq!(s.phase(), Phase::PublishSent);
        let start = Value::Object(vec![
            ("level".into(), Value::str("status")),
            ("code".into(), Value::str("NetStream.Publish.Start")),
        ]);
        s.handle_input(&server_cmd(&[
            Value::str("onStatus"),
            Value::Number(0.0),
            Value::Null,
            start,
        ]))
        .unwrap();
        assert_eq!(s.phase(), Phase::Publishing);
        s.send_video(40, vec![0x17, 1, 0, 0, 0]);
        let msgs = reader.push(&s.take_output()).unwrap();
        assert_eq!(msgs[0].type_id, msg_type::VIDEO);
        assert_eq!((msgs[0].timestamp, msgs[0].stream_id), (40, 1));
    }

    #[test]
    fn a_refusal_is_an_error_with_the_servers_reason() {
        let (mut s, _) = handshaken();
        let bad = Value::Object(vec![
            ("level".into(), Value::str("error")),
            ("code".into(), Value::str("NetStream.Publish.BadName")),
            ("description".into(), Value::str("Already publishing")),
        ]);
        let err = s
            .handle_input(&server_cmd(&[
                Value::str("onStatus"),
                Value::Number(0.0),
                Value::Null,
                bad,
            ]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "server refused: NetStream.Publish.BadName: Already publishing"
        );
    }

    #[test]
    fn answers_pings_and_acknowledges_its_window() {
        let (mut s, mut reader) = handshaken();
        let mut b = Vec::new();
        let w = ChunkWriter::default();
        w.write(
            2,
            &Message {
                type_id: msg_type::WINDOW_ACK_SIZE,
                stream_id: 0,
                timestamp: 0,
                payload: 20u32.to_be_bytes().to_vec(),
            },
            &mut b,
        );
        w.write(
            2,
            &Message {
                type_id: msg_type::USER_CONTROL,
                stream_id: 0,
                timestamp: 0,
                payload: vec![0, 6, 1, 2, 3, 4],
            },
            &mut b,
        );
        s.handle_input(&b).unwrap();
        let msgs = reader.push(&s.take_output()).unwrap();
        let types: Vec<u8> = msgs.iter().map(|m| m.type_id).collect();
        assert_eq!(types, vec![msg_type::USER_CONTROL, msg_type::ACK]);
        assert_eq!(msgs[0].payload, vec![0, 7, 1, 2, 3, 4]);
    }

    #[test]
    fn not_rtmp_is_a_clear_error() {
        let mut s = Session::new(params(), 0, 1);
        let err = s.handle_input(&[b'H'; 3073]).unwrap_err().to_string();
        assert!(err.contains("not 3"), "{err}");
    }
}
