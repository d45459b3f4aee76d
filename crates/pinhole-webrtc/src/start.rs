//! How a viewer's video starts, and how keyframe requests reach the source.
//! Pure: times in, decisions out.
//!
//! A new viewer is not sent the GOP so far in one burst when a fresh
//! keyframe can be had: up to two seconds of frames at once overflow small
//! socket buffers and Wi-Fi queues, and the resends they provoke arrive
//! late — aiortc, for one, takes a resend more than 100 packets behind as a
//! reset and then waits for 512 more packets (3–6 s frozen at 720p). So a
//! viewer asks the source for a keyframe when it connects and starts on it;
//! a source that cannot force one (no keyframe within [`JOIN_WAIT_US`]) gets
//! the old behaviour, the GOP so far, so the picture never waits a GOP.

/// How long a new viewer waits for the keyframe it asked for before it is
/// sent the GOP so far instead (the test pattern and the encoders answer
/// within a frame or two).
pub const JOIN_WAIT_US: u64 = 300_000;

/// A GOP whose keyframe is this recent is sent at once: it is short.
pub const FRESH_US: u64 = 100_000;

/// At most one keyframe asked of the source per this long (an IDR costs
/// every viewer bandwidth); a request in between is kept and asked for
/// when the interval is over, never dropped.
pub const KEYFRAME_INTERVAL_US: u64 = 500_000;

/// Rate limit with memory for keyframe requests (one per endpoint: every
/// viewer gets the same IDR).
#[derive(Debug, Default)]
pub struct KeyframeGate {
    last_us: Option<u64>,
    pending: bool,
}

impl KeyframeGate {
    /// A viewer wants a keyframe: true if the source is to be asked now.
    pub fn request(&mut self, now_us: u64) -> bool {
        self.pending = true;
        self.poll(now_us)
    }

    /// True if a kept request is to be asked of the source now.
    pub fn poll(&mut self, now_us: u64) -> bool {
        if !self.pending {
            return false;
        }
        let open = self
            .last_us
            .is_none_or(|l| now_us.saturating_sub(l) >= KEYFRAME_INTERVAL_US);
        if open {
            self.pending = false;
            self.last_us = Some(now_us);
        }
        open
    }
}

/// What to do with a frame while a viewer joins.
#[derive(Debug, PartialEq, Eq)]
pub enum Join<F> {
    /// Send these frames now (in order).
    Send(Vec<F>),
    /// Keep it: a fresher keyframe may come.
    Hold,
}

/// The join of one viewer: frames from the hub (the GOP so far, then live
/// ones) go through here until the viewer has started.
#[derive(Debug)]
pub struct Joiner<F> {
    since_us: u64,
    held: Vec<F>,
    started: bool,
}

impl<F> Joiner<F> {
    /// The viewer connected (and asked for a keyframe) at `now_us`.
    pub fn new(now_us: u64) -> Self {
        Joiner {
            since_us: now_us,
            held: Vec::new(),
            started: false,
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// When [`Joiner::timeout`] is due (µs), while still joining.
    pub fn deadline_us(&self) -> Option<u64> {
        (!self.started).then_some(self.since_us + JOIN_WAIT_US)
    }

    /// A video frame published at `published_us`.
    pub fn frame(&mut self, f: F, keyframe: bool, published_us: u64, now_us: u64) -> Join<F> {
        if self.started {
            return Join::Send(vec![f]);
        }
        if keyframe && published_us + FRESH_US >= self.since_us {
            // A keyframe made since we asked, or so recent that the GOP
            // behind it is short: start here, drop what was held.
            self.started = true;
            self.held.clear();
            return Join::Send(vec![f]);
        }
        if self.held.is_empty() && !keyframe {
            // Nothing decodable to hold on to yet.
            return Join::Hold;
        }
        self.held.push(f);
        self.timeout(now_us)
    }

    /// No fresh keyframe in time: the GOP so far, at once.
    pub fn timeout(&mut self, now_us: u64) -> Join<F> {
        if self.started || now_us < self.since_us + JOIN_WAIT_US || self.held.is_empty() {
            return Join::Hold;
        }
        self.started = true;
        Join::Send(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_inside_the_interval_is_kept_not_dropped() {
        let mut g = KeyframeGate::default();
        assert!(g.request(1_000));
        assert!(!g.request(110_000)); // 109 ms later: kept
        assert!(!g.poll(400_000));
        assert!(g.poll(501_000)); // asked once the interval is over
        assert!(!g.poll(2_000_000)); // and only once
        assert!(g.request(2_000_000));
    }

    #[test]
    fn a_fresh_keyframe_drops_the_held_gop() {
        // Connected at 10 s; the GOP started 1.5 s before.
        let mut j = Joiner::new(10_000_000);
        assert_eq!(j.frame(1, true, 8_500_000, 10_000_000), Join::Hold);
        assert_eq!(j.frame(2, false, 8_533_000, 10_000_000), Join::Hold);
        // The keyframe we asked for.
        assert_eq!(
            j.frame(3, true, 10_040_000, 10_040_000),
            Join::Send(vec![3])
        );
        assert!(j.started());
        assert_eq!(
            j.frame(4, false, 10_073_000, 10_073_000),
            Join::Send(vec![4])
        );
        assert_eq!(j.deadline_us(), None);
    }

    #[test]
    fn a_source_that_cannot_force_one_sends_the_gop_after_the_wait() {
        let mut j = Joiner::new(10_000_000);
        assert_eq!(j.frame(1, true, 8_500_000, 10_000_000), Join::Hold);
        assert_eq!(j.frame(2, false, 10_033_000, 10_033_000), Join::Hold);
        assert_eq!(j.deadline_us(), Some(10_000_000 + JOIN_WAIT_US));
        assert_eq!(j.timeout(10_100_000), Join::Hold);
        assert_eq!(j.timeout(10_300_000), Join::Send(vec![1, 2]));
        assert_eq!(
            j.frame(3, false, 10_300_000, 10_300_000),
            Join::Send(vec![3])
        );
    }

    #[test]
    fn a_recent_keyframe_starts_at_once_and_frames_before_any_keyframe_wait() {
        let mut j = Joiner::new(10_000_000);
        assert_eq!(j.frame(1, true, 9_950_000, 10_000_000), Join::Send(vec![1]));
        let mut j = Joiner::new(10_000_000);
        // A delta frame with no keyframe before it (the ring lost it): not held.
        assert_eq!(j.frame(1, false, 9_000_000, 10_000_000), Join::Hold);
        assert_eq!(j.timeout(11_000_000), Join::Hold);
        assert!(!j.started());
        // The wait is over: the first keyframe is sent as it comes.
        assert_eq!(j.frame(2, true, 9_100_000, 11_000_000), Join::Send(vec![2]));
    }
}
