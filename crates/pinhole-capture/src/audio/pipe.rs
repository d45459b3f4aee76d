//! `pipe:<command>` (and `alsa:`, through `arecord`): raw s16le PCM from a
//! command's stdout, stamped on the capture clock as it is read.

use std::io::{self, Read};
use std::process::ChildStdout;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pinhole_media::Clock;

use super::pcm::{check_plausible, container_magic, Framer};
use super::{AudioConfig, Publisher, POLL_US};
use crate::pipe::command::{describe_status, spawn_command, terminate};
use crate::{CaptureError, StopFlag};

/// Bytes read at a time: small, so reads return as soon as sound arrives.
const READ_BYTES: usize = 4096;
/// Frames held back at the start until the input is known to be sound.
const PROBE_FRAMES: usize = 10;
/// A command that sends nothing for this long is treated as lost.
const SILENT_US: u64 = 5_000_000;

enum Msg {
    /// Bytes and when the read returned (capture clock, µs).
    Data(Vec<u8>, u64),
    Eof,
    Err(io::Error),
}

fn spawn_reader(mut out: ChildStdout, clock: Arc<dyn Clock>) -> io::Result<Receiver<Msg>> {
    let (tx, rx) = sync_channel(64);
    std::thread::Builder::new()
        .name("audio-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; READ_BYTES];
            loop {
                let msg = match out.read(&mut buf) {
                    Ok(0) => Msg::Eof,
                    Ok(n) => Msg::Data(buf[..n].to_vec(), clock.now_us()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Msg::Err(e),
                };
                let done = !matches!(msg, Msg::Data(..));
                if tx.send(msg).is_err() || done {
                    return;
                }
            }
        })?;
    Ok(rx)
}

pub(super) fn run(
    cmd: &str,
    c: &AudioConfig,
    out: &mut Publisher,
    clock: Arc<dyn Clock>,
    stop: &StopFlag,
) -> Result<(), CaptureError> {
    let mut child = spawn_command(cmd).map_err(|source| CaptureError::Io {
        what: format!("starting the audio command `{cmd}`"),
        source,
    })?;
    let Some(stdout) = child.stdout.take() else {
        terminate(&mut child);
        return Err(CaptureError::Other(
            "the audio command has no stdout".into(),
        ));
    };
    let rx = match spawn_reader(stdout, clock) {
        Ok(rx) => rx,
        Err(source) => {
            terminate(&mut child);
            return Err(CaptureError::Io {
                what: "starting the audio reader thread".into(),
                source,
            });
        }
    };
    let result = pump(&rx, c, out, stop);
    terminate(&mut child);
    match result {
        Ok(()) => Ok(()),
        Err(Ended::Input(e)) => Err(e),
        Err(Ended::Closed) => {
            let how = child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| format!("exited with status {}", describe_status(s)))
                .unwrap_or_else(|| "closed its output".into());
            Err(CaptureError::Ended(format!("audio command `{cmd}` {how}")))
        }
    }
}

enum Ended {
    /// The command's output ended.
    Closed,
    /// Bad input or an I/O error.
    Input(CaptureError),
}

fn pump(
    rx: &Receiver<Msg>,
    c: &AudioConfig,
    out: &mut Publisher,
    stop: &StopFlag,
) -> Result<(), Ended> {
    let mut framer = Framer::new(c.frame_len());
    let ch = u64::from(c.channels);
    let rate = u64::from(c.rate);
    let mut probe: Option<Vec<(Vec<i16>, u64)>> = Some(Vec::new());
    let mut first = true;
    let mut last_data = out.clock.now_us();
    loop {
        if stop.is_stopped() {
            return Ok(());
        }
        let (bytes, at) = match rx.recv_timeout(Duration::from_micros(POLL_US)) {
            Ok(Msg::Data(b, at)) => (b, at),
            Ok(Msg::Eof) | Err(RecvTimeoutError::Disconnected) => return Err(Ended::Closed),
            Ok(Msg::Err(e)) => {
                return Err(Ended::Input(CaptureError::Io {
                    what: "reading the audio command's output".into(),
                    source: e,
                }))
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = out.clock.now_us();
                if now.saturating_sub(last_data) > SILENT_US {
                    return Err(Ended::Input(CaptureError::Lost(format!(
                        "no audio for {} s",
                        SILENT_US / 1_000_000
                    ))));
                }
                continue;
            }
        };
        last_data = out.clock.now_us();
        if first {
            first = false;
            if let Some(what) = container_magic(&bytes) {
                return Err(Ended::Input(bad_input(format!(
                    "the input is {what}, not raw s16le PCM (e.g. `ffmpeg … -f s16le -ar {} -ac {} -`)",
                    c.rate, c.channels
                ))));
            }
        }
        let frames = framer.push(&bytes);
        let m = frames.len() as u64;
        // The last byte read was captured at `at`; earlier samples before it.
        let pending = framer.pending() as u64 / ch;
        for (j, frame) in frames.into_iter().enumerate() {
            let after = pending + (m - 1 - j as u64) * rate / 50;
            let end = at.saturating_sub(after * 1_000_000 / rate);
            let pts = end.saturating_sub(super::FRAME_US);
            match &mut probe {
                Some(held) => {
                    held.push((frame, pts));
                    if held.len() >= PROBE_FRAMES {
                        let all: Vec<i16> = held.iter().flat_map(|(f, _)| f.clone()).collect();
                        check_plausible(&all).map_err(|why| Ended::Input(bad_input(why)))?;
                        for (f, p) in std::mem::take(held) {
                            out.publish(&f, p).map_err(Ended::Input)?;
                        }
                        probe = None;
                    }
                }
                None => out.publish(&frame, pts).map_err(Ended::Input)?,
            }
        }
    }
}

fn bad_input(reason: String) -> CaptureError {
    CaptureError::InvalidConfig {
        source_kind: "audio pipe",
        reason,
    }
}
