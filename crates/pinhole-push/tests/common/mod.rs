//! Shared by the push tests: a looped H.264 fixture into a hub, waiting,
//! and the real servers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_hub::{Hub, HubConfig};
use pinhole_media::{AccessUnit, AccessUnitAssembler, Clock, SystemClock};
use pinhole_push::{PushTarget, PushUrl};

pub mod nginx_rtmp;

/// The x264 fixture, looped at 30 fps on the real clock, until `stop`.
/// With `fat` set, each access unit carries 64 KiB of filler NAL units
/// (~16 Mbit/s), so a hung server's socket buffers fill within seconds.
/// The largest gap between two of `feed`'s publishes, in ms: on a loaded
/// machine the source itself stalls, and a viewer's gap is only the push's
/// fault beyond this.
pub static FEED_MAX_GAP_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Keyframe requests the source took from the hub (the file cannot make a
/// keyframe on demand; counting the asks is what a test can check).
pub static KEYFRAME_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn feed(hub: Arc<Hub>, clock: Arc<SystemClock>, stop: Arc<AtomicBool>, fat: Arc<AtomicBool>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pinhole-media/testdata/x264_baseline_320x240_30fps_gop30.h264"
    );
    let bytes = std::fs::read(path).unwrap();
    let mut asm = AccessUnitAssembler::new();
    let mut aus = asm.push(&bytes);
    aus.extend(asm.finish());
    let start = clock.now_us();
    let mut n = 0u64;
    let mut last: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        for au in &aus {
            let due = start + n * 33_333;
            clock.sleep_until_us(due);
            let data = if fat.load(Ordering::Relaxed) {
                let mut d = au.data.to_vec();
                d.extend_from_slice(&[0, 0, 0, 1, 12]);
                d.resize(d.len() + (64 << 10), 0xff);
                d.push(0x80);
                bytes::Bytes::from(d)
            } else {
                au.data.clone()
            };
            if let Some(l) = last {
                let gap = Instant::elapsed(&l).as_millis() as u64;
                FEED_MAX_GAP_MS.fetch_max(gap, Ordering::Relaxed);
            }
            last = Some(Instant::now());
            if hub.take_keyframe_request() {
                KEYFRAME_REQUESTS.fetch_add(1, Ordering::Relaxed);
            }
            hub.publish(AccessUnit {
                data,
                pts_us: due,
                wallclock_us: clock.wall_us(),
                keyframe: au.keyframe,
            });
            n += 1;
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A hub fed with the test stream on its own thread, and a runtime for push
/// targets; the feeder stops and the hub closes when it is dropped.
pub struct Fed {
    pub rt: tokio::runtime::Runtime,
    pub hub: Arc<Hub>,
    stop: Arc<AtomicBool>,
    feeder: Option<std::thread::JoinHandle<()>>,
    sound: Option<std::thread::JoinHandle<()>>,
}

impl Fed {
    pub fn new() -> Fed {
        let clock = Arc::new(SystemClock::new());
        let hub = Hub::with_clock(HubConfig::default(), clock.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = {
            let (hub, stop) = (hub.clone(), stop.clone());
            std::thread::spawn(move || feed(hub, clock, stop, Arc::new(AtomicBool::new(false))))
        };
        Fed {
            rt: tokio::runtime::Runtime::new().unwrap(),
            hub,
            stop,
            feeder: Some(feeder),
            sound: None,
        }
    }

    /// With sound too: Opus silence, 20 ms packets, on an audio track.
    pub fn with_sound() -> Fed {
        let mut fed = Fed::new();
        let ogg = pinhole_media::opus::read_ogg(include_bytes!(
            "../../../pinhole-media/testdata/opus_silence_mono_48k_20ms.opus"
        ))
        .unwrap();
        let hub = fed.hub.clone();
        let track = hub
            .add_track(pinhole_media::Codec::Opus(ogg.config.clone()))
            .unwrap();
        let stop = fed.stop.clone();
        fed.sound = Some(std::thread::spawn(move || {
            let clock = hub.clock().clone();
            let start = clock.now_us();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for p in &ogg.packets {
                    let due = start + n * 20_000;
                    while clock.now_us() < due {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    hub.publish_on(
                        track,
                        AccessUnit {
                            data: p.clone(),
                            pts_us: due,
                            wallclock_us: clock.wall_us(),
                            keyframe: true,
                        },
                    );
                    n += 1;
                }
            }
        }));
        fed
    }

    pub fn push(&self, url: &str) -> PushTarget {
        let _g = self.rt.enter();
        PushTarget::spawn(self.hub.clone(), PushUrl::parse(url).unwrap())
    }
}

impl Drop for Fed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in [self.feeder.take(), self.sound.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        self.hub.close();
    }
}
