//! The route table: every URL the daemon answers, the methods each takes,
//! and the access class of each method. The guard (`auth/http.rs`, asking
//! `access::decide`) and the router (`routes.rs`) both read this one table,
//! so a route cannot be served under a class it was not declared with.
//!
//! Pure: method names as text, no HTTP types. A method a route does not list
//! is answered 405 by the router, after the guard: a state-changing one
//! needs the admin first (so probing for routes tells a stranger nothing),
//! GET/HEAD only the Host check. `OPTIONS` is the CORS pre-flight, granted
//! only where the route has something a foreign page may do (`Class::View`).

use crate::access::Class;

/// What answers a route (the router's `match` is exhaustive over this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    WsH264,
    WsFmp4,
    Mp4,
    Snapshot,
    Mjpeg,
    Status,
    Health,
    Metrics,
    Hls,
    Dash,
    Update,
    UpdateEvents,
    UpdateAllowed,
    /// Any other `/api/update/…`: admin-only, then 404.
    UpdateUnknown,
    Camera,
    Https,
    Access,
    /// `/api/push`, `/api/push/<id>`: push targets (admin only).
    Push,
    /// `/api/auth*`: the handler dispatches every method itself.
    Auth,
    /// Any other `/api/…`: 404.
    ApiUnknown,
    /// WHEP: `/whep`, `/stream/whep` and their sessions (whep.rs).
    Whep,
    /// ONVIF's SOAP services (onvif.rs): WS-Security decides, not a cookie.
    Onvif,
    /// The page and its files.
    Ui,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(&'static str),
    Prefix(&'static str),
}

/// Which methods a route takes.
#[derive(Clone, Copy, Debug)]
pub enum Methods {
    /// These, each with its class (HEAD is listed where GET's answer may be
    /// asked for without a body).
    Listed(&'static [(&'static str, Class)]),
    /// Every method, one class; the handler answers 405 itself.
    Any(Class),
}

#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub path: PathMatch,
    pub target: Target,
    pub methods: Methods,
    /// A live stream: holds a viewer slot while its answer runs.
    pub live: bool,
}

use Class::{Admin, Auth, Static, View};

const READ: &[(&str, Class)] = &[("GET", View), ("HEAD", View)];
const READ_ADMIN: &[(&str, Class)] = &[("GET", Admin), ("HEAD", Admin)];
/// Settings: anyone allowed to view reads them, only the admin changes them.
const SETTINGS: &[(&str, Class)] = &[("GET", View), ("HEAD", View), ("PUT", Admin)];

const WHEP: &[(&str, Class)] = &[("POST", View)];
const WHEP_SESSION: &[(&str, Class)] = &[("PATCH", View), ("DELETE", View)];

const fn route(path: PathMatch, target: Target, methods: Methods, live: bool) -> Route {
    Route {
        path,
        target,
        methods,
        live,
    }
}

use Methods::{Any, Listed};
use PathMatch::{Exact, Prefix};

/// In order: the first match wins (exact paths before the prefixes that
/// contain them).
pub static ROUTES: &[Route] = &[
    route(
        Exact("/ws/h264"),
        Target::WsH264,
        Listed(&[("GET", View)]),
        true,
    ),
    route(
        Exact("/ws/fmp4"),
        Target::WsFmp4,
        Listed(&[("GET", View)]),
        true,
    ),
    route(Exact("/stream.mp4"), Target::Mp4, Listed(READ), true),
    route(
        Exact("/snapshot.jpg"),
        Target::Snapshot,
        Listed(READ),
        false,
    ),
    route(Exact("/mjpeg"), Target::Mjpeg, Listed(READ), true),
    route(Exact("/api/status"), Target::Status, Listed(READ), false),
    // The OTA trial's probe (health.rs): answers whatever the viewer policy.
    route(
        Exact(crate::health::PATH),
        Target::Health,
        Listed(&[("GET", Static), ("HEAD", Static)]),
        false,
    ),
    route(Exact("/metrics"), Target::Metrics, Listed(READ), false),
    route(Prefix("/hls/"), Target::Hls, Listed(READ), false),
    route(Prefix("/dash/"), Target::Dash, Listed(READ), false),
    // Reading the update state is the admin's too (docs/ota.md).
    route(
        Exact("/api/update"),
        Target::Update,
        Listed(&[("GET", Admin), ("HEAD", Admin), ("POST", Admin)]),
        false,
    ),
    route(
        Exact("/api/update/events"),
        Target::UpdateEvents,
        Listed(READ_ADMIN),
        false,
    ),
    // nginx's auth_request before it forwards an upload.
    route(
        Exact("/api/update/allowed"),
        Target::UpdateAllowed,
        Listed(READ_ADMIN),
        false,
    ),
    route(
        Prefix("/api/update/"),
        Target::UpdateUnknown,
        Any(Admin),
        false,
    ),
    route(
        Exact("/api/camera"),
        Target::Camera,
        Listed(SETTINGS),
        false,
    ),
    route(Exact("/api/https"), Target::Https, Listed(SETTINGS), false),
    route(
        Exact("/api/access"),
        Target::Access,
        Listed(SETTINGS),
        false,
    ),
    // WHEP: making, trickling and ending a session are viewer actions
    // (the viewer policy and Origin rule, as for /ws/*), not admin ones.
    // Not `live`: the answer ends at once; `[webrtc] max_sessions` bounds them.
    route(Exact("/whep"), Target::Whep, Listed(WHEP), false),
    route(Prefix("/whep/"), Target::Whep, Listed(WHEP_SESSION), false),
    route(Exact("/stream/whep"), Target::Whep, Listed(WHEP), false),
    route(
        Prefix("/stream/whep/"),
        Target::Whep,
        Listed(WHEP_SESSION),
        false,
    ),
    // Push targets: their URLs are configuration (admin only, reads too).
    route(
        Exact("/api/push"),
        Target::Push,
        Listed(&[("GET", Admin), ("HEAD", Admin), ("POST", Admin)]),
        false,
    ),
    route(
        Prefix("/api/push/"),
        Target::Push,
        Listed(&[("DELETE", Admin), ("PATCH", Admin)]),
        false,
    ),
    // ONVIF (docs/rtsp.md): SOAP over POST with its own credentials (a
    // WS-UsernameToken, checked by the handler against the viewer policy),
    // so `Auth`: Host checked, a browser's cross-site POST refused, no
    // cookie asked for. Every operation offered only reads.
    route(
        Prefix("/onvif/"),
        Target::Onvif,
        Listed(&[("POST", Auth)]),
        false,
    ),
    route(Exact("/api/auth"), Target::Auth, Any(Auth), false),
    route(Prefix("/api/auth/"), Target::Auth, Any(Auth), false),
    route(
        Prefix("/api/"),
        Target::ApiUnknown,
        Listed(&[
            ("GET", View),
            ("HEAD", View),
            ("POST", Admin),
            ("PUT", Admin),
            ("PATCH", Admin),
            ("DELETE", Admin),
        ]),
        false,
    ),
    route(
        Prefix("/"),
        Target::Ui,
        Listed(&[("GET", Static), ("HEAD", Static)]),
        false,
    ),
];

/// The route for a path (every path has one: the UI's catch-all is last).
pub fn lookup(path: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| match r.path {
            Exact(p) => path == p,
            Prefix(p) => path.starts_with(p),
        })
        .unwrap_or(&ROUTES[ROUTES.len() - 1])
}

/// How the router treats one method on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Dispatch to the route's handler, under this class.
    Serve(Class),
    /// The CORS pre-flight; `cross_origin`: the route has something a
    /// foreign page may be granted.
    Preflight { cross_origin: bool },
    /// 405 (after the Host check).
    NotAllowed,
}

impl Route {
    pub fn verdict(&self, method: &str) -> Verdict {
        match self.methods {
            Any(class) => Verdict::Serve(class),
            Listed(list) => {
                if let Some((_, class)) = list.iter().find(|(m, _)| *m == method) {
                    Verdict::Serve(*class)
                } else if method == "OPTIONS" {
                    Verdict::Preflight {
                        cross_origin: list.iter().any(|(_, c)| *c == View),
                    }
                } else {
                    Verdict::NotAllowed
                }
            }
        }
    }

    /// The class the guard asks the policy about.
    pub fn class(&self, method: &str) -> Class {
        match self.verdict(method) {
            Verdict::Serve(c) => c,
            Verdict::Preflight { cross_origin: true } => Class::Preflight,
            Verdict::Preflight {
                cross_origin: false,
            } => Static,
            Verdict::NotAllowed if matches!(method, "GET" | "HEAD") => Static,
            Verdict::NotAllowed => Admin,
        }
    }

    /// The methods for `Allow` and `Access-Control-Allow-Methods`.
    pub fn allow(&self) -> String {
        match self.methods {
            Any(_) => "GET, HEAD, POST, PUT, DELETE, OPTIONS".into(),
            Listed(list) => {
                let mut v: Vec<&str> = list.iter().map(|(m, _)| *m).collect();
                v.push("OPTIONS");
                v.join(", ")
            }
        }
    }

    /// The methods a foreign page may be granted (pre-flight's answer).
    pub fn cross_origin_methods(&self) -> String {
        match self.methods {
            Any(_) => String::new(),
            Listed(list) => list
                .iter()
                .filter(|(_, c)| *c == View)
                .map(|(m, _)| *m)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The class of a request (the guard's question, the fuzzers' too).
pub fn classify(method: &str, path: &str) -> Class {
    lookup(path).class(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAFE: &[&str] = &["GET", "HEAD", "OPTIONS"];

    #[test]
    fn every_state_change_is_admin_or_auth() {
        // The property the old method-based rule gave by construction: a
        // route that changes state is the admin's, unless it is declared here.
        let view_writes: &[(&str, &str)] = &[
            ("POST", "/whep"),
            ("PATCH", "/whep/"),
            ("DELETE", "/whep/"),
            ("POST", "/stream/whep"),
            ("PATCH", "/stream/whep/"),
            ("DELETE", "/stream/whep/"),
        ];
        for r in ROUTES {
            if let Listed(list) = r.methods {
                for (m, c) in list {
                    if SAFE.contains(m) {
                        continue;
                    }
                    let path = match r.path {
                        Exact(p) | Prefix(p) => p,
                    };
                    assert!(
                        matches!(c, Admin | Auth) || view_writes.contains(&(*m, path)),
                        "{m} {path} is {c:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn classes() {
        assert_eq!(classify("PUT", "/api/camera"), Admin);
        assert_eq!(classify("GET", "/api/camera"), View);
        // Methods a route does not take: 405, for the admin when they
        // would change state.
        assert_eq!(classify("POST", "/api/camera"), Admin);
        assert_eq!(classify("POST", "/anything"), Admin);
        assert_eq!(classify("BREW", "/anything"), Admin);
        assert_eq!(classify("POST", "/api/health"), Admin);
        assert_eq!(classify("POST", "/api/nothing"), Admin);
        assert_eq!(classify("HEAD", "/ws/h264"), Static);
        assert_eq!(classify("GET", "/ws/h264"), View);
        assert_eq!(classify("GET", "/hls/index.m3u8"), View);
        assert_eq!(classify("GET", "/dash/index.mpd"), View);
        assert_eq!(classify("GET", "/app.js"), Static);
        assert_eq!(classify("GET", "/api/health"), Static);
        assert_eq!(classify("GET", "/api/update"), Admin);
        assert_eq!(classify("POST", "/api/update"), Admin);
        assert_eq!(classify("GET", "/api/update/events"), Admin);
        assert_eq!(classify("GET", "/api/update/nothing"), Admin);
        assert_eq!(classify("DELETE", "/api/update/nothing"), Admin);
        assert_eq!(classify("POST", "/api/auth/login"), Auth);
        assert_eq!(classify("GET", "/api/auth"), Auth);
        assert_eq!(classify("GET", "/api/nothing"), View);
        assert_eq!(classify("OPTIONS", "/stream.mp4"), Class::Preflight);
        assert_eq!(classify("OPTIONS", "/api/update"), Static);
        assert_eq!(classify("OPTIONS", "/"), Static);
        assert_eq!(classify("POST", "/whep"), View);
        assert_eq!(classify("PATCH", "/stream/whep/ab"), View);
        assert_eq!(classify("DELETE", "/whep/ab"), View);
        assert_eq!(classify("OPTIONS", "/stream/whep"), Class::Preflight);
        assert_eq!(classify("PUT", "/whep"), Admin);
        assert_eq!(classify("POST", "/onvif/device_service"), Auth);
        assert_eq!(classify("GET", "/onvif/device_service"), Static);
        assert_eq!(classify("PUT", "/onvif/media_service"), Admin);
    }

    #[test]
    fn lookup_prefers_exact_paths() {
        assert_eq!(lookup("/api/update").target, Target::Update);
        assert_eq!(lookup("/api/update/events").target, Target::UpdateEvents);
        assert_eq!(lookup("/api/update/x").target, Target::UpdateUnknown);
        assert_eq!(lookup("/api/authx").target, Target::ApiUnknown);
        assert_eq!(lookup("/api/auth/login").target, Target::Auth);
        assert_eq!(lookup("").target, Target::Ui);
        assert!(lookup("/mjpeg").live && !lookup("/snapshot.jpg").live);
    }

    #[test]
    fn allow_lists_methods() {
        assert_eq!(lookup("/api/camera").allow(), "GET, HEAD, PUT, OPTIONS");
        assert_eq!(lookup("/api/camera").cross_origin_methods(), "GET, HEAD");
        assert_eq!(lookup("/api/update").cross_origin_methods(), "");
    }
}
