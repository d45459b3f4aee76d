//! Sessions: random tokens in memory, admin and viewer pools apart, idle
//! and absolute lifetimes.

use super::{micros, Auth};
use crate::ServerError;

const MAX_ADMIN_SESSIONS: usize = 64;
/// Viewers get their own, larger pool: a page full of viewers (or an NVR
/// re-opening `/?token=`) must not evict the admin's session.
const MAX_VIEWER_SESSIONS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Admin,
    Viewer,
}

pub(super) struct Session {
    kind: Kind,
    /// On the `Auth` clock, µs.
    created: u64,
    last_seen: u64,
}

fn new_token() -> Result<String, ServerError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)
        .map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Auth {
    /// Within both the absolute and the idle lifetime at `now`.
    fn alive(&self, s: &Session, now: u64) -> bool {
        now.saturating_sub(s.created) < micros(self.cfg.session_max)
            && now.saturating_sub(s.last_seen) < micros(self.cfg.session_idle)
    }

    /// Whether the request carries a valid admin session (for answers that
    /// show the admin more than a viewer, e.g. `/api/status`).
    pub(crate) fn is_admin(&self, headers: &http::HeaderMap) -> bool {
        self.session(super::cookie(headers, super::SESSION_COOKIE), Kind::Admin)
    }

    pub(super) fn session(&self, token: Option<&str>, want: Kind) -> bool {
        let Some(token) = token else { return false };
        let now = self.clock.now_us();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let valid = match s.get_mut(token) {
            Some(sess) if self.alive(sess, now) => {
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

    pub(super) fn new_session(&self, kind: Kind) -> Result<String, ServerError> {
        let token = new_token()?;
        let now = self.clock.now_us();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| self.alive(v, now));
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
    pub(super) fn drop_sessions(&self, kind: Kind) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| v.kind != kind);
    }

    pub(super) fn end_session(&self, token: Option<&str>) {
        if let Some(t) = token {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(t);
        }
    }
}
