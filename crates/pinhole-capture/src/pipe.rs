//! A source reading an H.264 Annex B byte stream from stdin, a file (paced at
//! the stream's frame rate, optionally looped) or a shell command's stdout
//! (one run per start: the supervisor restarts it with backoff when it exits).
//!
//! `--source pipe:<spec>`: `-` is stdin, an existing regular file is played
//! (looped), anything else is run with `sh -c`. For example
//! `pipe:ffmpeg -f v4l2 -i /dev/video0 -c:v libx264 -tune zerolatency -f h264 -`.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pinhole_media::annexb::{AccessUnitAssembler, AssembledAu};
use pinhole_media::h264::{find_parameter_sets, sps_fps};
use pinhole_media::{AccessUnit, Clock};

use crate::{CaptureError, FrameSink, RetryPolicy, Source, SourceInfo, SourceState, StopFlag};
use command::{describe_status, spawn_command, terminate, wait_exit};

/// Bytes read from the input at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Longest single wait, so a stop request is noticed promptly.
const POLL_US: u64 = 100_000;
/// How the supervisor restarts a command that exited: 0.5 s doubling up
/// to 10 s; one that ran 30 s with frames restarts quickly again.
const RETRY: RetryPolicy = RetryPolicy {
    first: Duration::from_millis(500),
    max: Duration::from_secs(10),
    healthy_run: Duration::from_secs(30),
    verb: "restarting",
    lost: "source failed",
};

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
        match self.input.clone() {
            PipeInput::Stdin => self.run_stdin(&mut reporter, stop),
            PipeInput::File { path, looped } => self.run_file(&path, looped, &mut reporter, stop),
            PipeInput::Command(cmd) => self.run_command(&cmd, &mut reporter, stop),
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RETRY
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
                // Replaying it at once would spin: the supervisor waits.
                return Err(CaptureError::Ended(format!(
                    "{} holds no decodable H.264 Annex B access units",
                    path.display()
                )));
            }
        }
    }

    /// One run of the command: until it exits (an `Err` saying how: the
    /// supervisor restarts it) or the source is stopped.
    fn run_command(
        &mut self,
        cmd: &str,
        reporter: &mut Reporter,
        stop: &StopFlag,
    ) -> Result<(), CaptureError> {
        let mut feeder = Feeder::new();
        let mut child = spawn_command(cmd)
            .map_err(|e| CaptureError::Ended(format!("command `{cmd}` failed to start: {e}")))?;
        let end = match child.stdout.take() {
            Some(stdout) => match spawn_reader(stdout, "cmd") {
                Ok(rx) => self.pump_live(&rx, &mut feeder, reporter, stop),
                Err(e) => LiveEnd::Error(e),
            },
            None => LiveEnd::Error(io::Error::other("stdout not captured")),
        };
        let why = match end {
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
        };
        Err(CaptureError::Ended(why))
    }
}

pub(crate) mod command;
#[cfg(test)]
mod tests;
