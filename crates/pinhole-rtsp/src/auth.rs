//! RTSP authentication (RFC 2326 §D, RFC 2617/7616): the `Authorization`
//! header parsed, Digest responses checked against a stored HA1, and the
//! `WWW-Authenticate` challenges. Which password is right is the caller's
//! business (the access policy); this is only the wire format.

use base64ct::{Base64, Encoding};
use md5::{Digest as _, Md5};

/// The realm in every challenge; part of the stored Digest HA1.
pub const REALM: &str = "pinhole";

/// What a client sent in `Authorization`.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    Basic { user: String, password: String },
    Digest(DigestParams),
}

impl std::fmt::Debug for Authorization {
    // Never print a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authorization::Basic { user, .. } => write!(f, "Basic({user:?})"),
            Authorization::Digest(d) => write!(f, "Digest({:?})", d.username),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestParams {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub algorithm: Option<String>,
}

/// Longest `Authorization` value we look at.
const MAX_AUTH: usize = 2048;

/// Parses an `Authorization` header value; `None` for anything malformed
/// or of another scheme.
pub fn parse_authorization(v: &str) -> Option<Authorization> {
    if v.len() > MAX_AUTH {
        return None;
    }
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        let raw = Base64::decode_vec(rest.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(Authorization::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut d = DigestParams::default();
    for (k, val) in params(rest)? {
        let slot = match k.to_ascii_lowercase().as_str() {
            "username" => &mut d.username,
            "realm" => &mut d.realm,
            "nonce" => &mut d.nonce,
            "uri" => &mut d.uri,
            "response" => &mut d.response,
            "qop" => {
                d.qop = Some(val);
                continue;
            }
            "nc" => {
                d.nc = Some(val);
                continue;
            }
            "cnonce" => {
                d.cnonce = Some(val);
                continue;
            }
            "algorithm" => {
                d.algorithm = Some(val);
                continue;
            }
            _ => continue,
        };
        *slot = val;
    }
    if d.username.is_empty() || d.nonce.is_empty() || d.response.is_empty() {
        return None;
    }
    Some(Authorization::Digest(d))
}

/// `k=v, k="quoted, v"` pairs.
fn params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = &r[end?..];
            value = v;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((key, value));
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        if out.len() > 16 {
            return None;
        }
    }
    Some(out)
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// HA1 = MD5(user:realm:password), what the store keeps for Digest.
pub fn ha1(user: &str, password: &str) -> String {
    md5_hex(&[user, REALM, password])
}

impl DigestParams {
    /// Whether the response proves the password behind `ha1`, for this
    /// request's method and our `nonce`. (The `uri` is the client's own
    /// echo; clients differ on absolute vs relative, so we take theirs.)
    pub fn verify(&self, method: &str, ha1: &str, nonce: &str) -> bool {
        if self.nonce != nonce || self.realm != REALM {
            return false;
        }
        if self
            .algorithm
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
        {
            return false;
        }
        let ha2 = md5_hex(&[method, &self.uri]);
        let want = match self.qop.as_deref() {
            None => md5_hex(&[ha1, nonce, &ha2]),
            Some("auth") => md5_hex(&[
                ha1,
                nonce,
                self.nc.as_deref().unwrap_or(""),
                self.cnonce.as_deref().unwrap_or(""),
                "auth",
                &ha2,
            ]),
            Some(_) => return false,
        };
        ct_eq(
            want.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// The `WWW-Authenticate` values of a 401, Digest first (ffmpeg, GStreamer
/// and VLC prefer it; Basic sends the password in clear text).
pub fn challenges(nonce: &str) -> [String; 2] {
    [
        format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5"),
        format!("Basic realm=\"{REALM}\""),
    ]
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        // "viewer:pa:ss" — the password may contain a colon.
        let a = parse_authorization("Basic dmlld2VyOnBhOnNz").unwrap();
        assert_eq!(
            a,
            Authorization::Basic {
                user: "viewer".into(),
                password: "pa:ss".into()
            }
        );
        assert!(!format!("{a:?}").contains("pa:ss"));
        assert_eq!(parse_authorization("Basic !!!"), None);
        assert_eq!(parse_authorization("Bearer x"), None);
    }

    #[test]
    fn digest_as_ffmpeg_sends_it() {
        let ha1 = ha1("viewer", "secret");
        let nonce = "0123456789abcdef";
        let uri = "rtsp://127.0.0.1:8554/stream";
        let resp = md5_hex(&[&ha1, nonce, &md5_hex(&["DESCRIBE", uri])]);
        let hdr = format!(
            "Digest username=\"viewer\", realm=\"pinhole\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=\"MD5\""
        );
        let Some(Authorization::Digest(d)) = parse_authorization(&hdr) else {
            panic!()
        };
        assert!(d.verify("DESCRIBE", &ha1, nonce));
        assert!(!d.verify("SETUP", &ha1, nonce), "method is covered");
        assert!(!d.verify("DESCRIBE", &ha1, "other"), "stale nonce");
        assert!(!d.verify("DESCRIBE", &super::ha1("viewer", "wrong"), nonce));
    }

    #[test]
    fn digest_with_qop() {
        let ha1 = ha1("viewer", "pw");
        let ha2 = md5_hex(&["PLAY", "/stream"]);
        let resp = md5_hex(&[&ha1, "n1", "00000001", "c1", "auth", &ha2]);
        let hdr = format!(
            "Digest username=viewer,realm=pinhole,nonce=n1,uri=\"/stream\",qop=auth,nc=00000001,cnonce=\"c1\",response={resp}"
        );
        let Some(Authorization::Digest(d)) = parse_authorization(&hdr) else {
            panic!()
        };
        assert!(d.verify("PLAY", &ha1, "n1"));
    }

    #[test]
    fn malformed_digest() {
        for h in [
            "Digest",
            "Digest username=\"x",
            "Digest username=x",
            "Digest =,=,=",
            "Digest a=\"\\",
        ] {
            assert_eq!(parse_authorization(h), None, "{h}");
        }
        let long = format!("Digest username=\"{}\"", "a".repeat(5000));
        assert_eq!(parse_authorization(&long), None);
    }
}
