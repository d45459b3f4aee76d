//! Decode times of the non-video tracks, from the shared capture clock.
//!
//! Audio frames have exact durations (an Opus packet says how many samples
//! it holds), but their capture times jitter. A frame that starts within half
//! a frame of where the previous one ended is placed exactly there, so the
//! audio timeline has no gaps or overlaps from jitter; a bigger difference (a
//! lost frame, a restarted device, a sample clock drifting against the
//! capture clock) follows the capture clock, so audio never strays from the
//! video by more than half a frame. Pure: no clock of its own.

use pinhole_media::track::us_to;

/// One track's timeline state.
#[derive(Clone, Debug)]
pub struct TrackClock {
    timescale: u32,
    /// Decode time and end of the previous frame.
    last: Option<(u64, u64)>,
    /// Duration used when a frame does not say its own.
    default_duration: u32,
}

impl TrackClock {
    /// `default_duration` (ticks) is used for frames of unknown length until
    /// one with a known length arrives.
    pub fn new(timescale: u32, default_duration: u32) -> Self {
        TrackClock {
            timescale,
            last: None,
            default_duration: default_duration.max(1),
        }
    }

    pub fn timescale(&self) -> u32 {
        self.timescale
    }

    /// Decode time and duration (both in the track's timescale) of a frame
    /// captured at `pts_us` lasting `duration` ticks, if known.
    pub fn stamp(&mut self, pts_us: u64, duration: Option<u32>) -> (u64, u32) {
        let ticks = us_to(self.timescale, pts_us);
        let dur = duration.filter(|&d| d > 0).unwrap_or(self.default_duration);
        let dt = match self.last {
            Some((_, end)) if ticks.abs_diff(end) <= u64::from(dur / 2) => end,
            // Never at or before the previous frame's start (players need
            // increasing decode times).
            Some((start, _)) if ticks <= start => start + 1,
            _ => ticks,
        };
        self.last = Some((dt, dt + u64::from(dur)));
        self.default_duration = dur;
        (dt, dur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_absorbed_and_gaps_and_drift_follow_the_capture_clock() {
        let mut c = TrackClock::new(48_000, 960);
        // 20 ms Opus frames with ±4 ms capture jitter: contiguous.
        let jitter = [0i64, 4_000, -3_000, 2_000, -4_000, 1_000];
        let mut prev_end = None;
        for (i, j) in jitter.iter().enumerate() {
            let pts = (1_000_000 + i as i64 * 20_000 + j) as u64;
            let (dt, d) = c.stamp(pts, Some(960));
            assert_eq!(d, 960);
            if let Some(end) = prev_end {
                assert_eq!(dt, end, "frame {i}");
            } else {
                assert_eq!(dt, 48_000);
            }
            prev_end = Some(dt + 960);
        }
        // A lost frame (40 ms later): a gap, on the capture clock.
        let (dt, _) = c.stamp(1_000_000 + 7 * 20_000, Some(960));
        assert_eq!(dt, 48_000 + 7 * 960);
        // Unknown duration: the last one is assumed.
        let (dt2, d2) = c.stamp(1_000_000 + 8 * 20_000, None);
        assert_eq!((dt2, d2), (dt + 960, 960));
        // A clock going backwards still yields increasing decode times.
        let (dt3, _) = c.stamp(0, Some(960));
        assert_eq!(dt3, dt2 + 1);
    }

    #[test]
    fn a_drifting_sample_clock_stays_within_half_a_frame() {
        // The device delivers 0.5 % fewer samples than its nominal rate:
        // packets of 960 samples arrive every 20.1 ms of capture clock.
        let mut c = TrackClock::new(48_000, 960);
        for i in 0..10_000u64 {
            let pts = i * 20_100;
            let (dt, _) = c.stamp(pts, Some(960));
            let capture = us_to(48_000, pts);
            assert!(dt.abs_diff(capture) <= 480, "frame {i}: {dt} vs {capture}");
        }
    }
}
