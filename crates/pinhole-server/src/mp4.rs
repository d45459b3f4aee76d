//! `/stream.mp4`: progressive fragmented MP4 over chunked HTTP (ffplay, VLC,
//! a `<video src>`), with every track fMP4 carries (video, audio). hyper
//! only polls for the next chunk when the socket takes it, so a slow client
//! lags in the hub and skips, never buffers here.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::Response;

use crate::state::{Output, ViewerGuard};
use crate::{AppState, Body, ServerError};

struct Progress {
    viewer: pinhole_hub::Viewer,
    generation: Option<u64>,
    _guard: ViewerGuard,
}

pub(crate) fn progressive(state: &Arc<AppState>) -> Result<Response<Body>, ServerError> {
    if state.hub.stream().is_none() {
        return Err(ServerError::Unavailable(
            "no video yet: the source has not delivered a keyframe".into(),
        ));
    }
    let start = Progress {
        viewer: state.hub.subscribe(),
        generation: None,
        _guard: state.viewer(Output::Mp4),
    };
    let chunks = futures_util::stream::unfold(start, |mut p| async move {
        let frame = loop {
            let frame = p.viewer.recv().await?;
            // Camera JPEGs, and a track added since this generation began.
            if frame.stream.carries(&frame.track) {
                break frame;
            }
        };
        let mut out: Vec<Bytes> = Vec::with_capacity(2);
        match p.generation {
            None => {
                p.generation = Some(frame.stream.generation);
                out.push(frame.stream.init.clone());
            }
            // A new resolution cannot continue one MP4 file: end it, the
            // player reconnects and gets the new init segment.
            Some(g) if g != frame.stream.generation => return None,
            Some(_) => {}
        }
        out.push(frame.fmp4().clone());
        Some((out, p))
    })
    .flat_map(|v| {
        futures_util::stream::iter(
            v.into_iter()
                .map(|b| Ok::<_, std::io::Error>(BodyFrame::data(b))),
        )
    });
    let mut resp = Response::new(StreamBody::new(chunks).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("video/mp4"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

use futures_util::StreamExt as _;
