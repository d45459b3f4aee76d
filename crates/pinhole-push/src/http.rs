//! A one-request HTTP/1.1 client for WHIP's POST and DELETE: hyper's
//! client connection over a fresh TCP (or TLS) stream, `Connection: close`.
//! A WHIP exchange is two requests per session, so no pool.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::run::{CONNECT_TIMEOUT, WRITE_TIMEOUT};
use crate::PushError;

/// An SDP answer is a few KB; an error page need not be read whole.
const MAX_BODY: usize = 64 << 10;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub struct Response {
    pub status: StatusCode,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// One request; `body` is sent as `application/sdp` when present.
pub async fn request(
    origin: &Origin,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
    ca: Option<&std::path::Path>,
) -> Result<Response, PushError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(origin.addr()))
        .await
        .map_err(|_| PushError::Timeout("connecting (5 s)"))?
        .map_err(PushError::io("connecting"))?;
    let _ = tcp.set_nodelay(true);
    let exchange = async {
        let io: Box<dyn crate::tls::Io> = if origin.tls {
            crate::tls::connect(tcp, &origin.host, ca).await?
        } else {
            Box::new(tcp)
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(http_err)?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, origin.host_header())
            .header("connection", "close");
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/sdp");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| PushError::Url(format!("request: {e}")))?;
        let resp = sender.send_request(req).await.map_err(http_err)?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| PushError::Protocol(format!("reading the HTTP body: {e}")))?
            .to_bytes();
        conn.abort();
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Response {
            status: parts.status,
            location: header(LOCATION),
            content_type: header(CONTENT_TYPE),
            body,
        })
    };
    tokio::time::timeout(WRITE_TIMEOUT, exchange)
        .await
        .map_err(|_| PushError::Timeout("waiting for the HTTP answer (10 s)"))?
}

fn http_err(e: hyper::Error) -> PushError {
    PushError::Protocol(format!("HTTP: {e}"))
}

/// The WHIP session's URL from the 201's `Location` (RFC 9725 §4.2), which
/// may be absolute or relative to the endpoint's path. `None` if it names
/// another scheme.
pub fn resolve(origin: &Origin, endpoint_path: &str, location: &str) -> Option<(Origin, String)> {
    let location = location.trim();
    for (scheme, tls) in [("http://", false), ("https://", true)] {
        if let Some(rest) = location
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &location[scheme.len()..])
        {
            let split = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(split);
            if authority.contains('@') {
                return None;
            }
            let parsed =
                crate::url::split_host_port(authority, Some(if tls { 443 } else { 80 })).ok()?;
            let path = if path.is_empty() { "/" } else { path };
            return Some((
                Origin {
                    tls,
                    host: parsed.0,
                    port: parsed.1,
                },
                path.to_owned(),
            ));
        }
    }
    if location.contains("://") || location.is_empty() {
        return None;
    }
    if location.starts_with("//") {
        return None;
    }
    if location.starts_with('/') {
        return Some((origin.clone(), location.to_owned()));
    }
    // Relative: against the endpoint's directory (its path without query).
    let base = endpoint_path.split('?').next().unwrap_or("/");
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some((origin.clone(), format!("{dir}{location}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_endpoint() {
        let o = Origin {
            tls: false,
            host: "h".into(),
            port: 8889,
        };
        assert_eq!(
            resolve(&o, "/cam/whip", "/cam/whip/abc"),
            Some((o.clone(), "/cam/whip/abc".into()))
        );
        assert_eq!(
            resolve(&o, "/cam/whip?x=1", "res/1"),
            Some((o.clone(), "/cam/res/1".into()))
        );
        let (o2, p) = resolve(&o, "/w", "HTTPS://other:9443/r/2").unwrap();
        assert_eq!(
            (o2.tls, o2.host.as_str(), o2.port, p.as_str()),
            (true, "other", 9443, "/r/2")
        );
        let (o3, _) = resolve(&o, "/w", "http://[::1]/r").unwrap();
        assert_eq!((o3.host.as_str(), o3.port), ("::1", 80));
        assert_eq!(o3.host_header(), "[::1]");
        assert_eq!(o.host_header(), "h:8889");
        assert!(resolve(&o, "/w", "ftp://x/y").is_none());
        assert!(resolve(&o, "/w", "//evil/y").is_none());
        assert!(resolve(&o, "/w", "").is_none());
    }
}
