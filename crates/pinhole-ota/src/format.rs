//! The bundle format (see docs/bundle-format.md): a fixed 88-byte header, a
//! signed JSON manifest, then the images back to back in manifest order, so a
//! bundle is verified and installed in one streaming pass.
//!
//! ```text
//! off  len  field
//!   0    8  magic  "PHBUNDLE"
//!   8    2  format version, u16 big-endian (2; 1 is still read)
//!  10    2  reserved, must be 0
//!  12    4  manifest length, u32 big-endian (1..=65536)
//!  16    8  key id: first 8 bytes of SHA-256(Ed25519 public key)
//!  24   64  Ed25519 signature over SIGN_CONTEXT || header[0..24] || manifest
//!  88    n  manifest (UTF-8 JSON)
//!  88+n  …  image 0, image 1, … (sizes and SHA-256 in the manifest)
//! ```
//!
//! Format 2 adds per-image compression: an image with `"encoding": "zstd"`
//! is stored as blocks of at most [`ZSTD_BLOCK`] image bytes, each
//! `raw_len u32 BE | comp_len u32 BE | one zstd frame`, so the device
//! decompresses block by block with bounded memory. The manifest's `size`
//! and `sha256` stay those of the image the slot receives.

use std::fmt;
use std::io::{Read, Write};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{OtaError, Result};

pub const MAGIC: [u8; 8] = *b"PHBUNDLE";
/// The format `pinhole-bundle` writes.
pub const FORMAT_VERSION: u16 = 2;
/// The formats this build reads. Format 1 has no `encoding` (every image
/// stored as is); a device that reads only format 1 refuses format 2 with
/// "update in steps", so the step release must be shipped as format 1.
pub const READABLE_FORMATS: [u16; 2] = [1, 2];
/// Image bytes per compressed block: bounds the device's buffers (one
/// compressed and one decompressed block).
pub const ZSTD_BLOCK: usize = 1 << 20;
/// A compressed block may be a little larger than its input (incompressible
/// data); anything beyond this is refused before it is buffered.
pub const MAX_ZSTD_FRAME: usize = ZSTD_BLOCK + (64 << 10);
/// Bytes before each compressed block: raw_len, comp_len (u32 BE).
pub const ZSTD_BLOCK_HEADER: usize = 8;
pub const HEADER_LEN: usize = 88;
/// The manifest is buffered in memory before its signature is checked, so
/// it must be small.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
pub const MAX_IMAGES: usize = 8;
/// No partition of ours is anywhere near this; it bounds arithmetic.
pub const MAX_IMAGE_SIZE: u64 = 64 << 30;
pub const PRODUCT: &str = "pinhole";
/// Domain separation: a pinhole bundle signature can never be replayed as a
/// signature over anything else made with the same key, and vice versa.
pub const SIGN_CONTEXT: &[u8] = b"pinhole-bundle-v1\0";

/// An A/B slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn parse(s: &str) -> Option<Slot> {
        match s.trim() {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which partition of a slot an image goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// The vfat boot partition (kernel, initrd, firmware, cmdline).
    Boot,
    /// The read-only root filesystem (squashfs/erofs).
    Root,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Boot => "boot",
            ImageKind::Root => "root",
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parsed fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: u16,
    pub manifest_len: u32,
    pub key_id: [u8; 8],
    pub signature: [u8; 64],
}

impl Header {
    /// Parses the 88 header bytes. Format-version and length checks are
    /// here so the reader never buffers more than [`MAX_MANIFEST_LEN`].
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header> {
        if b[0..8] != MAGIC {
            return Err(OtaError::bad_bundle(format!(
                "not a pinhole bundle: magic is {:?}, expected \"PHBUNDLE\"",
                String::from_utf8_lossy(&b[0..8])
            ))
            .at_offset(0));
        }
        let format = u16::from_be_bytes([b[8], b[9]]);
        if !READABLE_FORMATS.contains(&format) {
            return Err(OtaError::incompatible(format!(
                "bundle format {format} is not supported by this device (it reads formats {READABLE_FORMATS:?}); update in steps"
            ))
            .at_offset(8));
        }
        if b[10] != 0 || b[11] != 0 {
            return Err(OtaError::bad_bundle("reserved header bytes are not zero").at_offset(10));
        }
        let manifest_len = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
        if manifest_len == 0 || manifest_len as usize > MAX_MANIFEST_LEN {
            return Err(OtaError::bad_bundle(format!(
                "manifest length {manifest_len} is outside 1..={MAX_MANIFEST_LEN}"
            ))
            .at_offset(12));
        }
        let mut key_id = [0; 8];
        key_id.copy_from_slice(&b[16..24]);
        let mut signature = [0; 64];
        signature.copy_from_slice(&b[24..88]);
        Ok(Header {
            format,
            manifest_len,
            key_id,
            signature,
        })
    }

    /// The first 24 header bytes: everything the signature covers.
    pub fn signed_prefix(&self) -> [u8; 24] {
        let mut p = [0u8; 24];
        p[0..8].copy_from_slice(&MAGIC);
        p[8..10].copy_from_slice(&self.format.to_be_bytes());
        p[12..16].copy_from_slice(&self.manifest_len.to_be_bytes());
        p[16..24].copy_from_slice(&self.key_id);
        p
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..24].copy_from_slice(&self.signed_prefix());
        b[24..88].copy_from_slice(&self.signature);
        b
    }
}

/// The message the signature is over.
pub fn signed_message(prefix: &[u8; 24], manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_CONTEXT.len() + 24 + manifest.len());
    m.extend_from_slice(SIGN_CONTEXT);
    m.extend_from_slice(prefix);
    m.extend_from_slice(manifest);
    m
}

/// How an image is stored in the bundle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The image bytes as they are (the only encoding of format 1).
    #[default]
    None,
    /// Blocks of zstd frames (format 2, see the module docs).
    Zstd,
}

impl Encoding {
    pub fn is_none(&self) -> bool {
        *self == Encoding::None
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::None => "none",
            Encoding::Zstd => "zstd",
        }
    }
}

/// One image of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    pub kind: ImageKind,
    /// Only for this slot. Absent: for either slot. Lets a bundle carry
    /// slot-specific boot partitions (their cmdline names their own root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    /// Bytes the slot receives (uncompressed).
    pub size: u64,
    /// Lowercase hex SHA-256 of the image bytes (uncompressed).
    pub sha256: String,
    /// Format 2: how the image is stored; absent = `none`.
    #[serde(default, skip_serializing_if = "Encoding::is_none")]
    pub encoding: Encoding,
    /// Format 2: bytes the image takes in the bundle; required with an
    /// encoding, else absent or equal to `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
}

impl ImageInfo {
    /// Bytes the image takes in the bundle.
    pub fn stored_len(&self) -> u64 {
        self.stored_size.unwrap_or(self.size)
    }
    pub fn applies_to(&self, slot: Slot) -> bool {
        self.slot.is_none_or(|s| s == slot)
    }
    /// The SHA-256 as bytes (validated by [`Manifest::validate`]).
    pub fn sha256_bytes(&self) -> Result<[u8; 32]> {
        hex_decode_32(&self.sha256).ok_or_else(|| {
            OtaError::bad_bundle(format!("sha256 {:?} is not 64 hex digits", self.sha256))
        })
    }
}

/// The signed description of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Same as the header's format version (checked).
    pub format: u16,
    /// Always "pinhole".
    pub product: String,
    /// The board the images are for: "rpi4", "qemu-arm64".
    pub compatible: String,
    /// Semantic version of the system in the bundle.
    pub version: String,
    /// Build time, seconds since the Unix epoch.
    pub build_time: u64,
    pub images: Vec<ImageInfo>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        serde_json::from_slice(bytes)
            .map_err(|e| OtaError::bad_bundle(format!("manifest is not valid: {e}")))
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A plain struct of strings and numbers always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Shape checks that do not depend on the device: product, version
    /// syntax, image count and sizes, and that each slot gets exactly one
    /// boot and one root image (an A/B slot is the pair; writing only one
    /// would pair a new root with an old boot partition).
    pub fn validate(&self) -> Result<semver::Version> {
        if !READABLE_FORMATS.contains(&self.format) {
            return Err(OtaError::incompatible(format!(
                "manifest format {} is not supported (this build reads {READABLE_FORMATS:?})",
                self.format
            )));
        }
        if self.product != PRODUCT {
            return Err(OtaError::incompatible(format!(
                "bundle is for product {:?}, this is {PRODUCT:?}",
                self.product
            )));
        }
        if self.compatible.is_empty()
            || self.compatible.len() > 64
            || !self
                .compatible
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(OtaError::bad_bundle(format!(
                "compatible {:?} must be 1-64 of [A-Za-z0-9_-]",
                self.compatible
            )));
        }
        let version = semver::Version::parse(&self.version).map_err(|e| {
            OtaError::bad_bundle(format!("version {:?} is not semver: {e}", self.version))
        })?;
        if self.images.is_empty() || self.images.len() > MAX_IMAGES {
            return Err(OtaError::bad_bundle(format!(
                "{} images; a bundle holds 1..={MAX_IMAGES}",
                self.images.len()
            )));
        }
        for (i, im) in self.images.iter().enumerate() {
            if im.size == 0 || im.size > MAX_IMAGE_SIZE {
                return Err(OtaError::bad_bundle(format!(
                    "size {} is outside 1..={MAX_IMAGE_SIZE}",
                    im.size
                ))
                .at_image(i));
            }
            im.sha256_bytes().map_err(|e| e.at_image(i))?;
            match (im.encoding, im.stored_size) {
                (Encoding::None, None) => {}
                (Encoding::None, Some(n)) if n == im.size && self.format >= 2 => {}
                (Encoding::Zstd, Some(n)) if self.format >= 2 => {
                    // A block header per ZSTD_BLOCK at least; the upper bound
                    // only keeps arithmetic far from overflow.
                    if n < ZSTD_BLOCK_HEADER as u64 || n > 2 * MAX_IMAGE_SIZE {
                        return Err(OtaError::bad_bundle(format!(
                            "stored_size {n} is outside {ZSTD_BLOCK_HEADER}..={}",
                            2 * MAX_IMAGE_SIZE
                        ))
                        .at_image(i));
                    }
                }
                (e, n) => {
                    return Err(OtaError::bad_bundle(format!(
                        "encoding {:?} with stored_size {n:?} is not valid in format {}",
                        e.as_str(),
                        self.format
                    ))
                    .at_image(i))
                }
            }
        }
        for slot in [Slot::A, Slot::B] {
            for kind in [ImageKind::Boot, ImageKind::Root] {
                let n = self
                    .images
                    .iter()
                    .filter(|im| im.kind == kind && im.applies_to(slot))
                    .count();
                if n != 1 {
                    return Err(OtaError::bad_bundle(format!(
                        "slot {slot} gets {n} {kind} images; it needs exactly one"
                    )));
                }
            }
        }
        Ok(version)
    }

    /// Bytes of all images in the bundle (validated manifests cannot overflow).
    pub fn payload_len(&self) -> u64 {
        self.images.iter().map(|i| i.stored_len()).sum()
    }
}

/// Trust anchor id: lets the reader say which key signed a bundle.
pub fn key_id(key: &VerifyingKey) -> [u8; 8] {
    let h = Sha256::digest(key.as_bytes());
    let mut id = [0; 8];
    id.copy_from_slice(&h[..8]);
    id
}

const PUBLIC_TAG: &str = "pinhole-ed25519-public";
const SECRET_TAG: &str = "pinhole-ed25519-secret";

/// Key files are one line: a tag and 64 hex digits, so a public key can be
/// pasted into a config and a secret key is never mistaken for a public one.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(key.as_bytes()))
}

pub fn encode_secret_key(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", hex(&key.to_bytes()))
}

pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let bytes = parse_tagged(text, PUBLIC_TAG)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| OtaError::signature(format!("public key is not a valid Ed25519 point: {e}")))
}

pub fn parse_secret_key(text: &str) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&parse_tagged(text, SECRET_TAG)?))
}

fn parse_tagged(text: &str, tag: &str) -> Result<[u8; 32]> {
    let mut it = text.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(t), Some(h), None) if t == tag => hex_decode_32(h)
            .ok_or_else(|| OtaError::signature(format!("{tag} key is not 64 hex digits"))),
        _ => Err(OtaError::signature(format!(
            "not a {tag} key file (expected one line \"{tag} <64 hex digits>\")"
        ))),
    }
}

pub fn hex(b: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub fn hex_decode_32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
    }
    Some(out)
}

/// Header + manifest bytes for `manifest`, signed with `key`. Pure: the
/// images follow and are the caller's to write.
pub fn encode_head(manifest: &Manifest, key: &SigningKey) -> Result<Vec<u8>> {
    let json = manifest.to_json();
    if json.len() > MAX_MANIFEST_LEN {
        return Err(OtaError::bad_bundle(format!(
            "manifest is {} bytes; at most {MAX_MANIFEST_LEN}",
            json.len()
        )));
    }
    let mut header = Header {
        format: manifest.format,
        manifest_len: json.len() as u32,
        key_id: key_id(&key.verifying_key()),
        signature: [0; 64],
    };
    header.signature = key
        .sign(&signed_message(&header.signed_prefix(), &json))
        .to_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + json.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Size and SHA-256 of a stream, read in 1 MiB chunks.
pub fn hash_stream(r: &mut impl Read) -> std::io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().into()))
}

/// Writes a complete bundle: head, then each image copied from its reader,
/// which must yield exactly the stored size the manifest says (checked):
/// already encoded, see [`compress_image`].
pub fn write_bundle<W: Write, R: Read>(
    out: &mut W,
    manifest: &Manifest,
    key: &SigningKey,
    images: &mut [R],
) -> Result<()> {
    manifest.validate()?;
    if images.len() != manifest.images.len() {
        return Err(OtaError::internal("one reader per manifest image"));
    }
    let head = encode_head(manifest, key)?;
    out.write_all(&head)
        .map_err(|e| OtaError::io("writing the bundle header", e))?;
    for (i, (r, info)) in images.iter_mut().zip(&manifest.images).enumerate() {
        let n = std::io::copy(&mut r.take(info.stored_len()), out)
            .map_err(|e| OtaError::io("copying an image into the bundle", e).at_image(i))?;
        if n != info.stored_len() {
            return Err(OtaError::bad_bundle(format!(
                "image changed while building: {n} bytes, manifest says {}",
                info.stored_len()
            ))
            .at_image(i));
        }
    }
    out.flush()
        .map_err(|e| OtaError::io("flushing the bundle", e))
}

/// Compresses an image into `out` as zstd blocks (format 2). Returns the
/// image's size, its SHA-256 and the stored size. Pure Rust (ruzstd), so
/// the same crate builds for the device without a C toolchain.
pub fn compress_image(
    r: &mut impl Read,
    out: &mut impl Write,
) -> std::io::Result<(u64, [u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; ZSTD_BLOCK];
    let (mut size, mut stored) = (0u64, 0u64);
    loop {
        // Fill a whole block (reads may be short) so blocks are ZSTD_BLOCK
        // except the last.
        let mut k = 0;
        while k < buf.len() {
            let n = r.read(&mut buf[k..])?;
            if n == 0 {
                break;
            }
            k += n;
        }
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        let frame = ruzstd::encoding::compress_to_vec(
            &buf[..k],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        if frame.len() > MAX_ZSTD_FRAME {
            return Err(std::io::Error::other(format!(
                "a {k}-byte block compressed to {} bytes, more than {MAX_ZSTD_FRAME}",
                frame.len()
            )));
        }
        out.write_all(&(k as u32).to_be_bytes())?;
        out.write_all(&(frame.len() as u32).to_be_bytes())?;
        out.write_all(&frame)?;
        size += k as u64;
        stored += (ZSTD_BLOCK_HEADER + frame.len()) as u64;
        if k < buf.len() {
            break;
        }
    }
    Ok((size, h.finalize().into(), stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn manifest() -> Manifest {
        Manifest {
            format: 1,
            product: "pinhole".into(),
            compatible: "rpi4".into(),
            version: "1.2.3".into(),
            build_time: 1_700_000_000,
            images: vec![
                ImageInfo {
                    kind: ImageKind::Boot,
                    slot: None,
                    size: 3,
                    sha256: hex(&Sha256::digest(b"abc")),
                    encoding: Encoding::None,
                    stored_size: None,
                },
                ImageInfo {
                    kind: ImageKind::Root,
                    slot: None,
                    size: 3,
                    sha256: hex(&Sha256::digest(b"def")),
                    encoding: Encoding::None,
                    stored_size: None,
                },
            ],
        }
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            format: 1,
            manifest_len: 1234,
            key_id: [1, 2, 3, 4, 5, 6, 7, 8],
            signature: [9; 64],
        };
        assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    }

    #[test]
    fn header_rejects_bad_magic_version_reserved_and_length() {
        let good = Header {
            format: 1,
            manifest_len: 10,
            key_id: [0; 8],
            signature: [0; 64],
        }
        .to_bytes();
        let mut b = good;
        b[0] = b'X';
        assert_eq!(
            Header::parse(&b).unwrap_err().kind(),
            crate::ErrorKind::BadBundle
        );
        let mut b = good;
        b[9] = 3;
        assert_eq!(
            Header::parse(&b).unwrap_err().kind(),
            crate::ErrorKind::Incompatible
        );
        let mut b = good;
        b[11] = 1;
        assert_eq!(
            Header::parse(&b).unwrap_err().kind(),
            crate::ErrorKind::BadBundle
        );
        let mut b = good;
        b[12..16].copy_from_slice(&(MAX_MANIFEST_LEN as u32 + 1).to_be_bytes());
        assert_eq!(Header::parse(&b).unwrap_err().offset(), Some(12));
        let mut b = good;
        b[12..16].copy_from_slice(&0u32.to_be_bytes());
        assert!(Header::parse(&b).is_err());
    }

    #[test]
    fn manifest_validation() {
        assert_eq!(
            manifest().validate().unwrap(),
            semver::Version::new(1, 2, 3)
        );
        let mut m = manifest();
        m.product = "other".into();
        assert_eq!(m.validate().unwrap_err().http_status(), 422);
        let mut m = manifest();
        m.version = "1.2".into();
        assert_eq!(m.validate().unwrap_err().http_status(), 400);
        let mut m = manifest();
        m.images.pop();
        assert!(m.validate().unwrap_err().to_string().contains("root"));
        let mut m = manifest();
        m.images[0].sha256 = "zz".into();
        assert_eq!(m.validate().unwrap_err().image(), Some(0));
        let mut m = manifest();
        m.images[1].size = 0;
        assert!(m.validate().is_err());
        // Slot-specific boot images: one per slot is fine, two for one slot is not.
        let mut m = manifest();
        let mut b = m.images[0].clone();
        m.images[0].slot = Some(Slot::A);
        b.slot = Some(Slot::B);
        m.images.push(b.clone());
        m.validate().unwrap();
        m.images.push(b);
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.compatible = "rpi4; rm -rf".into();
        assert!(m.validate().is_err());
    }

    #[test]
    fn encodings_need_format_2_and_a_stored_size() {
        let mut m = manifest();
        m.images[1].encoding = Encoding::Zstd;
        m.images[1].stored_size = Some(40);
        // format 1 has no encodings
        assert!(m.validate().unwrap_err().to_string().contains("format 1"));
        m.format = 2;
        m.validate().unwrap();
        assert_eq!(m.payload_len(), 3 + 40);
        m.images[1].stored_size = None;
        assert_eq!(m.validate().unwrap_err().image(), Some(1));
        m.images[1].stored_size = Some(3);
        m.images[1].encoding = Encoding::None;
        m.validate().unwrap();
        m.images[1].stored_size = Some(4);
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.format = 3;
        assert_eq!(m.validate().unwrap_err().http_status(), 422);
    }

    #[test]
    fn compress_image_round_trips_in_blocks() {
        // 2.5 blocks: zeros (the empty part of a vfat) then noise
        let mut img = vec![0u8; ZSTD_BLOCK * 5 / 2];
        let mut x = 1u32;
        for b in img[ZSTD_BLOCK * 2..].iter_mut() {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *b = (x >> 24) as u8;
        }
        let mut out = Vec::new();
        let (size, sha, stored) = compress_image(&mut &img[..], &mut out).unwrap();
        assert_eq!(size, img.len() as u64);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&img)));
        assert_eq!(stored, out.len() as u64);
        assert!(stored < ZSTD_BLOCK as u64, "zeros must shrink: {stored}");
        // three blocks: 1 MiB, 1 MiB, the rest
        let mut rest = &out[..];
        let mut raws = Vec::new();
        let mut back = Vec::new();
        while !rest.is_empty() {
            let raw = u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize;
            let comp = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            let mut d = ruzstd::decoding::StreamingDecoder::new(&rest[8..8 + comp]).unwrap();
            let mut v = Vec::new();
            d.read_to_end(&mut v).unwrap();
            assert_eq!(v.len(), raw);
            back.extend_from_slice(&v);
            raws.push(raw);
            rest = &rest[8 + comp..];
        }
        assert_eq!(raws, vec![ZSTD_BLOCK, ZSTD_BLOCK, ZSTD_BLOCK / 2]);
        assert_eq!(back, img);
    }

    #[test]
    fn manifest_rejects_unknown_fields() {
        let mut v: serde_json::Value = serde_json::from_slice(&manifest().to_json()).unwrap();
        v["extra"] = 1.into();
        assert!(Manifest::parse(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn key_files_round_trip_and_are_not_interchangeable() {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let pk = sk.verifying_key();
        assert_eq!(parse_public_key(&encode_public_key(&pk)).unwrap(), pk);
        assert_eq!(
            parse_secret_key(&encode_secret_key(&sk))
                .unwrap()
                .to_bytes(),
            sk.to_bytes()
        );
        assert!(parse_public_key(&encode_secret_key(&sk)).is_err());
        assert!(parse_secret_key(&encode_public_key(&pk)).is_err());
        assert!(parse_public_key("pinhole-ed25519-public 12").is_err());
    }

    #[test]
    fn hex_round_trip() {
        let b: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        assert_eq!(hex_decode_32(&hex(&b)), Some(b));
        assert_eq!(hex_decode_32(&"g".repeat(64)), None);
    }
}
