//! Where a frame leaves pinhole: the HTTP server and its outputs.
//!
//! [`serve`] takes already-bound listeners and a shutdown future, so tests
//! bind port 0 and talk real bytes to it.

pub mod access;
pub mod access_lists;
pub mod auth;
pub mod camera;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hls;
pub mod https;
pub mod limits;
pub mod listen;
mod mjpeg;
mod mp4;
mod routes;
pub mod snapshot;
pub mod state;
mod status;
mod ui;
pub mod update;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;

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
    if let ServerError::TooManyRequests { retry_after } = e {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, (*retry_after).into());
    }
    resp
}

/// Serves HTTP on every listener until `shutdown` resolves, then lets open
/// requests finish (live streams end when the hub closes) for up to 5 s.
pub async fn serve(
    listeners: Vec<Listener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send,
) {
    hls::start_default(&state);
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let state = state.clone();
        let mut stop_rx = stop_rx.clone();
        let graceful = graceful.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    conn = accept(&listener) => match conn {
                        Ok(io) => serve_connection(io, state.clone(), &graceful),
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
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    state.hub.close();
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return; // accept tasks are gone, so this cannot happen; nothing to wait for
    };
    tokio::select! {
        _ = graceful.shutdown() => {}
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

fn serve_connection(conn: Conn, state: Arc<AppState>, graceful: &GracefulShutdown) {
    // Where the request came from, for the access guard (auth.rs).
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .header_read_timeout(header_timeout)
        .timer(hyper_util::rt::TokioTimer::new());
    match conn {
        Conn::Tcp(s, _) => {
            let fut = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(limits::FirstByteDeadline::new(s, header_timeout)),
                    svc,
                )
                .into_owned();
            let fut = graceful.watch(fut);
            tokio::spawn(async move {
                if let Err(e) = fut.await {
                    tracing::debug!(error = %e, "connection ended with error");
                }
            });
        }
        Conn::Unix(s) => {
            let fut = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(limits::FirstByteDeadline::new(s, header_timeout)),
                    svc,
                )
                .into_owned();
            let fut = graceful.watch(fut);
            tokio::spawn(async move {
                if let Err(e) = fut.await {
                    tracing::debug!(error = %e, "connection ended with error");
                }
            });
        }
    }
}
