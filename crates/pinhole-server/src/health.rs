//! `GET /api/health`: "the HTTP server answers", without a login.
//!
//! The OTA trial boot commits only when pinholed's own listener answers
//! (besides READY and frames flowing). It used to ask `/api/status`, which is
//! behind the viewer policy: with a viewer password or `viewer_access =
//! "token"` the probe got 401 and every update rolled back. This path is open
//! to anyone the guard lets in at all and says nothing but `{"ok":true}`.

use std::time::Duration;

use http::StatusCode;
use hyper::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{full, Body, ListenAddr};

/// The probe's path; the guard lets GET/HEAD of it through unauthenticated.
pub const PATH: &str = "/api/health";

pub(crate) fn respond() -> Response<Body> {
    let mut resp = full(StatusCode::OK, "application/json", r#"{"ok":true}"#);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Whether the listener at `addr` answers [`PATH`] with 200 within 2 s.
/// (`Host` is an IP literal: valid for any Host allow-list.)
pub async fn probe(addr: &ListenAddr) -> bool {
    let probe = async {
        let req = b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut head = [0u8; 16];
        let n = match addr {
            ListenAddr::Tcp(a) => {
                let mut s = tokio::net::TcpStream::connect(a).await.ok()?;
                s.write_all(req).await.ok()?;
                s.read(&mut head).await.ok()?
            }
            ListenAddr::Unix(p) => {
                let mut s = tokio::net::UnixStream::connect(p).await.ok()?;
                s.write_all(req).await.ok()?;
                s.read(&mut head).await.ok()?
            }
        };
        Some(head[..n].windows(5).any(|w| w == b" 200 "))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}
