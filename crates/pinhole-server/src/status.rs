//! `/api/status` (JSON) and `/metrics` (Prometheus text) from the same numbers.

use std::fmt::Write as _;
use std::sync::Arc;

use pinhole_source_api::SourceState;
use serde_json::{json, Value};

use crate::state::Output;
use crate::AppState;

pub(crate) fn json(state: &Arc<AppState>) -> Value {
    let s = state.hub.stats();
    let src = state.source_info();
    let (src_state, src_error) = match state.source_state() {
        SourceState::Starting => ("starting", None),
        SourceState::Running => ("running", None),
        SourceState::Failed(reason) => ("failed", Some(reason)),
    };
    let stream = s.stream.as_ref().map(|st| {
        json!({
            "width": st.info.width,
            "height": st.info.height,
            "codec": st.info.codec,
            "fps": src.fps,
            "bitrate": src.bitrate,
            "keyframe_interval": src.keyframe_interval,
            "generation": st.generation,
        })
    });
    let mut viewers = serde_json::Map::new();
    for o in Output::ALL {
        viewers.insert(o.name().into(), state.viewers(o).0.into());
    }
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "source": {
            "kind": src.kind,
            "detail": src.detail,
            "state": src_state,
            "error": src_error,
        },
        "stream": stream,
        "frames": s.frames,
        "keyframes": s.keyframes,
        "bytes": s.bytes,
        "drops": s.viewer_drops,
        "undecodable": s.undecodable,
        "last_frame_age_s": s.last_publish.map(|t| t.elapsed().as_secs_f64()),
        "measured": { "fps": s.measured_fps, "bitrate": s.measured_bitrate },
        "viewers": viewers,
        "hls": crate::hls::status_json(state),
        // The running system (image version, A/B slot); null without OTA.
        "system": state.update.get().map(|u| {
            let st = u.status();
            json!({ "version": st.version, "slot": st.active_slot, "trial": st.trial })
        }),
    })
}

pub(crate) fn prometheus(state: &Arc<AppState>) -> String {
    let s = state.hub.stats();
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP pinhole_{name} {help}");
        let _ = writeln!(out, "# TYPE pinhole_{name} {kind}");
        let _ = writeln!(out, "pinhole_{name} {value}");
    };
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        state.started.elapsed().as_secs_f64(),
    );
    metric(
        "frames_total",
        "counter",
        "Frames published by the source.",
        s.frames as f64,
    );
    metric(
        "keyframes_total",
        "counter",
        "Keyframes published by the source.",
        s.keyframes as f64,
    );
    metric(
        "bytes_total",
        "counter",
        "Encoded bytes published by the source.",
        s.bytes as f64,
    );
    metric(
        "viewer_dropped_frames_total",
        "counter",
        "Frames skipped by viewers that fell behind.",
        s.viewer_drops as f64,
    );
    metric(
        "undecodable_frames_total",
        "counter",
        "Frames discarded before a decodable keyframe.",
        s.undecodable as f64,
    );
    metric(
        "measured_fps",
        "gauge",
        "Frame rate over the last 2 s.",
        s.measured_fps,
    );
    metric(
        "measured_bitrate_bits",
        "gauge",
        "Bitrate over the last 2 s, bit/s.",
        s.measured_bitrate,
    );
    metric(
        "source_up",
        "gauge",
        "1 while the source delivers frames.",
        f64::from(state.source_state() == SourceState::Running),
    );
    metric(
        "gop_cache_bytes",
        "gauge",
        "Bytes held by the hub for late joiners and lagging viewers.",
        s.ring_bytes as f64,
    );
    let _ = writeln!(out, "# HELP pinhole_viewers Current viewers per output.");
    let _ = writeln!(out, "# TYPE pinhole_viewers gauge");
    for o in Output::ALL {
        let _ = writeln!(
            out,
            "pinhole_viewers{{output=\"{}\"}} {}",
            o.name(),
            state.viewers(o).0
        );
    }
    let _ = writeln!(
        out,
        "# HELP pinhole_viewers_total Viewers since start per output."
    );
    let _ = writeln!(out, "# TYPE pinhole_viewers_total counter");
    for o in Output::ALL {
        let _ = writeln!(
            out,
            "pinhole_viewers_total{{output=\"{}\"}} {}",
            o.name(),
            state.viewers(o).1
        );
    }
    let (cum, count, sum_us) = state.send_latency.snapshot();
    let _ = writeln!(
        out,
        "# HELP pinhole_send_latency_seconds Frame published to written on a viewer's WebSocket."
    );
    let _ = writeln!(out, "# TYPE pinhole_send_latency_seconds histogram");
    for (le, c) in crate::state::SEND_BUCKETS_US.iter().zip(cum) {
        let _ = writeln!(
            out,
            "pinhole_send_latency_seconds_bucket{{le=\"{}\"}} {c}",
            *le as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "pinhole_send_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        out,
        "pinhole_send_latency_seconds_sum {}",
        sum_us as f64 / 1e6
    );
    let _ = writeln!(out, "pinhole_send_latency_seconds_count {count}");
    out
}
