//! WHEP (RFC 9725): WebRTC playback over four HTTP calls. `POST /whep`
//! with an SDP offer makes a session (201, the answer, `Location`,
//! `ETag`); `PATCH /whep/<id>` trickles ICE candidates or restarts ICE
//! (new credentials: 200 with ours); `DELETE
//! /whep/<id>` ends it; `OPTIONS` lists the ICE servers as `Link`
//! headers. The same under `/stream/whep` (mediamtx's URL shape, which
//! Mainsail's and Fluidd's `webrtc-mediamtx` camera type builds from a
//! stream URL and then keeps only the session id from `Location`).
//!
//! The access guard has already run (table.rs: these are viewer actions),
//! so a refused viewer never reaches the WebRTC stack.

use std::sync::Arc;

use http::{header, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::{full, AppState, Body, ServerError};

/// Offers and fragments are a few KB.
const MAX_BODY: usize = 32 * 1024;

/// `/whep` or `/stream/whep`, and `/<that>/<id>` for a session.
pub(crate) fn session_id(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/whep/")
        .or_else(|| path.strip_prefix("/stream/whep/"))?;
    (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(rest)
}

fn endpoint(state: &AppState) -> Result<&Arc<pinhole_webrtc::Endpoint>, ServerError> {
    state.webrtc.get().ok_or_else(|| {
        ServerError::NotFound("WebRTC is off on this camera ([webrtc] enabled = false)".into())
    })
}

fn content_type_is(req: &Request<Incoming>, want: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

fn put(resp: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(name, v);
    }
}

/// Headers a cross-origin WHEP client must be able to read.
fn expose(resp: &mut Response<Body>) {
    put(
        resp,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "Location, ETag, Link, Accept-Patch, Accept-Post",
    );
}

/// The ICE servers, one `Link` header each (RFC 9725 §4.6), on OPTIONS and
/// on the 201.
pub(crate) fn add_links(state: &AppState, resp: &mut Response<Body>) {
    if let Some(ep) = state.webrtc.get() {
        for s in ep.ice_servers() {
            put(resp, header::LINK, &s.link());
        }
    }
    put(
        resp,
        header::HeaderName::from_static("accept-post"),
        "application/sdp",
    );
    expose(resp);
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    path: &str,
    method: &Method,
) -> Result<Response<Body>, ServerError> {
    let ep = endpoint(state)?;
    let id = session_id(path);
    match (method.as_str(), id) {
        ("POST", None) => {
            if !content_type_is(&req, "application/sdp") {
                return Err(ServerError::UnsupportedMediaType(
                    "a WHEP offer is Content-Type: application/sdp".into(),
                ));
            }
            let body = crate::limits::read_body(req.into_body(), MAX_BODY).await?;
            let sdp = std::str::from_utf8(&body)
                .map_err(|_| ServerError::BadRequest("the offer is not UTF-8 text".into()))?;
            let created = ep.create(sdp)?;
            let mut resp = full(StatusCode::CREATED, "application/sdp", created.answer);
            // Relative to the URL posted to: /whep/<id> or /stream/whep/<id>.
            let base = path.trim_end_matches('/');
            put(
                &mut resp,
                header::LOCATION,
                &format!("{base}/{}", created.id),
            );
            put(&mut resp, header::ETAG, &created.etag);
            put(
                &mut resp,
                header::HeaderName::from_static("accept-patch"),
                "application/trickle-ice-sdpfrag",
            );
            add_links(state, &mut resp);
            Ok(resp)
        }
        ("PATCH", Some(id)) => {
            if !content_type_is(&req, "application/trickle-ice-sdpfrag") {
                return Err(ServerError::UnsupportedMediaType(
                    "PATCH takes Content-Type: application/trickle-ice-sdpfrag".into(),
                ));
            }
            let if_match = req
                .headers()
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = crate::limits::read_body(req.into_body(), MAX_BODY).await?;
            let frag = std::str::from_utf8(&body)
                .map_err(|_| ServerError::BadRequest("the fragment is not UTF-8 text".into()))?;
            match ep.patch(id, if_match.as_deref(), frag).await? {
                pinhole_webrtc::PatchAnswer::Trickle => {
                    let mut resp = full(StatusCode::NO_CONTENT, "text/plain", "");
                    resp.headers_mut().remove(header::CONTENT_TYPE);
                    Ok(resp)
                }
                // ICE restart (RFC 9725 §4.4): our new credentials, new ETag.
                pinhole_webrtc::PatchAnswer::Restart { fragment, etag } => {
                    let mut resp =
                        full(StatusCode::OK, "application/trickle-ice-sdpfrag", fragment);
                    put(&mut resp, header::ETAG, &etag);
                    expose(&mut resp);
                    Ok(resp)
                }
            }
        }
        ("DELETE", Some(id)) => {
            ep.delete(id)?;
            Ok(full(StatusCode::OK, "text/plain", ""))
        }
        _ => Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_hex_under_either_prefix() {
        assert_eq!(session_id("/whep/00ff"), Some("00ff"));
        assert_eq!(session_id("/stream/whep/abc123"), Some("abc123"));
        assert_eq!(session_id("/whep"), None);
        assert_eq!(session_id("/whep/"), None);
        assert_eq!(session_id("/whep/../x"), None);
        assert_eq!(session_id("/stream/whep/zz"), None);
    }
}
