//! Sans-I/O streaming bundle reader: push arbitrary chunks in, get events
//! out. The signature over the manifest is verified before the first image
//! byte is emitted; images are hashed as they pass. Memory is the header
//! plus at most [`MAX_MANIFEST_LEN`] bytes of manifest, whatever the bundle
//! size: stored image bytes are handed out as slices of the caller's chunk;
//! a compressed image needs one compressed block ([`MAX_ZSTD_FRAME`]) and
//! hands out one decompressed block ([`ZSTD_BLOCK`]) at a time, and
//! [`BundleReader::feed_limited`] stops after a byte budget, so a chunk of
//! highly compressed zeros cannot make a caller hold gigabytes of events.

use std::borrow::Cow;
use std::io::Read;

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{OtaError, Result};
use crate::format::{
    hex, key_id, signed_message, Encoding, Header, ImageKind, Manifest, Slot, HEADER_LEN,
    MAX_MANIFEST_LEN, MAX_ZSTD_FRAME, ZSTD_BLOCK, ZSTD_BLOCK_HEADER,
};

/// What this device accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Keys whose signatures we trust (at least one, or every bundle fails).
    pub trusted_keys: Vec<VerifyingKey>,
    /// This board's compatible string; `None` accepts any (host tools only).
    pub compatible: Option<String>,
    /// The running version. `None` (unknown) refuses every bundle unless
    /// `allow_downgrade`: a downgrade cannot be ruled out.
    pub current_version: Option<semver::Version>,
    /// Allow installing an older version than the running one (host tools
    /// that check no version set it).
    pub allow_downgrade: bool,
}

impl Policy {
    /// Checks a signature-verified manifest against this device.
    fn check(&self, m: &Manifest) -> Result<()> {
        let version = m.validate()?;
        if let Some(c) = &self.compatible {
            if &m.compatible != c {
                return Err(OtaError::incompatible(format!(
                    "bundle is for board {:?}, this device is {c:?}",
                    m.compatible
                )));
            }
        }
        if self.allow_downgrade {
            return Ok(());
        }
        match &self.current_version {
            Some(cur) if version < *cur => Err(OtaError::incompatible(format!(
                "bundle version {version} is older than the running {cur}; downgrades are refused unless allowed"
            ))),
            Some(_) => Ok(()),
            // Used to skip the check silently: fail closed instead.
            None => Err(OtaError::incompatible(format!(
                "the running system's version is unknown, so bundle version {version} \
                 could be a downgrade; refused (allow downgrades to install anyway)"
            ))),
        }
    }
}

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

/// Decoder state of one compressed image.
struct ZstdImage {
    /// Image (decompressed) bytes still to come.
    raw_left: u64,
    /// The current block's header, then its frame.
    head: Vec<u8>,
    frame: Vec<u8>,
    /// (raw_len, comp_len) once the block header is complete.
    block: Option<(usize, usize)>,
    decoder: ruzstd::decoding::FrameDecoder,
}

impl ZstdImage {
    fn new(raw: u64) -> Self {
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
                        let (used, block) = Self::zstd_step(z, mine, *remaining).map_err(|e| {
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

    /// Takes bytes of a compressed image from `input` (all of them belong
    /// to it; `remaining` is what the image still has in the bundle) until
    /// a block is complete. Returns the bytes used and the decoded block.
    fn zstd_step(
        z: &mut ZstdImage,
        input: &[u8],
        remaining: u64,
    ) -> std::result::Result<(usize, Option<Vec<u8>>), String> {
        let Some((raw, comp)) = z.block else {
            let k = (ZSTD_BLOCK_HEADER - z.head.len()).min(input.len());
            z.head.extend_from_slice(&input[..k]);
            if z.head.len() == ZSTD_BLOCK_HEADER {
                let raw = u32::from_be_bytes([z.head[0], z.head[1], z.head[2], z.head[3]]) as usize;
                let comp =
                    u32::from_be_bytes([z.head[4], z.head[5], z.head[6], z.head[7]]) as usize;
                if raw == 0 || raw > ZSTD_BLOCK || raw as u64 > z.raw_left {
                    return Err(format!(
                        "zstd block of {raw} bytes: blocks hold 1..={ZSTD_BLOCK} and the image has {} left",
                        z.raw_left
                    ));
                }
                // `remaining` still counts the header bytes just taken.
                let left = remaining - k as u64;
                if comp == 0 || comp > MAX_ZSTD_FRAME || comp as u64 > left {
                    return Err(format!(
                        "zstd frame of {comp} bytes: frames hold 1..={MAX_ZSTD_FRAME} and the image has {left} bundle bytes left"
                    ));
                }
                z.block = Some((raw, comp));
                z.frame.clear();
                z.frame.reserve_exact(comp);
            }
            return Ok((k, None));
        };
        let k = (comp - z.frame.len()).min(input.len());
        z.frame.extend_from_slice(&input[..k]);
        if z.frame.len() < comp {
            return Ok((k, None));
        }
        let data = z.decode(raw)?;
        z.raw_left -= raw as u64;
        z.block = None;
        z.head.clear();
        Ok((k, Some(data)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_head, ImageInfo};
    use crate::ErrorKind;
    use ed25519_dalek::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn bundle_with(key: &SigningKey, f: impl FnOnce(&mut Manifest)) -> Vec<u8> {
        let imgs: [&[u8]; 2] = [b"boot image bytes", b"the root filesystem, a bit longer"];
        let mut m = Manifest {
            format: 1,
            product: "pinhole".into(),
            compatible: "rpi4".into(),
            version: "1.2.3".into(),
            build_time: 1,
            images: vec![
                ImageInfo {
                    kind: ImageKind::Boot,
                    slot: None,
                    size: imgs[0].len() as u64,
                    sha256: hex(&Sha256::digest(imgs[0])),
                    encoding: Encoding::None,
                    stored_size: None,
                },
                ImageInfo {
                    kind: ImageKind::Root,
                    slot: None,
                    size: imgs[1].len() as u64,
                    sha256: hex(&Sha256::digest(imgs[1])),
                    encoding: Encoding::None,
                    stored_size: None,
                },
            ],
        };
        f(&mut m);
        let mut b = encode_head(&m, key).unwrap();
        b.extend_from_slice(imgs[0]);
        b.extend_from_slice(imgs[1]);
        b
    }

    fn bundle() -> Vec<u8> {
        bundle_with(&key(), |_| {})
    }

    fn policy() -> Policy {
        Policy {
            trusted_keys: vec![key().verifying_key()],
            compatible: Some("rpi4".into()),
            current_version: Some(semver::Version::new(1, 0, 0)),
            allow_downgrade: false,
        }
    }

    /// Feeds in chunks of `step` and collects owned events (data concatenated).
    fn run(b: &[u8], step: usize, p: Policy) -> (Vec<String>, Vec<Vec<u8>>, Result<()>) {
        let mut r = BundleReader::new(p);
        let mut names = Vec::new();
        let mut data: Vec<Vec<u8>> = Vec::new();
        for c in b.chunks(step) {
            let mut ev = Vec::new();
            let res = r.feed(c, &mut ev);
            for e in ev {
                match e {
                    Event::Manifest(_) => names.push("manifest".into()),
                    Event::ImageStart { index, .. } => {
                        names.push(format!("start{index}"));
                        data.push(Vec::new());
                    }
                    Event::ImageData { index, data: d } => data[index].extend_from_slice(&d),
                    Event::ImageEnd { index, sha256_ok } => {
                        names.push(format!("end{index}:{sha256_ok}"))
                    }
                }
            }
            if res.is_err() {
                return (names, data, res);
            }
        }
        let res = r.finish();
        (names, data, res)
    }

    #[test]
    fn good_bundle_any_chunking() {
        let b = bundle();
        for step in [1, 2, 7, 88, 89, 1000, b.len()] {
            let (names, data, res) = run(&b, step, policy());
            res.unwrap();
            assert_eq!(
                names,
                ["manifest", "start0", "end0:true", "start1", "end1:true"]
            );
            assert_eq!(data[0], b"boot image bytes");
            assert_eq!(data[1], b"the root filesystem, a bit longer");
        }
    }

    #[test]
    fn forged_signature_emits_nothing() {
        let mut b = bundle();
        b[HEADER_LEN + 20] ^= 1; // inside the manifest
        let (names, _, res) = run(&b, 5, policy());
        assert!(names.is_empty());
        let e = res.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signature);
        assert_eq!(e.http_status(), 403);
    }

    #[test]
    fn unknown_key_is_refused() {
        let b = bundle_with(&SigningKey::from_bytes(&[2; 32]), |_| {});
        let (names, _, res) = run(&b, 100, policy());
        assert!(names.is_empty());
        assert!(res.unwrap_err().to_string().contains("does not trust"));
    }

    #[test]
    fn flipped_signature_byte_is_refused() {
        let mut b = bundle();
        b[40] ^= 0x80;
        assert_eq!(
            run(&b, 100, policy()).2.unwrap_err().kind(),
            ErrorKind::Signature
        );
    }

    #[test]
    fn no_trusted_keys_refuses_everything() {
        let mut p = policy();
        p.trusted_keys.clear();
        assert_eq!(run(&bundle(), 100, p).2.unwrap_err().http_status(), 403);
    }

    #[test]
    fn wrong_board_and_downgrade_are_422() {
        let b = bundle_with(&key(), |m| m.compatible = "qemu-arm64".into());
        let (names, _, res) = run(&b, 64, policy());
        assert!(names.is_empty());
        assert_eq!(res.unwrap_err().http_status(), 422);

        let b = bundle_with(&key(), |m| m.version = "0.9.0".into());
        assert_eq!(run(&b, 64, policy()).2.unwrap_err().http_status(), 422);
        let mut p = policy();
        p.allow_downgrade = true;
        run(&b, 64, p).2.unwrap();
        // Same version reinstall is not a downgrade.
        let b = bundle_with(&key(), |m| m.version = "1.0.0".into());
        run(&b, 64, policy()).2.unwrap();
        // Pre-release of the running version is older.
        let b = bundle_with(&key(), |m| m.version = "1.0.0-rc.1".into());
        assert!(run(&b, 64, policy()).2.is_err());
    }

    #[test]
    fn an_unknown_running_version_refuses_unless_downgrades_are_allowed() {
        let b = bundle_with(&key(), |m| m.version = "9.0.0".into());
        let mut p = policy();
        p.current_version = None;
        let e = run(&b, 64, p.clone()).2.unwrap_err();
        assert_eq!(e.http_status(), 422);
        assert!(e.to_string().contains("version is unknown"), "{e}");
        p.allow_downgrade = true;
        run(&b, 64, p).2.unwrap();
    }

    #[test]
    fn flipped_image_byte_fails_at_image_end() {
        let mut b = bundle();
        let last = b.len() - 1;
        b[last] ^= 1;
        let (names, _, res) = run(&b, 10, policy());
        assert_eq!(names.last().unwrap(), "end1:false");
        let e = res.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadBundle);
        assert_eq!(e.image(), Some(1));
        assert_eq!(e.offset(), Some(b.len() as u64));
    }

    #[test]
    fn truncation_is_detected_everywhere() {
        let b = bundle();
        for cut in [0, 10, HEADER_LEN, HEADER_LEN + 5, b.len() - 20, b.len() - 1] {
            let (_, _, res) = run(&b[..cut], 3, policy());
            let e = res.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadBundle, "cut {cut}: {e}");
            assert_eq!(e.offset(), Some(cut as u64));
            assert!(e.to_string().contains("truncated"), "{e}");
        }
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut b = bundle();
        b.push(0);
        let (names, _, res) = run(&b, 1000, policy());
        assert_eq!(names.last().unwrap(), "end1:true");
        assert!(res
            .unwrap_err()
            .to_string()
            .contains("after the last image"));
    }

    #[test]
    fn failed_reader_stays_failed() {
        let mut r = BundleReader::new(policy());
        let mut ev = Vec::new();
        assert!(r.feed(b"NOTABUNDLE-----------------------------------------------------------------------------------", &mut ev).is_err());
        let b = bundle();
        let mut ev2 = Vec::new();
        assert!(r.feed(&b, &mut ev2).is_err());
        assert!(r.finish().is_err());
        assert!(ev.is_empty() && ev2.is_empty());
    }

    #[test]
    fn total_len_matches() {
        let b = bundle();
        let mut r = BundleReader::new(policy());
        let mut ev = Vec::new();
        r.feed(&b, &mut ev).unwrap();
        assert_eq!(r.total_len(), Some(b.len() as u64));
        assert_eq!(r.position(), b.len() as u64);
    }

    /// A format-2 bundle whose images are zstd-compressed (compress_image).
    fn zstd_bundle(imgs: &[&[u8]; 2]) -> Vec<u8> {
        let mut stored = Vec::new();
        let mut infos = Vec::new();
        for (kind, img) in [ImageKind::Boot, ImageKind::Root].into_iter().zip(imgs) {
            let mut z = Vec::new();
            let (size, sha, n) = crate::format::compress_image(&mut &img[..], &mut z).unwrap();
            infos.push(ImageInfo {
                kind,
                slot: None,
                size,
                sha256: hex(&sha),
                encoding: Encoding::Zstd,
                stored_size: Some(n),
            });
            stored.push(z);
        }
        let m = Manifest {
            format: 2,
            product: "pinhole".into(),
            compatible: "rpi4".into(),
            version: "1.2.3".into(),
            build_time: 1,
            images: infos,
        };
        let mut b = encode_head(&m, &key()).unwrap();
        for z in stored {
            b.extend_from_slice(&z);
        }
        b
    }

    fn noise(n: usize) -> Vec<u8> {
        let mut x = 7u32;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn compressed_images_any_chunking() {
        let mut boot = vec![0u8; ZSTD_BLOCK * 2 + 5];
        boot[..1000].copy_from_slice(&noise(1000));
        let root = noise(3000);
        let b = zstd_bundle(&[&boot, &root]);
        assert!(b.len() < 10_000, "zeros must shrink: {}", b.len());
        for step in [1, 7, 89, 4096, b.len()] {
            let (names, data, res) = run(&b, step, policy());
            res.unwrap();
            assert_eq!(
                names,
                ["manifest", "start0", "end0:true", "start1", "end1:true"]
            );
            assert_eq!(data[0], boot);
            assert_eq!(data[1], root);
        }
    }

    #[test]
    fn feed_limited_bounds_the_decompressed_bytes_per_call() {
        // 8 MiB of zeros fit in a few hundred bundle bytes: one call of
        // `feed` would hand out all 8 MiB; `feed_limited` one block at a time.
        let zeros = vec![0u8; 8 * ZSTD_BLOCK];
        let b = zstd_bundle(&[&zeros, b"root"]);
        let mut r = BundleReader::new(policy());
        let mut rest = &b[..];
        let (mut calls, mut total) = (0, 0usize);
        while !rest.is_empty() {
            let mut ev = Vec::new();
            let used = r.feed_limited(rest, &mut ev, 1).unwrap();
            let out: usize = ev
                .iter()
                .map(|e| match e {
                    Event::ImageData { data, .. } => data.len(),
                    _ => 0,
                })
                .sum();
            assert!(out <= ZSTD_BLOCK, "{out} bytes in one call");
            total += out;
            calls += 1;
            rest = &rest[used..];
        }
        r.finish().unwrap();
        assert_eq!(total, zeros.len() + 4);
        assert!(calls >= 8, "{calls}");
    }

    #[test]
    fn damaged_compressed_data_is_a_bad_bundle() {
        let boot = noise(5000);
        let b = zstd_bundle(&[&boot, b"root"]);
        // first image's block header: right after the manifest
        let m_len = u32::from_be_bytes(b[12..16].try_into().unwrap()) as usize;
        let img0 = HEADER_LEN + m_len;
        // a frame byte flipped, a block claiming too many bytes, a frame length beyond the image
        for (at, val) in [
            (img0 + 20, None),
            (img0 + 1, Some(0x7f)),
            (img0 + 4, Some(0x7f)),
        ] {
            let mut c = b.clone();
            match val {
                None => c[at] ^= 0x55,
                Some(v) => c[at] = v,
            }
            let (_, _, res) = run(&c, 64, policy());
            let e = res.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadBundle, "{e}");
            assert_eq!(e.image(), Some(0), "{e}");
        }
    }

    #[test]
    fn format_2_uncompressed_and_format_mismatch() {
        // format 2 with stored images reads like format 1
        let b = bundle_with(&key(), |m| m.format = 2);
        assert_eq!(u16::from_be_bytes([b[8], b[9]]), 2);
        run(&b, 10, policy()).2.unwrap();
        // a manifest that says 2 under a header that says 1
        let mut b = bundle_with(&key(), |m| m.format = 2);
        b[9] = 1;
        assert!(run(&b, 1000, policy()).2.is_err());
        // unknown header format: 422 before the signature is even looked at
        let mut b = bundle();
        b[9] = 3;
        let e = run(&b, 1000, policy()).2.unwrap_err();
        assert_eq!(e.http_status(), 422);
        assert!(e.to_string().contains("update in steps"), "{e}");
    }
}
