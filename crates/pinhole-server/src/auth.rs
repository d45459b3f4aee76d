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

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::access::{self, Ask, Credentials, Decision, One, Refusal, Settings};
use crate::access_lists::AccessLists;
use crate::limits::{read_body, ViewerLimits, ViewerPermit, MAX_JSON_BODY};
use crate::{error_response, full, AppState, Body, ServerError};

pub const SESSION_COOKIE: &str = "pinhole_session";
pub const VIEWER_COOKIE: &str = "pinhole_view";
const ADMIN_FILE: &str = "admin.json";
const VIEWER_FILE: &str = "viewer.json";
const RESET_DONE_FILE: &str = "reset-consumed";
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;
const MAX_ADMIN_SESSIONS: usize = 64;
/// Viewers get their own, larger pool: a page full of viewers (or an NVR
/// re-opening `/?token=`) must not evict the admin's session.
const MAX_VIEWER_SESSIONS: usize = 1024;
const MAX_THROTTLED_ADDRS: usize = 10_000;

pub use crate::access::{canonical, is_lan, Class, ViewerAccess};

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
        }
    }
}

/// Where a request came from, as far as we can trust it.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The TCP peer; `None` on the Unix socket (nginx, or a local process).
    pub peer: Option<IpAddr>,
}

/// The client as the guard sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    pub https: bool,
}

/// The client's address: the TCP peer, or — only on the Unix socket, where
/// nginx is the peer — `X-Real-IP`, else the last `X-Forwarded-For` hop
/// (the one nginx appended). A local process on the socket counts as loopback.
pub fn client_of(conn: Option<&ConnInfo>, headers: &HeaderMap) -> Client {
    match conn {
        Some(ConnInfo { peer: Some(ip) }) => Client {
            ip: canonical(*ip),
            https: false,
        },
        Some(ConnInfo { peer: None }) => {
            let real = headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            let fwd = || {
                headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .next_back()
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
            };
            let ip = real
                .or_else(fwd)
                .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
            let https = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            Client {
                ip: canonical(ip),
                https,
            }
        }
        // No connection info: trust nothing.
        None => Client {
            ip: IpAddr::V4(std::net::Ipv4Addr::BROADCAST),
            https: false,
        },
    }
}

// ---------------------------------------------------------------------------
// The password store

/// Which password: the admin's, or the optional one for viewers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Admin,
    Viewer,
}

impl Which {
    fn file(self) -> &'static str {
        match self {
            Which::Admin => ADMIN_FILE,
            Which::Viewer => VIEWER_FILE,
        }
    }
}

struct Store {
    dir: Option<PathBuf>,
    hash: Option<String>,
    /// Set: viewing needs a login (or a token), whatever `viewer_access` says.
    viewer_hash: Option<String>,
}

impl Store {
    fn load(dir: Option<&Path>) -> Store {
        let load = |which: Which| {
            let path = dir?.join(which.file());
            let text = std::fs::read_to_string(&path).ok()?;
            match serde_json::from_str::<AdminFile>(&text) {
                Ok(f) if PasswordHash::new(&f.argon2id).is_ok() => Some(f.argon2id),
                _ => {
                    // Never fall back to "no password" silently for a file we
                    // cannot read: keep the file, refuse logins, say so.
                    tracing::error!(path = %path.display(), "password file is unreadable; remove it (or, for the admin's, use the reset file) to set a new password");
                    Some(String::from("invalid"))
                }
            }
        };
        Store {
            dir: dir.map(Path::to_owned),
            hash: load(Which::Admin),
            viewer_hash: load(Which::Viewer),
        }
    }

    fn get(&self, which: Which) -> Option<&String> {
        match which {
            Which::Admin => self.hash.as_ref(),
            Which::Viewer => self.viewer_hash.as_ref(),
        }
    }

    /// Stores (or with `None`, removes) a password hash.
    fn save(&mut self, which: Which, hash: Option<String>) -> Result<(), ServerError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(which.file());
            let res = match &hash {
                Some(h) => write_private(
                    &path,
                    json!({ "version": 1, "argon2id": h })
                        .to_string()
                        .as_bytes(),
                ),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            res.map_err(|e| ServerError::Internal(format!("cannot store the password: {e}")))?;
        }
        match which {
            Which::Admin => self.hash = hash,
            Which::Viewer => self.viewer_hash = hash,
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct AdminFile {
    argon2id: String,
}

/// Writes `path` atomically with mode 0600.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Applies the reset file: if it exists and was not already used (its size
/// and modification time are remembered, since the boot partition is
/// read-only to the daemon), the admin password is removed. Returns whether
/// it did.
pub fn apply_reset_file(data_dir: &Path, reset_file: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(reset_file) else {
        return false;
    };
    let stamp = format!("{} {} {}", m.len(), m.mtime(), m.mtime_nsec());
    let done = data_dir.join(RESET_DONE_FILE);
    if std::fs::read_to_string(&done).is_ok_and(|s| s.trim() == stamp) {
        tracing::warn!(file = %reset_file.display(), "password reset file already applied; delete it from the boot partition");
        return false;
    }
    let _ = std::fs::remove_file(data_dir.join(ADMIN_FILE));
    let _ = write_private(&done, stamp.as_bytes());
    // Usually fails (read-only to us); the stamp keeps it from firing twice.
    let _ = std::fs::remove_file(reset_file);
    tracing::warn!(file = %reset_file.display(), "admin password removed by the reset file: set a new one in the web UI");
    true
}

fn hash_password(pw: &str) -> Result<String, ServerError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| ServerError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServerError::Internal(format!("argon2: {e}")))
}

fn verify_password(pw: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Sessions

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Admin,
    Viewer,
}

struct Session {
    kind: Kind,
    created: Instant,
    last_seen: Instant,
}

fn new_token() -> Result<String, ServerError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)
        .map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

// ---------------------------------------------------------------------------
// Login throttling: exponential backoff per address and for all addresses.

#[derive(Clone, Copy, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
    last: Option<Instant>,
}

impl Backoff {
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .filter(|u| *u > now)
            .map(|u| u.saturating_duration_since(now))
    }
    /// `free` failures cost nothing; then 1 s, 2 s, 4 s … up to `cap`.
    fn fail(&mut self, now: Instant, free: u32, cap: Duration) {
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) > Duration::from_secs(3600))
        {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        if self.failures > free {
            let exp = (self.failures - free - 1).min(20);
            let d = Duration::from_secs(1u64 << exp).min(cap);
            self.until = Some(now + d);
        }
    }
}

const PER_IP_FREE: u32 = 2;
const GLOBAL_FREE: u32 = 20;
/// An address that logged in successfully stays exempt from the global
/// backoff this long (in memory: a restart forgets it).
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_KNOWN_ADDRS: usize = 256;

#[derive(Default)]
struct Throttle {
    per_ip: HashMap<IpAddr, Backoff>,
    global: Backoff,
    /// Addresses that logged in before. A trickle of failures from rotating
    /// addresses keeps the global backoff shut for everyone else; these
    /// still get in (their own per-address backoff applies as to anyone).
    known: HashMap<IpAddr, Instant>,
}

impl Throttle {
    fn known(&self, ip: IpAddr, now: Instant) -> bool {
        self.known
            .get(&ip)
            .is_some_and(|t| now.saturating_duration_since(*t) < KNOWN_FOR)
    }
    fn check(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let a = self.per_ip.get(&ip).and_then(|b| b.wait(now));
        let g = if self.known(ip, now) {
            None
        } else {
            self.global.wait(now)
        };
        a.max(g)
    }
    /// Checks and, if allowed, counts the attempt as a failure before the
    /// password is verified, so parallel attempts see it at once;
    /// [`succeed`](Self::succeed) takes it back.
    fn reserve(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if let Some(w) = self.check(ip, now) {
            return Err(w);
        }
        self.fail(ip, now);
        Ok(())
    }
    fn fail(&mut self, ip: IpAddr, now: Instant) {
        if self.per_ip.len() >= MAX_THROTTLED_ADDRS {
            self.per_ip.retain(|_, b| {
                b.last
                    .is_some_and(|l| now.saturating_duration_since(l) < Duration::from_secs(3600))
            });
            if self.per_ip.len() >= MAX_THROTTLED_ADDRS {
                self.per_ip.clear();
            }
        }
        self.per_ip
            .entry(ip)
            .or_default()
            .fail(now, PER_IP_FREE, Duration::from_secs(300));
        self.global.fail(now, GLOBAL_FREE, Duration::from_secs(60));
    }
    /// A reserved attempt succeeded: forget the address's failures, take
    /// back the global count, remember the address.
    fn succeed(&mut self, ip: IpAddr, now: Instant) {
        self.per_ip.remove(&ip);
        self.global.failures = self.global.failures.saturating_sub(1);
        if self.global.failures <= GLOBAL_FREE {
            self.global.until = None;
        }
        if self.known.len() >= MAX_KNOWN_ADDRS && !self.known.contains_key(&ip) {
            self.known
                .retain(|_, t| now.saturating_duration_since(*t) < KNOWN_FOR);
            if self.known.len() >= MAX_KNOWN_ADDRS {
                if let Some(oldest) = self.known.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                    self.known.remove(&oldest);
                }
            }
        }
        self.known.insert(ip, now);
    }
}

// ---------------------------------------------------------------------------

/// Access-control state, one per daemon.
pub struct Auth {
    cfg: SecurityConfig,
    store: Mutex<Store>,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
    /// One Argon2 computation at a time (19 MiB each): a login flood cannot
    /// exhaust memory or every core.
    hashing: tokio::sync::Semaphore,
    pub(crate) viewers: Arc<ViewerLimits>,
    /// Allowed host names and origins in effect: the config's and the
    /// settings panel's (access_lists.rs).
    pub(crate) lists: std::sync::RwLock<AccessLists>,
    /// The panel's own entries (kept in `access.json` in the data dir).
    pub(crate) saved_lists: Mutex<AccessLists>,
    hostname_cache: Mutex<Option<(Instant, Option<String>)>>,
}

impl Auth {
    pub fn new(cfg: SecurityConfig) -> Auth {
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
            lists: std::sync::RwLock::new(AccessLists::merged(&config_lists, &saved)),
            saved_lists: Mutex::new(saved),
            hostname_cache: Mutex::new(None),
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

    fn session(&self, token: Option<&str>, want: Kind) -> bool {
        let Some(token) = token else { return false };
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let valid = match s.get_mut(token) {
            Some(sess)
                if now.saturating_duration_since(sess.created) < self.cfg.session_max
                    && now.saturating_duration_since(sess.last_seen) < self.cfg.session_idle =>
            {
                sess.last_seen = now;
                sess.kind == want || sess.kind == Kind::Admin
            }
            Some(_) => {
                s.remove(token);
                false
            }
            None => false,
        };
        valid
    }

    fn new_session(&self, kind: Kind) -> Result<String, ServerError> {
        let token = new_token()?;
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| {
            now.saturating_duration_since(v.created) < self.cfg.session_max
                && now.saturating_duration_since(v.last_seen) < self.cfg.session_idle
        });
        let cap = match kind {
            Kind::Admin => MAX_ADMIN_SESSIONS,
            Kind::Viewer => MAX_VIEWER_SESSIONS,
        };
        while s.values().filter(|v| v.kind == kind).count() >= cap {
            // Evict the least recently used of the same kind.
            let Some(oldest) = s
                .iter()
                .filter(|(_, v)| v.kind == kind)
                .min_by_key(|(_, v)| v.last_seen)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            s.remove(&oldest);
        }
        s.insert(
            token.clone(),
            Session {
                kind,
                created: now,
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// Ends every session of one kind.
    fn drop_sessions(&self, kind: Kind) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| v.kind != kind);
    }

    fn end_session(&self, token: Option<&str>) {
        if let Some(t) = token {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(t);
        }
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
            .reserve(ip, Instant::now())
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

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A query parameter (no percent-decoding: tokens are plain ASCII).
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

/// One header's value, for the policy: absent, one valid value, or invalid.
fn one<'a>(headers: &'a HeaderMap, name: header::HeaderName) -> One<'a> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => One::Absent,
        (Some(v), None) => v.to_str().map_or(One::Invalid, One::Value),
        _ => One::Invalid,
    }
}

/// `Host`, or the URI's authority (HTTP/2 has `:authority`, no `Host`).
fn host_of<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> One<'a> {
    match one(headers, header::HOST) {
        One::Absent => uri
            .authority()
            .map_or(One::Absent, |a| One::Value(a.as_str())),
        h => h,
    }
}

pub fn classify(method: &Method, path: &str) -> Class {
    access::classify(
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
        path,
    )
}

/// What the guard lets through with a request.
pub(crate) struct Admitted {
    pub client: Client,
    pub permit: Option<Arc<ViewerPermit>>,
    /// `Access-Control-Allow-Origin` for the answer (a listed origin, or a
    /// foreign page holding a viewer token).
    pub cors: Option<String>,
}

fn refuse(status: StatusCode, msg: &str) -> Box<Response<Body>> {
    Box::new(full(
        status,
        "application/json",
        json!({ "error": msg }).to_string(),
    ))
}

fn refusal(r: &Refusal) -> Box<Response<Body>> {
    refuse(
        StatusCode::from_u16(r.status()).unwrap_or(StatusCode::FORBIDDEN),
        &r.message(),
    )
}

impl Auth {
    /// The system's hostname, re-read at most every few seconds (it may
    /// change at run time; the configured one wins).
    fn hostname(&self) -> Option<String> {
        if let Some(h) = &self.cfg.hostname {
            return Some(h.clone());
        }
        let mut c = self
            .hostname_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match &*c {
            Some((at, h)) if now.saturating_duration_since(*at) < Duration::from_secs(5) => {
                h.clone()
            }
            _ => {
                let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty());
                *c = Some((now, h.clone()));
                h
            }
        }
    }

    /// Asks the access policy about one request (the HTTP adapter).
    fn decide(&self, client: Client, headers: &HeaderMap, ask: AskHttp) -> Decision {
        let creds = Credentials {
            admin: self.session(cookie(headers, SESSION_COOKIE), Kind::Admin),
            viewer: ask.class == Class::View
                && self.session(cookie(headers, VIEWER_COOKIE), Kind::Viewer),
            token: self.viewer_token_ok(query_param(ask.query, "token").as_deref()),
        };
        let hostname = self.hostname();
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let settings = Settings {
            configured: self.has_password(),
            viewer_access: self.cfg.viewer,
            viewer_password: self.has_viewer_password(),
            hostname: hostname.as_deref(),
            allowed_hosts: &lists.allowed_hosts,
            allowed_origins: &lists.allowed_origins,
        };
        access::decide(
            &Ask {
                client: client.ip,
                host: ask.host,
                origin: ask.origin,
                fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
                creds,
                safe: ask.safe,
                class: ask.class,
            },
            &settings,
        )
    }
}

/// The parts of a request the adapter passes on besides its headers.
struct AskHttp<'a> {
    host: One<'a>,
    origin: One<'a>,
    query: Option<&'a str>,
    safe: bool,
    class: Class,
}

/// The guard: runs before the route table for every request.
pub(crate) fn guard(
    req: &mut Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Admitted, Box<Response<Body>>> {
    let auth = &state.auth;
    let path = req.uri().path();
    let method = req.method();
    let client = client_of(req.extensions().get::<ConnInfo>(), req.headers());
    if path != "/api/update" {
        let len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if len.is_some_and(|l| l > auth.cfg.max_body as u64) {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {} bytes", auth.cfg.max_body),
            ));
        }
    }
    let class = classify(method, path);
    let ask = AskHttp {
        host: host_of(req.headers(), req.uri()),
        origin: one(req.headers(), header::ORIGIN),
        query: req.uri().query(),
        safe: matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
        class,
    };
    let cors = match auth.decide(client, req.headers(), ask) {
        Decision::Allow { cors } => cors,
        Decision::Refuse(r) => {
            tracing::debug!(client = %client.ip, %path, reason = ?r, "refused by the access policy");
            return Err(refusal(&r));
        }
    };
    let mut permit = None;
    if class == Class::View && access::is_live(path) {
        match auth.viewers.acquire(client.ip) {
            Ok(p) => {
                let p = Arc::new(p);
                req.extensions_mut().insert(p.clone());
                permit = Some(p);
            }
            Err(e) => return Err(Box::new(error_response(&e))),
        }
    }
    Ok(Admitted {
        client,
        permit,
        cors,
    })
}

/// Adds the CORS answer the policy granted (`insert`: once). Routes set
/// none themselves; `/api/auth/view` sets the one for nginx's files.
pub(crate) fn add_cors(resp: &mut Response<Body>, cors: Option<&str>) {
    let h = resp.headers_mut();
    if let Some(v) = cors.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

// ---------------------------------------------------------------------------
// /api/auth endpoints

/// JSON body of setup, login and password change.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthBody {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub current: Option<String>,
}

impl AuthBody {
    /// Parses and checks sizes; never echoes the input.
    pub fn parse(bytes: &[u8]) -> Result<AuthBody, ServerError> {
        let b: AuthBody = serde_json::from_slice(bytes)
            .map_err(|_| ServerError::BadRequest("expected JSON {\"password\": \"…\"}".into()))?;
        for p in [&b.password, &b.current].into_iter().flatten() {
            if p.len() > MAX_PASSWORD {
                return Err(ServerError::BadRequest("password too long".into()));
            }
        }
        Ok(b)
    }
}

fn new_password_ok(pw: &str) -> Result<(), ServerError> {
    if pw.chars().count() < MIN_PASSWORD {
        return Err(ServerError::Unprocessable(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        )));
    }
    if pw.len() > MAX_PASSWORD {
        return Err(ServerError::Unprocessable("password too long".into()));
    }
    Ok(())
}

fn set_cookie(resp: &mut Response<Body>, name: &str, value: &str, max_age: u64, https: bool) {
    let secure = if https { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A password login (admin or viewer) with the shared per-address and
/// global backoff; returns the new session's token.
async fn login(
    auth: &Auth,
    req: Request<Incoming>,
    client: Client,
    which: Which,
) -> Result<String, ServerError> {
    // Read the body first: a slow body must not hold a reservation.
    let body = password_from(req, auth.cfg.max_body).await?;
    auth.reserve(client.ip)?;
    let ok = auth.verify(which, body.password.unwrap_or_default()).await;
    let (kind, who) = match which {
        Which::Admin => (Kind::Admin, "admin"),
        Which::Viewer => (Kind::Viewer, "viewer"),
    };
    if !ok {
        // Already counted by the reservation.
        tracing::warn!(client = %client.ip, "failed {who} login");
        return Err(ServerError::Unauthorized("wrong password".into()));
    }
    auth.throttle
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .succeed(client.ip, Instant::now());
    tracing::info!(client = %client.ip, "{who} logged in");
    auth.new_session(kind)
}

fn ok_json(v: serde_json::Value) -> Response<Body> {
    let mut r = full(StatusCode::OK, "application/json", v.to_string());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn password_from(req: Request<Incoming>, max: usize) -> Result<AuthBody, ServerError> {
    let bytes = read_body(req.into_body(), max).await?;
    AuthBody::parse(&bytes)
}

/// `/api/auth*`.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    admitted: &Admitted,
) -> Result<Response<Body>, ServerError> {
    let auth = &state.auth;
    let client = admitted.client;
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let is_admin = || auth.session(cookie(&headers, SESSION_COOKIE), Kind::Admin);
    let max_age = auth.cfg.session_max.as_secs();
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/api/auth") => {
            let mut extra = None;
            let token = query_param(req.uri().query(), "token");
            if auth.viewer_token_ok(token.as_deref()) {
                extra = Some(auth.new_session(Kind::Viewer)?);
            }
            let mut resp = ok_json(json!({
                "setup_needed": !auth.has_password(),
                "logged_in": is_admin(),
                "lan": is_lan(client.ip),
                "viewer_access": auth.cfg.viewer.name(),
                "may_view": extra.is_some() || auth.may_view(client, &headers, None),
                "viewer_password": auth.has_viewer_password(),
            }));
            if let Some(t) = extra {
                set_cookie(&mut resp, VIEWER_COOKIE, &t, max_age, client.https);
            }
            Ok(resp)
        }
        // For nginx `auth_request` on the files it serves itself (HLS).
        (Method::GET | Method::HEAD, "/api/auth/view") => {
            let original = headers
                .get("x-original-uri")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let query = original.split_once('?').map(|(_, q)| q);
            // The same question as for the file itself; the guard checked
            // Host already. nginx passes 401/403 on and copies the CORS
            // answer from this reply (auth_request_set).
            let ask = AskHttp {
                host: host_of(&headers, &uri),
                origin: one(&headers, header::ORIGIN),
                query,
                safe: true,
                class: Class::View,
            };
            match auth.decide(client, &headers, ask) {
                Decision::Allow { cors } => {
                    let mut resp = full(StatusCode::NO_CONTENT, "text/plain", "");
                    add_cors(&mut resp, cors.as_deref());
                    Ok(resp)
                }
                Decision::Refuse(r) if r.status() == 401 => {
                    Err(ServerError::Unauthorized(r.message()))
                }
                Decision::Refuse(r) => Err(ServerError::Forbidden(r.message())),
            }
        }
        (Method::POST, "/api/auth/setup") => {
            if auth.has_password() {
                return Err(ServerError::Conflict(
                    "the admin password is already set".into(),
                ));
            }
            if !is_lan(client.ip) {
                return Err(ServerError::Forbidden(
                    "set up from the local network".into(),
                ));
            }
            let body = password_from(req, auth.cfg.max_body).await?;
            let pw = body.password.unwrap_or_default();
            new_password_ok(&pw)?;
            let hash = auth.hash(pw).await?;
            {
                let mut store = auth.store.lock().unwrap_or_else(|e| e.into_inner());
                if store.hash.is_some() {
                    return Err(ServerError::Conflict(
                        "the admin password is already set".into(),
                    ));
                }
                store.save(Which::Admin, Some(hash))?;
            }
            tracing::info!(client = %client.ip, "admin password set");
            let token = auth.new_session(Kind::Admin)?;
            let mut resp = ok_json(json!({ "logged_in": true }));
            set_cookie(&mut resp, SESSION_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/login") => {
            if !auth.has_password() {
                return Err(ServerError::Conflict(
                    "no admin password yet: set one first".into(),
                ));
            }
            let token = login(auth, req, client, Which::Admin).await?;
            let mut resp = ok_json(json!({ "logged_in": true }));
            set_cookie(&mut resp, SESSION_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/viewer/login") => {
            if !auth.has_viewer_password() {
                return Err(ServerError::Conflict("no viewer password is set".into()));
            }
            let token = login(auth, req, client, Which::Viewer).await?;
            let mut resp = ok_json(json!({ "may_view": true }));
            set_cookie(&mut resp, VIEWER_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/viewer/logout") => {
            auth.end_session(cookie(&headers, VIEWER_COOKIE));
            let mut resp = ok_json(json!({ "may_view": false }));
            set_cookie(&mut resp, VIEWER_COOKIE, "", 0, client.https);
            Ok(resp)
        }
        // Set, change (POST) or remove (DELETE) the viewer password: admin only.
        (m @ (Method::POST | Method::DELETE), "/api/auth/viewer/password") => {
            if !is_admin() {
                return Err(ServerError::Unauthorized("log in as admin first".into()));
            }
            let hash = if m == Method::POST {
                let body = password_from(req, auth.cfg.max_body).await?;
                let pw = body.password.unwrap_or_default();
                new_password_ok(&pw)?;
                Some(auth.hash(pw).await?)
            } else {
                None
            };
            let set = hash.is_some();
            auth.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .save(Which::Viewer, hash)?;
            // Whoever logged in with the old one logs in again.
            auth.drop_sessions(Kind::Viewer);
            tracing::info!(client = %client.ip, "viewer password {}", if set { "set" } else { "removed" });
            Ok(ok_json(json!({ "viewer_password": set })))
        }
        (Method::POST, "/api/auth/logout") => {
            auth.end_session(cookie(&headers, SESSION_COOKIE));
            let mut resp = ok_json(json!({ "logged_in": false }));
            set_cookie(&mut resp, SESSION_COOKIE, "", 0, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/password") => {
            if !is_admin() {
                return Err(ServerError::Unauthorized("log in as admin first".into()));
            }
            let body = password_from(req, auth.cfg.max_body).await?;
            let new = body.password.unwrap_or_default();
            new_password_ok(&new)?;
            auth.reserve(client.ip)?;
            if !auth
                .verify(Which::Admin, body.current.unwrap_or_default())
                .await
            {
                return Err(ServerError::Forbidden(
                    "the current password is wrong".into(),
                ));
            }
            auth.throttle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .succeed(client.ip, Instant::now());
            let hash = auth.hash(new).await?;
            auth.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .save(Which::Admin, Some(hash))?;
            // Every other admin session ends; this one gets a fresh token.
            auth.drop_sessions(Kind::Admin);
            tracing::info!(client = %client.ip, "admin password changed");
            let token = auth.new_session(Kind::Admin)?;
            let mut resp = ok_json(json!({ "logged_in": true }));
            set_cookie(&mut resp, SESSION_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (m, p) => Err(
            if p == "/api/auth" || p.starts_with("/api/auth/") && m != Method::GET {
                ServerError::MethodNotAllowed {
                    method: m.to_string(),
                    path: p.to_owned(),
                }
            } else {
                ServerError::NotFound(p.to_owned())
            },
        ),
    }
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

    #[test]
    fn proxy_headers_only_count_on_the_unix_socket() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("8.8.8.8"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let tcp = ConnInfo {
            peer: Some("192.168.1.5".parse().unwrap()),
        };
        let c = client_of(Some(&tcp), &h);
        assert_eq!(c.ip, "192.168.1.5".parse::<IpAddr>().unwrap());
        assert!(!c.https);
        let unix = ConnInfo { peer: None };
        let c = client_of(Some(&unix), &h);
        assert_eq!(c.ip, "8.8.8.8".parse::<IpAddr>().unwrap());
        assert!(c.https);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.1, 8.8.4.4"),
        );
        assert_eq!(
            client_of(Some(&unix), &h).ip,
            "8.8.4.4".parse::<IpAddr>().unwrap()
        );
        assert!(!is_lan(client_of(None, &h).ip));
    }

    #[test]
    fn backoff_grows_per_address_and_globally() {
        let mut t = Throttle::default();
        let now = Instant::now();
        let ip: IpAddr = "192.168.1.9".parse().unwrap();
        t.fail(ip, now);
        t.fail(ip, now);
        assert_eq!(t.check(ip, now), None, "two free tries");
        t.fail(ip, now);
        assert_eq!(t.check(ip, now), Some(Duration::from_secs(1)));
        t.fail(ip, now);
        assert_eq!(t.check(ip, now), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            t.fail(ip, now);
        }
        assert_eq!(t.check(ip, now), Some(Duration::from_secs(300)), "capped");
        let other: IpAddr = "192.168.1.10".parse().unwrap();
        assert!(
            t.check(other, now).is_some(),
            "global backoff after many failures"
        );
        t.succeed(ip, now);
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "invalid"));
    }

    #[test]
    fn reset_file_fires_once() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        let reset = d.path().join("pinhole-reset-password");
        write_private(&data.join(ADMIN_FILE), b"{}").unwrap();
        assert!(!apply_reset_file(&data, &reset));
        std::fs::write(&reset, "").unwrap();
        // Make the reset file undeletable, like on a read-only boot partition.
        let ro = d.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        let reset = ro.join("pinhole-reset-password");
        std::fs::write(&reset, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert!(apply_reset_file(&data, &reset));
        assert!(!data.join(ADMIN_FILE).exists());
        write_private(&data.join(ADMIN_FILE), b"{}").unwrap();
        let again = apply_reset_file(&data, &reset);
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        if reset.exists() {
            assert!(!again, "the same file does not reset twice");
            assert!(data.join(ADMIN_FILE).exists());
        }
    }

    #[test]
    fn an_unreadable_viewer_file_keeps_viewing_closed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(VIEWER_FILE), "{not json").unwrap();
        let store = Store::load(Some(d.path()));
        assert!(store.hash.is_none());
        // Not "no viewer password": the file stays, nobody gets in with it.
        let h = store.viewer_hash.clone().expect("treated as set");
        assert!(!verify_password("", &h));
        let mut store = store;
        store
            .save(Which::Viewer, Some(hash_password("viewer pass").unwrap()))
            .unwrap();
        let again = Store::load(Some(d.path()));
        assert!(verify_password(
            "viewer pass",
            again.viewer_hash.as_ref().unwrap()
        ));
        let mut again = again;
        again.save(Which::Viewer, None).unwrap();
        assert!(!d.path().join(VIEWER_FILE).exists());
        assert!(Store::load(Some(d.path())).viewer_hash.is_none());
    }

    #[test]
    fn cookies_and_query() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; pinhole_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            query_param(Some("x=1&token=t0k"), "token").as_deref(),
            Some("t0k")
        );
        assert_eq!(query_param(Some("tokenx=1"), "token"), None);
    }
}
