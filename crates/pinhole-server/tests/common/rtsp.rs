//! An RTSP server for a test's state, shared by rtsp.rs (our own client)
//! and rtsp_clients.rs (ffmpeg, PyAV, GStreamer).
#![allow(dead_code)] // not every test uses every helper

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_server::rtsp::{RtspConfig, RtspListener};
use pinhole_server::AppState;

/// Feeds the 30 fps fixture into `state` and serves RTSP for it on
/// 127.0.0.1:0 until the test ends, once the stream has begun (before,
/// DESCRIBE says 503). `/api/status` names the port.
pub async fn start_rtsp(state: Arc<AppState>, cfg: RtspConfig) -> SocketAddr {
    // Runs until the test's runtime ends.
    drop(crate::common::publish_fixture(state.clone(), 30.0));
    wait_for_stream(&state).await;
    let l = RtspListener::bind("127.0.0.1:0".parse().expect("addr"), true)
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let _ = state.rtsp_port.set(addr.port());
    tokio::spawn(pinhole_server::rtsp::serve(
        vec![l],
        state,
        cfg,
        std::future::pending(),
    ));
    addr
}

/// Waits (up to 5 s) until the hub has a stream.
pub async fn wait_for_stream(state: &AppState) {
    let t = Instant::now();
    while state.hub.stream().is_none() {
        assert!(t.elapsed() < Duration::from_secs(5), "no stream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
