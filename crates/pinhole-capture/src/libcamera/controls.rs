//! The libcamera camera's own controls, between the HTTP side (which
//! lists and sets them) and the source thread (which owns the helper's
//! socket). libcamera applies controls per request, and most cannot be
//! read back, so what is shown is what the helper announced (ranges,
//! defaults) plus the values last set.
//!
//! * the session announces the controls when the helper sends them and
//!   re-sends every saved value (config file + earlier `PUT`s) — on the
//!   first start and after every helper restart;
//! * [`LibcameraControls::set`] queues a `SetControls` for the session and
//!   waits for the helper's answer; only an accepted set is saved.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pinhole_camera_proto::control::{check_all, coerce};
use pinhole_camera_proto::{ControlInfo, ControlValue};

type Values = Vec<(String, ControlValue)>;

#[derive(Default)]
struct State {
    /// What the running helper announced; `None`: no session.
    available: Option<Vec<ControlInfo>>,
    /// The chosen values, by libcamera name.
    saved: BTreeMap<String, ControlValue>,
    /// Sets waiting for the session thread.
    queued: VecDeque<(u64, Values)>,
    /// Sets sent to the helper, not answered yet.
    in_flight: Vec<(u64, Values)>,
    answers: BTreeMap<u64, Result<(), String>>,
    next_id: u64,
}

/// Shared by the daemon and every `LibcameraSource` it builds (clones
/// share one state).
#[derive(Clone, Default)]
pub struct LibcameraControls(Arc<(Mutex<State>, Condvar)>);

impl std::fmt::Debug for LibcameraControls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibcameraControls")
            .field("saved", &self.saved())
            .finish()
    }
}

impl PartialEq for LibcameraControls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl LibcameraControls {
    pub fn new(saved: BTreeMap<String, ControlValue>) -> Self {
        let c = LibcameraControls::default();
        c.lock().saved = saved;
        c
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running camera's controls; `None` while no helper runs.
    pub fn available(&self) -> Option<Vec<ControlInfo>> {
        self.lock().available.clone()
    }

    /// The values chosen so far (what the camera was last told).
    pub fn saved(&self) -> BTreeMap<String, ControlValue> {
        self.lock().saved.clone()
    }

    /// Sets `values` on the running camera, all or nothing: checked against
    /// what the helper announced, sent, and answered by the helper within
    /// `timeout`. `Ok`: in effect from the next request on, and saved.
    pub fn set(&self, values: Values, timeout: Duration) -> Result<(), String> {
        let id = {
            let mut s = self.lock();
            let Some(avail) = &s.available else {
                return Err("the camera helper is not running (starting or restarting)".into());
            };
            check_all(avail, &values).map_err(|(name, why)| format!("controls.{name}: {why}"))?;
            s.next_id += 1;
            let id = s.next_id;
            s.queued.push_back((id, values));
            id
        };
        let until = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(r) = s.answers.remove(&id) {
                return r;
            }
            let now = Instant::now();
            if now >= until {
                // Not sent yet: withdraw it. Sent: the answer, if it
                // comes, still updates `saved` (the camera has it then).
                s.queued.retain(|(q, _)| *q != id);
                return Err(format!(
                    "the camera helper did not answer within {:.1} s",
                    timeout.as_secs_f64()
                ));
            }
            s = self
                .0
                 .1
                .wait_timeout(s, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Session: the helper announced `infos`. Returns the saved values to
    /// send now, in the camera's types; saved keys it lacks or values out
    /// of its range are logged and skipped (another camera may be there).
    pub(crate) fn session_started(&self, infos: Vec<ControlInfo>) -> Values {
        let mut s = self.lock();
        let mut out = Vec::new();
        for (name, v) in &s.saved {
            match infos.iter().find(|i| &i.name == name) {
                Some(info) => match coerce(info, *v) {
                    Some(c) => out.push((name.clone(), c)),
                    None => {
                        tracing::warn!(control = %name, value = %v, "libcamera: saved value does not fit this camera's control; skipped")
                    }
                },
                None => {
                    tracing::warn!(control = %name, "libcamera: the camera has no such control; saved value skipped")
                }
            }
        }
        s.available = Some(infos);
        out
    }

    /// Session: the next set to send, if any (moved to in-flight).
    pub(crate) fn take_request(&self) -> Option<(u64, Values)> {
        let mut s = self.lock();
        let r = s.queued.pop_front()?;
        s.in_flight.push(r.clone());
        Some(r)
    }

    /// Session: the helper answered set `id`.
    pub(crate) fn answer(&self, id: u64, result: Result<(), String>) {
        let mut s = self.lock();
        if let Some(pos) = s.in_flight.iter().position(|(i, _)| *i == id) {
            let (_, values) = s.in_flight.remove(pos);
            if result.is_ok() {
                for (k, v) in values {
                    s.saved.insert(k, v);
                }
            }
        }
        s.answers.insert(id, result);
        self.0 .1.notify_all();
    }

    /// Session over: no controls until the next helper announces them;
    /// every waiting set fails.
    pub(crate) fn session_ended(&self, why: &str) {
        let mut guard = self.lock();
        let s = &mut *guard;
        s.available = None;
        let pending: Vec<u64> = s
            .queued
            .drain(..)
            .map(|(i, _)| i)
            .chain(s.in_flight.drain(..).map(|(i, _)| i))
            .collect();
        for id in pending {
            s.answers.insert(
                id,
                Err(format!("the camera helper stopped before answering: {why}")),
            );
        }
        // Answers nobody collects (a set that timed out) are dropped.
        if s.answers.len() > 64 {
            s.answers.clear();
        }
        self.0 .1.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinhole_camera_proto::fake::fake_controls;
    use ControlValue::{Bool, Float, Int};

    #[test]
    fn saved_values_are_resent_in_the_cameras_types() {
        let c = LibcameraControls::new(BTreeMap::from([
            ("Brightness".to_string(), Int(1)),
            ("AeEnable".to_string(), Bool(false)),
            ("Zoom".to_string(), Int(2)),
            ("ExposureTime".to_string(), Int(5)),
        ]));
        assert!(c.available().is_none());
        let sent = c.session_started(fake_controls());
        assert_eq!(
            sent,
            vec![
                ("AeEnable".to_string(), Bool(false)),
                ("Brightness".to_string(), Float(1.0))
            ],
            "unknown and out-of-range saved values are skipped"
        );
        assert_eq!(c.available().expect("announced").len(), 4);
    }

    #[test]
    fn a_set_waits_for_the_helper_and_only_an_accepted_one_is_saved() {
        let c = LibcameraControls::default();
        let e = c
            .set(
                vec![("Brightness".into(), Float(0.5))],
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(e.contains("not running"), "{e}");
        c.session_started(fake_controls());
        let e = c
            .set(
                vec![("Brightness".into(), Float(1.5))],
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert_eq!(e, "controls.Brightness: Brightness: 1.5 is outside -1..=1");
        assert!(c.take_request().is_none(), "a refused value is never sent");

        // A session thread that accepts the first set and refuses the second.
        let session = {
            let c = c.clone();
            std::thread::spawn(move || {
                for verdict in [Ok(()), Err("IPA said no".to_string())] {
                    let (id, _) = loop {
                        if let Some(r) = c.take_request() {
                            break r;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    };
                    c.answer(id, verdict);
                }
            })
        };
        c.set(
            vec![("Brightness".into(), Float(0.5))],
            Duration::from_secs(5),
        )
        .expect("accepted");
        let e = c
            .set(
                vec![("Contrast".into(), Float(2.0))],
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(e, "IPA said no");
        session.join().expect("thread");
        assert_eq!(
            c.saved(),
            BTreeMap::from([("Brightness".to_string(), Float(0.5))])
        );

        // Nobody answers: a timeout, and the set is withdrawn.
        let e = c
            .set(
                vec![("Brightness".into(), Float(0.1))],
                Duration::from_millis(50),
            )
            .unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        assert!(c.take_request().is_none());

        // The helper dies with a set in flight: the caller hears why.
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.set(
                    vec![("AeEnable".into(), Bool(false))],
                    Duration::from_secs(5),
                )
            })
        };
        let (_id, _) = loop {
            if let Some(r) = c.take_request() {
                break r;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        c.session_ended("killed by signal 9");
        let e = waiter.join().expect("thread").unwrap_err();
        assert!(
            e.contains("stopped before answering: killed by signal 9"),
            "{e}"
        );
        assert!(c.available().is_none());
        assert_eq!(c.saved()["Brightness"], Float(0.5), "saved values stay");
    }
}
