//! `GET/PUT /api/https`: turn nginx's HTTPS on or off (docs/security.md).
//!
//! pinholed runs unprivileged and cannot touch nginx: it only creates or
//! removes the flag file `<data dir>/https-enabled`. On the device a systemd
//! path unit (`pinhole-https.path`) sees the change and reloads nginx, whose
//! `pinhole-tls-setup` makes the certificate and the `listen 443 ssl` config.
//! PUT is admin-only like every state change (access.rs decides, the guard
//! in auth/http.rs asks).

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::json;

use crate::limits::{read_body, MAX_JSON_BODY};
use crate::{full, AppState, Body, ServerError};

/// The flag file in the data directory; its presence means "HTTPS on".
pub const FLAG_FILE: &str = "https-enabled";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Put {
    enabled: bool,
}

/// The body of `PUT /api/https`: `{"enabled": true|false}`.
fn parse(body: &[u8]) -> Result<bool, ServerError> {
    serde_json::from_slice::<Put>(body)
        .map(|p| p.enabled)
        .map_err(|e| ServerError::BadRequest(format!("expected {{\"enabled\": bool}}: {e}")))
}

/// Whether the flag is set in `dir`.
pub fn enabled(dir: &Path) -> bool {
    dir.join(FLAG_FILE).exists()
}

/// Sets or clears the flag, durably (the setting must survive a power cut).
pub fn set(dir: &Path, on: bool) -> Result<(), ServerError> {
    let flag = dir.join(FLAG_FILE);
    let ctx = |what: &str, e: std::io::Error| {
        ServerError::Internal(format!("{what} {}: {e}", flag.display()))
    };
    if on {
        let mut f = File::create(&flag).map_err(|e| ctx("create", e))?;
        f.write_all(b"1\n")
            .and_then(|_| f.sync_all())
            .map_err(|e| ctx("write", e))?;
    } else {
        match std::fs::remove_file(&flag) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(ctx("remove", e)),
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx("sync the directory of", e))
}

fn data_dir(state: &AppState) -> Result<PathBuf, ServerError> {
    state
        .config
        .security
        .data_dir
        .clone()
        .ok_or_else(|| ServerError::Unavailable("no data directory to keep the setting".into()))
}

fn reply(on: bool) -> Response<Body> {
    full(
        StatusCode::OK,
        "application/json",
        json!({ "enabled": on }).to_string(),
    )
}

/// `/api/https`.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    method: &Method,
) -> Result<Response<Body>, ServerError> {
    match *method {
        Method::GET | Method::HEAD => Ok(reply(enabled(&data_dir(state)?))),
        Method::PUT => {
            let dir = data_dir(state)?;
            let on = parse(&read_body(req.into_body(), MAX_JSON_BODY).await?)?;
            tokio::task::spawn_blocking(move || set(&dir, on))
                .await
                .map_err(|e| ServerError::Internal(e.to_string()))??;
            tracing::info!(enabled = on, "HTTPS setting changed (nginx reloads)");
            Ok(reply(on))
        }
        _ => Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: "/api/https".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_a_bool() {
        assert!(parse(br#"{"enabled": true}"#).unwrap());
        assert!(!parse(br#"{"enabled": false}"#).unwrap());
        for bad in [
            &br#"{"enabled": "yes"}"#[..],
            br#"{"enabled": 1}"#,
            br#"{}"#,
            br#"{"enabled": true, "cert": "x"}"#,
            b"on",
        ] {
            assert!(matches!(parse(bad), Err(ServerError::BadRequest(_))));
        }
    }

    #[test]
    fn flag_file_follows_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!enabled(dir.path()));
        set(dir.path(), true).unwrap();
        assert!(dir.path().join(FLAG_FILE).is_file());
        assert!(enabled(dir.path()));
        set(dir.path(), true).unwrap(); // idempotent
        set(dir.path(), false).unwrap();
        assert!(!dir.path().join(FLAG_FILE).exists());
        set(dir.path(), false).unwrap(); // already off is fine
        assert!(!enabled(dir.path()));
    }

    #[test]
    fn a_missing_data_dir_is_an_error_not_a_panic() {
        let missing = tempfile::tempdir().unwrap().path().join("gone");
        assert_eq!(
            set(&missing, true).unwrap_err().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
