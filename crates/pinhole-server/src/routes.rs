//! The route table: every URL the daemon answers.

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

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
    // Access control for every route, before the table (auth/http.rs): anything
    // that changes state needs an admin session, live views the viewer policy.
    let admitted = match crate::auth::guard(&mut req, &state) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let result = if crate::auth::classify(&method, &path) == crate::auth::Class::Auth {
        crate::auth::handle(req, &state, &admitted).await
    } else {
        route(req, &state, &path, &method).await
    };
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
) -> Result<Response<Body>, ServerError> {
    let get_only = |allowed: bool| {
        if allowed {
            Ok(())
        } else {
            Err(ServerError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
            })
        }
    };
    let is_get = method == Method::GET || method == Method::HEAD;
    match path {
        "/ws/h264" => {
            get_only(method == Method::GET)?;
            ws::upgrade(req, state.clone(), ws::Kind::H264)
        }
        "/ws/fmp4" => {
            get_only(method == Method::GET)?;
            ws::upgrade(req, state.clone(), ws::Kind::Fmp4)
        }
        "/stream.mp4" => {
            get_only(is_get)?;
            mp4::progressive(state)
        }
        "/snapshot.jpg" => {
            get_only(is_get)?;
            mjpeg::snapshot(state).await
        }
        "/mjpeg" => {
            get_only(is_get)?;
            mjpeg::stream(state)
        }
        "/api/status" => {
            get_only(is_get)?;
            let admin = state.auth.is_admin(req.headers());
            Ok(full(
                StatusCode::OK,
                "application/json",
                status::json(state, admin).to_string(),
            ))
        }
        crate::health::PATH => {
            get_only(is_get)?;
            Ok(crate::health::respond())
        }
        "/metrics" => {
            get_only(is_get)?;
            Ok(full(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                status::prometheus(state),
            ))
        }
        _ if path.starts_with("/hls/") => {
            get_only(is_get)?;
            hls::handle(state, path, req.uri().query()).await
        }
        _ if path.starts_with("/dash/") => {
            get_only(is_get)?;
            crate::dash::handle(state, path).await
        }
        "/api/update" => match *method {
            Method::POST => update::upload(req, state).await,
            Method::GET | Method::HEAD => update::status(state),
            _ => Err(ServerError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
            }),
        },
        "/api/camera" => crate::camera::handle(req, state, method).await,
        "/api/https" => crate::https::handle(req, state, method).await,
        "/api/access" => crate::access_lists::handle(req, state, method).await,
        "/api/update/events" => {
            get_only(is_get)?;
            update::events(state)
        }
        // nginx's auth_request before it forwards an upload: the guard has
        // already required the admin (every /api/update* path is admin-only).
        "/api/update/allowed" => {
            get_only(is_get)?;
            Ok(full(StatusCode::NO_CONTENT, "text/plain", ""))
        }
        _ if path.starts_with("/api/") => Err(ServerError::NotFound(path.to_owned())),
        _ => {
            get_only(is_get)?;
            ui::serve(state, path).await
        }
    }
}
