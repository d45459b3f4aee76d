//! Key ids, the one-line key files (`pinhole-ed25519-public <hex>`) and hex.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{OtaError, Result};

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
