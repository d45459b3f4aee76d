//! The password store: the admin's and the optional viewer password as
//! Argon2id hashes in files of the data dir, and the physical reset file.

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use serde_json::json;

use crate::ServerError;

const ADMIN_FILE: &str = "admin.json";
pub(super) const VIEWER_FILE: &str = "viewer.json";
/// The viewer password itself, for ONVIF's PasswordDigest: its own file,
/// written only while ONVIF is on (`Store::keep_secret`).
pub(super) const WSSE_FILE: &str = "viewer-onvif.json";
const RESET_DONE_FILE: &str = "reset-consumed";

/// Which password: the admin's, or the optional one for viewers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Admin,
    Viewer,
}

impl Which {
    pub(super) fn file(self) -> &'static str {
        match self {
            Which::Admin => ADMIN_FILE,
            Which::Viewer => VIEWER_FILE,
        }
    }
}

pub(super) struct Store {
    pub(super) dir: Option<PathBuf>,
    pub(super) hash: Option<String>,
    /// Set: viewing needs a login (or a token), whatever `viewer_access` says.
    pub(super) viewer_hash: Option<String>,
    /// RTSP Digest's HA1 of the viewer password (`MD5(viewer:pinhole:pw)`),
    /// kept beside its Argon2 hash: Digest cannot work from Argon2. Only
    /// for a file written since RTSP came; older ones get it at the first
    /// RTSP Basic login.
    pub(super) viewer_ha1: Option<String>,
    /// The viewer password itself, for ONVIF's WS-UsernameToken
    /// PasswordDigest (SHA-1 over nonce, time and the password: no stored
    /// hash can serve it). Kept (in `WSSE_FILE`, 0600) only while
    /// `keep_secret`; see docs/rtsp.md.
    pub(super) viewer_secret: Option<String>,
    /// ONVIF is on: keep the viewer password itself.
    pub(super) keep_secret: bool,
}

/// What the viewer's file keeps beside the Argon2 hash, for protocols that
/// cannot work from it (RTSP Digest, ONVIF's PasswordDigest).
#[derive(Clone, Debug, Default)]
pub(super) struct ViewerKeys {
    pub(super) ha1: Option<String>,
    pub(super) secret: Option<String>,
}

impl ViewerKeys {
    pub(super) fn of(password: &str) -> ViewerKeys {
        ViewerKeys {
            ha1: Some(pinhole_rtsp::auth::ha1(super::VIEWER_USER, password)),
            secret: Some(password.to_owned()),
        }
    }
}

impl Store {
    pub(super) fn load(dir: Option<&Path>) -> Store {
        let load = |which: Which| {
            let path = dir?.join(which.file());
            let text = std::fs::read_to_string(&path).ok()?;
            match serde_json::from_str::<AdminFile>(&text) {
                Ok(f) if PasswordHash::new(&f.argon2id).is_ok() => Some((
                    f.argon2id,
                    ViewerKeys {
                        ha1: f.digest_ha1.filter(|d| is_ha1(d)),
                        secret: None,
                    },
                )),
                _ => {
                    // Never fall back to "no password" silently for a file we
                    // cannot read: keep the file, refuse logins, say so.
                    tracing::error!(path = %path.display(), "password file is unreadable; remove it (or, for the admin's, use the reset file) to set a new password");
                    Some((String::from("invalid"), ViewerKeys::default()))
                }
            }
        };
        let viewer = load(Which::Viewer);
        Store {
            dir: dir.map(Path::to_owned),
            hash: load(Which::Admin).map(|(h, _)| h),
            viewer_ha1: viewer.as_ref().and_then(|(_, k)| k.ha1.clone()),
            viewer_secret: viewer.as_ref().and_then(|_| {
                let text = std::fs::read_to_string(dir?.join(WSSE_FILE)).ok()?;
                serde_json::from_str::<SecretFile>(&text)
                    .ok()
                    .map(|f| f.password)
            }),
            viewer_hash: viewer.map(|(h, _)| h),
            keep_secret: false,
        }
    }

    /// ONVIF on: keep the viewer password itself from now on; off: forget
    /// it, and remove its file.
    pub(super) fn keep_secret(&mut self, on: bool) {
        self.keep_secret = on;
        if !on {
            self.viewer_secret = None;
            if let Some(dir) = &self.dir {
                if let Err(e) = std::fs::remove_file(dir.join(WSSE_FILE)) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(error = %e, "cannot remove {WSSE_FILE}");
                    }
                }
            }
        }
    }

    pub(super) fn get(&self, which: Which) -> Option<&String> {
        match which {
            Which::Admin => self.hash.as_ref(),
            Which::Viewer => self.viewer_hash.as_ref(),
        }
    }

    /// Stores (or with `None`, removes) a password hash; for the viewer's,
    /// with its Digest HA1 when known.
    pub(super) fn save(&mut self, which: Which, hash: Option<String>) -> Result<(), ServerError> {
        self.save_with(which, hash, ViewerKeys::default())
    }

    pub(super) fn save_with(
        &mut self,
        which: Which,
        hash: Option<String>,
        keys: ViewerKeys,
    ) -> Result<(), ServerError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(which.file());
            let res = match &hash {
                Some(h) => {
                    let mut doc = json!({ "version": 1, "argon2id": h });
                    if let Some(d) = &keys.ha1 {
                        doc["digest_ha1"] = json!(d);
                    }
                    write_private(&path, doc.to_string().as_bytes())
                }
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            res.map_err(|e| ServerError::Internal(format!("cannot store the password: {e}")))?;
            if which == Which::Viewer {
                let secret_path = dir.join(WSSE_FILE);
                let res = match keys
                    .secret
                    .as_ref()
                    .filter(|_| hash.is_some() && self.keep_secret)
                {
                    Some(p) => write_private(
                        &secret_path,
                        json!({ "version": 1, "password": p })
                            .to_string()
                            .as_bytes(),
                    ),
                    None => match std::fs::remove_file(&secret_path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                        _ => Ok(()),
                    },
                };
                res.map_err(|e| ServerError::Internal(format!("cannot store the password: {e}")))?;
            }
        }
        match which {
            Which::Admin => self.hash = hash,
            Which::Viewer => {
                self.viewer_ha1 = keys.ha1.filter(|_| hash.is_some());
                self.viewer_secret = keys.secret.filter(|_| hash.is_some() && self.keep_secret);
                self.viewer_hash = hash;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct AdminFile {
    argon2id: String,
    #[serde(default)]
    digest_ha1: Option<String>,
}

#[derive(Deserialize)]
struct SecretFile {
    password: String,
}

fn is_ha1(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
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

pub(super) fn hash_password(pw: &str) -> Result<String, ServerError> {
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

pub(super) fn verify_password(pw: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_viewer_digest_ha1_is_kept_beside_the_hash() {
        let d = tempfile::tempdir().unwrap();
        let mut store = Store::load(Some(d.path()));
        let h = hash_password("viewer pass").unwrap();
        // A file from before RTSP: no HA1.
        store.save(Which::Viewer, Some(h.clone())).unwrap();
        assert_eq!(Store::load(Some(d.path())).viewer_ha1, None);
        let ha1 = pinhole_rtsp::auth::ha1("viewer", "viewer pass");
        // ONVIF off (the default): the password itself is not kept.
        store
            .save_with(
                Which::Viewer,
                Some(h.clone()),
                ViewerKeys::of("viewer pass"),
            )
            .unwrap();
        assert_eq!(store.viewer_secret, None);
        assert!(!d.path().join(WSSE_FILE).exists());
        store.keep_secret(true);
        store
            .save_with(Which::Viewer, Some(h), ViewerKeys::of("viewer pass"))
            .unwrap();
        let again = Store::load(Some(d.path()));
        assert_eq!(again.viewer_ha1.as_deref(), Some(ha1.as_str()));
        // ONVIF's PasswordDigest needs the password itself: in a file of
        // its own, never in viewer.json.
        assert_eq!(again.viewer_secret.as_deref(), Some("viewer pass"));
        assert!(!std::fs::read_to_string(d.path().join(VIEWER_FILE))
            .unwrap()
            .contains("viewer pass"));
        let mut off = Store::load(Some(d.path()));
        off.keep_secret(false);
        assert!(!d.path().join(WSSE_FILE).exists(), "ONVIF off: removed");
        assert_eq!(Store::load(Some(d.path())).viewer_secret, None);
        let mut again = Store::load(Some(d.path()));
        again.keep_secret(true);
        again
            .save_with(
                Which::Viewer,
                again.viewer_hash.clone(),
                ViewerKeys::of("viewer pass"),
            )
            .unwrap();
        assert!(d.path().join(WSSE_FILE).exists());
        assert!(verify_password(
            "viewer pass",
            again.viewer_hash.as_ref().unwrap()
        ));
        // Removing the password removes its HA1 too.
        again.save(Which::Viewer, None).unwrap();
        assert_eq!(again.viewer_ha1, None);
        assert_eq!(again.viewer_secret, None);
        assert!(!d.path().join(WSSE_FILE).exists());
        // A malformed HA1 is ignored, not trusted.
        write_private(
            &d.path().join(VIEWER_FILE),
            serde_json::json!({"version": 1, "argon2id": hash_password("x y z w").unwrap(), "digest_ha1": "nothex"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(Store::load(Some(d.path())).viewer_ha1, None);
    }
}
