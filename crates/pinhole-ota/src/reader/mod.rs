//! Sans-I/O streaming bundle reader: push arbitrary chunks in, get events
//! out. The signature over the manifest is verified before the first image
//! byte is emitted; images are hashed as they pass. Memory is the header
//! plus at most [`MAX_MANIFEST_LEN`] bytes of manifest, whatever the bundle
//! size: stored image bytes are handed out as slices of the caller's chunk;
//! a compressed image needs one compressed block
//! ([`MAX_ZSTD_FRAME`](crate::format::MAX_ZSTD_FRAME)) and hands out one
//! decompressed block ([`ZSTD_BLOCK`](crate::format::ZSTD_BLOCK)) at a time,
//! and [`BundleReader::feed_limited`] stops after a byte budget, so a chunk
//! of highly compressed zeros cannot make a caller hold gigabytes of events.

use std::borrow::Cow;

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};

use crate::error::{OtaError, Result};
use crate::format::{
    hex, key_id, signed_message, Encoding, Header, ImageKind, Manifest, Slot, HEADER_LEN,
    MAX_MANIFEST_LEN,
};

mod policy;
#[cfg(test)]
mod tests;
mod zstd;

pub use policy::Policy;
use zstd::ZstdImage;

/// What the reader found in the bytes it was fed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Header and manifest verified: signature, product, board, version.
    /// Nothing before this event may be written anywhere.
    Manifest(Box<Manifest>),
    ImageStart {
        index: usize,
        kind: ImageKind,
        /// `Some` for a slot-specific image (see [`crate::ImageInfo::slot`]).
        slot: Option<Slot>,
        size: u64,
    },
    /// The next bytes of image `index` (decompressed): a slice of the fed
    /// chunk for a stored image, an owned block for a compressed one.
    ImageData { index: usize, data: Cow<'a, [u8]> },
    /// The image is complete; `sha256_ok == false` also makes `feed` fail.
    ImageEnd { index: usize, sha256_ok: bool },
}

enum Stage {
    Header,
    Manifest(Header),
    Image {
        index: usize,
        /// Bundle bytes of this image still to come.
        remaining: u64,
        hasher: Sha256,
        /// `Some` for a compressed image.
        zstd: Option<Box<ZstdImage>>,
    },
    Done,
    Failed,
}

pub struct BundleReader {
    policy: Policy,
    stage: Stage,
    /// Header then manifest bytes, until verified; bounded.
    buf: Vec<u8>,
    /// Bundle bytes consumed so far (for error offsets and progress).
    pos: u64,
    manifest: Option<Manifest>,
    manifest_len: u64,
}

impl BundleReader {
    pub fn new(policy: Policy) -> Self {
        BundleReader {
            policy,
            stage: Stage::Header,
            buf: Vec::new(),
            pos: 0,
            manifest: None,
            manifest_len: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The verified manifest, once [`Event::Manifest`] has been emitted.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Total bundle length, once the manifest is verified.
    pub fn total_len(&self) -> Option<u64> {
        let m = self.manifest.as_ref()?;
        Some(HEADER_LEN as u64 + self.manifest_len + m.payload_len())
    }

    /// Consumes all of `chunk`, appending events to `out`. Events pushed
    /// before an error stay in `out`; after an error the reader is failed
    /// for good. With compressed images the decompressed output of one call
    /// is not bounded by the chunk: the device uses [`Self::feed_limited`].
    pub fn feed<'a>(&mut self, chunk: &'a [u8], out: &mut Vec<Event<'a>>) -> Result<()> {
        self.feed_limited(chunk, out, usize::MAX).map(|_| ())
    }

    /// Like [`Self::feed`], but stops once the decompressed blocks handed
    /// out in this call reach `budget` bytes (stored image bytes, slices of
    /// `chunk`, do not count). Returns how much of `chunk` was consumed; the
    /// caller feeds the rest later, after it has used the events.
    pub fn feed_limited<'a>(
        &mut self,
        mut chunk: &'a [u8],
        out: &mut Vec<Event<'a>>,
        budget: usize,
    ) -> Result<usize> {
        let len = chunk.len();
        let mut produced = 0usize;
        let r = (|| {
            while !chunk.is_empty() && produced < budget {
                chunk = self.step(chunk, out, &mut produced)?;
            }
            Ok(len - chunk.len())
        })();
        if r.is_err() {
            self.stage = Stage::Failed;
            self.buf = Vec::new();
        }
        r
    }

    /// The bundle ended: it must end exactly after the last image.
    pub fn finish(&mut self) -> Result<()> {
        let err = match &self.stage {
            Stage::Done => return Ok(()),
            Stage::Failed => OtaError::bad_bundle("bundle already failed"),
            Stage::Header => OtaError::bad_bundle(format!(
                "bundle truncated in the header ({} of {HEADER_LEN} bytes)",
                self.buf.len()
            )),
            Stage::Manifest(h) => OtaError::bad_bundle(format!(
                "bundle truncated in the manifest ({} of {} bytes)",
                self.buf.len() - HEADER_LEN,
                h.manifest_len
            )),
            Stage::Image {
                index, remaining, ..
            } => OtaError::bad_bundle(format!(
                "bundle truncated: {remaining} bytes of the image missing"
            ))
            .at_image(*index),
        };
        self.stage = Stage::Failed;
        Err(err.at_offset(self.pos))
    }

    fn step<'a>(
        &mut self,
        chunk: &'a [u8],
        out: &mut Vec<Event<'a>>,
        produced: &mut usize,
    ) -> Result<&'a [u8]> {
        match &mut self.stage {
            Stage::Failed => Err(OtaError::bad_bundle("bundle already failed").at_offset(self.pos)),
            Stage::Done => Err(OtaError::bad_bundle(format!(
                "{} unexpected bytes after the last image",
                chunk.len()
            ))
            .at_offset(self.pos)),
            Stage::Header => {
                let rest = self.take_into_buf(chunk, HEADER_LEN);
                if self.buf.len() == HEADER_LEN {
                    let mut hb = [0u8; HEADER_LEN];
                    hb.copy_from_slice(&self.buf);
                    let header = Header::parse(&hb)?;
                    self.buf.reserve_exact(header.manifest_len as usize);
                    self.stage = Stage::Manifest(header);
                }
                Ok(rest)
            }
            Stage::Manifest(h) => {
                let want = HEADER_LEN + h.manifest_len as usize;
                let h = h.clone();
                let rest = self.take_into_buf(chunk, want);
                if self.buf.len() == want {
                    let manifest = self.verify_manifest(&h)?;
                    self.buf = Vec::new();
                    out.push(Event::Manifest(Box::new(manifest.clone())));
                    self.manifest = Some(manifest);
                    self.manifest_len = h.manifest_len as u64;
                    self.start_image(0, out);
                }
                Ok(rest)
            }
            Stage::Image {
                index,
                remaining,
                hasher,
                zstd,
            } => {
                let index = *index;
                let n = (*remaining).min(chunk.len() as u64) as usize;
                let mine = &chunk[..n];
                let used = match zstd {
                    None => {
                        hasher.update(mine);
                        out.push(Event::ImageData {
                            index,
                            data: Cow::Borrowed(mine),
                        });
                        n
                    }
                    Some(z) => {
                        let (used, block) = z.step(mine, *remaining).map_err(|e| {
                            OtaError::bad_bundle(e).at_image(index).at_offset(self.pos)
                        })?;
                        if let Some(data) = block {
                            hasher.update(&data);
                            *produced = produced.saturating_add(data.len());
                            out.push(Event::ImageData {
                                index,
                                data: Cow::Owned(data),
                            });
                        }
                        used
                    }
                };
                *remaining -= used as u64;
                self.pos += used as u64;
                if *remaining == 0 {
                    if let Some(z) = zstd {
                        if z.raw_left != 0 {
                            return Err(OtaError::bad_bundle(format!(
                                "compressed image ends {} bytes short of its size",
                                z.raw_left
                            ))
                            .at_image(index)
                            .at_offset(self.pos));
                        }
                    }
                    let got: [u8; 32] = std::mem::take(hasher).finalize().into();
                    let want = self.image_sha(index)?;
                    let ok = got == want;
                    out.push(Event::ImageEnd {
                        index,
                        sha256_ok: ok,
                    });
                    if !ok {
                        return Err(OtaError::bad_bundle(format!(
                            "SHA-256 mismatch: image is {}, manifest says {}",
                            hex(&got),
                            hex(&want)
                        ))
                        .at_image(index)
                        .at_offset(self.pos));
                    }
                    self.start_image(index + 1, out);
                }
                Ok(&chunk[used..])
            }
        }
    }

    /// Moves bytes from `chunk` into `buf` until it holds `want`.
    fn take_into_buf<'a>(&mut self, chunk: &'a [u8], want: usize) -> &'a [u8] {
        let n = want.saturating_sub(self.buf.len()).min(chunk.len());
        self.buf.extend_from_slice(&chunk[..n]);
        self.pos += n as u64;
        &chunk[n..]
    }

    fn verify_manifest(&self, h: &Header) -> Result<Manifest> {
        let json = &self.buf[HEADER_LEN..];
        debug_assert!(json.len() <= MAX_MANIFEST_LEN);
        let key = self
            .policy
            .trusted_keys
            .iter()
            .find(|k| key_id(k) == h.key_id)
            .ok_or_else(|| {
                OtaError::signature(format!(
                    "bundle is signed by key {}, which this device does not trust",
                    hex(&h.key_id)
                ))
                .at_offset(16)
            })?;
        let msg = signed_message(&h.signed_prefix(), json);
        // verify_strict: no malleable or small-order-key signatures.
        key.verify_strict(&msg, &Signature::from_bytes(&h.signature))
            .map_err(|_| {
                OtaError::signature(format!(
                    "signature by key {} does not match the manifest (forged or damaged)",
                    hex(&h.key_id)
                ))
                .at_offset(24)
            })?;
        // Only signed bytes are parsed from here on.
        let m = Manifest::parse(json).map_err(|e| e.at_offset(HEADER_LEN as u64))?;
        if m.format != h.format {
            return Err(OtaError::bad_bundle(format!(
                "manifest format {} does not match the header's {}",
                m.format, h.format
            )));
        }
        self.policy.check(&m)?;
        Ok(m)
    }

    fn image_sha(&self, index: usize) -> Result<[u8; 32]> {
        self.manifest
            .as_ref()
            .and_then(|m| m.images.get(index))
            .ok_or_else(|| OtaError::internal("image index out of the manifest"))?
            .sha256_bytes()
    }

    fn start_image<'a>(&mut self, index: usize, out: &mut Vec<Event<'a>>) {
        let info = self.manifest.as_ref().and_then(|m| m.images.get(index));
        self.stage = match info {
            Some(info) => {
                out.push(Event::ImageStart {
                    index,
                    kind: info.kind,
                    slot: info.slot,
                    size: info.size,
                });
                Stage::Image {
                    index,
                    remaining: info.stored_len(),
                    hasher: Sha256::new(),
                    zstd: match info.encoding {
                        Encoding::None => None,
                        Encoding::Zstd => Some(Box::new(ZstdImage::new(info.size))),
                    },
                }
            }
            None => Stage::Done,
        };
    }
}
