//! Ending a picture when its writer pauses, so a live pipe adds no frame
//! of delay.
//!
//! An H.264 byte stream says where an access unit *begins*, never where it
//! ends: the assembler alone completes a picture when the next one starts,
//! one frame interval (33 ms at 30 fps) after the encoder wrote it. A live
//! encoder (`rpicam-vid`, ffmpeg, a camera) writes a picture at once, then
//! nothing until the next: when the bytes stop with a slice last, the
//! picture is most likely complete. "Most likely" is learned per stream:
//!
//! * a pause only ends a picture after [`CONFIRMATIONS`] pauses in a row
//!   were seen to fall exactly at a picture's end (the next bytes began a
//!   new access unit);
//! * a pause must last [`MIN_PAUSE_US`], and twice the longest pause ever
//!   seen *inside* a picture (a writer that flushes a picture in pieces, or
//!   was descheduled mid-write);
//! * if that grows past [`MAX_PAUSE_US`] (a writer that stalls inside
//!   pictures), only the next access unit ends a picture, as before.
//!
//! A writer that pauses inside a picture for the first time after it was
//! trusted cuts that picture: the assembler sends what came before the
//! pause and drops the rest up to the next access unit (counted, logged),
//! and the longer pause now required keeps it from happening again for
//! pauses of that length.
//!
//! Pure: bytes and the time they arrived in, access units out; the caller
//! asks [`PauseRule::deadline`] when to call [`PauseRule::idle`].

use pinhole_media::annexb::{AccessUnitAssembler, AssembledAu};

/// The shortest pause that ends a picture.
pub(crate) const MIN_PAUSE_US: u64 = 1_500;
/// Longer required pauses save too little to risk a cut picture.
pub(crate) const MAX_PAUSE_US: u64 = 12_000;
/// Pauses seen at a picture's end, in a row, before one ends a picture.
pub(crate) const CONFIRMATIONS: u32 = 3;
/// Shorter gaps between two reads are not pauses (reads of one write).
const NOTE_GAP_US: u64 = 300;
/// Gaps remembered inside one picture (the longest are what matter).
const MAX_NOTED: usize = 32;

/// The assembler, plus when the writer paused; see the module docs.
pub(crate) struct PauseRule {
    assembler: AccessUnitAssembler,
    /// When the last bytes arrived.
    last_bytes_us: Option<u64>,
    /// Pauses noted while a picture was in progress: (stream offset, µs),
    /// resolved once that picture completes.
    noted: Vec<(u64, u64)>,
    /// The longest pause seen inside a picture.
    longest_inside_us: u64,
    /// Pauses seen at a picture's end since the last one inside a picture.
    confirmed: u32,
}

impl PauseRule {
    pub(crate) fn new(assembler: AccessUnitAssembler) -> Self {
        PauseRule {
            assembler,
            last_bytes_us: None,
            noted: Vec::new(),
            longest_inside_us: 0,
            confirmed: 0,
        }
    }

    pub(crate) fn assembler(&mut self) -> &mut AccessUnitAssembler {
        &mut self.assembler
    }

    /// How long the writer must pause for a picture to end early, or `None`
    /// while pauses do not end pictures (not yet learned, or too long).
    pub(crate) fn pause_us(&self) -> Option<u64> {
        let pause = MIN_PAUSE_US.max(2 * self.longest_inside_us);
        (self.confirmed >= CONFIRMATIONS && pause <= MAX_PAUSE_US).then_some(pause)
    }

    /// When to call [`Self::idle`] (same clock as `now_us`), if a pause
    /// would end a picture.
    pub(crate) fn deadline(&self) -> Option<u64> {
        if !self.assembler.picture_ready() {
            return None;
        }
        Some(self.last_bytes_us? + self.pause_us()?)
    }

    /// Bytes arrived at `now_us`: the access units they complete.
    pub(crate) fn push(&mut self, chunk: &[u8], now_us: u64) -> Vec<AssembledAu> {
        let gap = self.last_bytes_us.map_or(0, |t| now_us.saturating_sub(t));
        self.last_bytes_us = Some(now_us);
        let offset = self.assembler.stats().bytes_in;
        if gap >= NOTE_GAP_US && self.assembler.picture_in_progress() {
            if self.noted.len() == MAX_NOTED {
                // Keep the longest; its offset the latest (conservative:
                // more likely inside the picture).
                let longest = self.noted.iter().map(|n| n.1).max().unwrap_or(0);
                self.noted.clear();
                self.noted.push((offset, longest.max(gap)));
            } else {
                self.noted.push((offset, gap));
            }
        }
        let splits = self.assembler.stats().split_pictures;
        let aus = self.assembler.push(chunk);
        if self.assembler.stats().split_pictures > splits {
            // The pause that ended the last picture early was inside it.
            self.inside(gap);
        }
        if let Some(end) = self.assembler.first_end_in_last_push() {
            for (at, gap) in std::mem::take(&mut self.noted) {
                if at < end {
                    self.inside(gap);
                } else if gap >= MIN_PAUSE_US {
                    self.confirmed = self.confirmed.saturating_add(1);
                }
            }
        }
        aus
    }

    /// No bytes since the last push, at `now_us`: the picture, if the
    /// writer has paused long enough after a slice.
    pub(crate) fn idle(&mut self, now_us: u64) -> Option<AssembledAu> {
        if now_us < self.deadline()? {
            return None;
        }
        self.assembler.end_picture()
    }

    fn inside(&mut self, gap_us: u64) {
        self.longest_inside_us = self.longest_inside_us.max(gap_us);
        self.confirmed = 0;
    }
}

#[cfg(test)]
mod tests;
