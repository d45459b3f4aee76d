//! A source reading an H.264 Annex B byte stream from stdin, a file (paced at
//! the stream's frame rate, optionally looped) or a shell command's stdout
//! (restarted with backoff when it exits).
//!
//! `--source pipe:<spec>`: `-` is stdin, an existing regular file is played
//! (looped), anything else is run with `sh -c`. For example
//! `pipe:ffmpeg -f v4l2 -i /dev/video0 -c:v libx264 -tune zerolatency -f h264 -`.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pinhole_media::annexb::{AccessUnitAssembler, AssembledAu};
use pinhole_media::h264::{find_parameter_sets, sps_fps};
use pinhole_media::{AccessUnit, Clock};

use crate::{CaptureError, FrameSink, Source, SourceInfo, SourceState, StopFlag};

/// Bytes read from the input at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Longest single wait, so a stop request is noticed promptly.
const POLL_US: u64 = 100_000;
/// First restart delay after a command exits; doubled up to [`BACKOFF_MAX_US`].
const BACKOFF_INITIAL_US: u64 = 500_000;
const BACKOFF_MAX_US: u64 = 10_000_000;
/// A command that ran this long (and delivered frames) restarts quickly again.
const HEALTHY_RUN_US: u64 = 30_000_000;
/// Delay before replaying a file that held nothing decodable.
const EMPTY_FILE_RETRY_US: u64 = 2_000_000;
/// How long a command gets to exit after SIGTERM before SIGKILL.
const KILL_GRACE_US: u64 = 200_000;
/// 20 ms polls a command may live on after closing its stdout (5 s).
const LINGER_POLLS: u32 = 250;
/// Longest stderr line forwarded to the log.
const MAX_STDERR_LINE: usize = 4096;

/// Where the byte stream comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipeInput {
    /// Standard input of the daemon (live: not paced).
    Stdin,
    /// A file, paced at the stream's frame rate (from the SPS, else the
    /// configured default), replayed from the start at EOF if `looped`.
    File { path: PathBuf, looped: bool },
    /// A shell command (`sh -c`) whose stdout is the stream (live: not
    /// paced). Restarted with backoff when it exits.
    Command(String),
}

impl fmt::Display for PipeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipeInput::Stdin => write!(f, "stdin"),
            PipeInput::File { path, .. } => write!(f, "file {}", path.display()),
            PipeInput::Command(cmd) => write!(f, "command `{cmd}`"),
        }
    }
}

/// Parse the part after `pipe:` in `--source pipe:<spec>`: `-` is stdin, an
/// existing regular file is a looped file, anything else a shell command.
pub fn parse_pipe_spec(spec: &str) -> PipeInput {
    if spec == "-" {
        return PipeInput::Stdin;
    }
    let path = Path::new(spec);
    if path.is_file() {
        return PipeInput::File {
            path: path.to_path_buf(),
            looped: true,
        };
    }
    PipeInput::Command(spec.to_string())
}

/// H.264 from stdin, a file or a command; see the module docs.
pub struct PipeSource {
    input: PipeInput,
    default_fps: f64,
    clock: Arc<dyn Clock>,
    /// Frame rate found in the stream's SPS, once seen.
    detected_fps: Option<f64>,
}

impl PipeSource {
    /// `default_fps` paces a file whose SPS has no timing info.
    pub fn new(input: PipeInput, default_fps: f64, clock: Arc<dyn Clock>) -> Self {
        PipeSource {
            input,
            default_fps,
            clock,
            detected_fps: None,
        }
    }
}

impl Source for PipeSource {
    fn info(&self) -> SourceInfo {
        let (detail, fps) = match &self.input {
            PipeInput::Stdin => ("stdin".to_string(), self.detected_fps),
            PipeInput::File { path, looped } => (
                format!(
                    "{} ({})",
                    path.display(),
                    if *looped { "looped" } else { "played once" }
                ),
                self.detected_fps.or(Some(self.default_fps)),
            ),
            PipeInput::Command(cmd) => (cmd.clone(), self.detected_fps),
        };
        SourceInfo {
            kind: "pipe",
            detail,
            fps,
            bitrate: None,
            keyframe_interval: None,
        }
    }

    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        let mut reporter = Reporter {
            sink,
            last: None,
            label: self.input.to_string(),
        };
        reporter.report(SourceState::Starting);
        match self.input.clone() {
            PipeInput::Stdin => self.run_stdin(&mut reporter, stop),
            PipeInput::File { path, looped } => self.run_file(&path, looped, &mut reporter, stop),
            PipeInput::Command(cmd) => self.run_command(&cmd, &mut reporter, stop),
        }
    }
}

/// Reports state changes to the sink (and the log), once per change.
struct Reporter<'a> {
    sink: &'a dyn FrameSink,
    last: Option<SourceState>,
    label: String,
}

impl Reporter<'_> {
    fn report(&mut self, state: SourceState) {
        if self.last.as_ref() == Some(&state) {
            return;
        }
        match &state {
            SourceState::Failed(reason) => tracing::warn!(source = %self.label, "{reason}"),
            other => tracing::info!(source = %self.label, "pipe source {other:?}"),
        }
        self.sink.report(state.clone());
        self.last = Some(state);
    }

    fn is_failed(&self) -> bool {
        matches!(self.last, Some(SourceState::Failed(_)))
    }
}

/// Paces access units at a fixed frame rate on the injected clock.
struct Pacer {
    start_us: u64,
    interval_us: f64,
    frames: u64,
}

impl Pacer {
    fn deadline(&mut self, now_us: u64) -> u64 {
        let mut deadline = self.start_us + (self.frames as f64 * self.interval_us) as u64;
        if now_us > deadline + 1_000_000 {
            // Fell more than a second behind (a stalled disk, a suspended
            // process): restart the schedule rather than burst.
            self.start_us = now_us;
            self.frames = 0;
            deadline = now_us;
        }
        self.frames += 1;
        deadline
    }
}

/// Sleep until `deadline_us`, waking every [`POLL_US`] to check `stop`.
/// Returns false if stopped.
fn sleep_until(clock: &dyn Clock, deadline_us: u64, stop: &StopFlag) -> bool {
    loop {
        if stop.is_stopped() {
            return false;
        }
        let now = clock.now_us();
        if now >= deadline_us {
            return true;
        }
        clock.sleep_until_us(deadline_us.min(now + POLL_US));
    }
}

/// Turns bytes into published access units, and assembler errors into log
/// lines and a `Failed` state while nothing decodable arrives.
struct Feeder {
    assembler: AccessUnitAssembler,
    published: u64,
    published_since_check: u64,
}

impl Feeder {
    fn new() -> Self {
        Feeder {
            assembler: AccessUnitAssembler::new(),
            published: 0,
            published_since_check: 0,
        }
    }

    fn publish(&mut self, au: AssembledAu, clock: &dyn Clock, reporter: &mut Reporter) {
        reporter.report(SourceState::Running);
        self.published += 1;
        self.published_since_check += 1;
        reporter.sink.publish(AccessUnit {
            data: au.data,
            pts_us: clock.now_us(),
            wallclock_us: clock.wall_us(),
            keyframe: au.keyframe,
        });
    }

    fn check_errors(&mut self, reporter: &mut Reporter) {
        let errors = self.assembler.take_errors();
        for e in &errors {
            tracing::warn!(source = %reporter.label, "bad H.264 input: {e}");
        }
        if let Some(first) = errors.first() {
            if self.published_since_check == 0 && !reporter.is_failed() {
                reporter.report(SourceState::Failed(format!(
                    "{}: {first}; waiting for a decodable H.264 Annex B stream",
                    reporter.label
                )));
            }
        }
        self.published_since_check = 0;
    }
}

fn fps_of(au: &AssembledAu) -> Option<f64> {
    if !au.keyframe {
        return None;
    }
    find_parameter_sets(&au.data).and_then(|(sps, _)| sps_fps(sps))
}

/// Reads an input on its own thread, so the source can notice a stop request
/// while a read blocks. `None` marks EOF.
fn spawn_reader(
    mut input: impl Read + Send + 'static,
    name: &str,
) -> io::Result<Receiver<io::Result<Option<Vec<u8>>>>> {
    let (tx, rx) = sync_channel(8);
    std::thread::Builder::new()
        .name(format!("pipe-read-{name}"))
        .spawn(move || {
            let mut buf = vec![0u8; CHUNK_BYTES];
            loop {
                let msg = match input.read(&mut buf) {
                    Ok(0) => Ok(None),
                    Ok(n) => Ok(Some(buf[..n].to_vec())),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let done = !matches!(msg, Ok(Some(_)));
                if tx.send(msg).is_err() || done {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// How a live stream (stdin, a command) ended.
enum LiveEnd {
    Stopped,
    Eof,
    Error(io::Error),
}

impl PipeSource {
    fn note_fps(&mut self, au: &AssembledAu) {
        if self.detected_fps.is_none() {
            self.detected_fps = fps_of(au);
        }
    }

    /// Feed a live stream until EOF, an error or stop.
    fn pump_live(
        &mut self,
        rx: &Receiver<io::Result<Option<Vec<u8>>>>,
        feeder: &mut Feeder,
        reporter: &mut Reporter,
        stop: &StopFlag,
    ) -> LiveEnd {
        loop {
            if stop.is_stopped() {
                return LiveEnd::Stopped;
            }
            let chunk = match rx.recv_timeout(Duration::from_micros(POLL_US)) {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Err(e)) => return LiveEnd::Error(e),
                Err(RecvTimeoutError::Timeout) => continue,
            };
            for au in feeder.assembler.push(&chunk) {
                self.note_fps(&au);
                feeder.publish(au, &*self.clock, reporter);
            }
            feeder.check_errors(reporter);
        }
        if let Some(au) = feeder.assembler.finish() {
            feeder.publish(au, &*self.clock, reporter);
        }
        feeder.check_errors(reporter);
        LiveEnd::Eof
    }

    fn run_stdin(&mut self, reporter: &mut Reporter, stop: &StopFlag) -> Result<(), CaptureError> {
        // On stop the reader thread stays blocked on stdin until it closes;
        // the daemon is exiting then anyway.
        let rx = spawn_reader(io::stdin(), "stdin").map_err(|source| CaptureError::Io {
            what: "starting the stdin reader thread".into(),
            source,
        })?;
        let mut feeder = Feeder::new();
        match self.pump_live(&rx, &mut feeder, reporter, stop) {
            LiveEnd::Stopped => Ok(()),
            LiveEnd::Eof => {
                reporter.report(SourceState::Failed(format!(
                    "stdin closed after {} frames; the pipe source has stopped",
                    feeder.published
                )));
                Ok(())
            }
            LiveEnd::Error(source) => Err(CaptureError::Io {
                what: "reading H.264 from stdin".into(),
                source,
            }),
        }
    }

    fn run_file(
        &mut self,
        path: &Path,
        looped: bool,
        reporter: &mut Reporter,
        stop: &StopFlag,
    ) -> Result<(), CaptureError> {
        if !(self.default_fps.is_finite() && self.default_fps > 0.0) {
            return Err(CaptureError::InvalidConfig {
                source_kind: "pipe",
                reason: format!(
                    "frame rate {} for pacing {}",
                    self.default_fps,
                    path.display()
                ),
            });
        }
        let io_err = |what: &str| {
            let what = format!("{what} {}", path.display());
            move |source| CaptureError::Io { what, source }
        };
        let clock = Arc::clone(&self.clock);
        let mut feeder = Feeder::new();
        let mut pacer: Option<Pacer> = None;
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let mut file = std::fs::File::open(path).map_err(io_err("opening"))?;
            let published_before = feeder.published;
            let mut eof = false;
            while !eof {
                if stop.is_stopped() {
                    return Ok(());
                }
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("reading")(e)),
                };
                let aus = if n == 0 {
                    eof = true;
                    feeder.assembler.finish().into_iter().collect()
                } else {
                    feeder.assembler.push(&buf[..n])
                };
                for au in aus {
                    self.note_fps(&au);
                    let pacer = pacer.get_or_insert_with(|| Pacer {
                        start_us: clock.now_us(),
                        interval_us: 1e6 / self.detected_fps.unwrap_or(self.default_fps),
                        frames: 0,
                    });
                    let deadline = pacer.deadline(clock.now_us());
                    if !sleep_until(&*clock, deadline, stop) {
                        return Ok(());
                    }
                    feeder.publish(au, &*clock, reporter);
                }
                feeder.check_errors(reporter);
            }
            if !looped {
                reporter.report(SourceState::Failed(format!(
                    "reached the end of {} after {} frames (looping is off); \
                     the pipe source has stopped",
                    path.display(),
                    feeder.published
                )));
                return Ok(());
            }
            if feeder.published == published_before {
                reporter.report(SourceState::Failed(format!(
                    "{} holds no decodable H.264 Annex B access units; \
                     retrying in {:.1} s",
                    path.display(),
                    EMPTY_FILE_RETRY_US as f64 / 1e6
                )));
                let deadline = clock.now_us() + EMPTY_FILE_RETRY_US;
                if !sleep_until(&*clock, deadline, stop) {
                    return Ok(());
                }
            }
        }
    }

    fn run_command(
        &mut self,
        cmd: &str,
        reporter: &mut Reporter,
        stop: &StopFlag,
    ) -> Result<(), CaptureError> {
        let clock = Arc::clone(&self.clock);
        let mut backoff_us = BACKOFF_INITIAL_US;
        loop {
            if stop.is_stopped() {
                return Ok(());
            }
            let started = clock.now_us();
            let mut feeder = Feeder::new();
            let why = match spawn_command(cmd) {
                Err(e) => format!("command `{cmd}` failed to start: {e}"),
                Ok(mut child) => {
                    let end = match child.stdout.take() {
                        Some(stdout) => match spawn_reader(stdout, "cmd") {
                            Ok(rx) => self.pump_live(&rx, &mut feeder, reporter, stop),
                            Err(e) => LiveEnd::Error(e),
                        },
                        None => LiveEnd::Error(io::Error::other("stdout not captured")),
                    };
                    match end {
                        LiveEnd::Stopped => {
                            terminate(&mut child);
                            return Ok(());
                        }
                        LiveEnd::Error(e) => {
                            terminate(&mut child);
                            format!("reading the output of command `{cmd}` failed: {e}")
                        }
                        LiveEnd::Eof => match wait_exit(&mut child, stop) {
                            None => return Ok(()),
                            Some(status) => format!(
                                "command `{cmd}` exited with status {} after {} frames",
                                describe_status(status),
                                feeder.published
                            ),
                        },
                    }
                }
            };
            let ran_us = clock.now_us().saturating_sub(started);
            if ran_us >= HEALTHY_RUN_US && feeder.published > 0 {
                backoff_us = BACKOFF_INITIAL_US;
            }
            reporter.report(SourceState::Failed(format!(
                "{why}; restarting in {:.1} s",
                backoff_us as f64 / 1e6
            )));
            let deadline = clock.now_us() + backoff_us;
            backoff_us = (backoff_us * 2).min(BACKOFF_MAX_US);
            if !sleep_until(&*clock, deadline, stop) {
                return Ok(());
            }
        }
    }
}

/// `sh -c cmd` in its own process group (so the whole pipeline can be
/// stopped), stdout piped to us, stderr forwarded to the log.
fn spawn_command(cmd: &str) -> io::Result<Child> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let Some(stderr) = child.stderr.take() {
        let label = format!("command `{cmd}`");
        if let Err(e) = std::thread::Builder::new()
            .name("pipe-stderr".into())
            .spawn(move || forward_stderr(stderr, &label))
        {
            tracing::warn!("cannot forward the command's stderr: {e}");
        }
    }
    Ok(child)
}

/// Log each stderr line of the command (lines cut at [`MAX_STDERR_LINE`]).
fn forward_stderr(mut stderr: ChildStderr, label: &str) {
    let mut buf = [0u8; 4096];
    let mut line = Vec::new();
    let mut truncated = false;
    let emit = |line: &mut Vec<u8>, truncated: &mut bool| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if !text.is_empty() {
            let more = if *truncated { " […]" } else { "" };
            tracing::info!(source = %label, "stderr: {text}{more}");
        }
        line.clear();
        *truncated = false;
    };
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                emit(&mut line, &mut truncated);
            } else if line.len() < MAX_STDERR_LINE {
                line.push(b);
            } else {
                truncated = true;
            }
        }
    }
    emit(&mut line, &mut truncated);
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Wait for the command to exit after its stdout closed; one that lingers for
/// [`LINGER_POLLS`] polls without stdout is terminated. `None` if stopped
/// first (the command is then terminated too).
fn wait_exit(child: &mut Child, stop: &StopFlag) -> Option<ExitStatus> {
    for _ in 0..LINGER_POLLS {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("waiting for the pipe command: {e}");
                terminate(child);
                return child.wait().ok();
            }
        }
        if stop.is_stopped() {
            terminate(child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!("the pipe command closed its stdout but did not exit; terminating it");
    terminate(child);
    child.wait().ok()
}

/// Stop the command and everything it started: SIGTERM to its process group,
/// SIGKILL to whatever is left after [`KILL_GRACE_US`], then reap it.
///
/// The child is reaped only after both signals, so its PID (which names the
/// group) cannot have been reused by an unrelated process in between.
fn terminate(child: &mut Child) {
    let pgid = child.id();
    let signal_group = |signal: &str| {
        // The child leads its own process group (`process_group(0)`), so
        // `-pgid` reaches the pipeline it started, and nothing else.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{signal} -- -{pgid} 2>/dev/null"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    signal_group("TERM");
    std::thread::sleep(Duration::from_micros(KILL_GRACE_US));
    signal_group("KILL");
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
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
    #[derive(Default)]
    struct FakeClock {
        now: AtomicU64,
    }

    impl Clock for FakeClock {
        fn now_us(&self) -> u64 {
            self.now.load(Ordering::SeqCst)
        }
        fn wall_us(&self) -> u64 {
            1_700_000_000_000_000 + self.now_us()
        }
        fn sleep_until_us(&self, deadline_us: u64) {
            self.now.fetch_max(deadline_us, Ordering::SeqCst);
        }
    }

    fn fixture_aus() -> Vec<AssembledAu> {
        let data = std::fs::read(FIXTURE).unwrap();
        let mut a = AccessUnitAssembler::new();
        let mut aus = a.push(&data);
        aus.extend(a.finish());
        aus
    }

    /// Run `source` on a thread; return once it ends or after `timeout`.
    fn run_for(
        mut source: PipeSource,
        sink: Arc<RecordingSink>,
        stop: StopFlag,
        until: impl Fn(&RecordingSink) -> bool,
        timeout: Duration,
    ) -> Result<(), CaptureError> {
        let thread_sink = Arc::clone(&sink);
        let thread_stop = stop.clone();
        let handle = std::thread::spawn(move || source.run(&*thread_sink, &thread_stop));
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
        let clock = Arc::new(FakeClock::default());
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
        assert!(result.is_ok(), "{result:?}");
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
        let source = PipeSource::new(input, 30.0, Arc::new(FakeClock::default()));
        let result = run_for(
            source,
            Arc::clone(&sink),
            stop,
            |s| s.aus.lock().unwrap().len() >= 150,
            Duration::from_secs(20),
        );
        assert!(result.is_ok());
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
        let mut source = PipeSource::new(input, 30.0, Arc::new(FakeClock::default()));
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
        assert!(result.is_ok());
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
        assert!(result.is_ok());
        assert!(sink.aus().is_empty());
        let states = sink.states();
        let Some(SourceState::Failed(reason)) = states.last() else {
            panic!("{states:?}");
        };
        assert!(reason.contains("no H.264 Annex B start code"), "{reason}");
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
        let mut source = TestPattern::new(cfg, Arc::new(FakeClock::default())).unwrap();
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
}
