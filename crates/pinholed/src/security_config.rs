//! The `[security]` config section: where the admin password lives, who may
//! watch, and the connection limits (docs/security.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use pinhole_media::peer::AcceptFrom;
use pinhole_server::auth::{SecurityConfig, ViewerAccess};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySection {
    /// Holds `admin.json` (the Argon2id hash). Unset: `$XDG_STATE_HOME/pinhole`
    /// (else `~/.local/state/pinhole`, else a temp dir), so a developer's
    /// `cargo run` asks for the password once. The image uses /data/pinhole.
    pub data_dir: Option<PathBuf>,
    /// If this file exists at start (and was not used before), the admin
    /// password is removed.
    pub reset_file: Option<PathBuf>,
    /// `lan` (default), `open` or `token`.
    pub viewer_access: String,
    /// Tokens for `?token=` on live URLs (embedding); at least 16 characters.
    pub viewer_tokens: Vec<String>,
    /// A session ends after this many idle minutes…
    pub session_idle_minutes: u64,
    /// …and this many hours after login in any case.
    pub session_max_hours: u64,
    /// Live viewers (WebSocket, MP4, MJPEG) in all, and per client address.
    pub max_viewers: usize,
    pub max_viewers_per_ip: usize,
    /// Host names this camera answers to besides its IP addresses, its
    /// hostname, `<hostname>.local` and `localhost` (DNS rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Foreign origins (`http://printer.local`) whose pages may view the
    /// live streams (Mainsail, Fluidd); the settings panel adds more.
    pub allowed_origins: Vec<String>,
    /// `lan` (default): the daemon's listeners (HTTP TCP, RTSP, WebRTC UDP)
    /// answer LAN addresses only; `any`: everyone (a VPN outside the private
    /// ranges, a port forward). Outgoing push is not affected.
    pub accept_from: String,
}

impl Default for SecuritySection {
    fn default() -> Self {
        let d = SecurityConfig::default();
        SecuritySection {
            data_dir: None,
            reset_file: None,
            viewer_access: "lan".into(),
            viewer_tokens: Vec::new(),
            session_idle_minutes: d.session_idle.as_secs() / 60,
            session_max_hours: d.session_max.as_secs() / 3600,
            max_viewers: d.max_viewers,
            max_viewers_per_ip: d.max_viewers_per_ip,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            accept_from: "lan".into(),
        }
    }
}

impl SecuritySection {
    /// Checks the values; returns (field, reason) for the first bad one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Err(e) = self.viewer_access.parse::<ViewerAccess>() {
            return Err(("security.viewer_access", e));
        }
        if let Err(e) = self.accept_from.parse::<AcceptFrom>() {
            return Err(("security.accept_from", e));
        }
        if self.viewer_tokens.iter().any(|t| {
            t.len() < 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            return Err((
                "security.viewer_tokens",
                "each token needs at least 16 characters of A-Z a-z 0-9 - _".into(),
            ));
        }
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            return Err((
                "security.session_idle_minutes",
                format!("{} (allowed: 1-1440)", self.session_idle_minutes),
            ));
        }
        if !(1..=24 * 30).contains(&self.session_max_hours) {
            return Err((
                "security.session_max_hours",
                format!("{} (allowed: 1-720)", self.session_max_hours),
            ));
        }
        if !(1..=100_000).contains(&self.max_viewers) {
            return Err((
                "security.max_viewers",
                format!("{} (allowed: 1-100000)", self.max_viewers),
            ));
        }
        if !(1..=100_000).contains(&self.max_viewers_per_ip) {
            return Err((
                "security.max_viewers_per_ip",
                format!("{} (allowed: 1-100000)", self.max_viewers_per_ip),
            ));
        }
        if let Err(e) = pinhole_server::access_lists::AccessLists::checked(
            &self.allowed_hosts,
            &self.allowed_origins,
        ) {
            let field = if self
                .allowed_hosts
                .iter()
                .any(|h| pinhole_server::access::check_host_name(h).is_err())
            {
                "security.allowed_hosts"
            } else {
                "security.allowed_origins"
            };
            return Err((field, e));
        }
        Ok(())
    }

    /// The data dir: the configured one, else the developer default.
    pub fn resolved_data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let state = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".local/state"))
            });
        match state {
            Some(s) => s.join("pinhole"),
            None => std::env::temp_dir().join("pinhole-state"),
        }
    }

    /// `accept_from` (validated first).
    pub fn accept_from(&self) -> AcceptFrom {
        self.accept_from.parse().unwrap_or_default()
    }

    /// The server's settings (validated first).
    pub fn to_server(&self) -> SecurityConfig {
        SecurityConfig {
            data_dir: Some(self.resolved_data_dir()),
            reset_file: self.reset_file.clone(),
            viewer: self.viewer_access.parse().unwrap_or(ViewerAccess::Lan),
            viewer_tokens: self.viewer_tokens.clone(),
            session_idle: Duration::from_secs(self.session_idle_minutes * 60),
            session_max: Duration::from_secs(self.session_max_hours * 3600),
            max_viewers: self.max_viewers,
            max_viewers_per_ip: self.max_viewers_per_ip,
            allowed_hosts: self.allowed_hosts.clone(),
            allowed_origins: self.allowed_origins.clone(),
            accept_from: self.accept_from(),
            ..SecurityConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn security_section_parses_validates_and_converts() {
        let cfg = Config::from_toml(
            "[security]\ndata_dir = \"/data/pinhole\"\nviewer_access = \"token\"\n\
             viewer_tokens = [\"abcdefghijklmnop\"]\nmax_viewers = 10\n",
            Path::new("c.toml"),
        )
        .expect("parse");
        cfg.validate().expect("valid");
        let s = cfg.security.to_server();
        assert_eq!(s.data_dir.as_deref(), Some(Path::new("/data/pinhole")));
        assert_eq!(s.viewer, ViewerAccess::Token);
        assert_eq!(s.max_viewers, 10);
        assert_eq!(s.max_viewers_per_ip, 64);

        let mut bad = Config::default();
        bad.security.viewer_access = "everyone".into();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("viewer_access"));
        let mut bad = Config::default();
        bad.security.viewer_tokens = vec!["short".into()];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("viewer_tokens"));
        let cfg = Config::from_toml(
            "[security]\nallowed_hosts = [\"cam.example.org\"]\n\
             allowed_origins = [\"http://printer.local\"]\n",
            Path::new("c.toml"),
        )
        .expect("parse");
        cfg.validate().expect("valid");
        let s = cfg.security.to_server();
        assert_eq!(s.allowed_hosts, ["cam.example.org"]);
        assert_eq!(s.allowed_origins, ["http://printer.local"]);
        let mut bad = Config::default();
        bad.security.allowed_origins = vec!["*".into()];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allowed_origins"));
        let mut bad = Config::default();
        bad.security.allowed_hosts = vec!["http://x".into()];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allowed_hosts"));
        let e = Config::from_toml("[security]\npassword = \"x\"\n", Path::new("c.toml"));
        assert!(e.is_err(), "no password in the config file");
    }

    #[test]
    fn developer_data_dir_is_under_the_state_home() {
        let s = SecuritySection::default();
        let d = s.resolved_data_dir();
        assert!(
            d.ends_with("pinhole") || d.ends_with("pinhole-state"),
            "{}",
            d.display()
        );
    }
}
