//! H.264 Annex B byte streams: NAL unit splitting, access-unit assembly, and
//! conversion to the length-prefixed (AVCC) form used inside mp4 samples.
//!
//! The [`AccessUnitAssembler`] is a pure state machine: feed it whatever a
//! pipe or file hands out, in chunks of any size, and it returns whole access
//! units. It never panics on input and never grows without bound; what it
//! cannot use it drops and reports through [`AccessUnitAssembler::take_errors`].

mod assembler;
#[cfg(test)]
mod tests;

pub use assembler::{AccessUnitAssembler, AssembledAu, AssemblerStats, DEFAULT_MAX_AU_BYTES};

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
