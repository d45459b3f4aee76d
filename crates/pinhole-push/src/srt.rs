//! One SRT push session (caller mode): MPEG-TS (H.264, and Opus when the
//! stream has sound) from [`crate::ts`] over
//! `srt-tokio`, 7 TS packets (1316 bytes) per SRT packet as every SRT
//! implementation expects. Like RTMP, its own hub viewer: a slow or gone
//! receiver only makes that viewer skip.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pinhole_hub::Hub;
use pinhole_media::Codec;
use srt_tokio::SrtSocket;

use crate::run::{Shared, CONNECT_TIMEOUT, WRITE_TIMEOUT};
use crate::target::State;
use crate::ts::{TsMuxer, PACKET};
use crate::url::SrtOptions;
use crate::{PushError, PushUrl};

const PAYLOAD: usize = 7 * PACKET;

pub(crate) async fn session(
    hub: &Arc<Hub>,
    url: &PushUrl,
    o: &SrtOptions,
    shared: &Shared,
    published_us: &mut u64,
) -> Result<(), PushError> {
    let addr = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(url.addr()))
        .await
        .map_err(|_| PushError::Timeout("resolving the host (5 s)"))?
        .map_err(PushError::io("resolving the host"))?
        .next()
        .ok_or_else(|| PushError::Url("the host has no address".into()))?;
    let mut builder = SrtSocket::builder()
        .latency(Duration::from_millis(u64::from(o.latency_ms)))
        .set(|s| s.connect.timeout = CONNECT_TIMEOUT);
    if let Some(p) = &o.passphrase {
        builder = builder.encryption(o.pbkeylen, p.clone());
    }
    // A refused stream id or a wrong passphrase ends here too (libsrt
    // rejects the handshake; srt-tokio reports a timeout or refusal).
    let mut sock = tokio::time::timeout(
        CONNECT_TIMEOUT + Duration::from_secs(1),
        builder.call(addr, o.streamid.as_deref()),
    )
    .await
    .map_err(|_| PushError::Timeout("connecting (SRT handshake, 5 s)"))?
    .map_err(PushError::io("connecting (SRT)"))?;

    let clock = hub.clock().clone();
    let started_us = clock.now_us();
    shared.set(State::Publishing, None);
    tracing::info!(target: "pinhole::push", target = %url.redacted(), "publishing (SRT)");

    let mut viewer = hub.subscribe();
    // Sound goes along as Opus (ts.rs); if it joins later, the PMT lists
    // it from the next keyframe.
    let mut muxer = TsMuxer::default();
    let mut ts = Vec::with_capacity(64 << 10);
    let mut skipped = 0;
    let result = loop {
        tokio::select! {
            // Nothing comes back in caller-sender mode but the end: the
            // socket's task ends (peer gone, timed out) and the stream closes.
            r = sock.next() => match r {
                None => break Err(PushError::Closed),
                Some(Err(e)) => break Err(PushError::io("SRT connection")(e)),
                Some(Ok(_)) => {}
            },
            frame = viewer.recv() => {
                let Some(frame) = frame else { break Ok(()) };
                ts.clear();
                if frame.is_video() {
                    muxer.frame(frame.au.pts_us, frame.au.keyframe, &frame.au.data, &mut ts);
                } else if let Codec::Opus(c) = &frame.track.codec {
                    muxer.enable_opus(c.channels, c.pre_skip);
                    muxer.audio(frame.au.pts_us, &frame.au.data, &mut ts);
                } else {
                    continue;
                }
                if ts.is_empty() {
                    continue;
                }
                let now = Instant::now();
                let mut sent = Ok(());
                for chunk in ts.chunks(PAYLOAD) {
                    let r = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        sock.send((now, Bytes::copy_from_slice(chunk))),
                    )
                    .await;
                    sent = match r {
                        Err(_) => Err(PushError::Timeout("sending: SRT accepted nothing for 10 s")),
                        Ok(Err(e)) => Err(PushError::io("sending (SRT)")(e)),
                        Ok(Ok(())) => Ok(()),
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                if let Err(e) = sent {
                    break Err(e);
                }
                if frame.is_video() {
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                }
                shared.bytes.fetch_add(ts.len() as u64, Ordering::Relaxed);
            }
        }
        let s = viewer.skipped();
        shared.skipped.fetch_add(s - skipped, Ordering::Relaxed);
        skipped = s;
    };
    *published_us = clock.now_us().saturating_sub(started_us);
    result
}
