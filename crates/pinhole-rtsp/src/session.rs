//! One control connection's RTSP state machine, pure: a request and the
//! time in, a response and an action out. The I/O shell does what the
//! action says (start or stop sending RTP) and asks [`Conn::deadline`]
//! when the session next needs time.
//!
//! One session per connection (what ffmpeg, GStreamer, VLC and every NVR
//! we know do); closing the connection ends it.

use crate::message::{Method, Request, Response};
use crate::sdp::{self, MediaDesc};
use crate::RtspError;

/// The methods we answer.
pub const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";

#[derive(Clone, Debug)]
pub struct Config {
    /// The stream's path (`/stream`); tracks are `/stream/trackID=N`.
    pub path: String,
    /// Announced in `Session: …;timeout=`; a session with no request (or
    /// RTCP) for this long ends, unless it plays over TCP, where the
    /// connection itself says whether the client is there.
    pub timeout_secs: u32,
    /// Our RTP/RTCP UDP ports, if UDP transport is offered.
    pub udp_server_ports: Option<(u16, u16)>,
    /// The multicast group every multicast session shares, if offered.
    pub multicast: Option<Multicast>,
}

/// One group for the stream: track N's RTP goes to `port + 2N`, its RTCP
/// to the next port (RFC 3550's even/odd pair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multicast {
    pub group: std::net::Ipv4Addr,
    pub port: u16,
    pub ttl: u8,
}

/// How one track's packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the control connection (`$`, channel, length).
    Tcp { rtp: u8, rtcp: u8 },
    /// UDP to the control connection's peer address at these ports.
    Udp { client_rtp: u16, client_rtcp: u16 },
    /// The shared multicast group (`Config::multicast`) at this RTP port
    /// (RTCP: the next); one sender for all such sessions, not this one.
    Multicast { port: u16 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No session yet.
    Init,
    /// At least one track set up.
    Ready,
    Playing,
}

/// What the shell must do after sending the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Start (or resume) sending: (track index, transport) of every track set up.
    Play(Vec<(usize, Transport)>),
    /// Stop sending, keep the session.
    Pause,
    /// Stop sending, forget the session.
    Teardown,
}

#[derive(Debug)]
pub struct Reply {
    pub response: Response,
    pub action: Action,
}

impl Reply {
    fn ok(response: Response) -> Reply {
        Reply {
            response,
            action: Action::None,
        }
    }
}

/// What DESCRIBE describes, from the hub's current stream.
#[derive(Clone, Debug)]
pub struct Media {
    pub tracks: Vec<MediaDesc>,
    /// Changes when the stream's generation does (the SDP `o=` version).
    pub version: u64,
    /// The server address the client connected to, for `o=`.
    pub addr: String,
}

struct Session {
    transports: Vec<(usize, Transport)>,
    playing: bool,
    last_us: u64,
}

pub struct Conn {
    cfg: Config,
    id: String,
    seed: u64,
    session: Option<Session>,
    /// Stable per daemon, for the SDP `o=` line.
    sdp_session: u64,
}

impl Conn {
    /// `session_id`: unguessable (the shell draws it from the OS); `seed`:
    /// random bits for SSRCs.
    pub fn new(cfg: Config, session_id: String, seed: u64, sdp_session: u64) -> Conn {
        Conn {
            cfg,
            id: session_id,
            seed,
            session: None,
            sdp_session,
        }
    }

    pub fn state(&self) -> State {
        match &self.session {
            None => State::Init,
            Some(s) if s.playing => State::Playing,
            Some(_) => State::Ready,
        }
    }

    /// The SSRC of a track's RTP stream.
    pub fn ssrc(&self, track: usize) -> u32 {
        let x = self
            .seed
            .rotate_left((track as u32 % 2) * 32)
            .wrapping_add(track as u64);
        (x >> 32) as u32 ^ x as u32
    }

    /// Whether a session exists (one counted against the server's limit).
    pub fn has_session(&self) -> bool {
        self.session.is_some()
    }

    /// The client showed signs of life (RTCP over TCP or UDP).
    pub fn activity(&mut self, now_us: u64) {
        if let Some(s) = &mut self.session {
            s.last_us = now_us;
        }
    }

    /// When the session ends unless the client is heard from; `None`: no
    /// deadline (no session, or playing over TCP).
    pub fn deadline(&self) -> Option<u64> {
        let s = self.session.as_ref()?;
        let tcp_only = s
            .transports
            .iter()
            .all(|(_, t)| matches!(t, Transport::Tcp { .. }));
        if s.playing && tcp_only {
            return None;
        }
        Some(
            s.last_us
                .saturating_add(u64::from(self.cfg.timeout_secs) * 1_000_000),
        )
    }

    /// At or after [`deadline`](Self::deadline): the session is over.
    pub fn on_timeout(&mut self, now_us: u64) -> Action {
        match self.deadline() {
            Some(d) if now_us >= d => {
                self.session = None;
                Action::Teardown
            }
            _ => Action::None,
        }
    }

    /// Answers one (already authorised) request. `media`: the stream as
    /// it is now, `None` before the first keyframe.
    pub fn handle(&mut self, req: &Request, media: Option<&Media>, now_us: u64) -> Reply {
        match self.try_handle(req, media, now_us) {
            Ok(r) => r,
            Err(e) => Reply::ok(Response::error(e.status(), &e.to_string())),
        }
    }

    fn try_handle(
        &mut self,
        req: &Request,
        media: Option<&Media>,
        now_us: u64,
    ) -> Result<Reply, RtspError> {
        if let Some(r) = req.header("Require") {
            return Ok(Reply::ok(
                Response::error(551, "no options are supported").header("Unsupported", r),
            ));
        }
        // Any request naming our session keeps it alive.
        let named = req
            .header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim());
        if let Some(n) = named {
            if self.session.is_none() || n != self.id {
                return Err(RtspError::SessionNotFound);
            }
            self.activity(now_us);
        }
        match &req.method {
            Method::Options => Ok(Reply::ok(Response::new(200).header("Public", PUBLIC))),
            Method::Describe => self.describe(req, media),
            Method::Setup => self.setup(req, media, now_us),
            Method::Play => {
                self.check_path(req)?;
                let id = self.session_header();
                let s = self.session_for(named, "PLAY")?;
                s.playing = true;
                s.last_us = now_us;
                let transports = s.transports.clone();
                let resp = Response::new(200)
                    .header("Session", id)
                    .header("Range", "npt=now-");
                Ok(Reply {
                    response: resp,
                    action: Action::Play(transports),
                })
            }
            Method::Pause => {
                self.check_path(req)?;
                let id = self.session_header();
                let s = self.session_for(named, "PAUSE")?;
                let was = s.playing;
                s.playing = false;
                s.last_us = now_us;
                Ok(Reply {
                    response: Response::new(200).header("Session", id),
                    action: if was { Action::Pause } else { Action::None },
                })
            }
            Method::Teardown => {
                self.check_path(req)?;
                self.session_for(named, "TEARDOWN")?;
                self.session = None;
                Ok(Reply {
                    response: Response::new(200),
                    action: Action::Teardown,
                })
            }
            // Keep-alive (ffmpeg, VLC); we have no parameters to report.
            Method::GetParameter | Method::SetParameter => {
                let mut r = Response::new(200);
                if named.is_some() {
                    r = r.header("Session", self.session_header());
                }
                Ok(Reply::ok(r))
            }
            Method::Other(m) => Err(RtspError::NotImplemented(crate::message::clip(m))),
        }
    }

    fn session_header(&self) -> String {
        format!("{};timeout={}", self.id, self.cfg.timeout_secs)
    }

    fn session_for(&mut self, named: Option<&str>, what: &str) -> Result<&mut Session, RtspError> {
        match (&mut self.session, named) {
            (Some(s), Some(_)) => Ok(s),
            (Some(_), None) => Err(RtspError::BadRequest(format!(
                "{what} needs the Session header"
            ))),
            (None, _) => Err(RtspError::WrongState(format!("{what} before SETUP"))),
        }
    }

    fn is_stream_path(&self, path: &str) -> bool {
        let base = self.cfg.path.trim_end_matches('/');
        path == base || path.strip_prefix(base) == Some("/")
    }

    /// Aggregate requests name the stream (or one of its tracks).
    fn check_path(&self, req: &Request) -> Result<(), RtspError> {
        let p = req.path();
        if self.is_stream_path(p) || self.track_of(p).is_some() || p == "*" {
            Ok(())
        } else {
            Err(RtspError::NotFound(crate::message::clip(p)))
        }
    }

    /// `/stream/trackID=N` → N.
    fn track_of(&self, path: &str) -> Option<usize> {
        let base = self.cfg.path.trim_end_matches('/');
        let rest = path.strip_prefix(base)?.strip_prefix("/trackID=")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.len() > 3 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest.parse().ok()
    }

    fn describe(&mut self, req: &Request, media: Option<&Media>) -> Result<Reply, RtspError> {
        if !self.is_stream_path(req.path()) {
            return Err(RtspError::NotFound(crate::message::clip(req.path())));
        }
        if let Some(accept) = req.header("Accept") {
            if !accept.split(',').any(|a| {
                let a = a.split(';').next().unwrap_or("").trim();
                a == "application/sdp" || a == "*/*" || a == "application/*"
            }) {
                return Err(RtspError::NotAcceptable);
            }
        }
        let media = media.ok_or(RtspError::NotReady)?;
        let sdp = sdp::describe(&media.tracks, self.sdp_session, media.version, &media.addr);
        let base = req.uri.split(['?', '#']).next().unwrap_or("");
        let base = format!("{}/", base.trim_end_matches('/'));
        let mut r = Response::new(200).header("Content-Base", base);
        r.body = Some(("application/sdp", sdp));
        Ok(Reply::ok(r))
    }

    fn setup(
        &mut self,
        req: &Request,
        media: Option<&Media>,
        now_us: u64,
    ) -> Result<Reply, RtspError> {
        let media = media.ok_or(RtspError::NotReady)?;
        let path = req.path();
        let track = match self.track_of(path) {
            Some(t) => t,
            // A single-track stream may be set up by its own URL.
            None if self.is_stream_path(path) && media.tracks.len() == 1 => 0,
            None => return Err(RtspError::NotFound(crate::message::clip(path))),
        };
        if track >= media.tracks.len() {
            return Err(RtspError::NotFound(format!("no track {track}")));
        }
        if self.session.as_ref().is_some_and(|s| s.playing) {
            return Err(RtspError::WrongState(
                "SETUP while playing: PAUSE first".into(),
            ));
        }
        if self.session.is_some() && req.header("Session").is_none() {
            return Err(RtspError::WrongState(
                "one session per connection: send its Session header".into(),
            ));
        }
        let spec = req
            .header("Transport")
            .ok_or_else(|| RtspError::BadRequest("SETUP needs a Transport header".into()))?;
        let transport = choose_transport(
            spec,
            track,
            self.cfg.udp_server_ports.is_some(),
            self.cfg.multicast.as_ref(),
        )
        .ok_or(RtspError::UnsupportedTransport)?;
        let ssrc = self.ssrc(track);
        let s = self.session.get_or_insert(Session {
            transports: Vec::new(),
            playing: false,
            last_us: now_us,
        });
        s.last_us = now_us;
        s.transports.retain(|(t, _)| *t != track);
        s.transports.push((track, transport));
        s.transports.sort_by_key(|(t, _)| *t);
        let answer = match transport {
            Transport::Tcp { rtp, rtcp } => {
                format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={ssrc:08X}")
            }
            Transport::Udp {
                client_rtp,
                client_rtcp,
            } => {
                let (a, b) = self.cfg.udp_server_ports.unwrap_or_default();
                format!(
                    "RTP/AVP;unicast;client_port={client_rtp}-{client_rtcp};server_port={a}-{b};ssrc={ssrc:08X}"
                )
            }
            // No ssrc: the shared sender's, not this session's.
            Transport::Multicast { port } => {
                let m = self
                    .cfg
                    .multicast
                    .as_ref()
                    .ok_or(RtspError::UnsupportedTransport)?;
                format!(
                    "RTP/AVP;multicast;destination={};port={port}-{};ttl={}",
                    m.group,
                    port.saturating_add(1),
                    m.ttl
                )
            }
        };
        Ok(Reply::ok(
            Response::new(200)
                .header("Transport", answer)
                .header("Session", self.session_header()),
        ))
    }
}

/// The first transport in the client's list we can do.
fn choose_transport(
    spec: &str,
    track: usize,
    udp: bool,
    multicast: Option<&Multicast>,
) -> Option<Transport> {
    for t in spec.split(',') {
        let mut parts = t.split(';').map(str::trim);
        let proto = parts.next()?;
        let params: Vec<&str> = parts.collect();
        if params.iter().any(|p| p.eq_ignore_ascii_case("multicast")) {
            // The group and ports are ours to choose (a client cannot aim
            // the stream at another group or host).
            let is_udp =
                proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVP/UDP");
            match multicast {
                Some(m) if is_udp => {
                    let port = u16::try_from(u32::from(m.port) + 2 * u32::try_from(track).ok()?)
                        .ok()
                        .filter(|p| *p < u16::MAX)?;
                    return Some(Transport::Multicast { port });
                }
                _ => continue,
            }
        }
        if params.iter().any(|p| {
            p.to_ascii_lowercase().starts_with("mode=") && !p.to_ascii_lowercase().contains("play")
        }) {
            continue; // RECORD
        }
        let value = |name: &str| {
            params.iter().find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
            })
        };
        if proto.eq_ignore_ascii_case("RTP/AVP/TCP") {
            let (rtp, rtcp) = match value("interleaved") {
                Some(v) => {
                    let (a, b) = ports::<u8>(v)?;
                    (a, b)
                }
                None => {
                    let a = u8::try_from(track * 2).ok()?;
                    (a, a.checked_add(1)?)
                }
            };
            return Some(Transport::Tcp { rtp, rtcp });
        }
        if udp
            && (proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVP/UDP"))
        {
            let Some((a, b)) = value("client_port").and_then(ports::<u16>) else {
                continue;
            };
            if a == 0 || b == 0 {
                continue;
            }
            return Some(Transport::Udp {
                client_rtp: a,
                client_rtcp: b,
            });
        }
    }
    None
}

/// `a-b` or `a` (then b = a + 1).
fn ports<T: std::str::FromStr + Copy + TryFrom<u32> + Into<u32>>(v: &str) -> Option<(T, T)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = v.trim().parse().ok()?;
            let b = T::try_from(a.into().checked_add(1)?).ok()?;
            Some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Input};

    fn cfg() -> Config {
        Config {
            path: "/stream".into(),
            timeout_secs: 60,
            udp_server_ports: Some((20000, 20001)),
            multicast: None,
        }
    }

    fn media() -> Media {
        Media {
            tracks: vec![
                MediaDesc::H264 {
                    sps: vec![0x67, 0x42, 0xc0, 0x1f],
                    pps: vec![0x68, 0xce],
                    fps: None,
                    width: 320,
                    height: 240,
                },
                MediaDesc::Opus { channels: 1 },
            ],
            version: 1,
            addr: "127.0.0.1".into(),
        }
    }

    fn req(method: &str, uri: &str, headers: &[&str]) -> Request {
        let mut s = format!("{method} {uri} RTSP/1.0\r\nCSeq: 1\r\n");
        for h in headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        match parse(s.as_bytes()) {
            Ok(Some((Input::Request(r), _))) => r,
            other => panic!("{other:?}"),
        }
    }

    const U: &str = "rtsp://127.0.0.1:8554/stream";

    #[test]
    fn ffmpeg_over_tcp() {
        let m = media();
        let mut c = Conn::new(cfg(), "S1D".into(), 7, 99);
        let r = c.handle(&req("OPTIONS", U, &[]), Some(&m), 0);
        assert_eq!(r.response.get("Public"), Some(PUBLIC));
        let r = c.handle(
            &req("DESCRIBE", U, &["Accept: application/sdp"]),
            Some(&m),
            0,
        );
        assert_eq!(r.response.status, 200);
        assert_eq!(
            r.response.get("Content-Base"),
            Some("rtsp://127.0.0.1:8554/stream/")
        );
        let sdp = &r.response.body.as_ref().unwrap().1;
        assert!(sdp.contains("a=control:trackID=1\r\n"));
        let r = c.handle(
            &req(
                "SETUP",
                &format!("{U}/trackID=0"),
                &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
            ),
            Some(&m),
            0,
        );
        assert_eq!(r.response.status, 200, "{:?}", r.response);
        let t = r.response.get("Transport").unwrap();
        assert!(
            t.starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="),
            "{t}"
        );
        assert_eq!(r.response.get("Session"), Some("S1D;timeout=60"));
        assert_eq!(c.state(), State::Ready);
        let r = c.handle(
            &req(
                "SETUP",
                &format!("{U}/trackID=1"),
                &[
                    "Transport: RTP/AVP/TCP;unicast;interleaved=2-3",
                    "Session: S1D",
                ],
            ),
            Some(&m),
            0,
        );
        assert_eq!(r.response.status, 200);
        let r = c.handle(
            &req(
                "PLAY",
                &format!("{U}/"),
                &["Session: S1D", "Range: npt=0.000-"],
            ),
            Some(&m),
            5,
        );
        assert_eq!(r.response.status, 200);
        assert_eq!(r.response.get("Range"), Some("npt=now-"));
        assert_eq!(
            r.action,
            Action::Play(vec![
                (0, Transport::Tcp { rtp: 0, rtcp: 1 }),
                (1, Transport::Tcp { rtp: 2, rtcp: 3 })
            ])
        );
        assert_eq!(c.deadline(), None, "TCP: the connection is the keep-alive");
        let r = c.handle(
            &req("GET_PARAMETER", &format!("{U}/"), &["Session: S1D"]),
            Some(&m),
            6,
        );
        assert_eq!(r.response.status, 200);
        let r = c.handle(&req("PAUSE", U, &["Session: S1D"]), Some(&m), 7);
        assert_eq!(r.action, Action::Pause);
        assert_eq!(c.deadline(), Some(7 + 60_000_000));
        let r = c.handle(&req("TEARDOWN", U, &["Session: S1D"]), Some(&m), 8);
        assert_eq!((r.response.status, r.action), (200, Action::Teardown));
        assert_eq!(c.state(), State::Init);
        assert_ne!(c.ssrc(0), c.ssrc(1));
    }

    #[test]
    fn udp_session_times_out() {
        let m = media();
        let mut c = Conn::new(cfg(), "S".into(), 1, 1);
        let r = c.handle(
            &req(
                "SETUP",
                &format!("{U}/trackID=0"),
                &["Transport: RTP/AVP/UDP;unicast;client_port=5000-5001"],
            ),
            Some(&m),
            0,
        );
        let t = r.response.get("Transport").unwrap();
        assert!(
            t.starts_with("RTP/AVP;unicast;client_port=5000-5001;server_port=20000-20001;ssrc="),
            "{t}"
        );
        let r = c.handle(&req("PLAY", U, &["Session: S"]), Some(&m), 1_000_000);
        assert_eq!(
            r.action,
            Action::Play(vec![(
                0,
                Transport::Udp {
                    client_rtp: 5000,
                    client_rtcp: 5001
                }
            )])
        );
        assert_eq!(c.deadline(), Some(61_000_000));
        c.handle(
            &req("GET_PARAMETER", U, &["Session: S"]),
            Some(&m),
            30_000_000,
        );
        assert_eq!(c.on_timeout(61_000_000), Action::None, "kept alive");
        assert_eq!(c.on_timeout(90_000_000), Action::Teardown);
        assert_eq!(c.state(), State::Init);
    }

    #[test]
    fn errors_have_the_right_codes() {
        let m = media();
        let mut c = Conn::new(cfg(), "S".into(), 1, 1);
        let st = |c: &mut Conn, r: Request, m: Option<&Media>| c.handle(&r, m, 0).response.status;
        assert_eq!(
            st(&mut c, req("DESCRIBE", "rtsp://h/other", &[]), Some(&m)),
            404
        );
        assert_eq!(st(&mut c, req("DESCRIBE", U, &[]), None), 503);
        assert_eq!(
            st(&mut c, req("DESCRIBE", U, &["Accept: text/html"]), Some(&m)),
            406
        );
        assert_eq!(
            st(&mut c, req("PLAY", U, &[]), Some(&m)),
            455,
            "PLAY without SETUP"
        );
        assert_eq!(
            st(&mut c, req("PLAY", U, &["Session: nope"]), Some(&m)),
            454
        );
        let tcp = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1";
        assert_eq!(
            st(
                &mut c,
                req("SETUP", &format!("{U}/trackID=7"), &[tcp]),
                Some(&m)
            ),
            404
        );
        assert_eq!(
            st(
                &mut c,
                req("SETUP", &format!("{U}/trackID=x"), &[tcp]),
                Some(&m)
            ),
            404
        );
        assert_eq!(
            st(
                &mut c,
                req("SETUP", &format!("{U}/trackID=0"), &[]),
                Some(&m)
            ),
            400
        );
        assert_eq!(
            st(
                &mut c,
                req(
                    "SETUP",
                    &format!("{U}/trackID=0"),
                    &["Transport: RTP/AVP;multicast"]
                ),
                Some(&m)
            ),
            461
        );
        assert_eq!(st(&mut c, req("RECORD", U, &[]), Some(&m)), 501);
        assert_eq!(
            st(
                &mut c,
                req("OPTIONS", U, &["Require: play.basic"]),
                Some(&m)
            ),
            551
        );
        assert_eq!(c.state(), State::Init);
        // UDP not offered: 461.
        let mut c = Conn::new(
            Config {
                udp_server_ports: None,
                ..cfg()
            },
            "S".into(),
            1,
            1,
        );
        assert_eq!(
            st(
                &mut c,
                req(
                    "SETUP",
                    &format!("{U}/trackID=0"),
                    &["Transport: RTP/AVP;unicast;client_port=5000-5001"]
                ),
                Some(&m)
            ),
            461
        );
        // SETUP while playing is refused.
        let mut c = Conn::new(cfg(), "S".into(), 1, 1);
        assert_eq!(
            st(
                &mut c,
                req("SETUP", &format!("{U}/trackID=0"), &[tcp]),
                Some(&m)
            ),
            200
        );
        assert_eq!(st(&mut c, req("PLAY", U, &["Session: S"]), Some(&m)), 200);
        assert_eq!(
            st(
                &mut c,
                req("SETUP", &format!("{U}/trackID=1"), &[tcp, "Session: S"]),
                Some(&m)
            ),
            455
        );
        assert_eq!(
            st(&mut c, req("PLAY", U, &[]), Some(&m)),
            400,
            "no Session header"
        );
    }

    #[test]
    fn transports() {
        assert_eq!(
            choose_transport("RTP/AVP/TCP;unicast", 1, false, None),
            Some(Transport::Tcp { rtp: 2, rtcp: 3 })
        );
        assert_eq!(
            choose_transport(
                "RTP/AVP;multicast, RTP/AVP;unicast;client_port=7000",
                0,
                true,
                None
            ),
            Some(Transport::Udp {
                client_rtp: 7000,
                client_rtcp: 7001
            })
        );
        assert_eq!(
            choose_transport("RTP/AVP;unicast;client_port=65535", 0, true, None),
            None
        );
        assert_eq!(
            choose_transport("RTP/AVP/TCP;interleaved=300-301", 0, true, None),
            None
        );
        assert_eq!(
            choose_transport("RTP/AVP/TCP;unicast;mode=record", 0, true, None),
            None
        );
        assert_eq!(choose_transport("", 0, true, None), None);
    }

    #[test]
    fn multicast_when_offered() {
        let m = Multicast {
            group: "239.0.0.7".parse().unwrap(),
            port: 5000,
            ttl: 1,
        };
        let spec = "RTP/AVP;multicast, RTP/AVP;unicast;client_port=7000";
        assert_eq!(
            choose_transport(spec, 1, true, Some(&m)),
            Some(Transport::Multicast { port: 5002 }),
            "track 1 on the group's second pair"
        );
        // The client's destination and port are not taken.
        assert_eq!(
            choose_transport(
                "RTP/AVP;multicast;destination=10.0.0.9;port=9000-9001",
                0,
                false,
                Some(&m)
            ),
            Some(Transport::Multicast { port: 5000 })
        );
        assert_eq!(
            choose_transport("RTP/AVP/TCP;multicast", 0, true, Some(&m)),
            None
        );
        let top = Multicast {
            port: 65534,
            ..m.clone()
        };
        assert_eq!(
            choose_transport("RTP/AVP;multicast", 1, true, Some(&top)),
            None
        );
        let mut c = Conn::new(
            Config {
                multicast: Some(m),
                ..cfg()
            },
            "S".into(),
            1,
            1,
        );
        let r = c.handle(
            &req(
                "SETUP",
                &format!("{U}/trackID=0"),
                &["Transport: RTP/AVP;multicast"],
            ),
            Some(&media()),
            0,
        );
        assert_eq!(r.response.status, 200);
        let t = r.response.headers.iter().find(|(k, _)| *k == "Transport");
        assert_eq!(
            t.map(|(_, v)| v.as_str()),
            Some("RTP/AVP;multicast;destination=239.0.0.7;port=5000-5001;ttl=1")
        );
        // A multicast session keeps itself alive by requests, as UDP does.
        assert!(c.deadline().is_some());
    }
}
