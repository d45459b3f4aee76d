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

use serde::{Deserialize, Serialize};

use crate::error::{OtaError, Result};

mod keys;
#[cfg(test)]
mod tests;
mod write;

pub use keys::{
    encode_public_key, encode_secret_key, hex, hex_decode_32, key_id, parse_public_key,
    parse_secret_key,
};
pub use write::{compress_image, encode_head, hash_stream, write_bundle};

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
