//! Time is injected: everything that paces, times out or stamps takes a [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
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

/// A simulated clock for tests: time moves only when someone sleeps (or
/// calls [`SimClock::advance`]), so minutes of pacing and backoff run in
/// microseconds. Wall time is `wall_origin_us` + monotonic time.
#[derive(Debug, Default)]
pub struct SimClock {
    now_us: AtomicU64,
    wall_origin_us: u64,
}

impl SimClock {
    pub fn new(start_us: u64, wall_origin_us: u64) -> Self {
        SimClock {
            now_us: AtomicU64::new(start_us),
            wall_origin_us,
        }
    }

    pub fn advance(&self, us: u64) {
        self.now_us.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }
    fn wall_us(&self) -> u64 {
        self.wall_origin_us + self.now_us()
    }
    fn sleep_until_us(&self, deadline_us: u64) {
        self.now_us.fetch_max(deadline_us, Ordering::SeqCst);
        // Let the threads a test waits on run between simulated sleeps.
        std::thread::yield_now();
    }
}
