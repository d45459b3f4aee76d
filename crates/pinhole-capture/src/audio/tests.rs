use std::sync::{Arc, Mutex};

use pinhole_media::{AccessUnit, Codec, SimClock, SystemClock};
use pinhole_source_api::TrackId;

use super::*;

/// Records the audio track's life and frames.
#[derive(Default)]
struct Rec {
    added: Mutex<Vec<Codec>>,
    frames: Mutex<Vec<AccessUnit>>,
    removed: Mutex<u32>,
    states: Mutex<Vec<SourceState>>,
    /// Frames published when the first failure was reported.
    frames_at_failure: Mutex<Option<usize>>,
}

impl FrameSink for Rec {
    fn publish(&self, _au: AccessUnit) {}
    fn report(&self, state: SourceState) {
        if matches!(state, SourceState::Failed(_)) {
            let n = self.frames.lock().unwrap().len();
            self.frames_at_failure.lock().unwrap().get_or_insert(n);
        }
        self.states.lock().unwrap().push(state);
    }
    fn add_track(&self, codec: Codec) -> Option<TrackId> {
        self.added.lock().unwrap().push(codec);
        Some(7)
    }
    fn publish_on(&self, track: TrackId, au: AccessUnit) {
        assert_eq!(track, 7);
        self.frames.lock().unwrap().push(au);
    }
    fn remove_track(&self, _track: TrackId) {
        *self.removed.lock().unwrap() += 1;
    }
}

fn decode(frames: &[AccessUnit], channels: u8) -> Vec<i16> {
    let ch = if channels == 2 {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let mut dec = opus::Decoder::new(48_000, ch).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0i16; 5760 * 2];
    for f in frames {
        let n = dec.decode(&f.data, &mut buf, false).unwrap();
        out.extend_from_slice(&buf[..n * usize::from(channels)]);
    }
    out
}

#[test]
fn config_errors_say_what_is_allowed() {
    let mut c = AudioConfig {
        rate: 44_100,
        ..AudioConfig::default()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("44100 Hz") && e.contains("48000"), "{e}");
    c = AudioConfig {
        channels: 3,
        ..AudioConfig::default()
    };
    assert!(c.validate().unwrap_err().to_string().contains("3 channels"));
    assert_eq!(parse_spec("none"), Ok(None));
    assert_eq!(parse_spec("test"), Ok(Some(AudioInput::Tone)));
    assert_eq!(
        parse_spec("pipe:arecord -f S16_LE"),
        Ok(Some(AudioInput::Command("arecord -f S16_LE".into())))
    );
    assert_eq!(
        parse_spec("alsa:hw:1,0"),
        Ok(Some(AudioInput::Alsa("hw:1,0".into())))
    );
    assert!(parse_spec("alsa:hw:1;rm -rf /").is_err());
    assert!(parse_spec("pipe:").is_err());
    assert!(parse_spec("mic")
        .unwrap_err()
        .contains("unknown audio source"));
}

#[test]
fn tone_frames_are_20_ms_on_the_capture_clock_with_the_click_at_whole_seconds() {
    // Simulated time starts 0.5 s before second 3.
    let clock = Arc::new(SimClock::new(2_500_000, 0));
    let mut src =
        AudioSource::new(AudioConfig::default(), AudioInput::Tone, clock.clone()).unwrap();
    let rec = Arc::new(Rec::default());
    let stop = StopFlag::new();
    let (r2, s2) = (rec.clone(), stop.clone());
    let t = std::thread::spawn(move || src.run(&*r2, &s2));
    while rec.added.lock().unwrap().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Until past second 3.
    while rec
        .frames
        .lock()
        .unwrap()
        .last()
        .is_none_or(|f| f.pts_us < 3_100_000)
    {
        clock.advance(5_000);
        std::thread::yield_now();
    }
    stop.stop();
    clock.advance(1_000_000);
    t.join().unwrap().unwrap();
    let frames = rec.frames.lock().unwrap().clone();
    let Codec::Opus(cfg) = &rec.added.lock().unwrap()[0] else {
        panic!("not opus")
    };
    assert_eq!((cfg.channels, cfg.input_sample_rate), (1, 48_000));
    assert_eq!(cfg.pre_skip, 120, "restricted low delay: 2.5 ms look-ahead");
    // Contiguous 20 ms packets, shifted back by the 2.5 ms look-ahead.
    let first = frames[0].pts_us + 2_500;
    assert!(
        first % 20_000 == 0 && (2_500_000..2_900_000).contains(&first),
        "{first}"
    );
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.pts_us, first + i as u64 * 20_000 - 2_500, "frame {i}");
        assert_eq!(pinhole_media::opus::packet_samples(&f.data), Some(960));
    }
    // Decoded: the click is the first loud sample, at 3.000 s.
    let pcm = decode(&frames, 1);
    let onset = pcm.iter().position(|s| s.unsigned_abs() > 8_000).unwrap();
    let onset_us = frames[0].pts_us as i64 + onset as i64 * 1_000_000 / 48_000;
    assert!(
        (onset_us - 3_000_000).abs() <= 1_000,
        "click at {onset_us} µs"
    );
    assert_eq!(
        *rec.removed.lock().unwrap(),
        1,
        "track removed when stopped"
    );
    assert!(rec.states.lock().unwrap().contains(&SourceState::Running));
}

fn run_pipe(cmd: &str) -> (Result<(), CaptureError>, Arc<Rec>) {
    let clock = Arc::new(SystemClock::new());
    let mut src = AudioSource::new(
        AudioConfig::default(),
        AudioInput::Command(cmd.into()),
        clock,
    )
    .unwrap();
    let rec = Arc::new(Rec::default());
    let r = src.run(&*rec, &StopFlag::new());
    (r, rec)
}

#[test]
fn a_pipe_of_pcm_is_encoded_and_its_end_is_an_error_saying_so() {
    // 0.5 s of a 440 Hz tone (8-bit-ish sine table through printf is
    // awkward: head -c of a tone made by awk), written at once; the exit
    // comes when that much time has passed, as for a microphone.
    let cmd = "awk 'BEGIN{for(i=0;i<24000;i++){v=int(8000*sin(i*0.0576));if(v<0)v+=65536;printf \"%c%c\", v%256, int(v/256)}}' LC_ALL=C; sleep 0.5; exit 3";
    let mut src = AudioSource::new(
        AudioConfig::default(),
        AudioInput::Command(format!("LC_ALL=C {cmd}")),
        Arc::new(SystemClock::new()),
    )
    .unwrap();
    let rec = Arc::new(Rec::default());
    let stop = StopFlag::new();
    let (r2, s2) = (rec.clone(), stop.clone());
    let t = std::thread::spawn(move || src.run(&*r2, &s2));
    // The command ends after sound: the failure is reported, the track is
    // kept and filled with silence while the command is restarted.
    let failed = |rec: &Rec| {
        rec.states.lock().unwrap().iter().find_map(|s| match s {
            SourceState::Failed(why) => Some(why.clone()),
            _ => None,
        })
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while failed(&rec).is_none() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let why = failed(&rec).expect("the end of the command is reported");
    assert!(
        why.contains("exited with status 3") && why.contains("retrying in"),
        "{why}"
    );
    let sound = rec.frames_at_failure.lock().unwrap().unwrap_or_default();
    assert!((20..=25).contains(&sound), "{sound} frames of sound");
    std::thread::sleep(std::time::Duration::from_millis(250));
    stop.stop();
    assert!(t.join().unwrap().is_ok(), "stopped, not failed");
    assert_eq!(
        *rec.removed.lock().unwrap(),
        1,
        "removed once, when stopped"
    );
    let frames = rec.frames.lock().unwrap().clone();
    let pcm = decode(&frames[..sound], 1);
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!((6_000..=10_000).contains(&peak), "peak {peak}");
    // What followed is silence on the same 20 ms grid, never overlapping.
    assert!(frames.len() >= sound + 5, "{} frames in all", frames.len());
    // (The restart comes 0.5 s after the failure: 25 frames of silence.)
    let quiet = decode(&frames[sound + 2..frames.len().min(sound + 20)], 1);
    assert!(quiet.iter().all(|s| s.unsigned_abs() < 200), "silence");
    // (From the second: the first is stamped at the clock's zero, where
    // taking the encoder's look-ahead off saturates.)
    for w in frames[1..].windows(2) {
        assert!(
            w[1].pts_us >= w[0].pts_us + 20_000,
            "{} then {}",
            w[0].pts_us,
            w[1].pts_us
        );
    }
}

#[test]
fn a_failing_command_says_why_in_its_own_words() {
    let (r, _) = run_pipe(
        "echo 'arecord: main:831: audio open error: No such file or directory' >&2; exit 1",
    );
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains(
            "exited with status 1: arecord: main:831: audio open error: No such file or directory"
        ),
        "{e}"
    );
}

#[test]
fn garbage_on_the_pipe_is_a_clear_error() {
    let (r, rec) = run_pipe("head -c 96000 /dev/urandom");
    let e = r.unwrap_err().to_string();
    assert!(e.contains("noise, not raw s16le PCM"), "{e}");
    assert!(rec.frames.lock().unwrap().is_empty(), "no roar published");
    let (r, _) = run_pipe("yes 'this is text, not sound' | head -c 96000");
    let e = r.unwrap_err().to_string();
    assert!(e.contains("text or another format"), "{e}");
    let (r, _) = run_pipe("printf 'RIFF\\044\\000\\000\\000WAVEfmt '; head -c 96000 /dev/zero");
    let e = r.unwrap_err().to_string();
    assert!(e.contains("a WAV file"), "{e}");
}

/// The cost of the audio path on one core: tone synthesis + Opus encoding
/// of 60 s of 48 kHz mono (libopus is Debian's optimised build in any
/// profile). Numbers for bench/README.md:
/// `cargo test -p pinhole-capture --lib audio::tests::encode_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn encode_cost() {
    for (channels, bitrate) in [(1u8, 48_000u32), (2, 96_000)] {
        let cfg = AudioConfig {
            channels,
            bitrate,
            ..AudioConfig::default()
        };
        let mut enc = encoder::OpusEncoder::new(cfg.rate, channels, bitrate).unwrap();
        let mut buf = vec![0i16; cfg.frame_len()];
        let t0 = std::time::Instant::now();
        let mut bytes = 0;
        for k in 0..3000u64 {
            tone::fill(cfg.rate, usize::from(channels), k * 960, &mut buf);
            bytes += enc.encode(&buf).unwrap().len();
        }
        let el = t0.elapsed().as_secs_f64();
        eprintln!(
            "{channels} ch {} kbit/s: 60 s of audio in {:.3} s: {:.2} % of a core, {:.1} kbit/s out",
            bitrate / 1000,
            el,
            el / 60.0 * 100.0,
            bytes as f64 * 8.0 / 60.0 / 1000.0
        );
    }
}
