//! The access decision, pure: who may do what, from the client's address,
//! the `Host` and `Origin` it sent, its credentials, the resource and the
//! settings. No I/O and no HTTP types, so every protocol (HTTP today, RTSP
//! and WHEP next) can ask the same question; `auth/http.rs` is the HTTP adapter.
//!
//! Three rules against a malicious web page in a LAN browser:
//! - **Host** (DNS rebinding): only names of this device are answered — IP
//!   literals, its hostname, `<hostname>.local`, `localhost`, and names the
//!   admin lists. A rebinding page's requests carry the attacker's name.
//! - **Origin on state changes** (CSRF): must be this device's own origin.
//! - **Origin on viewing** (cross-site WebSocket hijacking, cross-origin
//!   reads): a foreign `Origin` is refused unless the admin listed it or the
//!   URL carries a viewer token; then, and only then, CORS is granted.
//!
//! Requests without `Origin` (ffmpeg, VLC, NVRs, `<img>`) are not readable
//! by a foreign page, so viewing without `Origin` follows the viewer policy
//! alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Who may watch without logging in (`[security] viewer_access`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerAccess {
    /// LAN addresses (private, link-local, loopback) watch freely; others
    /// need a viewer token or a session.
    Lan,
    /// Everyone the network lets through (once the admin password is set).
    Open,
    /// Everyone needs `?token=` (or the cookie it turns into) or a session.
    Token,
}

impl std::str::FromStr for ViewerAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lan" => Ok(ViewerAccess::Lan),
            "open" => Ok(ViewerAccess::Open),
            "token" => Ok(ViewerAccess::Token),
            _ => Err(format!("'{s}': use lan, open or token")),
        }
    }
}

impl ViewerAccess {
    pub fn name(self) -> &'static str {
        match self {
            ViewerAccess::Lan => "lan",
            ViewerAccess::Open => "open",
            ViewerAccess::Token => "token",
        }
    }
}

/// What a request wants (from method and path: `table.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `/api/auth*`: the handlers check credentials themselves; a state
    /// change still needs a same-origin `Origin`.
    Auth,
    /// Changes state: admin session + same origin.
    Admin,
    /// Live views, HLS and the read-only API: the viewer policy.
    View,
    /// The UI's static files, and methods a route does not take (405).
    Static,
    /// A CORS pre-flight (`OPTIONS`) on a route a foreign page may use:
    /// the origin decides, no credentials (browsers send none with it).
    Preflight,
}

/// A header that may be missing or repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum One<'a> {
    Absent,
    Value(&'a str),
    /// Repeated, or not valid text: never trusted.
    Invalid,
}

/// What the client proved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// A valid admin session.
    pub admin: bool,
    /// A valid viewer session.
    pub viewer: bool,
    /// A valid viewer token in the URL (`?token=`).
    pub token: bool,
}

/// One request, as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    pub client: IpAddr,
    /// `Host` (or HTTP/2's `:authority`).
    pub host: One<'a>,
    pub origin: One<'a>,
    /// `Sec-Fetch-Site`, which browsers send even where they omit `Origin`.
    pub fetch_site: Option<&'a str>,
    pub creds: Credentials,
    /// GET/HEAD/OPTIONS (`false`: the request may change state).
    pub safe: bool,
    pub class: Class,
}

/// The settings the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    /// The admin password is set.
    pub configured: bool,
    pub viewer_access: ViewerAccess,
    /// A viewer password is set: viewing needs a login or a token.
    pub viewer_password: bool,
    /// The device's hostname (`/proc/sys/kernel/hostname`), if known.
    pub hostname: Option<&'a str>,
    /// More names this device answers to (`[security] allowed_hosts` and
    /// the settings panel).
    pub allowed_hosts: &'a [String],
    /// Foreign origins that may view (`[security] allowed_origins` and the
    /// settings panel), normalised by [`normalize_origin`].
    pub allowed_origins: &'a [String],
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a name of this device (DNS rebinding), or a repeated `Host`.
    UnknownHost(String),
    /// Before the admin password is set, only LAN clients get an answer.
    NotSetUp,
    /// A cross-origin state change.
    CrossOrigin,
    /// A foreign page wants to view; the admin did not list its origin.
    OriginNotAllowed(String),
    /// An admin action before the password exists.
    SetupFirst,
    /// An admin action without an admin session.
    AdminLogin,
    /// Viewing needs a login or a token.
    ViewLogin,
}

impl Refusal {
    /// 403 for what no credential fixes, 401 for what a login would.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::SetupFirst | Refusal::AdminLogin | Refusal::ViewLogin => 401,
            _ => 403,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::UnknownHost(h) => format!(
                "'{h}' is not a name of this camera: use its IP address or hostname, \
                 or add the name to allowed host names in the settings"
            ),
            Refusal::NotSetUp => {
                "this camera is not set up yet: set its admin password from the local network"
                    .into()
            }
            Refusal::CrossOrigin => "cross-origin request refused".into(),
            Refusal::OriginNotAllowed(o) => format!(
                "cross-origin viewing from {o} refused: the admin can add it to allowed \
                 origins in the settings, or the page can use a viewer token (?token=)"
            ),
            Refusal::SetupFirst => "set the admin password first (POST /api/auth/setup)".into(),
            Refusal::AdminLogin => "log in as admin first".into(),
            Refusal::ViewLogin => "viewing needs a login or a viewer token".into(),
        }
    }
}

/// What the policy decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `cors`: answer with `Access-Control-Allow-Origin: <cors>`.
    Allow {
        cors: Option<String>,
    },
    Refuse(Refusal),
}

/// The decision for one request.
pub fn decide(ask: &Ask, s: &Settings) -> Decision {
    let host = match ask.host {
        One::Absent => None,
        One::Value(h) => {
            if !host_is_device(h, s.hostname, s.allowed_hosts) {
                return Decision::Refuse(Refusal::UnknownHost(printable(h)));
            }
            Some(h)
        }
        One::Invalid => return Decision::Refuse(Refusal::UnknownHost("(repeated Host)".into())),
    };
    if !s.configured && !is_lan(ask.client) {
        return Decision::Refuse(Refusal::NotSetUp);
    }
    let allow = Decision::Allow { cors: None };
    match ask.class {
        Class::Static => allow,
        Class::Auth if ask.safe => allow,
        Class::Auth => {
            if same_origin(ask.origin, host, ask.fetch_site) {
                allow
            } else {
                Decision::Refuse(Refusal::CrossOrigin)
            }
        }
        Class::Admin => {
            if !same_origin(ask.origin, host, ask.fetch_site) {
                Decision::Refuse(Refusal::CrossOrigin)
            } else if !s.configured {
                Decision::Refuse(Refusal::SetupFirst)
            } else if !ask.creds.admin {
                Decision::Refuse(Refusal::AdminLogin)
            } else {
                allow
            }
        }
        Class::Preflight => match view_origin(ask, s, host) {
            Ok(cors) => Decision::Allow { cors },
            Err(r) => Decision::Refuse(r),
        },
        Class::View => {
            let cors = match view_origin(ask, s, host) {
                Ok(cors) => cors,
                Err(r) => return Decision::Refuse(r),
            };
            let free = !s.viewer_password
                && match s.viewer_access {
                    ViewerAccess::Open => true,
                    ViewerAccess::Lan => is_lan(ask.client),
                    ViewerAccess::Token => false,
                };
            if free || ask.creds.token || ask.creds.viewer || ask.creds.admin {
                Decision::Allow { cors }
            } else {
                Decision::Refuse(Refusal::ViewLogin)
            }
        }
    }
}

/// Viewing from a page: its own origin, a listed one, or one holding a
/// viewer token; `Ok(Some(origin))` grants CORS.
fn view_origin(ask: &Ask, s: &Settings, host: Option<&str>) -> Result<Option<String>, Refusal> {
    Ok(match ask.origin {
        // Not readable by a foreign page: the viewer policy decides.
        One::Absent => None,
        One::Value(o) if origin_matches_host(o, host) => None,
        One::Value(o) => {
            let norm = normalize_origin(o);
            match norm {
                Some(n) if s.allowed_origins.contains(&n) => Some(o.to_owned()),
                // The token is the admin's grant; the page holds it.
                Some(_) if ask.creds.token => Some(o.to_owned()),
                _ if ask.creds.token => None,
                _ => return Err(Refusal::OriginNotAllowed(printable(o))),
            }
        }
        One::Invalid if ask.creds.token => None,
        One::Invalid => return Err(Refusal::OriginNotAllowed("(invalid Origin)".into())),
    })
}

/// For messages: no control characters, bounded length.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect::<String>()
}

pub use pinhole_media::peer::{canonical, is_lan};

/// The host name of an authority (`name[:port]`, `[v6]:port`), lower case,
/// without a trailing dot; `None` if malformed.
fn host_part(authority: &str) -> Option<String> {
    let a = authority.trim();
    if a.is_empty() || a.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    let name = if let Some(rest) = a.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(|ip| format!("[{ip}]"));
    } else {
        match a.rsplit_once(':') {
            Some((n, p)) if is_port(p) => n,
            Some(_) => return None,
            None => a,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a `Host` names this device: an IP literal (a rebinding page
/// cannot have one as its origin), the hostname, `<hostname>.local`,
/// `localhost`, or an allowed name.
pub fn host_is_device(host: &str, hostname: Option<&str>, allowed: &[String]) -> bool {
    let Some(name) = host_part(host) else {
        return false;
    };
    if name.starts_with('[') || name.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    if name == "localhost" {
        return true;
    }
    if let Some(hn) = hostname.map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase()) {
        if !hn.is_empty() && (name == hn || name.strip_suffix(".local").is_some_and(|n| n == hn)) {
            return true;
        }
    }
    allowed
        .iter()
        .any(|a| host_part(a).is_some_and(|a| a == name))
}

/// An admin-listed host name, checked and lower-cased: DNS labels only
/// (IP literals are always accepted anyway).
pub fn check_host_name(name: &str) -> Result<String, String> {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(n)
    } else {
        Err(format!("'{}' is not a host name", printable(name)))
    }
}

/// An admin-listed origin, checked and normalised.
pub fn check_origin(origin: &str) -> Result<String, String> {
    normalize_origin(origin).ok_or_else(|| {
        format!(
            "'{}' is not an origin: write scheme://host[:port], e.g. http://printer.local",
            printable(origin)
        )
    })
}

/// `scheme://host[:port]` in a canonical form (lower case, default port
/// dropped), or `None` for `null`, paths and other schemes.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let o = origin.trim().trim_end_matches('/');
    let (scheme, authority) = o.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    host_part(authority)?;
    let a = authority.to_ascii_lowercase();
    let a = a.strip_suffix(default_port).unwrap_or(&a);
    Some(format!("{scheme}://{a}"))
}

/// `Origin` names the `Host` the request was sent to (a TLS-terminating
/// proxy may change the scheme, so either default port is dropped).
fn origin_matches_host(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // includes "null"
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let norm = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.strip_suffix(default_port).map(str::to_owned).unwrap_or(s)
    };
    !authority.contains('/') && norm(authority) == norm(host)
}

/// A state change must come from our own origin. Browsers send `Origin` on
/// every cross-origin POST/PUT/DELETE; a request without it and without a
/// cross-site `Sec-Fetch-Site` is not from a browser, so it is no CSRF.
fn same_origin(origin: One, host: Option<&str>, fetch_site: Option<&str>) -> bool {
    match origin {
        One::Absent => fetch_site.is_none_or(|v| v == "same-origin" || v == "none"),
        One::Invalid => false,
        One::Value(o) => origin_matches_host(o, host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(hosts: &'a [String], origins: &'a [String]) -> Settings<'a> {
        Settings {
            configured: true,
            viewer_access: ViewerAccess::Lan,
            viewer_password: false,
            hostname: Some("pinhole"),
            allowed_hosts: hosts,
            allowed_origins: origins,
        }
    }

    fn ask<'a>(host: &'a str, origin: Option<&'a str>, class: Class) -> Ask<'a> {
        Ask {
            client: "192.168.1.20".parse().unwrap(),
            host: One::Value(host),
            origin: origin.map_or(One::Absent, One::Value),
            fetch_site: None,
            creds: Credentials::default(),
            safe: class != Class::Admin,
            class,
        }
    }

    #[test]
    fn hosts_of_this_device() {
        let extra = vec!["cam.example.org".to_owned()];
        for h in [
            "192.168.1.5",
            "192.168.1.5:8080",
            "[fe80::1]",
            "[::1]:80",
            "pinhole",
            "PINHOLE.local",
            "pinhole.local.",
            "pinhole.local:443",
            "localhost:8080",
            "cam.example.org",
        ] {
            assert!(host_is_device(h, Some("pinhole"), &extra), "{h}");
        }
        for h in [
            "rebind.attacker.example",
            "pinhole.attacker.example",
            "evil.local",
            "pinhole.localx",
            "",
            "pinhole:x",
            "1.2.3.4.nip.io",
            "[::1",
            "a@pinhole",
            "127.0.0.1/x",
        ] {
            assert!(!host_is_device(h, Some("pinhole"), &extra), "{h}");
        }
        assert!(!host_is_device("pinhole.local", None, &[]));
    }

    #[test]
    fn origins_normalise() {
        assert_eq!(
            normalize_origin("HTTP://Printer.local:80/").as_deref(),
            Some("http://printer.local")
        );
        assert_eq!(
            normalize_origin("https://10.0.0.2:8443").as_deref(),
            Some("https://10.0.0.2:8443")
        );
        for bad in [
            "null",
            "file://",
            "ftp://x",
            "http://a/b",
            "http://u@h",
            "x",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn rebinding_is_refused_everywhere() {
        let s = settings(&[], &[]);
        let evil = "rebind.attacker.example";
        for class in [Class::Static, Class::Auth, Class::Admin, Class::View] {
            let a = ask(evil, Some("http://rebind.attacker.example"), class);
            assert!(
                matches!(decide(&a, &s), Decision::Refuse(Refusal::UnknownHost(_))),
                "{class:?}"
            );
        }
        let unset = Settings {
            configured: false,
            ..s
        };
        let a = ask(evil, Some("http://rebind.attacker.example"), Class::Auth);
        assert_eq!(
            decide(&Ask { safe: false, ..a }, &unset).clone(),
            Decision::Refuse(Refusal::UnknownHost(evil.into()))
        );
        let mut two = ask("pinhole.local", None, Class::Static);
        two.host = One::Invalid;
        assert!(matches!(decide(&two, &s), Decision::Refuse(_)));
    }

    #[test]
    fn foreign_pages_do_not_view_unless_listed_or_holding_a_token() {
        let listed = vec![normalize_origin("http://printer.local").unwrap()];
        let s = settings(&[], &listed);
        let own = ask("pinhole.local", Some("http://pinhole.local"), Class::View);
        assert_eq!(decide(&own, &s), Decision::Allow { cors: None });
        let none = ask("pinhole.local", None, Class::View);
        assert_eq!(decide(&none, &s), Decision::Allow { cors: None }, "ffmpeg");
        let evil = ask("pinhole.local", Some("http://evil.example"), Class::View);
        assert!(matches!(
            decide(&evil, &s),
            Decision::Refuse(Refusal::OriginNotAllowed(_))
        ));
        let printer = ask("pinhole.local", Some("http://Printer.local"), Class::View);
        assert_eq!(
            decide(&printer, &s),
            Decision::Allow {
                cors: Some("http://Printer.local".into())
            }
        );
        let mut token = evil;
        token.creds.token = true;
        assert_eq!(
            decide(&token, &s),
            Decision::Allow {
                cors: Some("http://evil.example".into())
            }
        );
        let null = ask("pinhole.local", Some("null"), Class::View);
        assert!(matches!(decide(&null, &s), Decision::Refuse(_)));
        // Listing an origin lets it view, never change anything.
        let mut change = printer;
        change.class = Class::Admin;
        change.safe = false;
        change.creds.admin = true;
        assert_eq!(decide(&change, &s), Decision::Refuse(Refusal::CrossOrigin));
        // The viewer policy still applies to a listed origin.
        let closed = Settings {
            viewer_password: true,
            ..s
        };
        assert_eq!(
            decide(&printer, &closed),
            Decision::Refuse(Refusal::ViewLogin)
        );
    }

    #[test]
    fn state_changes_need_our_origin_and_an_admin() {
        let s = settings(&[], &[]);
        let mut a = ask("pinhole.local", Some("http://pinhole.local"), Class::Admin);
        assert_eq!(decide(&a, &s), Decision::Refuse(Refusal::AdminLogin));
        a.creds.admin = true;
        assert_eq!(decide(&a, &s), Decision::Allow { cors: None });
        a.origin = One::Value("http://evil.example");
        assert_eq!(decide(&a, &s), Decision::Refuse(Refusal::CrossOrigin));
        a.origin = One::Absent;
        assert_eq!(decide(&a, &s), Decision::Allow { cors: None }, "curl");
        a.fetch_site = Some("cross-site");
        assert_eq!(decide(&a, &s), Decision::Refuse(Refusal::CrossOrigin));
    }

    #[test]
    fn preflight_needs_an_allowed_origin_not_credentials() {
        let origins = vec!["http://printer.local".to_owned()];
        let mut s = settings(&[], &origins);
        s.viewer_password = true;
        // A listed origin gets CORS even though the viewer password is set:
        // the browser sends no credentials with a pre-flight.
        let a = ask(
            "pinhole.local",
            Some("http://printer.local"),
            Class::Preflight,
        );
        assert_eq!(
            decide(&a, &s),
            Decision::Allow {
                cors: Some("http://printer.local".into())
            }
        );
        let a = ask(
            "pinhole.local",
            Some("http://evil.example"),
            Class::Preflight,
        );
        assert!(matches!(
            decide(&a, &s),
            Decision::Refuse(Refusal::OriginNotAllowed(_))
        ));
        // Same origin or no Origin: answered, no CORS grant.
        let a = ask(
            "pinhole.local",
            Some("http://pinhole.local"),
            Class::Preflight,
        );
        assert_eq!(decide(&a, &s), Decision::Allow { cors: None });
        let a = ask(
            "rebind.example",
            Some("http://printer.local"),
            Class::Preflight,
        );
        assert!(matches!(
            decide(&a, &s),
            Decision::Refuse(Refusal::UnknownHost(_))
        ));
    }
}
