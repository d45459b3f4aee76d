//! The session description DESCRIBE returns (RFC 4566): one `m=` line per
//! track with its RTP payload format: H.264 per RFC 6184 §8.1 (with
//! `profile-level-id` and `sprop-parameter-sets`, which ffmpeg and go2rtc
//! need before the first keyframe), Opus per RFC 7587 §7.

use base64ct::{Base64, Encoding};

/// Payload types (dynamic range).
pub const H264_PT: u8 = 96;
pub const OPUS_PT: u8 = 97;

/// What DESCRIBE offers, per track, in `m=` order. The control name of
/// track `i` is `trackID=i`.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaDesc {
    H264 {
        /// SPS and PPS NAL units without start codes.
        sps: Vec<u8>,
        pps: Vec<u8>,
        fps: Option<f64>,
        width: u32,
        height: u32,
    },
    Opus {
        channels: u8,
    },
}

impl MediaDesc {
    pub fn payload_type(&self) -> u8 {
        match self {
            MediaDesc::H264 { .. } => H264_PT,
            MediaDesc::Opus { .. } => OPUS_PT,
        }
    }
    /// RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        match self {
            MediaDesc::H264 { .. } => 90_000,
            MediaDesc::Opus { .. } => 48_000,
        }
    }
}

/// The SDP text. `session_id`: stable for the daemon's life; `version`:
/// changes with the stream generation; `addr`: the address the client
/// connected to (IPv4 or IPv6 literal).
pub fn describe(tracks: &[MediaDesc], session_id: u64, version: u64, addr: &str) -> String {
    let ip = if addr.contains(':') { "IP6" } else { "IP4" };
    let any = if ip == "IP6" { "::" } else { "0.0.0.0" };
    let mut s = format!(
        "v=0\r\no=- {session_id} {version} IN {ip} {addr}\r\ns=pinhole\r\nc=IN {ip} {any}\r\nt=0 0\r\n\
         a=tool:pinhole\r\na=range:npt=now-\r\na=control:*\r\n"
    );
    for (i, t) in tracks.iter().enumerate() {
        match t {
            MediaDesc::H264 {
                sps,
                pps,
                fps,
                width,
                height,
            } => {
                let pt = H264_PT;
                s.push_str(&format!(
                    "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} H264/90000\r\n"
                ));
                let mut fmtp = format!("a=fmtp:{pt} packetization-mode=1");
                if sps.len() >= 4 {
                    fmtp.push_str(&format!(
                        ";profile-level-id={:02X}{:02X}{:02X}",
                        sps[1], sps[2], sps[3]
                    ));
                }
                fmtp.push_str(&format!(
                    ";sprop-parameter-sets={},{}",
                    Base64::encode_string(sps),
                    Base64::encode_string(pps)
                ));
                s.push_str(&fmtp);
                s.push_str("\r\n");
                if let Some(f) = fps.filter(|f| f.is_finite() && *f > 0.0) {
                    s.push_str(&format!("a=framerate:{}\r\n", (f * 100.0).round() / 100.0));
                }
                if *width > 0 && *height > 0 {
                    s.push_str(&format!("a=x-dimensions:{width},{height}\r\n"));
                }
            }
            MediaDesc::Opus { channels } => {
                let pt = OPUS_PT;
                // RFC 7587: always "opus/48000/2"; mono is said in fmtp.
                s.push_str(&format!(
                    "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\n"
                ));
                let stereo = u8::from(*channels >= 2);
                s.push_str(&format!(
                    "a=fmtp:{pt} stereo={stereo};sprop-stereo={stereo}\r\n"
                ));
            }
        }
        s.push_str(&format!("a=control:trackID={i}\r\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_and_opus() {
        let sdp = describe(
            &[
                MediaDesc::H264 {
                    sps: vec![0x67, 0x42, 0xc0, 0x1f, 0xda],
                    pps: vec![0x68, 0xce, 0x3c, 0x80],
                    fps: Some(30.0),
                    width: 1280,
                    height: 720,
                },
                MediaDesc::Opus { channels: 1 },
            ],
            42,
            3,
            "192.168.1.5",
        );
        let want = "v=0\r\no=- 42 3 IN IP4 192.168.1.5\r\ns=pinhole\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
            a=tool:pinhole\r\na=range:npt=now-\r\na=control:*\r\n\
            m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
            a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;sprop-parameter-sets=Z0LAH9o=,aM48gA==\r\n\
            a=framerate:30\r\na=x-dimensions:1280,720\r\na=control:trackID=0\r\n\
            m=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\na=fmtp:97 stereo=0;sprop-stereo=0\r\n\
            a=control:trackID=1\r\n";
        assert_eq!(sdp, want);
    }

    #[test]
    fn ipv6() {
        let sdp = describe(&[], 1, 1, "::1");
        assert!(sdp.contains("o=- 1 1 IN IP6 ::1\r\n"));
        assert!(sdp.contains("c=IN IP6 ::\r\n"));
    }
}
