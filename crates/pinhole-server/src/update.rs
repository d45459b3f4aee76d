//! `POST /api/update` and its progress: the HTTP shell around
//! `pinhole_ota::Installer`.
//!
//! The installer runs on its own thread (writes and fsyncs block), fed one
//! request at a time through a bounded channel. Each upload chunk waits for
//! its reply before the next is read from the socket, so memory stays at one
//! chunk whatever the bundle size, and an error (a forged signature, a wrong
//! board) stops the upload at the chunk that revealed it. Between requests
//! the thread sleeps until the installer's next deadline (the upload's idle
//! timeout, the reboot delay, the trial-boot deadline) and then sends it a
//! `Tick`; with nothing due it just waits for the next request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::{Request, Response};
use pinhole_media::Clock;
use pinhole_ota::updater::Event;
use pinhole_ota::{Action, BootControl, ErrorKind, Health, Installer, OtaError, Phase, SlotDevice};
use serde_json::json;
use tokio::sync::{oneshot, watch};

use crate::{full, AppState, Body, ServerError};

/// What the UI's firmware panel shows.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateStatus {
    pub phase: Phase,
    pub bytes: u64,
    pub total: Option<u64>,
    pub error: Option<(ErrorKind, String)>,
    pub active_slot: String,
    pub trial: bool,
    /// The running system's version (the image, not just the daemon).
    pub version: Option<String>,
}

impl UpdateStatus {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "phase": phase_name(self.phase),
            "bytes": self.bytes,
            "total": self.total,
            "error": self.error.as_ref().map(|(_, m)| m),
            "active_slot": self.active_slot,
            "trial": self.trial,
            "version": self.version,
        })
    }
}

fn phase_name(p: Phase) -> String {
    match p {
        Phase::Idle => "idle".into(),
        Phase::Receiving => "receiving".into(),
        Phase::Writing { image } => format!("writing image {}", image + 1),
        Phase::Verifying => "verifying".into(),
        Phase::Staged => "staged".into(),
        Phase::Rebooting => "rebooting".into(),
        Phase::Trial => "trial".into(),
        Phase::Committed => "committed".into(),
        Phase::RollingBack => "rolling back".into(),
        Phase::Failed => "failed".into(),
    }
}

type Reply = oneshot::Sender<Vec<Action>>;

/// Handle to the installer thread.
pub struct UpdateService {
    tx: mpsc::SyncSender<(Event, Option<Reply>)>,
    status: watch::Receiver<UpdateStatus>,
    uploading: AtomicBool,
}

impl UpdateService {
    /// Starts the installer thread. `clock`'s monotonic time is the
    /// installer's `now`: time since boot on the device (CLOCK_BOOTTIME, so
    /// a restarted daemon keeps the trial deadline), simulated in tests.
    pub fn spawn<S, B>(
        mut installer: Installer<S, B>,
        clock: Arc<dyn Clock>,
        version: Option<String>,
    ) -> std::io::Result<Arc<UpdateService>>
    where
        S: SlotDevice + Send + 'static,
        B: BootControl + Send + 'static,
    {
        let boot = installer.updater.boot();
        let initial = UpdateStatus {
            phase: installer.updater.phase(),
            bytes: 0,
            total: None,
            error: None,
            active_slot: boot.active.as_str().to_string(),
            trial: boot.trial,
            version,
        };
        let (status_tx, status) = watch::channel(initial);
        let (tx, rx) = mpsc::sync_channel::<(Event, Option<Reply>)>(1);
        std::thread::Builder::new()
            .name("ota".into())
            .spawn(move || loop {
                let now = || Duration::from_micros(clock.now_us());
                // Wait for a request, or until the installer needs time.
                let next = match installer.updater.next_deadline() {
                    Some(due) => rx.recv_timeout(due.saturating_sub(now())),
                    None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                let (event, reply) = match next {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => (Event::Tick, None),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                // A new upload starts with a clean slate: its reply must not
                // show the error of the one before.
                let starting = matches!(event, Event::UploadStarted);
                let actions = installer.handle(event, now());
                // Only a real change wakes the event streams (a Tick
                // or a health report often changes nothing).
                status_tx.send_if_modified(|s| {
                    let before = s.clone();
                    if starting {
                        s.error = None;
                    }
                    for a in &actions {
                        match a {
                            Action::Progress(p) => {
                                s.bytes = p.bytes;
                                s.total = p.total;
                            }
                            Action::Error(e) => {
                                tracing::error!(error = %e, "update failed");
                                s.error = Some((e.kind(), e.to_string()));
                            }
                            _ => {}
                        }
                    }
                    s.phase = installer.updater.phase();
                    s.trial = installer.updater.boot().trial && s.phase == Phase::Trial;
                    if let Some(e) = installer.updater.last_error() {
                        s.error = Some(e.clone());
                    }
                    *s != before
                });
                if let Some(r) = reply {
                    let _ = r.send(actions);
                }
            })?;
        Ok(Arc::new(UpdateService {
            tx,
            status,
            uploading: AtomicBool::new(false),
        }))
    }

    /// Sends an event and waits for the installer to finish with it.
    pub async fn request(&self, event: Event) -> Result<Vec<Action>, ServerError> {
        let (rtx, rrx) = oneshot::channel();
        let tx = self.tx.clone();
        // The channel is bounded (one slot): wait for room off the runtime.
        tokio::task::spawn_blocking(move || tx.send((event, Some(rtx))))
            .await
            .map_err(|e| ServerError::Internal(format!("update task: {e}")))?
            .map_err(|_| ServerError::Internal("the installer thread is gone".into()))?;
        rrx.await
            .map_err(|_| ServerError::Internal("the installer thread is gone".into()))
    }

    /// Fire-and-forget (health reports; `Event::Tick` after moving a
    /// simulated clock, so the installer looks at the time at once).
    pub fn notify(&self, event: Event) {
        let _ = self.tx.try_send((event, None));
    }

    pub fn status(&self) -> UpdateStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<UpdateStatus> {
        self.status.clone()
    }

    /// Reports the trial-boot health signals (ignored outside a trial).
    pub fn report_health(&self, health: Health) {
        if self.status.borrow().phase == Phase::Trial {
            self.notify(Event::Health(health));
        }
    }
}

fn ota_error(e: &OtaError) -> ServerError {
    match e.kind().http_status() {
        409 => ServerError::Conflict(e.to_string()),
        403 => ServerError::Forbidden(e.to_string()),
        422 => ServerError::Unprocessable(e.to_string()),
        400 => ServerError::BadRequest(e.to_string()),
        _ => ServerError::Internal(e.to_string()),
    }
}

fn first_error(actions: &[Action]) -> Option<ServerError> {
    actions.iter().find_map(|a| match a {
        Action::Error(e) => Some(ota_error(e)),
        _ => None,
    })
}

fn service(state: &AppState) -> Result<&Arc<UpdateService>, ServerError> {
    state.update.get().ok_or_else(|| {
        ServerError::Unavailable(
            "updates are not configured on this system (see [ota] in docs/config.md)".into(),
        )
    })
}

/// Clears the "an upload is running" flag however the request ends.
struct Uploading<'a>(&'a AtomicBool);
impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Silence on the event stream before a comment line (nginx's default
/// `proxy_read_timeout` is 60 s).
const KEEP_ALIVE: Duration = Duration::from_secs(25);

/// Longest pause in the middle of an upload before it is abandoned.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest we keep reading (and discarding) a refused upload so that the
/// client, and nginx in front of us, see our answer instead of a reset.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

pub(crate) async fn upload(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let mut body = Some(req.into_body());
    let result = upload_inner(&mut body, state).await;
    if result.is_err() {
        if let Some(mut rest) = body.take() {
            // Answering while the client is still sending makes nginx
            // (proxy_request_buffering off) report 502 instead of our reason.
            let drain = async { while let Some(Ok(_)) = rest.frame().await {} };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        }
    }
    result
}

async fn upload_inner(
    body_slot: &mut Option<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let svc = service(state)?;
    if svc.uploading.swap(true, Ordering::SeqCst) {
        return Err(ServerError::Conflict(
            "another update is being uploaded; wait for it to finish".into(),
        ));
    }
    let _guard = Uploading(&svc.uploading);
    let actions = svc.request(Event::UploadStarted).await?;
    if let Some(e) = first_error(&actions) {
        return Err(e);
    }
    tracing::info!("update upload started");
    let Some(body) = body_slot.as_mut() else {
        return Err(ServerError::Internal("upload body missing".into()));
    };
    loop {
        let frame = match tokio::time::timeout(CHUNK_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                body_slot.take(); // nothing left to drain
                let reason = format!("the upload was cut off: {e}");
                svc.request(Event::UploadAborted {
                    reason: reason.clone(),
                })
                .await?;
                return Err(ServerError::BadRequest(reason));
            }
            Err(_) => {
                let reason = "no data for 60 s: upload abandoned".to_string();
                svc.request(Event::UploadAborted {
                    reason: reason.clone(),
                })
                .await?;
                return Err(ServerError::BadRequest(reason));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing for us
        };
        if data.is_empty() {
            continue;
        }
        let actions = svc.request(Event::UploadChunk(data)).await?;
        if let Some(e) = first_error(&actions) {
            return Err(e);
        }
        // A failed verification (e.g. a hash mismatch) ends the update even
        // without an Error action in this batch: the phase tells.
        if svc.status().phase == Phase::Failed {
            break;
        }
    }
    let actions = svc.request(Event::UploadFinished).await?;
    if let Some(e) = first_error(&actions) {
        return Err(e);
    }
    let st = svc.status();
    if let Some((kind, msg)) = st.error.clone().filter(|_| st.phase == Phase::Failed) {
        return Err(ota_error(&OtaError::new(kind, msg)));
    }
    tracing::info!(phase = %phase_name(st.phase), bytes = st.bytes, "update staged");
    Ok(full(
        StatusCode::OK,
        "application/json",
        json!({
            "result": "staged",
            "message": "the update is written and verified; the camera reboots into it for a trial",
            "status": st.to_json(),
        })
        .to_string(),
    ))
}

pub(crate) fn status(state: &Arc<AppState>) -> Result<Response<Body>, ServerError> {
    let svc = service(state)?;
    let mut v = svc.status().to_json();
    v["uploading"] = svc.uploading.load(Ordering::SeqCst).into();
    Ok(full(StatusCode::OK, "application/json", v.to_string()))
}

/// Server-sent events: the status each time it changes, and a comment line
/// after [`KEEP_ALIVE`] of silence so that proxies keep the stream open.
pub(crate) fn events(state: &Arc<AppState>) -> Result<Response<Body>, ServerError> {
    let svc = service(state)?;
    let rx = svc.subscribe();
    let first = rx.borrow().to_json();
    let events = futures_util::stream::unfold((rx, Some(first)), |(mut rx, first)| async move {
        let chunk = match first {
            Some(j) => format!("data: {j}\n\n"),
            None => match tokio::time::timeout(KEEP_ALIVE, rx.changed()).await {
                Ok(Ok(())) => {
                    let j = rx.borrow_and_update().to_json();
                    format!("data: {j}\n\n")
                }
                Ok(Err(_)) => return None, // the installer thread is gone
                Err(_) => ": keep-alive\n\n".to_owned(),
            },
        };
        Some((
            Ok::<_, std::io::Error>(BodyFrame::data(Bytes::from(chunk))),
            (rx, None),
        ))
    });
    let mut resp = Response::new(StreamBody::new(events).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}
