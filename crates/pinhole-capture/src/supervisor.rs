//! Starting, watching and restarting a source: the one place that does it,
//! for every kind (test pattern, pipe, V4L2, libcamera, auto).
//!
//! A source's [`Source::run`] delivers until it is stopped or something
//! goes wrong; it does not retry. [`run_restarting`] runs it again after
//! each failure, after a growing [`Backoff`] on the injected clock (with
//! heartbeats, so a camera being retried is not a hung daemon), and says
//! why in the status. [`Supervisor`] is the daemon's source thread: it runs
//! one source that way and swaps in a new one when the settings change.
//! `auto` runs its current camera with [`run_restarting`] too, so it keeps
//! scanning for another camera while the lost one is retried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use pinhole_media::{AccessUnit, Clock, Codec};
use pinhole_source_api::TrackId;

use crate::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};

/// How a source is restarted after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; doubled after each failure up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// A run that delivered frames for at least this long starts the
    /// backoff over (a source that works for a while then fails is not a
    /// source that never works).
    pub healthy_run: Duration,
    /// The status wording: "…; retrying in 1.0 s".
    pub verb: &'static str,
    /// The log wording: "v4l2: camera lost".
    pub lost: &'static str,
}

impl RetryPolicy {
    /// Any source: 0.5 s, doubling up to 30 s.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        first: Duration::from_millis(500),
        max: Duration::from_secs(30),
        healthy_run: Duration::from_secs(30),
        verb: "retrying",
        lost: "source failed",
    };
    /// A camera (or its helper) comes back quickly once replugged: at most
    /// 4 s between attempts, and any frames delivered start over.
    pub const CAMERA: RetryPolicy = RetryPolicy {
        first: Duration::from_millis(500),
        max: Duration::from_secs(4),
        healthy_run: Duration::ZERO,
        verb: "retrying",
        lost: "camera lost",
    };
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// The growing wait between restarts. Pure: the caller says how long the
/// failed run lasted and whether it delivered.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    next: Duration,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            next: policy.first,
        }
    }

    /// A run that lasted `ran` failed: how long to wait before the next.
    pub fn failed(&mut self, ran: Duration, delivered: bool) -> Duration {
        if delivered && ran >= self.policy.healthy_run {
            self.next = self.policy.first;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.policy.max);
        wait
    }
}

/// How [`run_restarting`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `stop` was set.
    Stopped,
    /// The source finished by itself (a file played once, stdin closed).
    ByItself,
}

/// Passes everything on and notes whether the run delivered anything.
struct Watched<'a> {
    inner: &'a dyn FrameSink,
    delivered: AtomicBool,
}

impl FrameSink for Watched<'_> {
    fn publish(&self, au: AccessUnit) {
        self.delivered.store(true, Ordering::Relaxed);
        self.inner.publish(au);
    }
    fn report(&self, state: SourceState) {
        self.inner.report(state);
    }
    fn update_info(&self, info: SourceInfo) {
        self.inner.update_info(info);
    }
    fn heartbeat(&self) {
        self.inner.heartbeat();
    }
    fn publish_jpeg(&self, jpeg: Bytes, pts_us: u64) {
        self.delivered.store(true, Ordering::Relaxed);
        self.inner.publish_jpeg(jpeg, pts_us);
    }
    fn add_track(&self, codec: Codec) -> Option<TrackId> {
        self.inner.add_track(codec)
    }
    fn publish_on(&self, track: TrackId, au: AccessUnit) {
        self.delivered.store(true, Ordering::Relaxed);
        self.inner.publish_on(track, au);
    }
    fn remove_track(&self, track: TrackId) {
        self.inner.remove_track(track);
    }
    // Without this the default (`false`) hid every viewer's PLI/FIR from
    // the source: WebRTC viewers waited for the next GOP after a loss.
    fn keyframe_wanted(&self) -> bool {
        self.inner.keyframe_wanted()
    }
}

/// Heartbeats while waiting, so the daemon can tell a source being
/// retried from a hung thread.
const HEARTBEAT_US: u64 = 100_000;

/// Runs `source` until `stop` is set or it finishes by itself, restarting
/// it after every failure with the backoff of its [`Source::retry_policy`].
pub fn run_restarting(
    source: &mut dyn Source,
    sink: &dyn FrameSink,
    stop: &StopFlag,
    clock: &dyn Clock,
) -> Ended {
    let policy = source.retry_policy();
    let mut backoff = Backoff::new(policy);
    loop {
        if stop.is_stopped() {
            return Ended::Stopped;
        }
        sink.report(SourceState::Starting);
        let watched = Watched {
            inner: sink,
            delivered: AtomicBool::new(false),
        };
        let started = clock.now_us();
        let result = source.run(&watched, stop);
        if stop.is_stopped() {
            return Ended::Stopped;
        }
        let e = match result {
            Ok(()) => return Ended::ByItself,
            Err(e) => e,
        };
        let ran = Duration::from_micros(clock.now_us().saturating_sub(started));
        let wait = backoff.failed(ran, watched.delivered.load(Ordering::Relaxed));
        failed(&*source, sink, &e, wait, &policy);
        // Sleep in slices: stop promptly, keep the heartbeat going.
        let deadline = clock.now_us() + wait.as_micros() as u64;
        while !stop.is_stopped() && clock.now_us() < deadline {
            sink.heartbeat();
            clock.sleep_until_us((clock.now_us() + HEARTBEAT_US).min(deadline));
        }
    }
}

/// Says why a run failed and when the next one starts, in the log and the
/// status (`/api/status`, the UI).
fn failed(
    source: &dyn Source,
    sink: &dyn FrameSink,
    e: &CaptureError,
    wait: Duration,
    policy: &RetryPolicy,
) {
    let kind = source.info().kind;
    let wait_s = wait.as_secs_f64();
    tracing::warn!(reason = %e, retry_s = wait_s, "{kind}: {}", policy.lost);
    sink.report(SourceState::Failed(format!(
        "{e}; {} in {wait_s:.1} s",
        policy.verb
    )));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The daemon's source thread: runs the source with [`run_restarting`],
/// and swaps in a new source when asked to ([`Supervisor::replace`]).
pub struct Supervisor {
    /// The daemon is stopping.
    stop: StopFlag,
    /// Stops the current run only.
    run_stop: Mutex<StopFlag>,
    /// The next source, set by `replace`.
    pending: Mutex<Option<Box<dyn Source>>>,
}

impl Supervisor {
    /// Starts the source thread.
    pub fn spawn(
        source: Box<dyn Source>,
        sink: Arc<dyn FrameSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Supervisor>, CaptureError> {
        let sup = Arc::new(Supervisor {
            stop: StopFlag::new(),
            run_stop: Mutex::new(StopFlag::new()),
            pending: Mutex::new(None),
        });
        let s = sup.clone();
        std::thread::Builder::new()
            .name("source".into())
            .spawn(move || s.run(source, &*sink, &*clock))
            .map_err(|source| CaptureError::Io {
                what: "starting the source thread".into(),
                source,
            })?;
        Ok(sup)
    }

    /// Stops the current source and runs `next` instead.
    pub fn replace(&self, next: Box<dyn Source>) {
        *lock(&self.pending) = Some(next);
        lock(&self.run_stop).stop();
    }

    pub fn shutdown(&self) {
        self.stop.stop();
        lock(&self.run_stop).stop();
    }

    fn has_pending(&self) -> bool {
        lock(&self.pending).is_some()
    }

    fn run(&self, mut source: Box<dyn Source>, sink: &dyn FrameSink, clock: &dyn Clock) {
        while !self.stop.is_stopped() {
            if let Some(next) = lock(&self.pending).take() {
                drop(std::mem::replace(&mut source, next)); // closes the old device first
                sink.update_info(source.info());
                tracing::info!("source restarted with new settings");
            }
            let run_stop = StopFlag::new();
            *lock(&self.run_stop) = run_stop.clone();
            if self.has_pending() {
                continue; // a replace() raced with the swap above
            }
            if run_restarting(&mut *source, sink, &run_stop, clock) == Ended::Stopped {
                continue; // shutting down, or replaced
            }
            sink.report(SourceState::Failed("the source ended".into()));
            // No heartbeats (nothing runs), but new settings may restart it.
            while !self.stop.is_stopped() && !self.has_pending() {
                clock.sleep_until_us(clock.now_us() + 200_000);
            }
        }
    }
}

#[cfg(test)]
mod tests;
