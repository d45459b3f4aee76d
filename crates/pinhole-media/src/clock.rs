//! Time is injected: everything that paces, times out or stamps takes a [`Clock`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Monotonic time in microseconds since an arbitrary, fixed origin.
    fn now_us(&self) -> u64;
    /// Wall-clock time in microseconds since the Unix epoch.
    fn wall_us(&self) -> u64;
    /// Block the calling thread until `now_us() >= deadline_us`.
    fn sleep_until_us(&self, deadline_us: u64);
}

/// The real clock: `Instant` for monotonic time, `SystemTime` for wall time.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
    fn wall_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
    fn sleep_until_us(&self, deadline_us: u64) {
        let now = self.now_us();
        if deadline_us > now {
            std::thread::sleep(Duration::from_micros(deadline_us - now));
        }
    }
}
