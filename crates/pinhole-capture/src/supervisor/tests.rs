//! The supervisor on a simulated clock: backoff, status wording, heartbeats
//! and replacing a source, with no real sleeps.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

use pinhole_media::SimClock;

use super::*;
use crate::test_sink::{wait_for, Sink};

/// One scripted run: frames delivered, how long it lasts, how it ends.
struct Step {
    frames: usize,
    lasts_us: u64,
    fails: Option<&'static str>,
}

fn fail(frames: usize, lasts_us: u64, why: &'static str) -> Step {
    Step {
        frames,
        lasts_us,
        fails: Some(why),
    }
}

struct Scripted {
    kind: &'static str,
    steps: VecDeque<Step>,
    clock: Arc<SimClock>,
    policy: RetryPolicy,
    runs: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(kind: &'static str, clock: &Arc<SimClock>, steps: Vec<Step>) -> Scripted {
        Scripted {
            kind,
            steps: steps.into(),
            clock: clock.clone(),
            policy: RetryPolicy::CAMERA,
            runs: Arc::default(),
        }
    }
}

impl Source for Scripted {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: self.kind,
            detail: String::new(),
            fps: None,
            bitrate: None,
            keyframe_interval: None,
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let Some(step) = self.steps.pop_front() else {
            // Out of script: deliver until stopped.
            while !stop.is_stopped() {
                self.clock.sleep_until_us(self.clock.now_us() + 10_000);
            }
            return Ok(());
        };
        for _ in 0..step.frames {
            sink.publish(AccessUnit {
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                pts_us: self.clock.now_us(),
                wallclock_us: 0,
                keyframe: true,
            });
        }
        self.clock
            .sleep_until_us(self.clock.now_us() + step.lasts_us);
        match step.fails {
            Some(why) => Err(CaptureError::Lost(why.into())),
            None => Ok(()),
        }
    }
}

fn failures(sink: &Sink) -> Vec<String> {
    sink.states
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|s| match s {
            SourceState::Failed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn backoff_doubles_to_its_cap_and_starts_over_after_a_healthy_run() {
    let mut b = Backoff::new(RetryPolicy::DEFAULT);
    let s = |d: Duration| d.as_secs_f64();
    let waits: Vec<f64> = (0..8).map(|_| s(b.failed(Duration::ZERO, false))).collect();
    assert_eq!(waits, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    // Frames, but only for 10 s: not healthy yet.
    assert_eq!(s(b.failed(Duration::from_secs(10), true)), 30.0);
    assert_eq!(s(b.failed(Duration::from_secs(30), true)), 0.5);
    assert_eq!(
        s(b.failed(Duration::from_secs(60), false)),
        1.0,
        "no frames"
    );
    // A camera: any frames start over.
    let mut c = Backoff::new(RetryPolicy::CAMERA);
    assert_eq!(s(c.failed(Duration::ZERO, false)), 0.5);
    assert_eq!(s(c.failed(Duration::ZERO, false)), 1.0);
    assert_eq!(s(c.failed(Duration::ZERO, true)), 0.5);
}

#[test]
fn failures_are_reported_retried_with_backoff_and_heartbeats() {
    let clock = Arc::new(SimClock::default());
    let mut src = Scripted::new(
        "v4l2",
        &clock,
        vec![
            fail(0, 0, "/dev/video0: gone"),
            fail(0, 0, "/dev/video0: gone"),
            fail(0, 0, "/dev/video0: gone"),
            fail(0, 0, "/dev/video0: gone"),
            fail(0, 0, "/dev/video0: gone"),
            // Back for a moment: frames reset the backoff.
            fail(3, 1_000_000, "no frame for 3.0 s: restarting the camera"),
            Step {
                frames: 1,
                lasts_us: 0,
                fails: None,
            },
        ],
    );
    let sink = Sink::default();
    let ended = run_restarting(&mut src, &sink, &StopFlag::new(), &*clock);
    assert_eq!(ended, Ended::ByItself);
    assert_eq!(
        failures(&sink),
        [
            "/dev/video0: gone; retrying in 0.5 s",
            "/dev/video0: gone; retrying in 1.0 s",
            "/dev/video0: gone; retrying in 2.0 s",
            "/dev/video0: gone; retrying in 4.0 s",
            "/dev/video0: gone; retrying in 4.0 s",
            "no frame for 3.0 s: restarting the camera; retrying in 0.5 s",
        ]
    );
    assert_eq!(sink.count(), 4);
    // 0.5 + 1 + 2 + 4 + 4 + 0.5 s of waiting and 1 s of running.
    assert_eq!(clock.now_us(), 13_000_000);
    let starts = sink
        .states
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| **s == SourceState::Starting)
        .count();
    assert_eq!(starts, 7, "Starting before every run");
    // Heartbeats every 100 ms while waiting.
    assert!(sink.heartbeats.load(Ordering::SeqCst) >= 120);
}

#[test]
fn a_stop_during_the_wait_ends_it() {
    let clock = Arc::new(SimClock::default());
    let stop = StopFlag::new();
    struct StopsOnFailure<'a>(&'a Sink, StopFlag);
    impl FrameSink for StopsOnFailure<'_> {
        fn publish(&self, au: AccessUnit) {
            self.0.publish(au);
        }
        fn report(&self, state: SourceState) {
            if matches!(state, SourceState::Failed(_)) {
                self.1.stop();
            }
            self.0.report(state);
        }
    }
    let mut src = Scripted::new("pipe", &clock, vec![fail(0, 0, "exited")]);
    src.policy = RetryPolicy::DEFAULT;
    let sink = Sink::default();
    let ended = run_restarting(
        &mut src,
        &StopsOnFailure(&sink, stop.clone()),
        &stop,
        &*clock,
    );
    assert_eq!(ended, Ended::Stopped);
    assert_eq!(clock.now_us(), 0, "did not wait out the backoff");
    assert_eq!(src.runs.load(Ordering::SeqCst), 1);
}

#[test]
fn replace_swaps_the_source_and_shutdown_ends_the_thread() {
    let clock = Arc::new(SimClock::default());
    let sink = Arc::new(Sink::default());
    let a = Scripted::new("test", &clock, vec![fail(1, 0, "encoder broke")]);
    let a_runs = a.runs.clone();
    let sup = Supervisor::spawn(Box::new(a), sink.clone(), clock.clone()).expect("spawn");
    wait_for("a retried run", || a_runs.load(Ordering::SeqCst) >= 2);
    assert_eq!(failures(&sink), ["encoder broke; retrying in 0.5 s"]);

    let b = Scripted::new("pipe", &clock, vec![]);
    let b_runs = b.runs.clone();
    sup.replace(Box::new(b));
    wait_for("the new source", || b_runs.load(Ordering::SeqCst) == 1);
    let info = sink.info.lock().expect("lock").clone();
    assert_eq!(info.map(|i| i.kind), Some("pipe"), "the status follows");
    assert_eq!(a_runs.load(Ordering::SeqCst), 2, "the old one is gone");
    sup.shutdown();
}

#[test]
fn a_source_that_ends_by_itself_waits_for_new_settings() {
    let clock = Arc::new(SimClock::default());
    let sink = Arc::new(Sink::default());
    let done = Step {
        frames: 2,
        lasts_us: 0,
        fails: None,
    };
    let a = Scripted::new("pipe", &clock, vec![done]);
    let sup = Supervisor::spawn(Box::new(a), sink.clone(), clock.clone()).expect("spawn");
    wait_for("the end reported", || {
        failures(&sink) == ["the source ended".to_owned()]
    });
    let b = Scripted::new("test", &clock, vec![]);
    let b_runs = b.runs.clone();
    sup.replace(Box::new(b));
    wait_for("the new source", || b_runs.load(Ordering::SeqCst) == 1);
    sup.shutdown();
}

/// A source that asks its sink once whether a keyframe is wanted.
struct AsksForKeyframe(Arc<AtomicBool>);

impl Source for AsksForKeyframe {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "asks",
            detail: String::new(),
            fps: None,
            bitrate: None,
            keyframe_interval: None,
        }
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::CAMERA
    }
    fn run(&mut self, sink: &dyn FrameSink, _stop: &StopFlag) -> Result<(), CaptureError> {
        self.0.store(sink.keyframe_wanted(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_viewers_keyframe_request_reaches_the_running_source() {
    let sink = Sink::default();
    sink.keyframes_wanted.store(1, Ordering::SeqCst);
    let asked = Arc::new(AtomicBool::new(false));
    let clock = SimClock::new(0, 0);
    let ended = run_restarting(
        &mut AsksForKeyframe(asked.clone()),
        &sink,
        &StopFlag::default(),
        &clock,
    );
    assert!(matches!(ended, Ended::ByItself));
    assert!(
        asked.load(Ordering::SeqCst),
        "the request was not passed on"
    );
}
