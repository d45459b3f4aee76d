//! Entry points for the fuzz targets (crates/pinhole-server/fuzz): the pure
//! parsers that eat outside input. Not an API.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// `_HLS_msn` / `_HLS_part` query parsing.
pub fn hls_query(query: &str) -> (Option<u64>, Option<u64>) {
    (
        crate::hls::query_u64(Some(query), "_HLS_msn")
            .ok()
            .flatten(),
        crate::hls::query_u64(Some(query), "_HLS_part")
            .ok()
            .flatten(),
    )
}

/// UI path sanitising: whatever it returns must stay inside the UI dir.
pub fn ui_path(path: &str) -> Option<String> {
    let rel = crate::ui::relative_path(path)?;
    let p = std::path::Path::new(&rel);
    assert!(!p.is_absolute(), "{rel}");
    assert!(
        p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_))),
        "{rel}"
    );
    Some(rel)
}

/// The auth JSON bodies.
pub fn auth_body(bytes: &[u8]) -> bool {
    crate::auth::AuthBody::parse(bytes).is_ok()
}

/// The guard's pure parts: classification, client address, Origin, cookies.
pub fn guard_inputs(method: &[u8], path: &str, headers: &[(&[u8], &[u8])], unix: bool) {
    let Ok(m) = Method::from_bytes(method) else {
        return;
    };
    let _ = crate::table::lookup(path).verdict(m.as_str());
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
            h.append(k, v);
        }
    }
    let conn = crate::auth::ConnInfo {
        peer: if unix {
            None
        } else {
            Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                192, 168, 1, 2,
            )))
        },
    };
    let c = crate::auth::client_of(Some(&conn), &h);
    let one = |name: &str| {
        let mut all = h.get_all(name).iter();
        match (all.next(), all.next()) {
            (None, _) => crate::access::One::Absent,
            (Some(v), None) => v
                .to_str()
                .map_or(crate::access::One::Invalid, crate::access::One::Value),
            _ => crate::access::One::Invalid,
        }
    };
    let names = ["cam.example.org".to_owned()];
    let origins = ["http://printer.local".to_owned()];
    let ask = crate::access::Ask {
        client: c.ip,
        host: one("host"),
        origin: one("origin"),
        fetch_site: h.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        creds: crate::access::Credentials {
            admin: path.contains("admin"),
            viewer: false,
            token: path.contains("token="),
        },
        safe: matches!(m, Method::GET | Method::HEAD | Method::OPTIONS),
        class: crate::auth::classify(&m, path),
    };
    let settings = crate::access::Settings {
        configured: !unix,
        viewer_access: crate::access::ViewerAccess::Lan,
        viewer_password: false,
        hostname: Some("pinhole"),
        allowed_hosts: &names,
        allowed_origins: &origins,
    };
    let _ = crate::access::decide(&ask, &settings);
    let _ = crate::auth::cookie(&h, crate::auth::SESSION_COOKIE);
    let _ = crate::auth::query_param(Some(path), "token");
}
