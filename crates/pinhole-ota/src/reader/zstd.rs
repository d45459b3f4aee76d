//! Decoding one compressed (format 2) image: block headers, bounded zstd
//! frames, and exactly the bytes each block header promises.

use std::io::Read;

use crate::format::{MAX_ZSTD_FRAME, ZSTD_BLOCK, ZSTD_BLOCK_HEADER};

/// Decoder state of one compressed image.
pub(super) struct ZstdImage {
    /// Image (decompressed) bytes still to come.
    pub(super) raw_left: u64,
    /// The current block's header, then its frame.
    head: Vec<u8>,
    frame: Vec<u8>,
    /// (raw_len, comp_len) once the block header is complete.
    block: Option<(usize, usize)>,
    decoder: ruzstd::decoding::FrameDecoder,
}

impl ZstdImage {
    pub(super) fn new(raw: u64) -> Self {
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        // A block is at most ZSTD_BLOCK bytes: no frame needs a larger
        // window, and the limit bounds what a hostile frame can allocate.
        decoder.set_max_window_size(ZSTD_BLOCK as u64);
        ZstdImage {
            raw_left: raw,
            head: Vec::with_capacity(ZSTD_BLOCK_HEADER),
            frame: Vec::new(),
            block: None,
            decoder,
        }
    }

    /// Decodes the buffered frame; it must hold exactly `raw` bytes.
    fn decode(&mut self, raw: usize) -> std::result::Result<Vec<u8>, String> {
        let mut src: &[u8] = &self.frame;
        let mut out = Vec::with_capacity(raw);
        let dec = ruzstd::decoding::StreamingDecoder::new_with_decoder(&mut src, &mut self.decoder)
            .map_err(|e| format!("zstd frame: {e}"))?;
        dec.take(raw as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("zstd frame: {e}"))?;
        if out.len() != raw {
            return Err(format!(
                "zstd block decodes to {} bytes, its header says {raw}",
                out.len()
            ));
        }
        if !src.is_empty() {
            return Err(format!(
                "{} bytes after the zstd frame in its block",
                src.len()
            ));
        }
        Ok(out)
    }

    /// Takes bytes of a compressed image from `input` (all of them belong
    /// to it; `remaining` is what the image still has in the bundle) until
    /// a block is complete. Returns the bytes used and the decoded block.
    pub(super) fn step(
        &mut self,
        input: &[u8],
        remaining: u64,
    ) -> std::result::Result<(usize, Option<Vec<u8>>), String> {
        let Some((raw, comp)) = self.block else {
            let k = (ZSTD_BLOCK_HEADER - self.head.len()).min(input.len());
            self.head.extend_from_slice(&input[..k]);
            if self.head.len() == ZSTD_BLOCK_HEADER {
                let h = &self.head;
                let raw = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let comp = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
                if raw == 0 || raw > ZSTD_BLOCK || raw as u64 > self.raw_left {
                    return Err(format!(
                        "zstd block of {raw} bytes: blocks hold 1..={ZSTD_BLOCK} and the image has {} left",
                        self.raw_left
                    ));
                }
                // `remaining` still counts the header bytes just taken.
                let left = remaining - k as u64;
                if comp == 0 || comp > MAX_ZSTD_FRAME || comp as u64 > left {
                    return Err(format!(
                        "zstd frame of {comp} bytes: frames hold 1..={MAX_ZSTD_FRAME} and the image has {left} bundle bytes left"
                    ));
                }
                self.block = Some((raw, comp));
                self.frame.clear();
                self.frame.reserve_exact(comp);
            }
            return Ok((k, None));
        };
        let k = (comp - self.frame.len()).min(input.len());
        self.frame.extend_from_slice(&input[..k]);
        if self.frame.len() < comp {
            return Ok((k, None));
        }
        let data = self.decode(raw)?;
        self.raw_left -= raw as u64;
        self.block = None;
        self.head.clear();
        Ok((k, Some(data)))
    }
}
