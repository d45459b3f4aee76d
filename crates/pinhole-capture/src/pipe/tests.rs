//! The pipe source on real fixtures: files paced on a simulated clock,
//! commands that exit and are restarted by the supervisor.

use super::*;
use crate::supervisor::{run_restarting, Ended};
use pinhole_media::SimClock;
use std::sync::Mutex;
use std::time::Instant;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../pinhole-media/testdata/x264_baseline_320x240_30fps_gop30.h264"
);

/// Records everything; optionally stops the source after `stop_after` AUs.
#[derive(Default)]
struct RecordingSink {
    aus: Mutex<Vec<AccessUnit>>,
    states: Mutex<Vec<SourceState>>,
    stop_after: Option<(usize, StopFlag)>,
}

impl FrameSink for RecordingSink {
    fn publish(&self, au: AccessUnit) {
        let mut aus = self.aus.lock().unwrap();
        aus.push(au);
        if let Some((n, stop)) = &self.stop_after {
            if aus.len() >= *n {
                stop.stop();
            }
        }
    }
    fn report(&self, state: SourceState) {
        self.states.lock().unwrap().push(state);
    }
}

impl RecordingSink {
    fn aus(&self) -> Vec<AccessUnit> {
        self.aus.lock().unwrap().clone()
    }
    fn states(&self) -> Vec<SourceState> {
        self.states.lock().unwrap().clone()
    }
}

/// Time only moves when someone sleeps: a paced file plays instantly.
fn sim_clock() -> Arc<SimClock> {
    Arc::new(SimClock::new(0, 1_700_000_000_000_000))
}

fn fixture_aus() -> Vec<AssembledAu> {
    let data = std::fs::read(FIXTURE).unwrap();
    let mut a = AccessUnitAssembler::new();
    let mut aus = a.push(&data);
    aus.extend(a.finish());
    aus
}

/// Run `source` under the supervisor on a thread; return once it ends or
/// after `timeout`.
fn run_for(
    mut source: PipeSource,
    sink: Arc<RecordingSink>,
    stop: StopFlag,
    until: impl Fn(&RecordingSink) -> bool,
    timeout: Duration,
) -> Ended {
    let thread_sink = Arc::clone(&sink);
    let thread_stop = stop.clone();
    let clock = Arc::clone(&source.clock);
    let handle = std::thread::spawn(move || {
        run_restarting(&mut source, &*thread_sink, &thread_stop, &*clock)
    });
    let t0 = Instant::now();
    while !handle.is_finished() && !until(&sink) && t0.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.stop();
    let stopping = Instant::now();
    let result = handle.join().unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "source took {:?} to stop",
        stopping.elapsed()
    );
    result
}

#[test]
fn parse_spec() {
    assert_eq!(parse_pipe_spec("-"), PipeInput::Stdin);
    assert_eq!(
        parse_pipe_spec(FIXTURE),
        PipeInput::File {
            path: FIXTURE.into(),
            looped: true
        }
    );
    assert_eq!(
        parse_pipe_spec("ffmpeg -i x -f h264 -"),
        PipeInput::Command("ffmpeg -i x -f h264 -".into())
    );
    // A directory is not a file.
    assert!(matches!(parse_pipe_spec("/tmp"), PipeInput::Command(_)));
}

#[test]
fn file_source_delivers_fixture_paced() {
    let expected = fixture_aus();
    let clock = sim_clock();
    let input = PipeInput::File {
        path: FIXTURE.into(),
        looped: false,
    };
    let source = PipeSource::new(input, 10.0, clock);
    assert_eq!(source.info().kind, "pipe");
    assert_eq!(source.info().fps, Some(10.0));
    let sink = Arc::new(RecordingSink::default());
    let result = run_for(
        source,
        Arc::clone(&sink),
        StopFlag::new(),
        |_| false,
        Duration::from_secs(20),
    );
    assert_eq!(result, Ended::ByItself, "played once");
    let aus = sink.aus();
    assert_eq!(aus.len(), expected.len());
    assert!(aus[0].keyframe);
    for (got, want) in aus.iter().zip(&expected) {
        assert_eq!(got.data, want.data);
        assert_eq!(got.keyframe, want.keyframe);
    }
    // Paced at the SPS's 30 fps, not the 10 fps default.
    for pair in aus.windows(2) {
        let dt = pair[1].pts_us - pair[0].pts_us;
        assert!((33_333..=33_334).contains(&dt), "{dt}");
        assert_eq!(
            pair[1].wallclock_us - pair[0].wallclock_us,
            pair[1].pts_us - pair[0].pts_us
        );
    }
    let states = sink.states();
    assert_eq!(states[..2], [SourceState::Starting, SourceState::Running]);
    assert!(
        matches!(states.last(), Some(SourceState::Failed(r)) if r.contains("end of")),
        "{states:?}"
    );
}

#[test]
fn looped_file_keeps_going_with_keyframes_at_gop_positions() {
    let stop = StopFlag::new();
    let sink = Arc::new(RecordingSink {
        stop_after: Some((150, stop.clone())),
        ..Default::default()
    });
    let input = PipeInput::File {
        path: FIXTURE.into(),
        looped: true,
    };
    let source = PipeSource::new(input, 30.0, sim_clock());
    let result = run_for(
        source,
        Arc::clone(&sink),
        stop,
        |s| s.aus.lock().unwrap().len() >= 150,
        Duration::from_secs(20),
    );
    assert_eq!(result, Ended::Stopped);
    let aus = sink.aus();
    let keys: Vec<usize> = (0..150).filter(|&i| aus[i].keyframe).collect();
    assert_eq!(keys, vec![0, 30, 60, 90, 120]);
}

#[test]
fn missing_file_is_an_error() {
    let input = PipeInput::File {
        path: "/nonexistent/pinhole.h264".into(),
        looped: true,
    };
    let mut source = PipeSource::new(input, 30.0, sim_clock());
    let sink = RecordingSink::default();
    let err = source.run(&sink, &StopFlag::new()).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/pinhole.h264"),
        "{err}"
    );
}

#[test]
fn command_is_restarted_and_frames_continue() {
    let cmd = format!("cat '{FIXTURE}'; exit 1");
    let source = PipeSource::new(
        PipeInput::Command(cmd),
        30.0,
        Arc::new(pinhole_media::SystemClock::new()),
    );
    let sink = Arc::new(RecordingSink::default());
    let result = run_for(
        source,
        Arc::clone(&sink),
        StopFlag::new(),
        |s| s.aus.lock().unwrap().len() >= 150,
        Duration::from_secs(20),
    );
    assert_eq!(result, Ended::Stopped);
    let aus = sink.aus();
    assert!(aus.len() >= 150, "only {} frames", aus.len());
    let keys: Vec<usize> = (0..150).filter(|&i| aus[i].keyframe).collect();
    assert_eq!(keys, vec![0, 30, 60, 90, 120]);
    let states = sink.states();
    let failures: Vec<&String> = states
        .iter()
        .filter_map(|s| match s {
            SourceState::Failed(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        failures[0].contains("exited with status 1 after 60 frames; restarting in 0.5 s"),
        "{failures:?}"
    );
    assert!(failures[1].contains("restarting in 1.0 s"), "{failures:?}");
    assert!(states.contains(&SourceState::Running));
}

#[test]
fn garbage_command_fails_clearly_and_stops_promptly() {
    // 3 MB without a single start code, then a command that would hang.
    let cmd = "yes 'not h264' | head -c 3000000; exec sleep 30";
    let source = PipeSource::new(
        PipeInput::Command(cmd.into()),
        30.0,
        Arc::new(pinhole_media::SystemClock::new()),
    );
    let sink = Arc::new(RecordingSink::default());
    let result = run_for(
        source,
        Arc::clone(&sink),
        StopFlag::new(),
        |s| {
            s.states
                .lock()
                .unwrap()
                .iter()
                .any(|st| matches!(st, SourceState::Failed(_)))
        },
        Duration::from_secs(20),
    );
    assert_eq!(result, Ended::Stopped);
    assert!(sink.aus().is_empty());
    let states = sink.states();
    let Some(SourceState::Failed(reason)) = states.last() else {
        panic!("{states:?}");
    };
    assert!(reason.contains("no H.264 Annex B start code"), "{reason}");
}

/// A shell script that writes the fixture's access units as pieces, with
/// `sleep`s between them: `pieces(i, au)` gives picture `i`'s pieces and
/// the pause after each. Files go to a fresh temporary directory.
fn writer_script(
    name: &str,
    aus: &[AssembledAu],
    pieces: impl Fn(usize, &[u8]) -> Vec<(Vec<u8>, &'static str)>,
    tail: &str,
) -> String {
    let dir = std::env::temp_dir().join(format!("pinhole-pipe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut script = String::new();
    for (i, au) in aus.iter().enumerate() {
        for (j, (bytes, pause)) in pieces(i, &au.data).into_iter().enumerate() {
            let file = dir.join(format!("{i}-{j}"));
            std::fs::write(&file, bytes).unwrap();
            script.push_str(&format!("cat '{}'; sleep {pause}; ", file.display()));
        }
    }
    script.push_str(tail);
    script
}

#[test]
fn a_command_pausing_inside_every_picture_never_gets_one_cut() {
    let expected = fixture_aus();
    // Each picture in two writes 5 ms apart, at a point that moves.
    let cmd = writer_script(
        "inside",
        &expected,
        |i, au| {
            let cut = 5 + (i * 997) % (au.len() - 10);
            vec![(au[..cut].to_vec(), "0.005"), (au[cut..].to_vec(), "0.03")]
        },
        "exec sleep 30",
    );
    let source = PipeSource::new(
        PipeInput::Command(cmd),
        30.0,
        Arc::new(pinhole_media::SystemClock::new()),
    );
    let sink = Arc::new(RecordingSink::default());
    run_for(
        source,
        Arc::clone(&sink),
        StopFlag::new(),
        |s| s.aus.lock().unwrap().len() >= expected.len() - 1,
        Duration::from_secs(30),
    );
    let aus = sink.aus();
    // All but the last, which only the next picture (none) would end.
    assert_eq!(aus.len(), expected.len() - 1);
    for (got, want) in aus.iter().zip(&expected) {
        assert_eq!(got.data, want.data);
    }
}

#[test]
fn a_command_writing_whole_pictures_gets_each_without_waiting_for_the_next() {
    // 8 pictures, then the writer stays silent: before pauses ended
    // pictures, the 8th came out only when the command exited.
    let expected = &fixture_aus()[..8];
    let cmd = writer_script(
        "whole",
        expected,
        |_, au| vec![(au.to_vec(), "0.05")],
        "exec sleep 30",
    );
    let source = PipeSource::new(
        PipeInput::Command(cmd),
        30.0,
        Arc::new(pinhole_media::SystemClock::new()),
    );
    let sink = Arc::new(RecordingSink::default());
    run_for(
        source,
        Arc::clone(&sink),
        StopFlag::new(),
        |s| s.aus.lock().unwrap().len() >= expected.len(),
        Duration::from_secs(15),
    );
    let aus = sink.aus();
    assert_eq!(aus.len(), expected.len(), "the last picture never came");
    for (got, want) in aus.iter().zip(expected) {
        assert_eq!(got.data, want.data);
    }
}

/// Regenerates the OpenH264 fixture of pinhole-media from our own test
/// pattern (a second encoder besides x264):
/// `cargo test -p pinhole-capture -- --ignored regenerate_openh264_fixture`.
#[test]
#[ignore = "writes pinhole-media/testdata; run by hand"]
fn regenerate_openh264_fixture() {
    use crate::test_pattern::{TestPattern, TestPatternConfig};
    let cfg = TestPatternConfig {
        width: 320,
        height: 240,
        fps: 15,
        bitrate: 300_000,
        keyframe_interval: 15,
    };
    let mut source = TestPattern::new(cfg, sim_clock()).unwrap();
    let stop = StopFlag::new();
    let sink = RecordingSink {
        stop_after: Some((45, stop.clone())),
        ..Default::default()
    };
    source.run(&sink, &stop).unwrap();
    let mut out = Vec::new();
    for au in sink.aus().iter().take(45) {
        out.extend_from_slice(&au.data);
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pinhole-media/testdata/openh264_testpattern_320x240_15fps_gop15.h264"
    );
    std::fs::write(path, out).unwrap();
}
