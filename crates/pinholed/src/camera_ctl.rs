//! Camera settings at run time (`GET/PUT /api/camera`, docs/cameras.md):
//! the daemon's [`CameraBackend`], the camera's own V4L2 controls, and
//! writing changes back to the `--config` file (`camera_ctl/persist.rs`).
//!
//! Video settings (size, rate, bitrate, keyframe interval) make the source
//! supervisor (`pinhole_capture::Supervisor`) swap in a freshly built
//! source: the HTTP side and its viewers stay; the hub starts a new stream
//! generation when the SPS changes.
//!
//! Camera controls are read from and set on the device that runs now
//! ([`Active`]) through a second file descriptor (V4L2 allows that while
//! another one streams); the chosen values ([`SavedControls`]) are applied
//! by the V4L2 source every time it opens the camera.
//!
//! A libcamera camera's controls live in the helper process: the helper
//! announces them, a `PUT` goes to it as `SetControls` and waits for its
//! answer ([`LibcameraControls`]), and the saved values are sent to every
//! helper that starts. libcamera cannot read most controls back, so the
//! values shown are those last set (or the camera's defaults).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pinhole_camera_proto::{ControlInfo, ControlType, ControlValue};
use pinhole_capture::libcamera::LibcameraControls;
use pinhole_capture::v4l2::controls::{self, Control, SavedControls};
use pinhole_capture::v4l2::device::RealDevice;
use pinhole_capture::v4l2::sys;
use pinhole_capture::{Source, Supervisor};
use pinhole_server::camera::{
    Applied, CameraBackend, CameraDescription, Changes, Kind, Num, Setting,
};

use crate::config::{Config, LibcameraControl};

mod persist;
use crate::error::{CameraError, SourceError};
pub use persist::persist;

/// How long a `PUT` waits for the libcamera helper to take new controls.
const LIBCAMERA_SET_TIMEOUT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds a source from a config (main.rs's `make_source`).
pub type Factory = Box<dyn Fn(&Config) -> Result<Box<dyn Source>, SourceError> + Send + Sync>;

/// Which kind of source runs now and the camera device whose controls are
/// offered. Set once for fixed sources; `auto` changes it when it switches.
#[derive(Clone, Debug)]
pub struct Active(Arc<Mutex<(&'static str, Option<PathBuf>)>>);

impl Default for Active {
    fn default() -> Self {
        Active(Arc::new(Mutex::new(("test", None))))
    }
}

impl Active {
    pub fn set(&self, kind: &'static str, device: Option<PathBuf>) {
        *lock(&self.0) = (kind, device);
    }

    pub fn get(&self) -> (&'static str, Option<PathBuf>) {
        lock(&self.0).clone()
    }
}

/// The daemon's side of `/api/camera`.
pub struct DaemonCamera {
    cfg: Mutex<Config>,
    config_path: Option<PathBuf>,
    active: Active,
    /// The control values chosen so far, applied by the V4L2 source.
    saved: SavedControls,
    /// A libcamera camera's controls, through its helper.
    libcamera: LibcameraControls,
    factory: Factory,
    supervisor: Arc<Supervisor>,
    /// The audio source, switched by the `audio` field.
    audio: Option<Arc<crate::audio_ctl::AudioCtl>>,
}

impl DaemonCamera {
    pub fn new(
        cfg: Config,
        config_path: Option<PathBuf>,
        active: Active,
        saved: SavedControls,
        libcamera: LibcameraControls,
        factory: Factory,
        supervisor: Arc<Supervisor>,
    ) -> DaemonCamera {
        DaemonCamera {
            cfg: Mutex::new(cfg),
            config_path,
            active,
            saved,
            libcamera,
            factory,
            supervisor,
            audio: None,
        }
    }

    /// The audio source the `audio` field switches.
    pub fn with_audio(mut self, audio: Arc<crate::audio_ctl::AudioCtl>) -> DaemonCamera {
        self.audio = Some(audio);
        self
    }

    /// The running camera's controls, read from the driver now (not a
    /// copy of what was last set). `Err` says why there are none.
    fn camera_controls(&self) -> Result<Vec<Control>, CameraError> {
        let (kind, device) = self.active.get();
        let Some(dev) = device else {
            return Err(CameraError::NoControls(kind));
        };
        RealDevice::open(&dev)
            .and_then(|mut d| controls::list(&mut d))
            .map_err(|source| CameraError::ReadControls {
                device: dev,
                source,
            })
    }

    fn fields(&self, cfg: &Config, kind: &str) -> Vec<Setting> {
        let v = &cfg.video;
        let (encodes, pipe) = (kind != "pipe", kind == "pipe");
        let int = |key: &str, label: &str, value: u32, min, max, step, unit| Setting {
            key: key.into(),
            label: label.into(),
            kind: Kind::Int {
                min,
                max,
                step,
                unit: Some(unit),
            },
            value: Num::Int(i64::from(value)),
            default: None,
            supported: encodes,
            live: false,
            note: (!encodes).then(|| {
                "a pipe carries H.264 that is already encoded: the command producing it sets this"
                    .to_owned()
            }),
        };
        let mut fps = int("fps", "Frame rate", v.fps, 1, 120, 1, "fps");
        if pipe {
            fps.supported = true;
            fps.note = Some("pacing of a file whose stream does not state a rate".into());
        }
        let mut kf = int(
            "keyframe_interval",
            "Keyframe interval",
            v.keyframe_interval,
            0,
            600,
            1,
            "frames",
        );
        if encodes {
            kf.note = Some("0 = two seconds' worth of frames".into());
        }
        let mut width = int("width", "Width", v.width, 16, 3840, 2, "px");
        let mut height = int("height", "Height", v.height, 16, 2160, 2, "px");
        if kind == "v4l2" {
            let n = "the camera's nearest size is used".to_owned();
            width.note = Some(n.clone());
            height.note = Some(n);
        }
        let why = match kind {
            "test" => "the test pattern cannot rotate or flip",
            "v4l2" => "pinhole does not rotate or flip frames itself; use the camera's own controls below if it lists any (e.g. horizontal_flip)",
            "pipe" => "rotate or flip in the command producing the stream",
            _ => "this source cannot rotate or flip",
        };
        let fixed = |key: &str, label: &str, kind: Kind| Setting {
            key: key.into(),
            label: label.into(),
            kind,
            value: Num::Int(0),
            default: None,
            supported: false,
            live: false,
            note: Some(why.into()),
        };
        vec![
            width,
            height,
            fps,
            int(
                "bitrate", "Bitrate", v.bitrate, 50_000, 50_000_000, 1, "bit/s",
            ),
            kf,
            fixed("rotation", "Rotation", Kind::Menu(vec![(0, "0°".into())])),
            fixed("hflip", "Mirror (horizontal flip)", Kind::Bool),
            fixed("vflip", "Upside down (vertical flip)", Kind::Bool),
            crate::audio_ctl::AudioCtl::setting(cfg),
        ]
    }

    /// Sets controls on the running camera; on a refusal, puts back the
    /// ones already set. The new values are remembered for the next open.
    /// The libcamera camera's controls as settings, and a note saying
    /// where their values come from.
    fn libcamera_settings(&self, notes: &mut Vec<String>) -> Vec<Setting> {
        let Some(infos) = self.libcamera.available() else {
            notes.push(
                "the camera helper is not running (yet): its controls appear once it has started"
                    .into(),
            );
            return Vec::new();
        };
        if infos.is_empty() {
            notes.push("the camera lists no adjustable controls".to_owned());
            return Vec::new();
        }
        notes.push(
            "libcamera controls show the value last set through pinhole, else the camera's \
             default: libcamera cannot read most of them back (an automatic mode such as \
             AeEnable may change what the camera really uses)"
                .into(),
        );
        let saved = self.libcamera.saved();
        infos
            .iter()
            .map(|i| libcamera_setting(i, saved.get(&i.name).copied()))
            .collect()
    }

    /// Sends libcamera control changes to the helper and waits for its
    /// answer; all or nothing. Returns the values, in the camera's types.
    fn set_libcamera_controls(
        &self,
        changes: &BTreeMap<String, Num>,
    ) -> Result<Vec<(String, ControlValue)>, CameraError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let infos = self
            .libcamera
            .available()
            .ok_or(CameraError::HelperNotRunning)?;
        let mut values = Vec::new();
        for (k, n) in changes {
            let info = infos
                .iter()
                .find(|i| &i.name == k)
                .ok_or_else(|| CameraError::Gone(k.clone()))?;
            let v = match info.kind() {
                ControlType::Bool => ControlValue::Bool(n.as_f64() != 0.0),
                ControlType::Int => ControlValue::Int(n.as_i64().unwrap_or(n.as_f64() as i64)),
                ControlType::Float => ControlValue::Float(n.as_f64() as f32),
            };
            values.push((k.clone(), v));
        }
        self.libcamera
            .set(values.clone(), LIBCAMERA_SET_TIMEOUT)
            .map_err(CameraError::Helper)?;
        tracing::info!(?values, "libcamera controls set");
        Ok(values)
    }

    fn set_controls(&self, changes: &BTreeMap<String, i64>) -> Result<(), CameraError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (kind, device) = self.active.get();
        let dev = device.ok_or(CameraError::NoControls(kind))?;
        let io = |source| CameraError::Device {
            device: dev.clone(),
            source,
        };
        let mut d = RealDevice::open(&dev).map_err(io)?;
        let list = controls::list(&mut d).map_err(io)?;
        let got = controls::set(&mut d, &list, changes).map_err(CameraError::Refused)?;
        tracing::info!(device = %dev.display(), ?got, "camera controls set");
        self.saved.update(changes);
        Ok(())
    }
}

impl CameraBackend for DaemonCamera {
    fn describe(&self) -> CameraDescription {
        let cfg = lock(&self.cfg).clone();
        let kind = self.active.get().0;
        let mut notes = Vec::new();
        let controls = if kind == "libcamera" {
            self.libcamera_settings(&mut notes)
        } else {
            self.v4l2_settings(&cfg, kind, &mut notes)
        };
        if self.config_path.is_none() {
            notes.push("no --config file: changes last until the daemon restarts".into());
        }
        CameraDescription {
            source: kind.into(),
            fields: self.fields(&cfg, kind),
            controls,
            persistent: self.config_path.is_some(),
            notes,
        }
    }

    fn apply(&self, changes: &Changes) -> Result<Applied, String> {
        let mut new = lock(&self.cfg).clone();
        let mut video_changed = false;
        let mut audio_changed = false;
        for (k, v) in &changes.fields {
            if k == "audio" {
                // The sound has its own source: the picture is not restarted.
                new.audio.source = crate::audio_ctl::AudioCtl::source_for(*v, &new)?;
                audio_changed = true;
                continue;
            }
            video_changed = true;
            let v = u32::try_from(*v).map_err(|_| format!("{k}: {v} is out of range"))?;
            match k.as_str() {
                "width" => new.video.width = v,
                "height" => new.video.height = v,
                "fps" => new.video.fps = v,
                "bitrate" => new.video.bitrate = v,
                "keyframe_interval" => new.video.keyframe_interval = v,
                _ => return Err(format!("{k}: cannot be changed")),
            }
        }
        let libcamera = self.active.get().0 == "libcamera";
        let mut v4l2_changes = BTreeMap::new();
        if !libcamera {
            for (k, v) in &changes.controls {
                let v = v
                    .as_i64()
                    .ok_or_else(|| format!("controls.{k}: a V4L2 control takes whole numbers"))?;
                new.camera.controls.insert(k.clone(), v);
                v4l2_changes.insert(k.clone(), v);
            }
        }
        new.validate().map_err(|e| e.to_string())?;
        // Build first: a source that cannot be built changes nothing.
        let next = if !video_changed {
            None
        } else {
            // The HTTP answer (400) carries the message.
            Some((self.factory)(&new).map_err(|e| e.to_string())?)
        };
        if libcamera {
            let set = self
                .set_libcamera_controls(&changes.controls)
                .map_err(|e| e.to_string())?;
            for (k, v) in set {
                new.camera.libcamera_controls.insert(k, saved_value(v));
            }
        } else {
            self.set_controls(&v4l2_changes)
                .map_err(|e| e.to_string())?;
        }
        let mut out = Applied::default();
        if audio_changed {
            let audio = self.audio.as_ref().ok_or("audio: not switchable here")?;
            audio.apply(&new)?;
        }
        if let Some(next) = next {
            self.supervisor.replace(next);
            out.restarted = true;
        }
        *lock(&self.cfg) = new.clone();
        if let Some(path) = &self.config_path {
            match persist(path, &new) {
                Ok(()) => out.persisted = true,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot save camera settings");
                    out.warning =
                        Some(format!("applied, but not saved to {}: {e}", path.display()));
                }
            }
        }
        Ok(out)
    }
}

impl DaemonCamera {
    /// The V4L2 camera's controls, read from the driver now.
    fn v4l2_settings(&self, cfg: &Config, kind: &str, notes: &mut Vec<String>) -> Vec<Setting> {
        let controls = match self.camera_controls() {
            Ok(c) if c.is_empty() => {
                notes.push("the camera lists no adjustable controls".to_owned());
                c
            }
            Ok(c) => c,
            Err(e) if cfg.source == "auto" && kind != "v4l2" => {
                notes.push(format!(
                    "{e}; source auto: they appear when a camera is found"
                ));
                Vec::new()
            }
            Err(e) => {
                notes.push(e.to_string());
                Vec::new()
            }
        };
        controls.iter().map(control_setting).collect()
    }
}

/// The saved form of a libcamera value (floats as the shortest decimal
/// that reads back as the same f32: `0.1`, not `0.10000000149011612`).
fn saved_value(v: ControlValue) -> LibcameraControl {
    match v {
        ControlValue::Bool(b) => LibcameraControl::Bool(b),
        ControlValue::Int(i) => LibcameraControl::Int(i),
        ControlValue::Float(f) => LibcameraControl::Float(f32_to_f64(f)),
    }
}

fn f32_to_f64(f: f32) -> f64 {
    f.to_string().parse().unwrap_or(f64::from(f))
}

/// The saved libcamera values of a config, for the helper.
pub fn libcamera_controls(cfg: &Config) -> LibcameraControls {
    LibcameraControls::new(
        cfg.camera
            .libcamera_controls
            .iter()
            .map(|(k, v)| {
                let v = match *v {
                    LibcameraControl::Bool(b) => ControlValue::Bool(b),
                    LibcameraControl::Int(i) => ControlValue::Int(i),
                    LibcameraControl::Float(f) => ControlValue::Float(f as f32),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// A libcamera control as a setting; `set`: the value last set, if any.
fn libcamera_setting(i: &ControlInfo, set: Option<ControlValue>) -> Setting {
    let num = |v: ControlValue| match v {
        ControlValue::Bool(b) => Num::Int(i64::from(b)),
        ControlValue::Int(n) => Num::Int(n),
        ControlValue::Float(f) => Num::Float(f32_to_f64(f)),
    };
    let kind = match i.kind() {
        ControlType::Bool => Kind::Bool,
        ControlType::Int => Kind::Int {
            min: i.min.as_f64() as i64,
            max: i.max.as_f64() as i64,
            step: 1,
            unit: None,
        },
        ControlType::Float => {
            let (min, max) = (num(i.min).as_f64(), num(i.max).as_f64());
            Kind::Float {
                min,
                max,
                step: float_step(max - min),
            }
        }
    };
    let value = set
        .and_then(|v| pinhole_camera_proto::control::coerce(i, v))
        .unwrap_or(i.default);
    Setting {
        key: i.name.clone(),
        label: i.name.clone(),
        kind,
        value: num(value),
        default: Some(num(i.default)),
        supported: true,
        live: true,
        note: None,
    }
}

/// A slider step of about 1/100 of the range, rounded down to a power of
/// ten (Brightness -1..1 → 0.01, Contrast 0..32 → 0.1).
fn float_step(range: f64) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 0.01;
    }
    10f64.powf((range / 100.0).log10().floor())
}

fn control_setting(c: &Control) -> Setting {
    let i = &c.info;
    let kind = match i.kind {
        sys::CTRL_TYPE_BOOLEAN => Kind::Bool,
        sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU => Kind::Menu(c.menu.clone()),
        _ => Kind::Int {
            min: i.minimum,
            max: i.maximum,
            step: i.step.max(1),
            unit: None,
        },
    };
    let read_only = i.flags & sys::CTRL_FLAG_READ_ONLY != 0;
    let inactive = i.flags & sys::CTRL_FLAG_INACTIVE != 0;
    Setting {
        key: c.key.clone(),
        label: i.name.clone(),
        kind,
        value: Num::Int(c.value),
        default: Some(Num::Int(i.default)),
        supported: !read_only,
        live: true,
        note: if read_only {
            Some("read-only".into())
        } else if inactive {
            Some("inactive: an automatic mode is on".into())
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        use controls::slug;
        assert_eq!(
            slug("White Balance Temperature, Auto"),
            "white_balance_temperature_auto"
        );
        assert_eq!(slug("Exposure Time, Absolute"), "exposure_time_absolute");
        assert_eq!(slug("  Brightness "), "brightness");
    }

    #[test]
    fn libcamera_controls_as_settings() {
        assert_eq!(float_step(2.0), 0.01, "Brightness -1..1");
        assert_eq!(float_step(32.0), 0.1, "Contrast 0..32");
        assert_eq!(float_step(0.0), 0.01);
        let infos = pinhole_camera_proto::fake::fake_controls();
        let b = libcamera_setting(&infos[1], Some(ControlValue::Float(0.1)));
        assert_eq!(b.key, "Brightness");
        assert_eq!(b.value, Num::Float(0.1), "f32 0.1 shown as 0.1");
        assert_eq!(b.default, Some(Num::Float(0.0)));
        assert_eq!(
            b.kind,
            Kind::Float {
                min: -1.0,
                max: 1.0,
                step: 0.01
            }
        );
        // Unset, or a saved value that does not fit: the camera's default.
        let ae = libcamera_setting(&infos[0], None);
        assert_eq!((ae.kind, ae.value), (Kind::Bool, Num::Int(1)));
        let exp = libcamera_setting(&infos[3], Some(ControlValue::Int(5)));
        assert_eq!(exp.value, Num::Int(20_000));
        assert_eq!(
            saved_value(ControlValue::Float(0.1)),
            LibcameraControl::Float(0.1)
        );
    }
}
