//! The route table: every URL the daemon answers.

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::table::{self, Target, Verdict};
use crate::{
    error_response, full, hls, mjpeg, mp4, status, ui, update, ws, AppState, Body, ServerError,
};

pub(crate) async fn handle(req: Request<Incoming>, state: Arc<AppState>) -> Response<Body> {
    let mut resp = handle_inner(req, state).await;
    crate::headers::apply(&mut resp);
    resp
}

async fn handle_inner(mut req: Request<Incoming>, state: Arc<AppState>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    // Access control for every route (auth/http.rs), by the class the route
    // table gives the method (table.rs): the same table dispatches below.
    let admitted = match crate::auth::guard(&mut req, &state) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let result = route(req, &state, &path, &method, &admitted).await;
    // CORS only where the policy granted it, and once.
    let cors = admitted.cors.clone();
    let result = result.map(|mut r| {
        crate::auth::add_cors(&mut r, cors.as_deref());
        r
    });
    // A live stream holds its viewer slot until its body ends.
    let result = match (result, admitted.permit) {
        (Ok(resp), Some(permit)) => {
            Ok(resp.map(|body| crate::limits::PermitBody::wrap(body, permit)))
        }
        (r, _) => r,
    };
    match result {
        Ok(resp) => resp,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::error!(%path, error = %e, "request failed");
            } else {
                tracing::debug!(%path, error = %e, "request refused");
            }
            let mut r = error_response(&e);
            crate::auth::add_cors(&mut r, cors.as_deref());
            r
        }
    }
}

async fn route(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    path: &str,
    method: &Method,
    admitted: &crate::auth::Admitted,
) -> Result<Response<Body>, ServerError> {
    let r = table::lookup(path);
    match r.verdict(method.as_str()) {
        Verdict::Serve(_) => {}
        Verdict::Preflight { .. } => {
            let mut resp = preflight(r);
            if r.target == Target::Whep {
                crate::whep::add_links(state, &mut resp);
            }
            return Ok(resp);
        }
        Verdict::NotAllowed => {
            return Err(ServerError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
            })
        }
    }
    match r.target {
        Target::WsH264 => ws::upgrade(req, state.clone(), ws::Kind::H264),
        Target::WsFmp4 => ws::upgrade(req, state.clone(), ws::Kind::Fmp4),
        Target::Mp4 => mp4::progressive(state),
        Target::Snapshot => mjpeg::snapshot(state).await,
        Target::Mjpeg => mjpeg::stream(state),
        Target::Status => {
            let admin = state.auth.is_admin(req.headers());
            Ok(full(
                StatusCode::OK,
                "application/json",
                status::json(state, admin).to_string(),
            ))
        }
        Target::Health => Ok(crate::health::respond()),
        Target::Metrics => Ok(full(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            status::prometheus(state),
        )),
        Target::Hls => hls::handle(state, path, req.uri().query()).await,
        Target::Dash => crate::dash::handle(state, path).await,
        Target::Update => match *method {
            Method::POST => update::upload(req, state).await,
            _ => update::status(state),
        },
        Target::UpdateEvents => update::events(state),
        // nginx's auth_request before it forwards an upload: the guard has
        // already required the admin (the table makes it admin-only).
        Target::UpdateAllowed => Ok(full(StatusCode::NO_CONTENT, "text/plain", "")),
        Target::Camera => crate::camera::handle(req, state, method).await,
        Target::Https => crate::https::handle(req, state, method).await,
        Target::Access => crate::access_lists::handle(req, state, method).await,
        Target::Push => crate::push_api::handle(req, state, method, path).await,
        // The handlers check credentials themselves.
        Target::Auth => crate::auth::handle(req, state, admitted).await,
        Target::UpdateUnknown | Target::ApiUnknown => Err(ServerError::NotFound(path.to_owned())),
        Target::Whep => crate::whep::handle(req, state, path, method).await,
        Target::Onvif => crate::onvif::handle(req, state, path).await,
        Target::Ui => ui::serve(state, path).await,
    }
}

/// `OPTIONS`: the methods, and for a foreign page the policy granted (the
/// guard put its origin in `cors`), what it may send.
fn preflight(r: &table::Route) -> Response<Body> {
    let mut resp = full(StatusCode::NO_CONTENT, "text/plain", "");
    let h = resp.headers_mut();
    let put = |h: &mut http::HeaderMap, name: http::header::HeaderName, v: &str| {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    put(h, http::header::ALLOW, &r.allow());
    let methods = r.cross_origin_methods();
    if !methods.is_empty() {
        put(h, http::header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
        put(
            h,
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type, if-match",
        );
        put(h, http::header::ACCESS_CONTROL_MAX_AGE, "600");
    }
    resp
}
