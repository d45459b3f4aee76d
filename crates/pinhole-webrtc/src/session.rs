//! One viewer's WebRTC session: str0m's `Rtc` (ICE-lite, DTLS, SRTP, RTP
//! packetizing, NACK resends from its send buffer) behind a small pure
//! interface. Packets and time in, datagrams and the next deadline out; no
//! sockets, no threads, no clock reads: `now_us` is the daemon's clock
//! (`pinhole_media::Clock`), mapped onto the `Instant`s str0m wants from a
//! fixed base, so a test drives hours of session in microseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

use crate::offer::Offer;
use crate::WebrtcError;

/// Without a packet from the viewer for this long its consent has expired
/// (RFC 7675: browsers check consent every ~5 s, and give up at 30 s).
pub const CONSENT_TIMEOUT_US: u64 = 30_000_000;

/// NACKs are answered for packets at most this old (str0m's default); how
/// many are kept is [`Shared::resend_buffer`]'s byte bound.
const RTX_CACHE_AGE: Duration = Duration::from_secs(3);

/// What one packet in the resend buffer may hold at most: str0m packetizes
/// into datagrams of at most 1200 bytes, RTP payload less.
pub const RESEND_PACKET_BYTES: usize = 1200;

/// The resend buffer's default byte bound per session: about 1 s of a
/// 4 Mbit/s stream, a 720p keyframe several times over; 10 viewers on a
/// 512 MB Zero 2 W then hold ~6 MiB of it (docs/webrtc.md, "Memory").
pub const DEFAULT_RESEND_BUFFER_BYTES: usize = 512 * 1024;

/// The RTP header extension id we offer the playout-delay extension under;
/// str0m answers with the id the viewer's offer uses (Chromium: 5).
const PLAYOUT_DELAY_EXT_ID: u8 = 5;

/// What every session shares: the crypto provider and one DTLS certificate
/// (made once: a key per session would cost a P-256 key generation each).
#[derive(Clone)]
pub struct Shared {
    pub provider: Arc<CryptoProvider>,
    pub cert: Option<DtlsCert>,
    /// `Instant` for clock time 0: str0m counts in `Instant`s.
    pub base: Instant,
    /// Our address(es) as host candidates: every LAN address and the extra
    /// ones from the config, all on the one UDP port.
    pub candidates: Vec<SocketAddr>,
    /// The same addresses on the ICE-TCP port (passive: viewers connect),
    /// when it is on.
    pub tcp_candidates: Vec<SocketAddr>,
    /// The playout delay asked of viewers that offer the playout-delay
    /// header extension (Chromium does): min 0 and this max. `Some(0)`:
    /// show each frame as soon as it is decoded, no smoothing delay.
    /// `None`: the extension is not sent (the browser's own smoothing).
    pub playout_delay_max: Option<Duration>,
    /// The NACK resend buffer's bound per session, bytes (str0m counts
    /// packets: this over [`RESEND_PACKET_BYTES`]).
    pub resend_buffer: usize,
}

impl Shared {
    pub fn new(candidates: Vec<SocketAddr>, base: Instant) -> Self {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate();
        Shared {
            provider: Arc::new(provider),
            cert,
            base,
            candidates,
            tcp_candidates: Vec::new(),
            playout_delay_max: Some(Duration::ZERO),
            resend_buffer: DEFAULT_RESEND_BUFFER_BYTES,
        }
    }

    /// Packets the resend buffer holds: its byte bound over the largest
    /// packet (at least a few, so a NACK can still be answered).
    pub fn resend_packets(&self) -> usize {
        (self.resend_buffer / RESEND_PACKET_BYTES).max(16)
    }

    /// Our µs timeline → str0m's `Instant`s (viewer sessions and publishers).
    pub(crate) fn at(&self, now_us: u64) -> Instant {
        self.base + Duration::from_micros(now_us)
    }

    /// str0m's `Instant` → our µs timeline.
    pub(crate) fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }
}

/// Counters for `/api/status` and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SessionStats {
    pub frames_sent: u64,
    /// Opus packets sent.
    pub audio_sent: u64,
    /// Frames not sent while waiting for a keyframe (before the first one).
    pub frames_waiting_key: u64,
    /// PLI/FIR received from the viewer.
    pub keyframe_requests: u64,
    /// NACKs received (str0m resends from its send buffer).
    pub nacks: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Round-trip time from RTCP, µs.
    pub rtt_us: Option<u64>,
    /// Loss the viewer reports (fraction, 0–1).
    pub loss: Option<f32>,
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub to: SocketAddr,
    pub data: Vec<u8>,
    /// On the viewer's ICE-TCP connection from `to`, not UDP.
    pub tcp: bool,
}

/// What [`Session::poll`] found.
#[derive(Debug, Default)]
pub struct Polled {
    pub send: Vec<Datagram>,
    /// Call `poll` again at this time (µs on the daemon's clock) at the
    /// latest; `None` once the session is over.
    pub deadline_us: Option<u64>,
    /// The viewer just became reachable (ICE and DTLS done): start its
    /// video at a keyframe now.
    pub connected: bool,
    /// The viewer asked for a keyframe (PLI/FIR).
    pub keyframe_wanted: bool,
}

pub struct Session {
    rtc: Rtc,
    shared: Shared,
    ufrag: String,
    remote_ufrag: Option<String>,
    video: Option<(Mid, Pt)>,
    /// The viewer's audio section, when it offered Opus.
    audio: Option<(Mid, Pt)>,
    connected: bool,
    started_video: bool,
    ended: Option<&'static str>,
    last_rx_us: u64,
    stats: SessionStats,
    /// The answer's first `m=` line and its `a=mid:`, and our candidates as
    /// `a=candidate:` lines: repeated in an ICE restart's answer fragment.
    frag_media: Vec<String>,
}

/// What a PATCH did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Patched {
    /// Trickled candidates, taken (204).
    Trickle,
    /// An ICE restart (a new ufrag and pwd from the viewer): our answer
    /// fragment with our new ufrag and pwd (200).
    Restart { fragment: String },
}

impl Session {
    /// Answers `offer` (checked by [`crate::offer::check_offer`]). Returns
    /// the session and the answer SDP, which carries our host candidates.
    pub fn accept(
        offer: &Offer,
        shared: &Shared,
        now_us: u64,
    ) -> Result<(Session, String), WebrtcError> {
        let sdp = SdpOffer::from_sdp_string(&offer.sdp)
            .map_err(|e| WebrtcError::BadOffer(e.to_string()))?;
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut cfg = RtcConfig::new()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .set_crypto_provider(shared.provider.clone())
            .clear_codecs()
            .enable_h264(true)
            // Opus is answered so a client that offers audio (Mainsail,
            // Fluidd) gets a live section; audio flows once the hub has it.
            .enable_opus(true, false)
            .set_stats_interval(Some(Duration::from_secs(1)));
        if shared.playout_delay_max.is_some() {
            // Answered only when the offer has it (str0m takes the offer's id).
            cfg = cfg.set_extension(PLAYOUT_DELAY_EXT_ID, Extension::PlayoutDelay);
        }
        if let Some(cert) = &shared.cert {
            cfg = cfg.set_dtls_cert(cert.clone());
        }
        let mut rtc = cfg.build(shared.at(now_us));
        for addr in &shared.candidates {
            let c = Candidate::host(*addr, "udp").map_err(|e| WebrtcError::Rtc(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        for addr in &shared.tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| WebrtcError::Rtc(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        let answer = rtc.sdp_api().accept_offer(sdp)?.to_sdp_string();
        let frag_media = restart_media_lines(&answer);
        let s = Session {
            rtc,
            shared: shared.clone(),
            ufrag,
            remote_ufrag: offer.ice_ufrag.clone(),
            video: None,
            audio: None,
            connected: false,
            started_video: false,
            ended: None,
            last_rx_us: now_us,
            stats: SessionStats::default(),
            frag_media,
        };
        // str0m reports the media (MediaAdded) only once connected: check
        // the answer it wrote instead.
        if !crate::offer::has_live_h264_video(&answer) {
            return Err(WebrtcError::NoH264(
                "no H.264 video could be negotiated from the offer".into(),
            ));
        }
        Ok((s, answer))
    }

    /// Our ICE username fragment: the first packet from a new address is
    /// routed by it (stun.rs).
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<&'static str> {
        self.ended
    }

    /// A PATCH fragment. Trickled candidates: an ICE-lite server needs none
    /// (it answers the viewer's checks from wherever they come) but takes
    /// them as the spec says. A new ufrag (with its pwd) is an ICE restart
    /// (RFC 9725 §4.4): we take the viewer's new credentials, make new ones
    /// of our own and answer them; media keeps flowing on the pair in use
    /// until the viewer's checks with the new credentials succeed.
    pub fn add_remote(&mut self, frag: &crate::offer::Fragment) -> Result<Patched, WebrtcError> {
        let restart = match (&frag.ice_ufrag, &self.remote_ufrag) {
            (Some(new), Some(old)) => new != old,
            (Some(_), None) => true,
            _ => false,
        };
        let mut out = Patched::Trickle;
        if restart {
            let (Some(ufrag), Some(pass)) = (frag.ice_ufrag.clone(), frag.ice_pwd.clone()) else {
                return Err(WebrtcError::BadFragment(
                    "an ICE restart needs both a=ice-ufrag and a=ice-pwd".into(),
                ));
            };
            let ours = IceCreds::new();
            let mut api = self.rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: ufrag.clone(),
                pass,
            });
            api.set_local_ice_credentials(ours.clone());
            self.remote_ufrag = Some(ufrag);
            self.ufrag = ours.ufrag.clone();
            let mut f = format!(
                "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
                ours.ufrag, ours.pass
            );
            for l in &self.frag_media {
                f.push_str(l);
                f.push_str("\r\n");
            }
            out = Patched::Restart { fragment: f };
        }
        for c in &frag.candidates {
            // A candidate str0m cannot parse (mDNS names) is skipped: the
            // viewer's checks reach us anyway.
            if let Ok(c) = Candidate::from_sdp_string(c) {
                self.rtc.add_remote_candidate(c);
            }
        }
        Ok(out)
    }

    /// A datagram from `from` to our `local` address (a packet of an ICE-TCP
    /// connection when `tcp`).
    pub fn receive(
        &mut self,
        from: SocketAddr,
        local: SocketAddr,
        tcp: bool,
        data: &[u8],
        now_us: u64,
    ) {
        let Ok(contents) = data.try_into() else {
            return; // not STUN, DTLS or RTP: ignore
        };
        let input = Input::Receive(
            self.shared.at(now_us),
            Receive {
                proto: if tcp { Protocol::Tcp } else { Protocol::Udp },
                source: from,
                destination: local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.last_rx_us = now_us;
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!(error = %e, "webrtc: input refused");
            }
        }
    }

    /// One H.264 access unit (Annex B) from the hub. Nothing is sent before
    /// the viewer is connected, and the first frame sent is a keyframe.
    pub fn write_video(&mut self, data: &[u8], pts_us: u64, keyframe: bool) {
        let Some((mid, pt)) = self.video else { return };
        if !self.connected || self.ended.is_some() {
            return;
        }
        if !self.started_video {
            if !keyframe {
                self.stats.frames_waiting_key += 1;
                return;
            }
            self.started_video = true;
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        // RTP video time is 90 kHz; the capture clock is µs.
        let rtp_time = MediaTime::new(pts_us.saturating_mul(9) / 100, Frequency::NINETY_KHZ);
        // Playout delay min 0, max as configured, on every frame: Chromium
        // reads it from each frame's first packet. With max 0 it renders a
        // frame as soon as it is decoded instead of holding it for its
        // smoothed render time (10 ms and more; docs/webrtc.md, "Delay").
        let writer = match self.shared.playout_delay_max {
            Some(max) => writer.playout_delay(
                MediaTime::from_hundredths(0),
                MediaTime::from_hundredths((max.as_millis() / 10).min(0xfff) as u64),
            ),
            None => writer,
        };
        // The capture time as the wallclock: str0m's sender reports map
        // both tracks' RTP times onto it, which is what lip sync needs.
        match writer.write(pt, self.shared.at(pts_us), rtp_time, data.to_vec()) {
            Ok(()) => self.stats.frames_sent += 1,
            Err(e) => tracing::debug!(error = %e, "webrtc: frame not written"),
        }
    }

    /// Whether the viewer takes audio (it offered Opus).
    pub fn wants_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// One Opus packet (20 ms) from the hub's audio track, passed through.
    /// Sent once the picture has started, so sound never runs ahead of it.
    pub fn write_audio(&mut self, data: &[u8], pts_us: u64) {
        let Some((mid, pt)) = self.audio else { return };
        if !self.connected || !self.started_video || self.ended.is_some() {
            return;
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        // Opus RTP time is always 48 kHz (RFC 7587).
        let rtp_time = MediaTime::new(pts_us.saturating_mul(48) / 1000, Frequency::FORTY_EIGHT_KHZ);
        match writer.write(pt, self.shared.at(pts_us), rtp_time, data.to_vec()) {
            Ok(()) => self.stats.audio_sent += 1,
            Err(e) => tracing::debug!(error = %e, "webrtc: audio not written"),
        }
    }

    /// The viewer stopped (DELETE) or the daemon ends the session.
    pub fn close(&mut self, why: &'static str) {
        if self.ended.is_none() {
            self.ended = Some(why);
            self.rtc.disconnect();
        }
    }

    /// Advances time to `now_us` and collects what to send.
    pub fn poll(&mut self, now_us: u64) -> Polled {
        let mut out = Polled::default();
        if self.ended.is_none() && now_us.saturating_sub(self.last_rx_us) >= CONSENT_TIMEOUT_US {
            self.close("consent expired (nothing from the viewer for 30 s)");
        }
        if self.ended.is_some() {
            return out;
        }
        if let Err(e) = self
            .rtc
            .handle_input(Input::Timeout(self.shared.at(now_us)))
        {
            tracing::debug!(error = %e, "webrtc: timeout input");
        }
        // Without bandwidth estimation str0m has no pacer: a frame's packets
        // all come out of this one loop (a test below holds it to that).
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    self.stats.packets_sent += 1;
                    self.stats.bytes_sent += t.contents.len() as u64;
                    out.send.push(Datagram {
                        to: t.destination,
                        data: t.contents.to_vec(),
                        tcp: t.proto == Protocol::Tcp,
                    });
                }
                Ok(Output::Timeout(at)) => {
                    let us = self.shared.us(at);
                    // Wake for consent expiry too.
                    let consent = self.last_rx_us + CONSENT_TIMEOUT_US;
                    out.deadline_us = Some(us.min(consent).max(now_us));
                    break;
                }
                Ok(Output::Event(e)) => self.event(e, &mut out),
                Err(e) => {
                    tracing::debug!(error = %e, "webrtc: session failed");
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
            Event::MediaAdded(m) if m.kind == MediaKind::Video && self.video.is_none() => {
                if let Some(pt) = self.pick_h264(m.mid) {
                    self.video = Some((m.mid, pt));
                }
                if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(m.mid, None) {
                    // str0m drops every queued resend once resends pass 15 %
                    // of a second's bytes. Receivers NACK a missing packet
                    // again while its resend is in flight (aiortc repeats its
                    // whole list on every new gap), so with a 100 ms RTT and
                    // 5 % loss the cap trips, a keyframe packet is never
                    // resent, and the viewer freezes until its jitter buffer
                    // gives up (3-6 s). Resends only cost this viewer's link.
                    tx.set_rtx_cache(self.shared.resend_packets(), RTX_CACHE_AGE, None);
                }
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio && self.audio.is_none() => {
                if let Some(pt) = self.pick(m.mid, Codec::Opus) {
                    self.audio = Some((m.mid, pt));
                }
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                out.keyframe_wanted = true;
            }
            Event::MediaEgressStats(s) => {
                self.stats.nacks = s.nacks;
                self.stats.rtt_us = s.rtt.map(|d| d.as_micros() as u64);
                self.stats.loss = s.loss;
            }
            _ => {}
        }
    }

    /// The first payload type of `codec` the viewer takes in `mid`.
    fn pick(&mut self, mid: Mid, codec: Codec) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt());
        pt
    }

    /// The H.264 payload type to send with: packetization-mode 1 (FU-A,
    /// what every browser offers) first.
    fn pick_h264(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
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
}

/// From our answer: its first `m=` line, that section's `a=mid:`, and our
/// candidates followed by `a=end-of-candidates` (what an ICE restart's
/// answer fragment repeats, RFC 8840 §9).
fn restart_media_lines(answer: &str) -> Vec<String> {
    let lines: Vec<&str> = answer.lines().map(str::trim_end).collect();
    let mut out = Vec::new();
    if let Some(m) = lines.iter().find(|l| l.starts_with("m=")) {
        out.push((*m).to_owned());
    }
    if let Some(mid) = lines.iter().find(|l| l.starts_with("a=mid:")) {
        out.push((*mid).to_owned());
    }
    let mut seen = Vec::new();
    for c in lines.iter().filter(|l| l.starts_with("a=candidate:")) {
        if !seen.contains(c) {
            seen.push(*c);
            out.push((*c).to_owned());
        }
    }
    out.push("a=end-of-candidates".to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer aiortc 1.16 made (recvonly video: VP8, H.264 42001f and 42e01f).
    const AIORTC: &str = include_str!("../testdata/aiortc_offer.sdp");

    /// An offer Chromium 156 made (the player's: recvonly video and audio).
    const CHROMIUM: &str = include_str!("../testdata/chromium_offer.sdp");

    fn shared() -> Shared {
        Shared::new(vec!["127.0.0.1:21089".parse().unwrap()], Instant::now())
    }

    #[test]
    fn answers_an_aiortc_offer_with_h264_and_our_candidate() {
        let offer = crate::offer::check_offer(AIORTC).unwrap();
        let mut sh = shared();
        sh.tcp_candidates = vec!["127.0.0.1:21090".parse().unwrap()];
        let (s, answer) = Session::accept(&offer, &sh, 0).unwrap();
        assert!(
            answer.contains("tcp") && answer.contains("127.0.0.1 21090 typ host tcptype passive"),
            "{answer}"
        );
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("127.0.0.1 21089 typ host"), "{answer}");
        assert!(answer.contains("H264/90000"), "{answer}");
        assert!(answer.contains("a=sendonly"), "{answer}");
        assert!(!answer.contains("VP8"), "{answer}");
        assert!(s.ufrag().len() >= 4);
        assert!(answer.contains(&format!("a=ice-ufrag:{}", s.ufrag())));
    }

    #[test]
    fn playout_delay_is_answered_when_offered_and_can_be_turned_off() {
        const URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
        let offer = crate::offer::check_offer(CHROMIUM).unwrap();
        let (_, answer) = Session::accept(&offer, &shared(), 0).unwrap();
        // Chromium's id for it (5), in the video section only.
        assert!(answer.contains(&format!("a=extmap:5 {URI}")), "{answer}");
        assert_eq!(answer.matches(URI).count(), 1, "{answer}");
        let mut off = shared();
        off.playout_delay_max = None;
        let (_, answer) = Session::accept(&offer, &off, 0).unwrap();
        assert!(!answer.contains(URI), "{answer}");
        // aiortc does not offer it: nothing to answer.
        let offer = crate::offer::check_offer(AIORTC).unwrap();
        let (_, answer) = Session::accept(&offer, &shared(), 0).unwrap();
        assert!(!answer.contains(URI), "{answer}");
    }

    #[test]
    fn the_resend_buffer_is_bounded_by_bytes() {
        let mut sh = shared();
        assert_eq!(sh.resend_packets(), DEFAULT_RESEND_BUFFER_BYTES / 1200);
        sh.resend_buffer = 4 * 1024 * 1024;
        assert_eq!(sh.resend_packets(), 3495);
        sh.resend_buffer = 0;
        assert_eq!(sh.resend_packets(), 16);
    }

    /// A viewer made of str0m itself (recvonly H.264, offering the
    /// playout-delay extension as Chromium does), connected to a session on
    /// simulated time: a frame leaves in one poll, every packet at once, and
    /// arrives with playout delay 0/0.
    #[test]
    fn a_frame_leaves_in_one_burst_with_playout_delay_zero() {
        use str0m::media::Direction;
        let base = Instant::now();
        let srv: SocketAddr = "127.0.0.1:40011".parse().unwrap();
        let cli: SocketAddr = "127.0.0.1:40012".parse().unwrap();
        let sh = Shared::new(vec![srv], base);
        let mut viewer = RtcConfig::new()
            .set_extension(5, Extension::PlayoutDelay)
            .build(base);
        viewer.add_local_candidate(Candidate::host(cli, "udp").unwrap());
        let mut api = viewer.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let checked = crate::offer::check_offer(&offer.to_sdp_string()).unwrap();
        let (mut s, answer) = Session::accept(&checked, &sh, 0).unwrap();
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap();
        viewer.sdp_api().accept_answer(pending, answer).unwrap();

        // Runs both ends until `until` µs; what the viewer got, as media.
        fn run(
            s: &mut Session,
            viewer: &mut Rtc,
            (sh, srv, cli): (&Shared, SocketAddr, SocketAddr),
            now: &mut u64,
            until: u64,
        ) -> Vec<str0m::media::MediaData> {
            let mut got = Vec::new();
            while *now < until {
                viewer.handle_input(Input::Timeout(sh.at(*now))).unwrap();
                while let Ok(o) = viewer.poll_output() {
                    match o {
                        Output::Transmit(t) => s.receive(cli, srv, false, &t.contents, *now),
                        Output::Event(Event::MediaData(m)) => got.push(m),
                        Output::Event(_) => {}
                        Output::Timeout(_) => break,
                    }
                }
                for d in s.poll(*now).send {
                    let r = Receive::new(Protocol::Udp, srv, cli, &d.data).unwrap();
                    viewer.handle_input(Input::Receive(sh.at(*now), r)).unwrap();
                }
                *now += 1_000;
            }
            got
        }
        let mut now = 0u64;
        let net = (&sh, srv, cli);
        run(&mut s, &mut viewer, net, &mut now, 2_000_000);
        assert!(s.is_connected(), "not connected");
        // Drain what connecting left (RTCP, stats) so the next poll is the frame.
        let until = now + 10_000;
        run(&mut s, &mut viewer, net, &mut now, until);
        // A 30 kB keyframe: ~26 RTP packets of at most 1200 bytes.
        let mut au = vec![
            0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65,
        ];
        au.extend((0..30_000u32).map(|i| (i % 251) as u8 | 1));
        s.write_video(&au, now, true);
        let p = s.poll(now);
        assert!(p.send.len() >= 26, "one poll sent {} packets", p.send.len());
        for d in p.send {
            let r = Receive::new(Protocol::Udp, srv, cli, &d.data).unwrap();
            viewer.handle_input(Input::Receive(sh.at(now), r)).unwrap();
        }
        let until = now + 5_000;
        let got = run(&mut s, &mut viewer, net, &mut now, until);
        let frame = got
            .iter()
            .find(|m| m.data.len() > 30_000)
            .expect("the frame arrived whole");
        assert_eq!(
            frame.ext_vals.play_delay_min,
            Some(MediaTime::from_hundredths(0))
        );
        assert_eq!(
            frame.ext_vals.play_delay_max,
            Some(MediaTime::from_hundredths(0))
        );
    }

    #[test]
    fn nothing_is_sent_before_connection_and_consent_expires() {
        let offer = crate::offer::check_offer(AIORTC).unwrap();
        let (mut s, _) = Session::accept(&offer, &shared(), 0).unwrap();
        s.write_video(&[0, 0, 0, 1, 0x65, 1, 2, 3], 0, true);
        let p = s.poll(2_000);
        assert!(p.send.is_empty());
        assert_eq!(s.stats().frames_sent, 0);
        let d = p.deadline_us.unwrap();
        assert!(d <= CONSENT_TIMEOUT_US);
        // Nothing from the viewer for 30 s: over, on simulated time.
        let p = s.poll(CONSENT_TIMEOUT_US);
        assert!(p.deadline_us.is_none());
        assert!(s.ended().unwrap().contains("consent"));
    }

    #[test]
    fn a_new_ufrag_is_an_ice_restart_with_new_credentials_of_ours() {
        let offer = crate::offer::check_offer(AIORTC).unwrap();
        let (mut s, _) = Session::accept(&offer, &shared(), 0).unwrap();
        let old = s.ufrag().to_owned();
        let same = crate::offer::parse_fragment(&format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:x\r\n",
            offer.ice_ufrag.as_deref().unwrap()
        ))
        .unwrap();
        assert_eq!(s.add_remote(&same).unwrap(), Patched::Trickle);
        assert_eq!(s.ufrag(), old);
        let no_pwd = crate::offer::parse_fragment("a=ice-ufrag:zzzz\r\n").unwrap();
        assert_eq!(s.add_remote(&no_pwd).unwrap_err().status(), 400);
        let restart = crate::offer::parse_fragment(
            "a=ice-ufrag:zzzz\r\na=ice-pwd:0123456789012345678901\r\n",
        )
        .unwrap();
        let Patched::Restart { fragment } = s.add_remote(&restart).unwrap() else {
            panic!("not a restart");
        };
        assert_ne!(s.ufrag(), old);
        assert!(fragment.contains(&format!("a=ice-ufrag:{}\r\n", s.ufrag())));
        assert!(fragment.contains("a=ice-pwd:"));
        assert!(fragment.contains("a=mid:"));
        assert!(fragment.contains("127.0.0.1 21089 typ host"));
        assert!(fragment.ends_with("a=end-of-candidates\r\n"));
        // The same new ufrag again is trickle, not another restart.
        assert_eq!(s.add_remote(&restart).unwrap(), Patched::Trickle);
    }
}
