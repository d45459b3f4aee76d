//! Security headers on every response pinholed sends. nginx adds the same
//! to the files it serves itself (`overlay/etc/nginx/pinhole.conf`; a test
//! checks that it carries this exact policy).

use http::header::{self, HeaderValue};
use hyper::Response;

use crate::Body;

/// The UI's Content-Security-Policy: its own ES modules and styles only (no
/// inline script or style), WebSocket/fetch to itself, `blob:` for the
/// MediaSource URLs of the MSE and HLS players, framed only by itself.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'self'";

/// `nosniff` on everything; on HTML pages also the CSP, the older
/// `X-Frame-Options` and a referrer policy (a `?token=` URL must not leak).
/// Only pages get the framing rules: a picture or stream (`/mjpeg`) may
/// still be embedded elsewhere.
pub(crate) fn apply(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
}
