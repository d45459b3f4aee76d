//! The web UI: embedded in the binary (so `pinholed` alone is a working
//! camera), or served from a directory for development.

use std::path::{Component, Path};
use std::sync::Arc;

use http::{header, StatusCode};
use hyper::Response;
use include_dir::{include_dir, Dir};

use crate::{full, AppState, Body, ServerError};

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

pub(crate) async fn serve(
    state: &Arc<AppState>,
    path: &str,
) -> Result<Response<Body>, ServerError> {
    let Some(rel) = relative_path(path) else {
        return Err(ServerError::NotFound(path.to_owned()));
    };
    let body = match &state.config.ui_dir {
        Some(dir) => {
            let full_path = dir.join(&rel);
            // Symlinks are not followed, in any component (a linked
            // directory could lead out of the UI directory).
            let mut prefix = dir.clone();
            let mut parents = rel.split('/').collect::<Vec<_>>();
            parents.pop();
            for c in parents {
                prefix.push(c);
                match tokio::fs::symlink_metadata(&prefix).await {
                    Ok(m) if m.is_dir() => {}
                    _ => return Err(ServerError::NotFound(path.to_owned())),
                }
            }
            match tokio::fs::symlink_metadata(&full_path).await {
                Ok(m) if m.is_file() => tokio::fs::read(&full_path)
                    .await
                    .map_err(|e| ServerError::Internal(format!("{}: {e}", full_path.display())))?
                    .into(),
                _ => return Err(ServerError::NotFound(path.to_owned())),
            }
        }
        None => match WEB.get_file(&rel) {
            Some(f) => bytes::Bytes::from_static(f.contents()),
            None => return Err(ServerError::NotFound(path.to_owned())),
        },
    };
    let mut resp = full(StatusCode::OK, mime(&rel), body);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(resp)
}

/// The UI-relative file a request path names, or `None` if it could leave
/// the UI directory: only plain relative components, no "..", no absolute
/// paths, no hidden files.
pub(crate) fn relative_path(path: &str) -> Option<String> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_owned()
    };
    // Raw segments, not Path::components (which silently drops "." and
    // empty ones): every segment must be a plain, non-hidden name.
    let clean = rel
        .split('/')
        .all(|seg| !seg.is_empty() && !seg.starts_with('.'))
        && Path::new(&rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    clean.then_some(rel)
}

pub(crate) fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "m3u8" => "application/vnd.apple.mpegurl",
        "mp4" | "m4s" => "video/mp4",
        "mpd" => "application/dash+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::relative_path;

    #[test]
    fn only_plain_relative_names() {
        assert_eq!(relative_path("/").as_deref(), Some("index.html"));
        assert_eq!(
            relative_path("/player/").as_deref(),
            Some("player/index.html")
        );
        assert_eq!(relative_path("/app.js").as_deref(), Some("app.js"));
        for bad in [
            "/../x",
            "/a/../../x",
            "/.git/config",
            "/a/./b",
            "/a//b",
            "/a/.",
            "/%2e%2e/x/..",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }
}
