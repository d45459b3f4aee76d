//! The daemon's push targets: started from the configuration, listed for
//! `/api/status` and `/metrics`.

use std::sync::{Arc, Mutex};

use pinhole_hub::Hub;

use crate::{PushTarget, PushUrl, TargetStatus};

pub struct PushSet {
    hub: Arc<Hub>,
    targets: Mutex<Vec<PushTarget>>,
}

impl PushSet {
    pub fn new(hub: Arc<Hub>) -> Arc<PushSet> {
        Arc::new(PushSet {
            hub,
            targets: Mutex::new(Vec::new()),
        })
    }

    /// Start pushing to `url` (needs a tokio runtime).
    pub fn add(&self, url: PushUrl) {
        let t = PushTarget::spawn(self.hub.clone(), url);
        self.lock().push(t);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PushTarget>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn statuses(&self) -> Vec<TargetStatus> {
        self.lock().iter().map(PushTarget::status).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
