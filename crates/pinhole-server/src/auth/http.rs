//! The HTTP adapter: the client's address, the guard every request passes
//! before the route table (asking `access::decide`), CORS, and the
//! `/api/auth*` endpoints.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{
    canonical, is_lan,
    sessions::Kind,
    store::{ViewerKeys, Which},
    Auth, SESSION_COOKIE, VIEWER_COOKIE,
};
use crate::access::{self, Ask, Class, Credentials, Decision, One, Refusal, Settings};
use crate::limits::{read_body, ViewerPermit};
use crate::{error_response, full, AppState, Body, ServerError};

const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

/// Where a request came from, as far as we can trust it.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The TCP peer; `None` on the Unix socket (nginx, or a local process).
    pub peer: Option<IpAddr>,
}

/// The client as the guard sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    pub https: bool,
}

/// The client's address: the TCP peer, or — only on the Unix socket, where
/// nginx is the peer — `X-Real-IP`, else the last `X-Forwarded-For` hop
/// (the one nginx appended). A local process on the socket counts as loopback.
pub fn client_of(conn: Option<&ConnInfo>, headers: &HeaderMap) -> Client {
    match conn {
        Some(ConnInfo { peer: Some(ip) }) => Client {
            ip: canonical(*ip),
            https: false,
        },
        Some(ConnInfo { peer: None }) => {
            let real = headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            let fwd = || {
                headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .next_back()
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
            };
            let ip = real
                .or_else(fwd)
                .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
            let https = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            Client {
                ip: canonical(ip),
                https,
            }
        }
        // No connection info: trust nothing.
        None => Client {
            ip: IpAddr::V4(std::net::Ipv4Addr::BROADCAST),
            https: false,
        },
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A query parameter (no percent-decoding: tokens are plain ASCII).
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

/// One header's value, for the policy: absent, one valid value, or invalid.
fn one<'a>(headers: &'a HeaderMap, name: header::HeaderName) -> One<'a> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => One::Absent,
        (Some(v), None) => v.to_str().map_or(One::Invalid, One::Value),
        _ => One::Invalid,
    }
}

/// `Host`, or the URI's authority (HTTP/2 has `:authority`, no `Host`).
fn host_of<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> One<'a> {
    match one(headers, header::HOST) {
        One::Absent => uri
            .authority()
            .map_or(One::Absent, |a| One::Value(a.as_str())),
        h => h,
    }
}

/// The class of a request: the route table's answer (`table.rs`).
pub fn classify(method: &Method, path: &str) -> Class {
    crate::table::classify(method.as_str(), path)
}

/// What the guard lets through with a request.
pub(crate) struct Admitted {
    pub client: Client,
    pub permit: Option<Arc<ViewerPermit>>,
    /// `Access-Control-Allow-Origin` for the answer (a listed origin, or a
    /// foreign page holding a viewer token).
    pub cors: Option<String>,
}

fn refuse(status: StatusCode, msg: &str) -> Box<Response<Body>> {
    Box::new(full(
        status,
        "application/json",
        json!({ "error": msg }).to_string(),
    ))
}

fn refusal(r: &Refusal) -> Box<Response<Body>> {
    refuse(
        StatusCode::from_u16(r.status()).unwrap_or(StatusCode::FORBIDDEN),
        &r.message(),
    )
}

impl Auth {
    /// The system's hostname, re-read at most every few seconds (it may
    /// change at run time; the configured one wins).
    pub(super) fn hostname(&self) -> Option<String> {
        if let Some(h) = &self.cfg.hostname {
            return Some(h.clone());
        }
        let mut c = self
            .hostname_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now_us();
        match &*c {
            Some((at, h)) if now.saturating_sub(*at) < super::micros(Duration::from_secs(5)) => {
                h.clone()
            }
            _ => {
                let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty());
                *c = Some((now, h.clone()));
                h
            }
        }
    }

    /// Asks the access policy about one request (the HTTP adapter).
    pub(super) fn decide(&self, client: Client, headers: &HeaderMap, ask: AskHttp) -> Decision {
        let creds = Credentials {
            admin: self.session(cookie(headers, SESSION_COOKIE), Kind::Admin),
            viewer: ask.class == Class::View
                && self.session(cookie(headers, VIEWER_COOKIE), Kind::Viewer),
            token: self.viewer_token_ok(query_param(ask.query, "token").as_deref()),
        };
        let hostname = self.hostname();
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let settings = Settings {
            configured: self.has_password(),
            viewer_access: self.cfg.viewer,
            viewer_password: self.has_viewer_password(),
            hostname: hostname.as_deref(),
            allowed_hosts: &lists.allowed_hosts,
            allowed_origins: &lists.allowed_origins,
        };
        access::decide(
            &Ask {
                client: client.ip,
                host: ask.host,
                origin: ask.origin,
                fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
                creds,
                safe: ask.safe,
                class: ask.class,
            },
            &settings,
        )
    }
}

/// The parts of a request the adapter passes on besides its headers.
pub(super) struct AskHttp<'a> {
    pub(super) host: One<'a>,
    pub(super) origin: One<'a>,
    pub(super) query: Option<&'a str>,
    pub(super) safe: bool,
    pub(super) class: Class,
}

/// The guard: runs before the route table for every request.
pub(crate) fn guard(
    req: &mut Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Admitted, Box<Response<Body>>> {
    let auth = &state.auth;
    let path = req.uri().path();
    let method = req.method();
    let client = client_of(req.extensions().get::<ConnInfo>(), req.headers());
    if path != "/api/update" {
        let len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if len.is_some_and(|l| l > auth.cfg.max_body as u64) {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {} bytes", auth.cfg.max_body),
            ));
        }
    }
    let route = crate::table::lookup(path);
    let class = route.class(method.as_str());
    let ask = AskHttp {
        host: host_of(req.headers(), req.uri()),
        origin: one(req.headers(), header::ORIGIN),
        query: req.uri().query(),
        safe: matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
        class,
    };
    let cors = match auth.decide(client, req.headers(), ask) {
        Decision::Allow { cors } => cors,
        Decision::Refuse(r) => {
            tracing::debug!(client = %client.ip, %path, reason = ?r, "refused by the access policy");
            return Err(refusal(&r));
        }
    };
    let mut permit = None;
    if class == Class::View && route.live {
        match auth.viewers.acquire(client.ip) {
            Ok(p) => {
                let p = Arc::new(p);
                req.extensions_mut().insert(p.clone());
                permit = Some(p);
            }
            Err(e) => return Err(Box::new(error_response(&e))),
        }
    }
    Ok(Admitted {
        client,
        permit,
        cors,
    })
}

/// Adds the CORS answer the policy granted (`insert`: once). Routes set
/// none themselves; `/api/auth/view` sets the one for nginx's files.
pub(crate) fn add_cors(resp: &mut Response<Body>, cors: Option<&str>) {
    let h = resp.headers_mut();
    if let Some(v) = cors.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

// ---------------------------------------------------------------------------
// /api/auth endpoints

/// JSON body of setup, login and password change.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthBody {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub current: Option<String>,
}

impl AuthBody {
    /// Parses and checks sizes; never echoes the input.
    pub fn parse(bytes: &[u8]) -> Result<AuthBody, ServerError> {
        let b: AuthBody = serde_json::from_slice(bytes)
            .map_err(|_| ServerError::BadRequest("expected JSON {\"password\": \"…\"}".into()))?;
        for p in [&b.password, &b.current].into_iter().flatten() {
            if p.len() > MAX_PASSWORD {
                return Err(ServerError::BadRequest("password too long".into()));
            }
        }
        Ok(b)
    }
}

fn new_password_ok(pw: &str) -> Result<(), ServerError> {
    if pw.chars().count() < MIN_PASSWORD {
        return Err(ServerError::Unprocessable(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        )));
    }
    if pw.len() > MAX_PASSWORD {
        return Err(ServerError::Unprocessable("password too long".into()));
    }
    Ok(())
}

fn set_cookie(resp: &mut Response<Body>, name: &str, value: &str, max_age: u64, https: bool) {
    let secure = if https { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A password login (admin or viewer) with the shared per-address and
/// global backoff; returns the new session's token.
async fn login(
    auth: &Auth,
    req: Request<Incoming>,
    client: Client,
    which: Which,
) -> Result<String, ServerError> {
    // Read the body first: a slow body must not hold a reservation.
    let body = password_from(req, auth.cfg.max_body).await?;
    auth.reserve(client.ip)?;
    let ok = auth.verify(which, body.password.unwrap_or_default()).await;
    let (kind, who) = match which {
        Which::Admin => (Kind::Admin, "admin"),
        Which::Viewer => (Kind::Viewer, "viewer"),
    };
    if !ok {
        // Already counted by the reservation.
        tracing::warn!(client = %client.ip, "failed {who} login");
        return Err(ServerError::Unauthorized("wrong password".into()));
    }
    auth.throttle
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .succeed(client.ip, auth.clock.now_us());
    tracing::info!(client = %client.ip, "{who} logged in");
    auth.new_session(kind)
}

fn ok_json(v: serde_json::Value) -> Response<Body> {
    let mut r = full(StatusCode::OK, "application/json", v.to_string());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn password_from(req: Request<Incoming>, max: usize) -> Result<AuthBody, ServerError> {
    let bytes = read_body(req.into_body(), max).await?;
    AuthBody::parse(&bytes)
}

/// `/api/auth*`.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    admitted: &Admitted,
) -> Result<Response<Body>, ServerError> {
    let auth = &state.auth;
    let client = admitted.client;
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let is_admin = || auth.session(cookie(&headers, SESSION_COOKIE), Kind::Admin);
    let max_age = auth.cfg.session_max.as_secs();
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/api/auth") => {
            let mut extra = None;
            let token = query_param(req.uri().query(), "token");
            if auth.viewer_token_ok(token.as_deref()) {
                extra = Some(auth.new_session(Kind::Viewer)?);
            }
            let mut resp = ok_json(json!({
                "setup_needed": !auth.has_password(),
                "logged_in": is_admin(),
                "lan": is_lan(client.ip),
                "viewer_access": auth.cfg.viewer.name(),
                "may_view": extra.is_some() || auth.may_view(client, &headers, None),
                "viewer_password": auth.has_viewer_password(),
            }));
            if let Some(t) = extra {
                set_cookie(&mut resp, VIEWER_COOKIE, &t, max_age, client.https);
            }
            Ok(resp)
        }
        // For nginx `auth_request` on the files it serves itself (HLS).
        (Method::GET | Method::HEAD, "/api/auth/view") => {
            let original = headers
                .get("x-original-uri")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let query = original.split_once('?').map(|(_, q)| q);
            // The same question as for the file itself; the guard checked
            // Host already. nginx passes 401/403 on and copies the CORS
            // answer from this reply (auth_request_set).
            let ask = AskHttp {
                host: host_of(&headers, &uri),
                origin: one(&headers, header::ORIGIN),
                query,
                safe: true,
                class: Class::View,
            };
            match auth.decide(client, &headers, ask) {
                Decision::Allow { cors } => {
                    let mut resp = full(StatusCode::NO_CONTENT, "text/plain", "");
                    add_cors(&mut resp, cors.as_deref());
                    // nginx builds the media files' Cache-Control from it.
                    let scope = if auth.shared_cache_ok() {
                        "public"
                    } else {
                        "private"
                    };
                    resp.headers_mut()
                        .insert("x-pinhole-cache", HeaderValue::from_static(scope));
                    Ok(resp)
                }
                Decision::Refuse(r) if r.status() == 401 => {
                    Err(ServerError::Unauthorized(r.message()))
                }
                Decision::Refuse(r) => Err(ServerError::Forbidden(r.message())),
            }
        }
        (Method::POST, "/api/auth/setup") => {
            if auth.has_password() {
                return Err(ServerError::Conflict(
                    "the admin password is already set".into(),
                ));
            }
            if !is_lan(client.ip) {
                return Err(ServerError::Forbidden(
                    "set up from the local network".into(),
                ));
            }
            let body = password_from(req, auth.cfg.max_body).await?;
            let pw = body.password.unwrap_or_default();
            new_password_ok(&pw)?;
            let hash = auth.hash(pw).await?;
            {
                let mut store = auth.store.lock().unwrap_or_else(|e| e.into_inner());
                if store.hash.is_some() {
                    return Err(ServerError::Conflict(
                        "the admin password is already set".into(),
                    ));
                }
                store.save(Which::Admin, Some(hash))?;
            }
            tracing::info!(client = %client.ip, "admin password set");
            let token = auth.new_session(Kind::Admin)?;
            let mut resp = ok_json(json!({ "logged_in": true }));
            set_cookie(&mut resp, SESSION_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/login") => {
            if !auth.has_password() {
                return Err(ServerError::Conflict(
                    "no admin password yet: set one first".into(),
                ));
            }
            let token = login(auth, req, client, Which::Admin).await?;
            let mut resp = ok_json(json!({ "logged_in": true }));
            set_cookie(&mut resp, SESSION_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/viewer/login") => {
            if !auth.has_viewer_password() {
                return Err(ServerError::Conflict("no viewer password is set".into()));
            }
            let token = login(auth, req, client, Which::Viewer).await?;
            let mut resp = ok_json(json!({ "may_view": true }));
            set_cookie(&mut resp, VIEWER_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/viewer/logout") => {
            auth.end_session(cookie(&headers, VIEWER_COOKIE));
            let mut resp = ok_json(json!({ "may_view": false }));
            set_cookie(&mut resp, VIEWER_COOKIE, "", 0, client.https);
            Ok(resp)
        }
        // Set, change (POST) or remove (DELETE) the viewer password: admin only.
        (m @ (Method::POST | Method::DELETE), "/api/auth/viewer/password") => {
            if !is_admin() {
                return Err(ServerError::Unauthorized("log in as admin first".into()));
            }
            let (hash, keys) = if m == Method::POST {
                let body = password_from(req, auth.cfg.max_body).await?;
                let pw = body.password.unwrap_or_default();
                new_password_ok(&pw)?;
                // RTSP Digest and ONVIF's digest need these; Argon2 cannot
                // serve them.
                let keys = ViewerKeys::of(&pw);
                (Some(auth.hash(pw).await?), keys)
            } else {
                (None, ViewerKeys::default())
            };
            let set = hash.is_some();
            auth.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .save_with(Which::Viewer, hash, keys)?;
            // Whoever logged in with the old one logs in again.
            auth.drop_sessions(Kind::Viewer);
            tracing::info!(client = %client.ip, "viewer password {}", if set { "set" } else { "removed" });
            Ok(ok_json(json!({ "viewer_password": set })))
        }
        (Method::POST, "/api/auth/logout") => {
            auth.end_session(cookie(&headers, SESSION_COOKIE));
            let mut resp = ok_json(json!({ "logged_in": false }));
            set_cookie(&mut resp, SESSION_COOKIE, "", 0, client.https);
            Ok(resp)
        }
        (Method::POST, "/api/auth/password") => {
            if !is_admin() {
                return Err(ServerError::Unauthorized("log in as admin first".into()));
            }
            let body = password_from(req, auth.cfg.max_body).await?;
            let new = body.password.unwrap_or_default();
            new_password_ok(&new)?;
            auth.reserve(client.ip)?;
            if !auth
                .verify(Which::Admin, body.current.unwrap_or_default())
                .await
            {
                return Err(ServerError::Forbidden(
                    "the current password is wrong".into(),
                ));
            }
            auth.throttle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .succeed(client.ip, auth.clock.now_us());
            let hash = auth.hash(new).await?;
            auth.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .save(Which::Admin, Some(hash))?;
            // Every other admin session ends; this one gets a fresh token.
            auth.drop_sessions(Kind::Admin);
            tracing::info!(client = %client.ip, "admin password changed");
            let token = auth.new_session(Kind::Admin)?;
            let mut resp = ok_json(json!({ "logged_in": true }));
            set_cookie(&mut resp, SESSION_COOKIE, &token, max_age, client.https);
            Ok(resp)
        }
        (m, p) => Err(
            if p == "/api/auth" || p.starts_with("/api/auth/") && m != Method::GET {
                ServerError::MethodNotAllowed {
                    method: m.to_string(),
                    path: p.to_owned(),
                }
            } else {
                ServerError::NotFound(p.to_owned())
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_only_count_on_the_unix_socket() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("8.8.8.8"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let tcp = ConnInfo {
            peer: Some("192.168.1.5".parse().unwrap()),
        };
        let c = client_of(Some(&tcp), &h);
        assert_eq!(c.ip, "192.168.1.5".parse::<IpAddr>().unwrap());
        assert!(!c.https);
        let unix = ConnInfo { peer: None };
        let c = client_of(Some(&unix), &h);
        assert_eq!(c.ip, "8.8.8.8".parse::<IpAddr>().unwrap());
        assert!(c.https);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.1, 8.8.4.4"),
        );
        assert_eq!(
            client_of(Some(&unix), &h).ip,
            "8.8.4.4".parse::<IpAddr>().unwrap()
        );
        assert!(!is_lan(client_of(None, &h).ip));
    }

    #[test]
    fn cookies_and_query() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; pinhole_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            query_param(Some("x=1&token=t0k"), "token").as_deref(),
            Some("t0k")
        );
        assert_eq!(query_param(Some("tokenx=1"), "token"), None);
    }
}
