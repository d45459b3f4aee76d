//! The sending side of WHIP (RFC 9725 ingest): pinhole pushes its stream to
//! a media server. The mirror of [`crate::session`]: here we make the offer
//! (sendonly H.264, and Opus when the stream has sound), the server answers,
//! and we are the ICE-full, controlling agent (str0m takes that role when it
//! makes the offer and is not ICE-lite) that checks the server's candidates.
//!
//! Sans-I/O as `session.rs`: datagrams and time (µs on the daemon's clock)
//! in, datagrams and the next deadline out. The HTTP exchange and the socket
//! live in the push crate.

use std::net::SocketAddr;
use std::time::Duration;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::session::{Datagram, Polled, Shared};
use crate::WebrtcError;

/// The server must answer our checks within this long of the answer, or
/// the session is given up (ICE and DTLS over a LAN take < 100 ms).
pub const CONNECT_TIMEOUT_US: u64 = 10_000_000;
/// Without a packet from the server for this long, it is gone (str0m's
/// consent checks run every few seconds, so a live server always answers).
pub const SILENCE_TIMEOUT_US: u64 = 5_000_000;

/// Counters for the push status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PublishStats {
    pub frames_sent: u64,
    pub audio_sent: u64,
    /// PLI/FIR from the server.
    pub keyframe_requests: u64,
    /// NACKs from the server (str0m resends from its buffer).
    pub nacks: u64,
    pub bytes_sent: u64,
    pub rtt_us: Option<u64>,
}

/// One WHIP session, from the offer to the end.
pub struct Publisher {
    rtc: Rtc,
    shared: Shared,
    pending: Option<SdpPendingOffer>,
    video_mid: Mid,
    audio_mid: Option<Mid>,
    video: Option<Pt>,
    audio: Option<Pt>,
    answered_us: Option<u64>,
    connected: bool,
    started_video: bool,
    ended: Option<&'static str>,
    last_rx_us: u64,
    stats: PublishStats,
}

/// A server's SDP answer, parsed: cheap and independent of a publisher
/// (whose set-up costs a DTLS context), so malformed answers can be
/// refused, and fuzzed, without one.
pub struct Answer(SdpAnswer);

impl Answer {
    pub fn parse(sdp: &str) -> Result<Answer, WebrtcError> {
        SdpAnswer::from_sdp_string(sdp)
            .map(Answer)
            .map_err(|e| WebrtcError::BadOffer(e.to_string()))
    }
}

impl Publisher {
    /// A session that will send from the host candidates `local` (our UDP
    /// socket's addresses). Returns it and the SDP offer to POST.
    pub fn offer(
        shared: &Shared,
        local: &[SocketAddr],
        audio: bool,
        now_us: u64,
    ) -> Result<(Publisher, String), WebrtcError> {
        let mut cfg = RtcConfig::new()
            .set_ice_lite(false)
            .set_crypto_provider(shared.provider.clone())
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_stats_interval(Some(Duration::from_secs(1)));
        if let Some(cert) = &shared.cert {
            cfg = cfg.set_dtls_cert(cert.clone());
        }
        let mut rtc = cfg.build(shared.at(now_us));
        for addr in local {
            let c = Candidate::host(*addr, "udp").map_err(|e| WebrtcError::Rtc(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let stream = Some("pinhole".to_owned());
        let video_mid = api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            stream.clone(),
            Some("video".into()),
            None,
        );
        let audio_mid = audio.then(|| {
            api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                stream,
                Some("audio".into()),
                None,
            )
        });
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WebrtcError::Rtc("no offer was made".into()))?;
        let p = Publisher {
            rtc,
            shared: shared.clone(),
            pending: Some(pending),
            video_mid,
            audio_mid,
            video: None,
            audio: None,
            answered_us: None,
            connected: false,
            started_video: false,
            ended: None,
            last_rx_us: now_us,
            stats: PublishStats::default(),
        };
        Ok((p, offer.to_sdp_string()))
    }

    /// The server's answer (the 201's body). Its candidates are the ones
    /// we check; its codecs decide the payload types we send with.
    pub fn answer(&mut self, sdp: &str, now_us: u64) -> Result<(), WebrtcError> {
        self.accept(Answer::parse(sdp)?, now_us)
    }

    /// Takes an answer parsed beforehand.
    pub fn accept(&mut self, answer: Answer, now_us: u64) -> Result<(), WebrtcError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| WebrtcError::Rtc("answered twice".into()))?;
        self.rtc.sdp_api().accept_answer(pending, answer.0)?;
        self.video = pick_h264(&mut self.rtc, self.video_mid);
        if self.video.is_none() {
            return Err(WebrtcError::NoH264(
                "the server's answer takes no H.264 video".into(),
            ));
        }
        self.audio = self
            .audio_mid
            .and_then(|mid| pick(&mut self.rtc, mid, Codec::Opus));
        if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(self.video_mid, None) {
            // As for viewers (session.rs): resends only cost this link, and
            // the cap would drop a keyframe's resends under loss.
            tx.set_rtx_cache(1024, Duration::from_secs(3), None);
        }
        self.answered_us = Some(now_us);
        self.last_rx_us = now_us;
        Ok(())
    }

    /// More of our addresses (a server candidate that routes through
    /// another interface).
    pub fn add_local(&mut self, addr: SocketAddr) {
        if let Ok(c) = Candidate::host(addr, "udp") {
            self.rtc.add_local_candidate(c);
        }
    }

    pub fn stats(&self) -> PublishStats {
        self.stats
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the server takes our sound (it answered the Opus section).
    pub fn sends_audio(&self) -> bool {
        self.audio.is_some()
    }

    pub fn ended(&self) -> Option<&'static str> {
        self.ended
    }

    /// A datagram from the server at `from` to our address `local`.
    pub fn receive(&mut self, from: SocketAddr, local: SocketAddr, data: &[u8], now_us: u64) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            self.shared.at(now_us),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.last_rx_us = now_us;
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!(error = %e, "whip: input refused");
            }
        }
    }

    /// One H.264 access unit (Annex B). Nothing before the connection; the
    /// first frame sent is a keyframe.
    pub fn write_video(&mut self, data: &[u8], pts_us: u64, keyframe: bool) {
        let Some(pt) = self.video else { return };
        if !self.connected || self.ended.is_some() {
            return;
        }
        if !self.started_video {
            if !keyframe {
                return;
            }
            self.started_video = true;
        }
        let Some(writer) = self.rtc.writer(self.video_mid) else {
            return;
        };
        let rtp_time = MediaTime::new(pts_us.saturating_mul(9) / 100, Frequency::NINETY_KHZ);
        match writer.write(pt, self.shared.at(pts_us), rtp_time, data.to_vec()) {
            Ok(()) => self.stats.frames_sent += 1,
            Err(e) => tracing::debug!(error = %e, "whip: frame not written"),
        }
    }

    /// One Opus packet, once the picture has started.
    pub fn write_audio(&mut self, data: &[u8], pts_us: u64) {
        let (Some(pt), Some(mid)) = (self.audio, self.audio_mid) else {
            return;
        };
        if !self.connected || !self.started_video || self.ended.is_some() {
            return;
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let rtp_time = MediaTime::new(pts_us.saturating_mul(48) / 1000, Frequency::FORTY_EIGHT_KHZ);
        match writer.write(pt, self.shared.at(pts_us), rtp_time, data.to_vec()) {
            Ok(()) => self.stats.audio_sent += 1,
            Err(e) => tracing::debug!(error = %e, "whip: audio not written"),
        }
    }

    pub fn close(&mut self, why: &'static str) {
        if self.ended.is_none() {
            self.ended = Some(why);
            self.rtc.disconnect();
        }
    }

    /// Advances time to `now_us` and collects what to send. `keyframe_wanted`
    /// reports the server's PLI/FIR; `connected` the moment ICE and DTLS are
    /// done.
    pub fn poll(&mut self, now_us: u64) -> Polled {
        let mut out = Polled::default();
        if self.ended.is_none() {
            if let Some(a) = self.answered_us {
                if !self.connected && now_us.saturating_sub(a) >= CONNECT_TIMEOUT_US {
                    self.close("no ICE/DTLS connection with the server within 10 s");
                } else if now_us.saturating_sub(self.last_rx_us) >= SILENCE_TIMEOUT_US {
                    self.close("nothing from the server for 5 s");
                }
            }
        }
        if self.ended.is_some() {
            return out;
        }
        if let Err(e) = self
            .rtc
            .handle_input(Input::Timeout(self.shared.at(now_us)))
        {
            tracing::debug!(error = %e, "whip: timeout input");
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    self.stats.bytes_sent += t.contents.len() as u64;
                    out.send.push(Datagram {
                        to: t.destination,
                        data: t.contents.to_vec(),
                        // We publish over UDP only (no TCP candidates).
                        tcp: false,
                    });
                }
                Ok(Output::Timeout(t)) => {
                    let us = self.shared.us(t);
                    let watch = if self.connected {
                        self.last_rx_us + SILENCE_TIMEOUT_US
                    } else {
                        self.answered_us.unwrap_or(now_us) + CONNECT_TIMEOUT_US
                    };
                    out.deadline_us = Some(us.min(watch).max(now_us));
                    break;
                }
                Ok(Output::Event(e)) => self.event(e, &mut out),
                Err(e) => {
                    tracing::debug!(error = %e, "whip: session failed");
                    self.ended = Some("WebRTC stack error");
                    break;
                }
            }
        }
        if self.ended.is_some() || !self.rtc.is_alive() {
            self.ended.get_or_insert("closed");
            out.deadline_us = None;
        }
        out
    }

    fn event(&mut self, e: Event, out: &mut Polled) {
        match e {
            Event::Connected => {
                self.connected = true;
                out.connected = true;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.ended = Some("ICE disconnected");
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                out.keyframe_wanted = true;
            }
            Event::MediaEgressStats(s) if s.mid == self.video_mid => {
                self.stats.nacks = s.nacks;
                self.stats.rtt_us = s.rtt.map(|d| d.as_micros() as u64);
            }
            _ => {}
        }
    }
}

fn pick(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    let pt = writer
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt());
    pt
}

/// Packetization-mode 1 (FU-A) first, as for viewers.
fn pick_h264(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    let h264: Vec<_> = writer
        .payload_params()
        .filter(|p| p.spec().codec == Codec::H264)
        .map(|p| (p.pt(), p.spec().format.packetization_mode))
        .collect();
    h264.iter()
        .find(|(_, mode)| *mode == Some(1))
        .or(h264.first())
        .map(|(pt, _)| *pt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer::check_offer;
    use crate::session::Session;
    use std::time::Instant;

    /// Our publisher against our own ICE-lite answerer, on simulated time:
    /// offer → answer → ICE (we control) → DTLS → the first frames arrive.
    /// (The test against a server we did not write is the push crate's.)
    #[test]
    fn connects_to_an_ice_lite_answerer_and_sends_a_keyframe_first() {
        let base = Instant::now();
        let srv_addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let our_addr: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let srv_shared = Shared::new(vec![srv_addr], base);
        let our_shared = Shared::new(vec![], base);
        let (mut p, offer) = Publisher::offer(&our_shared, &[our_addr], true, 0).unwrap();
        assert!(offer.contains("a=sendonly"), "{offer}");
        assert!(offer.contains("H264/90000"), "{offer}");
        assert!(offer.contains("opus/48000"), "{offer}");
        assert!(!offer.contains("ice-lite"), "{offer}");
        // Our answerer only ever sends; it answers a sendonly offer all
        // the same (recvonly), which is enough to test ICE and DTLS.
        let checked = check_offer(&offer).unwrap();
        let (mut s, answer) = Session::accept(&checked, &srv_shared, 0).unwrap();
        p.answer(&answer, 0).unwrap();
        let mut now = 0;
        while now < 3_000_000 && !p.is_connected() {
            let a = p.poll(now);
            for d in a.send {
                assert_eq!(d.to, srv_addr);
                s.receive(our_addr, srv_addr, false, &d.data, now);
            }
            let b = s.poll(now);
            for d in b.send {
                p.receive(srv_addr, our_addr, &d.data, now);
            }
            now += 5_000;
        }
        assert!(p.is_connected(), "not connected after {now} µs");
        assert!(p.sends_audio());
        p.write_video(&[0, 0, 0, 1, 0x41, 1, 2, 3], now, false);
        assert_eq!(p.stats().frames_sent, 0, "a P-frame first is held back");
        p.write_video(
            &[
                0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88,
            ],
            now,
            true,
        );
        let sent = p.poll(now).send.len();
        assert_eq!(p.stats().frames_sent, 1);
        assert!(sent >= 1);
    }

    #[test]
    fn an_answer_without_h264_is_refused_and_silence_ends_the_session() {
        let our = Shared::new(vec![], Instant::now());
        let (mut p, _) =
            Publisher::offer(&our, &["127.0.0.1:40003".parse().unwrap()], false, 0).unwrap();
        assert!(p.answer("v=0\r\n", 0).is_err());
        let (mut p, _) =
            Publisher::offer(&our, &["127.0.0.1:40003".parse().unwrap()], false, 0).unwrap();
        // Never answered: the HTTP side times out, not this.
        assert!(p.poll(CONNECT_TIMEOUT_US * 2).deadline_us.is_some());
        p.close("test");
        assert_eq!(p.ended(), Some("test"));
    }
}
