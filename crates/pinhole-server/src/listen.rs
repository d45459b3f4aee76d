//! Listening addresses: TCP for development, a Unix socket for nginx.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::ServerError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(
                    "unix: needs a socket path, e.g. unix:/run/pinhole/pinholed.sock".into(),
                );
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        // Addresses only: resolving names would need NSS in the static binary.
        s.parse::<SocketAddr>().map(ListenAddr::Tcp).map_err(|_| {
            format!("'{s}' is neither IP:PORT (e.g. 127.0.0.1:8080, [::]:80) nor unix:/path")
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound listener, ready for [`crate::serve`].
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    pub async fn bind(addr: &ListenAddr) -> Result<Listener, ServerError> {
        let err = |source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        };
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(
                tokio::net::TcpListener::bind(a).await.map_err(err)?,
            )),
            ListenAddr::Unix(path) => {
                // A socket left by a previous run would make bind fail.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        let _ = std::fs::remove_file(path);
                    }
                }
                let l = tokio::net::UnixListener::bind(path).map_err(err)?;
                // nginx runs as another user; the directory guards access.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                    .map_err(err)?;
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(ListenAddr::Tcp)
                .unwrap_or(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], 0)))),
            Listener::Unix(_, p) => ListenAddr::Unix(p.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix() {
        assert_eq!(
            "127.0.0.1:8080".parse::<ListenAddr>(),
            Ok(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080))))
        );
        assert_eq!(
            "unix:/run/p.sock".parse::<ListenAddr>(),
            Ok(ListenAddr::Unix("/run/p.sock".into()))
        );
        assert!("[::]:80".parse::<ListenAddr>().is_ok());
        assert!("localhost:80".parse::<ListenAddr>().is_err());
        assert!("unix:".parse::<ListenAddr>().is_err());
    }
}
