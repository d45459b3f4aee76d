//! The RTSP server's I/O (`rtsp://<host>:8554/stream`): one task per
//! control connection, which feeds requests to the pure state machine in
//! `pinhole-rtsp`, asks the access policy (auth/rtsp.rs), and while
//! playing pulls frames from the hub like every other viewer and sends
//! them as RTP (interleaved in the connection, or UDP). A client that
//! accepts nothing for 10 s is dropped; until then its backlog is the
//! hub's ring (it skips to a keyframe), never our memory, and no other
//! viewer waits for it.
//!
//! Fan-out cost: each frame is split into RTP payloads once (`Fragments`),
//! and a session only writes its own headers (sequence numbers, SSRC,
//! timestamp offset, interleaved channel) and hands headers and the
//! shared payloads to one `writev`; sessions are tasks of the
//! multi-thread runtime, so they spread over its workers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pinhole_hub::{Frame, TrackId, Viewer, VIDEO};
use pinhole_media::Codec;
use pinhole_rtsp::auth::{self as wire, Authorization};
use pinhole_rtsp::rtp::{self, Fragment, Packetizer};
use pinhole_rtsp::sdp::MediaDesc;
pub use pinhole_rtsp::Multicast;
use pinhole_rtsp::{rtcp, Action, Conn, Input, Media, Method, Request, Response, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::access::{Credentials, Decision, Refusal};
use crate::limits::{ViewerLimits, ViewerPermit};
use crate::state::Output;
use crate::AppState;

/// The stream's path.
pub const PATH: &str = "/stream";
/// Default port (RTSP's registered one is 554, which needs root).
pub const DEFAULT_PORT: u16 = 8554;
/// A client whose socket accepts nothing for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Sender reports per track, at most this often.
const SR_INTERVAL_US: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub struct RtspConfig {
    /// Control connections in all, and per client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Sessions (set up, playing or not). Playing ones also hold a viewer
    /// slot of the shared viewer limits (`[security] max_viewers`).
    pub max_sessions: usize,
    /// Announced in `Session: …;timeout=`.
    pub session_timeout_secs: u32,
    /// Offer UDP unicast besides TCP interleaved.
    pub udp: bool,
    /// Offer multicast: one group shared by every multicast session.
    pub multicast: Option<Multicast>,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            max_connections: 256,
            max_connections_per_ip: 64,
            max_sessions: 256,
            session_timeout_secs: 60,
            udp: true,
            multicast: None,
        }
    }
}

/// A bound RTSP listener with its UDP RTP/RTCP sockets.
pub struct RtspListener {
    tcp: TcpListener,
    udp: Option<Arc<UdpPair>>,
}

struct UdpPair {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    ports: (u16, u16),
}

impl RtspListener {
    /// Binds TCP `addr` and, with `udp`, the UDP ports for RTP and RTCP:
    /// the TCP port and the next (8554 and 8555 for the default: fixed, so
    /// a firewall rule can name them; RTP even, RTCP odd as RFC 3550
    /// suggests), or any free ones when the TCP port is 0.
    pub async fn bind(addr: SocketAddr, udp: bool) -> std::io::Result<RtspListener> {
        let tcp = TcpListener::bind(addr).await?;
        let udp = if udp {
            let port = addr.port();
            let (a, b) = match port.checked_add(1) {
                Some(next) if port != 0 => (port, next),
                _ => (0, 0),
            };
            let rtp = UdpSocket::bind(SocketAddr::new(addr.ip(), a)).await?;
            let rtcp = UdpSocket::bind(SocketAddr::new(addr.ip(), b)).await?;
            let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
            Some(Arc::new(UdpPair { rtp, rtcp, ports }))
        } else {
            None
        };
        Ok(RtspListener { tcp, udp })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

struct Shared {
    state: Arc<AppState>,
    cfg: RtspConfig,
    connections: Arc<ViewerLimits>,
    sessions: AtomicUsize,
    sdp_session: u64,
    fragments: Fragments,
    mcast: Option<Arc<Mcast>>,
}

/// The multicast sender: one packetizer per track, shared by every
/// multicast session, running while at least one of them plays.
struct Mcast {
    group: Multicast,
    socket: UdpSocket,
    watchers: AtomicUsize,
    wake: tokio::sync::Notify,
}

/// A playing multicast session, counted for as long as this lives.
struct McastGuard(Arc<Mcast>);

impl McastGuard {
    fn new(m: &Arc<Mcast>) -> McastGuard {
        m.watchers.fetch_add(1, Ordering::Relaxed);
        m.wake.notify_one();
        McastGuard(m.clone())
    }
}

impl Drop for McastGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
        self.0.wake.notify_one();
    }
}

impl Mcast {
    fn open(group: Multicast) -> std::io::Result<Mcast> {
        let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_multicast_ttl_v4(u32::from(group.ttl))?;
        // Receivers on this host (and the tests, on loopback) get it too.
        socket.set_multicast_loop_v4(true)?;
        socket.set_nonblocking(true)?;
        Ok(Mcast {
            group,
            socket: UdpSocket::from_std(socket)?,
            watchers: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
        })
    }
}

/// Sends the hub's frames to the group while anyone watches. Sequence
/// numbers continue across idle spells, like a session's.
async fn multicast_sender(
    shared: Arc<Shared>,
    m: Arc<Mcast>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut outs: HashMap<TrackId, Out> = HashMap::new();
    let mut heads = Vec::new();
    let seed = random_u64();
    loop {
        while m.watchers.load(Ordering::Relaxed) == 0 {
            tokio::select! {
                _ = stop.changed() => return,
                _ = m.wake.notified() => {}
            }
        }
        let mut viewer = shared.state.hub.subscribe();
        while m.watchers.load(Ordering::Relaxed) > 0 {
            let frame = tokio::select! {
                _ = stop.changed() => return,
                _ = m.wake.notified() => continue,
                f = viewer.recv() => match f {
                    Some(f) => f,
                    None => return,
                },
            };
            let out = match outs.entry(frame.track.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let ids = media(&shared.state, None)
                        .map(|(_, ids)| ids)
                        .unwrap_or_default();
                    let Some(i) = ids.iter().position(|id| *id == frame.track.id) else {
                        continue;
                    };
                    let Some(port) = u16::try_from(usize::from(m.group.port) + 2 * i).ok() else {
                        continue;
                    };
                    e.insert(new_out(
                        frame.track.id,
                        i,
                        Transport::Multicast { port },
                        seed,
                    ))
                }
            };
            let Transport::Multicast { port } = out.transport else {
                continue;
            };
            let frags = shared.fragments.of(&frame);
            let group = IpAddr::V4(m.group.group);
            send_datagrams(
                &frame,
                &frags,
                out,
                (&m.socket, &m.socket),
                (
                    SocketAddr::new(group, port),
                    SocketAddr::new(group, port.saturating_add(1)),
                ),
                &mut heads,
            )
            .await;
        }
    }
}

/// The latest frames split into RTP payloads, shared by the sessions that
/// send them: the start-code scan and FU-A split of a frame then happen
/// once, not once per session (with 50 sessions that was most of the
/// server's time per frame). Keyed by the frame's allocation: a `Weak`
/// keeps the address from being reused while the entry lives, without
/// keeping the frame's bytes.
#[derive(Default)]
struct Fragments(Mutex<VecDeque<Split>>);

/// A frame (by allocation) and its RTP payloads.
type Split = (Weak<Frame>, Arc<[Fragment]>);

/// Enough for every track's live edge and sessions a few frames behind;
/// older frames are split again by whoever asks.
const FRAGMENT_CACHE: usize = 8;

impl Fragments {
    fn of(&self, frame: &Arc<Frame>) -> Arc<[Fragment]> {
        let key = Arc::as_ptr(frame);
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, f)) = lock().iter().find(|(w, _)| w.as_ptr() == key) {
            return f.clone();
        }
        // Split outside the lock: two sessions may both split a frame
        // (same result), none waits for another's split.
        let f: Arc<[Fragment]> = if frame.is_video() {
            rtp::h264_fragments(&frame.au.data).into()
        } else {
            Arc::new([Fragment::whole(frame.au.data.clone())])
        };
        let mut c = lock();
        if !c.iter().any(|(w, _)| w.as_ptr() == key) {
            if c.len() >= FRAGMENT_CACHE {
                c.pop_front();
            }
            c.push_back((Arc::downgrade(frame), f.clone()));
        }
        f
    }
}

/// Serves RTSP on `listeners` until `shutdown` completes.
pub async fn serve(
    listeners: Vec<RtspListener>,
    state: Arc<AppState>,
    cfg: RtspConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mcast = match cfg.multicast.clone().map(Mcast::open) {
        Some(Ok(m)) => Some(Arc::new(m)),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "rtsp multicast off: cannot open its socket");
            None
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        mcast: mcast.clone(),
        connections: ViewerLimits::new(cfg.max_connections, cfg.max_connections_per_ip),
        sessions: AtomicUsize::new(0),
        sdp_session: random_u64() >> 2,
        fragments: Fragments::default(),
        state,
        cfg,
    });
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(m) = mcast {
        tasks.push(tokio::spawn(multicast_sender(
            shared.clone(),
            m,
            stop_rx.clone(),
        )));
    }
    for l in listeners {
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            if let Some(udp) = &l.udp {
                // Clients' RTCP receiver reports and NAT punches: read and
                // dropped, so they never fill the socket buffers.
                tokio::spawn(drain(udp.clone(), stop.clone()));
            }
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    r = l.tcp.accept() => match r {
                        Ok((_, peer)) if !shared.state.config.security.accept_from.accepts(peer.ip()) => {
                            // Closed unread ([security] accept_from).
                            tracing::debug!(%peer, "rtsp refused: not a LAN address");
                        }
                        Ok((s, peer)) => {
                            let permit = match shared.connections.acquire(peer.ip()) {
                                Ok(p) => p,
                                Err(e) => {
                                    tracing::debug!(%peer, error = %e, "rtsp connection refused");
                                    tokio::spawn(refuse(s, e.to_string()));
                                    continue;
                                }
                            };
                            let _ = s.set_nodelay(true);
                            let shared = shared.clone();
                            let udp = l.udp.clone();
                            let stop = stop.clone();
                            tokio::spawn(async move {
                                connection(s, peer, shared, udp, stop).await;
                                drop(permit);
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "rtsp accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
}

async fn drain(udp: Arc<UdpPair>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut a = [0u8; 2048];
    let mut b = [0u8; 2048];
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = udp.rtp.recv_from(&mut a) => {}
            _ = udp.rtcp.recv_from(&mut b) => {}
        }
    }
}

/// Over the connection limit: say so and close.
async fn refuse(mut s: TcpStream, why: String) {
    let resp = Response::error(503, &why).encode(None);
    let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&resp)).await;
}

/// Sessions counted against `max_sessions` for as long as this lives.
struct SessionSlot(Arc<Shared>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One track being sent.
struct Out {
    hub_track: TrackId,
    transport: Transport,
    pk: Packetizer,
    ts_offset: u32,
    /// Capture time (µs) of the last sender report.
    last_sr: Option<u64>,
    video: bool,
}

/// A playing session: its hub cursor and what holds its slots.
struct Playing {
    viewer: Viewer,
    /// Set when a track goes to the multicast group.
    _mcast: Option<McastGuard>,
    _permit: ViewerPermit,
    _counted: crate::state::ViewerGuard,
}

enum End {
    Closed(&'static str),
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    udp: Option<Arc<UdpPair>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let local = stream.local_addr().ok();
    let (mut rd, mut wr) = stream.into_split();
    let state = shared.state.clone();
    let cfg = pinhole_rtsp::Config {
        path: PATH.into(),
        timeout_secs: shared.cfg.session_timeout_secs,
        udp_server_ports: udp.as_ref().map(|u| u.ports),
        multicast: shared.mcast.as_ref().map(|m| m.group.clone()),
    };
    let mut conn = Conn::new(cfg, random_hex(8), random_u64(), shared.sdp_session);
    let nonce = random_hex(16);
    let mut authorized = false;
    let mut slot: Option<SessionSlot> = None;
    let mut playing: Option<Playing> = None;
    // Per track index; kept across PAUSE/PLAY so sequence numbers continue.
    let mut outs: HashMap<usize, Out> = HashMap::new();
    let mut buf = BytesMut::with_capacity(4096);
    let header_timeout = state.config.security.header_read_timeout;
    let idle_timeout = Duration::from_secs(u64::from(shared.cfg.session_timeout_secs));
    let mut last_input = Instant::now();
    let mut partial_since: Option<Instant> = None;
    let mut scratch = Vec::with_capacity(4 * 1024);
    // One timer, moved only when what it waits for changes (not re-made
    // for every frame sent: that was a timer-wheel insert per frame per
    // session).
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut timer_on = false;
    let mut armed_for = None;
    let End::Closed(reason) = loop {
        // When this connection next needs attention without input.
        let key = (
            conn.deadline(),
            partial_since,
            last_input,
            conn.has_session(),
        );
        if armed_for != Some(key) {
            armed_for = Some(key);
            let now_us = state.clock.now_us();
            let session_wait = conn
                .deadline()
                .map(|d| Duration::from_micros(d.saturating_sub(now_us)));
            let conn_wait = match (partial_since, conn.has_session()) {
                (Some(t), _) => {
                    Some((t + header_timeout).saturating_duration_since(Instant::now()))
                }
                (None, false) => {
                    Some((last_input + idle_timeout).saturating_duration_since(Instant::now()))
                }
                (None, true) => None,
            };
            let wait = match (session_wait, conn_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            timer_on = wait.is_some();
            if let Some(w) = wait {
                timer.as_mut().reset(tokio::time::Instant::now() + w);
            }
        }
        tokio::select! {
            _ = stop.changed() => break End::Closed("daemon shutting down"),
            r = rd.read_buf(&mut buf) => {
                match r {
                    Ok(0) | Err(_) => break End::Closed("client closed the connection"),
                    Ok(_) => {}
                }
                // Parse and answer every complete message.
                let mut closing = None;
                loop {
                    match pinhole_rtsp::parse(&buf) {
                        Ok(None) => break,
                        Ok(Some((input, n))) => {
                            let _ = buf.split_to(n);
                            last_input = Instant::now();
                            match input {
                                Input::Interleaved { .. } => conn.activity(state.clock.now_us()),
                                Input::Request(req) => {
                                    let cseq = match req.cseq() {
                                        Ok(Some(c)) => c,
                                        Ok(None) => {
                                            let r = Response::error(400, "CSeq missing");
                                            if write(&mut wr, &r.encode(None)).await.is_err() {
                                                closing = Some("connection lost");
                                            }
                                            continue;
                                        }
                                        Err(e) => {
                                            let r = Response::error(e.status(), &e.to_string());
                                            if write(&mut wr, &r.encode(None)).await.is_err() {
                                                closing = Some("connection lost");
                                            }
                                            continue;
                                        }
                                    };
                                    let (resp, action) = answer(
                                        &req, &shared, &mut conn, &mut authorized, &nonce,
                                        peer.ip(), local, &mut slot,
                                    ).await;
                                    let mut resp = resp;
                                    // Starting to play: take the slots before saying yes.
                                    if let Action::Play(list) = &action {
                                        if playing.is_none() {
                                            match start(&shared, peer.ip(), list, &mut outs) {
                                                Ok(p) => playing = Some(p),
                                                Err(why) => resp = Response::error(503, &why),
                                            }
                                        }
                                        if resp.status == 200 {
                                            let first = playing.as_ref().and_then(|p| p.viewer.peek());
                                            resp = resp.header("RTP-Info", rtp_info(&req, &outs, first.as_deref()));
                                        }
                                    }
                                    if write(&mut wr, &resp.encode(Some(cseq))).await.is_err() {
                                        closing = Some("connection lost");
                                    }
                                    match action {
                                        Action::Pause => playing = None,
                                        Action::Teardown => {
                                            playing = None;
                                            slot = None;
                                        }
                                        _ => {}
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            let r = Response::error(e.status(), &e.to_string());
                            let _ = write(&mut wr, &r.encode(None)).await;
                            closing = Some("unparseable request");
                            break;
                        }
                    }
                }
                partial_since = if buf.is_empty() { None } else { partial_since.or(Some(Instant::now())) };
                if let Some(why) = closing {
                    if why == "unparseable request" {
                        linger(&mut rd, &mut wr).await;
                    }
                    break End::Closed(why);
                }
            }
            frame = next_frame(&mut playing) => {
                let Some(frame) = frame else { break End::Closed("daemon shutting down") };
                let Some(out) = outs.values_mut().find(|o| o.hub_track == frame.track.id) else { continue };
                // The shared sender sends it.
                if matches!(out.transport, Transport::Multicast { .. }) { continue; }
                let frags = shared.fragments.of(&frame);
                match send_frame(&frame, &frags, out, &wr, udp.as_deref(), peer.ip(), &mut scratch).await {
                    Ok(()) => {
                        if out.video {
                            state.send_latency.record(state.hub.age(frame.published_us));
                        }
                    }
                    Err(why) => break End::Closed(why),
                }
            }
            _ = &mut timer, if timer_on => {
                armed_for = None;
                if conn.on_timeout(state.clock.now_us()) == Action::Teardown {
                    break End::Closed("session timed out");
                }
                if partial_since.is_some_and(|t| t.elapsed() >= header_timeout) {
                    break End::Closed("request not completed in time");
                }
                if !conn.has_session() && last_input.elapsed() >= idle_timeout {
                    break End::Closed("idle connection");
                }
            }
        }
    };
    tracing::debug!(%peer, reason, skipped = playing.as_ref().map(|p| p.viewer.skipped()), "rtsp connection ended");
}

async fn next_frame(p: &mut Option<Playing>) -> Option<Arc<Frame>> {
    match p {
        Some(p) => p.viewer.recv().await,
        None => std::future::pending().await,
    }
}

async fn write(wr: &mut OwnedWriteHalf, data: &[u8]) -> Result<(), &'static str> {
    match tokio::time::timeout(SEND_TIMEOUT, wr.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("connection lost"),
        Err(_) => Err("client stopped reading"),
    }
}

/// After an unparseable request: let the client read our answer before
/// the close (closing with unread input would reset the connection and
/// lose it), reading and discarding for a moment.
async fn linger(rd: &mut tokio::net::tcp::OwnedReadHalf, wr: &mut OwnedWriteHalf) {
    let _ = wr.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut total = 0usize;
    while total < (4 << 20) {
        match tokio::time::timeout_at(until, rd.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

/// Authorises, then lets the state machine answer.
#[allow(clippy::too_many_arguments)]
async fn answer(
    req: &Request,
    shared: &Arc<Shared>,
    conn: &mut Conn,
    authorized: &mut bool,
    nonce: &str,
    ip: IpAddr,
    local: Option<SocketAddr>,
    slot: &mut Option<SessionSlot>,
) -> (Response, Action) {
    let state = &shared.state;
    // OPTIONS is answered to anyone (clients probe with it first).
    if req.method != Method::Options && !*authorized {
        match authorize(req, shared, nonce, ip).await {
            Ok(()) => *authorized = true,
            Err(r) => return (r, Action::None),
        }
    }
    // A new session must fit under the limit.
    if req.method == Method::Setup && slot.is_none() {
        let n = shared.sessions.fetch_add(1, Ordering::Relaxed);
        *slot = Some(SessionSlot(shared.clone()));
        if n >= shared.cfg.max_sessions {
            *slot = None;
            return (
                Response::error(453, "too many RTSP sessions; try again later"),
                Action::None,
            );
        }
    }
    let media = media(state, local);
    let reply = conn.handle(req, media.as_ref().map(|(m, _)| m), state.clock.now_us());
    if !conn.has_session() {
        *slot = None;
    }
    let action = match reply.action {
        Action::Play(list) => {
            // Map SDP track indexes to hub tracks now, as they are.
            let ids = media.map(|(_, ids)| ids).unwrap_or_default();
            Action::Play(list.into_iter().filter(|(i, _)| *i < ids.len()).collect())
        }
        a => a,
    };
    (reply.response, action)
}

/// The access policy for this request: `Err` is the refusal to send.
async fn authorize(
    req: &Request,
    shared: &Shared,
    nonce: &str,
    ip: IpAddr,
) -> Result<(), Response> {
    let auth = &shared.state.auth;
    let token = auth.rtsp_token_ok(req.query());
    let base = Credentials {
        token,
        ..Credentials::default()
    };
    let refusal = match auth.rtsp_decide(ip, base) {
        Decision::Allow { .. } => return Ok(()),
        Decision::Refuse(r) => r,
    };
    if refusal != Refusal::ViewLogin {
        return Err(Response::error(403, &refusal.message()));
    }
    let authz = req
        .header("Authorization")
        .and_then(wire::parse_authorization);
    if let Some(a) = &authz {
        match auth.rtsp_password(ip, a, req.method.as_str(), nonce).await {
            Ok(true) => {
                let creds = Credentials {
                    viewer: true,
                    ..base
                };
                if let Decision::Allow { .. } = auth.rtsp_decide(ip, creds) {
                    return Ok(());
                }
            }
            Ok(false) => {
                let who = match a {
                    Authorization::Basic { .. } => "Basic",
                    Authorization::Digest(_) => "Digest",
                };
                tracing::info!(client = %ip, scheme = who, "rtsp: wrong viewer credentials");
            }
            Err(e) => {
                let retry = match &e {
                    crate::ServerError::TooManyRequests { retry_after } => *retry_after,
                    _ => 1,
                };
                return Err(
                    Response::error(429, "too many wrong passwords; wait and retry")
                        .header("Retry-After", retry.to_string()),
                );
            }
        }
    }
    let [digest, basic] = wire::challenges(nonce);
    let why = if shared.state.auth.has_viewer_password() {
        "log in as user 'viewer' with the viewer password, or add ?token= to the URL"
    } else {
        "add a viewer token (?token=) to the URL"
    };
    Err(Response::error(401, why)
        .header("WWW-Authenticate", digest)
        .header("WWW-Authenticate", basic))
}

/// What DESCRIBE offers now, with the hub track of each SDP track.
fn media(state: &AppState, local: Option<SocketAddr>) -> Option<(Media, Vec<TrackId>)> {
    let stream = state.hub.stream()?;
    let info = &stream.info;
    let fps = state.hub.stats().measured_fps;
    let mut tracks = vec![MediaDesc::H264 {
        sps: info.sps.to_vec(),
        pps: info.pps.to_vec(),
        fps: (fps > 0.0).then_some(fps),
        width: info.width,
        height: info.height,
    }];
    let mut ids = vec![VIDEO];
    if let Some(t) = state
        .hub
        .tracks()
        .into_iter()
        .find(|t| matches!(t.codec, Codec::Opus(_)))
    {
        if let Codec::Opus(c) = &t.codec {
            tracks.push(MediaDesc::Opus {
                channels: c.channels,
            });
            ids.push(t.id);
        }
    }
    let addr = local
        .map(|a| crate::auth::canonical(a.ip()).to_string())
        .unwrap_or_else(|| "0.0.0.0".into());
    Some((
        Media {
            tracks,
            version: stream.generation,
            addr,
        },
        ids,
    ))
}

/// Takes a viewer slot and subscribes; sets up the packetizers of tracks
/// not sent before (their sequence numbers then continue).
fn start(
    shared: &Arc<Shared>,
    ip: IpAddr,
    list: &[(usize, Transport)],
    outs: &mut HashMap<usize, Out>,
) -> Result<Playing, String> {
    let state = &shared.state;
    let permit = state.auth.viewers.acquire(ip).map_err(|e| e.to_string())?;
    let ids = media(state, None).map(|(_, ids)| ids).unwrap_or_default();
    for (i, t) in list {
        let Some(&hub_track) = ids.get(*i) else {
            continue;
        };
        let entry = outs
            .entry(*i)
            .or_insert_with(|| new_out(hub_track, *i, *t, random_u64()));
        entry.hub_track = hub_track;
        entry.transport = *t;
        entry.last_sr = None;
    }
    outs.retain(|i, _| list.iter().any(|(j, _)| j == i));
    let multicast = list
        .iter()
        .any(|(_, t)| matches!(t, Transport::Multicast { .. }));
    let mcast = match (&shared.mcast, multicast) {
        (Some(m), true) => Some(McastGuard::new(m)),
        _ => None,
    };
    Ok(Playing {
        _mcast: mcast,
        viewer: state.hub.subscribe(),
        _permit: permit,
        _counted: state.viewer(Output::Rtsp),
    })
}

/// A track's sender state: random SSRC, first sequence number and
/// timestamp offset (RFC 3550).
fn new_out(hub_track: TrackId, i: usize, transport: Transport, r: u64) -> Out {
    let video = hub_track == VIDEO;
    Out {
        hub_track,
        transport,
        pk: Packetizer::new(
            ssrc_of(&r, i),
            if video {
                pinhole_rtsp::sdp::H264_PT
            } else {
                pinhole_rtsp::sdp::OPUS_PT
            },
            (r >> 16) as u16,
        ),
        ts_offset: (r >> 32) as u32,
        last_sr: None,
        video,
    }
}

fn ssrc_of(r: &u64, i: usize) -> u32 {
    (*r as u32) ^ (i as u32)
}

/// `RTP-Info` (RFC 2326 12.33): per track its URL, the sequence number of
/// its first packet and, for the track of the first frame the session will
/// get (the held keyframe), that frame's RTP time, so a client maps its
/// first packet to the start of play. Other tracks' first frames are not
/// known yet: no `rtptime` for them (it is optional).
fn rtp_info(req: &Request, outs: &HashMap<usize, Out>, first: Option<&Frame>) -> String {
    // The aggregate URL the client used, up to and including the stream path.
    let uri = req.uri.split(['?', '#']).next().unwrap_or("");
    let base = uri.find(PATH).map_or(uri, |i| &uri[..i + PATH.len()]);
    // Multicast tracks' numbers are the shared sender's: left out
    // (RTP-Info is optional per track).
    let mut idx: Vec<_> = outs
        .iter()
        .filter(|(_, o)| !matches!(o.transport, Transport::Multicast { .. }))
        .map(|(i, _)| *i)
        .collect();
    idx.sort_unstable();
    idx.iter()
        .map(|i| {
            let o = &outs[i];
            let mut s = format!("url={base}/trackID={i};seq={}", o.pk.next_seq());
            if let Some(f) = first.filter(|f| f.track.id == o.hub_track) {
                s.push_str(&format!(";rtptime={}", rtp_ts(f, o)));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A frame's RTP timestamp on its track.
fn rtp_ts(frame: &Frame, out: &Out) -> u32 {
    if out.video {
        rtp::video_ts(frame.au.pts_us, out.ts_offset)
    } else {
        (frame.decode_time as u32).wrapping_add(out.ts_offset)
    }
}

/// One frame of a track as RTP (and, once a second, an RTCP SR first):
/// this session's headers around the frame's shared payloads.
async fn send_frame(
    frame: &Frame,
    frags: &[Fragment],
    out: &mut Out,
    wr: &OwnedWriteHalf,
    udp: Option<&UdpPair>,
    ip: IpAddr,
    heads: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let ts = rtp_ts(frame, out);
    // The report first (counts as sent so far): the mapping of this
    // frame's RTP time to its capture wall-clock time.
    let sr_due = out
        .last_sr
        .is_none_or(|t| frame.au.pts_us.saturating_sub(t) >= SR_INTERVAL_US);
    let sr = sr_due.then(|| {
        out.last_sr = Some(frame.au.pts_us);
        let (n, octets) = out.pk.counts();
        rtcp::sender_report(out.pk.ssrc, frame.au.wallclock_us, ts, n, octets, "pinhole")
    });
    heads.clear();
    match out.transport {
        Transport::Tcp { rtp, rtcp } => {
            if let Some(sr) = &sr {
                heads.push(b'$');
                heads.push(rtcp);
                heads.extend_from_slice(&(sr.len() as u16).to_be_bytes());
                heads.extend_from_slice(sr);
            }
            let sr_len = heads.len();
            out.pk.headers(frags, ts, Some(rtp), heads);
            // The report, then header and payload of each packet: one
            // writev for the whole frame.
            let mut iov = Vec::with_capacity(1 + 2 * frags.len());
            iov.push(IoSlice::new(&heads[..sr_len]));
            let mut off = sr_len;
            for f in frags {
                let end = off + f.header_len(true);
                iov.push(IoSlice::new(&heads[off..end]));
                iov.push(IoSlice::new(&f.payload));
                off = end;
            }
            write_all_vectored(wr, &mut iov).await
        }
        Transport::Udp {
            client_rtp,
            client_rtcp,
        } => {
            let Some(udp) = udp else {
                return Err("no UDP socket");
            };
            if let Some(sr) = &sr {
                let _ = udp.rtcp.send_to(sr, (ip, client_rtcp)).await;
            }
            udp_packets(
                frags,
                ts,
                out,
                &udp.rtp,
                SocketAddr::new(ip, client_rtp),
                heads,
            );
            Ok(())
        }
        // The shared sender's (multicast_sender), never a session's.
        Transport::Multicast { .. } => Ok(()),
    }
}

/// One frame to a multicast group: the sender report (once a second) to
/// the RTCP address, then the RTP packets.
async fn send_datagrams(
    frame: &Frame,
    frags: &[Fragment],
    out: &mut Out,
    (rtp_sock, rtcp_sock): (&UdpSocket, &UdpSocket),
    (rtp_to, rtcp_to): (SocketAddr, SocketAddr),
    heads: &mut Vec<u8>,
) {
    let ts = rtp_ts(frame, out);
    if out
        .last_sr
        .is_none_or(|t| frame.au.pts_us.saturating_sub(t) >= SR_INTERVAL_US)
    {
        out.last_sr = Some(frame.au.pts_us);
        let (n, octets) = out.pk.counts();
        let sr = rtcp::sender_report(out.pk.ssrc, frame.au.wallclock_us, ts, n, octets, "pinhole");
        let _ = rtcp_sock.send_to(&sr, rtcp_to).await;
    }
    udp_packets(frags, ts, out, rtp_sock, rtp_to, heads);
}

/// A frame's RTP packets as datagrams to `to`.
fn udp_packets(
    frags: &[Fragment],
    ts: u32,
    out: &mut Out,
    sock: &UdpSocket,
    to: SocketAddr,
    heads: &mut Vec<u8>,
) {
    heads.clear();
    out.pk.headers(frags, ts, None, heads);
    let mut packet = Vec::with_capacity(rtp::MAX_PAYLOAD + 16);
    let mut off = 0;
    for f in frags {
        let end = off + f.header_len(false);
        packet.clear();
        packet.extend_from_slice(&heads[off..end]);
        packet.extend_from_slice(&f.payload);
        off = end;
        // A full socket buffer or an unreachable port is packet loss, as
        // on any network: never a reason to stall.
        let _ = sock.try_send_to(&packet, to);
    }
}

/// Writes all of `bufs`. The usual case, a socket with room, costs one
/// `writev` and no timer; a full one is waited for, up to SEND_TIMEOUT in
/// all, before the client counts as not reading.
async fn write_all_vectored(
    wr: &OwnedWriteHalf,
    mut bufs: &mut [IoSlice<'_>],
) -> Result<(), &'static str> {
    // Linux takes at most IOV_MAX (1024) slices per call.
    const IOV_MAX: usize = 1024;
    let mut deadline = None;
    // Counted, not `bufs.is_empty()`: a frame with nothing to send (only
    // delimiters or filler) leaves empty slices, and a write of 0 bytes
    // would look like a closed connection.
    let mut left: usize = bufs.iter().map(|b| b.len()).sum();
    while left > 0 {
        match wr.try_write_vectored(&bufs[..bufs.len().min(IOV_MAX)]) {
            Ok(0) => return Err("connection lost"),
            Ok(n) => {
                left -= n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let d = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + SEND_TIMEOUT);
                match tokio::time::timeout_at(d, wr.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err("connection lost"),
                    Err(_) => return Err("client stopped reading"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err("connection lost"),
        }
    }
    Ok(())
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // No entropy at all would be a broken system; fall back to the time.
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ 0x9e37_79b9_7f4a_7c15;
    }
    u64::from_le_bytes(b)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::getrandom(&mut b).is_err() {
        return format!("{:016x}", random_u64());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// More slices than one writev takes (IOV_MAX) and more bytes than the
    /// socket buffer holds: every byte arrives, in order.
    #[tokio::test]
    async fn vectored_write_of_many_slices_through_a_full_socket() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), l.accept());
        let mut client = client.unwrap();
        let (_rd, wr) = server.unwrap().0.into_split();
        let chunks: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 251) as u8; 1 + (i as usize % 1400)])
            .collect();
        let want: Vec<u8> = chunks.concat();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 7000];
            loop {
                // Slowly at first, so the writer meets a full socket.
                if got.len() < 200_000 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        // Nothing to send is no error (a frame of filler only).
        write_all_vectored(&wr, &mut [IoSlice::new(&[]), IoSlice::new(&[])])
            .await
            .unwrap();
        let mut iov: Vec<IoSlice> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        write_all_vectored(&wr, &mut iov).await.unwrap();
        drop(wr);
        drop(_rd);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }
}
