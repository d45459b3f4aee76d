//! The RTSP adapter of the access policy: the same `access::decide` as
//! HTTP, asked with what an RTSP client can bring — a viewer token in the
//! URL, or the viewer password by Basic or Digest. RTSP has no `Host` or
//! `Origin` a browser could forge (browsers do not speak RTSP), so only the
//! viewer policy applies, as for ffmpeg or VLC over HTTP.

use std::net::IpAddr;

use pinhole_rtsp::auth::Authorization;

use super::store::{ViewerKeys, Which};
use super::{query_param, Auth};
use crate::access::{self, Ask, Class, Credentials, Decision, One, Settings};
use crate::ServerError;

/// The only user name the viewer password goes with (it is part of the
/// Digest HA1).
pub const VIEWER_USER: &str = "viewer";

impl Auth {
    /// The viewer-policy decision for an RTSP client.
    pub(crate) fn rtsp_decide(&self, ip: IpAddr, creds: Credentials) -> Decision {
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let settings = Settings {
            configured: self.has_password(),
            viewer_access: self.cfg.viewer,
            viewer_password: self.has_viewer_password(),
            hostname: None,
            allowed_hosts: &lists.allowed_hosts,
            allowed_origins: &lists.allowed_origins,
        };
        access::decide(
            &Ask {
                client: ip,
                host: One::Absent,
                origin: One::Absent,
                fetch_site: None,
                creds,
                safe: true,
                class: Class::View,
            },
            &settings,
        )
    }

    /// Whether a `?token=` in an RTSP URL's query is a viewer token.
    pub(crate) fn rtsp_token_ok(&self, query: Option<&str>) -> bool {
        self.viewer_token_ok(query_param(query, "token").as_deref())
    }

    /// Checks the viewer password an RTSP client sent, under the login
    /// backoff (the attempt is counted before the check). `method`, `nonce`:
    /// what Digest covers. `Ok(false)`: wrong; `Err`: throttled.
    pub(crate) async fn rtsp_password(
        &self,
        ip: IpAddr,
        authz: &Authorization,
        method: &str,
        nonce: &str,
    ) -> Result<bool, ServerError> {
        if !self.has_viewer_password() {
            return Ok(false);
        }
        self.reserve(ip)?;
        let ok = match authz {
            Authorization::Basic { user, password } => {
                let ok = user == VIEWER_USER && self.verify(Which::Viewer, password.clone()).await;
                if ok {
                    self.remember_viewer_keys(password);
                }
                ok
            }
            Authorization::Digest(d) => {
                let ha1 = self
                    .store
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .viewer_ha1
                    .clone();
                match ha1 {
                    Some(h) => d.username == VIEWER_USER && d.verify(method, &h, nonce),
                    None => {
                        tracing::warn!(
                            "an RTSP client used Digest, but the viewer password was set before \
                             RTSP existed: log in once with Basic (or set the password again)"
                        );
                        false
                    }
                }
            }
        };
        if ok {
            self.throttle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .succeed(ip, self.clock.now_us());
        }
        Ok(ok)
    }

    /// A viewer password file from before RTSP (or ONVIF) lacks the HA1
    /// (or the digest secret): add them once the password is known to be right.
    pub(super) fn remember_viewer_keys(&self, password: &str) {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if store.viewer_ha1.is_some() && (store.viewer_secret.is_some() || !store.keep_secret) {
            return;
        }
        let hash = store.viewer_hash.clone();
        if let Err(e) = store.save_with(Which::Viewer, hash, ViewerKeys::of(password)) {
            tracing::warn!(error = %e, "cannot store the viewer password's Digest keys");
        }
    }
}
