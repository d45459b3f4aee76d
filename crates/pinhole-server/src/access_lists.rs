//! The admin's lists for the access policy: extra host names this device
//! answers to, and foreign origins whose pages may view. The config file's
//! entries (`[security] allowed_hosts`, `allowed_origins`) always apply; the
//! settings panel adds its own through `GET/PUT /api/access`, kept in
//! `access.json` in the data dir.

use std::path::Path;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::{check_host_name, check_origin};
use crate::auth::SecurityConfig;
use crate::limits::{read_body, MAX_JSON_BODY};
use crate::{full, AppState, Body, ServerError};

const FILE: &str = "access.json";
/// Enough for any home; keeps the per-request comparison cheap.
const MAX_ENTRIES: usize = 64;

/// Host names and origins, each checked and normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLists {
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

impl AccessLists {
    /// Checks and normalises every entry; the first bad one is the error.
    pub fn checked(hosts: &[String], origins: &[String]) -> Result<AccessLists, String> {
        if hosts.len() > MAX_ENTRIES || origins.len() > MAX_ENTRIES {
            return Err(format!("at most {MAX_ENTRIES} entries per list"));
        }
        let mut out = AccessLists {
            allowed_hosts: hosts
                .iter()
                .map(|h| check_host_name(h))
                .collect::<Result<_, _>>()?,
            allowed_origins: origins
                .iter()
                .map(|o| check_origin(o))
                .collect::<Result<_, _>>()?,
        };
        out.allowed_hosts.dedup();
        out.allowed_origins.dedup();
        Ok(out)
    }

    /// The config's lists (validated by the daemon; bad entries dropped).
    pub(crate) fn from_config(cfg: &SecurityConfig) -> AccessLists {
        AccessLists {
            allowed_hosts: cfg
                .allowed_hosts
                .iter()
                .filter_map(|h| check_host_name(h).ok())
                .collect(),
            allowed_origins: cfg
                .allowed_origins
                .iter()
                .filter_map(|o| check_origin(o).ok())
                .collect(),
        }
    }

    /// The panel's lists from the data dir; none if missing or unreadable.
    pub(crate) fn load(dir: Option<&Path>) -> AccessLists {
        let Some(path) = dir.map(|d| d.join(FILE)) else {
            return AccessLists::default();
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return AccessLists::default();
        };
        match serde_json::from_str::<AccessLists>(&text)
            .map_err(|e| e.to_string())
            .and_then(|l| AccessLists::checked(&l.allowed_hosts, &l.allowed_origins))
        {
            Ok(l) => l,
            Err(e) => {
                // Fails closed: fewer names and origins, never more.
                tracing::error!(path = %path.display(), error = %e, "ignoring the saved allowed hosts and origins");
                AccessLists::default()
            }
        }
    }

    pub(crate) fn merged(a: &AccessLists, b: &AccessLists) -> AccessLists {
        let mut m = a.clone();
        for h in &b.allowed_hosts {
            if !m.allowed_hosts.contains(h) {
                m.allowed_hosts.push(h.clone());
            }
        }
        for o in &b.allowed_origins {
            if !m.allowed_origins.contains(o) {
                m.allowed_origins.push(o.clone());
            }
        }
        m
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Put {
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

fn reply(state: &AppState) -> Response<Body> {
    let auth = &state.auth;
    let saved = auth
        .saved_lists
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let config = AccessLists::from_config(auth.config());
    let mut r = full(
        StatusCode::OK,
        "application/json",
        json!({
            "allowed_hosts": saved.allowed_hosts,
            "allowed_origins": saved.allowed_origins,
            "config": config,
            "persistent": auth.config().data_dir.is_some(),
        })
        .to_string(),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// `GET/PUT /api/access`. PUT is admin-only (the guard: a state change).
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    method: &Method,
) -> Result<Response<Body>, ServerError> {
    match *method {
        Method::GET | Method::HEAD => Ok(reply(state)),
        Method::PUT => {
            let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let put: Put = serde_json::from_slice(&body).map_err(|e| {
                ServerError::BadRequest(format!(
                    "expected {{\"allowed_hosts\": [..], \"allowed_origins\": [..]}}: {e}"
                ))
            })?;
            let lists = AccessLists::checked(&put.allowed_hosts, &put.allowed_origins)
                .map_err(ServerError::BadRequest)?;
            let auth = &state.auth;
            if let Some(dir) = auth.config().data_dir.clone() {
                let text =
                    serde_json::to_vec(&lists).map_err(|e| ServerError::Internal(e.to_string()))?;
                tokio::task::spawn_blocking(move || {
                    crate::auth::write_private(&dir.join(FILE), &text)
                })
                .await
                .map_err(|e| ServerError::Internal(e.to_string()))?
                .map_err(|e| ServerError::Internal(format!("cannot save {FILE}: {e}")))?;
            }
            let merged = AccessLists::merged(&AccessLists::from_config(auth.config()), &lists);
            *auth.saved_lists.lock().unwrap_or_else(|e| e.into_inner()) = lists;
            *auth.lists.write().unwrap_or_else(|e| e.into_inner()) = merged;
            tracing::info!("allowed hosts and origins changed");
            Ok(reply(state))
        }
        _ => Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: "/api/access".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_checked_saved_and_merged() {
        let l = AccessLists::checked(
            &["Cam.Example.org.".into()],
            &["HTTP://Printer.local:80/".into()],
        )
        .unwrap();
        assert_eq!(l.allowed_hosts, ["cam.example.org"]);
        assert_eq!(l.allowed_origins, ["http://printer.local"]);
        assert!(AccessLists::checked(&["a b".into()], &[]).is_err());
        assert!(AccessLists::checked(&[], &["null".into()]).is_err());
        assert!(AccessLists::checked(&[], &["*".into()]).is_err());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), serde_json::to_vec(&l).unwrap()).unwrap();
        assert_eq!(AccessLists::load(Some(d.path())), l);
        std::fs::write(d.path().join(FILE), "{\"allowed_origins\": [\"null\"]}").unwrap();
        assert_eq!(AccessLists::load(Some(d.path())), AccessLists::default());
        let m = AccessLists::merged(&l, &l);
        assert_eq!(m, l);
    }
}
