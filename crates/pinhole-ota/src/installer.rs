//! The thin I/O shell around [`Updater`]: executes its actions on a
//! [`SlotDevice`] and a [`BootControl`], feeds the outcomes back as events,
//! and returns what the caller must see (progress, errors). The HTTP
//! endpoint holds one `Installer` behind a mutex and calls `handle`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::boot::BootControl;
use crate::error::OtaError;
use crate::slot::SlotDevice;
use crate::updater::{Action, Event, Updater};

pub struct Installer<S, B> {
    pub updater: Updater,
    pub slots: S,
    pub boot: B,
}

impl<S: SlotDevice, B: BootControl> Installer<S, B> {
    pub fn new(updater: Updater, slots: S, boot: B) -> Self {
        Installer {
            updater,
            slots,
            boot,
        }
    }

    /// Runs `event` to completion. Returns the `Progress` and `Error`
    /// actions, in order, for the UI/uploader.
    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Action> {
        let mut report = Vec::new();
        let mut queue = VecDeque::from([event]);
        while let Some(ev) = queue.pop_front() {
            // After one I/O action of a batch fails, the rest of that batch
            // is skipped: the state machine decides what happens next.
            let mut failed = false;
            for action in self.updater.handle(ev, now) {
                match action {
                    a @ (Action::Progress(_) | Action::Error(_)) => report.push(a),
                    // Cleanup runs even after a failure.
                    Action::MarkInvalid { slot, kind } => {
                        if let Err(e) = self.slots.mark_invalid(slot, kind) {
                            tracing::error!(error = %e, "could not invalidate slot {slot} {kind}");
                        }
                    }
                    _ if failed => {}
                    a => match self.execute(a) {
                        Ok(Some(reply)) => queue.push_back(reply),
                        Ok(None) => {}
                        Err(e) => {
                            failed = true;
                            queue.push_back(Event::ActionFailed(e));
                        }
                    },
                }
            }
        }
        report
    }

    fn execute(&mut self, a: Action) -> Result<Option<Event>, OtaError> {
        Ok(match a {
            Action::BeginImage {
                slot,
                kind,
                index,
                size,
            } => {
                self.slots
                    .begin(slot, kind, size)
                    .map_err(|e| e.at_image(index))?;
                None
            }
            Action::Write {
                slot,
                kind,
                offset,
                data,
            } => {
                self.slots.write(slot, kind, offset, &data)?;
                None
            }
            Action::Sync { slot, kind } => {
                self.slots.sync(slot, kind)?;
                None
            }
            Action::VerifyImage {
                slot,
                kind,
                index,
                size,
                sha256,
            } => Some(match self.slots.read_back_sha256(slot, kind, size) {
                Ok(h) if h == sha256 => Event::VerifyOk { index },
                Ok(h) => Event::VerifyFailed {
                    index,
                    error: OtaError::io(
                        format!(
                            "read-back of {kind} on slot {slot} has SHA-256 {}, wrote {}",
                            crate::format::hex(&h),
                            crate::format::hex(&sha256)
                        ),
                        std::io::Error::other("device returned different data"),
                    ),
                },
                Err(error) => Event::VerifyFailed { index, error },
            }),
            Action::MarkBad { slot } => {
                self.boot.mark_bad(slot)?;
                None
            }
            Action::SetTrial { slot } => {
                self.boot.set_trial(slot)?;
                Some(Event::TrialArmed)
            }
            Action::RebootIntoTrial => {
                self.boot.reboot_into_trial()?;
                None
            }
            Action::Reboot => {
                self.boot.reboot()?;
                None
            }
            Action::Commit { slot } => {
                self.boot.commit(slot)?;
                Some(Event::Committed)
            }
            // The writes before it are done: feed the rest of the chunk.
            Action::Continue => Some(Event::UploadContinue),
            Action::MarkInvalid { .. } | Action::Progress(_) | Action::Error(_) => None,
        })
    }
}
