//! systemd integration: READY=1 once the listeners are bound and a frame has
//! arrived; WATCHDOG=1 only while frames keep flowing, so a stalled pipeline
//! stops the pings and systemd restarts us; STATUS= a line for humans.

use std::sync::Arc;
use std::time::Duration;

use pinhole_server::{AppState, Output};
use sd_notify::NotifyState;

/// Frames older than this mean the pipeline is stalled.
pub fn stall_limit(watchdog: Option<Duration>) -> Duration {
    match watchdog {
        // Half the watchdog period, but never less than 2 s of no frames.
        Some(w) => (w / 2).max(Duration::from_secs(2)),
        None => Duration::from_secs(5),
    }
}

/// Whether to ping the watchdog, given the age of the newest frame.
pub fn frames_flowing(last_frame_age: Option<Duration>, limit: Duration) -> bool {
    matches!(last_frame_age, Some(age) if age <= limit)
}

fn status_line(state: &AppState) -> String {
    let s = state.hub.stats();
    let viewers: u64 = Output::ALL.iter().map(|o| state.viewers(*o).0).sum();
    match &s.stream {
        Some(st) => format!(
            "{}x{} {:.1} fps {:.0} kbit/s, {} viewers",
            st.info.width,
            st.info.height,
            s.measured_fps,
            s.measured_bitrate / 1000.0,
            viewers
        ),
        None => "waiting for the first keyframe".into(),
    }
}

/// Runs for the life of the daemon.
pub async fn supervise(state: Arc<AppState>, probe: Option<pinhole_server::ListenAddr>) {
    let watchdog = sd_notify::watchdog_enabled();
    let limit = stall_limit(watchdog);
    let tick = watchdog
        .map(|w| (w / 4).max(Duration::from_millis(200)))
        .unwrap_or(Duration::from_secs(2));
    let mut ready = false;
    let mut stalled = false;
    loop {
        let age = state.hub.stats().last_publish_us.map(|t| state.hub.age(t));
        let flowing = frames_flowing(age, limit);
        // A lost camera being retried is the source's business: keep the
        // daemon and its viewers up. Only a hung source thread stops pings.
        if !flowing && watchdog.is_some() && state.source_recovering(limit) {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        }
        if flowing && !ready {
            ready = true;
            tracing::info!("first frame out: ready");
            let _ = sd_notify::notify(&[NotifyState::Ready]);
        }
        if flowing {
            if watchdog.is_some() {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
            if stalled {
                tracing::info!("frames are flowing again");
                stalled = false;
            }
        } else if ready && !stalled {
            stalled = true;
            tracing::error!(
                limit_s = limit.as_secs_f64(),
                "no frames from the source: withholding the watchdog ping"
            );
        }
        // On a trial boot after an update, the installer commits the new
        // system only once all three signals have been seen.
        if let Some(update) = state.update.get() {
            if update.status().trial {
                let http = match &probe {
                    Some(addr) => pinhole_server::health::probe(addr).await,
                    None => false,
                };
                update.report_health(crate::ota::health(ready, flowing, http));
            }
        }
        let line = status_line(&state);
        let _ = sd_notify::notify(&[NotifyState::Status(&line)]);
        tokio::time::sleep(tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_only_while_frames_are_fresh() {
        let limit = stall_limit(Some(Duration::from_secs(10)));
        assert_eq!(limit, Duration::from_secs(5));
        assert!(frames_flowing(Some(Duration::from_millis(40)), limit));
        assert!(!frames_flowing(Some(Duration::from_secs(6)), limit));
        assert!(!frames_flowing(None, limit), "no frame yet: not ready");
        assert_eq!(
            stall_limit(Some(Duration::from_secs(1))),
            Duration::from_secs(2)
        );
    }
}
