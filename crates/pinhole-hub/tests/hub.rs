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

fn opus_track() -> (pinhole_media::OpusConfig, Vec<Bytes>) {
    let path = format!(
        "{}/../pinhole-media/testdata/opus_silence_mono_48k_20ms.opus",
        env!("CARGO_MANIFEST_DIR")
    );
    let ogg = pinhole_media::opus::read_ogg(&std::fs::read(path).expect("fixture")).expect("ogg");
    (ogg.config, ogg.packets)
}

/// Video at 30 fps and 20 ms Opus packets, each audio packet published
/// 50 ms ahead of video captured at the same time (video encodes slower).
fn publish_av(hub: &Hub, audio: pinhole_hub::TrackId, video_frames: usize) {
    let v = fixture("x264_baseline_320x240_30fps_gop30.h264");
    let (_, packets) = opus_track();
    let mut next_audio = 0u64;
    for i in 0..video_frames {
        let vt = i as u64 * 1_000_000 / 30;
        while next_audio * 20_000 <= vt + 50_000 {
            let p = &packets[next_audio as usize % packets.len()];
            hub.publish_on(
                audio,
                AccessUnit {
                    data: p.clone(),
                    pts_us: next_audio * 20_000,
                    wallclock_us: 0,
                    keyframe: true,
                },
            );
            next_audio += 1;
        }
        let (d, k) = &v[i % v.len()];
        hub.publish(AccessUnit {
            data: d.clone(),
            pts_us: vt,
            wallclock_us: 0,
            keyframe: *k,
        });
    }
}

#[tokio::test]
async fn a_second_track_joins_the_stream_and_new_viewers_get_it_from_the_keyframe() {
    let hub = Hub::new(HubConfig {
        max_lag_frames: 100,
        ..HubConfig::default()
    });
    let (cfg, _) = opus_track();
    let audio = hub
        .add_track(pinhole_media::Codec::Opus(cfg))
        .expect("audio track");
    assert_eq!(audio, 2);
    assert_eq!(hub.add_track(pinhole_media::Codec::Jpeg), Some(3));
    publish_av(&hub, audio, 45);

    let s = hub.stream().expect("stream");
    assert_eq!(s.generation, 1);
    assert_eq!(s.codecs(), "avc1.42c00d,opus");
    assert_eq!(
        s.tracks.len(),
        2,
        "the JPEG track is not in the init segment"
    );
    assert!(s.init.len() > s.video_init.len());
    assert_eq!(hub.tracks().len(), 3);

    // A viewer joining now starts at the keyframe of frame 30 (t = 1 s),
    // after the audio captured from then on that was published before it.
    let mut v = hub.subscribe();
    let mut got = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(50), v.recv()).await {
        got.push(f);
    }
    let first_video = got.iter().position(|f| f.is_video()).expect("video");
    assert!(got[first_video].au.keyframe);
    assert_eq!(got[first_video].au.pts_us, 1_000_000);
    assert!(
        first_video > 0,
        "audio published before the keyframe comes first"
    );
    let audio_pts: Vec<u64> = got
        .iter()
        .filter(|f| f.track.id == audio)
        .map(|f| f.au.pts_us)
        .collect();
    assert_eq!(audio_pts[0], 1_000_000, "audio from the keyframe's instant");
    assert!(audio_pts.windows(2).all(|w| w[1] == w[0] + 20_000));
    // Audio decode times are 48 kHz ticks, durations the packet's own.
    let a = got.iter().find(|f| f.track.id == audio).expect("audio");
    assert_eq!((a.decode_time, a.duration), (48_000, 960));
    assert!(a.stream.carries(&a.track));
    let frag = a.fmp4();
    let moof = frag.windows(4).position(|w| w == b"moof").expect("moof");
    let tfhd = frag.windows(4).position(|w| w == b"tfhd").expect("tfhd");
    assert!(moof < tfhd);
    // tfhd: size, type, version+flags, then track_ID.
    assert_eq!(&frag[tfhd + 8..tfhd + 12], &2u32.to_be_bytes());
    // Video frames: only video in `gop()` (snapshots decode it).
    assert!(hub.gop().iter().all(|f| f.is_video()));
    assert_eq!(hub.latest(audio).map(|f| f.track.id), Some(audio));
    assert_eq!(
        hub.latest(pinhole_hub::VIDEO).map(|f| f.au.pts_us),
        Some(1_466_666)
    );
    let stats = hub.stats();
    assert_eq!(stats.frames, 45);
    assert_eq!(stats.tracks[0].id, audio);
    assert!(stats.tracks[0].frames > 70);
}

#[tokio::test]
async fn a_track_added_mid_stream_starts_with_the_next_keyframe() {
    let hub = Hub::new(HubConfig {
        max_lag_frames: 100,
        ..HubConfig::default()
    });
    let v = fixture("x264_baseline_320x240_30fps_gop30.h264");
    for (i, (d, k)) in v.iter().take(10).enumerate() {
        hub.publish(au(d, *k, i as u64));
    }
    let (cfg, packets) = opus_track();
    let audio = hub
        .add_track(pinhole_media::Codec::Opus(cfg))
        .expect("audio");
    let mut viewer = hub.subscribe();
    hub.publish_on(
        audio,
        AccessUnit {
            data: packets[0].clone(),
            pts_us: 400_000,
            wallclock_us: 0,
            keyframe: true,
        },
    );
    // Until the next keyframe the stream (and its init segment) is video
    // only: the audio frame is in the ring, but no fMP4 viewer takes it.
    let s = hub.stream().expect("stream");
    assert_eq!((s.generation, s.tracks.len()), (1, 1));
    for (i, (d, k)) in v.iter().enumerate().skip(10).take(25) {
        hub.publish(au(d, *k, i as u64));
    }
    let s = hub.stream().expect("stream");
    assert_eq!((s.generation, s.tracks.len()), (2, 2));
    assert_eq!(s.video_generation, 1, "the video itself did not change");
    let mut seen = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(50), viewer.recv()).await {
        seen.push((f.track.id, f.stream.generation, f.stream.carries(&f.track)));
    }
    assert!(seen.contains(&(audio, 1, false)));
    assert!(seen.contains(&(1, 2, true)));
    hub.remove_track(audio);
    assert_eq!(hub.tracks().len(), 1);
}

#[tokio::test]
async fn camera_pictures_are_a_track_with_a_latest_frame_even_without_video() {
    let hub = Hub::new(HubConfig::default());
    let id = hub.picture_track();
    assert_eq!(hub.picture_track(), id, "one picture track");
    assert_eq!(
        hub.track_of(pinhole_media::TrackKind::Picture)
            .map(|t| t.id),
        Some(id)
    );
    let mut rx = hub.watch_latest(id).expect("a track");
    assert!(hub.latest(id).is_none());
    let jpeg = Bytes::from_static(b"\xff\xd8 picture \xff\xd9");
    hub.publish_on(
        id,
        AccessUnit {
            data: jpeg.clone(),
            pts_us: 5,
            wallclock_us: 6,
            keyframe: true,
        },
    );
    rx.changed().await.expect("woken");
    let latest = rx.borrow_and_update().clone().expect("a picture");
    assert_eq!(latest.au.data.as_ptr(), jpeg.as_ptr(), "not copied");
    assert_eq!(hub.latest(id).map(|l| l.au.pts_us), Some(5));
    // With video running, pictures still stay out of the ring (and out of
    // every viewer's way).
    let v = fixture("x264_baseline_320x240_30fps_gop30.h264");
    hub.publish(au(&v[0].0, true, 0));
    hub.publish_on(
        id,
        AccessUnit {
            data: jpeg,
            pts_us: 7,
            wallclock_us: 8,
            keyframe: true,
        },
    );
    let s = hub.stats();
    assert_eq!((s.ring_frames, s.tracks[0].frames), (1, 2));
    assert!(hub.stream().expect("stream").tracks.len() == 1);
}
