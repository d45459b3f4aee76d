//! Writing a bundle: the signed head, image hashing and zstd block
//! compression (the `pinhole-bundle` tool's side of the format).

use std::io::{Read, Write};

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::{
    key_id, signed_message, Header, Manifest, HEADER_LEN, MAX_MANIFEST_LEN, MAX_ZSTD_FRAME,
    ZSTD_BLOCK, ZSTD_BLOCK_HEADER,
};
use crate::error::{OtaError, Result};

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
