//! Push target URLs. `rtmp://host[:port]/app/stream-key`, and
//! `srt://host:port?streamid=…&passphrase=…&latency=ms` (libsrt's URI
//! syntax, caller mode), and `whip+https://host[:port]/path[#token=…]`
//! (or `whip+http://`: the WHIP endpoint's own URL with `whip+` before it,
//! so a plain `https://` never means "push"; the bearer token in the
//! fragment, which HTTP never sends). The stream key, the SRT stream id (it often carries
//! the publishing credential: mediamtx's `publish:path:user:pass`) and the
//! passphrase are secrets: only [`PushUrl::redacted`] is ever logged or
//! shown.

use std::fmt;

use crate::rtmp::session::PublishParams;
use crate::PushError;

#[derive(Clone, PartialEq, Eq)]
pub struct PushUrl {
    pub host: String,
    pub port: u16,
    pub kind: Kind,
    /// A CA certificate (PEM) trusted for this target's TLS besides the
    /// built-in roots: the config file's `tls_ca` (never from a URL).
    pub tls_ca: Option<std::path::PathBuf>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    Rtmp {
        app: String,
        stream_key: String,
        /// `rtmps://`: RTMP inside TLS.
        tls: bool,
    },
    Srt(SrtOptions),
    Whip(WhipOptions),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WhipOptions {
    /// `https` (else plain `http`).
    pub tls: bool,
    /// Path and query of the endpoint, from its first `/`. Services put
    /// the stream's credential in it (Cloudflare's `/<key>/webRTC/publish`):
    /// a secret, like the token.
    pub path: String,
    /// `Authorization: Bearer` value.
    pub token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SrtOptions {
    pub streamid: Option<String>,
    /// 10 to 79 characters (SRT's limits); AES with `pbkeylen` bytes.
    pub passphrase: Option<String>,
    /// 16, 24 or 32.
    pub pbkeylen: u16,
    /// The receiver's buffer; libsrt's default 120 ms.
    pub latency_ms: u32,
}

// Debug output must not carry the secrets either.
impl fmt::Debug for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PushUrl {
    pub fn parse(url: &str) -> Result<PushUrl, PushError> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            PushError::Url("expected rtmp://host[:port]/app/key or srt://host:port".into())
        })?;
        match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => parse_rtmp(rest, false),
            "rtmps" => parse_rtmp(rest, true),
            "srt" => parse_srt(rest),
            "whip+http" => parse_whip(rest, false),
            "whip+https" => parse_whip(rest, true),
            "whip" | "http" | "https" => Err(PushError::Url(format!(
                "{scheme}://: for a WHIP endpoint write whip+https:// (or whip+http://) before its URL"
            ))),
            other => Err(PushError::Url(format!("unknown scheme {other:?}"))),
        }
    }

    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A URL from the panel's two fields: the key goes where the scheme
    /// keeps its secret (RTMP: the last path segment; SRT: `passphrase=`),
    /// so the URL field never needs to hold it.
    pub fn parse_with_key(url: &str, key: &str) -> Result<PushUrl, PushError> {
        let (url, key) = (url.trim(), key.trim());
        if key.is_empty() {
            return PushUrl::parse(url);
        }
        let lower = url.to_ascii_lowercase();
        let joined = if lower.starts_with("srt://") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}passphrase={}", enc(key))
        } else if lower.starts_with("whip+") {
            let url = url.split_once('#').map_or(url, |(u, _)| u);
            format!("{url}#token={}", enc(key))
        } else {
            format!("{}/{key}", url.trim_end_matches('/'))
        };
        PushUrl::parse(&joined)
    }

    /// Whether the target speaks TLS (`rtmps://`, `whip+https://`): the
    /// ones a `tls_ca` applies to.
    pub fn uses_tls(&self) -> bool {
        match &self.kind {
            Kind::Rtmp { tls, .. } => *tls,
            Kind::Whip(w) => w.tls,
            Kind::Srt(_) => false,
        }
    }

    /// Address to connect to.
    pub fn addr(&self) -> String {
        self.host_port()
    }

    /// The URL with its secrets hidden: the RTMP key and the SRT stream id
    /// but for their last 3 characters (when they have 16 or more, so that
    /// this gives little away, and a user can tell two targets apart); the
    /// passphrase wholly.
    pub fn redacted(&self) -> String {
        match &self.kind {
            Kind::Rtmp {
                app,
                stream_key,
                tls,
            } => format!(
                "{}://{}/{app}/***{}",
                rtmp_scheme(*tls),
                self.host_port(),
                hint(stream_key)
            ),
            Kind::Srt(o) => {
                let mut q = Vec::new();
                if let Some(id) = &o.streamid {
                    q.push(format!("streamid=***{}", enc(&hint(id))));
                }
                if o.passphrase.is_some() {
                    q.push("passphrase=***".to_owned());
                }
                srt_url(&self.host_port(), q, o)
            }
            Kind::Whip(w) => whip_url(
                &self.host_port(),
                w,
                &format!("/***{}", hint(&w.path)),
                w.token.as_ref().map(|_| "***".to_owned()),
            ),
        }
    }

    /// The whole URL, secrets included: for saving it root-only, never for
    /// showing or logging.
    pub fn secret_url(&self) -> String {
        match &self.kind {
            Kind::Rtmp {
                app,
                stream_key,
                tls,
            } => format!(
                "{}://{}/{app}/{stream_key}",
                rtmp_scheme(*tls),
                self.host_port()
            ),
            Kind::Srt(o) => {
                let mut q = Vec::new();
                if let Some(id) = &o.streamid {
                    q.push(format!("streamid={}", enc(id)));
                }
                if let Some(p) = &o.passphrase {
                    q.push(format!("passphrase={}", enc(p)));
                }
                srt_url(&self.host_port(), q, o)
            }
            Kind::Whip(w) => whip_url(&self.host_port(), w, &w.path, w.token.as_deref().map(enc)),
        }
    }

    /// The strings a server's error text must never show.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Rtmp { stream_key, .. } => vec![stream_key.as_str()],
            Kind::Srt(o) => o
                .streamid
                .iter()
                .chain(o.passphrase.iter())
                .map(String::as_str)
                .collect(),
            Kind::Whip(w) => std::iter::once(w.path.as_str())
                .filter(|p| *p != "/")
                .chain(w.token.as_deref())
                .collect(),
        }
    }

    /// RTMP's connect and publish parameters (`None` for SRT).
    pub fn publish_params(&self) -> Option<PublishParams> {
        match &self.kind {
            Kind::Rtmp {
                app,
                stream_key,
                tls,
            } => Some(PublishParams {
                app: app.clone(),
                tc_url: format!("{}://{}/{app}", rtmp_scheme(*tls), self.host_port()),
                stream_key: stream_key.clone(),
            }),
            Kind::Srt(_) | Kind::Whip(_) => None,
        }
    }
}

fn whip_url(host_port: &str, w: &WhipOptions, path: &str, token: Option<String>) -> String {
    let scheme = if w.tls { "whip+https" } else { "whip+http" };
    match token {
        Some(t) => format!("{scheme}://{host_port}{path}#token={t}"),
        None => format!("{scheme}://{host_port}{path}"),
    }
}

fn parse_whip(rest: &str, tls: bool) -> Result<PushUrl, PushError> {
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(PushError::Url(
            "user:password@ in a WHIP URL is not supported (a bearer token goes in #token=…)"
                .into(),
        ));
    }
    let (host, port) = split_host_port(authority, Some(if tls { 443 } else { 80 }))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(PushError::Url(
            "spaces or control characters in the path".into(),
        ));
    }
    let mut token = None;
    for pair in fragment.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("token", v)) if !v.is_empty() => {
                let v = dec(v)?;
                // It goes into an HTTP header: visible ASCII only.
                if !v.bytes().all(|b| b.is_ascii_graphic()) || v.len() > 4096 {
                    return Err(PushError::Url(
                        "token: printable ASCII without spaces, at most 4096 bytes".into(),
                    ));
                }
                token = Some(v);
            }
            _ => {
                return Err(PushError::Url(
                    "after # a WHIP URL takes token=… only".into(),
                ))
            }
        }
    }
    Ok(PushUrl {
        host,
        port,
        kind: Kind::Whip(WhipOptions { tls, path, token }),
        tls_ca: None,
    })
}

fn rtmp_scheme(tls: bool) -> &'static str {
    if tls {
        "rtmps"
    } else {
        "rtmp"
    }
}

fn hint(secret: &str) -> String {
    let n = secret.chars().count();
    if n >= 16 {
        secret.chars().skip(n - 3).collect()
    } else {
        String::new()
    }
}

fn srt_url(host_port: &str, mut q: Vec<String>, o: &SrtOptions) -> String {
    if o.pbkeylen != 16 {
        q.push(format!("pbkeylen={}", o.pbkeylen));
    }
    if o.latency_ms != SRT_LATENCY_MS {
        q.push(format!("latency={}", o.latency_ms));
    }
    if q.is_empty() {
        format!("srt://{host_port}")
    } else {
        format!("srt://{host_port}?{}", q.join("&"))
    }
}

pub const SRT_LATENCY_MS: u32 = 120;

fn parse_rtmp(rest: &str, tls: bool) -> Result<PushUrl, PushError> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(PushError::Url(
            "user:password@ in an RTMP URL is not supported (put the secret in the stream key)"
                .into(),
        ));
    }
    // rtmps: 443, as YouTube, Twitch and Facebook publish it.
    let (host, port) = split_host_port(authority, Some(if tls { 443 } else { 1935 }))?;
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
        kind: Kind::Rtmp {
            app: app.to_owned(),
            stream_key: key.to_owned(),
            tls,
        },
        tls_ca: None,
    })
}

fn parse_srt(rest: &str) -> Result<PushUrl, PushError> {
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    if authority.contains('@') || authority.contains('/') {
        return Err(PushError::Url(
            "srt:// takes host:port and ?options only (streamid=, passphrase=)".into(),
        ));
    }
    let (host, port) = split_host_port(authority, None)?;
    let mut o = SrtOptions {
        pbkeylen: 16,
        latency_ms: SRT_LATENCY_MS,
        ..SrtOptions::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = dec(v)?;
        match k {
            "streamid" if !v.is_empty() => {
                if v.len() > 512 {
                    return Err(PushError::Url("streamid: at most 512 bytes".into()));
                }
                o.streamid = Some(v);
            }
            "passphrase" if !v.is_empty() => {
                // Never quote it back.
                if !(10..=79).contains(&v.chars().count()) {
                    return Err(PushError::Url(
                        "passphrase: 10 to 79 characters (SRT's limits)".into(),
                    ));
                }
                o.passphrase = Some(v);
            }
            "pbkeylen" => {
                o.pbkeylen = match v.as_str() {
                    "16" => 16,
                    "24" => 24,
                    "32" => 32,
                    _ => return Err(PushError::Url("pbkeylen: 16, 24 or 32".into())),
                }
            }
            "latency" => {
                o.latency_ms = v
                    .parse()
                    .ok()
                    .filter(|ms| (20..=10_000).contains(ms))
                    .ok_or_else(|| PushError::Url("latency: 20 to 10000 ms".into()))?
            }
            "mode" if v == "caller" => {}
            "mode" => {
                return Err(PushError::Url(
                    "mode: pinhole pushes as an SRT caller only".into(),
                ))
            }
            "streamid" | "passphrase" => {}
            other => {
                return Err(PushError::Url(format!(
                    "unknown SRT option {:?} (streamid, passphrase, pbkeylen, latency, mode)",
                    other.chars().take(20).collect::<String>()
                )))
            }
        }
    }
    Ok(PushUrl {
        host,
        port,
        kind: Kind::Srt(o),
        tls_ca: None,
    })
}

/// Percent-decoding of a query value (a stream id such as
/// `#!::r=live/cam,m=publish` must be encoded in a URL).
fn dec(v: &str) -> Result<String, PushError> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PushError::Url("bad %-escape in an option".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PushError::Url("an option is not UTF-8".into()))
}

fn enc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/,*".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub(crate) fn split_host_port(
    authority: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), PushError> {
    let bad_port = |p: &str| PushError::Url(format!("bad port {p:?}"));
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| PushError::Url("unclosed [ in host".into()))?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse().map_err(|_| bad_port(p))?),
            None if after.is_empty() => (
                h,
                default_port.ok_or_else(|| PushError::Url("missing :port".into()))?,
            ),
            None => return Err(PushError::Url(format!("junk after host: {after:?}"))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad_port(p))?),
            None => (
                authority,
                default_port.ok_or_else(|| PushError::Url("missing :port".into()))?,
            ),
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
        assert_eq!((u.host.as_str(), u.port), ("a.rtmp.youtube.com", 1935));
        assert_eq!(u.secrets(), vec!["abcd-efgh-ijkl-mnop"]);
        assert_eq!(u.redacted(), "rtmp://a.rtmp.youtube.com:1935/live2/***nop");
        assert!(!format!("{u:?}").contains("efgh"));
        assert_eq!(PushUrl::parse(&u.secret_url()).unwrap(), u);
        let p = u.publish_params().unwrap();
        assert_eq!(p.tc_url, "rtmp://a.rtmp.youtube.com:1935/live2");

        let short = PushUrl::parse("rtmp://[::1]:25001/live/cam?token=s3").unwrap();
        assert_eq!((short.host.as_str(), short.port), ("::1", 25001));
        assert_eq!(short.secrets(), vec!["cam?token=s3"]);
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
            "srt://host",
            "srt://host:9000?passphrase=short",
            "srt://host:9000?mode=listener",
            "srt://host:9000?pbkeylen=8",
            "srt://host:9000?latency=5",
            "srt://host:9000?nonsense=1",
            "srt://host:9000?streamid=%zz",
            "srt://host:9000/path",
            "host/live/key",
            "https://host/whip",
            "whip://host/whip",
            "whip+https://u:p@host/whip",
            "whip+https://host/whip#token=with%20space",
            "whip+https://host/whip#other=1",
            "whip+https:///whip",
        ] {
            assert!(PushUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_field_goes_where_the_scheme_keeps_its_secret() {
        let r = PushUrl::parse_with_key("rtmp://h/live/", "abc").unwrap();
        assert_eq!(r.secret_url(), "rtmp://h:1935/live/abc");
        let s = PushUrl::parse_with_key("srt://h:9000?streamid=x", "pass word&=10").unwrap();
        let Kind::Srt(o) = &s.kind else { panic!("srt") };
        assert_eq!(o.passphrase.as_deref(), Some("pass word&=10"));
        assert_eq!(
            PushUrl::parse_with_key("rtmp://h/live/k", "")
                .unwrap()
                .secrets(),
            vec!["k"]
        );
    }

    #[test]
    fn srt_urls_parse_and_hide_the_stream_id_and_passphrase() {
        let u = PushUrl::parse(
            "srt://203.0.113.5:9000?streamid=%23!%3A%3Ar%3Dlive%2Fcam%2Cm%3Dpublish&passphrase=correct-horse-battery&latency=200",
        )
        .unwrap();
        assert_eq!((u.host.as_str(), u.port), ("203.0.113.5", 9000));
        let Kind::Srt(o) = &u.kind else { panic!("srt") };
        assert_eq!(o.streamid.as_deref(), Some("#!::r=live/cam,m=publish"));
        assert_eq!(o.passphrase.as_deref(), Some("correct-horse-battery"));
        assert_eq!((o.pbkeylen, o.latency_ms), (16, 200));
        let shown = u.redacted();
        assert_eq!(
            shown,
            "srt://203.0.113.5:9000?streamid=***ish&passphrase=***&latency=200"
        );
        assert!(!format!("{u:?}").contains("horse"));
        assert_eq!(PushUrl::parse(&u.secret_url()).unwrap(), u);
        assert!(u.publish_params().is_none());
        let plain = PushUrl::parse("srt://[::1]:9001").unwrap();
        assert_eq!(plain.redacted(), "srt://[::1]:9001");
        assert!(plain.secrets().is_empty());
    }

    #[test]
    fn rtmps_urls_default_to_443_and_say_rtmps() {
        let u = PushUrl::parse("rtmps://live-api-s.facebook.com/rtmp/FB-1234567890123456").unwrap();
        assert_eq!(u.port, 443);
        assert_eq!(
            u.redacted(),
            "rtmps://live-api-s.facebook.com:443/rtmp/***456"
        );
        assert_eq!(
            u.publish_params().unwrap().tc_url,
            "rtmps://live-api-s.facebook.com:443/rtmp"
        );
        assert_eq!(PushUrl::parse(&u.secret_url()).unwrap(), u);
    }

    #[test]
    fn whip_urls_parse_and_hide_the_path_and_token() {
        let u = PushUrl::parse(
            "whip+https://customer-x.cloudflarestream.com/0123456789abcdef0123/webRTC/publish#token=s3cr%2Bt",
        )
        .unwrap();
        assert_eq!(u.port, 443);
        let Kind::Whip(w) = &u.kind else {
            panic!("whip")
        };
        assert!(w.tls);
        assert_eq!(w.path, "/0123456789abcdef0123/webRTC/publish");
        assert_eq!(w.token.as_deref(), Some("s3cr+t"));
        assert_eq!(
            u.redacted(),
            "whip+https://customer-x.cloudflarestream.com:443/***ish#token=***"
        );
        assert!(!format!("{u:?}").contains("s3cr"));
        assert_eq!(PushUrl::parse(&u.secret_url()).unwrap(), u);
        assert_eq!(u.secrets(), vec![w.path.as_str(), "s3cr+t"]);

        let plain = PushUrl::parse("whip+http://127.0.0.1:8889/cam/whip").unwrap();
        assert_eq!(plain.port, 8889);
        assert_eq!(plain.redacted(), "whip+http://127.0.0.1:8889/***");
        assert_eq!(
            PushUrl::parse("whip+http://h").unwrap().secrets(),
            Vec::<&str>::new()
        );
        let q = PushUrl::parse("whip+http://h?x=1").unwrap();
        let Kind::Whip(w) = &q.kind else {
            panic!("whip")
        };
        assert_eq!(w.path, "/?x=1");
        // The panel's key field is the token.
        let k = PushUrl::parse_with_key("whip+http://h:80/w#token=old", "new/tok").unwrap();
        let Kind::Whip(w) = &k.kind else {
            panic!("whip")
        };
        assert_eq!(w.token.as_deref(), Some("new/tok"));
        assert_eq!(PushUrl::parse(&k.secret_url()).unwrap(), k);
    }
}
