//! The command behind `pipe:<command>`: started in its own process group
//! with its stderr forwarded to the log, waited for, and stopped with
//! everything it started.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::StopFlag;

/// How long a command gets to exit after SIGTERM before SIGKILL.
const KILL_GRACE_US: u64 = 200_000;
/// 20 ms polls a command may live on after closing its stdout (5 s).
const LINGER_POLLS: u32 = 250;
/// Longest stderr line forwarded to the log.
const MAX_STDERR_LINE: usize = 4096;

/// `sh -c cmd` in its own process group (so the whole pipeline can be
/// stopped), stdout piped to us, stderr forwarded to the log.
pub(crate) fn spawn_command(cmd: &str) -> io::Result<Child> {
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

pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Wait for the command to exit after its stdout closed; one that lingers for
/// [`LINGER_POLLS`] polls without stdout is terminated. `None` if stopped
/// first (the command is then terminated too).
pub(crate) fn wait_exit(child: &mut Child, stop: &StopFlag) -> Option<ExitStatus> {
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
pub(crate) fn terminate(child: &mut Child) {
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
