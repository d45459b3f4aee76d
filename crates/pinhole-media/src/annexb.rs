//! H.264 Annex B byte streams: NAL unit splitting, access-unit assembly, and
//! conversion to the length-prefixed (AVCC) form used inside mp4 samples.
//!
//! The [`AccessUnitAssembler`] is a pure state machine: feed it whatever a
//! pipe or file hands out, in chunks of any size, and it returns whole access
//! units. It never panics on input and never grows without bound; what it
//! cannot use it drops and reports through [`AccessUnitAssembler::take_errors`].

use bytes::Bytes;

use crate::error::MediaError;

/// NAL unit types (H.264 Table 7-1) the assembler cares about.
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const SLICE_PARTITION_A: u8 = 2;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const FILLER: u8 = 12;
}

/// The 4-byte start code written in front of every NAL unit we emit.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Default limit on one access unit (and on one NAL unit being collected).
pub const DEFAULT_MAX_AU_BYTES: usize = 8 * 1024 * 1024;

/// Leading bytes without any start code are reported once per this many bytes.
const NO_START_CODE_REPORT_BYTES: u64 = 1024 * 1024;

/// At most this many errors are kept between two `take_errors` calls.
const MAX_PENDING_ERRORS: usize = 64;

/// The NAL unit type (low 5 bits of the header byte), or `None` for an empty NAL.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// Index of the first `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let hay = data.get(from..)?;
    memchr::memmem::find(hay, &[0, 0, 1]).map(|i| i + from)
}

/// Strip `trailing_zero_8bits` (and the leading zero of a following 4-byte
/// start code) from the end of a NAL unit.
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

/// Iterator over the NAL units of an Annex B buffer; see [`nal_units`].
#[derive(Clone, Debug)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Start of the next NAL payload, or `None` when done.
    next: Option<usize>,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.next?;
            let (end, following) = match find_start_code(self.data, start) {
                Some(sc) => (sc, Some(sc + 3)),
                None => (self.data.len(), None),
            };
            self.next = following;
            let nal = trim_trailing_zeros(self.data.get(start..end)?);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// The NAL units of an Annex B buffer, without their start codes.
///
/// Both 3-byte (`00 00 01`) and 4-byte (`00 00 00 01`) start codes are
/// accepted; bytes before the first start code and empty NAL units are
/// skipped.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits {
        data,
        next: find_start_code(data, 0).map(|i| i + 3),
    }
}

/// Append `annexb`'s NAL units to `out` as 4-byte big-endian length-prefixed
/// NAL units (an mp4 `avc1` sample). SPS, PPS and AUD are left out: for
/// `avc1` the parameter sets live in the `avcC` box, and AUDs carry nothing.
pub fn to_avcc(annexb: &[u8], out: &mut Vec<u8>) {
    for nal in nal_units(annexb) {
        if let Some(nal_type::SPS | nal_type::PPS | nal_type::AUD) = nal_unit_type(nal) {
            continue;
        }
        // A NAL unit > 4 GiB cannot be length-prefixed; it cannot exist in
        // memory here either, but never write a wrong length.
        let Ok(len) = u32::try_from(nal.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
}

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
    pending: Vec<u8>,
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

    /// Feed the next bytes of the stream; returns the access units completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<AssembledAu> {
        let mut out = Vec::new();
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
                self.count_skipped(self.pending_offset, drop as u64, dropped_zeros);
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
            self.count_skipped(offset, piece.len() as u64, false);
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASELINE: &[u8] = include_bytes!("../testdata/x264_baseline_320x240_30fps_gop30.h264");
    const HIGH: &[u8] =
        include_bytes!("../testdata/x264_high_bframes_slices_aud_320x180_25fps_gop25.h264");
    const OPENH264: &[u8] =
        include_bytes!("../testdata/openh264_testpattern_320x240_15fps_gop15.h264");

    /// Small deterministic PRNG (xorshift64*), so tests need no extra crate.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed.max(1))
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn assemble(data: &[u8], chunk: impl FnMut() -> usize) -> (Vec<AssembledAu>, Vec<MediaError>) {
        let mut chunk = chunk;
        let mut a = AccessUnitAssembler::new();
        let mut aus = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = chunk().clamp(1, rest.len());
            aus.extend(a.push(&rest[..n]));
            rest = &rest[n..];
        }
        aus.extend(a.finish());
        (aus, a.take_errors())
    }

    fn keyframe_positions(aus: &[AssembledAu]) -> Vec<usize> {
        aus.iter()
            .enumerate()
            .filter(|(_, au)| au.keyframe)
            .map(|(i, _)| i)
            .collect()
    }

    fn types(au: &[u8]) -> Vec<u8> {
        nal_units(au).filter_map(nal_unit_type).collect()
    }

    #[test]
    fn nal_units_handles_3_and_4_byte_start_codes() {
        let data = [
            0xff, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 0, 0,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(
            nal_units(&[0, 0, 1, 0, 0, 1, 9]).collect::<Vec<_>>(),
            vec![&[9u8][..]]
        );
    }

    #[test]
    fn baseline_fixture_in_one_piece() {
        let (aus, errors) = assemble(BASELINE, || usize::MAX);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(aus.len(), 60);
        assert_eq!(keyframe_positions(&aus), vec![0, 30]);
        for au in aus.iter().filter(|au| au.keyframe) {
            let t = types(&au.data);
            assert!(
                t.contains(&nal_type::SPS) && t.contains(&nal_type::PPS),
                "{t:?}"
            );
        }
        // Nothing lost: every NAL unit of the input comes out once.
        let all_in: Vec<&[u8]> = nal_units(BASELINE).collect();
        let all_out: Vec<Vec<u8>> = aus
            .iter()
            .flat_map(|au| nal_units(&au.data).map(<[u8]>::to_vec).collect::<Vec<_>>())
            .collect();
        assert_eq!(all_in.len(), all_out.len());
        assert!(all_in.iter().zip(&all_out).all(|(a, b)| *a == b.as_slice()));
    }

    #[test]
    fn high_profile_bframes_slices_aud_fixture() {
        let (aus, errors) = assemble(HIGH, || usize::MAX);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(aus.len(), 50);
        assert_eq!(keyframe_positions(&aus), vec![0, 25]);
        for au in &aus {
            let t = types(&au.data);
            assert_eq!(t[0], nal_type::AUD, "every AU starts with its AUD");
            assert_eq!(t.iter().filter(|&&t| t == nal_type::AUD).count(), 1);
            // 4 slices per picture
            assert_eq!(t.iter().filter(|&&t| t == 1 || t == 5).count(), 4, "{t:?}");
        }
    }

    #[test]
    fn openh264_fixture() {
        let (aus, errors) = assemble(OPENH264, || usize::MAX);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(aus.len(), 45);
        assert_eq!(keyframe_positions(&aus), vec![0, 15, 30]);
        let mut rng = Rng::new(99);
        let (chunked, _) = assemble(OPENH264, || 1 + rng.below(3000));
        assert_eq!(chunked, aus);
    }

    #[test]
    fn random_chunking_gives_identical_output() {
        let (whole, _) = assemble(BASELINE, || usize::MAX);
        let (whole_high, _) = assemble(HIGH, || usize::MAX);
        for seed in 1..20u64 {
            let mut rng = Rng::new(seed);
            let max = [1, 2, 3, 5, 17, 1000, 70_000][seed as usize % 7];
            let (aus, errors) = assemble(BASELINE, || 1 + rng.below(max));
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(aus, whole, "seed {seed}");
            let (aus, _) = assemble(HIGH, || 1 + rng.below(max));
            assert_eq!(aus, whole_high, "seed {seed}");
        }
    }

    #[test]
    fn prepends_cached_parameter_sets_to_bare_idr() {
        // Remove SPS/PPS from all but the first keyframe of the fixture.
        let mut stripped = Vec::new();
        let mut seen = 0;
        for nal in nal_units(BASELINE) {
            let t = nal_unit_type(nal);
            if matches!(t, Some(nal_type::SPS | nal_type::PPS)) {
                seen += 1;
                if seen > 2 {
                    continue;
                }
            }
            stripped.extend_from_slice(&[0, 0, 1]);
            stripped.extend_from_slice(nal);
        }
        let (aus, errors) = assemble(&stripped, || 4096);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(aus.len(), 60);
        let t = types(&aus[30].data);
        assert!(aus[30].keyframe);
        assert_eq!(&t[..3], &[nal_type::SPS, nal_type::PPS, nal_type::IDR]);
    }

    #[test]
    fn drops_and_reports_aus_before_first_keyframe() {
        // Start in the middle of the first GOP: AU 10 onwards.
        let (aus, _) = assemble(BASELINE, || usize::MAX);
        let mut tail = Vec::new();
        for au in &aus[10..] {
            tail.extend_from_slice(&au.data);
        }
        let mut a = AccessUnitAssembler::new();
        let mut out = a.push(&tail);
        out.extend(a.finish());
        assert_eq!(out.len(), 30);
        assert!(out[0].keyframe);
        assert_eq!(a.stats().dropped_before_keyframe, 20);
        assert_eq!(
            a.take_errors(),
            vec![MediaError::WaitingForKeyframe { dropped: 20 }]
        );
        assert!(a.take_errors().is_empty());
    }

    #[test]
    fn garbage_without_start_codes_is_reported_and_bounded() {
        let mut a = AccessUnitAssembler::new();
        let garbage = vec![0x5au8; 64 * 1024];
        for _ in 0..40 {
            assert!(a.push(&garbage).is_empty());
            assert!(a.pending.len() <= 2);
        }
        assert!(a.finish().is_none());
        let errors = a.take_errors();
        assert_eq!(errors.len(), 3, "{errors:?}");
        let mut expect_offset = 0;
        for e in &errors {
            let MediaError::NoStartCode { offset, len } = *e else {
                panic!("{e:?}");
            };
            assert_eq!(offset, expect_offset);
            expect_offset += len;
        }
        assert_eq!(expect_offset, 40 * 64 * 1024);
        assert!(errors[0]
            .to_string()
            .contains("no H.264 Annex B start code"));
    }

    #[test]
    fn random_garbage_never_panics_and_produces_nothing_decodable() {
        let mut rng = Rng::new(7);
        let mut a = AccessUnitAssembler::with_limit(64 * 1024);
        for _ in 0..200 {
            let n = rng.below(5000);
            let mut chunk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            // Sprinkle start codes and zeros so the NAL paths get exercised.
            for _ in 0..rng.below(8) {
                if chunk.len() > 4 {
                    let at = rng.below(chunk.len() - 4);
                    chunk[at..at + 3].copy_from_slice(&[0, 0, 1]);
                }
            }
            for au in a.push(&chunk) {
                // Only possible if a random IDR came after a random SPS/PPS.
                assert!(!au.data.is_empty());
            }
        }
        a.finish();
        assert!(!a.take_errors().is_empty());
        assert!(a.pending.len() <= 64 * 1024 + 2);
    }

    #[test]
    fn oversize_access_unit_is_dropped_and_stream_recovers() {
        let (aus, _) = assemble(BASELINE, || usize::MAX);
        let limit = 2000;
        assert!(aus.iter().any(|au| au.data.len() > limit));
        let mut a = AccessUnitAssembler::with_limit(limit);
        let mut out = Vec::new();
        for chunk in BASELINE.chunks(333) {
            out.extend(a.push(chunk));
        }
        out.extend(a.finish());
        let errors = a.take_errors();
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, MediaError::AccessUnitTooLarge { limit: 2000, .. })),
            "{errors:?}"
        );
        assert!(a.stats().dropped_oversize >= 1);
        assert!(out.len() < aus.len());
        assert!(out.iter().all(|au| au.data.len() <= limit));
    }

    #[test]
    fn truncated_input_never_panics() {
        for cut in (0..BASELINE.len()).step_by(997) {
            let (aus, _) = assemble(&BASELINE[..cut], || 1000);
            assert!(aus.len() <= 60);
        }
    }

    #[test]
    fn forbidden_bit_nal_is_reported() {
        let mut a = AccessUnitAssembler::new();
        a.push(&[0, 0, 1, 0xe5, 1, 2, 0, 0, 1]);
        assert!(matches!(
            a.take_errors()[..],
            [MediaError::InvalidNal {
                offset: 3,
                nal_type: 5,
                ..
            }]
        ));
    }

    #[test]
    fn to_avcc_skips_parameter_sets_and_aud() {
        let annexb = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x06, 5, 0, 0,
            1, 0x65, 7, 8, 9,
        ];
        let mut out = vec![0xaa];
        to_avcc(&annexb, &mut out);
        assert_eq!(
            out,
            vec![0xaa, 0, 0, 0, 2, 0x06, 5, 0, 0, 0, 4, 0x65, 7, 8, 9]
        );
    }
}
