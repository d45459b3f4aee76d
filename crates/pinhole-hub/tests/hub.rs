//! The hub with real H.264 access units and real tokio tasks.

use std::time::Duration;

use bytes::Bytes;
use pinhole_hub::{Hub, HubConfig};
use pinhole_media::annexb::AccessUnitAssembler;
use pinhole_media::{fmp4, AccessUnit};

fn fixture(name: &str) -> Vec<(Bytes, bool)> {
    let path = format!(
        "{}/../pinhole-media/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(path).expect("fixture");
    let mut asm = AccessUnitAssembler::new();
    let mut v: Vec<_> = asm
        .push(&data)
        .into_iter()
        .map(|a| (a.data, a.keyframe))
        .collect();
    v.extend(asm.finish().map(|a| (a.data, a.keyframe)));
    v
}

fn au(data: &Bytes, keyframe: bool, i: u64) -> AccessUnit {
    AccessUnit {
        data: data.clone(),
        pts_us: i * 33_333,
        wallclock_us: 1_700_000_000_000_000 + i * 33_333,
        keyframe,
    }
}

#[tokio::test]
async fn a_waiting_viewer_wakes_on_publish_and_ends_on_close() {
    let hub = Hub::new(HubConfig::default());
    let aus = fixture("x264_baseline_320x240_30fps_gop30.h264");
    let mut v = hub.subscribe();
    let h2 = hub.clone();
    let first = aus[0].clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h2.publish(au(&first.0, true, 0));
    });
    let f = tokio::time::timeout(Duration::from_secs(2), v.recv())
        .await
        .expect("woken by publish")
        .expect("a frame");
    assert_eq!(f.au.data, aus[0].0);
    assert_eq!(f.stream.info.width, 320);
    // The frame is shared, not copied: same allocation as published.
    assert_eq!(f.au.data.as_ptr(), aus[0].0.as_ptr());

    hub.close();
    let end = tokio::time::timeout(Duration::from_secs(2), v.recv()).await;
    assert!(matches!(end, Ok(None)), "recv ends after close");
}

#[tokio::test]
async fn delta_frames_before_the_first_keyframe_are_dropped() {
    let hub = Hub::new(HubConfig::default());
    let aus = fixture("x264_baseline_320x240_30fps_gop30.h264");
    for (i, (d, k)) in aus.iter().enumerate().skip(1).take(10) {
        hub.publish(au(d, *k, i as u64));
    }
    let s = hub.stats();
    assert_eq!(s.frames, 0);
    assert_eq!(s.undecodable, 10);
    assert!(s.stream.is_none());
}

#[tokio::test]
async fn new_parameter_sets_start_a_new_generation_with_its_own_init_segment() {
    let hub = Hub::new(HubConfig::default());
    let a = fixture("x264_baseline_320x240_30fps_gop30.h264");
    let b = fixture("x264_high_bframes_slices_aud_320x180_25fps_gop25.h264");
    let mut v = hub.subscribe();
    for (i, (d, k)) in a.iter().take(5).chain(b.iter().take(5)).enumerate() {
        hub.publish(au(d, *k, i as u64));
    }
    let mut gens = Vec::new();
    for _ in 0..10 {
        let f = v.recv().await.expect("frame");
        gens.push((f.stream.generation, f.stream.info.height));
    }
    assert_eq!(gens[0], (1, 240));
    assert_eq!(gens[9], (2, 180));
    let s = hub.stream().expect("stream");
    assert_eq!(&s.init[4..8], b"ftyp");
    assert!(
        s.info.codec.starts_with("avc1.64"),
        "high profile: {}",
        s.info.codec
    );
}

#[tokio::test]
async fn decode_times_follow_the_capture_clock_and_durations_the_measured_rate() {
    let hub = Hub::new(HubConfig {
        nominal_fps: 30.0,
        // All 60 frames are published before the viewer reads: let it trail.
        max_lag_frames: 100,
        ..HubConfig::default()
    });
    let aus = fixture("x264_baseline_320x240_30fps_gop30.h264");
    let mut v = hub.subscribe();
    // A 25 fps source announced as 30: durations converge to 40 ms.
    for (i, (d, k)) in aus.iter().enumerate().take(60) {
        hub.publish(AccessUnit {
            data: d.clone(),
            pts_us: 1_000_000 + i as u64 * 40_000,
            wallclock_us: 0,
            keyframe: *k,
        });
    }
    let mut last = None;
    let mut frame = None;
    for _ in 0..60 {
        let f = v.recv().await.expect("frame");
        if let Some(prev) = last {
            assert_eq!(f.decode_time - prev, fmp4::us_to_ticks(40_000), "40 ms");
        }
        last = Some(f.decode_time);
        frame = Some(f);
    }
    let f = frame.expect("frame");
    assert!(
        (fmp4::us_to_ticks(38_800)..=fmp4::us_to_ticks(40_000)).contains(&u64::from(f.duration)),
        "duration {}",
        f.duration
    );
    assert!(f.fmp4().windows(4).any(|w| w == b"moof"));
}
