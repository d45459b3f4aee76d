//! ONVIF (Profile S, minimal; docs/rtsp.md): the SOAP device and media
//! services over HTTP, and WS-Discovery on UDP 3702. The protocol is
//! `pinhole-onvif` (pure); this is its I/O.
//!
//! Access: the route table gives `/onvif/*` the `Auth` class (the handler
//! checks credentials itself; the HTTP layer asks only for a name of this
//! device in `Host` and, for a browser, a same-origin `Origin`). ONVIF's
//! own WS-Security token then decides by the viewer policy
//! (`auth/onvif.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use pinhole_onvif::discovery::{self, Announce, Sequence};
use pinhole_onvif::service::{self, Access, Context, DeviceInfo, Fault, StreamInfo};

use crate::{full, AppState, Body, ServerError};

pub const DEVICE_PATH: &str = "/onvif/device_service";
pub const MEDIA_PATH: &str = "/onvif/media_service";

/// The ONVIF side of a daemon that offers it.
pub struct Onvif {
    pub device: DeviceInfo,
    /// The name discovery announces (the hostname).
    pub name: String,
    /// `urn:uuid:…`, the device's stable WS-Discovery address.
    pub endpoint: String,
    /// The HTTP port discovery names in XAddrs (80 behind nginx).
    pub http_port: u16,
    /// Discovery messages sent, for AppSequence.
    sent: AtomicU64,
    /// The instance id: the start time, in seconds (grows across restarts).
    instance: u64,
}

impl Onvif {
    /// `id`: something stable and unique to this device (the machine id);
    /// it is hashed, never shown.
    pub fn new(
        device: DeviceInfo,
        name: String,
        id: &[u8],
        http_port: u16,
        now_wall_us: u64,
    ) -> Onvif {
        let h = fnv(id);
        let h2 = fnv(&h.to_le_bytes());
        let endpoint = format!(
            "urn:uuid:{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xfff,
            h2 >> 52,
            h2 & 0xffff_ffff_ffff
        );
        Onvif {
            device,
            name,
            endpoint,
            http_port,
            sent: AtomicU64::new(0),
            instance: now_wall_us / 1_000_000,
        }
    }

    fn sequence(&self) -> Sequence {
        Sequence {
            instance: self.instance,
            number: self.sent.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}

/// A serial number from a device id: 16 hex digits of a hash (the id
/// itself is not to be shown, `machine-id(5)`).
pub fn serial_of(id: &[u8]) -> String {
    format!("{:016x}", fnv(id))
}

/// FNV-1a, 64 bits: enough to name a device, not a secret.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn soap(status: u16, body: String) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = full(status, "application/soap+xml; charset=utf-8", body);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn fault(f: &Fault, soap11: bool) -> Response<Body> {
    soap(f.status(), f.envelope(soap11))
}

/// `POST /onvif/device_service`, `/onvif/media_service`.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    path: &str,
) -> Result<Response<Body>, ServerError> {
    let Some(onvif) = state.onvif.get() else {
        return Err(ServerError::NotFound(path.to_owned()));
    };
    if path != DEVICE_PATH && path != MEDIA_PATH {
        return Err(ServerError::NotFound(path.to_owned()));
    }
    let client = crate::auth::client_of(
        req.extensions().get::<crate::auth::ConnInfo>(),
        req.headers(),
    );
    // The guard checked Host: it names this device, as the client reached it.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let body =
        match crate::limits::read_body(req.into_body(), pinhole_onvif::soap::MAX_REQUEST).await {
            Ok(b) => b,
            Err(e) => return Ok(fault(&Fault::bad_request(e.to_string()), false)),
        };
    let request = match pinhole_onvif::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(client = %client.ip, error = %e, "ONVIF request refused");
            return Ok(fault(&e.fault(), false));
        }
    };
    if service::access(&request) == Access::Viewer {
        match state
            .auth
            .onvif_viewer(client.ip, request.token.as_ref())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(client = %client.ip, op = %request.operation.name, "ONVIF request without valid credentials");
                return Ok(fault(&Fault::not_authorized(), request.soap11));
            }
            Err(ServerError::TooManyRequests { retry_after }) => {
                let mut f = Fault::not_authorized();
                f.reason = format!("too many attempts: retry in {retry_after} s");
                let mut r = fault(&f, request.soap11);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return Ok(r);
            }
            Err(e) => return Err(e),
        }
    }
    let scheme = if client.https { "https" } else { "http" };
    let base = format!("{scheme}://{host}");
    let rtsp_uri = format!(
        "rtsp://{}:{}{}",
        host_only(&host),
        state.rtsp_port.get().copied().unwrap_or(8554),
        crate::rtsp::PATH
    );
    let snapshot_uri = snapshot_uri(state, &base);
    let (device_xaddr, media_xaddr) = (
        format!("{base}{DEVICE_PATH}"),
        format!("{base}{MEDIA_PATH}"),
    );
    let cx = Context {
        device: &onvif.device,
        stream: stream_info(state),
        device_xaddr: &device_xaddr,
        media_xaddr: &media_xaddr,
        rtsp_uri: &rtsp_uri,
        snapshot_uri: &snapshot_uri,
        now_us: state.clock.wall_us(),
    };
    Ok(match service::respond(&request, &cx) {
        Ok(body) => soap(200, body),
        Err(f) => {
            tracing::debug!(op = %request.operation.name, reason = %f.reason, "ONVIF fault");
            fault(&f, request.soap11)
        }
    })
}

/// The snapshot's URL; when watching needs credentials, with the first
/// viewer token (an ONVIF client fetches it with HTTP Basic/Digest, which
/// pinhole's HTTP side does not take), else plain.
fn snapshot_uri(state: &AppState, base: &str) -> String {
    let token = state
        .auth
        .config()
        .viewer_tokens
        .iter()
        .find(|t| !t.is_empty());
    match token {
        Some(t) if !state.auth.shared_cache_ok() => {
            format!(
                "{base}/snapshot.jpg?token={}",
                pinhole_onvif::escape_unreserved(t)
            )
        }
        _ => format!("{base}/snapshot.jpg"),
    }
}

/// `Host` without its port (`[::1]:80` → `[::1]`).
fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn stream_info(state: &AppState) -> StreamInfo {
    let src = state.source_info();
    let stats = state.hub.stats();
    let (width, height) = stats
        .stream
        .as_ref()
        .map_or((0, 0), |s| (s.info.width, s.info.height));
    StreamInfo {
        width,
        height,
        fps: src.fps.map_or(0, |f| f.round() as u32),
        bitrate_kbps: src.bitrate.map_or(0, |b| b / 1000),
        gop: src.keyframe_interval.unwrap_or(0),
    }
}

/// At most this many answers to probes per second: a spoofed probe makes
/// us send a bigger datagram to its (LAN) source.
const PROBE_ANSWERS_PER_SEC: u32 = 20;

/// Binds the WS-Discovery socket: UDP 3702 on every interface, in the
/// multicast group. `SO_REUSEADDR`, as every WS-Discovery peer sets it: a
/// client on the same host (Home Assistant, an NVR) binds 3702 too.
pub fn bind_discovery(port: u16) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    s.join_multicast_v4(&discovery::MULTICAST, &Ipv4Addr::UNSPECIFIED)?;
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// Answers Probes until `shutdown`; sends Hello first.
pub async fn discovery(
    socket: tokio::net::UdpSocket,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let Some(onvif) = state.onvif.get() else {
        return;
    };
    let group = SocketAddr::from((discovery::MULTICAST, discovery::PORT));
    if let Some(ip) = local_ip_towards(group) {
        let xaddrs = vec![xaddr(ip, onvif.http_port)];
        let hello = announce(onvif, &xaddrs).hello(&message_id(), onvif.sequence());
        if let Err(e) = socket.send_to(hello.as_bytes(), group).await {
            tracing::debug!(error = %e, "WS-Discovery Hello not sent");
        }
    }
    tokio::pin!(shutdown);
    let mut buf = vec![0u8; discovery::MAX_PROBE + 1];
    let (mut window, mut answered) = (state.clock.now_us(), 0u32);
    loop {
        let (n, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "WS-Discovery receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // A unicast probe from beyond the LAN would make us a reflector
        // (a ProbeMatch is larger than a Probe): [security] accept_from.
        if !state.config.security.accept_from.accepts(peer.ip()) {
            continue;
        }
        let probe = match discovery::parse_probe(&buf[..n]) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                tracing::trace!(%peer, error = %e, "not a WS-Discovery message");
                continue;
            }
        };
        let now = state.clock.now_us();
        if now.saturating_sub(window) >= 1_000_000 {
            (window, answered) = (now, 0);
        }
        if answered >= PROBE_ANSWERS_PER_SEC {
            continue;
        }
        // Our address as the prober sees it: the one its route leaves from.
        let Some(ip) = local_ip_towards(peer) else {
            continue;
        };
        let xaddrs = vec![xaddr(ip, onvif.http_port)];
        let a = announce(onvif, &xaddrs);
        if !a.matches(&probe) {
            continue;
        }
        answered += 1;
        let reply = a.probe_match(&probe, &message_id(), onvif.sequence());
        if let Err(e) = socket.send_to(reply.as_bytes(), peer).await {
            tracing::debug!(%peer, error = %e, "ProbeMatch not sent");
        } else {
            tracing::debug!(%peer, "answered a WS-Discovery probe");
        }
    }
}

fn announce<'a>(onvif: &'a Onvif, xaddrs: &'a [String]) -> Announce<'a> {
    Announce {
        endpoint: &onvif.endpoint,
        xaddrs,
        name: &onvif.name,
        hardware: &onvif.device.hardware,
    }
}

fn xaddr(ip: IpAddr, port: u16) -> String {
    let port = if port == 80 {
        String::new()
    } else {
        format!(":{port}")
    };
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}{port}{DEVICE_PATH}"),
        IpAddr::V6(v6) => format!("http://[{v6}]{port}{DEVICE_PATH}"),
    }
}

/// The local address the kernel would send from to reach `peer` (a
/// connected UDP socket sends nothing).
fn local_ip_towards(peer: SocketAddr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

fn message_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::getrandom(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ids() {
        assert_eq!(host_only("10.0.0.2:8080"), "10.0.0.2");
        assert_eq!(host_only("cam.local"), "cam.local");
        assert_eq!(host_only("[fe80::1]:80"), "[fe80::1]");
        assert_eq!(host_only("[fe80::1]"), "[fe80::1]");
        assert_eq!(
            xaddr("10.0.0.2".parse().unwrap(), 80),
            "http://10.0.0.2/onvif/device_service"
        );
        assert_eq!(
            xaddr("10.0.0.2".parse().unwrap(), 8080),
            "http://10.0.0.2:8080/onvif/device_service"
        );
        let a = Onvif::new(
            DeviceInfo::default(),
            "cam".into(),
            b"0123456789abcdef0123456789abcdef",
            80,
            0,
        );
        let b = Onvif::new(
            DeviceInfo::default(),
            "cam".into(),
            b"0123456789abcdef0123456789abcdee",
            80,
            0,
        );
        assert_ne!(a.endpoint, b.endpoint);
        assert_eq!(a.endpoint.len(), "urn:uuid:".len() + 36, "{}", a.endpoint);
        assert_eq!(serial_of(b"x").len(), 16);
        let m = message_id();
        assert_eq!(m.len(), "urn:uuid:".len() + 36);
        assert_ne!(m, message_id());
        assert_eq!(pinhole_onvif::escape_unreserved("a b&c"), "a%20b%26c");
    }
}
