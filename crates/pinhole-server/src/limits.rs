//! Bounds on what a client can make the daemon hold: request bodies, and how
//! many live viewers (WebSocket, progressive MP4, MJPEG) there are in all and
//! per client address.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use crate::{Body, ServerError};

/// Largest JSON body any handler but the update upload reads.
pub const MAX_JSON_BODY: usize = 64 << 10;
/// A small body must arrive within this time.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a whole request body of at most `limit` bytes within
/// [`BODY_TIMEOUT`]. Larger → 413, slower → 408-ish 400.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ServerError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(ServerError::PayloadTooLarge(format!(
            "body larger than {limit} bytes"
        )));
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ServerError::BadRequest("request body too slow".into())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(
            ServerError::PayloadTooLarge(format!("body larger than {limit} bytes")),
        ),
        Ok(Err(e)) => Err(ServerError::BadRequest(format!("cannot read body: {e}"))),
    }
}

/// Live-viewer counts, global and per client address.
#[derive(Debug)]
pub struct ViewerLimits {
    max_total: usize,
    max_per_ip: usize,
    inner: Mutex<Counts>,
}

#[derive(Default, Debug)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held for as long as a viewer is connected (moved into the WebSocket task
/// or the streaming body); dropping it frees the slot.
#[derive(Debug)]
pub struct ViewerPermit {
    limits: Arc<ViewerLimits>,
    ip: IpAddr,
}

impl ViewerLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ViewerLimits> {
        Arc::new(ViewerLimits {
            max_total,
            max_per_ip,
            inner: Mutex::default(),
        })
    }

    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ViewerPermit, ServerError> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(ServerError::Unavailable(format!(
                "too many viewers ({} connected, the limit is {})",
                c.total, self.max_total
            )));
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(ServerError::Unavailable(format!(
                "too many viewers from one address (limit {})",
                self.max_per_ip
            )));
        }
        *n += 1;
        c.total += 1;
        Ok(ViewerPermit {
            limits: self.clone(),
            ip,
        })
    }

    /// Viewers currently holding a permit.
    pub fn current(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ViewerPermit {
    fn drop(&mut self) {
        let mut c = self.limits.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A response body that keeps a viewer permit until the stream ends.
pub(crate) struct PermitBody {
    inner: Body,
    _permit: Arc<ViewerPermit>,
}

impl PermitBody {
    pub(crate) fn wrap(inner: Body, permit: Arc<ViewerPermit>) -> Body {
        PermitBody {
            inner,
            _permit: permit,
        }
        .boxed_unsync()
    }
}

impl HttpBody for PermitBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection that must send its first byte within a deadline. hyper's
/// header timeout starts with the first byte, so without this a client that
/// connects and says nothing would hold a socket forever.
pub(crate) struct FirstByteDeadline<T> {
    inner: T,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> FirstByteDeadline<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        FirstByteDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_address() {
        let l = ViewerLimits::new(3, 2);
        let a: IpAddr = "192.168.1.2".parse().unwrap();
        let b: IpAddr = "192.168.1.3".parse().unwrap();
        let p1 = l.acquire(a).unwrap();
        let _p2 = l.acquire(a).unwrap();
        assert!(l
            .acquire(a)
            .unwrap_err()
            .to_string()
            .contains("one address"));
        let _p3 = l.acquire(b).unwrap();
        assert!(l.acquire(b).unwrap_err().to_string().contains("too many"));
        drop(p1);
        assert_eq!(l.current(), 2);
        l.acquire(b).unwrap();
    }
}
