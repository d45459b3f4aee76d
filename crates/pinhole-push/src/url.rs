//! Push target URLs: `rtmp://host[:port]/app/stream-key`. The key is a
//! secret (it is the publishing password on YouTube, Twitch, …): only
//! [`PushUrl::redacted`] is ever logged or shown.

use std::fmt;

use crate::rtmp::session::PublishParams;
use crate::PushError;

#[derive(Clone, PartialEq, Eq)]
pub struct PushUrl {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream_key: String,
}

// Debug output must not carry the key either.
impl fmt::Debug for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PushUrl {
    pub fn parse(url: &str) -> Result<PushUrl, PushError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| PushError::Url("expected rtmp://host[:port]/app/key".into()))?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => 1935,
            "rtmps" => {
                return Err(PushError::Url(
                    "rtmps:// is not supported yet (use rtmp://, or a local relay)".into(),
                ))
            }
            "srt" | "whip" | "http" | "https" => {
                return Err(PushError::Url(format!(
                    "{scheme}:// push is not supported yet"
                )))
            }
            other => return Err(PushError::Url(format!("unknown scheme {other:?}"))),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(PushError::Url(
                "user:password@ in an RTMP URL is not supported (put the secret in the stream key)"
                    .into(),
            ));
        }
        let (host, port) = split_host_port(authority, default_port)?;
        let (app, key) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            return Err(PushError::Url(
                "missing the application (rtmp://host/APP/key)".into(),
            ));
        }
        if key.is_empty() {
            return Err(PushError::Url(format!(
                "missing the stream key (rtmp://{}/{app}/KEY)",
                authority
            )));
        }
        Ok(PushUrl {
            host,
            port,
            app: app.to_owned(),
            stream_key: key.to_owned(),
        })
    }

    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Address to connect to.
    pub fn addr(&self) -> String {
        self.host_port()
    }

    /// The URL with its stream key hidden but for its last 3 characters
    /// (when it has 16 or more, so that this gives little away), so a user can
    /// tell two targets apart.
    pub fn redacted(&self) -> String {
        let n = self.stream_key.chars().count();
        let hint: String = if n >= 16 {
            self.stream_key.chars().skip(n - 3).collect()
        } else {
            String::new()
        };
        format!("rtmp://{}/{}/***{hint}", self.host_port(), self.app)
    }

    /// The whole URL, key included: for saving it root-only, never for
    /// showing or logging.
    pub fn secret_url(&self) -> String {
        format!(
            "rtmp://{}/{}/{}",
            self.host_port(),
            self.app,
            self.stream_key
        )
    }

    pub fn publish_params(&self) -> PublishParams {
        PublishParams {
            app: self.app.clone(),
            tc_url: format!("rtmp://{}/{}", self.host_port(), self.app),
            stream_key: self.stream_key.clone(),
        }
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), PushError> {
    let bad_port = |p: &str| PushError::Url(format!("bad port {p:?}"));
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| PushError::Url("unclosed [ in host".into()))?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse().map_err(|_| bad_port(p))?),
            None if after.is_empty() => (h, default_port),
            None => return Err(PushError::Url(format!("junk after host: {after:?}"))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad_port(p))?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(PushError::Url("missing host".into()));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let u = PushUrl::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str()),
            ("a.rtmp.youtube.com", 1935, "live2")
        );
        assert_eq!(u.stream_key, "abcd-efgh-ijkl-mnop");
        assert_eq!(u.redacted(), "rtmp://a.rtmp.youtube.com:1935/live2/***nop");
        assert!(!format!("{u:?}").contains("efgh"));
        assert_eq!(PushUrl::parse(&u.secret_url()).unwrap(), u);
        let p = u.publish_params();
        assert_eq!(p.tc_url, "rtmp://a.rtmp.youtube.com:1935/live2");

        let short = PushUrl::parse("rtmp://[::1]:25001/live/cam?token=s3").unwrap();
        assert_eq!((short.host.as_str(), short.port), ("::1", 25001));
        assert_eq!(short.stream_key, "cam?token=s3");
        assert_eq!(short.redacted(), "rtmp://[::1]:25001/live/***");
    }

    #[test]
    fn refuses_what_it_cannot_push_to() {
        for bad in [
            "rtmp://host/live",
            "rtmp://host/",
            "rtmp:///live/key",
            "rtmp://host:x/live/key",
            "rtmp://u:p@host/live/key",
            "rtmps://host/live/key",
            "srt://host:9000",
            "host/live/key",
        ] {
            assert!(PushUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
