//! The camera's own controls (libcamera's `Brightness`, `AeEnable`,
//! `ExposureTime`, …): what the helper announces after `Started`
//! ([`crate::Message::Controls`]) and what the daemon sets
//! ([`crate::Message::SetControls`]). Pure: types and range checks shared
//! by the daemon, the fake helper and the real one.
//!
//! Three value types cover libcamera's scalar controls: bool, integer
//! (libcamera's int32/int64) and float (f32 — libcamera's `Brightness` is
//! a float in -1..1). Array, string, rectangle and size controls are not
//! offered.

use crate::ProtoError;

/// Most controls a helper may announce or the daemon may set at once
/// (libcamera's Raspberry Pi pipeline has about 30).
pub const MAX_CONTROLS: usize = 64;
/// Longest control name (libcamera's longest is ~30 characters).
pub const MAX_CONTROL_NAME: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ControlValue {
    Bool(bool),
    Int(i64),
    /// Always finite (NaN and infinities are refused on the wire).
    Float(f32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Bool,
    Int,
    Float,
}

impl ControlValue {
    pub fn kind(&self) -> ControlType {
        match self {
            ControlValue::Bool(_) => ControlType::Bool,
            ControlValue::Int(_) => ControlType::Int,
            ControlValue::Float(_) => ControlType::Float,
        }
    }

    /// For ordering and display; exact for bools and for integers up to 2^53.
    pub fn as_f64(&self) -> f64 {
        match *self {
            ControlValue::Bool(b) => f64::from(u8::from(b)),
            ControlValue::Int(i) => i as f64,
            ControlValue::Float(f) => f64::from(f),
        }
    }
}

impl std::fmt::Display for ControlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlValue::Bool(b) => write!(f, "{b}"),
            ControlValue::Int(i) => write!(f, "{i}"),
            ControlValue::Float(x) => write!(f, "{x}"),
        }
    }
}

/// One control the camera has: libcamera's name, its range and default,
/// all three of the same type.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlInfo {
    pub name: String,
    pub min: ControlValue,
    pub max: ControlValue,
    pub default: ControlValue,
}

impl ControlInfo {
    pub fn kind(&self) -> ControlType {
        self.min.kind()
    }

    /// The info is usable: a name within bounds, one type, finite floats,
    /// min ≤ default ≤ max.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |why: String| Err(ProtoError::BadControl(why));
        if self.name.is_empty() || self.name.len() > MAX_CONTROL_NAME {
            return bad(format!(
                "a control name of {} bytes (1..={MAX_CONTROL_NAME})",
                self.name.len()
            ));
        }
        let k = self.kind();
        if self.max.kind() != k || self.default.kind() != k {
            return bad(format!(
                "{}: min, max and default of different types",
                self.name
            ));
        }
        for v in [self.min, self.max, self.default] {
            if let ControlValue::Float(f) = v {
                if !f.is_finite() {
                    return bad(format!("{}: a non-finite bound {f}", self.name));
                }
            }
        }
        let (min, max, def) = (self.min.as_f64(), self.max.as_f64(), self.default.as_f64());
        if min > max || def < min || def > max {
            return bad(format!(
                "{}: default {} outside {}..={}",
                self.name, self.default, self.min, self.max
            ));
        }
        Ok(())
    }

    /// `Ok` if `v` has this control's type and lies in its range; `Err`
    /// says why, for a person.
    pub fn check(&self, v: ControlValue) -> Result<(), String> {
        if v.kind() != self.kind() {
            return Err(format!(
                "{} takes a {:?} value, not {v}",
                self.name,
                self.kind()
            ));
        }
        let x = v.as_f64();
        if let ControlValue::Float(f) = v {
            if !f.is_finite() {
                return Err(format!("{}: {f} is not a number", self.name));
            }
        }
        if x < self.min.as_f64() || x > self.max.as_f64() {
            return Err(format!(
                "{}: {v} is outside {}..={}",
                self.name, self.min, self.max
            ));
        }
        Ok(())
    }
}

/// Checks every `(name, value)` against `infos`: the first unknown name,
/// wrong type or out-of-range value is `Err((name, reason))`.
pub fn check_all(
    infos: &[ControlInfo],
    values: &[(String, ControlValue)],
) -> Result<(), (String, String)> {
    for (name, v) in values {
        let info = infos
            .iter()
            .find(|i| &i.name == name)
            .ok_or_else(|| (name.clone(), format!("the camera has no control {name:?}")))?;
        info.check(*v).map_err(|e| (name.clone(), e))?;
    }
    Ok(())
}

/// A saved value (from a config file, where `1` and `1.0` are different
/// TOML types) in the type `info` takes: integers become floats, 0/1
/// become bools and back, whole floats become integers. `None` if it
/// cannot be represented or is out of range.
pub fn coerce(info: &ControlInfo, v: ControlValue) -> Option<ControlValue> {
    use ControlValue::{Bool, Float, Int};
    let out = match (info.kind(), v) {
        (ControlType::Bool, Bool(b)) => Bool(b),
        (ControlType::Bool, Int(i @ (0 | 1))) => Bool(i == 1),
        (ControlType::Int, Int(i)) => Int(i),
        (ControlType::Int, Bool(b)) => Int(i64::from(b)),
        (ControlType::Int, Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Int(f as i64),
        (ControlType::Float, Float(f)) => Float(f),
        (ControlType::Float, Int(i)) => Float(i as f32),
        _ => return None,
    };
    info.check(out).ok().map(|()| out)
}
