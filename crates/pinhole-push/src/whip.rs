//! One WHIP push session (RFC 9725): POST our offer to the endpoint, take
//! the 201's answer and `Location`, connect (we are the ICE-full,
//! controlling side; the server's candidates come from its answer), send
//! H.264 (and Opus when the stream has sound) until the server goes or we
//! stop, then DELETE the session. The WebRTC work is
//! `pinhole_webrtc::publish`, sans-I/O; this is its socket and timers.
//! Like RTMP and SRT, its own hub viewer: a slow server only makes that
//! viewer skip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use pinhole_hub::{Hub, Viewer};
use pinhole_media::{Codec, TrackKind};
use pinhole_webrtc::publish::Publisher;
use pinhole_webrtc::session::Shared as RtcShared;
use pinhole_webrtc::start::KeyframeGate;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::http::{request, resolve, Origin};
use crate::run::{Shared, CONNECT_TIMEOUT};
use crate::target::State;
use crate::url::WhipOptions;
use crate::{PushError, PushUrl};

/// Why a session ended without an error.
pub(crate) enum Ended {
    /// The hub closed (the daemon stops) or the target was removed.
    Stopped,
}

pub(crate) async fn session(
    hub: &Arc<Hub>,
    url: &PushUrl,
    w: &WhipOptions,
    shared: &Shared,
    rtc: &RtcShared,
    published_us: &mut u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, PushError> {
    let origin = Origin {
        tls: w.tls,
        host: url.host.clone(),
        port: url.port,
    };
    let server = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(origin.addr()))
        .await
        .map_err(|_| PushError::Timeout("resolving the host (5 s)"))?
        .map_err(PushError::io("resolving the host"))?
        .next()
        .ok_or_else(|| PushError::Url("the host has no address".into()))?;
    // Our host candidate: the address the route to the endpoint leaves
    // from. A server behind the same host name usually has its media there
    // too; others learn our address from our checks (peer-reflexive).
    let ip = route_ip(server.ip()).map_err(PushError::io("finding a route to the server"))?;
    let sock = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(PushError::io("binding the UDP socket"))?;
    let local = sock
        .local_addr()
        .map_err(PushError::io("binding the UDP socket"))?;

    let clock = hub.clock().clone();
    let audio = hub
        .track_of(TrackKind::Audio)
        .is_some_and(|t| matches!(t.codec, Codec::Opus(_)));
    let (mut p, offer) =
        Publisher::offer(rtc, &[local], audio, clock.now_us()).map_err(webrtc_err)?;
    let resp = request(
        &origin,
        Method::POST,
        &w.path,
        w.token.as_deref(),
        Some(offer),
        url.tls_ca.as_deref(),
    )
    .await?;
    if resp.status != StatusCode::CREATED {
        let text = String::from_utf8_lossy(&resp.body);
        let first = text.lines().next().unwrap_or("").chars().take(120);
        return Err(PushError::Refused(format!(
            "HTTP {} to the offer: {}",
            resp.status,
            first.collect::<String>()
        )));
    }
    // The session's URL, for DELETE. Without one (a server that breaks the
    // RFC) we still push; we just cannot say goodbye.
    let resource = resp
        .location
        .as_deref()
        .and_then(|l| resolve(&origin, &w.path, l));
    let result = async {
        if !resp
            .content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"))
        {
            tracing::debug!(target: "pinhole::push", "WHIP answer without Content-Type: application/sdp");
        }
        let answer = std::str::from_utf8(&resp.body)
            .map_err(|_| PushError::Protocol("the SDP answer is not UTF-8".into()))?;
        p.answer(answer, clock.now_us()).map_err(webrtc_err)?;
        stream(hub, url, &mut p, &sock, local, shared, published_us, stop).await
    }
    .await;
    if let Some((o, path)) = resource {
        // Best effort, briefly: the server may be the thing that died.
        let del = request(
            &o,
            Method::DELETE,
            &path,
            w.token.as_deref(),
            None,
            url.tls_ca.as_deref(),
        );
        match tokio::time::timeout(Duration::from_secs(2), del).await {
            Ok(Ok(r)) => {
                tracing::debug!(target: "pinhole::push", status = %r.status, "WHIP DELETE")
            }
            _ => tracing::debug!(target: "pinhole::push", "WHIP DELETE not answered"),
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    hub: &Arc<Hub>,
    url: &PushUrl,
    p: &mut Publisher,
    sock: &UdpSocket,
    local: SocketAddr,
    shared: &Shared,
    published_us: &mut u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, PushError> {
    let clock = hub.clock().clone();
    let mut viewer: Option<Viewer> = None;
    let mut gate = KeyframeGate::default();
    let mut started_us = None;
    let mut skipped = 0;
    let mut frames = 0;
    let mut bytes = 0;
    let mut buf = vec![0u8; 2048];
    let result = loop {
        let now = clock.now_us();
        let polled = p.poll(now);
        for d in &polled.send {
            if let Err(e) = sock.send_to(&d.data, d.to).await {
                tracing::debug!(target: "pinhole::push", error = %e, "WHIP: send");
            }
        }
        if polled.connected && viewer.is_none() {
            // A fresh keyframe for the server, and the GOP so far meanwhile
            // (the publisher starts on the first keyframe either way).
            viewer = Some(hub.subscribe());
            started_us = Some(now);
            shared.set(State::Publishing, None);
            tracing::info!(target: "pinhole::push", target = %url.redacted(), "publishing (WHIP)");
            if gate.request(now) {
                hub.request_keyframe();
            }
        }
        if polled.keyframe_wanted && gate.request(now) {
            hub.request_keyframe();
        }
        if gate.poll(now) {
            hub.request_keyframe();
        }
        let st = p.stats();
        shared
            .frames
            .fetch_add(st.frames_sent - frames, Ordering::Relaxed);
        shared
            .bytes
            .fetch_add(st.bytes_sent - bytes, Ordering::Relaxed);
        (frames, bytes) = (st.frames_sent, st.bytes_sent);
        let Some(deadline) = polled.deadline_us else {
            break Err(PushError::Webrtc(
                p.ended().unwrap_or("the WebRTC session ended").to_owned(),
            ));
        };
        let wait = Duration::from_micros(deadline.saturating_sub(clock.now_us()));
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => p.receive(from, local, &buf[..n], clock.now_us()),
                Err(e) => tracing::debug!(target: "pinhole::push", error = %e, "WHIP: receive"),
            },
            frame = next_frame(&mut viewer) => match frame {
                None => break Ok(Ended::Stopped),
                Some(f) if f.is_video() => {
                    p.write_video(&f.au.data, f.au.pts_us, f.au.keyframe);
                }
                Some(f) if matches!(f.track.codec, Codec::Opus(_)) => {
                    if !p.sends_audio() {
                        // Sound joined after our offer: a new session
                        // offers it (the server cannot take a new track
                        // without a new offer, which WHIP does not have).
                        break Err(PushError::Webrtc(
                            "the stream now has sound: starting a session that carries it".into(),
                        ));
                    }
                    p.write_audio(&f.au.data, f.au.pts_us);
                }
                Some(_) => {}
            },
            _ = stop.changed() => break Ok(Ended::Stopped),
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(v) = &viewer {
            let s = v.skipped();
            shared.skipped.fetch_add(s - skipped, Ordering::Relaxed);
            skipped = s;
        }
    };
    let st = p.stats();
    shared
        .frames
        .fetch_add(st.frames_sent - frames, Ordering::Relaxed);
    p.close("stopped");
    // Send the DTLS close alert.
    for d in p.poll(clock.now_us()).send {
        let _ = sock.send_to(&d.data, d.to).await;
    }
    *published_us = started_us.map_or(0, |s| clock.now_us().saturating_sub(s));
    result
}

async fn next_frame(v: &mut Option<Viewer>) -> Option<Arc<pinhole_hub::Frame>> {
    match v {
        Some(v) => v.recv().await,
        None => std::future::pending().await,
    }
}

/// The local address the kernel would send to `to` from (no packet is
/// sent: connecting a UDP socket only picks the route).
fn route_ip(to: IpAddr) -> std::io::Result<IpAddr> {
    let any = match to {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let s = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    s.connect(SocketAddr::new(to, 9))?;
    Ok(s.local_addr()?.ip())
}

fn webrtc_err(e: pinhole_webrtc::WebrtcError) -> PushError {
    PushError::Webrtc(e.to_string())
}
