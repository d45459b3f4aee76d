//! `GET/PUT /api/camera`: the camera's settings and what they may be.
//!
//! The server does not know how a source is built or restarted; the daemon
//! installs a [`CameraBackend`] in [`AppState::camera`]. This module
//! describes, validates and answers: a `PUT` is checked field by field
//! against the backend's description *before* anything is applied, so a bad
//! value is a 400 naming the field and its allowed range, and nothing is
//! half-applied. The access policy (access.rs, asked by the guard in
//! auth/http.rs) makes `PUT` admin-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::limits::{read_body, MAX_JSON_BODY};
use crate::{full, AppState, Body, ServerError};

/// A setting's value: integers (and bools, menus as 0/1, item values) or
/// floats (libcamera's `Brightness`, `Contrast`, …).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            Num::Float(_) => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Num::Int(i) => json!(i),
            Num::Float(f) => json!(f),
        }
    }
}

impl From<i64> for Num {
    fn from(i: i64) -> Self {
        Num::Int(i)
    }
}

/// What values a setting takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// An integer in `min..=max` with `(value - min) % step == 0`.
    Int {
        min: i64,
        max: i64,
        step: i64,
        unit: Option<&'static str>,
    },
    /// true/false (0/1 inside).
    Bool,
    /// One of the listed values, each with a label.
    Menu(Vec<(i64, String)>),
    /// A number in `min..=max`; `step` is a hint for sliders (libcamera
    /// has no steps), not enforced.
    Float { min: f64, max: f64, step: f64 },
}

/// One setting: a video field (`width`, `fps`, …) or a camera control.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// JSON key: `width`, or a control's slug (`brightness`).
    pub key: String,
    /// For people: `Width`, `Brightness`.
    pub label: String,
    pub kind: Kind,
    pub value: Num,
    /// The driver's default (camera controls).
    pub default: Option<Num>,
    /// false: this source cannot change it; `note` says why.
    pub supported: bool,
    /// Applied without restarting the source.
    pub live: bool,
    pub note: Option<String>,
}

impl Setting {
    /// What may be written, for people and error messages.
    pub fn allowed(&self) -> String {
        if !self.supported {
            return format!(
                "not adjustable with this source{}",
                self.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        match &self.kind {
            Kind::Int { min, max, step, .. } if *step > 1 => {
                format!("{min}-{max} in steps of {step}")
            }
            Kind::Int { min, max, .. } => format!("{min}-{max}"),
            Kind::Float { min, max, .. } => format!("{min} to {max}"),
            Kind::Bool => "true or false".into(),
            Kind::Menu(items) => items
                .iter()
                .map(|(v, l)| format!("{v} ({l})"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn to_json(&self) -> Value {
        let value = match self.kind {
            Kind::Bool => json!(self.value.as_f64() != 0.0),
            _ => self.value.to_json(),
        };
        let mut o = json!({
            "key": self.key,
            "label": self.label,
            "value": value,
            "supported": self.supported,
            "live": self.live,
        });
        match &self.kind {
            Kind::Int {
                min,
                max,
                step,
                unit,
            } => {
                o["type"] = json!("integer");
                o["min"] = json!(min);
                o["max"] = json!(max);
                o["step"] = json!(step);
                if let Some(u) = unit {
                    o["unit"] = json!(u);
                }
            }
            Kind::Float { min, max, step } => {
                o["type"] = json!("float");
                o["min"] = json!(min);
                o["max"] = json!(max);
                o["step"] = json!(step);
            }
            Kind::Bool => o["type"] = json!("boolean"),
            Kind::Menu(items) => {
                o["type"] = json!("menu");
                o["choices"] = items
                    .iter()
                    .map(|(v, l)| json!({ "value": v, "label": l }))
                    .collect();
            }
        }
        if let Some(d) = self.default {
            o["default"] = match self.kind {
                Kind::Bool => json!(d.as_f64() != 0.0),
                _ => d.to_json(),
            };
        }
        if let Some(n) = &self.note {
            o["note"] = json!(n);
        }
        o
    }

    /// Checks a JSON value; returns the value to apply.
    fn check(&self, field: &str, v: &Value) -> Result<Num, FieldError> {
        let err = |what: String| FieldError {
            field: field.to_owned(),
            reason: what,
            allowed: self.allowed(),
        };
        let n = match (&self.kind, v) {
            (Kind::Bool, Value::Bool(b)) => Num::Int(i64::from(*b)),
            (Kind::Bool, _) => return Err(err(format!("{v} is not true or false"))),
            (Kind::Float { .. }, Value::Number(n)) => Num::Float(
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| err(format!("{v} is not a number")))?,
            ),
            (_, Value::Number(n)) => Num::Int(
                n.as_i64()
                    .ok_or_else(|| err(format!("{v} is not a whole number")))?,
            ),
            _ => return Err(err(format!("{v} is not a number"))),
        };
        if !self.supported {
            return if n == self.value {
                Ok(n)
            } else {
                Err(err(format!("{field} cannot be changed")))
            };
        }
        let ok = match (&self.kind, n) {
            (Kind::Int { min, max, step, .. }, Num::Int(n)) => {
                (*min..=*max).contains(&n) && (n - min) % (*step).max(1) == 0
            }
            (Kind::Float { min, max, .. }, Num::Float(f)) => (*min..=*max).contains(&f),
            (Kind::Bool, _) => true,
            (Kind::Menu(items), Num::Int(n)) => items.iter().any(|(iv, _)| *iv == n),
            _ => false,
        };
        if ok {
            Ok(n)
        } else {
            Err(err(format!("{v} is not allowed")))
        }
    }
}

/// Everything `GET /api/camera` shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CameraDescription {
    /// `test`, `v4l2`, `pipe`.
    pub source: String,
    /// Video settings: width, height, fps, bitrate, keyframe_interval,
    /// rotation, hflip, vflip.
    pub fields: Vec<Setting>,
    /// The camera's own controls (V4L2), empty when it has none.
    pub controls: Vec<Setting>,
    /// A `PUT` is written to the config file.
    pub persistent: bool,
    /// Why there are no camera controls, or other remarks.
    pub notes: Vec<String>,
}

/// Validated changes, keyed like the description. Video fields are all
/// integers; controls may be floats (libcamera).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub fields: BTreeMap<String, i64>,
    pub controls: BTreeMap<String, Num>,
}

/// The outcome of [`CameraBackend::apply`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Written to the config file.
    pub persisted: bool,
    /// The source was restarted (a new stream generation follows).
    pub restarted: bool,
    /// Something worth telling (e.g. the config file could not be written).
    pub warning: Option<String>,
}

/// Implemented by the daemon: it knows the source and the config file.
pub trait CameraBackend: Send + Sync {
    fn describe(&self) -> CameraDescription;
    /// Applies changes that [`validate`] accepted against a fresh
    /// [`describe`](CameraBackend::describe). `Err`: nothing was applied.
    fn apply(&self, changes: &Changes) -> Result<Applied, String>;
}

/// A refused value: the field, why, and what is allowed.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
    pub allowed: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (allowed: {})",
            self.field, self.reason, self.allowed
        )
    }
}

/// Checks a partial settings object against `desc`. Video fields are
/// top-level keys, camera controls go under `"controls": {key: value}`.
/// Values equal to the current ones are dropped from the result.
pub fn validate(desc: &CameraDescription, body: &Value) -> Result<Changes, FieldError> {
    let obj = body.as_object().ok_or_else(|| FieldError {
        field: "(body)".into(),
        reason: "not a JSON object".into(),
        allowed: "an object such as {\"width\": 640, \"height\": 480}".into(),
    })?;
    let mut out = Changes::default();
    let unknown = |field: &str, known: &[Setting]| FieldError {
        field: field.to_owned(),
        reason: "no such setting".into(),
        allowed: known
            .iter()
            .map(|s| s.key.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    for (k, v) in obj {
        if k == "controls" {
            let empty = Map::new();
            let ctrls = match v {
                Value::Object(m) => m,
                Value::Null => &empty,
                _ => {
                    return Err(FieldError {
                        field: "controls".into(),
                        reason: "not an object".into(),
                        allowed: "{\"brightness\": 10, …}".into(),
                    })
                }
            };
            for (ck, cv) in ctrls {
                let name = format!("controls.{ck}");
                let s = desc
                    .controls
                    .iter()
                    .find(|s| &s.key == ck)
                    .ok_or_else(|| unknown(&name, &desc.controls))?;
                let n = s.check(&name, cv)?;
                if n != s.value {
                    out.controls.insert(ck.clone(), n);
                }
            }
            continue;
        }
        let s = desc
            .fields
            .iter()
            .find(|s| &s.key == k)
            .ok_or_else(|| unknown(k, &desc.fields))?;
        let n = s.check(k, v)?;
        if n != s.value {
            // Video fields are integer settings: check() gave an Int.
            let i = n.as_i64().ok_or_else(|| FieldError {
                field: k.clone(),
                reason: format!("{v} is not a whole number"),
                allowed: s.allowed(),
            })?;
            out.fields.insert(k.clone(), i);
        }
    }
    Ok(out)
}

/// The `GET` body.
pub fn describe_json(desc: &CameraDescription) -> Value {
    let mut fields = Map::new();
    for s in &desc.fields {
        fields.insert(s.key.clone(), s.to_json());
    }
    json!({
        "source": desc.source,
        "fields": fields,
        "order": desc.fields.iter().map(|s| s.key.clone()).collect::<Vec<_>>(),
        "controls": desc.controls.iter().map(Setting::to_json).collect::<Vec<_>>(),
        "persistent": desc.persistent,
        "notes": desc.notes,
    })
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

/// `/api/camera`.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    method: &Method,
) -> Result<Response<Body>, ServerError> {
    if !matches!(*method, Method::GET | Method::HEAD | Method::PUT) {
        return Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: "/api/camera".into(),
        });
    }
    let backend = state
        .camera
        .get()
        .cloned()
        .ok_or_else(|| ServerError::Unavailable("this source has no settings".into()))?;
    // describe() reads the camera's controls from the driver: blocking
    // ioctls (a USB camera answers each in milliseconds).
    let describe = |b: Arc<dyn CameraBackend>| async move {
        tokio::task::spawn_blocking(move || b.describe())
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))
    };
    match *method {
        Method::GET | Method::HEAD => Ok(json_response(
            StatusCode::OK,
            &describe_json(&describe(backend).await?),
        )),
        Method::PUT => {
            let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let value: Value = serde_json::from_slice(&body)
                .map_err(|e| ServerError::BadRequest(format!("not JSON: {e}")))?;
            // One change at a time: describe, validate and apply together.
            let _one = state.camera_lock.lock().await;
            let desc = describe(backend.clone()).await?;
            let changes = match validate(&desc, &value) {
                Ok(c) => c,
                Err(e) => {
                    return Ok(json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({
                            "error": e.to_string(),
                            "field": e.field,
                            "reason": e.reason,
                            "allowed": e.allowed,
                        }),
                    ))
                }
            };
            let b = backend.clone();
            let c = changes.clone();
            let applied = tokio::task::spawn_blocking(move || b.apply(&c))
                .await
                .map_err(|e| ServerError::Internal(e.to_string()))?
                .map_err(ServerError::Internal)?;
            let mut v = describe_json(&describe(backend).await?);
            v["persisted"] = json!(applied.persisted);
            v["restarted"] = json!(applied.restarted);
            v["changed"] = json!(changes
                .fields
                .keys()
                .cloned()
                .chain(changes.controls.keys().map(|k| format!("controls.{k}")))
                .collect::<Vec<_>>());
            if let Some(w) = applied.warning {
                v["warning"] = json!(w);
            }
            tracing::info!(changed = %v["changed"], persisted = applied.persisted, "camera settings applied");
            Ok(json_response(StatusCode::OK, &v))
        }
        _ => Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: "/api/camera".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc() -> CameraDescription {
        let int = |key: &str, value, min, max, step| Setting {
            key: key.into(),
            label: key.into(),
            kind: Kind::Int {
                min,
                max,
                step,
                unit: None,
            },
            value: Num::Int(value),
            default: None,
            supported: true,
            live: false,
            note: None,
        };
        let mut rot = int("rotation", 0, 0, 0, 1);
        rot.supported = false;
        rot.note = Some("the test pattern cannot rotate".into());
        CameraDescription {
            source: "test".into(),
            fields: vec![
                int("width", 320, 16, 3840, 2),
                int("fps", 15, 1, 120, 1),
                rot,
            ],
            controls: vec![
                Setting {
                    key: "power_line_frequency".into(),
                    label: "Power Line Frequency".into(),
                    kind: Kind::Menu(vec![(0, "Disabled".into()), (1, "50 Hz".into())]),
                    value: Num::Int(0),
                    default: Some(Num::Int(1)),
                    supported: true,
                    live: true,
                    note: None,
                },
                Setting {
                    key: "Brightness".into(),
                    label: "Brightness".into(),
                    kind: Kind::Float {
                        min: -1.0,
                        max: 1.0,
                        step: 0.01,
                    },
                    value: Num::Float(0.0),
                    default: Some(Num::Float(0.0)),
                    supported: true,
                    live: true,
                    note: None,
                },
                Setting {
                    key: "AeEnable".into(),
                    label: "AeEnable".into(),
                    kind: Kind::Bool,
                    value: Num::Int(1),
                    default: Some(Num::Int(1)),
                    supported: true,
                    live: true,
                    note: None,
                },
            ],
            persistent: false,
            notes: vec![],
        }
    }

    #[test]
    fn partial_objects_validate_field_by_field() {
        let d = desc();
        let c = validate(&d, &json!({"width": 640, "fps": 15})).expect("valid");
        assert_eq!(c.fields, BTreeMap::from([("width".to_owned(), 640)]));
        let e = validate(&d, &json!({"fps": 10, "width": 641})).unwrap_err();
        assert_eq!(e.field, "width");
        assert!(e.to_string().contains("16-3840 in steps of 2"), "{e}");
        let e = validate(&d, &json!({"fps": "fast"})).unwrap_err();
        assert_eq!(e.field, "fps");
        let e = validate(&d, &json!({"zoom": 2})).unwrap_err();
        assert!(e.field == "zoom" && e.allowed.contains("width"), "{e}");
        let e = validate(&d, &json!({"rotation": 90})).unwrap_err();
        assert!(e.to_string().contains("cannot rotate"), "{e}");
        assert!(validate(&d, &json!({"rotation": 0}))
            .expect("no-op")
            .fields
            .is_empty());
        let e = validate(&d, &json!({"controls": {"power_line_frequency": 2}})).unwrap_err();
        assert_eq!(e.field, "controls.power_line_frequency");
        assert!(e.allowed.contains("1 (50 Hz)"), "{e}");
        let c = validate(&d, &json!({"controls": {"power_line_frequency": 1}})).expect("ok");
        assert_eq!(c.controls["power_line_frequency"], Num::Int(1));
        assert!(validate(&d, &json!([1])).is_err());
    }

    #[test]
    fn floats_and_bools_validate() {
        let d = desc();
        let c = validate(
            &d,
            &json!({"controls": {"Brightness": 0.25, "AeEnable": false}}),
        )
        .expect("valid");
        assert_eq!(c.controls["Brightness"], Num::Float(0.25));
        assert_eq!(c.controls["AeEnable"], Num::Int(0));
        // An integer is a float too.
        let c = validate(&d, &json!({"controls": {"Brightness": 1}})).expect("valid");
        assert_eq!(c.controls["Brightness"], Num::Float(1.0));
        let e = validate(&d, &json!({"controls": {"Brightness": 1.5}})).unwrap_err();
        assert_eq!(e.field, "controls.Brightness");
        assert_eq!(e.allowed, "-1 to 1");
        let e = validate(&d, &json!({"controls": {"Brightness": "dim"}})).unwrap_err();
        assert!(e.reason.contains("not a number"), "{e}");
        let e = validate(&d, &json!({"controls": {"AeEnable": 0}})).unwrap_err();
        assert!(e.reason.contains("not true or false"), "{e}");
        // The current value is not a change.
        assert!(validate(&d, &json!({"controls": {"Brightness": 0.0}}))
            .expect("no-op")
            .controls
            .is_empty());
        // Floats are not whole numbers for integer fields.
        let e = validate(&d, &json!({"width": 640.5})).unwrap_err();
        assert!(e.reason.contains("whole number"), "{e}");
        let v = describe_json(&d);
        assert_eq!(v["controls"][1]["type"], "float");
        assert_eq!(v["controls"][1]["step"], 0.01);
        assert_eq!(v["controls"][1]["value"], 0.0);
        assert_eq!(v["controls"][2]["value"], true);
        assert_eq!(v["controls"][2]["default"], true);
    }

    #[test]
    fn description_has_ranges_and_choices() {
        let v = describe_json(&desc());
        assert_eq!(v["fields"]["width"]["min"], 16);
        assert_eq!(v["fields"]["width"]["step"], 2);
        assert_eq!(v["fields"]["rotation"]["supported"], false);
        assert_eq!(v["controls"][0]["choices"][1]["label"], "50 Hz");
        assert_eq!(v["order"][0], "width");
    }
}
