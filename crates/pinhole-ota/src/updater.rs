//! The update state machine: sans-I/O, `handle(event, now) -> actions`.
//!
//! ```text
//!  Idle ──UploadStarted──▶ Receiving ──manifest verified──▶ Writing image k ──▶ …
//!    ▲                        │  any error / abort: MarkInvalid, Error        │
//!    └────────────────────────┘                                               ▼
//!  Verifying (read-back hashes) ──all ok + upload finished──▶ ArmingTrial ──▶ Staged
//!  Staged ──reboot delay──▶ Rebooting ──(reset)──▶ TrialBoot (new process, trial=true)
//!  TrialBoot ──healthy before deadline──▶ Committing ──▶ Committed (Idle)
//!  TrialBoot ──failure / deadline──▶ RollingBack: MarkBad(active), Reboot
//! ```
//!
//! `now` is monotonic time since boot (CLOCK_BOOTTIME), so the trial deadline
//! stays the same if pinholed restarts during the trial.
//!
//! Nothing ticks it every second: [`Updater::next_deadline`] says when it
//! next needs time, and the driver sends [`Event::Tick`] then (a test jumps
//! straight to the deadline).

use std::time::Duration;

use std::borrow::Cow;

use bytes::Bytes;

use crate::boot::BootInfo;
use crate::error::{ErrorKind, OtaError};
use crate::format::{ImageKind, Manifest, Slot};
use crate::reader::{BundleReader, Event as BundleEvent, Policy};

/// Inputs: from the upload, from executing earlier actions, from the
/// health checks, and the clock.
#[derive(Debug)]
pub enum Event {
    UploadStarted,
    UploadChunk(Bytes),
    /// Go on with the rest of the last chunk (answer to `Action::Continue`).
    UploadContinue,
    /// The body ended. The shell sends it only after every
    /// `Action::Continue` was answered (the installer's queue does that).
    UploadFinished,
    /// The client went away or the upload was cancelled.
    UploadAborted {
        reason: String,
    },
    /// `Action::VerifyImage` found the device content matches.
    VerifyOk {
        index: usize,
    },
    /// `Action::VerifyImage` found a mismatch or could not read back.
    VerifyFailed {
        index: usize,
        error: OtaError,
    },
    /// Any I/O action (begin, write, sync, set trial, commit, reboot) failed.
    ActionFailed(OtaError),
    /// `Action::SetTrial` succeeded.
    TrialArmed,
    /// `Action::Commit` succeeded.
    Committed,
    /// Health signals seen since the last report (they accumulate).
    Health(Health),
    /// A health check failed outright (e.g. the source gave up).
    HealthFailed {
        reason: String,
    },
    /// Time passed: the driver sends it when [`Updater::next_deadline`] is
    /// reached (earlier is harmless: nothing is due yet).
    Tick,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// The daemon finished start-up (sd_notify READY=1 was sent).
    pub ready: bool,
    /// The source delivers frames.
    pub frames_flowing: bool,
    /// The HTTP listener answers.
    pub http_answering: bool,
}

impl Health {
    fn merge(&mut self, o: Health) {
        self.ready |= o.ready;
        self.frames_flowing |= o.frames_flowing;
        self.http_answering |= o.http_answering;
    }
    fn ok(&self) -> bool {
        self.ready && self.frames_flowing && self.http_answering
    }
}

/// Outputs, executed in order by the shell.
#[derive(Debug)]
pub enum Action {
    /// Open `kind` of `slot` for an image of `size` bytes.
    BeginImage {
        slot: Slot,
        kind: ImageKind,
        index: usize,
        size: u64,
    },
    Write {
        slot: Slot,
        kind: ImageKind,
        offset: u64,
        data: Bytes,
    },
    /// fsync the image.
    Sync {
        slot: Slot,
        kind: ImageKind,
    },
    /// Read the image back from the device and compare with `sha256`;
    /// answer with `VerifyOk` / `VerifyFailed`.
    VerifyImage {
        slot: Slot,
        kind: ImageKind,
        index: usize,
        size: u64,
        sha256: [u8; 32],
    },
    /// Destroy a partially written partition.
    MarkInvalid {
        slot: Slot,
        kind: ImageKind,
    },
    /// Boot control: make sure `slot` is not booted (cancel a pending trial).
    MarkBad {
        slot: Slot,
    },
    SetTrial {
        slot: Slot,
    },
    RebootIntoTrial,
    /// Plain reboot into the committed slot (rollback).
    Reboot,
    Commit {
        slot: Slot,
    },
    /// Part of the chunk is left: execute the actions so far, then send
    /// `Event::UploadContinue`. Keeps the data of one batch of actions
    /// (decompressed blocks) bounded by `Config::batch_bytes`.
    Continue,
    /// For the UI.
    Progress(Progress),
    /// The update failed; reported to the uploader / UI.
    Error(OtaError),
}

/// What the UI shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Receiving,
    Writing { image: usize },
    Verifying,
    Staged,
    Rebooting,
    Trial,
    Committed,
    RollingBack,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub bytes: u64,
    /// Known once the manifest is verified.
    pub total: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// How long a trial boot has to report healthy (since boot).
    pub health_timeout: Duration,
    /// Delay between staging and rebooting, so the HTTP answer gets out.
    pub reboot_delay: Duration,
    /// An upload that sends nothing for this long is aborted.
    pub upload_idle_timeout: Duration,
    /// Emit progress at most every this many bytes.
    pub progress_step: u64,
    /// Decompressed bytes per batch of actions (see `Action::Continue`).
    pub batch_bytes: usize,
}

impl Config {
    pub fn new(policy: Policy) -> Self {
        Config {
            policy,
            health_timeout: Duration::from_secs(180),
            reboot_delay: Duration::from_secs(2),
            upload_idle_timeout: Duration::from_secs(60),
            progress_step: 1 << 20,
            batch_bytes: 4 << 20,
        }
    }
}

struct Receiving {
    reader: BundleReader,
    target: Slot,
    manifest: Option<Manifest>,
    /// Image being streamed: (index, kind, written here?, bytes so far).
    current: Option<(usize, ImageKind, bool, u64)>,
    /// Kinds we have started writing: invalidated on failure.
    begun: Vec<ImageKind>,
    /// Images to write to `target`, verified so far.
    to_write: usize,
    verified: usize,
    finished: bool,
    bytes: u64,
    last_progress: u64,
    last_activity: Duration,
    /// The part of the last chunk not fed yet (see `Action::Continue`).
    pending: Bytes,
}

enum State {
    Idle,
    Receiving(Box<Receiving>),
    ArmingTrial {
        slot: Slot,
    },
    Staged {
        reboot_at: Duration,
    },
    Rebooting,
    TrialBoot {
        slot: Slot,
        deadline: Duration,
        health: Health,
    },
    Committing {
        slot: Slot,
    },
    RollingBack,
}

pub struct Updater {
    cfg: Config,
    boot: BootInfo,
    state: State,
    /// Last outcome for the UI.
    last_phase: Phase,
    last_error: Option<(ErrorKind, String)>,
}

impl Updater {
    /// Starts in `Idle`, or in `TrialBoot` when this boot is an uncommitted
    /// trial. The deadline is `health_timeout` after *boot* (time is since
    /// boot), so a pinholed that crashes and restarts during the trial does
    /// not get a fresh deadline each time.
    pub fn new(cfg: Config, boot: BootInfo) -> Self {
        let state = if boot.trial {
            State::TrialBoot {
                slot: boot.active,
                deadline: cfg.health_timeout,
                health: Health::default(),
            }
        } else {
            State::Idle
        };
        let last_phase = if boot.trial {
            Phase::Trial
        } else {
            Phase::Idle
        };
        Updater {
            cfg,
            boot,
            state,
            last_phase,
            last_error: None,
        }
    }

    pub fn phase(&self) -> Phase {
        match &self.state {
            State::Idle => self.last_phase,
            State::Receiving(r) => match r.current {
                _ if r.finished => Phase::Verifying,
                Some((i, _, true, _)) => Phase::Writing { image: i },
                _ => Phase::Receiving,
            },
            State::ArmingTrial { .. } => Phase::Verifying,
            State::Staged { .. } => Phase::Staged,
            State::Rebooting => Phase::Rebooting,
            State::TrialBoot { .. } | State::Committing { .. } => Phase::Trial,
            State::RollingBack => Phase::RollingBack,
        }
    }

    pub fn last_error(&self) -> Option<&(ErrorKind, String)> {
        self.last_error.as_ref()
    }

    pub fn boot(&self) -> BootInfo {
        self.boot
    }

    /// When the machine next needs an [`Event::Tick`] (same time base as
    /// `now`): the upload's idle timeout, the reboot into a staged update,
    /// the trial's health deadline. `None`: only events move it.
    pub fn next_deadline(&self) -> Option<Duration> {
        match &self.state {
            State::Receiving(r) => {
                Some(r.last_activity.saturating_add(self.cfg.upload_idle_timeout))
            }
            State::Staged { reboot_at } => Some(*reboot_at),
            State::TrialBoot { deadline, .. } => Some(*deadline),
            State::Idle
            | State::ArmingTrial { .. }
            | State::Rebooting
            | State::Committing { .. }
            | State::RollingBack => None,
        }
    }

    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = self.step(state, event, now, &mut out);
        out
    }

    fn step(&mut self, state: State, event: Event, now: Duration, out: &mut Vec<Action>) -> State {
        match (state, event) {
            // ---- starting an upload --------------------------------------
            (State::Idle, Event::UploadStarted) => {
                self.last_error = None;
                let target = self.boot.active.other();
                out.push(self.progress(Phase::Receiving, 0, None));
                State::Receiving(Box::new(Receiving {
                    reader: BundleReader::new(self.cfg.policy.clone()),
                    target,
                    manifest: None,
                    current: None,
                    begun: Vec::new(),
                    to_write: 0,
                    verified: 0,
                    finished: false,
                    bytes: 0,
                    last_progress: 0,
                    last_activity: now,
                    pending: Bytes::new(),
                }))
            }
            (s @ State::TrialBoot { .. }, Event::UploadStarted)
            | (s @ State::Committing { .. }, Event::UploadStarted) => {
                out.push(Action::Error(OtaError::busy(format!(
                    "slot {} is running on trial and not committed yet; its fallback must not be overwritten",
                    self.boot.active
                ))));
                s
            }
            (s, Event::UploadStarted) if !matches!(s, State::Idle) => {
                out.push(Action::Error(OtaError::busy(
                    "another update is in progress",
                )));
                s
            }

            // ---- receiving ----------------------------------------------
            (State::Receiving(mut r), Event::UploadChunk(chunk)) => {
                r.last_activity = now;
                if !r.pending.is_empty() {
                    let e = OtaError::internal("upload chunk before the last one was consumed");
                    return self.fail(&r, e, out);
                }
                match self.on_chunk(&mut r, chunk, out) {
                    Ok(()) => State::Receiving(r),
                    Err(e) => self.fail(&r, e, out),
                }
            }
            (State::Receiving(mut r), Event::UploadContinue) => {
                let chunk = std::mem::take(&mut r.pending);
                match self.on_chunk(&mut r, chunk, out) {
                    Ok(()) => State::Receiving(r),
                    Err(e) => self.fail(&r, e, out),
                }
            }
            (State::Receiving(r), Event::UploadFinished) if !r.pending.is_empty() => {
                let e = OtaError::internal("upload finished before its last chunk was consumed");
                self.fail(&r, e, out)
            }
            (State::Receiving(mut r), Event::UploadFinished) => {
                if let Err(e) = r.reader.finish() {
                    return self.fail(&r, e, out);
                }
                r.finished = true;
                out.push(self.progress(Phase::Verifying, r.bytes, r.reader.total_len()));
                self.maybe_staged(r, out)
            }
            (State::Receiving(r), Event::UploadAborted { reason }) => {
                let e =
                    OtaError::bad_bundle(format!("upload aborted: {reason}")).at_offset(r.bytes);
                self.fail(&r, e, out)
            }
            (State::Receiving(mut r), Event::VerifyOk { index }) => {
                tracing::debug!(index, "image verified on the device");
                r.verified += 1;
                self.maybe_staged(r, out)
            }
            (State::Receiving(r), Event::VerifyFailed { index, error }) => {
                self.fail(&r, error.at_image(index), out)
            }
            (State::Receiving(r), Event::ActionFailed(e)) => self.fail(&r, e, out),
            (State::Receiving(r), Event::Tick) => {
                if now.saturating_sub(r.last_activity) >= self.cfg.upload_idle_timeout {
                    let e = OtaError::bad_bundle(format!(
                        "upload stalled: nothing received for {:?}",
                        self.cfg.upload_idle_timeout
                    ))
                    .at_offset(r.bytes);
                    self.fail(&r, e, out)
                } else {
                    State::Receiving(r)
                }
            }

            // ---- staging and reboot ---------------------------------------
            (State::ArmingTrial { .. }, Event::TrialArmed) => {
                out.push(self.progress(Phase::Staged, 0, None));
                let reboot_at = now.saturating_add(self.cfg.reboot_delay);
                self.step(State::Staged { reboot_at }, Event::Tick, now, out)
            }
            (State::ArmingTrial { slot }, Event::ActionFailed(e)) => {
                // The images are fine but the trial is not armed: make sure
                // nothing boots the slot half-configured.
                out.push(Action::MarkBad { slot });
                self.report(e, out);
                State::Idle
            }
            (State::Staged { reboot_at }, Event::Tick) => {
                if now >= reboot_at {
                    out.push(self.progress(Phase::Rebooting, 0, None));
                    out.push(Action::RebootIntoTrial);
                    State::Rebooting
                } else {
                    State::Staged { reboot_at }
                }
            }
            (State::Rebooting, Event::ActionFailed(e)) => {
                // The trial stays armed; the next reboot tries it.
                self.report(e, out);
                State::Idle
            }

            // ---- trial boot -------------------------------------------------
            (
                State::TrialBoot {
                    slot,
                    deadline,
                    mut health,
                },
                Event::Health(h),
            ) => {
                health.merge(h);
                if health.ok() {
                    out.push(Action::Commit { slot });
                    State::Committing { slot }
                } else {
                    State::TrialBoot {
                        slot,
                        deadline,
                        health,
                    }
                }
            }
            (
                State::TrialBoot {
                    slot,
                    deadline,
                    health,
                },
                Event::Tick,
            ) => {
                if now >= deadline {
                    let missing = [
                        (!health.ready).then_some("ready"),
                        (!health.frames_flowing).then_some("frames flowing"),
                        (!health.http_answering).then_some("http answering"),
                    ];
                    let missing: Vec<_> = missing.into_iter().flatten().collect();
                    self.roll_back(
                        slot,
                        format!(
                            "trial of slot {slot} not healthy within {:?} (missing: {}); rolling back",
                            self.cfg.health_timeout,
                            missing.join(", ")
                        ),
                        out,
                    )
                } else {
                    State::TrialBoot {
                        slot,
                        deadline,
                        health,
                    }
                }
            }
            (State::TrialBoot { slot, .. }, Event::HealthFailed { reason }) => self.roll_back(
                slot,
                format!("trial of slot {slot} failed its health check ({reason}); rolling back"),
                out,
            ),
            (State::Committing { slot }, Event::Committed) => {
                tracing::info!(%slot, "trial committed");
                self.boot.trial = false;
                self.last_phase = Phase::Committed;
                out.push(self.progress(Phase::Committed, 0, None));
                State::Idle
            }
            (State::Committing { slot }, Event::ActionFailed(e)) => self.roll_back(
                slot,
                format!("committing slot {slot} failed ({e}); rolling back"),
                out,
            ),

            // ---- everything else is stale or out of order: ignore ------------
            (s, ev) => {
                // Chunks of a refused upload keep coming until the client
                // notices; do not log (or Debug-format) each one.
                if !matches!(
                    ev,
                    Event::Tick | Event::Health(_) | Event::UploadChunk(_) | Event::UploadContinue
                ) {
                    tracing::debug!(?ev, "OTA event ignored in this state");
                }
                s
            }
        }
    }

    fn on_chunk(
        &mut self,
        r: &mut Receiving,
        chunk: Bytes,
        out: &mut Vec<Action>,
    ) -> Result<(), OtaError> {
        let mut evs = Vec::new();
        let res = r
            .reader
            .feed_limited(&chunk, &mut evs, self.cfg.batch_bytes)
            .map(|used| {
                if used < chunk.len() {
                    r.pending = chunk.slice(used..);
                }
            });
        for ev in evs {
            match ev {
                BundleEvent::Manifest(m) => {
                    r.to_write = m.images.iter().filter(|i| i.applies_to(r.target)).count();
                    tracing::info!(version = %m.version, board = %m.compatible, target = %r.target, "bundle manifest verified");
                    // Before the first byte goes to the slot: it must not
                    // be a pending trial any more.
                    out.push(Action::MarkBad { slot: r.target });
                    r.manifest = Some(*m);
                }
                BundleEvent::ImageStart {
                    index,
                    kind,
                    slot,
                    size,
                } => {
                    let mine = slot.is_none_or(|s| s == r.target);
                    if mine {
                        out.push(Action::BeginImage {
                            slot: r.target,
                            kind,
                            index,
                            size,
                        });
                        r.begun.push(kind);
                        out.push(self.progress(
                            Phase::Writing { image: index },
                            r.bytes,
                            r.reader.total_len(),
                        ));
                    }
                    r.current = Some((index, kind, mine, 0));
                }
                BundleEvent::ImageData { data, .. } => {
                    if let Some((_, kind, mine, off)) = &mut r.current {
                        let n = data.len() as u64;
                        if *mine {
                            out.push(Action::Write {
                                slot: r.target,
                                kind: *kind,
                                offset: *off,
                                data: match data {
                                    // stored bytes: a view of the chunk, no copy
                                    Cow::Borrowed(d) => chunk.slice_ref(d),
                                    Cow::Owned(v) => Bytes::from(v),
                                },
                            });
                        }
                        *off += n;
                    }
                }
                BundleEvent::ImageEnd { index, sha256_ok } => {
                    if let (Some((_, kind, true, size)), true) = (r.current, sha256_ok) {
                        let info = r.manifest.as_ref().and_then(|m| m.images.get(index));
                        let sha256 = info
                            .ok_or_else(|| OtaError::internal("image end without manifest"))?
                            .sha256_bytes()?;
                        out.push(Action::Sync {
                            slot: r.target,
                            kind,
                        });
                        out.push(Action::VerifyImage {
                            slot: r.target,
                            kind,
                            index,
                            size,
                            sha256,
                        });
                    }
                }
            }
        }
        r.bytes = r.reader.position();
        if r.bytes - r.last_progress >= self.cfg.progress_step {
            r.last_progress = r.bytes;
            let phase = match r.current {
                Some((i, _, true, _)) => Phase::Writing { image: i },
                _ => Phase::Receiving,
            };
            out.push(self.progress(phase, r.bytes, r.reader.total_len()));
        }
        if res.is_ok() && !r.pending.is_empty() {
            out.push(Action::Continue);
        }
        res
    }

    fn maybe_staged(&mut self, r: Box<Receiving>, out: &mut Vec<Action>) -> State {
        if r.finished && r.manifest.is_some() && r.verified == r.to_write {
            if let Some(m) = &r.manifest {
                tracing::info!(version = %m.version, slot = %r.target, "all images verified; arming the trial boot");
            }
            out.push(Action::SetTrial { slot: r.target });
            State::ArmingTrial { slot: r.target }
        } else {
            State::Receiving(r)
        }
    }

    /// Update failed before staging: invalidate what was written, leave the
    /// running slot and the boot configuration as they were.
    fn fail(&mut self, r: &Receiving, e: OtaError, out: &mut Vec<Action>) -> State {
        for &kind in &r.begun {
            out.push(Action::MarkInvalid {
                slot: r.target,
                kind,
            });
        }
        self.report(e, out);
        State::Idle
    }

    fn roll_back(&mut self, slot: Slot, msg: String, out: &mut Vec<Action>) -> State {
        tracing::warn!("{msg}");
        self.last_phase = Phase::RollingBack;
        self.last_error = Some((ErrorKind::Internal, msg.clone()));
        out.push(Action::Error(OtaError::internal(msg)));
        out.push(Action::MarkBad { slot });
        out.push(Action::Reboot);
        State::RollingBack
    }

    fn report(&mut self, e: OtaError, out: &mut Vec<Action>) {
        tracing::warn!(error = %e, "update failed");
        self.last_phase = Phase::Failed;
        self.last_error = Some((e.kind(), e.to_string()));
        out.push(Action::Progress(Progress {
            phase: Phase::Failed,
            bytes: 0,
            total: None,
        }));
        out.push(Action::Error(e));
    }

    fn progress(&self, phase: Phase, bytes: u64, total: Option<u64>) -> Action {
        Action::Progress(Progress {
            phase,
            bytes,
            total,
        })
    }
}

#[cfg(test)]
mod tests;
