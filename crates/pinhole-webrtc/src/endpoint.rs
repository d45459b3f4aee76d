//! The I/O shell: one UDP socket for every session (so the appliance needs
//! one firewall hole), a receive task that routes each datagram to its
//! session, and one task per session that pulls frames from the hub at its
//! own pace. A slow or lossy viewer only ever delays its own task; packets
//! for a session whose queue is full are dropped, as the network would.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pinhole_hub::{Hub, Viewer};
use pinhole_media::{Clock, Codec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::offer::{check_offer, parse_fragment};
use crate::session::{Patched, Session, SessionStats, Shared};
use crate::start::{Join, Joiner, KeyframeGate};
use crate::WebrtcError;

/// A STUN/TURN server handed to clients (`Link: <url>; rel="ice-server"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp`.
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl IceServer {
    /// The RFC 9725 §4.6 `Link` header value.
    pub fn link(&self) -> String {
        let mut l = format!("<{}>; rel=\"ice-server\"", self.url);
        if let (Some(u), Some(c)) = (&self.username, &self.credential) {
            l.push_str(&format!(
                "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                u.replace(['"', '\\'], ""),
                c.replace(['"', '\\'], "")
            ));
        }
        l
    }
}

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The UDP address every session shares (default `0.0.0.0:8189`).
    pub listen: SocketAddr,
    /// ICE-TCP (RFC 6544, passive: viewers connect) on this TCP address, a
    /// fallback where UDP is blocked. Port 0: the UDP port's number when
    /// free, else any.
    pub tcp_listen: Option<SocketAddr>,
    /// Offer every non-loopback interface address as a host candidate.
    pub lan_candidates: bool,
    /// More candidate addresses (a public or forwarded address; the QEMU
    /// host's): an address without a port takes the socket's.
    pub extra_candidates: Vec<SocketAddr>,
    pub ice_servers: Vec<IceServer>,
    /// Sessions at once; more get 503.
    pub max_sessions: usize,
    /// Packets from other addresses are dropped unread (`[security]
    /// accept_from`; a TURN relay or internet viewer needs `Any`).
    pub accept_from: pinhole_media::peer::AcceptFrom,
    /// The most playout delay asked of viewers (RTP playout-delay
    /// extension, min 0); `None`: not asked. See [`Shared::playout_delay_max`].
    pub playout_delay_max: Option<Duration>,
    /// The NACK resend buffer per session, bytes.
    pub resend_buffer: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            tcp_listen: None,
            lan_candidates: true,
            extra_candidates: Vec::new(),
            ice_servers: Vec::new(),
            max_sessions: 20,
            accept_from: Default::default(),
            playout_delay_max: Some(Duration::ZERO),
            resend_buffer: crate::session::DEFAULT_RESEND_BUFFER_BYTES,
        }
    }
}

/// What a `PATCH` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchAnswer {
    /// Candidates taken: 204.
    Trickle,
    /// ICE restart: 200 with our answer fragment and the session's new ETag.
    Restart { fragment: String, etag: String },
}

fn ufrag_of(fragment: &str) -> Option<&str> {
    fragment
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// A session made by `POST /whep`.
#[derive(Clone, Debug)]
pub struct Created {
    pub id: String,
    pub answer: String,
    pub etag: String,
}

enum Cmd {
    /// From, data, on ICE-TCP.
    Packet(SocketAddr, Vec<u8>, bool),
    Remote(
        crate::offer::Fragment,
        oneshot::Sender<Result<Patched, WebrtcError>>,
    ),
    Close,
}

struct Handle {
    tx: mpsc::Sender<Cmd>,
    ufrag: String,
    etag: String,
    stats: Arc<Mutex<SessionStats>>,
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Handle>,
    by_ufrag: HashMap<String, String>,
    /// (ICE-TCP, the viewer's address) → session id.
    by_addr: HashMap<(bool, SocketAddr), String>,
}

/// Totals for `/metrics` and `/api/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointStats {
    pub sessions: usize,
    pub sessions_total: u64,
    pub refused_full: u64,
    pub frames_sent: u64,
    pub audio_sent: u64,
    pub keyframe_requests: u64,
    pub nacks: u64,
    pub unrouted_packets: u64,
    /// From addresses `accept_from` refuses.
    pub refused_packets: u64,
    /// Datagrams (RTP, RTCP, STUN, DTLS) sent to viewers, resends included.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams the socket refused to send (lost to the viewer).
    pub send_errors: u64,
    /// Datagrams from viewers dropped because their session's queue was full.
    pub queue_drops: u64,
    /// Server-added delay: a frame published in the hub → its datagrams
    /// handed to the socket, per viewer; counts per [`SEND_DELAY_BUCKETS_US`]
    /// bucket (not cumulative; the last counts everything above).
    pub send_delay: [u64; SEND_DELAY_BUCKETS_US.len() + 1],
}

/// Upper bounds (µs) of the send-delay buckets (as the server's other
/// outputs: `pinhole_send_latency_seconds`).
pub const SEND_DELAY_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

impl EndpointStats {
    fn record_delay(&mut self, us: u64) {
        let i = SEND_DELAY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(SEND_DELAY_BUCKETS_US.len());
        self.send_delay[i] += 1;
    }
}

pub struct Endpoint {
    socket: UdpSocket,
    local: SocketAddr,
    tcp_local: Option<SocketAddr>,
    /// Open ICE-TCP connections by the viewer's address: their writers.
    tcp_conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    shared: Shared,
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    cfg: EndpointConfig,
    table: Mutex<Table>,
    totals: Mutex<EndpointStats>,
    keyframes: Mutex<KeyframeGate>,
}

/// Per-session queue of incoming datagrams; more are dropped.
const QUEUE: usize = 256;

impl Endpoint {
    /// Binds the socket and starts routing. Needs a tokio runtime.
    pub async fn start(cfg: EndpointConfig, hub: Arc<Hub>) -> Result<Arc<Endpoint>, WebrtcError> {
        let socket = UdpSocket::bind(cfg.listen).await?;
        let local = socket.local_addr()?;
        let mut candidates: Vec<SocketAddr> = Vec::new();
        if cfg.lan_candidates {
            for ip in lan_addresses() {
                if local.ip().is_unspecified() || local.ip() == ip {
                    candidates.push(SocketAddr::new(ip, local.port()));
                }
            }
        }
        for c in &cfg.extra_candidates {
            let port = if c.port() == 0 {
                local.port()
            } else {
                c.port()
            };
            let c = SocketAddr::new(c.ip(), port);
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
        if candidates.is_empty() && !local.ip().is_unspecified() {
            candidates.push(local);
        }
        let tcp = match cfg.tcp_listen {
            Some(mut at) => {
                if at.port() == 0 {
                    at.set_port(local.port());
                }
                let l = match TcpListener::bind(at).await {
                    Ok(l) => l,
                    // The UDP port's number is taken on TCP: any port.
                    Err(_) if cfg.tcp_listen.is_some_and(|a| a.port() == 0) => {
                        at.set_port(0);
                        TcpListener::bind(at).await?
                    }
                    Err(e) => return Err(e.into()),
                };
                Some(l)
            }
            None => None,
        };
        let tcp_local = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
        // The same addresses on the TCP port; a forwarded extra candidate's
        // own port is taken to be forwarded for TCP too.
        let tcp_candidates: Vec<SocketAddr> = match tcp_local {
            Some(t) => candidates
                .iter()
                .map(|c| {
                    let forwarded = cfg.extra_candidates.iter().any(|e| e.port() != 0 && e == c);
                    SocketAddr::new(c.ip(), if forwarded { c.port() } else { t.port() })
                })
                .filter(|c| t.ip().is_unspecified() || t.ip() == c.ip())
                .collect(),
            None => Vec::new(),
        };
        tracing::info!(%local, ?candidates, ?tcp_local, ?tcp_candidates, "webrtc: listening");
        let clock = hub.clock().clone();
        // str0m counts in Instants: ours are `base` + the clock's µs.
        let base = Instant::now() - Duration::from_micros(clock.now_us());
        let mut shared = Shared::new(candidates, base);
        shared.tcp_candidates = tcp_candidates;
        shared.playout_delay_max = cfg.playout_delay_max;
        shared.resend_buffer = cfg.resend_buffer;
        let ep = Arc::new(Endpoint {
            socket,
            local,
            tcp_local,
            tcp_conns: Mutex::new(HashMap::new()),
            shared,
            hub,
            clock,
            cfg,
            table: Mutex::new(Table::default()),
            totals: Mutex::new(EndpointStats::default()),
            keyframes: Mutex::new(KeyframeGate::default()),
        });
        tokio::spawn(receive_loop(ep.clone()));
        if let Some(l) = tcp {
            tokio::spawn(tcp_accept_loop(ep.clone(), l));
        }
        Ok(ep)
    }

    /// The ICE-TCP listener's address, when it is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_local
    }

    /// Passive ICE-TCP host candidates offered.
    pub fn tcp_candidates(&self) -> &[SocketAddr] {
        &self.shared.tcp_candidates
    }

    fn tcp_conns(&self) -> MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>> {
        self.tcp_conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One packet to a viewer: on the UDP socket, or framed on its ICE-TCP
    /// connection (dropped when that is gone or backed up, as UDP would be).
    async fn send(&self, d: &crate::session::Datagram) -> bool {
        if d.tcp {
            let conn = self.tcp_conns().get(&d.to).cloned();
            return match (conn, crate::tcp::frame(&d.data)) {
                (Some(tx), Some(f)) => tx.try_send(f).is_ok(),
                _ => false,
            };
        }
        match self.socket.send_to(&d.data, d.to).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, to = %d.to, "webrtc: send");
                false
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn candidates(&self) -> &[SocketAddr] {
        &self.shared.candidates
    }

    pub fn ice_servers(&self) -> &[IceServer] {
        &self.cfg.ice_servers
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn totals(&self) -> MutexGuard<'_, EndpointStats> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Totals plus the sum over open sessions.
    pub fn stats(&self) -> EndpointStats {
        let mut t = *self.totals();
        let table = self.table();
        t.sessions = table.by_id.len();
        for h in table.by_id.values() {
            let s = *h.stats.lock().unwrap_or_else(|p| p.into_inner());
            t.frames_sent += s.frames_sent;
            t.audio_sent += s.audio_sent;
            t.keyframe_requests += s.keyframe_requests;
            t.nacks += s.nacks;
            t.packets_sent += s.packets_sent;
            t.bytes_sent += s.bytes_sent;
        }
        t
    }

    /// Stats of one open session.
    pub fn session_stats(&self, id: &str) -> Option<SessionStats> {
        let table = self.table();
        let h = table.by_id.get(id)?;
        let s = *h.stats.lock().unwrap_or_else(|p| p.into_inner());
        Some(s)
    }

    /// `POST /whep`: checks the offer, answers it, starts the session.
    pub fn create(self: &Arc<Self>, sdp: &str) -> Result<Created, WebrtcError> {
        let offer = check_offer(sdp)?;
        {
            let open = self.table().by_id.len();
            if open >= self.cfg.max_sessions {
                self.totals().refused_full += 1;
                return Err(WebrtcError::Full(open));
            }
        }
        let (session, answer) = Session::accept(&offer, &self.shared, self.clock.now_us())?;
        let id = random_hex(16)?;
        let etag = format!("\"{}\"", random_hex(8)?);
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(Mutex::new(SessionStats::default()));
        {
            let mut table = self.table();
            // Checked again under the lock: parallel POSTs cannot pass the limit.
            if table.by_id.len() >= self.cfg.max_sessions {
                drop(table);
                self.totals().refused_full += 1;
                return Err(WebrtcError::Full(self.cfg.max_sessions));
            }
            table
                .by_ufrag
                .insert(session.ufrag().to_owned(), id.clone());
            table.by_id.insert(
                id.clone(),
                Handle {
                    tx,
                    ufrag: session.ufrag().to_owned(),
                    etag: etag.clone(),
                    stats: stats.clone(),
                },
            );
        }
        self.totals().sessions_total += 1;
        tokio::spawn(run_session(self.clone(), id.clone(), session, rx, stats));
        tracing::info!(session = %id, "webrtc: session created");
        Ok(Created { id, answer, etag })
    }

    /// `PATCH /whep/<id>`: trickled candidates or an ICE restart.
    /// `if_match`: the client's `If-Match` (`*` or the session's ETag). A
    /// restart gives the session a new ETag: it is in the answer.
    pub async fn patch(
        &self,
        id: &str,
        if_match: Option<&str>,
        frag: &str,
    ) -> Result<PatchAnswer, WebrtcError> {
        let frag = parse_fragment(frag)?;
        let tx = {
            let table = self.table();
            let h = table
                .by_id
                .get(id)
                .ok_or_else(|| WebrtcError::NoSession(printable(id)))?;
            if let Some(m) = if_match {
                if m.trim() != "*" && m.trim() != h.etag {
                    return Err(WebrtcError::EtagMismatch);
                }
            }
            h.tx.clone()
        };
        let (reply, answer) = oneshot::channel();
        tx.send(Cmd::Remote(frag, reply))
            .await
            .map_err(|_| WebrtcError::NoSession(printable(id)))?;
        let patched = answer
            .await
            .map_err(|_| WebrtcError::NoSession(printable(id)))??;
        let Patched::Restart { fragment } = patched else {
            return Ok(PatchAnswer::Trickle);
        };
        let etag = format!("\"{}\"", random_hex(8)?);
        let mut table = self.table();
        let table = &mut *table;
        let h = table
            .by_id
            .get_mut(id)
            .ok_or_else(|| WebrtcError::NoSession(printable(id)))?;
        h.etag = etag.clone();
        // Checks with the new credentials find the session by its new ufrag
        // (the viewer may come from a new address).
        if let Some(u) = ufrag_of(&fragment) {
            table.by_ufrag.remove(&h.ufrag);
            h.ufrag = u.to_owned();
            table.by_ufrag.insert(h.ufrag.clone(), id.to_owned());
        }
        Ok(PatchAnswer::Restart { fragment, etag })
    }

    /// `DELETE /whep/<id>`.
    pub fn delete(&self, id: &str) -> Result<(), WebrtcError> {
        let h = self
            .remove(id)
            .ok_or_else(|| WebrtcError::NoSession(printable(id)))?;
        let _ = h.tx.try_send(Cmd::Close);
        Ok(())
    }

    fn remove(&self, id: &str) -> Option<Handle> {
        let mut table = self.table();
        let h = table.by_id.remove(id)?;
        table.by_ufrag.remove(&h.ufrag);
        table.by_addr.retain(|_, v| v != id);
        Some(h)
    }

    /// Our address a datagram from `from` counts as arriving on (str0m
    /// wants one of our host candidates; the socket is bound to every
    /// address, so the same family's first candidate stands in).
    fn local_for(&self, from: SocketAddr, tcp: bool) -> SocketAddr {
        let c = if tcp {
            &self.shared.tcp_candidates
        } else {
            &self.shared.candidates
        };
        c.iter()
            .find(|a| {
                a.ip().is_loopback() == from.ip().is_loopback() && a.is_ipv4() == from.is_ipv4()
            })
            .or_else(|| c.iter().find(|a| a.is_ipv4() == from.is_ipv4()))
            .copied()
            .unwrap_or(self.local)
    }

    /// A viewer lost a picture (PLI/FIR) or just connected: ask the source
    /// for a keyframe, at most once per `KEYFRAME_INTERVAL_US` whatever the
    /// viewers do (an IDR costs every viewer bandwidth); a request in between
    /// is asked for when the interval is over (`keyframe_poll`). The test
    /// pattern and the encoders force one; sources that cannot recover at
    /// their next GOP.
    fn keyframe_request(&self, now_us: u64) {
        let ask = self
            .keyframes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .request(now_us);
        if ask {
            self.hub.request_keyframe();
            tracing::debug!("webrtc: keyframe asked of the source");
        }
    }

    /// A kept keyframe request whose time has come (every session calls this
    /// as it loops, at least once per frame).
    fn keyframe_poll(&self, now_us: u64) {
        let ask = self
            .keyframes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .poll(now_us);
        if ask {
            self.hub.request_keyframe();
            tracing::debug!("webrtc: kept keyframe request asked of the source");
        }
    }

    fn route(&self, from: SocketAddr, data: &[u8], tcp: bool) {
        let tx = {
            let mut table = self.table();
            let id = match table.by_addr.get(&(tcp, from)) {
                Some(id) => Some(id.clone()),
                None => crate::stun::local_ufrag(data)
                    .and_then(|u| table.by_ufrag.get(u).cloned())
                    .inspect(|id| {
                        table.by_addr.insert((tcp, from), id.clone());
                    }),
            };
            id.and_then(|id| table.by_id.get(&id).map(|h| h.tx.clone()))
        };
        match tx {
            Some(tx) => {
                // Full queue: the session is behind; drop like the network would.
                if tx.try_send(Cmd::Packet(from, data.to_vec(), tcp)).is_err() {
                    self.totals().queue_drops += 1;
                }
            }
            None => self.totals().unrouted_packets += 1,
        }
    }
}

async fn receive_loop(ep: Arc<Endpoint>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match ep.socket.recv_from(&mut buf).await {
            Ok((_, from)) if !ep.cfg.accept_from.accepts(from.ip()) => {
                ep.totals().refused_packets += 1;
            }
            Ok((n, from)) => ep.route(from, &buf[..n], false),
            Err(e) => {
                // ICMP port unreachable from a gone viewer shows up here on Linux.
                tracing::debug!(error = %e, "webrtc: receive");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

async fn next_frame(v: &mut Option<Viewer>) -> Option<Arc<pinhole_hub::Frame>> {
    match v {
        Some(v) => v.recv().await,
        None => std::future::pending().await,
    }
}

async fn run_session(
    ep: Arc<Endpoint>,
    id: String,
    mut s: Session,
    mut rx: mpsc::Receiver<Cmd>,
    stats: Arc<Mutex<SessionStats>>,
) {
    let mut viewer: Option<Viewer> = None;
    let mut joiner: Option<Joiner<Arc<pinhole_hub::Frame>>> = None;
    // When the oldest frame written but not yet sent was published.
    let mut unsent_since: Option<u64> = None;
    loop {
        let now = ep.clock.now_us();
        let p = s.poll(now);
        let mut errors = 0;
        for d in &p.send {
            if !ep.send(d).await {
                errors += 1;
            }
        }
        if errors > 0 || (!p.send.is_empty() && unsent_since.is_some()) {
            let mut t = ep.totals();
            t.send_errors += errors;
            if let Some(at) = unsent_since.take().filter(|_| !p.send.is_empty()) {
                t.record_delay(ep.clock.now_us().saturating_sub(at));
            }
        }
        if p.connected && viewer.is_none() {
            // Subscribing now gives the hub's current GOP; a fresh keyframe
            // is asked for too, and the viewer starts on whichever is better
            // (start.rs says why).
            viewer = Some(ep.hub.subscribe());
            joiner = Some(Joiner::new(now));
            ep.keyframe_request(now);
            tracing::info!(session = %id, "webrtc: viewer connected");
        }
        if p.keyframe_wanted {
            ep.keyframe_request(now);
        }
        ep.keyframe_poll(now);
        *stats.lock().unwrap_or_else(|p| p.into_inner()) = s.stats();
        let Some(mut deadline) = p.deadline_us else {
            break;
        };
        if let Some(d) = joiner.as_ref().and_then(|j| j.deadline_us()) {
            deadline = deadline.min(d);
        }
        let wait = Duration::from_micros(deadline.saturating_sub(ep.clock.now_us()));
        tokio::select! {
            frame = next_frame(&mut viewer) => match frame {
                Some(f) if f.is_video() => {
                    let now = ep.clock.now_us();
                    let send = match joiner.as_mut() {
                        Some(j) => {
                            let (key, at) = (f.au.keyframe, f.published_us);
                            j.frame(f, key, at, now)
                        }
                        None => Join::Send(vec![f]),
                    };
                    if let Join::Send(frames) = send {
                        for f in frames {
                            unsent_since.get_or_insert(f.published_us);
                            s.write_video(&f.au.data, f.au.pts_us, f.au.keyframe);
                        }
                    }
                }
                Some(f) if matches!(f.track.codec, Codec::Opus(_)) => {
                    // Opus passed through; dropped until the picture starts.
                    s.write_audio(&f.au.data, f.au.pts_us);
                }
                Some(_) => {}
                None => s.close("daemon shutting down"),
            },
            cmd = rx.recv() => match cmd {
                Some(Cmd::Packet(from, data, tcp)) => {
                    s.receive(from, ep.local_for(from, tcp), tcp, &data, ep.clock.now_us());
                }
                Some(Cmd::Remote(frag, reply)) => {
                    let _ = reply.send(s.add_remote(&frag));
                }
                Some(Cmd::Close) | None => s.close("ended by the viewer (DELETE)"),
            },
            _ = tokio::time::sleep(wait) => {
                let now = ep.clock.now_us();
                if let Some(Join::Send(frames)) = joiner.as_mut().map(|j| j.timeout(now)) {
                    for f in frames {
                        s.write_video(&f.au.data, f.au.pts_us, f.au.keyframe);
                    }
                }
            }
        }
    }
    ep.remove(&id);
    let st = s.stats();
    {
        let mut t = ep.totals();
        t.frames_sent += st.frames_sent;
        t.audio_sent += st.audio_sent;
        t.keyframe_requests += st.keyframe_requests;
        t.nacks += st.nacks;
        t.packets_sent += st.packets_sent;
        t.bytes_sent += st.bytes_sent;
    }
    tracing::info!(
        session = %id,
        reason = s.ended().unwrap_or("?"),
        frames = st.frames_sent,
        nacks = st.nacks,
        "webrtc: session ended"
    );
}

/// ICE-TCP connections at once: a few per session (a browser may open one
/// per candidate pair it checks).
const TCP_CONNS_PER_SESSION: usize = 4;

async fn tcp_accept_loop(ep: Arc<Endpoint>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((_, from)) if !ep.cfg.accept_from.accepts(from.ip()) => {
                ep.totals().refused_packets += 1;
            }
            Ok((stream, from)) => {
                let open = ep.tcp_conns().len();
                if open >= ep.cfg.max_sessions.saturating_mul(TCP_CONNS_PER_SESSION) {
                    tracing::debug!(%from, open, "webrtc: ICE-TCP connection refused (too many)");
                    continue;
                }
                tokio::spawn(tcp_conn(ep.clone(), stream, from));
            }
            Err(e) => {
                tracing::debug!(error = %e, "webrtc: ICE-TCP accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One viewer's ICE-TCP connection: its packets are routed like datagrams
/// (by the STUN username of the first, then by its address); what the
/// session sends to its address is framed onto it.
async fn tcp_conn(ep: Arc<Endpoint>, stream: TcpStream, from: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    ep.tcp_conns().insert(from, tx);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                break;
            }
        }
    });
    let mut d = crate::tcp::Deframer::default();
    let mut buf = vec![0u8; 4096];
    // A connection that sends nothing for the consent time is gone (a
    // silent one cannot hold a slot for longer).
    let idle = Duration::from_micros(crate::session::CONSENT_TIMEOUT_US);
    loop {
        let want = d.room().min(buf.len());
        let n = match tokio::time::timeout(idle, rd.read(&mut buf[..want])).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        d.push(&buf[..n]);
        while let Some(p) = d.next_packet() {
            ep.route(from, &p, true);
        }
    }
    ep.tcp_conns().remove(&from);
    ep.table().by_addr.remove(&(true, from));
    writer.abort();
}

fn random_hex(bytes: usize) -> Result<String, WebrtcError> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| WebrtcError::Rtc(format!("getrandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(64)
        .collect()
}

/// Every interface address but loopback (and IPv6 link-local, which needs a
/// scope id browsers do not send).
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            let link_local_v6 =
                matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            if !ip.is_loopback() && !link_local_v6 && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}
