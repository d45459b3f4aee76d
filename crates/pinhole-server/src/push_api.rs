//! `/api/push` (admin only): list, add and remove push targets. Targets
//! added here are kept in `push.json` in the data dir (mode 0600: the URLs
//! carry stream keys) and started again at the next start; the config
//! file's targets are listed but changed only in the file. No answer ever
//! carries a key (`PushUrl::redacted`). A target may bring its own CA
//! (PEM text, for an `rtmps://` or `whip+https://` server with a private or
//! self-signed certificate): checked, then kept in `push-ca/` in the data
//! dir and used as the config file's `tls_ca` is.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use pinhole_push::{PushSet, PushUrl, SetError};
use serde::Deserialize;
use serde_json::json;

use crate::limits::{read_body, MAX_JSON_BODY};
use crate::{full, AppState, Body, ServerError};

const FILE: &str = "push.json";
const CA_DIR: &str = "push-ca";
/// A CA bundle is a few KiB; this is room for a long chain.
const MAX_CA_PEM: usize = 64 << 10;
pub(crate) const PATH: &str = "/api/push";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Add {
    url: String,
    /// The stream key (RTMP) or passphrase (SRT), from its own field.
    #[serde(default)]
    key: String,
    #[serde(default = "yes")]
    enabled: bool,
    /// PEM certificate(s) trusted for this target besides the built-in roots.
    #[serde(default)]
    tls_ca: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    enabled: Option<bool>,
    #[serde(default)]
    clear_error: bool,
}

/// `push.json`: a URL, or a URL and whether it is enabled (older files
/// hold plain strings).
#[derive(Deserialize, serde::Serialize)]
#[serde(untagged)]
enum Saved {
    Url(String),
    Entry {
        url: String,
        enabled: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_ca: Option<std::path::PathBuf>,
    },
}

fn set(state: &AppState) -> Result<&Arc<PushSet>, ServerError> {
    state
        .push
        .get()
        .ok_or_else(|| ServerError::Unavailable("push is not set up in this daemon".into()))
}

/// Start the targets saved in the data dir (at start-up, after the
/// daemon set `state.push`). A damaged file is logged and left alone.
pub fn start_saved(state: &AppState) {
    let (Some(set), Some(dir)) = (state.push.get(), state.auth.config().data_dir.as_ref()) else {
        return;
    };
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let urls: Vec<Saved> = match serde_json::from_str(&text) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "ignoring the saved push targets");
            return;
        }
    };
    for u in urls {
        let (u, enabled, tls_ca) = match u {
            Saved::Url(u) => (u, true, None),
            Saved::Entry {
                url,
                enabled,
                tls_ca,
            } => (url, enabled, tls_ca),
        };
        match PushUrl::parse(&u) {
            Ok(mut url) => {
                url.tls_ca = tls_ca;
                tracing::info!(target = %url.redacted(), enabled, "push (saved)");
                let _ = set.add_with(url, true, enabled);
            }
            Err(e) => tracing::error!(path = %path.display(), "saved push target skipped: {e}"),
        }
    }
}

async fn save(state: &AppState, set: &PushSet) -> Result<(), ServerError> {
    let Some(dir) = state.auth.config().data_dir.clone() else {
        return Ok(());
    };
    let urls: Vec<Saved> = set
        .api_targets()
        .into_iter()
        .map(|(u, enabled)| Saved::Entry {
            url: u.secret_url(),
            enabled,
            tls_ca: u.tls_ca.clone(),
        })
        .collect();
    let text = serde_json::to_vec(&urls).map_err(|e| ServerError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || crate::auth::write_private(&dir.join(FILE), &text))
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?
        .map_err(|e| ServerError::Internal(format!("cannot save {FILE}: {e}")))
}

/// Checks a target's CA and keeps it in the data dir (named by its
/// contents: the same CA twice is one file); its path.
async fn store_ca(
    state: &AppState,
    url: &PushUrl,
    pem: String,
) -> Result<std::path::PathBuf, ServerError> {
    if !url.uses_tls() {
        return Err(ServerError::BadRequest(
            "a CA applies to rtmps:// and whip+https:// targets only".into(),
        ));
    }
    if pem.len() > MAX_CA_PEM {
        return Err(ServerError::BadRequest(format!(
            "the CA is over {} KiB",
            MAX_CA_PEM >> 10
        )));
    }
    pinhole_push::check_ca_pem(pem.as_bytes())
        .map_err(|e| ServerError::BadRequest(format!("the CA: {e}")))?;
    let Some(dir) = state.auth.config().data_dir.clone() else {
        return Err(ServerError::Conflict(
            "a target's own CA needs the data dir (--data-dir) to be kept in".into(),
        ));
    };
    let name = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        pem.hash(&mut h);
        format!("{:016x}.pem", h.finish())
    };
    let dir = dir.join(CA_DIR);
    let path = dir.join(name);
    let keep = path.clone();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        // A CA is public: the daemon's usual umask is fine.
        let tmp = keep.with_extension("tmp");
        std::fs::write(&tmp, pem.as_bytes())?;
        std::fs::rename(&tmp, &keep)
    })
    .await
    .map_err(|e| ServerError::Internal(e.to_string()))?
    .map_err(|e| ServerError::Internal(format!("cannot keep the CA: {e}")))?;
    Ok(path)
}

fn reply(state: &AppState, status: StatusCode) -> Result<Response<Body>, ServerError> {
    let set = set(state)?;
    let targets: Vec<_> = set
        .list()
        .into_iter()
        .map(|l| {
            let t = l.status;
            json!({
                "id": l.id,
                "from": if l.from_api { "api" } else { "config" },
                "enabled": l.enabled,
                "retry_in_ms": t.retry_in_ms,
                "url": t.url,
                "state": t.state.as_str(),
                "frames": t.frames,
                "bytes": t.bytes,
                "skipped": t.skipped,
                "reconnects": t.reconnects,
                "last_error": t.last_error,
                "tls_ca": l.tls_ca.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    let mut r = full(
        status,
        "application/json",
        json!({
            "targets": targets,
            "persistent": state.auth.config().data_dir.is_some(),
        })
        .to_string(),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `GET/POST /api/push`, `DELETE /api/push/<id>`; the guard has required
/// the admin for every method (route table).
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, ServerError> {
    let set = set(state)?.clone();
    match (method, path.strip_prefix(PATH)) {
        (&Method::GET | &Method::HEAD, Some("")) => reply(state, StatusCode::OK),
        (&Method::POST, Some("")) => {
            let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let add: Add = serde_json::from_slice(&body).map_err(|_| {
                // serde's message may quote the input, i.e. the key.
                ServerError::BadRequest(
                    "expected {\"url\": \"rtmp://host/app/key\", \"key\": optional}".into(),
                )
            })?;
            let mut url = PushUrl::parse_with_key(&add.url, &add.key)
                .map_err(|e| ServerError::BadRequest(e.to_string()))?;
            if let Some(pem) = add.tls_ca.filter(|p| !p.trim().is_empty()) {
                url.tls_ca = Some(store_ca(state, &url, pem).await?);
            }
            let shown = url.redacted();
            set.add_with(url, true, add.enabled).map_err(|_| {
                ServerError::Conflict(format!(
                    "at most {} push targets",
                    pinhole_push::MAX_TARGETS
                ))
            })?;
            save(state, &set).await?;
            tracing::info!(target = %shown, "push target added");
            reply(state, StatusCode::CREATED)
        }
        (&Method::PATCH, Some(rest)) => {
            let id: u64 = rest
                .strip_prefix('/')
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| ServerError::NotFound(path.to_owned()))?;
            let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let patch: Patch = serde_json::from_slice(&body).map_err(|_| {
                ServerError::BadRequest(
                    "expected {\"enabled\": true|false} and/or {\"clear_error\": true}".into(),
                )
            })?;
            let found =
                |r: Result<(), SetError>| r.map_err(|_| ServerError::NotFound(path.to_owned()));
            if patch.clear_error {
                found(set.clear_error(id))?;
            }
            if let Some(on) = patch.enabled {
                found(set.set_enabled(id, on))?;
                save(state, &set).await?;
                tracing::info!(id, enabled = on, "push target switched");
            }
            reply(state, StatusCode::OK)
        }
        (&Method::DELETE, Some(rest)) => {
            let id: u64 = rest
                .strip_prefix('/')
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| ServerError::NotFound(path.to_owned()))?;
            match set.remove(id) {
                Ok(()) => {}
                Err(SetError::FromConfig) => {
                    return Err(ServerError::Conflict(
                        "this target is in the config file: remove it there".into(),
                    ))
                }
                Err(_) => return Err(ServerError::NotFound(path.to_owned())),
            }
            save(state, &set).await?;
            tracing::info!(id, "push target removed");
            reply(state, StatusCode::OK)
        }
        _ => Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
        }),
    }
}
