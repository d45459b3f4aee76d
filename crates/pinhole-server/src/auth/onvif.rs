//! The ONVIF adapter of the access policy: the viewer policy, asked with
//! what an ONVIF client brings — a WS-UsernameToken for user `viewer` with
//! the viewer password (docs/rtsp.md, *ONVIF*). A client the policy lets
//! watch without credentials (the LAN, no viewer password) needs none here
//! either, as for RTSP.

use std::net::IpAddr;

use pinhole_onvif::soap::{PasswordType, UsernameToken};
use pinhole_onvif::wsse;

use super::store::Which;
use super::{Auth, VIEWER_USER};
use crate::access::{Credentials, Decision};
use crate::ServerError;

impl Auth {
    /// Whether this client may have the viewer's answers (profiles, stream
    /// and snapshot URLs). `Ok(false)`: no or wrong credentials; `Err`: the
    /// login backoff applies (the attempt is counted before the check).
    pub(crate) async fn onvif_viewer(
        &self,
        ip: IpAddr,
        token: Option<&UsernameToken>,
    ) -> Result<bool, ServerError> {
        if matches!(
            self.rtsp_decide(ip, Credentials::default()),
            Decision::Allow { .. }
        ) {
            return Ok(true);
        }
        // Without a viewer password only a token opens viewing, and ONVIF
        // has nowhere to carry one.
        let Some(t) = token.filter(|_| self.has_viewer_password()) else {
            return Ok(false);
        };
        // A refused client is not told whether the policy would allow it.
        if !matches!(
            self.rtsp_decide(
                ip,
                Credentials {
                    viewer: true,
                    ..Credentials::default()
                }
            ),
            Decision::Allow { .. }
        ) {
            return Ok(false);
        }
        self.reserve(ip)?;
        let ok = match t.kind {
            PasswordType::Digest => {
                let secret = self
                    .store
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .viewer_secret
                    .clone();
                match secret {
                    Some(pw) => {
                        let mut nonces = self.wsse_nonces.lock().unwrap_or_else(|e| e.into_inner());
                        match wsse::check_digest(
                            t,
                            VIEWER_USER,
                            &pw,
                            self.clock.wall_us(),
                            &mut nonces,
                        ) {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::debug!(client = %ip, reason = ?e, "ONVIF token refused");
                                false
                            }
                        }
                    }
                    None => {
                        tracing::warn!(
                            "an ONVIF client sent a PasswordDigest, but the viewer password was set \
                             before ONVIF existed: set it again (or log in once over RTSP with Basic)"
                        );
                        false
                    }
                }
            }
            PasswordType::Text => {
                let ok = t.username == VIEWER_USER
                    && self.verify(Which::Viewer, t.password.clone()).await;
                if ok {
                    self.remember_viewer_keys(&t.password);
                }
                ok
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
}
