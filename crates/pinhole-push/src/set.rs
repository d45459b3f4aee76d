//! The daemon's push targets: from the configuration and from the admin
//! API, listed for `/api/status` and `/metrics`.

use std::sync::{Arc, Mutex};

use pinhole_hub::Hub;

use crate::{PushTarget, PushUrl, State, TargetStatus};

/// At most this many targets (each is a connection and a task).
pub const MAX_TARGETS: usize = 16;

struct Entry {
    id: u64,
    from_api: bool,
    url: PushUrl,
    /// `None` while disabled; then `last` is what it showed when stopped.
    target: Option<PushTarget>,
    last: Option<TargetStatus>,
}

impl Entry {
    fn status(&self) -> TargetStatus {
        match (&self.target, &self.last) {
            (Some(t), _) => t.status(),
            (None, Some(l)) => TargetStatus {
                state: State::Disabled,
                retry_in_ms: None,
                ..l.clone()
            },
            (None, None) => TargetStatus {
                url: self.url.redacted(),
                state: State::Disabled,
                frames: 0,
                bytes: 0,
                skipped: 0,
                reconnects: 0,
                last_error: None,
                retry_in_ms: None,
            },
        }
    }
}

/// A target as listed: its id (stable while the daemon runs), whether the
/// admin API added it (only those can be removed there), its status.
#[derive(Clone, Debug)]
pub struct Listed {
    pub id: u64,
    pub from_api: bool,
    pub enabled: bool,
    /// The target's own CA file (`tls_ca`), if it has one.
    pub tls_ca: Option<std::path::PathBuf>,
    pub status: TargetStatus,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    Full,
    NotFound,
    /// From the configuration file: change it there.
    FromConfig,
}

pub struct PushSet {
    hub: Arc<Hub>,
    targets: Mutex<(u64, Vec<Entry>)>,
}

impl PushSet {
    pub fn new(hub: Arc<Hub>) -> Arc<PushSet> {
        Arc::new(PushSet {
            hub,
            targets: Mutex::new((0, Vec::new())),
        })
    }

    /// Start pushing to `url` (needs a tokio runtime); its id.
    pub fn add(&self, url: PushUrl) -> u64 {
        self.add_from(url, false).unwrap_or(0)
    }

    /// As [`PushSet::add`], marked as added by the admin API, and refused
    /// beyond [`MAX_TARGETS`].
    pub fn add_from(&self, url: PushUrl, from_api: bool) -> Result<u64, SetError> {
        self.add_with(url, from_api, true)
    }

    /// As [`PushSet::add_from`], started or not.
    pub fn add_with(&self, url: PushUrl, from_api: bool, enabled: bool) -> Result<u64, SetError> {
        let mut t = self.lock();
        if from_api && t.1.len() >= MAX_TARGETS {
            return Err(SetError::Full);
        }
        t.0 += 1;
        let id = t.0;
        let target = enabled.then(|| PushTarget::spawn(self.hub.clone(), url.clone()));
        t.1.push(Entry {
            id,
            from_api,
            url,
            target,
            last: None,
        });
        Ok(id)
    }

    /// Stop (keeping it listed) or start a target again. A config-file
    /// target can be paused too, until the daemon restarts.
    pub fn set_enabled(&self, id: u64, enabled: bool) -> Result<(), SetError> {
        let mut t = self.lock();
        let e =
            t.1.iter_mut()
                .find(|e| e.id == id)
                .ok_or(SetError::NotFound)?;
        match (enabled, e.target.is_some()) {
            (true, false) => {
                e.target = Some(PushTarget::spawn(self.hub.clone(), e.url.clone()));
                e.last = None;
            }
            (false, true) => {
                e.last = e.target.as_ref().map(PushTarget::status);
                // Dropping the target aborts its task.
                e.target = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// Forget a target's last error.
    pub fn clear_error(&self, id: u64) -> Result<(), SetError> {
        let mut t = self.lock();
        let e =
            t.1.iter_mut()
                .find(|e| e.id == id)
                .ok_or(SetError::NotFound)?;
        if let Some(target) = &e.target {
            target.clear_error();
        }
        if let Some(l) = &mut e.last {
            l.last_error = None;
        }
        Ok(())
    }

    /// Stop and forget a target the admin API added.
    pub fn remove(&self, id: u64) -> Result<(), SetError> {
        let mut t = self.lock();
        let i =
            t.1.iter()
                .position(|e| e.id == id)
                .ok_or(SetError::NotFound)?;
        if !t.1[i].from_api {
            return Err(SetError::FromConfig);
        }
        // Dropping the target aborts its task.
        t.1.remove(i);
        Ok(())
    }

    /// The URLs (with their keys: for saving, never for showing) of the
    /// targets the admin API added.
    pub fn api_urls(&self) -> Vec<PushUrl> {
        self.api_targets().into_iter().map(|(u, _)| u).collect()
    }

    /// As [`PushSet::api_urls`], with whether each is enabled.
    pub fn api_targets(&self) -> Vec<(PushUrl, bool)> {
        self.lock()
            .1
            .iter()
            .filter(|e| e.from_api)
            .map(|e| (e.url.clone(), e.target.is_some()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Entry>)> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn list(&self) -> Vec<Listed> {
        self.lock()
            .1
            .iter()
            .map(|e| Listed {
                id: e.id,
                from_api: e.from_api,
                enabled: e.target.is_some(),
                tls_ca: e.url.tls_ca.clone(),
                status: e.status(),
            })
            .collect()
    }

    pub fn statuses(&self) -> Vec<TargetStatus> {
        self.list().into_iter().map(|l| l.status).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().1.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_api_targets_are_removed_and_saved() {
        let set = PushSet::new(Hub::new(Default::default()));
        let url = |k: &str| PushUrl::parse(&format!("rtmp://127.0.0.1:9/live/{k}")).unwrap();
        let cfg = set.add(url("from-config"));
        let api = set.add_from(url("from-api"), true).unwrap();
        assert_eq!(set.api_urls(), vec![url("from-api")]);
        assert_eq!(set.remove(cfg), Err(SetError::FromConfig));
        assert_eq!(set.remove(api), Ok(()));
        assert_eq!(set.remove(api), Err(SetError::NotFound));
        assert_eq!(set.list().len(), 1);
        // Paused: listed as disabled, not pushing, started again on enable.
        set.set_enabled(cfg, false).unwrap();
        assert_eq!(set.list()[0].status.state, State::Disabled);
        assert!(!set.list()[0].enabled);
        set.set_enabled(cfg, true).unwrap();
        assert_ne!(set.list()[0].status.state, State::Disabled);
        set.clear_error(cfg).unwrap();
        assert_eq!(set.set_enabled(999, true), Err(SetError::NotFound));
        for i in 0..MAX_TARGETS - 1 {
            set.add_from(url(&format!("k{i}")), true).unwrap();
        }
        assert_eq!(set.add_from(url("one-too-many"), true), Err(SetError::Full));
    }
}
