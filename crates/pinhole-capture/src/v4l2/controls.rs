//! The camera's own controls (V4L2 user and camera class: brightness,
//! contrast, exposure, white balance, …): listed with their ranges, menus
//! and the driver's current values, set with roll-back, and the saved
//! values re-applied every time the camera is opened (a replugged camera or
//! a reloaded driver starts from its defaults).
//!
//! Keys are slugs of the driver's names (`Brightness` → `brightness`), so
//! a config file stays readable and works across cameras with the same
//! control names.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use super::device::{enumerate_controls, CtrlInfo, Device};
use super::sys;

const USER_CLASS: u32 = 0x0098_0000;
const CAMERA_CLASS: u32 = 0x009a_0000;

/// One control as offered to people.
#[derive(Clone, Debug, PartialEq)]
pub struct Control {
    /// Slug of the driver's name, unique on this device.
    pub key: String,
    pub info: CtrlInfo,
    /// (value, label) of a menu control.
    pub menu: Vec<(i64, String)>,
    /// The driver's current value (read when listed).
    pub value: i64,
}

impl Control {
    pub fn read_only(&self) -> bool {
        self.info.flags & sys::CTRL_FLAG_READ_ONLY != 0
    }

    /// Whether `value` is one the driver advertises; `Err` says what is.
    pub fn check(&self, value: i64) -> Result<(), String> {
        let i = &self.info;
        if self.read_only() {
            return Err(format!("{} is read-only", self.key));
        }
        let ok = match i.kind {
            sys::CTRL_TYPE_BOOLEAN => value == 0 || value == 1,
            sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU => {
                self.menu.iter().any(|(v, _)| *v == value)
            }
            _ => {
                (i.minimum..=i.maximum).contains(&value) && (value - i.minimum) % i.step.max(1) == 0
            }
        };
        if ok {
            return Ok(());
        }
        Err(match i.kind {
            sys::CTRL_TYPE_BOOLEAN => format!("{}: {value} is not 0 or 1", self.key),
            sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU => format!(
                "{}: {value} is not one of {}",
                self.key,
                self.menu
                    .iter()
                    .map(|(v, l)| format!("{v} ({l})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!(
                "{}: {value} is outside {}..={} (step {})",
                self.key,
                i.minimum,
                i.maximum,
                i.step.max(1)
            ),
        })
    }

    /// Booleans and menus (the `auto` switches) go before plain numbers: a
    /// manual exposure or white balance value is refused or ignored while
    /// its automatic mode is on.
    fn order(&self) -> u8 {
        match self.info.kind {
            sys::CTRL_TYPE_BOOLEAN | sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU => 0,
            _ => 1,
        }
    }
}

/// `White Balance Temperature, Auto` → `white_balance_temperature_auto`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The user and camera class controls a person may want to set (the codec
/// class is pinhole's own business), with menus and current values.
pub fn list(d: &mut dyn Device) -> io::Result<Vec<Control>> {
    let mut out: Vec<Control> = Vec::new();
    for info in enumerate_controls(d)? {
        let class = info.id & 0x0fff_0000;
        if class != USER_CLASS && class != CAMERA_CLASS {
            continue;
        }
        if !matches!(
            info.kind,
            sys::CTRL_TYPE_INTEGER
                | sys::CTRL_TYPE_BOOLEAN
                | sys::CTRL_TYPE_MENU
                | sys::CTRL_TYPE_INTEGER_MENU
        ) || info.flags & sys::CTRL_FLAG_WRITE_ONLY != 0
        {
            continue;
        }
        let mut menu = Vec::new();
        if matches!(info.kind, sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU) {
            for idx in info.minimum.max(0)..=info.maximum.min(255) {
                if let Ok(Some(label)) = d.querymenu(info.id, idx as u32) {
                    menu.push((idx, label));
                }
            }
        }
        let value = d.get_ctrl(info.id).unwrap_or(info.default);
        let mut key = slug(&info.name);
        if key.is_empty() || out.iter().any(|c| c.key == key) {
            key = format!("{key}_{:x}", info.id);
        }
        out.push(Control {
            key,
            info,
            menu,
            value,
        });
    }
    Ok(out)
}

/// Sets `changes` (by key) on the device: every key and value is checked
/// against `controls` first, then they are set auto-switches first; if the
/// driver refuses one, those already set are put back and nothing is left
/// half-applied. Returns the values the driver reports afterwards.
pub fn set(
    d: &mut dyn Device,
    controls: &[Control],
    changes: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>, String> {
    let mut todo = Vec::new();
    for (key, value) in changes {
        let c = controls
            .iter()
            .find(|c| &c.key == key)
            .ok_or_else(|| format!("{key}: the camera has no such control"))?;
        c.check(*value)?;
        todo.push((c, *value));
    }
    todo.sort_by_key(|(c, _)| c.order());
    let mut done: Vec<&Control> = Vec::new();
    for (c, value) in &todo {
        if let Err(e) = d.set_ctrl(c.info.id, *value) {
            for old in done.iter().rev() {
                let _ = d.set_ctrl(old.info.id, old.value);
            }
            return Err(format!("{}: the camera refused {value}: {e}", c.key));
        }
        done.push(*c);
    }
    Ok(todo
        .iter()
        .map(|(c, v)| (c.key.clone(), d.get_ctrl(c.info.id).unwrap_or(*v)))
        .collect())
}

/// Re-applies saved values after the device was opened. Keys the camera
/// does not have and values it refuses are skipped with a warning (another
/// camera may have been plugged in); the rest are set.
pub fn apply_saved(d: &mut dyn Device, saved: &BTreeMap<String, i64>) -> Vec<String> {
    if saved.is_empty() {
        return Vec::new();
    }
    let controls = match list(d) {
        Ok(c) => c,
        Err(e) => return vec![format!("cannot list the camera's controls: {e}")],
    };
    let mut warnings = Vec::new();
    let mut todo = Vec::new();
    for (key, value) in saved {
        match controls.iter().find(|c| &c.key == key) {
            None => warnings.push(format!("{key}: the camera has no such control")),
            Some(c) => match c.check(*value) {
                Ok(()) if c.value == *value => {}
                Ok(()) => todo.push((c, *value)),
                Err(e) => warnings.push(e),
            },
        }
    }
    todo.sort_by_key(|(c, _)| c.order());
    for (c, value) in todo {
        if let Err(e) = d.set_ctrl(c.info.id, value) {
            warnings.push(format!("{}: the camera refused {value}: {e}", c.key));
        }
    }
    warnings
}

/// The control values the user chose (`[camera.controls]`), shared by the
/// running source (which applies them on every open) and `PUT /api/camera`
/// (which changes them).
#[derive(Clone, Debug, Default)]
pub struct SavedControls(Arc<Mutex<BTreeMap<String, i64>>>);

impl SavedControls {
    pub fn new(values: BTreeMap<String, i64>) -> Self {
        SavedControls(Arc::new(Mutex::new(values)))
    }

    pub fn get(&self) -> BTreeMap<String, i64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, changes: &BTreeMap<String, i64>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in changes {
            m.insert(k.clone(), *v);
        }
    }
}

impl PartialEq for SavedControls {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
