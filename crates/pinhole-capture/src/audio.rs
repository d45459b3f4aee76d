//! Where sound enters: audio sources, run by the same
//! [`supervisor`](crate::supervisor) as the video on a thread of their own, encoded to
//! Opus and published on an audio track of the sink
//! ([`FrameSink::add_track`], [`FrameSink::publish_on`]) with capture times
//! from the same clock as the video (docs/audio.md).
//!
//! * `test`: a quiet tone with a click at every whole second of the capture
//!   clock, when the test pattern flashes its marker ([`tone`]);
//! * `pipe:<command>`: raw s16le PCM at the configured rate and channels;
//! * `alsa:<device>`: the same through `arecord` (docs/audio.md says why).
//!
//! A failed input removes the track (players and muxers see video alone
//! rather than wait for sound that does not come), and the supervisor
//! restarts it with backoff; the track comes back with the sound.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pinhole_media::{AccessUnit, Clock, Codec, OpusConfig};
use pinhole_source_api::TrackId;

use crate::supervisor::Backoff;
use crate::{CaptureError, FrameSink, RetryPolicy, Source, SourceInfo, SourceState, StopFlag};

mod encoder;
pub mod pcm;
mod pipe;
#[cfg(all(test, feature = "opus"))]
mod tests;
pub mod tone;

use encoder::OpusEncoder;

/// Frame length: 20 ms (Opus's default; latency stays small).
pub const FRAME_US: u64 = 20_000;
/// Input rates Opus encodes without resampling.
pub const RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Longest single sleep or wait, so a stop request is noticed promptly.
const POLL_US: u64 = 100_000;
/// How an audio command or device is restarted: like a video pipe.
const RETRY: RetryPolicy = RetryPolicy {
    first: Duration::from_millis(500),
    max: Duration::from_secs(10),
    healthy_run: Duration::from_secs(30),
    verb: "retrying",
    lost: "audio source failed",
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioConfig {
    /// Input sample rate (Hz): one of [`RATES`].
    pub rate: u32,
    /// 1 or 2.
    pub channels: u8,
    /// Opus bitrate, bit/s: 6000..=510000.
    pub bitrate: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            rate: 48_000,
            channels: 1,
            bitrate: 48_000,
        }
    }
}

impl AudioConfig {
    pub fn validate(&self) -> Result<(), CaptureError> {
        let bad = |reason: String| {
            Err(CaptureError::InvalidConfig {
                source_kind: "audio",
                reason,
            })
        };
        if !RATES.contains(&self.rate) {
            return bad(format!(
                "sample rate {} Hz: Opus takes 8000, 12000, 16000, 24000 or 48000 Hz \
                 (resample in the command, e.g. `arecord -r 48000`)",
                self.rate
            ));
        }
        if !(1..=2).contains(&self.channels) {
            return bad(format!("{} channels: 1 or 2", self.channels));
        }
        if !(6_000..=510_000).contains(&self.bitrate) {
            return bad(format!(
                "bitrate {} bit/s outside 6000..=510000",
                self.bitrate
            ));
        }
        Ok(())
    }

    /// Samples per frame, all channels together.
    pub fn frame_len(&self) -> usize {
        (self.rate as usize / 50) * usize::from(self.channels)
    }
}

/// Where the sound comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioInput {
    /// The test tone ([`tone`]).
    Tone,
    /// A shell command writing raw s16le PCM to stdout.
    Command(String),
    /// An ALSA capture device (`hw:1,0`, `default`), read through `arecord`.
    Alsa(String),
}

/// Parses `--audio`: `none` (no audio), `test`, `pipe:<command>`,
/// `alsa:<device>`.
pub fn parse_spec(spec: &str) -> Result<Option<AudioInput>, String> {
    match spec {
        "none" | "" => Ok(None),
        "test" => Ok(Some(AudioInput::Tone)),
        _ if spec.starts_with("pipe:") => {
            let cmd = spec["pipe:".len()..].trim();
            if cmd.is_empty() {
                return Err("audio pipe: no command after `pipe:`".into());
            }
            Ok(Some(AudioInput::Command(cmd.to_owned())))
        }
        _ if spec.starts_with("alsa:") => {
            let dev = &spec["alsa:".len()..];
            let ok = !dev.is_empty()
                && dev
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":,=_.-".contains(c));
            if !ok {
                return Err(format!(
                    "audio device `{dev}`: expected an ALSA name such as hw:1,0, plughw:CARD=Mic or default"
                ));
            }
            Ok(Some(AudioInput::Alsa(dev.to_owned())))
        }
        _ => Err(format!(
            "unknown audio source `{spec}`: none, auto, test, pipe:<command> or alsa:<device>"
        )),
    }
}

pub struct AudioSource {
    cfg: AudioConfig,
    input: AudioInput,
    clock: Arc<dyn Clock>,
}

impl AudioSource {
    pub fn new(
        cfg: AudioConfig,
        input: AudioInput,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CaptureError> {
        cfg.validate()?;
        Ok(AudioSource { cfg, input, clock })
    }

    /// The command an ALSA device is read with: `arecord` (alsa-utils) in
    /// raw s16le at our rate and channel count; ALSA's plug layer converts
    /// when the device is opened as `plughw:`/`default`.
    fn alsa_command(&self, device: &str) -> String {
        format!(
            "exec arecord -q -D '{device}' -t raw -f S16_LE -r {} -c {}",
            self.cfg.rate, self.cfg.channels
        )
    }
}

impl Source for AudioSource {
    fn info(&self) -> SourceInfo {
        let c = &self.cfg;
        let (kind, what) = match &self.input {
            AudioInput::Tone => ("audio-test", "test tone with a click every second".into()),
            AudioInput::Command(cmd) => ("audio-pipe", format!("command `{cmd}`")),
            AudioInput::Alsa(dev) => ("audio-alsa", format!("ALSA device {dev}")),
        };
        SourceInfo {
            kind,
            detail: format!(
                "{what}, {} Hz, {} ch, Opus {} kbit/s",
                c.rate,
                c.channels,
                c.bitrate / 1000
            ),
            fps: None,
            bitrate: Some(c.bitrate),
            keyframe_interval: None,
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        match self.input {
            AudioInput::Tone => RetryPolicy::DEFAULT,
            _ => RETRY,
        }
    }

    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError> {
        sink.report(SourceState::Starting);
        let c = &self.cfg;
        let enc = OpusEncoder::new(c.rate, c.channels, c.bitrate)?;
        let config = OpusConfig {
            channels: c.channels,
            // Look-ahead in 48 kHz samples, which a decoder drops at the start.
            pre_skip: (u64::from(enc.lookahead()) * 48_000 / u64::from(c.rate)) as u16,
            input_sample_rate: c.rate,
        };
        let track = sink
            .add_track(Codec::Opus(config))
            .ok_or_else(|| CaptureError::Other("the stream carries no audio track".into()))?;
        let mut out = Publisher {
            sink,
            track,
            lookahead_us: u64::from(enc.lookahead()) * 1_000_000 / u64::from(c.rate),
            enc,
            clock: &*self.clock,
            running: false,
            end_us: None,
            published: 0,
        };
        let result = match &self.input {
            AudioInput::Tone => run_tone(c, &mut out, stop),
            _ => self.run_device(&mut out, stop),
        };
        // Stopped (switched off or to another device): viewers get the
        // video alone from the next keyframe.
        sink.remove_track(track);
        result
    }
}

impl AudioSource {
    /// One run of the command or ALSA device, until it fails or stops.
    fn run_input(&self, out: &mut Publisher, stop: &StopFlag) -> Result<(), CaptureError> {
        let c = &self.cfg;
        match &self.input {
            AudioInput::Tone => run_tone(c, out, stop),
            AudioInput::Command(cmd) => pipe::run(cmd, c, out, self.clock.clone(), stop),
            AudioInput::Alsa(dev) => {
                let cmd = self.alsa_command(dev);
                pipe::run(&cmd, c, out, self.clock.clone(), stop).map_err(|e| match e {
                    CaptureError::Ended(why) | CaptureError::Lost(why) => {
                        CaptureError::Lost(format!("ALSA device {dev}: {why}"))
                    }
                    e => e,
                })
            }
        }
    }

    /// A microphone or command that fails after it delivered sound is
    /// restarted here, with the
    /// supervisor's backoff, and the track is kept and filled with encoded
    /// silence meanwhile: removing it would start a new stream generation
    /// (ending `/stream.mp4` downloads, re-initialising every fMP4 player),
    /// and a declared track without samples stalls MSE players, whose
    /// buffered range is the intersection of their tracks'.
    fn run_device(&self, out: &mut Publisher, stop: &StopFlag) -> Result<(), CaptureError> {
        let mut backoff = Backoff::new(RETRY);
        loop {
            let started = self.clock.now_us();
            let published = out.published;
            let result = self.run_input(out, stop);
            if stop.is_stopped() {
                return Ok(());
            }
            let e = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if out.published == 0 {
                // Never delivered: nothing to keep going; the supervisor
                // retries (and the track goes until there is sound).
                return Err(e);
            }
            let ran = Duration::from_micros(self.clock.now_us().saturating_sub(started));
            let wait = backoff.failed(ran, out.published > published);
            let wait_s = wait.as_secs_f64();
            tracing::warn!(reason = %e, retry_s = wait_s, "{}", RETRY.lost);
            out.sink.report(SourceState::Failed(format!(
                "{e}; {} in {wait_s:.1} s (silence meanwhile)",
                RETRY.verb
            )));
            out.running = false;
            let until = self.clock.now_us() + wait.as_micros() as u64;
            if !fill_silence(&self.cfg, out, until, stop)? {
                return Ok(());
            }
            out.running = false;
            out.sink.report(SourceState::Starting);
        }
    }
}

/// Publishes encoded silence on the 20 ms grid from where the sound stopped
/// until `until_us`, each frame once its time has passed. False if asked to
/// stop.
fn fill_silence(
    c: &AudioConfig,
    out: &mut Publisher,
    until_us: u64,
    stop: &StopFlag,
) -> Result<bool, CaptureError> {
    let clock = out.clock;
    let zeros = vec![0i16; c.frame_len()];
    let mut at = out.end_us.unwrap_or_else(|| clock.now_us());
    while at + FRAME_US <= until_us {
        if !sleep_until(clock, at + FRAME_US, stop) {
            return Ok(false);
        }
        let behind = clock.now_us().saturating_sub(FRAME_US);
        if behind > at + 25 * FRAME_US {
            // Half a second behind (a suspended process): skip, not burst.
            at = behind;
        }
        out.send(&zeros, at)?;
        at += FRAME_US;
    }
    Ok(sleep_until(clock, until_us, stop))
}

/// Encodes frames and publishes them on the audio track.
struct Publisher<'a> {
    sink: &'a dyn FrameSink,
    track: TrackId,
    enc: OpusEncoder,
    /// The encoder's delay: a packet's decoded sound starts this much
    /// before the first sample it was given.
    lookahead_us: u64,
    clock: &'a dyn Clock,
    running: bool,
    /// Where the last frame ended (capture clock, before the look-ahead
    /// is taken off): frames never overlap, silence continues from here.
    end_us: Option<u64>,
    /// Frames published, silence included.
    published: u64,
}

impl Publisher<'_> {
    /// One frame of sound whose first sample was captured at `pts_us`.
    fn publish(&mut self, pcm: &[i16], pts_us: u64) -> Result<(), CaptureError> {
        self.send(pcm, pts_us)?;
        if !self.running {
            self.running = true;
            self.sink.report(SourceState::Running);
        }
        Ok(())
    }

    /// Encodes and publishes one frame (sound or the silence of a gap).
    fn send(&mut self, pcm: &[i16], pts_us: u64) -> Result<(), CaptureError> {
        let packet = self.enc.encode(pcm)?;
        // A restarted device's first frame may be stamped a little before
        // the last silence frame ended: never go back in time.
        let pts_us = pts_us.max(self.end_us.unwrap_or(0));
        self.end_us = Some(pts_us + FRAME_US);
        self.published += 1;
        let pts_us = pts_us.saturating_sub(self.lookahead_us);
        let age = self.clock.now_us().saturating_sub(pts_us);
        self.sink.publish_on(
            self.track,
            AccessUnit {
                data: Bytes::from(packet),
                pts_us,
                wallclock_us: self.clock.wall_us().saturating_sub(age),
                keyframe: true,
            },
        );
        Ok(())
    }
}

/// Sleep until `deadline_us` in short steps; false if asked to stop.
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

/// The test tone, frame `k` covering `[k, k + 1) * 20 ms` of the capture
/// clock and published once that time has passed (as a microphone would).
fn run_tone(c: &AudioConfig, out: &mut Publisher, stop: &StopFlag) -> Result<(), CaptureError> {
    let clock = out.clock;
    let mut buf = vec![0i16; c.frame_len()];
    let per_frame = u64::from(c.rate) / 50;
    let mut k = clock.now_us().div_ceil(FRAME_US);
    loop {
        if !sleep_until(clock, (k + 1) * FRAME_US, stop) {
            return Ok(());
        }
        let behind = clock.now_us() / FRAME_US;
        if behind > k + 25 {
            // Half a second behind (a suspended process): skip, not burst.
            k = behind - 1;
        }
        tone::fill(c.rate, usize::from(c.channels), k * per_frame, &mut buf);
        out.publish(&buf, k * FRAME_US)?;
        k += 1;
    }
}
