use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use pinhole_media::{AccessUnit, Clock, SimClock, SystemClock};

use super::encoder::nal_types;
use super::*;

const WALL_BASE_US: u64 = 1_700_000_000_123_456;

/// Time only moves when the source sleeps (or a sink charges "work" to it);
/// a sleep to or past `limit_us` stops the source instead.
struct FakeClock {
    now: AtomicU64,
    limit_us: u64,
    stop: StopFlag,
}

impl FakeClock {
    fn new(start_us: u64, limit_us: u64, stop: StopFlag) -> Arc<Self> {
        Arc::new(FakeClock {
            now: AtomicU64::new(start_us),
            limit_us,
            stop,
        })
    }
    /// Charge work to the clock; a source that is always behind never
    /// sleeps, so reaching the limit here must stop it too.
    fn advance(&self, us: u64) {
        if self.now.fetch_add(us, Ordering::SeqCst) + us >= self.limit_us {
            self.stop.stop();
        }
    }
}

impl Clock for FakeClock {
    fn now_us(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn wall_us(&self) -> u64 {
        WALL_BASE_US + self.now_us()
    }
    fn sleep_until_us(&self, deadline_us: u64) {
        if deadline_us >= self.limit_us {
            self.stop.stop();
        } else {
            self.now.fetch_max(deadline_us, Ordering::SeqCst);
        }
    }
}

#[derive(Default)]
struct Collect {
    aus: Mutex<Vec<AccessUnit>>,
    states: Mutex<Vec<SourceState>>,
    /// Simulated encode time charged to the fake clock per published frame.
    cost: Option<(Arc<FakeClock>, u64)>,
}

impl FrameSink for Collect {
    fn publish(&self, au: AccessUnit) {
        if let Some((clock, us)) = &self.cost {
            clock.advance(*us);
        }
        self.aus.lock().unwrap().push(au);
    }
    fn report(&self, state: SourceState) {
        self.states.lock().unwrap().push(state);
    }
}

fn cfg(width: u32, height: u32, keyframe_interval: u32) -> TestPatternConfig {
    TestPatternConfig {
        width,
        height,
        keyframe_interval,
        ..TestPatternConfig::default()
    }
}

/// Run a pattern on a fake clock from t=1 ms until `limit_us`.
fn run_fake(
    c: TestPatternConfig,
    limit_us: u64,
    cost_us: u64,
) -> (Vec<AccessUnit>, Vec<SourceState>) {
    let stop = StopFlag::new();
    let clock = FakeClock::new(1_000, limit_us, stop.clone());
    let sink = Collect {
        cost: (cost_us > 0).then(|| (clock.clone(), cost_us)),
        ..Collect::default()
    };
    let mut tp = TestPattern::new(c, clock).expect("valid config");
    tp.run(&sink, &stop).expect("run");
    let aus = sink.aus.into_inner().unwrap();
    let states = sink.states.into_inner().unwrap();
    (aus, states)
}

#[test]
fn frame_count_and_timestamps_follow_the_clock() {
    // 2 s at 30 fps from t = 1 ms: the first frame at once, then slots
    // 1..=60 of the grid from the whole second (0) are due before the limit.
    let (aus, states) = run_fake(cfg(320, 240, 30), 1_000 + 2_000_000, 0);
    assert_eq!(aus.len(), 61);
    for (n, au) in aus.iter().enumerate() {
        let slot_us = n as u64 * 1_000_000 / 30;
        assert_eq!(au.pts_us, slot_us.max(1_000));
        assert_eq!(au.wallclock_us, WALL_BASE_US + au.pts_us);
        assert!(!au.data.is_empty());
        // The capture time is in the stream too, before the picture data.
        assert_eq!(
            pinhole_media::h264::find_timestamp_sei(&au.data),
            Some(au.wallclock_us)
        );
        let types: Vec<u8> = nal_types(&au.data).collect();
        let sei = types.iter().position(|&t| t == 6).expect("SEI");
        assert!(
            types[sei + 1..].iter().all(|&t| t == 1 || t == 5),
            "{types:?}"
        );
    }
    assert_eq!(states, vec![SourceState::Starting, SourceState::Running]);
}

#[test]
fn the_sync_marker_flashes_on_the_whole_second_frames_only() {
    // 30 fps from 0.5 s to 2.5 s: whole seconds at 1.0 and 2.0 s.
    let c = TestPatternConfig {
        fps: 30,
        ..cfg(320, 240, 30)
    };
    let clock = Arc::new(SimClock::new(500_000, 0));
    let mut tp = TestPattern::new(c, clock.clone()).expect("valid");
    let (x, y, side) = marker_rect(320, 240);
    let mut marked = Vec::new();
    for slot in 15..75u64 {
        let t = slot * 1_000_000 / 30;
        let marker = slot % 30 == 0;
        tp.draw(t, WALL_BASE_US + t, slot, marker);
        let centre = tp.pic.y[(y + side / 2) * 320 + x + side / 2];
        if centre > 128 {
            marked.push(t);
        }
    }
    assert_eq!(marked, vec![1_000_000, 2_000_000]);
}

#[test]
fn keyframes_stay_on_the_clock_grid_when_frames_are_skipped() {
    // 50 ms of encoding per frame at 30 fps: every other slot or so is
    // skipped (20 fps). A keyframe every 30 slots (1 s of capture time), not
    // every 30 frames (1.5 s): segment durations must not stretch.
    let (aus, _) = run_fake(cfg(320, 240, 30), 1_000 + 6_000_000, 50_000);
    assert!(aus.len() < 150, "slots were skipped: {} frames", aus.len());
    let keys: Vec<u64> = aus
        .iter()
        .filter(|a| a.keyframe)
        .map(|a| a.pts_us)
        .collect();
    assert!(keys.len() >= 6, "keyframes at {keys:?}");
    for (i, pts) in keys.iter().enumerate().skip(1) {
        // The first frame of second i (within one 50 ms frame of its start).
        let second = i as u64 * 1_000_000;
        assert!(
            (second..second + 60_000).contains(pts),
            "keyframe {i} at {pts} µs: {keys:?}"
        );
    }
    for a in &aus {
        let first_of_second = keys.contains(&a.pts_us);
        assert_eq!(a.keyframe, first_of_second);
    }
}

#[test]
fn keyframes_carry_parameter_sets_at_exact_interval() {
    let (aus, _) = run_fake(cfg(320, 240, 7), 3_000_000 - 1, 0);
    assert_eq!(aus.len(), 90);
    for (n, au) in aus.iter().enumerate() {
        let types: Vec<u8> = nal_types(&au.data).collect();
        if n % 7 == 0 {
            assert!(au.keyframe, "frame {n} should be an IDR");
            assert!(
                types.contains(&7) && types.contains(&8),
                "frame {n}: {types:?}"
            );
            assert!(types.contains(&5), "frame {n}: {types:?}");
            // SPS and PPS come before the IDR slice.
            let first_slice = types.iter().position(|&t| t == 5);
            assert!(types.iter().position(|&t| t == 7) < first_slice);
        } else {
            assert!(!au.keyframe, "frame {n} should not be an IDR");
            assert!(
                !types.contains(&5) && !types.contains(&7),
                "frame {n}: {types:?}"
            );
        }
    }
    // Constrained Baseline: profile_idc 66 with constraint_set0+1.
    let sps_at = aus[0].data.windows(4).position(|w| w == [0, 0, 1, 0x67]);
    let sps = &aus[0].data[sps_at.expect("SPS") + 4..];
    assert_eq!(sps[0], 66);
    assert_eq!(sps[1] & 0xc0, 0xc0);
}

/// Box-filter a luma plane to half size, as a browser scaling the video would.
fn half(y: &[u8], stride: usize, w: usize, h: usize) -> Vec<u8> {
    let (hw, hh) = (w / 2, h / 2);
    let mut out = vec![0u8; hw * hh];
    for r in 0..hh {
        for c in 0..hw {
            let p = |yy: usize, xx: usize| u32::from(y[yy * stride + xx]);
            let s = p(2 * r, 2 * c)
                + p(2 * r, 2 * c + 1)
                + p(2 * r + 1, 2 * c)
                + p(2 * r + 1, 2 * c + 1);
            out[r * hw + c] = ((s + 2) / 4) as u8;
        }
    }
    out
}

/// Decode every AU and check the barcode against the AU's wall clock, at
/// full size and scaled to 50 %.
fn check_barcodes(c: TestPatternConfig, seconds: u64) {
    let (w, h) = (c.width as usize, c.height as usize);
    let (aus, _) = run_fake(c, 1_000 + seconds * 1_000_000, 0);
    let mut dec = Decoder::new().expect("decoder");
    let mut decoded = 0;
    let mut p_frames = 0;
    let mut bytes = 0;
    for (n, au) in aus.iter().enumerate() {
        bytes += au.data.len();
        let Some(yuv) = dec.decode(&au.data).expect("decodes") else {
            continue;
        };
        assert_eq!(yuv.dimensions(), (w, h));
        let stride = yuv.strides().0;
        let want = au.wallclock_us / 1000;
        assert_eq!(
            read_barcode(yuv.y(), stride, w, h),
            Some(want),
            "frame {n} full size"
        );
        let small = half(yuv.y(), stride, w, h);
        assert_eq!(
            read_barcode(&small, w / 2, w / 2, h / 2),
            Some(want),
            "frame {n} at 50%"
        );
        decoded += 1;
        p_frames += usize::from(!au.keyframe);
    }
    assert_eq!(decoded, aus.len());
    assert!(p_frames > decoded / 2);
    let kbps = bytes as u64 * 8 / seconds / 1000;
    println!("{w}x{h}: {} frames, {kbps} kbit/s actual", aus.len());
}

#[test]
fn barcode_survives_encoding_720p() {
    check_barcodes(TestPatternConfig::default(), 2);
}

#[test]
fn barcode_survives_encoding_480p_low_bitrate() {
    let c = TestPatternConfig {
        bitrate: 300_000,
        ..cfg(640, 480, 30)
    };
    check_barcodes(c, 2);
}

#[test]
fn falling_behind_skips_slots_without_bursting() {
    // Every frame "costs" 70 ms at 30 fps (33.3 ms slots).
    let (aus, states) = run_fake(cfg(320, 240, 30), 1_000 + 2_000_000, 70_000);
    assert!((25..=30).contains(&aus.len()), "{} frames", aus.len());
    for pair in aus.windows(2) {
        let gap = pair[1].pts_us - pair[0].pts_us;
        // Never two frames within a slot; never waiting longer than needed.
        assert!(gap >= 1_000_000 / 30, "gap {gap}");
        assert!(gap <= 70_000 + 1_000_000 / 30, "gap {gap}");
    }
    assert_eq!(states.last(), Some(&SourceState::Running));
}

#[test]
fn stops_promptly_on_real_clock() {
    let c = TestPatternConfig {
        fps: 1,
        ..cfg(320, 240, 1)
    };
    let mut tp = TestPattern::new(c, Arc::new(SystemClock::new())).expect("valid");
    let stop = StopFlag::new();
    let sink = Arc::new(Collect::default());
    let (s2, k2) = (stop.clone(), sink.clone());
    let t0 = Instant::now();
    let th = std::thread::spawn(move || tp.run(&*k2, &s2));
    // Let the first frame out, then stop during the ~1 s wait for the next.
    std::thread::sleep(Duration::from_millis(300));
    stop.stop();
    th.join().expect("thread").expect("run ok");
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(sink.aus.lock().unwrap().len(), 1);
}

#[test]
fn already_stopped_produces_nothing() {
    let stop = StopFlag::new();
    stop.stop();
    let clock = FakeClock::new(0, u64::MAX, stop.clone());
    let mut tp = TestPattern::new(cfg(320, 240, 30), clock).expect("valid");
    let sink = Collect::default();
    tp.run(&sink, &stop).expect("run");
    assert!(sink.aus.lock().unwrap().is_empty());
}

#[test]
fn config_validation() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let ok = |c: TestPatternConfig| TestPattern::new(c, clock.clone()).is_ok();
    assert!(ok(TestPatternConfig::default()));
    assert!(ok(cfg(16, 16, 1)));
    assert!(ok(cfg(3840, 2160, 30)));
    assert!(!ok(cfg(15, 16, 1)));
    assert!(!ok(cfg(3842, 2160, 1)));
    assert!(!ok(cfg(640, 2162, 1)));
    assert!(!ok(cfg(641, 480, 1)));
    assert!(!ok(cfg(640, 480, 0)));
    for fps in [0, 121] {
        assert!(!ok(TestPatternConfig {
            fps,
            ..TestPatternConfig::default()
        }));
    }
    assert!(!ok(TestPatternConfig {
        bitrate: 0,
        ..TestPatternConfig::default()
    }));
    let err = TestPattern::new(cfg(641, 480, 1), clock.clone())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("invalid test source configuration: size 641x480 must be even in both directions")
    );
}

#[test]
fn info_describes_the_source() {
    let tp = TestPattern::new(TestPatternConfig::default(), Arc::new(SystemClock::new()))
        .expect("valid");
    let info = tp.info();
    assert_eq!(info.kind, "test");
    assert_eq!(info.fps, Some(30.0));
    assert_eq!(info.bitrate, Some(2_000_000));
    assert_eq!(info.keyframe_interval, Some(30));
}

/// Timing, not correctness: `cargo test --release -p pinhole-capture -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_draw_and_encode() {
    for (w, h) in [(1280u32, 720u32), (640, 480)] {
        let c = cfg(w, h, 30);
        let mut tp = TestPattern::new(c.clone(), Arc::new(SystemClock::new())).expect("valid");
        let mut enc = tp.new_encoder().expect("encoder");
        let n = 300u64;
        let (mut draw, mut encode) = (Duration::ZERO, Duration::ZERO);
        let mut worst = Duration::ZERO;
        let mut bytes = 0usize;
        for i in 0..n {
            let t0 = Instant::now();
            tp.draw(i * 33_333, WALL_BASE_US + i * 33_333, i, i % 30 == 0);
            let t1 = Instant::now();
            let out = enc
                .encode(&tp.pic, i * 33_333, i % 30 == 0)
                .expect("encode");
            let t2 = Instant::now();
            bytes += out.map_or(0, |o| o.data.len());
            draw += t1 - t0;
            encode += t2 - t1;
            worst = worst.max(t2 - t1);
        }
        println!(
            "{w}x{h}: draw {:.2} ms/frame, encode {:.2} ms/frame (worst {:.2} ms), {} kbit/s at 30 fps",
            draw.as_secs_f64() * 1000.0 / n as f64,
            encode.as_secs_f64() * 1000.0 / n as f64,
            worst.as_secs_f64() * 1000.0,
            bytes as u64 * 8 * 30 / n / 1000
        );
    }
}
