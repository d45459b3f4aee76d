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
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::offer::{check_offer, parse_fragment};
use crate::session::{Session, SessionStats, Shared};
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
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            lan_candidates: true,
            extra_candidates: Vec::new(),
            ice_servers: Vec::new(),
            max_sessions: 20,
            accept_from: Default::default(),
        }
    }
}

/// A session made by `POST /whep`.
#[derive(Clone, Debug)]
pub struct Created {
    pub id: String,
    pub answer: String,
    pub etag: String,
}

enum Cmd {
    Packet(SocketAddr, Vec<u8>),
    Remote(
        crate::offer::Fragment,
        oneshot::Sender<Result<(), WebrtcError>>,
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
    by_addr: HashMap<SocketAddr, String>,
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
}

pub struct Endpoint {
    socket: UdpSocket,
    local: SocketAddr,
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
        tracing::info!(%local, ?candidates, "webrtc: listening");
        let clock = hub.clock().clone();
        // str0m counts in Instants: ours are `base` + the clock's µs.
        let base = Instant::now() - Duration::from_micros(clock.now_us());
        let ep = Arc::new(Endpoint {
            socket,
            local,
            shared: Shared::new(candidates, base),
            hub,
            clock,
            cfg,
            table: Mutex::new(Table::default()),
            totals: Mutex::new(EndpointStats::default()),
            keyframes: Mutex::new(KeyframeGate::default()),
        });
        tokio::spawn(receive_loop(ep.clone()));
        Ok(ep)
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

    /// `PATCH /whep/<id>`: trickled candidates. `if_match`: the client's
    /// `If-Match` (`*` or the session's ETag).
    pub async fn patch(
        &self,
        id: &str,
        if_match: Option<&str>,
        frag: &str,
    ) -> Result<(), WebrtcError> {
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
        answer
            .await
            .map_err(|_| WebrtcError::NoSession(printable(id)))?
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
    fn local_for(&self, from: SocketAddr) -> SocketAddr {
        let c = &self.shared.candidates;
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

    fn route(&self, from: SocketAddr, data: &[u8]) {
        let tx = {
            let mut table = self.table();
            let id = match table.by_addr.get(&from) {
                Some(id) => Some(id.clone()),
                None => crate::stun::local_ufrag(data)
                    .and_then(|u| table.by_ufrag.get(u).cloned())
                    .inspect(|id| {
                        table.by_addr.insert(from, id.clone());
                    }),
            };
            id.and_then(|id| table.by_id.get(&id).map(|h| h.tx.clone()))
        };
        match tx {
            Some(tx) => {
                // Full queue: the session is behind; drop like the network would.
                let _ = tx.try_send(Cmd::Packet(from, data.to_vec()));
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
            Ok((n, from)) => ep.route(from, &buf[..n]),
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
    loop {
        let now = ep.clock.now_us();
        let p = s.poll(now);
        for d in &p.send {
            if let Err(e) = ep.socket.send_to(&d.data, d.to).await {
                tracing::debug!(error = %e, to = %d.to, "webrtc: send");
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
                Some(Cmd::Packet(from, data)) => {
                    s.receive(from, ep.local_for(from), &data, ep.clock.now_us());
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
    }
    tracing::info!(
        session = %id,
        reason = s.ended().unwrap_or("?"),
        frames = st.frames_sent,
        nacks = st.nacks,
        "webrtc: session ended"
    );
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
