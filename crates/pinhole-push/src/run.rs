//! The I/O shell: one tokio task per target. It connects, drives the pure
//! RTMP session, then pulls frames from its own hub viewer. A slow or dead
//! server only makes that viewer fall behind, and the hub's slow-viewer
//! policy skips it to a later keyframe: nothing is queued for it and no
//! other viewer or target waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinhole_hub::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::rtmp::session::{Phase, Session};
use crate::target::{Backoff, Muxer, Out, State};
use crate::tls::Io;
use crate::url::Kind;
use crate::{PushError, PushUrl};

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// From TCP connected to `NetStream.Publish.Start`.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A server that accepts no bytes for this long is given up on.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A snapshot of one target for `/api/status` and `/metrics`.
#[derive(Clone, Debug)]
pub struct TargetStatus {
    /// The URL with its stream key hidden.
    pub url: String,
    pub state: State,
    /// Video frames and bytes sent, over every session.
    pub frames: u64,
    pub bytes: u64,
    /// Frames this target's viewer skipped because the server was slow.
    pub skipped: u64,
    /// Sessions started after a failed one.
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// While backing off: milliseconds until the next attempt.
    pub retry_in_ms: Option<u64>,
}

pub(crate) struct Shared {
    /// State, last error, when the next attempt is due (backing off).
    state: Mutex<(State, Option<String>, Option<Instant>)>,
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// A running push target; dropping it stops the push.
pub struct PushTarget {
    url: PushUrl,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Drop for PushTarget {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        // A WHIP session ends itself on the signal, after its DELETE (at
        // most 2 s); RTMP and SRT have nothing to say on leaving.
        if !matches!(self.url.kind, Kind::Whip(_)) {
            self.task.abort();
        }
    }
}

impl PushTarget {
    /// Start pushing the hub's video to `url`. Needs a tokio runtime.
    pub fn spawn(hub: Arc<Hub>, url: PushUrl) -> PushTarget {
        let shared = Arc::new(Shared {
            state: Mutex::new((State::Connecting, None, None)),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(hub, url.clone(), shared.clone(), stopped));
        PushTarget {
            url,
            shared,
            task,
            stop,
        }
    }

    pub fn url(&self) -> &PushUrl {
        &self.url
    }

    pub fn status(&self) -> TargetStatus {
        let (state, last_error, retry_at) = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let retry_in_ms = retry_at
            .filter(|_| state == State::BackingOff)
            .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64);
        TargetStatus {
            url: self.url.redacted(),
            state,
            frames: self.shared.frames.load(Ordering::Relaxed),
            bytes: self.shared.bytes.load(Ordering::Relaxed),
            skipped: self.shared.skipped.load(Ordering::Relaxed),
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
            last_error,
            retry_in_ms,
        }
    }

    /// Forget the last error (the panel's "clear"); the next failure sets
    /// a new one.
    pub fn clear_error(&self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = None;
    }
}

impl Shared {
    fn retry_at(&self, at: Instant) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).2 = Some(at);
    }

    pub(crate) fn set(&self, state: State, error: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = state;
        if error.is_some() {
            s.1 = error;
        }
        s.2 = None;
    }
}

async fn run(hub: Arc<Hub>, url: PushUrl, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    let target = url.redacted();
    let mut first = true;
    // WHIP's DTLS certificate: one per target, made once (a P-256 key).
    let rtc = matches!(url.kind, Kind::Whip(_))
        .then(|| pinhole_webrtc::session::Shared::new(Vec::new(), Instant::now()));
    loop {
        if !first {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        shared.set(State::Connecting, None);
        let mut published_us = 0;
        let result = match &url.kind {
            Kind::Rtmp { .. } => session(&hub, &url, &shared, &mut published_us).await,
            Kind::Srt(o) => crate::srt::session(&hub, &url, o, &shared, &mut published_us).await,
            Kind::Whip(w) => match &rtc {
                Some(rtc) => {
                    crate::whip::session(&hub, &url, w, &shared, rtc, &mut published_us, &mut stop)
                        .await
                        .map(|_| ())
                }
                None => return,
            },
        };
        let err = match result {
            Ok(()) => return, // the hub closed: shutting down
            Err(e) => hide_secrets(&e.to_string(), &url.secrets()),
        };
        let wait = backoff.failed(published_us);
        tracing::warn!(
            target: "pinhole::push",
            %target,
            error = %err,
            retry_in_s = wait as f64 / 1e6,
            "push failed; retrying"
        );
        shared.set(State::BackingOff, Some(err));
        shared.retry_at(Instant::now() + Duration::from_micros(wait));
        // A wait between connection attempts, not a media decision: tokio's
        // timer (the hub clock's sleep blocks a thread).
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_micros(wait)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A server's error text may quote the stream name, i.e. the key.
fn hide_secrets(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

async fn write(sock: &mut Box<dyn Io>, bytes: &[u8], shared: &Shared) -> Result<(), PushError> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(WRITE_TIMEOUT, sock.write_all(bytes))
        .await
        .map_err(|_| PushError::Timeout("writing: the server accepted nothing for 10 s"))?
        .map_err(PushError::io("writing to the server"))?;
    shared
        .bytes
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(())
}

async fn read_some(sock: &mut Box<dyn Io>, buf: &mut [u8]) -> Result<usize, PushError> {
    match sock.read(buf).await {
        Ok(0) => Err(PushError::Closed),
        Ok(n) => Ok(n),
        Err(e) => Err(PushError::io("reading from the server")(e)),
    }
}

/// One connection, until it fails (`Err`) or the hub closes (`Ok`).
async fn session(
    hub: &Arc<Hub>,
    url: &PushUrl,
    shared: &Shared,
    published_us: &mut u64,
) -> Result<(), PushError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(url.addr()))
        .await
        .map_err(|_| PushError::Timeout("connecting (5 s)"))?
        .map_err(PushError::io("connecting"))?;
    let _ = tcp.set_nodelay(true);
    let mut sock: Box<dyn Io> = match &url.kind {
        Kind::Rtmp { tls: true, .. } => tokio::time::timeout(
            CONNECT_TIMEOUT,
            crate::tls::connect(tcp, &url.host, url.tls_ca.as_deref()),
        )
        .await
        .map_err(|_| PushError::Timeout("in the TLS handshake (5 s)"))??,
        _ => Box::new(tcp),
    };
    let clock = hub.clock().clone();
    let now_ms = (clock.now_us() / 1000) as u32;
    let params = url
        .publish_params()
        .ok_or(PushError::Url("not an RTMP URL".into()))?;
    let mut rtmp = Session::new(params, now_ms, clock.wall_us());
    let mut buf = vec![0u8; 16 << 10];
    let setup = async {
        loop {
            write(&mut sock, &rtmp.take_output(), shared).await?;
            if rtmp.phase() == Phase::Publishing {
                return Ok::<(), PushError>(());
            }
            let n = read_some(&mut sock, &mut buf).await?;
            rtmp.handle_input(&buf[..n])?;
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| PushError::Timeout("waiting for the server to accept the publish (10 s)"))??;
    let started_us = clock.now_us();
    shared.set(State::Publishing, None);
    let sound = hub.track_of(pinhole_media::TrackKind::Audio).is_some();
    tracing::info!(
        target: "pinhole::push",
        target = %url.redacted(),
        "publishing{}",
        if sound { " (video only: RTMP has no Opus; docs/audio.md)" } else { "" }
    );

    // A new viewer starts on the held keyframe: the server gets a
    // decodable stream at once.
    let mut viewer = hub.subscribe();
    let mut muxer = Muxer::default();
    let mut skipped = 0;
    let result = loop {
        tokio::select! {
            n = read_some(&mut sock, &mut buf) => {
                let r = n.and_then(|n| rtmp.handle_input(&buf[..n]));
                if let Err(e) = r {
                    break Err(e);
                }
            }
            frame = viewer.recv() => {
                let Some(frame) = frame else { break Ok(()) };
                if !frame.is_video() {
                    continue;
                }
                // Only a keyframe may carry metadata: read the rate then.
                let fps = if frame.au.keyframe { hub.stats().measured_fps } else { 0.0 };
                let fps = if fps > 0.0 { fps } else { 30.0 };
                let stream = &frame.stream;
                for out in muxer.frame(
                    &stream.info,
                    stream.video_generation,
                    fps,
                    frame.au.pts_us,
                    frame.au.keyframe,
                    &frame.au.data,
                ) {
                    match out {
                        Out::Metadata(m) => rtmp.send_metadata(m),
                        Out::Video { ts_ms, body } => {
                            rtmp.send_video(ts_ms, body);
                            shared.frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if let Err(e) = write(&mut sock, &rtmp.take_output(), shared).await {
            break Err(e);
        }
        let s = viewer.skipped();
        shared.skipped.fetch_add(s - skipped, Ordering::Relaxed);
        skipped = s;
    };
    *published_us = clock.now_us().saturating_sub(started_us);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_servers_error_never_shows_the_key() {
        assert_eq!(
            super::hide_secrets("server refused: stream sekrit-1 is busy", &["sekrit-1", ""]),
            "server refused: stream *** is busy"
        );
    }
}
