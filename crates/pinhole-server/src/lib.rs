//! Where a frame leaves pinhole: the HTTP server and its outputs.
//!
//! [`serve`] takes already-bound listeners and a shutdown future, so tests
//! bind port 0 and talk real bytes to it.

pub mod access;
pub mod access_lists;
pub mod auth;
pub mod camera;
mod dash;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
pub mod health;
pub mod hls;
pub mod https;
pub mod limits;
pub mod listen;
mod mjpeg;
mod mp4;
pub mod onvif;
pub mod push_api;
mod routes;
pub mod rtsp;
pub mod snapshot;
pub mod state;
mod status;
pub mod table;
mod ui;
pub mod update;
pub mod whep;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub use error::ServerError;
pub use listen::{ListenAddr, Listener};
pub use state::{AppState, Output, ServerConfig};

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) fn full(
    status: http::StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

pub(crate) fn error_response(e: &ServerError) -> Response<Body> {
    let body = serde_json::json!({ "error": e.to_string() }).to_string();
    let mut resp = full(e.status(), "application/json", body);
    // Never kept by a cache: a 404 for a part about to exist, or a 503
    // while the first segment is made, must not outlive the moment.
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let ServerError::TooManyRequests { retry_after } = e {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, (*retry_after).into());
    }
    resp
}

/// Serves HTTP on every listener until `shutdown` resolves, then lets open
/// requests finish (live streams end when the hub closes) for up to 5 s.
///
/// HTTP/1.1 only. No client of ours speaks HTTP/2 to pinholed: nginx proxies
/// over HTTP/1.1 (it cannot proxy HTTP/2 upstream), browsers use HTTP/2 only
/// over TLS, which pinholed does not terminate, and WebSocket needs the
/// HTTP/1.1 upgrade. Serving h2c too only added a second set of limits to get
/// right: idle or half-sent HTTP/2 connections were never timed out (issue 22).
/// An HTTP/2 preface now fails HTTP/1 parsing and the connection is closed.
pub async fn serve(
    listeners: Vec<Listener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send,
) {
    hls::start_default(&state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a clone; `recv` returns `None` once all ended.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let state = state.clone();
        let mut stop_rx = stop_rx.clone();
        let conn_stop = stop_rx.clone();
        let alive = alive_tx.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    conn = accept(&listener) => match conn {
                        Ok(Conn::Tcp(_, peer)) if !state.config.security.accept_from.accepts(peer.ip()) => {
                            // Dropping closes it unread ([security] accept_from).
                            tracing::debug!(%peer, "refused: not a LAN address");
                        }
                        Ok(io) => serve_connection(io, state.clone(), conn_stop.clone(), alive.clone()),
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        }));
    }
    drop(alive_tx);
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    state.hub.close();
    tokio::select! {
        _ = alive_rx.recv() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::warn!("connections still open after 5 s; closing them");
        }
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            // Frames are written whole; never let Nagle hold one back.
            s.set_nodelay(true)?;
            Ok(Conn::Tcp(s, peer))
        }
        Listener::Unix(l, _) => Ok(Conn::Unix(l.accept().await?.0)),
    }
}

fn serve_connection(
    conn: Conn,
    state: Arc<AppState>,
    stop: tokio::sync::watch::Receiver<bool>,
    alive: tokio::sync::mpsc::Sender<()>,
) {
    // Where the request came from, for the access guard (auth/http.rs).
    let info = auth::ConnInfo {
        peer: match &conn {
            Conn::Tcp(_, peer) => Some(peer.ip()),
            Conn::Unix(_) => None,
        },
    };
    let header_timeout = state.config.security.header_read_timeout;
    let svc = service_fn(move |mut req: Request<Incoming>| {
        let state = state.clone();
        req.extensions_mut().insert(info);
        async move { Ok::<_, Infallible>(routes::handle(req, state).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(64 * 1024)
        .header_read_timeout(header_timeout)
        .timer(hyper_util::rt::TokioTimer::new());
    match conn {
        Conn::Tcp(s, _) => {
            let io = TokioIo::new(limits::FirstByteDeadline::new(s, header_timeout));
            let conn = builder.serve_connection(io, svc).with_upgrades();
            tokio::spawn(run_connection(conn, stop, alive));
        }
        Conn::Unix(s) => {
            let io = TokioIo::new(limits::FirstByteDeadline::new(s, header_timeout));
            let conn = builder.serve_connection(io, svc).with_upgrades();
            tokio::spawn(run_connection(conn, stop, alive));
        }
    }
}

/// Drives one connection; at shutdown, lets its current request finish and
/// then closes it (no further keep-alive requests).
async fn run_connection<I, S>(
    conn: http1::UpgradeableConnection<I, S>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _alive: tokio::sync::mpsc::Sender<()>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let stopping = async move {
        // (The guard `wait_for` returns must not live across an await.)
        let _ = stop.wait_for(|s| *s).await.map(|_| ());
    };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with error");
    }
}
