//! `/api/status` (JSON) and `/metrics` (Prometheus text) from the same numbers.

use std::fmt::Write as _;
use std::sync::Arc;

use pinhole_media::track::{Codec, TrackKind};
use pinhole_source_api::SourceState;
use serde_json::{json, Value};

use crate::state::Output;
use crate::AppState;

/// `admin`: the caller has an admin session. Credentials in the source's
/// description are hidden from everyone; a viewer does not see a pipe
/// source's command or file at all, nor the HLS directory.
pub(crate) fn json(state: &Arc<AppState>, admin: bool) -> Value {
    let s = state.hub.stats();
    let src = state.source_info();
    let (src_state, src_error) = match state.source_state() {
        SourceState::Starting => ("starting", None),
        SourceState::Running => ("running", None),
        SourceState::Failed(reason) => ("failed", Some(redact(&reason))),
    };
    // A pipe's detail is configuration (a command line, a path); others name
    // the device and format, which the page shows as the source line.
    let detail = (admin || src.kind != "pipe").then(|| redact(&src.detail));
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
    // Every track the hub carries (video, audio, the camera's own JPEGs),
    // so a client can tell what the outputs will hold.
    let tracks: Vec<Value> = state
        .hub
        .tracks()
        .iter()
        .map(|t| {
            let mut j = json!({
                "id": t.id,
                "kind": match t.codec.kind() {
                    TrackKind::Video => "video",
                    TrackKind::Audio => "audio",
                    TrackKind::Picture => "picture",
                },
                "codec": t.codec.codec_string(),
                "generation": t.generation,
                "in_fmp4": t.codec.in_fmp4(),
            });
            if let Codec::Opus(o) = &t.codec {
                j["channels"] = o.channels.into();
                j["sample_rate"] = 48_000.into();
            }
            j
        })
        .collect();
    let mut viewers = serde_json::Map::new();
    for o in Output::ALL {
        viewers.insert(o.name().into(), state.viewers(o).0.into());
    }
    // Audio: its own source (state, why it failed) and the track it feeds.
    let feed = state
        .audio
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let audio = feed.map(|feed| {
        let info = feed.info();
        let (st, error) = match feed.state() {
            SourceState::Starting => ("starting", None),
            SourceState::Running => ("running", None),
            SourceState::Failed(reason) => ("failed", Some(redact(&reason))),
        };
        let track = s.tracks.iter().find(|t| t.codec == "opus");
        json!({
            "kind": info.kind,
            "detail": (admin || info.kind != "audio-pipe").then(|| redact(&info.detail)),
            "state": st,
            "error": error,
            "codec": track.map(|t| t.codec.clone()),
            "frames": track.map(|t| t.frames),
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.uptime().as_secs_f64(),
        "source": {
            "kind": src.kind,
            "detail": detail,
            "state": src_state,
            "error": src_error,
        },
        "stream": stream,
        "tracks": tracks,
        "audio": audio,
        "frames": s.frames,
        "keyframes": s.keyframes,
        "bytes": s.bytes,
        "drops": s.viewer_drops,
        "undecodable": s.undecodable,
        "last_frame_age_s": s.last_publish_us.map(|t| state.hub.age(t).as_secs_f64()),
        "measured": { "fps": s.measured_fps, "bitrate": s.measured_bitrate },
        "viewers": viewers,
        "hls": crate::hls::status_json(state, admin),
        "webrtc": state.webrtc.get().map(|ep| {
            let w = ep.stats();
            json!({
                "udp": ep.local_addr().to_string(),
                "candidates": ep.candidates().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                // ICE-TCP fallback (null: off) and its passive candidates.
                "tcp": ep.tcp_addr().map(|a| a.to_string()),
                "tcp_candidates": ep.tcp_candidates().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "sessions": w.sessions,
                "sessions_total": w.sessions_total,
                "refused_full": w.refused_full,
                "frames_sent": w.frames_sent,
                "audio_sent": w.audio_sent,
                "keyframe_requests": w.keyframe_requests,
                "nacks": w.nacks,
                "refused_packets": w.refused_packets,
                "packets_sent": w.packets_sent,
                "bytes_sent": w.bytes_sent,
                "send_errors": w.send_errors,
                "queue_drops": w.queue_drops,
                // Frame published → sent, per viewer: counts per bucket (µs
                // upper bounds; the last is everything above).
                "send_delay_us": {
                    "le": pinhole_webrtc::endpoint::SEND_DELAY_BUCKETS_US,
                    "counts": w.send_delay,
                },
            })
        }),
        // Push targets (URLs with their stream keys hidden): configuration,
        // so for the admin only.
        "push": admin.then(|| push_json(state)),
        // The UI builds rtsp://<its host>:<port>/stream from this.
        "rtsp": state.rtsp_port.get().map(|p| json!({
            "port": p,
            "path": crate::rtsp::PATH,
            "sessions": state.viewers(Output::Rtsp).0,
        })),
        // The running system (image version, A/B slot); null without OTA.
        "system": state.update.get().map(|u| {
            let st = u.status();
            json!({ "version": st.version, "slot": st.active_slot, "trial": st.trial })
        }),
    })
}

fn push_json(state: &AppState) -> Vec<Value> {
    let Some(set) = state.push.get() else {
        return Vec::new();
    };
    set.statuses()
        .into_iter()
        .map(|t| {
            json!({
                "url": t.url,
                "state": t.state.as_str(),
                "frames": t.frames,
                "bytes": t.bytes,
                "skipped": t.skipped,
                "reconnects": t.reconnects,
                "last_error": t.last_error,
                "retry_in_ms": t.retry_in_ms,
            })
        })
        .collect()
}

/// Per push target, labelled by its position in the list (`target="0"`):
/// never by URL, whose host a scrape should not need and whose key it must
/// not see.
fn push_metrics(state: &AppState, out: &mut String) {
    let Some(set) = state.push.get() else {
        return;
    };
    let targets = set.statuses();
    if targets.is_empty() {
        return;
    }
    type Series = (
        &'static str,
        &'static str,
        &'static str,
        fn(&pinhole_push::TargetStatus) -> f64,
    );
    let series: [Series; 5] = [
        (
            "push_up",
            "gauge",
            "1 while the target is publishing.",
            |t| f64::from(t.state == pinhole_push::State::Publishing),
        ),
        (
            "push_frames_total",
            "counter",
            "Video frames sent to the target.",
            |t| t.frames as f64,
        ),
        (
            "push_bytes_total",
            "counter",
            "Bytes sent to the target.",
            |t| t.bytes as f64,
        ),
        (
            "push_skipped_frames_total",
            "counter",
            "Frames skipped because the target was slow.",
            |t| t.skipped as f64,
        ),
        (
            "push_reconnects_total",
            "counter",
            "Reconnections after a failure.",
            |t| t.reconnects as f64,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP pinhole_{name} {help}");
        let _ = writeln!(out, "# TYPE pinhole_{name} {kind}");
        for (i, t) in targets.iter().enumerate() {
            let _ = writeln!(out, "pinhole_{name}{{target=\"{i}\"}} {}", value(t));
        }
    }
}

/// Names whose value is a secret, as `name=value` or `-name value`.
const SECRET_NAMES: [&str; 10] = [
    "password",
    "passwd",
    "pass",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "key",
    "auth",
    "credentials",
];

fn secret_name(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase();
    !n.is_empty() && SECRET_NAMES.iter().any(|s| n.ends_with(s))
}

/// Hides credentials in a command line or URL (a source's description or
/// error): the userinfo of every `scheme://user:pass@host`, the value of
/// `password=…`-like pairs (arguments and query strings), the argument after
/// `--password`-like options and after curl's `-u`/`--user`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for word in text.split(' ') {
        if hide_next && !word.is_empty() {
            out.push("***".to_owned());
            hide_next = false;
            continue;
        }
        let bare = word.trim_matches(|c| c == '\'' || c == '"');
        if bare.starts_with('-') && !bare.contains('=') {
            hide_next = secret_name(bare) || matches!(bare, "-u" | "--user");
        }
        out.push(redact_pairs(&redact_userinfo(word)));
    }
    out.join(" ")
}

/// `scheme://user:pass@host` → `scheme://***@host`, every occurrence.
fn redact_userinfo(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// `name=value` with a secret name → `name=***` (pairs split at `&?;,`).
fn redact_pairs(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    loop {
        let Some(eq) = rest.find('=') else {
            out.push_str(rest);
            return out;
        };
        let name_start = rest[..eq].rfind(['&', '?', ';', ',']).map_or(0, |i| i + 1);
        let name = rest[name_start..eq].trim_matches(|c| c == '\'' || c == '"');
        out.push_str(&rest[..=eq]);
        let after = &rest[eq + 1..];
        let end = after
            .find(['&', ';', ',', '\'', '"'])
            .unwrap_or(after.len());
        if secret_name(name) && end > 0 {
            out.push_str("***");
        } else {
            out.push_str(&after[..end]);
        }
        rest = &after[end..];
    }
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
        state.uptime().as_secs_f64(),
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
    if let Some(ep) = state.webrtc.get() {
        let w = ep.stats();
        metric(
            "webrtc_sessions",
            "gauge",
            "Open WebRTC (WHEP) sessions.",
            w.sessions as f64,
        );
        metric(
            "webrtc_sessions_total",
            "counter",
            "WebRTC sessions made since start.",
            w.sessions_total as f64,
        );
        metric(
            "webrtc_refused_full_total",
            "counter",
            "WHEP offers refused with 503 at the session limit.",
            w.refused_full as f64,
        );
        metric(
            "webrtc_nacks_total",
            "counter",
            "NACKs received from WebRTC viewers (answered from the send buffer).",
            w.nacks as f64,
        );
        metric(
            "webrtc_keyframe_requests_total",
            "counter",
            "PLI/FIR received from WebRTC viewers.",
            w.keyframe_requests as f64,
        );
        metric(
            "webrtc_refused_packets_total",
            "counter",
            "UDP packets dropped unread: from an address [security] accept_from refuses.",
            w.refused_packets as f64,
        );
    }
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
        "snapshot_decodes_total",
        "counter",
        "GOP decodes for /snapshot.jpg (at most one per new frame).",
        state
            .mjpeg
            .snapshot_decodes
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
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
    push_metrics(state, &mut out);
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_are_hidden() {
        for (input, want) in [
            (
                "ffmpeg -rtsp_transport tcp -i rtsp://admin:S3cret@10.0.0.5:554/stream1 -c copy -f h264 -",
                "ffmpeg -rtsp_transport tcp -i rtsp://***@10.0.0.5:554/stream1 -c copy -f h264 -",
            ),
            (
                "curl -s 'http://cam/video?user=admin&password=S3cret&fps=30'",
                "curl -s 'http://cam/video?user=admin&password=***&fps=30'",
            ),
            ("curl -u admin:S3cret http://cam/", "curl -u *** http://cam/"),
            ("tool --password S3cret --fps 30", "tool --password *** --fps 30"),
            ("tool --password=S3cret -x", "tool --password=*** -x"),
            (
                "ffmpeg -i srt://host:9000?passphrase=S3cret&latency=200",
                "ffmpeg -i srt://host:9000?passphrase=***&latency=200",
            ),
            (
                "a rtmp://u:p@one/x and http://two/y?token=S3cret",
                "a rtmp://***@one/x and http://two/y?token=***",
            ),
            ("push stream_key=S3cret", "push stream_key=***"),
        ] {
            let got = redact(input);
            assert_eq!(got, want);
            assert!(!got.contains("S3cret"));
        }
    }

    #[test]
    fn harmless_text_is_kept() {
        for s in [
            "/dev/video0 (uvcvideo): H.264 1280x720",
            "ffmpeg -f lavfi -i testsrc=size=640x480:rate=30 -x264-params keyint=60 -f h264 -",
            "test pattern 1280x720 @ 30 fps",
            "http://host/path?a=b",
            "",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
