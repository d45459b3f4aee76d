//! The pure core of the hub: a ring of recent frames of every track, in
//! publish order, and the per-viewer cursor policy. No locks, no clocks, no
//! tasks — every rule is a unit test.
//!
//! The ring keeps (a) everything since the latest keyframe, so a new viewer
//! starts decoding at once, and (b) at least `max_lag` frames, so a viewer may
//! fall that far behind before it is moved on. A viewer further behind than
//! `max_lag` and before the latest keyframe skips ahead: to that keyframe if
//! it is within reach, else to the next one published. Memory is bounded by
//! `max_lag` frames and `max_bytes`, whatever the viewers do.
//!
//! Other tracks (audio, camera pictures) ride in the same ring between the
//! video frames: keyframes and lag are counted in video frames only
//! ([`Entry::counts_for_lag`]), so `max_lag` means the same with or without
//! audio, and the bytes of every track count towards `max_bytes`. A viewer
//! starting (or resuming after a skip) at a keyframe also gets the other
//! tracks' frames captured from the keyframe's instant on that were published
//! just before it ([`Entry::joins`]: audio encodes faster than video).

use std::collections::VecDeque;
use std::sync::Arc;

/// What the ring needs to know about an entry.
pub trait Entry {
    /// A point where a viewer can start (a video keyframe).
    fn is_keyframe(&self) -> bool;
    fn byte_len(&self) -> usize;
    /// Whether the entry counts towards a viewer's lag (video frames do;
    /// other tracks' frames between them do not).
    fn counts_for_lag(&self) -> bool {
        true
    }
    /// Whether a viewer starting at keyframe `key` also receives this entry,
    /// published before it.
    fn joins(&self, _key: &Self) -> bool {
        false
    }
}

/// Where a viewer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The next frame to deliver has this sequence number.
    At(u64),
    /// Deliver the first keyframe with a sequence number ≥ this one.
    KeyframeFrom(u64),
    /// Starting at keyframe `key`: first deliver the entries from `next` on
    /// that [`Entry::joins`] it, then the keyframe.
    Joining { next: u64, key: u64 },
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
struct Slot<T> {
    /// Lag-counted entries pushed before this one.
    lag_index: u64,
    entry: Arc<T>,
}

#[derive(Debug)]
pub struct Ring<T> {
    frames: VecDeque<Slot<T>>,
    /// Sequence number of `frames[0]`.
    front_seq: u64,
    /// Sequence number the next pushed frame gets.
    next_seq: u64,
    /// Lag-counted entries pushed so far.
    lag_count: u64,
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
            lag_count: 0,
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
        let lag_index = self.lag_count;
        self.lag_count += u64::from(frame.counts_for_lag());
        self.frames.push_back(Slot {
            lag_index,
            entry: frame,
        });
        self.trim();
        seq
    }

    /// Lag-counted entries from `seq` (inclusive) to the head.
    fn behind(&self, seq: u64) -> u64 {
        match self.slot(seq) {
            Some(s) => self.lag_count - s.lag_index,
            None => self.lag_count,
        }
    }

    fn trim(&mut self) {
        // Keep what a lagging viewer may still be owed and what a new viewer
        // needs (the current GOP and the other tracks' frames that join it);
        // drop the rest. Always keep the newest frame.
        let key = self.keyframe_seq.and_then(|k| self.get(k).cloned());
        while self.frames.len() > 1 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let lagging = self.lag_count - front.lag_index > self.max_lag;
            let needed = match (&key, self.keyframe_seq) {
                (Some(key), Some(k)) => self.front_seq >= k || front.entry.joins(key),
                _ => false,
            };
            if !(self.bytes > self.max_bytes || (lagging && !needed)) {
                break;
            }
            if let Some(f) = self.frames.pop_front() {
                self.bytes -= f.entry.byte_len();
            }
            if self.keyframe_seq == Some(self.front_seq) {
                self.keyframe_seq = None;
            }
            self.front_seq += 1;
        }
    }

    /// Where a new viewer starts: on the held keyframe (after the other
    /// tracks' frames that join it), or the next one.
    pub fn join(&self) -> Cursor {
        match self.keyframe_seq {
            Some(k) => self.start_at(self.front_seq, k),
            None => Cursor::KeyframeFrom(self.next_seq),
        }
    }

    /// A cursor starting at keyframe `k`, with the entries from `from` on
    /// that join it (a scan of the few entries before a keyframe; only when
    /// a viewer starts or skips).
    fn start_at(&self, from: u64, k: u64) -> Cursor {
        let Some(key) = self.get(k) else {
            return Cursor::At(k);
        };
        let first =
            (from.max(self.front_seq)..k).find(|&seq| self.get(seq).is_some_and(|f| f.joins(key)));
        match first {
            Some(next) => Cursor::Joining { next, key: k },
            None => Cursor::At(k),
        }
    }

    /// The next step for a viewer at `cursor`.
    pub fn step(&self, cursor: Cursor) -> Step<T> {
        match cursor {
            Cursor::At(s) => {
                if s >= self.next_seq {
                    return Step::Wait(cursor);
                }
                // Only a viewer before the latest keyframe is moved on: from
                // inside the current GOP the only place to go is the next
                // keyframe, a freeze rather than less delay (and a new viewer
                // starts on the held keyframe even when the GOP is longer
                // than `max_lag`).
                let in_gop = self.keyframe_seq.is_some_and(|k| s >= k);
                if s < self.front_seq || (self.behind(s) > self.max_lag && !in_gop) {
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
                            return match self.start_at(start, seq) {
                                Cursor::At(_) => Step::Deliver(f.clone(), Cursor::At(seq + 1)),
                                joining => self.step(joining),
                            };
                        }
                    }
                }
                Step::Wait(Cursor::KeyframeFrom(self.next_seq.max(s)))
            }
            Cursor::Joining { next, key } => {
                let Some(k) = self.get(key) else {
                    // The keyframe was pushed out (byte cap) before we got there.
                    return self.skip_from(next);
                };
                for seq in next.max(self.front_seq)..key {
                    if let Some(f) = self.get(seq) {
                        if f.joins(k) {
                            return Step::Deliver(
                                f.clone(),
                                Cursor::Joining { next: seq + 1, key },
                            );
                        }
                    }
                }
                Step::Deliver(k.clone(), Cursor::At(key + 1))
            }
        }
    }

    fn skip_from(&self, s: u64) -> Step<T> {
        match self.keyframe_seq {
            // Jump to the latest keyframe when it is ahead and within reach,
            // with the frames that join it, like a new viewer.
            Some(k) if k > s && self.behind(k) <= self.max_lag => {
                let from = s.max(self.front_seq);
                let joining = (from..k)
                    .filter(|&seq| {
                        let (Some(f), Some(key)) = (self.get(seq), self.get(k)) else {
                            return false;
                        };
                        f.joins(key)
                    })
                    .count() as u64;
                Step::Skip {
                    dropped: k - s - joining,
                    next: self.start_at(from, k),
                }
            }
            _ => Step::Skip {
                dropped: self.next_seq.saturating_sub(s),
                next: Cursor::KeyframeFrom(self.next_seq),
            },
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot<T>> {
        let idx = seq.checked_sub(self.front_seq)?;
        self.frames.get(usize::try_from(idx).ok()?)
    }

    fn get(&self, seq: u64) -> Option<&Arc<T>> {
        self.slot(seq).map(|s| &s.entry)
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
    /// Whether a keyframe is held (a viewer can start at once).
    pub fn has_keyframe(&self) -> bool {
        self.keyframe_seq.is_some()
    }
    /// The newest frame, if any.
    pub fn latest(&self) -> Option<&Arc<T>> {
        self.frames.back().map(|s| &s.entry)
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
        /// 0: video; else another track (audio).
        track: u8,
        /// Capture time.
        t: u64,
    }
    impl Entry for F {
        fn is_keyframe(&self) -> bool {
            self.key
        }
        fn byte_len(&self) -> usize {
            self.len
        }
        fn counts_for_lag(&self) -> bool {
            self.track == 0
        }
        fn joins(&self, key: &Self) -> bool {
            self.track != 0 && self.t >= key.t
        }
    }

    fn video(id: u64, t: u64, key: bool) -> Arc<F> {
        Arc::new(F {
            key,
            len: 100,
            id,
            track: 0,
            t,
        })
    }

    fn audio(id: u64, t: u64) -> Arc<F> {
        Arc::new(F {
            key: false,
            len: 10,
            id,
            track: 1,
            t,
        })
    }

    /// Video at 30 fps (frame i at t = 100·i) with a keyframe every `gop`,
    /// and audio every 60 (20 ms), each published before the video frame
    /// captured `audio_early` or less before it (video encoding takes longer).
    fn av_ring(video_frames: u64, gop: u64, max_lag: u64, audio_early: u64) -> Ring<F> {
        let mut r = Ring::new(max_lag, usize::MAX);
        let mut id = 0;
        let mut next_audio = 0;
        for i in 0..video_frames {
            let vt = i * 100;
            while next_audio <= vt + audio_early {
                r.push(audio(id, next_audio));
                id += 1;
                next_audio += 60;
            }
            r.push(video(id, vt, i % gop == 0));
            id += 1;
        }
        r
    }

    /// Everything a viewer at `c` gets until it would wait: (track, t), and
    /// the frames it skipped.
    fn drain(r: &Ring<F>, mut c: Cursor) -> (Vec<(u8, u64)>, u64) {
        let mut got = vec![];
        let mut dropped = 0;
        loop {
            match r.step(c) {
                Step::Deliver(f, n) => {
                    got.push((f.track, f.t));
                    c = n;
                }
                Step::Skip { dropped: d, next } => {
                    dropped += d;
                    c = next;
                }
                Step::Wait(_) => return (got, dropped),
            }
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
                track: 0,
                t: 0,
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
            track: 0,
            t: 0,
        }));
        let Step::Wait(c) = r.step(c) else {
            panic!("a delta frame must not start a viewer")
        };
        r.push(Arc::new(F {
            key: true,
            len: 1,
            id: 1,
            track: 0,
            t: 0,
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
                track: 0,
                t: 0,
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
                track: 0,
                t: 0,
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
            track: 0,
            t: 0,
        }));
        assert!(r.len() <= 11);
    }

    #[test]
    fn gop_returns_keyframe_and_followers() {
        let r = ring_with(25, 10, 3);
        let ids: Vec<u64> = r.gop().iter().map(|f| f.id).collect();
        assert_eq!(ids, (20..25).collect::<Vec<_>>());
    }

    #[test]
    fn a_new_viewer_gets_the_audio_captured_from_the_keyframe_on() {
        // Keyframes at video frames 0 and 30 (t = 3000); audio published
        // 150 earlier than video of the same instant.
        let r = av_ring(40, 30, 100, 150);
        let (got, dropped) = drain(&r, r.join());
        assert_eq!(dropped, 0);
        // First the audio published before the keyframe but captured at or
        // after it, then the keyframe, then everything in publish order.
        let first_video = got.iter().position(|&(tr, _)| tr == 0).unwrap();
        assert_eq!(got[first_video], (0, 3000));
        let before: Vec<u64> = got[..first_video].iter().map(|&(_, t)| t).collect();
        assert_eq!(before, [3000, 3060, 3120]);
        // No audio before the keyframe's instant, none twice, none missing.
        let audio: Vec<u64> = got.iter().filter(|g| g.0 == 1).map(|g| g.1).collect();
        let want: Vec<u64> = (50..=67).map(|i| i * 60).collect();
        assert_eq!(audio, want);
        let video: Vec<u64> = got.iter().filter(|g| g.0 == 0).map(|g| g.1).collect();
        assert_eq!(video, (30..40).map(|i| i * 100).collect::<Vec<_>>());
    }

    #[test]
    fn lag_and_memory_count_video_frames_whatever_audio_rides_along() {
        // 1 s window at 30 fps, 50 audio frames a second between them.
        let r = av_ring(1000, 60, 30, 0);
        // The ring holds from the keyframe at 960 (or the lag window) on:
        // about 40 video frames and their audio, not 30 entries.
        let held_video = r.gop().iter().filter(|f| f.track == 0).count();
        assert_eq!(held_video, 40);
        // A viewer 34 video frames behind (with twice as many entries after
        // it) is not moved; at 36 behind, before the keyframe, it is.
        let mut r = av_ring(90, 60, 35, 0);
        let seq_of = |r: &Ring<F>, t: u64| {
            (0..r.next_seq())
                .find(|&s| r.get(s).is_some_and(|f| f.track == 0 && f.t == t))
                .unwrap()
        };
        let s56 = seq_of(&r, 5_600);
        assert!(r.next_seq() - s56 > 60);
        assert!(matches!(r.step(Cursor::At(s56)), Step::Deliver(..)));
        let s59 = seq_of(&r, 5_900);
        for i in 90..95 {
            r.push(video(10_000 + i, i * 100, false));
        }
        match r.step(Cursor::At(s59)) {
            Step::Skip { next, .. } => {
                let (got, _) = drain(&r, next);
                assert_eq!(got.iter().find(|g| g.0 == 0), Some(&(0, 6000)));
                assert!(got.iter().all(|g| g.1 >= 6000), "{got:?}");
                assert_eq!(got[0], (1, 6000), "the keyframe's audio first");
            }
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn a_viewer_waiting_for_a_keyframe_gets_its_early_audio() {
        let mut r: Ring<F> = Ring::new(5, usize::MAX);
        let c = r.join();
        r.push(video(0, 0, false));
        r.push(audio(1, 90));
        r.push(audio(2, 110));
        r.push(video(3, 100, true));
        let (got, _) = drain(&r, c);
        assert_eq!(got, [(1, 110), (0, 100)]);
    }

    #[test]
    fn a_joining_viewer_whose_keyframe_was_pushed_out_skips_on() {
        // Byte cap of 5 video frames: a long GOP loses its keyframe.
        let mut r: Ring<F> = Ring::new(100, 500);
        r.push(audio(0, 100));
        r.push(video(1, 100, true));
        let c = r.join();
        assert!(matches!(c, Cursor::Joining { next: 0, key: 1 }));
        for i in 2..12 {
            r.push(video(i, i * 100, false));
        }
        match r.step(c) {
            Step::Skip { next, .. } => {
                assert!(matches!(next, Cursor::KeyframeFrom(12)), "{next:?}")
            }
            other => panic!("expected a skip, got {other:?}"),
        }
    }
}
