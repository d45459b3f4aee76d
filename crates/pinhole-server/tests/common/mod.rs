//! Test support: a real server on port 0, real clients, real fixtures.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use pinhole_hub::{Hub, HubConfig};
use pinhole_media::annexb::AccessUnitAssembler;
use pinhole_media::{AccessUnit, Clock, SimClock, SystemClock};
use pinhole_server::{AppState, ListenAddr, Listener, ServerConfig};
use pinhole_source_api::SourceInfo;
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(hub_cfg: HubConfig) -> TestServer {
        TestServer::start_with(hub_cfg, ServerConfig::default()).await
    }

    pub async fn start_with(hub_cfg: HubConfig, cfg: ServerConfig) -> TestServer {
        TestServer::start_on(hub_cfg, cfg, Arc::new(SystemClock::new()), None).await
    }

    /// A server on the shared simulated clock: the test moves time with
    /// [`SimClock::advance`] (session expiry, login backoff) instead of
    /// sleeping. Streams that pace themselves need real time: use
    /// [`TestServer::start_with`] for those.
    pub async fn start_sim(hub_cfg: HubConfig, cfg: ServerConfig) -> (TestServer, Arc<SimClock>) {
        let clock = Arc::new(sim_clock());
        let server = TestServer::start_on(hub_cfg, cfg, clock.clone(), None).await;
        (server, clock)
    }

    /// A server on port 0 and on the Unix socket `sock`, where nginx's
    /// `X-Real-IP` names the client.
    pub async fn start_unix(sock: &Path, cfg: ServerConfig) -> TestServer {
        TestServer::start_on(
            HubConfig::default(),
            cfg,
            Arc::new(SystemClock::new()),
            Some(sock),
        )
        .await
    }

    pub async fn start_on(
        hub_cfg: HubConfig,
        cfg: ServerConfig,
        clock: Arc<dyn Clock>,
        sock: Option<&Path>,
    ) -> TestServer {
        let hub = Hub::with_clock(hub_cfg, clock);
        let state = AppState::new(hub, test_source_info(), cfg);
        TestServer::serve(state, sock).await
    }

    /// Serves an already built `state` on port 0 and, with `sock`, on that
    /// Unix socket.
    pub async fn serve(state: Arc<AppState>, sock: Option<&Path>) -> TestServer {
        let listener = Listener::bind(&"127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = match listener.local_addr() {
            ListenAddr::Tcp(a) => a,
            other => panic!("unexpected {other}"),
        };
        let mut listeners = vec![listener];
        if let Some(sock) = sock {
            let unix = Listener::bind(&ListenAddr::Unix(sock.to_owned()))
                .await
                .expect("bind the Unix socket");
            listeners.push(unix);
        }
        let (tx, rx) = oneshot::channel();
        let st = state.clone();
        let task = tokio::spawn(async move {
            pinhole_server::serve(listeners, st, async {
                let _ = rx.await;
            })
            .await
        });
        TestServer {
            addr,
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server stops within 10 s")
                .expect("server task");
        }
    }
}

/// A simulated clock a second after its origin, its wall clock in 2024.
pub fn sim_clock() -> SimClock {
    SimClock::new(1_000_000, 1_700_000_000_000_000)
}

/// What the test servers say their source is.
pub fn test_source_info() -> SourceInfo {
    SourceInfo {
        kind: "test",
        detail: "driven by the test".into(),
        fps: Some(30.0),
        bitrate: None,
        keyframe_interval: None,
    }
}

/// Waits until the peer closes (read → 0 or error); returns how long it took,
/// or `None` if it stayed open for `max`.
pub async fn closed_within(s: &mut tokio::net::TcpStream, max: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + max).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// An HTTP/1 client connection on `stream`; its driver runs in a task.
pub async fn http1<S, B>(stream: S) -> hyper::client::conn::http1::SendRequest<B>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// The admin password the tests set.
pub const ADMIN_PASSWORD: &str = "test admin password";

/// An admin session cookie (`name=value`) for the server at `addr`: sets the
/// password on first use, logs in after that.
pub async fn admin_cookie(addr: SocketAddr) -> String {
    for path in ["/api/auth/setup", "/api/auth/login"] {
        let r = post_json(
            addr,
            path,
            &format!("{{\"password\":\"{ADMIN_PASSWORD}\"}}"),
            &[],
        )
        .await;
        if r.status == 200 {
            let c = r.headers["set-cookie"].to_str().expect("cookie");
            return c.split(';').next().expect("name=value").to_owned();
        }
    }
    panic!("cannot log in");
}

/// POSTs a JSON body (with a same-origin `Origin`).
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    send_json(addr, http::Method::POST, path, body, headers).await
}

/// Sends a JSON body with any method (with a same-origin `Origin`).
pub async fn send_json(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut sender = http1(stream).await;
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("origin"))
    {
        req = req.header("origin", format!("http://{addr}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(
            req.body(http_body_util::Full::new(Bytes::from(body.to_owned())))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    HttpResponse {
        status,
        headers,
        body,
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pinhole-media/testdata")
        .join(name)
}

/// The access units of a real x264 stream (320x240, 30 fps, GOP 30).
pub fn fixture_aus() -> Vec<(Bytes, bool)> {
    let data =
        std::fs::read(fixture_path("x264_baseline_320x240_30fps_gop30.h264")).expect("fixture");
    let mut asm = AccessUnitAssembler::new();
    let mut out: Vec<(Bytes, bool)> = asm
        .push(&data)
        .into_iter()
        .map(|a| (a.data, a.keyframe))
        .collect();
    if let Some(a) = asm.finish() {
        out.push((a.data, a.keyframe));
    }
    assert!(out.len() >= 60, "fixture has {} AUs", out.len());
    assert!(out[0].1, "fixture starts with a keyframe");
    out
}

/// Checks that `got` is consecutive fixture access units (wrapping around),
/// starting at a keyframe.
pub fn assert_fixture_in_order(got: &[Bytes], aus: &[(Bytes, bool)]) {
    let start = aus
        .iter()
        .position(|(d, _)| *d == got[0])
        .expect("first message is a fixture access unit");
    assert!(aus[start].1, "first message must be a keyframe");
    for (k, msg) in got.iter().enumerate() {
        let want = &aus[(start + k) % aus.len()].0;
        assert!(
            msg == want,
            "message {k} is not the next access unit in order"
        );
    }
}

/// Publishes fixture AUs in a loop at `fps`, as a camera would; returns a
/// handle that stops it when dropped.
pub fn publish_fixture(state: Arc<AppState>, fps: f64) -> tokio::task::JoinHandle<()> {
    let aus = fixture_aus();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        for (data, keyframe) in aus.iter().cycle() {
            t.tick().await;
            let us = start.elapsed().as_micros() as u64;
            state.hub.publish(AccessUnit {
                data: data.clone(),
                pts_us: us,
                wallclock_us: us,
                keyframe: *keyframe,
            });
        }
    })
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// GET with a real HTTP/1.1 client; reads the body for at most `read_for`
/// (streams never end by themselves).
pub async fn get(url: &str, read_for: Duration) -> HttpResponse {
    get_with(url, http::Method::GET, &[], read_for).await
}

pub async fn get_with(
    url: &str,
    method: http::Method,
    headers: &[(&str, &str)],
    read_for: Duration,
) -> HttpResponse {
    let uri: http::Uri = url.parse().expect("uri");
    let host = uri.authority().expect("authority").to_string();
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let mut sender = http1(stream).await;
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + read_for;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    out.extend_from_slice(d);
                }
            }
            Ok(Some(Err(e))) => panic!("body error: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    HttpResponse {
        status,
        headers,
        body: out,
    }
}

/// Runs ffprobe on a file; fails loudly if ffprobe is missing.
pub fn ffprobe(path: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,r_frame_rate,avg_frame_rate,nb_read_frames,profile",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (ci/test.sh installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe reported errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"][0].clone()
}
