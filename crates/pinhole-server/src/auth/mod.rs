//! Access control: the admin password (Argon2id, set on first boot, no
//! default), the optional viewer password, sessions, login throttling, and
//! the one guard every request passes before the route table (see
//! docs/security.md). The decision itself is `access::decide` (pure); the
//! guard is its HTTP adapter.
//!
//! Every request must name this device in `Host` (DNS rebinding). Then by
//! method and path, so a route someone adds later is admin-only as soon as
//! it changes state:
//! - `/api/auth*`: public; each handler checks what it needs.
//! - anything but GET/HEAD/OPTIONS: an admin session, and a same-origin `Origin`.
//! - GET/HEAD of live routes and `/api/*`: the viewer policy, and a foreign
//!   `Origin` only if the admin listed it or the URL has a viewer token.
//! - GET/HEAD of anything else (the UI's files): everyone allowed to reach us.
//!
//! Until the password is set, only LAN clients get anything at all.
//!
//! One concern per file: `store.rs` the password files and Argon2,
//! `sessions.rs` the session tokens, `throttle.rs` the login backoff,
//! `http.rs` the HTTP adapter (client address, guard, `/api/auth*`),
//! `rtsp.rs` the RTSP adapter (Basic/Digest, `?token=`), `onvif.rs` the
//! ONVIF one (WS-UsernameToken); the
//! policy itself is `crate::access`. This file holds the settings and the
//! `Auth` state that ties them together.

mod http;
mod onvif;
mod rtsp;
mod sessions;
mod store;
mod throttle;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::HeaderMap;
use pinhole_media::{Clock, SystemClock};

use crate::access::{Decision, One};
use crate::access_lists::AccessLists;
use crate::limits::{ViewerLimits, MAX_JSON_BODY};
use crate::ServerError;

pub(crate) use self::http::{add_cors, guard, handle, Admitted};
pub use self::http::{classify, client_of, cookie, query_param, AuthBody, Client, ConnInfo};
pub use self::rtsp::VIEWER_USER;
pub use self::store::apply_reset_file;
pub(crate) use self::store::write_private;
pub use crate::access::{canonical, is_lan, Class, ViewerAccess};

use self::http::AskHttp;
use self::sessions::Session;
use self::store::{hash_password, verify_password, Store, Which};
use self::throttle::Throttle;

pub const SESSION_COOKIE: &str = "pinhole_session";
pub const VIEWER_COOKIE: &str = "pinhole_view";

/// Security settings (the `[security]` config section).
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// Where `admin.json` and `viewer.json` live. `None`: in memory only (tests).
    pub data_dir: Option<PathBuf>,
    /// A file (on the boot partition) whose presence at start removes the
    /// admin password: physical access resets it.
    pub reset_file: Option<PathBuf>,
    pub viewer: ViewerAccess,
    /// Tokens accepted as `?token=` on live routes (embedding in NVRs).
    pub viewer_tokens: Vec<String>,
    pub session_idle: Duration,
    pub session_max: Duration,
    /// Live viewers (WebSocket, MP4, MJPEG) in all and per client address.
    pub max_viewers: usize,
    pub max_viewers_per_ip: usize,
    /// Non-update request bodies.
    pub max_body: usize,
    /// Request headers must arrive within this; also the keep-alive idle limit.
    pub header_read_timeout: Duration,
    /// Names this device answers to besides IP literals, its hostname,
    /// `<hostname>.local` and `localhost` (a DNS name behind a forwarded
    /// port, say). The settings panel adds to these.
    pub allowed_hosts: Vec<String>,
    /// Foreign origins whose pages may view (Mainsail/Fluidd on the
    /// printer's host), as `scheme://host[:port]`. The settings panel adds
    /// to these.
    pub allowed_origins: Vec<String>,
    /// The hostname to accept; `None`: the system's, read at run time.
    pub hostname: Option<String>,
    /// Whom the TCP/UDP listeners answer at all (HTTP, RTSP; WebRTC is told
    /// separately): others are closed at accept, before a byte is read.
    pub accept_from: pinhole_media::peer::AcceptFrom,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            data_dir: None,
            reset_file: None,
            viewer: ViewerAccess::Lan,
            viewer_tokens: Vec::new(),
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            max_viewers: 1000,
            max_viewers_per_ip: 64,
            max_body: MAX_JSON_BODY,
            header_read_timeout: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            hostname: None,
            accept_from: Default::default(),
        }
    }
}

/// Access-control state, one per daemon.
pub struct Auth {
    cfg: SecurityConfig,
    store: Mutex<Store>,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
    /// One Argon2 computation at a time (19 MiB each): a login flood cannot
    /// exhaust memory or every core.
    hashing: tokio::sync::Semaphore,
    /// WS-UsernameToken nonces seen (ONVIF): a captured request cannot be
    /// replayed.
    wsse_nonces: Mutex<pinhole_onvif::wsse::NonceCache>,
    pub(crate) viewers: Arc<ViewerLimits>,
    /// Allowed host names and origins in effect: the config's and the
    /// settings panel's (access_lists.rs).
    pub(crate) lists: std::sync::RwLock<AccessLists>,
    /// The panel's own entries (kept in `access.json` in the data dir).
    pub(crate) saved_lists: Mutex<AccessLists>,
    /// (when read, on `clock`; the name).
    hostname_cache: Mutex<Option<(u64, Option<String>)>>,
    /// Session lifetimes, the login backoff and the hostname cache read
    /// this clock (tests inject a simulated one).
    clock: Arc<dyn Clock>,
}

impl Auth {
    /// Access control on the real clock.
    pub fn new(cfg: SecurityConfig) -> Auth {
        Auth::with_clock(cfg, Arc::new(SystemClock::new()))
    }

    /// Access control whose sessions and login backoff run on `clock`.
    pub fn with_clock(cfg: SecurityConfig, clock: Arc<dyn Clock>) -> Auth {
        if let Some(dir) = &cfg.data_dir {
            if let Some(reset) = &cfg.reset_file {
                apply_reset_file(dir, reset);
            }
        }
        let store = Store::load(cfg.data_dir.as_deref());
        let config_lists = AccessLists::from_config(&cfg);
        let saved = AccessLists::load(cfg.data_dir.as_deref());
        if store.hash.is_none() {
            tracing::warn!("no admin password is set: open the web UI from the LAN to set one");
        }
        Auth {
            viewers: ViewerLimits::new(cfg.max_viewers, cfg.max_viewers_per_ip),
            store: Mutex::new(store),
            sessions: Mutex::default(),
            throttle: Mutex::default(),
            hashing: tokio::sync::Semaphore::new(1),
            wsse_nonces: Mutex::default(),
            lists: std::sync::RwLock::new(AccessLists::merged(&config_lists, &saved)),
            saved_lists: Mutex::new(saved),
            hostname_cache: Mutex::new(None),
            clock,
            cfg,
        }
    }

    pub fn config(&self) -> &SecurityConfig {
        &self.cfg
    }

    pub fn has_password(&self) -> bool {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hash
            .is_some()
    }

    /// Live viewers holding a slot.
    pub fn viewers_connected(&self) -> usize {
        self.viewers.current()
    }

    /// Whether a shared cache (a CDN, a caching proxy) may keep what viewers
    /// get: only when watching needs no credentials (`lan` or `open`, no
    /// viewer password). Otherwise a cache would hand a viewer's stream to
    /// whoever asks it, so answers are `private`.
    pub fn shared_cache_ok(&self) -> bool {
        self.cfg.viewer != crate::access::ViewerAccess::Token && !self.has_viewer_password()
    }

    /// ONVIF is on (`true`): keep the viewer password itself, which its
    /// PasswordDigest needs (docs/rtsp.md); off: forget it and remove its
    /// file. Off until the daemon says.
    pub fn keep_viewer_secret(&self, on: bool) {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keep_secret(on);
    }

    pub fn has_viewer_password(&self) -> bool {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .viewer_hash
            .is_some()
    }

    fn viewer_token_ok(&self, token: Option<&str>) -> bool {
        let Some(t) = token else { return false };
        self.cfg
            .viewer_tokens
            .iter()
            .any(|k| !k.is_empty() && ct_eq(k.as_bytes(), t.as_bytes()))
    }

    /// Whether a client may watch by the viewer policy alone (the page's
    /// own question, so no `Origin` and no `Host` rule).
    fn may_view(&self, client: Client, headers: &HeaderMap, query: Option<&str>) -> bool {
        let ask = AskHttp {
            host: One::Absent,
            origin: One::Absent,
            query,
            safe: true,
            class: Class::View,
        };
        matches!(self.decide(client, headers, ask), Decision::Allow { .. })
    }

    /// Reserves a password attempt for `ip` (see [`Throttle::reserve`]).
    fn reserve(&self, ip: IpAddr) -> Result<(), ServerError> {
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(ip, self.clock.now_us())
            .map_err(|w| ServerError::TooManyRequests {
                retry_after: ceil_secs(w),
            })
    }

    async fn verify(&self, which: Which, pw: String) -> bool {
        let Some(hash) = self
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(which)
            .cloned()
        else {
            return false;
        };
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || verify_password(&pw, &hash))
            .await
            .unwrap_or(false)
    }

    async fn hash(&self, pw: String) -> Result<String, ServerError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ServerError::Unavailable("shutting down".into()))?;
        tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| ServerError::Internal(format!("hashing task: {e}")))?
    }
}

/// A duration in whole microseconds (the clock's unit), saturating.
pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// Constant-time comparison (length may leak; contents do not).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_addresses() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.9",
            "169.254.1.1",
            "127.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(is_lan(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "100.64.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "172.32.0.1",
        ] {
            assert!(!is_lan(a.parse().unwrap()), "{a}");
        }
    }
}
