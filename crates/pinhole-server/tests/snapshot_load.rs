//! 48 parallel `/snapshot.jpg` requests: one GOP decode, not one decoder
//! thread per request (alone in this binary so the thread count is ours).

mod common;

use std::time::Duration;

use common::{fixture_aus, get, TestServer};
use pinhole_hub::HubConfig;
use pinhole_media::AccessUnit;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn decodes(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("pinhole_snapshot_decodes_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no snapshot counter in:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_snapshots_share_one_decode_and_few_threads() {
    let server = TestServer::start(HubConfig::default()).await;
    // One whole GOP, then the camera pauses: every request wants the same frame.
    for (i, (data, keyframe)) in fixture_aus().into_iter().take(30).enumerate() {
        let us = i as u64 * 33_333;
        server.state.hub.publish(AccessUnit {
            data,
            pts_us: us,
            wallclock_us: us,
            keyframe,
        });
    }
    let before = threads();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(threads(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let url = server.url("/snapshot.jpg");
    let requests: Vec<_> = (0..48)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, Duration::from_secs(30)).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for r in requests {
        let r = r.await.expect("request task");
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with(&[0xff, 0xd8]), "a JPEG");
        bodies.push(r.body);
    }
    sampler.abort();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "the same picture");
    let m = get(&server.url("/metrics"), Duration::from_secs(2)).await;
    assert_eq!(decodes(&String::from_utf8_lossy(&m.body)), 1, "one decode");
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak <= before + 4,
        "threads {before} → {peak} for 48 snapshots"
    );
    // A new frame: the next snapshot decodes once more.
    let (data, keyframe) = fixture_aus().swap_remove(30);
    server.state.hub.publish(AccessUnit {
        data,
        pts_us: 30 * 33_333,
        wallclock_us: 30 * 33_333,
        keyframe,
    });
    assert_eq!(get(&url, Duration::from_secs(10)).await.status, 200);
    let m = get(&server.url("/metrics"), Duration::from_secs(2)).await;
    assert_eq!(decodes(&String::from_utf8_lossy(&m.body)), 2);
    server.stop().await;
}
