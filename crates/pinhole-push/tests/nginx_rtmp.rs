//! Pushes to a real media server: nginx with Debian's `libnginx-mod-rtmp`
//! (installed by ci/install-deps.sh; the test fails loudly without it),
//! then `ffprobe` reads the stream back from nginx. nginx is killed
//! mid-push and restarted: the push resumes by itself, and a local hub
//! viewer keeps getting frames on time throughout. Then nginx hangs
//! (SIGSTOP, sockets open) under a heavier stream: the target gives up
//! writing after its timeout, the local viewer still does not notice, and
//! the push resumes once nginx runs again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_hub::{Hub, HubConfig};
use pinhole_media::SystemClock;
use pinhole_push::{PushTarget, PushUrl, State};

mod common;
use common::nginx_rtmp::{ffprobe, NginxRtmp};
use common::{feed, wait_for};

#[test]
fn pushes_to_nginx_rtmp_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut nginx = Some(NginxRtmp::start(dir.path(), 0));
    let port = nginx.as_ref().map(|n| n.port).unwrap_or_default();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let clock = Arc::new(SystemClock::new());
    let hub = Hub::with_clock(HubConfig::default(), clock.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let fat = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (hub, clock, stop, fat) = (hub.clone(), clock.clone(), stop.clone(), fat.clone());
        std::thread::spawn(move || feed(hub, clock, stop, fat))
    };
    // A local viewer, timing every frame's arrival.
    let max_gap_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let local = {
        let (hub, max_gap_ms) = (hub.clone(), max_gap_ms.clone());
        rt.spawn(async move {
            let mut v = hub.subscribe();
            let mut last: Option<Instant> = None;
            while v.recv().await.is_some() {
                if let Some(l) = last {
                    max_gap_ms.fetch_max(l.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                last = Some(Instant::now());
            }
        })
    };

    let url = format!("rtmp://127.0.0.1:{port}/live/cam-key-0123456789");
    let target = {
        let _g = rt.enter();
        PushTarget::spawn(hub.clone(), PushUrl::parse(&url).unwrap())
    };
    wait_for("publishing", 15, || {
        let s = target.status();
        s.state == State::Publishing && s.frames > 30
    });
    let st = target.status();
    assert_eq!(st.url, format!("rtmp://127.0.0.1:{port}/live/***789"));
    assert_eq!(ffprobe(&url), "h264,320,240");

    // Kill the server mid-push: the target notices and backs off.
    nginx.take();
    wait_for("the failure", 15, || {
        target.status().state != State::Publishing
    });
    let failed = target.status();
    assert!(failed.last_error.is_some(), "{failed:?}");
    std::thread::sleep(Duration::from_secs(2));
    let nginx = NginxRtmp::start(dir.path(), port);
    wait_for("publishing again", 40, || {
        let s = target.status();
        s.state == State::Publishing && s.reconnects >= 1
    });
    let before = target.status().frames;
    wait_for("frames after the restart", 10, || {
        target.status().frames > before + 30
    });
    assert_eq!(ffprobe(&url), "h264,320,240");

    // nginx hangs with its sockets open: writes stop completing.
    fat.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    nginx.signal("STOP");
    let t = Instant::now();
    wait_for("the write timeout", 40, || {
        target.status().state != State::Publishing
    });
    let hung = target.status();
    eprintln!("hung server given up after {:?}: {hung:?}", t.elapsed());
    assert!(
        hung.last_error
            .as_deref()
            .unwrap_or("")
            .contains("timed out"),
        "{hung:?}"
    );
    nginx.signal("CONT");
    fat.store(false, Ordering::Relaxed);
    let reconnects = hung.reconnects;
    wait_for("publishing after the hang", 60, || {
        let s = target.status();
        s.state == State::Publishing && s.reconnects > reconnects
    });

    let gap = max_gap_ms.load(Ordering::Relaxed);
    // 33 ms at 30 fps; a viewer held up by the push would wait seconds
    // (the write timeout). On a loaded machine the source itself stalls:
    // only what the viewer waited beyond that counts.
    let source_gap = common::FEED_MAX_GAP_MS.load(Ordering::Relaxed);
    assert!(
        gap < source_gap + 400,
        "a local viewer waited {gap} ms for a frame (the source {source_gap} ms)"
    );
    let s = target.status();
    assert!(
        !format!("{s:?}").contains("0123456789"),
        "key leaked: {s:?}"
    );
    eprintln!("status at the end: {s:?}; local viewer max gap {gap} ms, source {source_gap} ms");

    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    hub.close();
    drop(target);
    rt.block_on(local).unwrap();
    drop(nginx);
}

/// RTMPS: nginx-rtmp behind nginx's `stream {}` TLS terminator, its
/// certificate from a test CA that only this target trusts (`tls_ca`).
/// Without that CA the same push is refused: the certificate is checked.
#[test]
fn pushes_rtmps_through_a_tls_terminator() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = NginxRtmp::start_tls(dir.path());
    let (tls_port, ca) = nginx.tls.clone().unwrap();
    let fed = common::Fed::new();
    let url = format!("rtmps://127.0.0.1:{tls_port}/live/tls-key-0123456789");
    let untrusted = fed.push(&url);
    let target = {
        let _g = fed.rt.enter();
        let mut u = PushUrl::parse(&url).unwrap();
        u.tls_ca = Some(ca);
        PushTarget::spawn(fed.hub.clone(), u)
    };
    wait_for("publishing over TLS", 20, || {
        let s = target.status();
        s.state == State::Publishing && s.frames > 30
    });
    assert_eq!(
        ffprobe(&format!(
            "rtmp://127.0.0.1:{}/live/tls-key-0123456789",
            nginx.port
        )),
        "h264,320,240"
    );
    let st = target.status();
    assert_eq!(st.url, format!("rtmps://127.0.0.1:{tls_port}/live/***789"));
    wait_for("the untrusted push's error", 20, || {
        untrusted.status().last_error.is_some()
    });
    let refused = untrusted.status();
    eprintln!("without the CA: {refused:?}");
    assert_ne!(refused.state, State::Publishing);
    assert!(
        refused.last_error.as_deref().unwrap_or("").contains("TLS"),
        "{refused:?}"
    );
    drop((target, untrusted));
}
