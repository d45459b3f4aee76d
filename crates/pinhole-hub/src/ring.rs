//! The pure core of the hub: a ring of recent frames and the per-viewer
//! cursor policy. No locks, no clocks, no tasks — every rule is a unit test.
//!
//! The ring keeps (a) everything since the latest keyframe, so a new viewer
//! starts decoding at once, and (b) at least `max_lag` frames, so a viewer may
//! fall that far behind before it is moved on. A viewer further behind than
//! `max_lag` and before the latest keyframe skips ahead: to that keyframe if
//! it is within reach, else to the next one published. Memory is bounded by
//! `max_lag` frames and `max_bytes`, whatever the viewers do.

use std::collections::VecDeque;
use std::sync::Arc;

/// What the ring needs to know about an entry.
pub trait Entry {
    fn is_keyframe(&self) -> bool;
    fn byte_len(&self) -> usize;
}

/// Where a viewer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The next frame to deliver has this sequence number.
    At(u64),
    /// Deliver the first keyframe with a sequence number ≥ this one.
    KeyframeFrom(u64),
}

/// What a viewer should do next.
#[derive(Debug)]
pub enum Step<T> {
    /// Send this frame; continue from `next`.
    Deliver(Arc<T>, Cursor),
    /// The viewer fell behind: `dropped` frames are skipped, continue from `next`.
    Skip { dropped: u64, next: Cursor },
    /// Nothing to send yet; wait for the next publish (cursor possibly moved on).
    Wait(Cursor),
}

#[derive(Debug)]
pub struct Ring<T> {
    frames: VecDeque<Arc<T>>,
    /// Sequence number of `frames[0]`.
    front_seq: u64,
    /// Sequence number the next pushed frame gets.
    next_seq: u64,
    /// Latest keyframe still held in the ring.
    keyframe_seq: Option<u64>,
    bytes: usize,
    max_lag: u64,
    max_bytes: usize,
}

impl<T: Entry> Ring<T> {
    /// `max_lag` ≥ 1 frames a viewer may trail; `max_bytes` caps the memory
    /// held (a very long GOP loses its start: late joiners then wait for the
    /// next keyframe instead of the hub growing without bound).
    pub fn new(max_lag: u64, max_bytes: usize) -> Self {
        Ring {
            frames: VecDeque::new(),
            front_seq: 0,
            next_seq: 0,
            keyframe_seq: None,
            bytes: 0,
            max_lag: max_lag.max(1),
            max_bytes,
        }
    }

    /// Appends a frame and returns its sequence number.
    pub fn push(&mut self, frame: Arc<T>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if frame.is_keyframe() {
            self.keyframe_seq = Some(seq);
        }
        self.bytes += frame.byte_len();
        if self.frames.is_empty() {
            self.front_seq = seq;
        }
        self.frames.push_back(frame);
        self.trim();
        seq
    }

    fn trim(&mut self) {
        // Keep what a lagging viewer may still be owed and what a new viewer
        // needs (the current GOP); drop the rest. Always keep the newest frame.
        let lag_floor = self.next_seq.saturating_sub(self.max_lag);
        let keep_from = match self.keyframe_seq {
            Some(k) => k.min(lag_floor),
            None => lag_floor,
        };
        while self.frames.len() > 1 && (self.front_seq < keep_from || self.bytes > self.max_bytes) {
            if let Some(f) = self.frames.pop_front() {
                self.bytes -= f.byte_len();
            }
            if self.keyframe_seq == Some(self.front_seq) {
                self.keyframe_seq = None;
            }
            self.front_seq += 1;
        }
    }

    /// Where a new viewer starts: on the held keyframe, or the next one.
    pub fn join(&self) -> Cursor {
        match self.keyframe_seq {
            Some(k) => Cursor::At(k),
            None => Cursor::KeyframeFrom(self.next_seq),
        }
    }

    /// The next step for a viewer at `cursor`.
    pub fn step(&self, cursor: Cursor) -> Step<T> {
        match cursor {
            Cursor::At(s) => {
                if s >= self.next_seq {
                    return Step::Wait(cursor);
                }
                let behind = self.next_seq - s;
                // Only a viewer before the latest keyframe is moved on: from
                // inside the current GOP the only place to go is the next
                // keyframe, a freeze rather than less delay (and a new viewer
                // starts on the held keyframe even when the GOP is longer
                // than `max_lag`).
                let in_gop = self.keyframe_seq.is_some_and(|k| s >= k);
                if s < self.front_seq || (behind > self.max_lag && !in_gop) {
                    return self.skip_from(s);
                }
                match self.get(s) {
                    Some(f) => Step::Deliver(f.clone(), Cursor::At(s + 1)),
                    None => self.skip_from(s),
                }
            }
            Cursor::KeyframeFrom(s) => {
                let start = s.max(self.front_seq);
                for seq in start..self.next_seq {
                    if let Some(f) = self.get(seq) {
                        if f.is_keyframe() {
                            return Step::Deliver(f.clone(), Cursor::At(seq + 1));
                        }
                    }
                }
                Step::Wait(Cursor::KeyframeFrom(self.next_seq.max(s)))
            }
        }
    }

    fn skip_from(&self, s: u64) -> Step<T> {
        match self.keyframe_seq {
            // Jump to the latest keyframe when it is ahead and within reach.
            Some(k) if k > s && self.next_seq - k <= self.max_lag => Step::Skip {
                dropped: k - s,
                next: Cursor::At(k),
            },
            _ => Step::Skip {
                dropped: self.next_seq.saturating_sub(s),
                next: Cursor::KeyframeFrom(self.next_seq),
            },
        }
    }

    fn get(&self, seq: u64) -> Option<&Arc<T>> {
        let idx = seq.checked_sub(self.front_seq)?;
        self.frames.get(usize::try_from(idx).ok()?)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    pub fn len(&self) -> usize {
        self.frames.len()
    }
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// The newest frame, if any.
    pub fn latest(&self) -> Option<&Arc<T>> {
        self.frames.back()
    }
    /// The held GOP: the latest keyframe and everything after it.
    pub fn gop(&self) -> Vec<Arc<T>> {
        match self.keyframe_seq {
            Some(k) => (k..self.next_seq)
                .filter_map(|s| self.get(s).cloned())
                .collect(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct F {
        key: bool,
        len: usize,
        id: u64,
    }
    impl Entry for F {
        fn is_keyframe(&self) -> bool {
            self.key
        }
        fn byte_len(&self) -> usize {
            self.len
        }
    }

    /// Pushes `n` frames with a keyframe every `gop`, starting with one.
    fn ring_with(n: u64, gop: u64, max_lag: u64) -> Ring<F> {
        let mut r = Ring::new(max_lag, usize::MAX);
        for i in 0..n {
            r.push(Arc::new(F {
                key: i % gop == 0,
                len: 100,
                id: i,
            }));
        }
        r
    }

    fn deliver(step: Step<F>) -> (u64, Cursor) {
        match step {
            Step::Deliver(f, c) => (f.id, c),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn late_join_starts_on_the_latest_keyframe() {
        let r = ring_with(25, 10, 5);
        // Keyframes at 0, 10, 20: a viewer joining now starts at 20.
        let (id, next) = deliver(r.step(r.join()));
        assert_eq!(id, 20);
        assert_eq!(next, Cursor::At(21));
    }

    #[test]
    fn join_before_any_keyframe_waits_for_one() {
        let mut r: Ring<F> = Ring::new(5, usize::MAX);
        let c = r.join();
        assert!(matches!(r.step(c), Step::Wait(_)));
        r.push(Arc::new(F {
            key: false,
            len: 1,
            id: 0,
        }));
        let Step::Wait(c) = r.step(c) else {
            panic!("a delta frame must not start a viewer")
        };
        r.push(Arc::new(F {
            key: true,
            len: 1,
            id: 1,
        }));
        assert_eq!(deliver(r.step(c)).0, 1);
    }

    #[test]
    fn in_order_delivery_then_wait() {
        let r = ring_with(12, 10, 30);
        let mut c = r.join();
        let mut got = vec![];
        while let Step::Deliver(f, n) = r.step(c) {
            got.push(f.id);
            c = n;
        }
        assert_eq!(got, vec![10, 11]);
        assert!(matches!(r.step(c), Step::Wait(Cursor::At(12))));
    }

    #[test]
    fn slow_viewer_skips_to_the_latest_keyframe_within_reach() {
        let mut r = ring_with(1, 10, 8);
        let c = Cursor::At(1); // has seen frame 0
        for i in 1..12 {
            r.push(Arc::new(F {
                key: i % 10 == 0,
                len: 100,
                id: i,
            }));
        }
        // next_seq = 12, viewer at 1 is 11 behind > 8; keyframe 10 is 2 behind.
        match r.step(c) {
            Step::Skip { dropped, next } => {
                assert_eq!(dropped, 9);
                assert_eq!(next, Cursor::At(10));
                assert_eq!(deliver(r.step(next)).0, 10);
            }
            other => panic!("expected skip, got {other:?}"),
        }
    }

    #[test]
    fn slow_viewer_waits_for_the_next_keyframe_when_none_is_near() {
        let r = ring_with(40, 30, 5);
        // Behind the keyframe at 30, which is 10 behind the head (> max_lag
        // 5): nothing near to jump to, wait for the next keyframe.
        match r.step(Cursor::At(29)) {
            Step::Skip { dropped, next } => {
                assert_eq!(dropped, 11);
                assert_eq!(next, Cursor::KeyframeFrom(40));
            }
            other => panic!("expected skip, got {other:?}"),
        }
    }

    #[test]
    fn gop_longer_than_lag_still_starts_new_viewers_at_once() {
        // 2 s GOP, 1 s lag: a viewer joining 10 frames into the GOP (more
        // than max_lag) decodes from the held keyframe instead of waiting
        // for the next one; so does a viewer trailing inside the GOP.
        let r = ring_with(40, 30, 5);
        let join = r.join();
        assert_eq!(join, Cursor::At(30));
        assert_eq!(deliver(r.step(join)).0, 30);
        assert_eq!(deliver(r.step(Cursor::At(31))).0, 31);
    }

    #[test]
    fn viewer_within_lag_is_never_skipped() {
        let r = ring_with(40, 30, 5);
        assert_eq!(deliver(r.step(Cursor::At(35))).0, 35);
    }

    #[test]
    fn memory_is_bounded_by_lag_and_gop() {
        let mut r = ring_with(1000, 30, 10);
        // Holds from the latest keyframe (990) — 10 frames here.
        assert_eq!(r.len(), 10);
        // A long GOP is held whole for late joiners, up to max_bytes.
        let mut r2: Ring<F> = Ring::new(10, 5_000);
        for i in 0..1000 {
            r2.push(Arc::new(F {
                key: i == 0,
                len: 100,
                id: i,
            }));
            assert!(r2.bytes() <= 5_000);
        }
        // The keyframe was pushed out by the byte cap: only the lag window is
        // kept, and a new viewer waits for the next keyframe.
        assert_eq!(r2.len(), 10);
        assert!(matches!(r2.join(), Cursor::KeyframeFrom(1000)));
        r.push(Arc::new(F {
            key: false,
            len: 100,
            id: 1000,
        }));
        assert!(r.len() <= 11);
    }

    #[test]
    fn gop_returns_keyframe_and_followers() {
        let r = ring_with(25, 10, 3);
        let ids: Vec<u64> = r.gop().iter().map(|f| f.id).collect();
        assert_eq!(ids, (20..25).collect::<Vec<_>>());
    }
}
