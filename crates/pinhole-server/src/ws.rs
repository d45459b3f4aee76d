//! WebSocket outputs: `/ws/h264` (raw Annex B, one video access unit per
//! message, as jmuxer expects) and `/ws/fmp4` (init segment, then one
//! fragment per frame of any track it carries, for MSE; `?tracks=video` for
//! players that take the video alone).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::state::Output;
use crate::{full, AppState, Body, ServerError};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    H264,
    Fmp4,
}

/// A viewer whose socket accepts nothing for this long is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The access guard (auth/, access.rs) has checked `Host` and `Origin`
/// before an upgrade gets here: browsers let any page open a WebSocket
/// anywhere, so the `Origin` check is what stops a foreign page from
/// watching (cross-site WebSocket hijacking).
pub(crate) fn upgrade(
    mut req: Request<Incoming>,
    state: Arc<AppState>,
    kind: Kind,
) -> Result<Response<Body>, ServerError> {
    let h = req.headers();
    if !header_has(h, header::UPGRADE, "websocket") || !header_has(h, header::CONNECTION, "upgrade")
    {
        return Err(ServerError::BadRequest(
            "this is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket".into(),
        ));
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(ServerError::BadRequest(
            "Sec-WebSocket-Version must be 13".into(),
        ));
    }
    let key = match h.get(header::SEC_WEBSOCKET_KEY) {
        Some(k) if !k.is_empty() && k.len() <= 64 => k.as_bytes().to_vec(),
        _ => {
            return Err(ServerError::BadRequest(
                "missing or invalid Sec-WebSocket-Key".into(),
            ))
        }
    };
    let video_only = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "tracks=video"));
    let on_upgrade = hyper::upgrade::on(&mut req);
    // The viewer slot the access guard took (auth/http.rs) lives as long as the socket.
    let permit = req
        .extensions_mut()
        .remove::<Arc<crate::limits::ViewerPermit>>();
    tokio::spawn(async move {
        let _permit = permit;
        match on_upgrade.await {
            Ok(upgraded) => {
                // Viewers send nothing but control frames: keep limits tiny.
                // The read buffer too: tungstenite zero-fills all of it
                // (default 128 KiB) on every read attempt, i.e. once per
                // frame sent here, which cost half the CPU and 128 KiB of
                // RSS per viewer (bench/README.md, fan-out). Larger
                // messages still arrive; they are just read in 1 KiB steps.
                let cfg = WebSocketConfig::default()
                    .max_message_size(Some(64 << 10))
                    .max_frame_size(Some(64 << 10))
                    .read_buffer_size(1 << 10)
                    .write_buffer_size(0);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                run_viewer(ws, state, kind, video_only).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = full(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let hs = resp.headers_mut();
    hs.remove(header::CONTENT_TYPE);
    hs.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    hs.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&derive_accept_key(&key)) {
        hs.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

async fn run_viewer<S>(
    mut ws: WebSocketStream<S>,
    state: Arc<AppState>,
    kind: Kind,
    video_only: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _guard = state.viewer(match kind {
        Kind::H264 => Output::WsH264,
        Kind::Fmp4 => Output::WsFmp4,
    });
    let mut viewer = state.hub.subscribe();
    let mut generation = 0;
    let reason = loop {
        tokio::select! {
            frame = viewer.recv() => {
                let Some(frame) = frame else { break "daemon shutting down" };
                // /ws/h264 is video only, as is ?tracks=video; /ws/fmp4
                // takes what its init segment carries (not camera JPEGs,
                // nor a track added since this generation began).
                let wanted = match kind {
                    Kind::H264 => frame.is_video(),
                    Kind::Fmp4 if video_only => frame.is_video(),
                    Kind::Fmp4 => frame.stream.carries(&frame.track),
                };
                if !wanted {
                    continue;
                }
                let mut msgs = Vec::with_capacity(3);
                if let Kind::Fmp4 = kind {
                    let st = &frame.stream;
                    let gen = if video_only { st.video_generation } else { st.generation };
                    if gen != generation {
                        generation = gen;
                        msgs.push(Message::text(init_message(&state, st, video_only)));
                        msgs.push(Message::Binary(if video_only {
                            st.video_init.clone()
                        } else {
                            st.init.clone()
                        }));
                    }
                    msgs.push(Message::Binary(frame.fmp4().clone()));
                } else {
                    msgs.push(Message::Binary(frame.au.data.clone()));
                }
                let send = async {
                    for m in msgs {
                        ws.feed(m).await?;
                    }
                    ws.flush().await
                };
                match tokio::time::timeout(SEND_TIMEOUT, send).await {
                    Ok(Ok(())) => state.send_latency.record(state.hub.age(frame.published_us)),
                    Ok(Err(_)) => break "connection lost",
                    Err(_) => break "viewer stopped reading",
                }
            }
            msg = ws.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break "viewer left",
                Some(Ok(_)) => {} // pings are answered by tungstenite
            },
        }
    };
    tracing::debug!(
        ?kind,
        reason,
        skipped = viewer.skipped(),
        "websocket viewer ended"
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

/// The text message before an init segment: the video's codec, size and
/// rate (what players read today), plus every track it carries.
fn init_message(state: &AppState, st: &pinhole_hub::Stream, video_only: bool) -> String {
    let info = &st.info;
    let fps = state.hub.stats().measured_fps;
    let tracks: Vec<_> = st
        .tracks
        .iter()
        .filter(|t| !video_only || t.id == pinhole_hub::VIDEO)
        .map(|t| {
            serde_json::json!({
                "id": t.id,
                "kind": match t.codec.kind() {
                    pinhole_media::TrackKind::Video => "video",
                    pinhole_media::TrackKind::Audio => "audio",
                    pinhole_media::TrackKind::Picture => "picture",
                },
                "codec": t.codec.codec_string(),
                "timescale": t.codec.timescale(),
            })
        })
        .collect();
    let codecs: Vec<&str> = tracks.iter().filter_map(|t| t["codec"].as_str()).collect();
    serde_json::json!({
        "type": "init",
        "codec": info.codec,
        "codecs": codecs.join(","),
        "width": info.width,
        "height": info.height,
        "fps": if fps > 0.0 { fps } else { state.source_info().fps.unwrap_or(30.0) },
        "tracks": tracks,
    })
    .to_string()
}
