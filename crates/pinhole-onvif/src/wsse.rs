//! WS-UsernameToken checks (OASIS UsernameToken Profile 1.0), time given
//! by the caller: the PasswordDigest, the freshness of `Created`, and a
//! cache of the nonces seen, so a captured request cannot be replayed.
//!
//! A PasswordText token is checked by the caller (against the Argon2 hash);
//! a digest needs the password itself.

use std::collections::VecDeque;

use base64ct::{Base64, Encoding};
use sha1::{Digest, Sha1};

use crate::soap::{PasswordType, UsernameToken};

/// How far `Created` may be from our clock (either way). onvif-zeep-async
/// (Home Assistant) corrects for the camera's clock first, from
/// GetSystemDateAndTime; five minutes is what cameras commonly allow.
pub const WINDOW_US: u64 = 300_000_000;
/// Nonces remembered (each for twice the window).
pub const NONCES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    WrongUser,
    WrongPassword,
    /// No nonce or no `Created` (a digest without them could be replayed).
    Incomplete,
    /// `Created` is not a time we can read.
    BadTime,
    /// `Created` is outside [`WINDOW_US`] of our clock.
    Stale,
    /// This nonce was used before.
    Replayed,
    /// A PasswordText token: the caller checks it.
    NotDigest,
}

/// Nonces seen within the window, oldest first.
#[derive(Default)]
pub struct NonceCache {
    seen: VecDeque<(Vec<u8>, u64)>,
}

impl NonceCache {
    /// False if `nonce` was seen (and has not expired); remembers it.
    fn insert(&mut self, nonce: &[u8], now_us: u64) -> bool {
        while self
            .seen
            .front()
            .is_some_and(|(_, exp)| *exp <= now_us || self.seen.len() >= NONCES)
        {
            self.seen.pop_front();
        }
        if self.seen.iter().any(|(n, _)| n == nonce) {
            return false;
        }
        self.seen
            .push_back((nonce.to_vec(), now_us.saturating_add(2 * WINDOW_US)));
        true
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// `Base64(SHA-1(nonce ‖ created ‖ password))`.
pub fn digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    Base64::encode_string(&h.finalize())
}

/// Checks a PasswordDigest token for `user`/`password` at wall-clock time
/// `now_us` (µs since the Unix epoch).
pub fn check_digest(
    t: &UsernameToken,
    user: &str,
    password: &str,
    now_us: u64,
    nonces: &mut NonceCache,
) -> Result<(), TokenError> {
    if t.kind != PasswordType::Digest {
        return Err(TokenError::NotDigest);
    }
    if t.username != user {
        return Err(TokenError::WrongUser);
    }
    let (Some(nonce), Some(created)) = (&t.nonce, &t.created) else {
        return Err(TokenError::Incomplete);
    };
    let nonce = Base64::decode_vec(nonce.trim()).map_err(|_| TokenError::Incomplete)?;
    if nonce.is_empty() {
        return Err(TokenError::Incomplete);
    }
    let at = parse_time(created).ok_or(TokenError::BadTime)?;
    if at.abs_diff(now_us) > WINDOW_US {
        return Err(TokenError::Stale);
    }
    if !ct_eq(
        digest(&nonce, created, password).as_bytes(),
        t.password.trim().as_bytes(),
    ) {
        return Err(TokenError::WrongPassword);
    }
    // Only a proven request takes a cache slot.
    if !nonces.insert(&nonce, now_us) {
        return Err(TokenError::Replayed);
    }
    Ok(())
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `xs:dateTime` as WS-Security sends it (`2026-12-07T15:00:00Z`,
/// `…:00.123+00:00`), to µs since the Unix epoch. No zone means UTC.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 12 {
            return None;
        }
        let digits = &frac[..n];
        let six: String = digits.chars().chain("000000".chars()).take(6).collect();
        micros = six.parse().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = rest.get(1..)?;
            if z.len() != 5 || z.as_bytes()[2] != b':' {
                return None;
            }
            let zh: i64 = z.get(0..2)?.parse().ok()?;
            let zm: i64 = z.get(3..5)?.parse().ok()?;
            if zh > 23 || zm > 59 {
                return None;
            }
            sign * (zh * 3600 + zm * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros as u64)
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A UTC date and time, as GetSystemDateAndTime reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    pub fn from_unix_us(us: u64) -> Utc {
        let secs = (us / 1_000_000) as i64;
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400);
        // civil_from_days, the inverse of the above.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (tod / 3600) as u32,
            minute: (tod % 3600 / 60) as u32,
            second: (tod % 60) as u32,
        }
    }

    /// `2026-12-07T15:00:00Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-12-07T15:00:00Z";

    fn t0() -> u64 {
        parse_time(T0).unwrap()
    }

    fn token(nonce: &[u8], created: &str, password: &str) -> UsernameToken {
        UsernameToken {
            username: "viewer".into(),
            password: digest(nonce, created, password),
            kind: PasswordType::Digest,
            nonce: Some(Base64::encode_string(nonce)),
            created: Some(created.into()),
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t0(), 1_796_655_600_000_000);
        assert_eq!(parse_time("2026-12-07T15:00:00.25Z"), Some(t0() + 250_000));
        assert_eq!(parse_time("2026-12-07T16:00:00+01:00"), Some(t0()));
        assert_eq!(parse_time("2026-12-07T15:00:00"), Some(t0()));
        for bad in [
            "",
            "2026-12-07",
            "2026-13-07T15:00:00Z",
            "2026-12-07T25:00:00Z",
            "2026-12-07T15:00:00+1",
            "2026-12-07T15:00:00.Z",
            "+026-12-07T15:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-12-07T15:00:00Zjunk",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        let u = Utc::from_unix_us(t0());
        assert_eq!(u.rfc3339(), T0);
        assert_eq!(
            Utc::from_unix_us(951_782_400_000_000).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(Utc::from_unix_us(0).rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_oasis_example_digest() {
        // The example published for WS-Security digests (e.g. in SoapUI's
        // and WSS4J's discussions): nonce, created, password "userpassword".
        let nonce = Base64::decode_vec("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(
            digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn digest_checks() {
        let mut c = NonceCache::default();
        let now = t0();
        let t = token(b"n1", T0, "secret");
        assert_eq!(check_digest(&t, "viewer", "secret", now, &mut c), Ok(()));
        assert_eq!(
            check_digest(&t, "viewer", "secret", now + 1, &mut c),
            Err(TokenError::Replayed)
        );
        let t = token(b"n2", T0, "wrong");
        assert_eq!(
            check_digest(&t, "viewer", "secret", now, &mut c),
            Err(TokenError::WrongPassword)
        );
        assert_eq!(
            check_digest(&t, "admin", "wrong", now, &mut c),
            Err(TokenError::WrongUser)
        );
        // Created within five minutes either way of our clock.
        let t = token(b"n3", T0, "secret");
        assert_eq!(
            check_digest(&t, "viewer", "secret", now + WINDOW_US + 1, &mut c),
            Err(TokenError::Stale)
        );
        assert_eq!(
            check_digest(&t, "viewer", "secret", now - WINDOW_US, &mut c),
            Ok(())
        );
        let mut t = token(b"n4", T0, "secret");
        t.nonce = None;
        assert_eq!(
            check_digest(&t, "viewer", "secret", now, &mut c),
            Err(TokenError::Incomplete)
        );
        let t = token(b"n5", "yesterday", "secret");
        assert_eq!(
            check_digest(&t, "viewer", "secret", now, &mut c),
            Err(TokenError::BadTime)
        );
        let mut t = token(b"n6", T0, "secret");
        t.kind = PasswordType::Text;
        assert_eq!(
            check_digest(&t, "viewer", "secret", now, &mut c),
            Err(TokenError::NotDigest)
        );
    }

    #[test]
    fn the_nonce_cache_is_bounded_and_forgets() {
        let mut c = NonceCache::default();
        for i in 0..NONCES + 100 {
            assert!(c.insert(&(i as u64).to_be_bytes(), 0));
        }
        assert_eq!(c.len(), NONCES);
        assert!(!c.insert(&((NONCES + 99) as u64).to_be_bytes(), 0));
        // After twice the window every nonce is forgotten.
        assert!(c.insert(&((NONCES + 99) as u64).to_be_bytes(), 2 * WINDOW_US));
        assert_eq!(c.len(), 1);
    }
}
