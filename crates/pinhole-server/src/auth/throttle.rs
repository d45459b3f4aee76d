//! Login throttling: exponential backoff per address and for all
//! addresses, attempts reserved before the password is checked, and the
//! addresses that logged in before exempt from the global part.
//!
//! Pure: every call gets `now` (µs on the `Auth` clock), so tests step
//! through hours of backoff without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::micros;

const MAX_THROTTLED_ADDRS: usize = 10_000;

#[derive(Clone, Copy, Default)]
struct Backoff {
    failures: u32,
    until: Option<u64>,
    last: Option<u64>,
}

/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl Backoff {
    fn wait(&self, now: u64) -> Option<Duration> {
        self.until
            .filter(|u| *u > now)
            .map(|u| Duration::from_micros(u - now))
    }
    /// `free` failures cost nothing; then 1 s, 2 s, 4 s … up to `cap`.
    pub(super) fn fail(&mut self, now: u64, free: u32, cap: Duration) {
        if self
            .last
            .is_some_and(|l| now.saturating_sub(l) > micros(FORGET_AFTER))
        {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        if self.failures > free {
            let exp = (self.failures - free - 1).min(20);
            let d = Duration::from_secs(1u64 << exp).min(cap);
            self.until = Some(now.saturating_add(micros(d)));
        }
    }
}

const PER_IP_FREE: u32 = 2;
const GLOBAL_FREE: u32 = 20;
/// An address that logged in successfully stays exempt from the global
/// backoff this long (in memory: a restart forgets it).
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_KNOWN_ADDRS: usize = 256;

#[derive(Default)]
pub(super) struct Throttle {
    per_ip: HashMap<IpAddr, Backoff>,
    global: Backoff,
    /// Addresses that logged in before. A trickle of failures from rotating
    /// addresses keeps the global backoff shut for everyone else; these
    /// still get in (their own per-address backoff applies as to anyone).
    known: HashMap<IpAddr, u64>,
}

impl Throttle {
    pub(super) fn known(&self, ip: IpAddr, now: u64) -> bool {
        self.known
            .get(&ip)
            .is_some_and(|t| now.saturating_sub(*t) < micros(KNOWN_FOR))
    }
    pub(super) fn check(&self, ip: IpAddr, now: u64) -> Option<Duration> {
        let a = self.per_ip.get(&ip).and_then(|b| b.wait(now));
        let g = if self.known(ip, now) {
            None
        } else {
            self.global.wait(now)
        };
        a.max(g)
    }
    /// Checks and, if allowed, counts the attempt as a failure before the
    /// password is verified, so parallel attempts see it at once;
    /// [`succeed`](Self::succeed) takes it back.
    pub(super) fn reserve(&mut self, ip: IpAddr, now: u64) -> Result<(), Duration> {
        if let Some(w) = self.check(ip, now) {
            return Err(w);
        }
        self.fail(ip, now);
        Ok(())
    }
    pub(super) fn fail(&mut self, ip: IpAddr, now: u64) {
        if self.per_ip.len() >= MAX_THROTTLED_ADDRS {
            self.per_ip.retain(|_, b| {
                b.last
                    .is_some_and(|l| now.saturating_sub(l) < micros(FORGET_AFTER))
            });
            if self.per_ip.len() >= MAX_THROTTLED_ADDRS {
                self.per_ip.clear();
            }
        }
        self.per_ip
            .entry(ip)
            .or_default()
            .fail(now, PER_IP_FREE, Duration::from_secs(300));
        self.global.fail(now, GLOBAL_FREE, Duration::from_secs(60));
    }
    /// A reserved attempt succeeded: forget the address's failures, take
    /// back the global count, remember the address.
    pub(super) fn succeed(&mut self, ip: IpAddr, now: u64) {
        self.per_ip.remove(&ip);
        self.global.failures = self.global.failures.saturating_sub(1);
        if self.global.failures <= GLOBAL_FREE {
            self.global.until = None;
        }
        if self.known.len() >= MAX_KNOWN_ADDRS && !self.known.contains_key(&ip) {
            self.known
                .retain(|_, t| now.saturating_sub(*t) < micros(KNOWN_FOR));
            if self.known.len() >= MAX_KNOWN_ADDRS {
                if let Some(oldest) = self.known.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                    self.known.remove(&oldest);
                }
            }
        }
        self.known.insert(ip, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_per_address_and_globally() {
        let mut t = Throttle::default();
        let now = 5_000_000;
        let ip: IpAddr = "192.168.1.9".parse().unwrap();
        t.fail(ip, now);
        t.fail(ip, now);
        assert_eq!(t.check(ip, now), None, "two free tries");
        t.fail(ip, now);
        assert_eq!(t.check(ip, now), Some(Duration::from_secs(1)));
        t.fail(ip, now);
        assert_eq!(t.check(ip, now), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            t.fail(ip, now);
        }
        assert_eq!(t.check(ip, now), Some(Duration::from_secs(300)), "capped");
        let other: IpAddr = "192.168.1.10".parse().unwrap();
        assert!(
            t.check(other, now).is_some(),
            "global backoff after many failures"
        );
        t.succeed(ip, now);
    }

    #[test]
    fn attempts_are_reserved_and_known_addresses_skip_the_global_backoff() {
        let mut t = Throttle::default();
        let now = 5_000_000;
        let ip: IpAddr = "192.168.1.9".parse().unwrap();
        // Parallel attempts: each sees the ones reserved before it.
        let got: Vec<bool> = (0..10).map(|_| t.reserve(ip, now).is_ok()).collect();
        assert_eq!(got.iter().filter(|ok| **ok).count(), 3, "{got:?}");
        // A success takes its reservation back and remembers the address.
        let admin: IpAddr = "192.168.1.20".parse().unwrap();
        assert!(t.reserve(admin, now).is_ok());
        t.succeed(admin, now);
        assert!(t.known(admin, now));
        for i in 0..40u8 {
            t.fail(IpAddr::from([10, 0, 0, i]), now);
        }
        let stranger: IpAddr = "192.168.1.30".parse().unwrap();
        assert!(t.reserve(stranger, now).is_err(), "global backoff");
        assert!(t.reserve(admin, now).is_ok(), "known address");
        assert!(
            !t.known(admin, now + micros(KNOWN_FOR + Duration::from_secs(1))),
            "forgotten after a while"
        );
    }

    #[test]
    fn backoff_ends_on_time_and_old_failures_are_forgotten() {
        let mut t = Throttle::default();
        let ip: IpAddr = "192.168.1.9".parse().unwrap();
        let at = |secs: u64| 1_000_000 + secs * 1_000_000;
        for _ in 0..3 {
            t.fail(ip, at(0));
        }
        assert_eq!(t.check(ip, at(0)), Some(Duration::from_secs(1)));
        assert_eq!(t.check(ip, at(1)), None, "over after 1 s");
        t.fail(ip, at(1));
        assert_eq!(t.check(ip, at(2)), Some(Duration::from_secs(1)), "2 s now");
        assert_eq!(t.check(ip, at(3)), None);
        // An hour later the count starts again: two free tries.
        t.fail(ip, at(3 + 3601));
        t.fail(ip, at(3 + 3601));
        assert_eq!(t.check(ip, at(3 + 3601)), None);
    }
}
