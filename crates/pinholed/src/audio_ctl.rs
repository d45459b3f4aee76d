//! The audio source as a setting: started with the daemon, switched on,
//! off or to another device from the settings page (`PUT /api/camera`
//! `{"audio": N}`, admin), without touching the video (docs/audio.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pinhole_capture::audio::{parse_spec, AudioSource};
use pinhole_capture::{Source, Supervisor};
use pinhole_hub::Feed;
use pinhole_media::Clock;
use pinhole_server::camera::{Kind, Num, Setting};
use pinhole_server::AppState;

use crate::audio_pair::microphone_for;
use crate::camera_ctl::Active;
use crate::config::{AudioConfig, Config};

/// `[audio] source = "auto"`: the microphone of the webcam that runs.
pub const AUTO: &str = "auto";
/// How often `auto` looks whether the camera changed.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// How long a switch waits for the previous source to let go of its device.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// Menu values: off, the test tone, "as in the config file" (a pipe, or a
/// device not found now); ALSA devices are `ALSA_BASE + card * 100 + device`.
const OFF: i64 = 0;
const TEST: i64 = 1;
const CONFIGURED: i64 = 2;
const AUTO_V: i64 = 3;
const ALSA_BASE: i64 = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An ALSA capture device from /proc/asound/pcm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureDevice {
    pub card: u32,
    pub device: u32,
    pub name: String,
}

impl CaptureDevice {
    /// Through ALSA's plug layer, which converts rate and format.
    pub fn spec(&self) -> String {
        format!("alsa:plughw:{},{}", self.card, self.device)
    }
}

/// Capture devices listed in /proc/asound/pcm
/// (`01-00: USB Audio : USB Audio : capture 1`).
pub fn parse_proc_pcm(text: &str) -> Vec<CaptureDevice> {
    text.lines()
        .filter_map(|line| {
            let (id, rest) = line.split_once(':')?;
            let (card, device) = id.trim().split_once('-')?;
            let fields: Vec<&str> = rest.split(" : ").map(str::trim).collect();
            if !fields.iter().any(|f| f.starts_with("capture")) {
                return None;
            }
            Some(CaptureDevice {
                card: card.parse().ok()?,
                device: device.parse().ok()?,
                name: fields.first().copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn capture_devices() -> Vec<CaptureDevice> {
    std::fs::read_to_string("/proc/asound/pcm")
        .map(|t| parse_proc_pcm(&t))
        .unwrap_or_default()
}

/// Runs the configured audio source, if any, on its own supervisor and feed.
pub struct AudioCtl {
    state: Arc<AppState>,
    clock: Arc<dyn Clock>,
    /// The video source running now: `auto` pairs its microphone.
    active: Active,
    /// Where sysfs is (`/sys`; a fake tree in tests).
    sys: PathBuf,
    /// The `[audio]` settings last applied, and the source spec they
    /// resolved to (`auto` becomes a device or `none`).
    applied: Mutex<Option<(AudioConfig, String)>>,
    running: Mutex<Option<(Arc<Supervisor>, Arc<Feed>)>>,
    stop: AtomicBool,
}

impl AudioCtl {
    pub fn new(
        state: Arc<AppState>,
        clock: Arc<dyn Clock>,
        active: Active,
        sys: PathBuf,
    ) -> AudioCtl {
        AudioCtl {
            state,
            clock,
            active,
            sys,
            applied: Mutex::new(None),
            running: Mutex::new(None),
            stop: AtomicBool::new(false),
        }
    }

    /// What `source` means now: `auto` is the microphone of the USB camera
    /// that runs (audio_pair.rs), else `none`; anything else is itself.
    fn resolve(&self, source: &str) -> String {
        if source != AUTO {
            return source.to_owned();
        }
        match self.active.get() {
            ("v4l2", Some(dev)) => microphone_for(&self.sys, &dev)
                .map(|m| m.spec())
                .unwrap_or_else(|| "none".into()),
            _ => "none".into(),
        }
    }

    /// Runs what `cfg.audio` says (after stopping what ran before).
    pub fn apply(&self, cfg: &Config) -> Result<(), String> {
        let spec = self.resolve(&cfg.audio.source);
        if cfg.audio.source == AUTO {
            tracing::info!("audio auto: {spec}");
        }
        self.run(&cfg.audio, &spec)?;
        *lock(&self.applied) = Some((cfg.audio.clone(), spec));
        Ok(())
    }

    /// With `auto`, follows the camera: a webcam plugged in (or swapped)
    /// brings its microphone, one unplugged takes it away. Checks every
    /// [`FOLLOW_EVERY`] on its own thread, until [`AudioCtl::shutdown`].
    pub fn follow_camera(self: &Arc<Self>) -> std::io::Result<()> {
        let me = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("audio-auto".into())
            .spawn(move || loop {
                std::thread::sleep(FOLLOW_EVERY);
                let Some(ctl) = me.upgrade() else { return };
                if ctl.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some((audio, was)) = lock(&ctl.applied).clone() else {
                    continue;
                };
                if audio.source != AUTO {
                    continue;
                }
                let now = ctl.resolve(AUTO);
                if now != was {
                    tracing::info!("audio auto: the camera changed, {was} -> {now}");
                    if let Err(e) = ctl.run(&audio, &now) {
                        tracing::error!("audio auto: {e}");
                    }
                    *lock(&ctl.applied) = Some((audio, now));
                }
            })
            .map(|_| ())
    }

    fn run(&self, audio: &AudioConfig, spec: &str) -> Result<(), String> {
        let input = parse_spec(spec)?;
        let source = match input {
            Some(i) => Some(
                AudioSource::new(audio.capture(), i, self.clock.clone())
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut running = lock(&self.running);
        if let Some((sup, feed)) = running.take() {
            sup.shutdown();
            // The old source removes its track when it ends; wait for that
            // (and for its device to be free) before the next one starts.
            let until = Instant::now() + STOP_WAIT;
            while feed.has_tracks() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        *lock(&self.state.audio) = None;
        let Some(source) = source else {
            tracing::info!("audio off");
            return Ok(());
        };
        let info = source.info();
        tracing::info!(kind = info.kind, detail = %info.detail, "audio source");
        let feed = Feed::new(self.state.hub.clone(), info, self.clock.clone());
        let sup = Supervisor::spawn(Box::new(source), feed.clone(), self.clock.clone())
            .map_err(|e| e.to_string())?;
        *lock(&self.state.audio) = Some(feed.clone());
        *running = Some((sup, feed));
        Ok(())
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some((sup, _)) = lock(&self.running).take() {
            sup.shutdown();
        }
    }

    /// The `audio` setting: off, the test tone, each ALSA capture device
    /// found now, and the configured source when it is none of those.
    pub fn setting(cfg: &Config) -> Setting {
        let devices = capture_devices();
        let src = cfg.audio.source.as_str();
        let mut items = vec![
            (OFF, "off".to_owned()),
            (AUTO_V, "the camera's own microphone (auto)".to_owned()),
            (TEST, "test tone".to_owned()),
        ];
        let mut value = match src {
            "none" | "" => OFF,
            "test" => TEST,
            AUTO => AUTO_V,
            _ => CONFIGURED,
        };
        for d in &devices {
            let v = ALSA_BASE + i64::from(d.card) * 100 + i64::from(d.device);
            let same = [d.spec(), format!("alsa:hw:{},{}", d.card, d.device)];
            if same.iter().any(|s| s == src) {
                value = v;
            }
            items.push((v, format!("hw:{},{} {}", d.card, d.device, d.name)));
        }
        if value == CONFIGURED {
            items.push((CONFIGURED, format!("as configured ({})", short(src))));
        }
        Setting {
            key: "audio".into(),
            label: "Sound".into(),
            kind: Kind::Menu(items),
            value: Num::Int(value),
            default: None,
            supported: true,
            live: true,
            note: Some(if devices.is_empty() {
                "no ALSA capture device found; a pipe: source is set in the config file".into()
            } else {
                "sound from a microphone, or the test tone; the picture is not restarted".into()
            }),
        }
    }

    /// The `[audio] source` a menu value stands for.
    pub fn source_for(value: i64, cfg: &Config) -> Result<String, String> {
        match value {
            OFF => Ok("none".into()),
            TEST => Ok("test".into()),
            AUTO_V => Ok(AUTO.into()),
            CONFIGURED => Ok(cfg.audio.source.clone()),
            v if v >= ALSA_BASE => {
                let (card, device) = ((v - ALSA_BASE) / 100, (v - ALSA_BASE) % 100);
                capture_devices()
                    .into_iter()
                    .find(|d| i64::from(d.card) == card && i64::from(d.device) == device)
                    .map(|d| d.spec())
                    .ok_or_else(|| format!("audio: no capture device hw:{card},{device} now"))
            }
            v => Err(format!("audio: {v} is not a choice")),
        }
    }
}

/// A command line is configuration: the menu shows its start only.
fn short(src: &str) -> String {
    let s: String = src.chars().take(32).collect();
    if s.len() < src.len() {
        format!("{s}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_devices_from_proc_asound_pcm() {
        let text = "00-00: ALC3232 Analog : ALC3232 Analog : playback 1 : capture 1\n\
                    00-03: HDMI 0 : HDMI 0 : playback 1\n\
                    01-00: USB Audio : USB Audio : capture 1\n\
                    garbage line\n";
        assert_eq!(
            parse_proc_pcm(text),
            vec![
                CaptureDevice {
                    card: 0,
                    device: 0,
                    name: "ALC3232 Analog".into()
                },
                CaptureDevice {
                    card: 1,
                    device: 0,
                    name: "USB Audio".into()
                },
            ]
        );
        assert_eq!(parse_proc_pcm(text)[1].spec(), "alsa:plughw:1,0");
    }

    #[test]
    fn menu_values_map_to_sources() {
        let mut cfg = Config::default();
        assert_eq!(AudioCtl::source_for(OFF, &cfg).unwrap(), "none");
        assert_eq!(AudioCtl::source_for(TEST, &cfg).unwrap(), "test");
        assert_eq!(AudioCtl::source_for(AUTO_V, &cfg).unwrap(), "auto");
        cfg.audio.source = "pipe:arecord -D hw:1".into();
        assert_eq!(
            AudioCtl::source_for(CONFIGURED, &cfg).unwrap(),
            "pipe:arecord -D hw:1"
        );
        assert!(AudioCtl::source_for(7, &cfg).is_err());
        let s = AudioCtl::setting(&cfg);
        assert_eq!(s.value, Num::Int(CONFIGURED));
    }
}
