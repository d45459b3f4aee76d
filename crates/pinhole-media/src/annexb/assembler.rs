//! Access-unit assembly: turns Annex B chunks of any size into whole access
//! units, keyframes first and with their parameter sets, dropping and
//! reporting what it cannot use.

use bytes::Bytes;

use super::{find_start_code, nal_type, trim_trailing_zeros, START_CODE};
use crate::error::MediaError;

/// Default limit on one access unit (and on one NAL unit being collected).
pub const DEFAULT_MAX_AU_BYTES: usize = 8 * 1024 * 1024;

/// Leading bytes without any start code are reported once per this many bytes.
const NO_START_CODE_REPORT_BYTES: u64 = 1024 * 1024;

/// At most this many errors are kept between two `take_errors` calls.
const MAX_PENDING_ERRORS: usize = 64;

/// One complete access unit (one coded picture) from the assembler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssembledAu {
    /// Annex B bytes with 4-byte start codes. A keyframe always carries SPS
    /// and PPS.
    pub data: Bytes,
    /// True if the access unit holds an IDR picture.
    pub keyframe: bool,
}

/// Counters, for status pages and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Bytes pushed so far.
    pub bytes_in: u64,
    /// Access units returned.
    pub aus_out: u64,
    /// Access units dropped before the first usable keyframe.
    pub dropped_before_keyframe: u64,
    /// Access units dropped for exceeding the size limit.
    pub dropped_oversize: u64,
    /// Bytes outside any NAL unit that were skipped.
    pub skipped_bytes: u64,
    /// Invalid NAL units dropped.
    pub invalid_nals: u64,
    /// Access units completed by [`AccessUnitAssembler::end_picture`] (the
    /// writer paused) rather than by the start of the next one.
    pub ended_at_pause: u64,
    /// Pictures ended by `end_picture` whose bytes kept coming: the rest
    /// of each was dropped up to the next access unit.
    pub split_pictures: u64,
}

/// The access unit being collected.
#[derive(Default)]
struct AuBuilder {
    data: Vec<u8>,
    /// Stream offset of the first NAL unit in it.
    offset: u64,
    has_vcl: bool,
    /// Whether the last VCL NAL unit was an IDR slice.
    last_vcl_idr: bool,
    has_idr: bool,
    has_sps: bool,
    has_pps: bool,
    /// Stream offset just past its last NAL unit.
    end: u64,
    /// Byte length of a leading AUD (with start code), so parameter sets can be
    /// inserted after it.
    aud_len: usize,
    /// Too large: drop everything until the next access unit starts.
    poisoned: bool,
}

/// Splits an H.264 Annex B byte stream, fed in arbitrary chunks, into access
/// units (H.264 §7.4.1.2.3).
///
/// A new access unit starts, once the current one holds a VCL NAL unit, at an
/// AUD, SPS, PPS, SEI or NAL type 14–18, or at a slice with
/// `first_mb_in_slice == 0` or a change between IDR and non-IDR slices.
///
/// The last SPS and PPS are remembered and put in front of any IDR access unit
/// that lacks them, so every keyframe is self-contained. Access units before
/// the first IDR with SPS/PPS are dropped (nothing could decode them) and
/// counted. Memory is bounded by the access-unit limit: larger access units,
/// and runs of bytes without a start code, are dropped and reported.
pub struct AccessUnitAssembler {
    max_au_bytes: usize,
    /// Bytes of the NAL unit being collected (after its start code), or of
    /// leading garbage while `in_nal` is false.
    /// (`pub(super)` so the tests can check that it stays bounded.)
    pub(super) pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    pending_offset: u64,
    /// Whether a start code has been seen (pending holds a NAL unit).
    in_nal: bool,
    /// The NAL unit being collected outgrew the limit; drop it at its end.
    skip_nal: bool,
    /// The NAL unit being collected was already classified from its first
    /// bytes (so an access unit completes as soon as the next one begins).
    /// Holds its type, or `None` if invalid.
    classified: Option<Option<u8>>,
    /// Leading garbage skipped and not yet reported, and where it began.
    unreported_skip: u64,
    unreported_skip_offset: u64,
    au: AuBuilder,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    synced: bool,
    unreported_unsynced: u64,
    errors: Vec<MediaError>,
    suppressed: u64,
    stats: AssemblerStats,
    /// The last access unit was ended by `end_picture`; what follows must
    /// begin a new one. Holds whether its last slice was an IDR slice.
    ended_early: Option<bool>,
    /// Dropping the rest of a NAL unit cut by `end_picture`, up to the
    /// next start code (not reported as garbage: it was counted as a split).
    discarding_split: bool,
    /// End offset of the first access unit completed (kept or dropped)
    /// during the last `push`.
    first_end_in_push: Option<u64>,
}

impl Default for AccessUnitAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessUnitAssembler {
    /// An assembler with the default 8 MiB access-unit limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_AU_BYTES)
    }

    /// An assembler that drops access units larger than `max_au_bytes`.
    pub fn with_limit(max_au_bytes: usize) -> Self {
        AccessUnitAssembler {
            max_au_bytes: max_au_bytes.max(16),
            pending: Vec::new(),
            pending_offset: 0,
            in_nal: false,
            skip_nal: false,
            classified: None,
            unreported_skip: 0,
            unreported_skip_offset: 0,
            au: AuBuilder::default(),
            sps: None,
            pps: None,
            synced: false,
            unreported_unsynced: 0,
            errors: Vec::new(),
            suppressed: 0,
            stats: AssemblerStats::default(),
            ended_early: None,
            discarding_split: false,
            first_end_in_push: None,
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> &AssemblerStats {
        &self.stats
    }

    /// Whether an IDR with SPS/PPS has been seen (access units flow).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Whether the access unit being collected holds a slice (a picture is
    /// under way).
    pub fn picture_in_progress(&self) -> bool {
        self.au.has_vcl && !self.au.poisoned
    }

    /// Whether [`Self::end_picture`] would end a picture now: the NAL unit
    /// being collected is a slice (its header has arrived) and nothing is
    /// being dropped.
    pub fn picture_ready(&self) -> bool {
        self.in_nal
            && !self.skip_nal
            && !self.au.poisoned
            && matches!(self.classified, Some(Some(nal_type::SLICE..=nal_type::IDR)))
    }

    /// Stream offset just past the first access unit completed (kept or
    /// dropped) during the last [`Self::push`], if any: a caller that noted
    /// where the writer paused can tell whether the pause fell inside that
    /// access unit or after it.
    pub fn first_end_in_last_push(&self) -> Option<u64> {
        self.first_end_in_push
    }

    /// The writer paused with a slice last: take the bytes so far as that
    /// slice's end and return the access unit now, instead of when the next
    /// one begins (one frame interval later for a live encoder).
    ///
    /// Nothing in the bytes says that a slice, or a picture, is complete;
    /// the caller decides from how the writer behaves (`pipe` source:
    /// `pipe/pause.rs`). If the stream then goes on with more of the same
    /// picture (bytes before the next start code, or a slice that does not
    /// begin a picture), that remainder is dropped up to the next access
    /// unit, counted in [`AssemblerStats::split_pictures`] and reported as
    /// [`MediaError::PictureSplit`]. Returns `None` if no picture is ready
    /// (see [`Self::picture_ready`]) or it was dropped (before the first
    /// keyframe).
    pub fn end_picture(&mut self) -> Option<AssembledAu> {
        if !self.picture_ready() {
            return None;
        }
        // Trailing zeros may begin the next start code: keep them pending.
        let nal_len = trim_trailing_zeros(&self.pending).len();
        let zeros = self.pending.split_off(nal_len);
        let nal = std::mem::replace(&mut self.pending, zeros);
        let offset = self.pending_offset;
        self.pending_offset += nal_len as u64;
        let mut out = Vec::new();
        self.end_piece(&nal, offset, &mut out);
        // What comes next must begin with a start code.
        self.in_nal = false;
        self.ended_early = Some(self.au.last_vcl_idr);
        self.complete_au(&mut out);
        let au = out.pop()?;
        self.stats.ended_at_pause += 1;
        Some(au)
    }

    /// More of the picture ended by `end_picture` arrived at `offset`:
    /// drop it, and the rest of that picture, up to the next access unit.
    fn picture_split(&mut self, offset: u64) {
        let Some(last_vcl_idr) = self.ended_early.take() else {
            return;
        };
        self.stats.split_pictures += 1;
        self.error(MediaError::PictureSplit { offset });
        // A dropped picture in progress: the normal rules end it (without
        // output) where the next access unit begins.
        self.au = AuBuilder {
            has_vcl: true,
            last_vcl_idr,
            poisoned: true,
            ..AuBuilder::default()
        };
    }

    /// Feed the next bytes of the stream; returns the access units completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<AssembledAu> {
        let mut out = Vec::new();
        self.first_end_in_push = None;
        self.stats.bytes_in += chunk.len() as u64;
        // Never re-scan more than the 2 bytes that may begin a start code
        // split across chunks.
        let scan_from = self.pending.len().saturating_sub(2);
        self.pending.extend_from_slice(chunk);

        let pending = std::mem::take(&mut self.pending);
        let mut consumed = 0usize;
        let mut search = scan_from;
        while let Some(sc) = find_start_code(&pending, search) {
            let piece_offset = self.pending_offset + consumed as u64;
            self.end_piece(
                trim_trailing_zeros(&pending[consumed..sc]),
                piece_offset,
                &mut out,
            );
            consumed = sc + 3;
            search = consumed;
        }
        self.pending = pending;
        if consumed > 0 {
            self.pending.drain(..consumed);
            self.pending_offset += consumed as u64;
        }
        if self.in_nal && !self.skip_nal && self.classified.is_none() && self.pending.len() >= 2 {
            // Its first two bytes tell whether this NAL unit starts a new
            // access unit: if so, the previous one is complete now.
            let head = [self.pending[0], self.pending[1]];
            let ty = self.classify(&head, self.pending_offset, &mut out);
            self.classified = Some(ty);
        }
        self.bound_pending(&mut out);
        out
    }

    /// The stream ended: return the last access unit, if complete and usable.
    /// The assembler can be reused afterwards (e.g. for a looped file); it
    /// keeps the remembered SPS/PPS.
    pub fn finish(&mut self) -> Option<AssembledAu> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.pending);
        let offset = self.pending_offset;
        self.pending_offset += rest.len() as u64;
        self.end_piece(trim_trailing_zeros(&rest), offset, &mut out);
        self.flush_skip_report();
        self.in_nal = false;
        self.skip_nal = false;
        self.classified = None;
        self.ended_early = None;
        self.discarding_split = false;
        self.complete_au(&mut out);
        // NAL units of 2 bytes or more were classified in `push`, so a second
        // access unit here could only hold a 1-byte slice: not a picture.
        out.into_iter().next()
    }

    /// Errors since the last call (bounded; further ones are counted in a
    /// final [`MediaError::Suppressed`]). Drops before the first keyframe are
    /// coalesced into one [`MediaError::WaitingForKeyframe`].
    pub fn take_errors(&mut self) -> Vec<MediaError> {
        if self.unreported_unsynced > 0 {
            let dropped = std::mem::take(&mut self.unreported_unsynced);
            self.errors.push(MediaError::WaitingForKeyframe { dropped });
        }
        let mut errors = std::mem::take(&mut self.errors);
        if self.suppressed > 0 {
            errors.push(MediaError::Suppressed {
                count: std::mem::take(&mut self.suppressed),
            });
        }
        errors
    }

    fn error(&mut self, e: MediaError) {
        if self.errors.len() < MAX_PENDING_ERRORS {
            self.errors.push(e);
        } else {
            self.suppressed += 1;
        }
    }

    /// Keep `pending` bounded while no start code arrives.
    fn bound_pending(&mut self, out: &mut Vec<AssembledAu>) {
        // Keep the last 2 bytes: they may begin a start code.
        let keep = 2usize;
        if !self.in_nal {
            // Leading garbage: nothing to collect, only to count.
            if self.pending.len() > keep {
                let drop = self.pending.len() - keep;
                let dropped_zeros = self.pending[..drop].iter().all(|&b| b == 0);
                if self.ended_early.is_some() && !dropped_zeros {
                    self.picture_split(self.pending_offset);
                    self.discarding_split = true;
                }
                if !self.discarding_split {
                    self.count_skipped(self.pending_offset, drop as u64, dropped_zeros);
                }
                self.pending.drain(..drop);
                self.pending_offset += drop as u64;
            }
        } else if self.pending.len() > self.max_au_bytes {
            if !self.skip_nal {
                self.skip_nal = true;
                // The NAL unit may start a new access unit: decide that from its
                // first bytes, then drop the (new or current) access unit.
                let ty = match self.classified {
                    Some(ty) => ty,
                    None => {
                        let head = [self.pending[0], self.pending[1]];
                        self.classify(&head, self.pending_offset, out)
                    }
                };
                if ty.is_some() {
                    let offset = if self.au.data.is_empty() {
                        self.pending_offset
                    } else {
                        self.au.offset
                    };
                    self.poison_au(offset);
                }
            }
            let drop = self.pending.len() - keep;
            self.pending.drain(..drop);
            self.pending_offset += drop as u64;
        }
    }

    fn count_skipped(&mut self, offset: u64, len: u64, only_zeros: bool) {
        if len == 0 || only_zeros && self.unreported_skip == 0 {
            // leading_zero_8bits are legal before the first start code.
            return;
        }
        if self.unreported_skip == 0 {
            self.unreported_skip_offset = offset;
        }
        self.unreported_skip += len;
        self.stats.skipped_bytes += len;
        if self.unreported_skip >= NO_START_CODE_REPORT_BYTES {
            self.flush_skip_report();
        }
    }

    fn flush_skip_report(&mut self) {
        if self.unreported_skip > 0 {
            let len = std::mem::take(&mut self.unreported_skip);
            self.error(MediaError::NoStartCode {
                offset: self.unreported_skip_offset,
                len,
            });
        }
    }

    /// A piece of the stream ended at a start code (or at EOF): leading
    /// garbage if no start code came before, otherwise a NAL unit.
    fn end_piece(&mut self, piece: &[u8], offset: u64, out: &mut Vec<AssembledAu>) {
        if !self.in_nal {
            if self.ended_early.is_some() && !piece.is_empty() {
                // The writer had only paused inside a slice.
                self.picture_split(offset);
            } else if !self.discarding_split {
                self.count_skipped(offset, piece.len() as u64, false);
            }
            self.discarding_split = false;
            self.flush_skip_report();
            self.in_nal = true;
            return;
        }
        let classified = self.classified.take();
        if self.skip_nal {
            self.skip_nal = false;
            return;
        }
        if !piece.is_empty() {
            let ty = match classified {
                Some(ty) => ty,
                None => self.classify(piece, offset, out),
            };
            if let Some(ty) = ty {
                self.nal(piece, ty, offset);
            }
        }
    }

    /// One complete, classified NAL unit (no start code, no trailing zeros).
    fn nal(&mut self, nal: &[u8], ty: u8, offset: u64) {
        match ty {
            nal_type::FILLER => return,
            nal_type::SPS => {
                self.sps = Some(nal.to_vec());
                self.au.has_sps = true;
            }
            nal_type::PPS => {
                self.pps = Some(nal.to_vec());
                self.au.has_pps = true;
            }
            _ => {}
        }
        self.au.end = offset + nal.len() as u64;
        if self.au.poisoned {
            return;
        }
        if self.au.data.is_empty() {
            self.au.offset = offset;
        }
        if self.au.data.len() + START_CODE.len() + nal.len() > self.max_au_bytes {
            let au_offset = self.au.offset;
            self.poison_au(au_offset);
            return;
        }
        if ty == nal_type::AUD && self.au.data.is_empty() {
            self.au.aud_len = START_CODE.len() + nal.len();
        }
        self.au.data.extend_from_slice(&START_CODE);
        self.au.data.extend_from_slice(nal);
    }

    /// Look at the start of a NAL unit (at least its header byte): complete
    /// the current access unit if this NAL unit begins a new one, and note
    /// what the access unit holds. Returns the NAL type, or `None` (reported)
    /// if the NAL unit is invalid.
    fn classify(&mut self, head: &[u8], offset: u64, out: &mut Vec<AssembledAu>) -> Option<u8> {
        let header = *head.first()?;
        let ty = header & 0x1f;
        if header & 0x80 != 0 {
            self.stats.invalid_nals += 1;
            self.error(MediaError::InvalidNal {
                offset,
                nal_type: ty,
                reason: "forbidden_zero_bit is set",
            });
            return None;
        }
        let is_vcl = matches!(ty, nal_type::SLICE..=nal_type::IDR);
        let is_idr = ty == nal_type::IDR;
        if let Some(last_vcl_idr) = self.ended_early {
            // The first NAL unit after a picture ended at a pause: a slice
            // that does not begin a picture means the picture had more.
            let first_mb_zero = head.get(1).is_some_and(|b| b & 0x80 != 0);
            if is_vcl && !first_mb_zero && is_idr == last_vcl_idr {
                self.picture_split(offset);
            }
            self.ended_early = None;
        }
        if self.au.has_vcl {
            let starts_au = match ty {
                nal_type::SEI..=nal_type::AUD | 14..=18 => true,
                // first_mb_in_slice is the first ue(v) of the slice header; it is
                // 0 exactly when its first bit is 1.
                _ if is_vcl => {
                    let first_mb_zero = head.get(1).is_some_and(|b| b & 0x80 != 0);
                    first_mb_zero || is_idr != self.au.last_vcl_idr
                }
                _ => false,
            };
            if starts_au {
                self.complete_au(out);
            }
        }
        if is_vcl {
            self.au.has_vcl = true;
            self.au.last_vcl_idr = is_idr;
            self.au.has_idr |= is_idr;
        }
        Some(ty)
    }

    fn poison_au(&mut self, offset: u64) {
        if !self.au.poisoned {
            self.au.poisoned = true;
            self.au.data = Vec::new();
            self.stats.dropped_oversize += 1;
            self.error(MediaError::AccessUnitTooLarge {
                offset,
                limit: self.max_au_bytes,
            });
        }
    }

    fn complete_au(&mut self, out: &mut Vec<AssembledAu>) {
        let au = std::mem::take(&mut self.au);
        if au.has_vcl && self.first_end_in_push.is_none() {
            self.first_end_in_push = Some(au.end);
        }
        if au.poisoned || !au.has_vcl {
            // Oversize (already reported) or no picture at all.
            return;
        }
        let mut data = au.data;
        if au.has_idr && !(au.has_sps && au.has_pps) {
            let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
                self.drop_unsynced();
                return;
            };
            let mut with_ps = Vec::with_capacity(data.len() + sps.len() + pps.len() + 8);
            with_ps.extend_from_slice(&data[..au.aud_len]);
            if !au.has_sps {
                with_ps.extend_from_slice(&START_CODE);
                with_ps.extend_from_slice(sps);
            }
            if !au.has_pps {
                with_ps.extend_from_slice(&START_CODE);
                with_ps.extend_from_slice(pps);
            }
            with_ps.extend_from_slice(&data[au.aud_len..]);
            data = with_ps;
        }
        if au.has_idr {
            self.synced = true;
        }
        if !self.synced {
            self.drop_unsynced();
            return;
        }
        self.stats.aus_out += 1;
        out.push(AssembledAu {
            data: Bytes::from(data),
            keyframe: au.has_idr,
        });
    }

    fn drop_unsynced(&mut self) {
        self.stats.dropped_before_keyframe += 1;
        self.unreported_unsynced += 1;
    }
}
