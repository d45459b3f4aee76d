//! Where the test pattern's latency goes before any network: for every
//! frame, capture time (the barcode/SEI stamp) → the access unit handed to
//! the hub, split by IDR and P frames, with sizes. The latency harness
//! (bench/latency) sees this as the floor under every player.
//!
//!   cargo run --release -p pinhole-capture --example pattern_timing [-- SECONDS [KEYFRAME_INTERVAL [BITRATE]]]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinhole_capture::test_pattern::{TestPattern, TestPatternConfig};
use pinhole_capture::{FrameSink, Source, SourceState, StopFlag};
use pinhole_media::{AccessUnit, Clock, SystemClock};

struct Timing {
    clock: Arc<SystemClock>,
    /// (keyframe, bytes, capture → publish µs)
    rows: Mutex<Vec<(bool, usize, u64)>>,
}

impl FrameSink for Timing {
    fn publish(&self, au: AccessUnit) {
        let took = self.clock.wall_us().saturating_sub(au.wallclock_us);
        if let Ok(mut rows) = self.rows.lock() {
            rows.push((au.keyframe, au.data.len(), took));
        }
    }
    fn report(&self, _state: SourceState) {}
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>().ok());
    let secs = args.next().flatten().unwrap_or(20);
    let interval = args.next().flatten().unwrap_or(30);
    let bitrate = args.next().flatten().unwrap_or(2_000_000);
    let clock = Arc::new(SystemClock::new());
    let cfg = TestPatternConfig {
        keyframe_interval: interval,
        bitrate,
        ..TestPatternConfig::default()
    };
    let mut src = TestPattern::new(cfg.clone(), clock.clone()).expect("test pattern");
    let sink = Arc::new(Timing {
        clock: clock.clone(),
        rows: Mutex::new(Vec::new()),
    });
    let stop = StopFlag::new();
    let (s2, st2) = (sink.clone(), stop.clone());
    let t = std::thread::spawn(move || src.run(&*s2, &st2));
    std::thread::sleep(Duration::from_secs(u64::from(secs)));
    stop.stop();
    let _ = t.join();
    let rows = sink.rows.lock().map(|r| r.clone()).unwrap_or_default();
    println!(
        "{}x{} @ {} fps, {} kbit/s, IDR every {} frames, {} frames",
        cfg.width,
        cfg.height,
        cfg.fps,
        bitrate / 1000,
        interval,
        rows.len()
    );
    println!("| frames | n | mean kB | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, pick) in [("IDR", Some(true)), ("P", Some(false)), ("all", None)] {
        let sel: Vec<_> = rows
            .iter()
            .filter(|r| pick.is_none_or(|k| r.0 == k))
            .collect();
        let mut us: Vec<u64> = sel.iter().map(|r| r.2).collect();
        let kb = sel.iter().map(|r| r.1).sum::<usize>() as f64 / 1e3 / sel.len().max(1) as f64;
        let max = us.iter().max().copied().unwrap_or(0) as f64 / 1e3;
        println!(
            "| {name} | {} | {kb:.1} | {:.2} | {:.2} | {max:.2} |",
            sel.len(),
            pct(&mut us, 0.5),
            pct(&mut us, 0.95)
        );
    }
}
