//! `pinholed`: wires a source, the hub and the HTTP server together.

use pinholed::config;
mod audio_ctl;
mod audio_pair;
mod auto;
mod camera_ctl;
mod error;
mod libcamera_source;
mod ota;
mod rpicam;
mod systemd;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pinhole_capture::libcamera::LibcameraControls;
use pinhole_capture::pipe::{parse_pipe_spec, PipeInput, PipeSource};
use pinhole_capture::test_pattern::{TestPattern, TestPatternConfig};
use pinhole_capture::v4l2::controls::SavedControls;
use pinhole_capture::v4l2::{self, EncoderChoice, V4l2Config, V4l2Source};
use pinhole_capture::{Source, Supervisor};
use pinhole_hub::{Feed, Hub, HubConfig};
use pinhole_media::{Clock, SystemClock};
use pinhole_server::{AppState, ListenAddr, Listener, ServerConfig};
use std::path::PathBuf;

use config::{Cli, Config};
use error::{DaemonError, HlsDirError, SourceError};

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    init_logging();
    let cfg = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pinholed: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pinholed")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pinholed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg, cli.config.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pinholed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// journald when started by systemd with a journal stream, plain text otherwise.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // srt-tokio's debug lines print the SRT stream id and handshakes (a
    // push credential): never below info, whatever RUST_LOG asks.
    for d in ["srt_tokio=info", "srt_protocol=info"] {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("pinholed".into()))
                .init();
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

/// What every source built by [`make_source`] shares with the daemon.
#[derive(Clone)]
struct Wiring {
    clock: Arc<dyn Clock>,
    /// The camera controls chosen (config, `PUT /api/camera`).
    saved: SavedControls,
    /// The kind of source and camera device running now.
    active: camera_ctl::Active,
    /// A libcamera camera's controls (saved values, the running helper's list).
    libcamera: LibcameraControls,
}

fn make_source(cfg: &Config, w: &Wiring) -> Result<Box<dyn Source>, SourceError> {
    let clock = w.clock.clone();
    let test_pattern = |clock| {
        TestPattern::new(
            TestPatternConfig {
                width: cfg.video.width,
                height: cfg.video.height,
                fps: cfg.video.fps,
                bitrate: cfg.video.bitrate,
                keyframe_interval: cfg.keyframe_interval(),
            },
            clock,
        )
        .map(|s| Box::new(s) as Box<dyn Source>)
        .map_err(SourceError::TestPattern)
    };
    let spec = cfg.source.as_str();
    match spec {
        "test" => {
            w.active.set("test", None);
            test_pattern(clock)
        }
        "auto" => {
            // Raspberry Pi OS with its camera apps (the .deb): their stack
            // drives every Pi camera, with the GPU's H.264 (rpicam.rs).
            if let Some(program) = rpicam::find(std::env::var_os("PATH").as_deref()) {
                let cmd = rpicam::command(&program, cfg);
                tracing::info!("auto: {} found; source pipe:{cmd}", program.display());
                w.active.set("pipe", None);
                return Ok(Box::new(PipeSource::new(
                    PipeInput::Command(cmd),
                    f64::from(cfg.video.fps),
                    clock,
                )));
            }
            // A libcamera camera first (a Pi camera module where the kernel
            // has the ISP), then V4L2, then the test pattern; rescanned
            // while no camera runs (auto.rs).
            let want = v4l2::negotiate::Wanted {
                width: cfg.video.width,
                height: cfg.video.height,
                fps: cfg.video.fps,
                fourcc: None,
            };
            let (c, wc) = (cfg.clone(), w.clone());
            let camera: auto::CameraBuilder =
                Box::new(move |cand: &auto::Candidate| match &cand.camera {
                    auto::Camera::V4l2(path) => {
                        V4l2Source::new(v4l2_config(&c, &wc, path.clone(), None), wc.clock.clone())
                            .map(|s| Box::new(s) as Box<dyn Source>)
                            .map_err(SourceError::from)
                    }
                    auto::Camera::Libcamera(id) => {
                        libcamera_source::camera(&c, id, wc.clock.clone(), &wc.libcamera)
                    }
                });
            let policy = auto::Policy {
                libcamera_interval_us: u64::from(cfg.camera.libcamera_rescan_s) * 1_000_000,
                ..auto::Policy::default()
            };
            auto::AutoSource::new(
                auto::scanner(
                    auto::v4l2_scanner(PathBuf::from("/dev"), want),
                    Some(libcamera_source::probe(cfg)),
                    policy,
                ),
                camera,
                || test_pattern(clock.clone()),
                clock.clone(),
                w.active.clone(),
                policy,
            )
            .map(|s| Box::new(s) as Box<dyn Source>)
        }
        _ if spec.starts_with("pipe:") => {
            w.active.set("pipe", None);
            let mut input = parse_pipe_spec(&spec["pipe:".len()..]);
            if let PipeInput::File { looped, .. } = &mut input {
                *looped = cfg.pipe.looped;
            }
            Ok(Box::new(PipeSource::new(
                input,
                f64::from(cfg.video.fps),
                clock,
            )))
        }
        _ if spec.starts_with("v4l2:") => {
            let (device, fourcc) = v4l2::parse_spec(&spec["v4l2:".len()..]);
            let c = v4l2_config(cfg, w, device.clone(), fourcc);
            w.active.set("v4l2", Some(device));
            V4l2Source::new(c, clock)
                .map(|s| Box::new(s) as Box<dyn Source>)
                .map_err(SourceError::from)
        }
        _ => match libcamera_source::make(cfg, spec, clock, &w.libcamera) {
            Some(r) => {
                w.active.set("libcamera", None);
                r
            }
            None => Err(SourceError::Unknown(spec.to_owned())),
        },
    }
}

fn v4l2_config(cfg: &Config, w: &Wiring, device: PathBuf, fourcc: Option<u32>) -> V4l2Config {
    let mut c = V4l2Config::new(device);
    c.controls = w.saved.clone();
    c.width = cfg.video.width;
    c.height = cfg.video.height;
    c.fps = cfg.video.fps;
    c.bitrate = cfg.video.bitrate;
    c.keyframe_interval = cfg.keyframe_interval();
    c.fourcc = fourcc;
    c.stall_timeout = Duration::from_millis(u64::from(cfg.camera.stall_timeout_ms));
    // Validated in Config::validate: "software" or "m2m:/dev/…".
    if let Some(path) = cfg.camera.encoder.strip_prefix("m2m:") {
        c.encoder = EncoderChoice::M2m(PathBuf::from(path));
    }
    c
}

async fn run(cfg: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    let wiring = Wiring {
        clock: Arc::new(SystemClock::new()),
        saved: SavedControls::new(cfg.camera.controls.clone()),
        active: camera_ctl::Active::default(),
        libcamera: camera_ctl::libcamera_controls(&cfg),
    };
    let source = make_source(&cfg, &wiring)?;
    let info = source.info();
    tracing::info!(kind = info.kind, detail = %info.detail, "source");

    // One clock for the source, the hub and every output.
    let hub = Hub::with_clock(
        HubConfig {
            max_lag_frames: cfg.http.max_lag_frames,
            nominal_fps: info.fps.unwrap_or(f64::from(cfg.video.fps)),
            ..HubConfig::default()
        },
        wiring.clock.clone(),
    );
    let hls_dir = match HlsDir::new(&cfg.hls) {
        Ok(d) => d,
        Err(e) => {
            // HLS is one output among several: run without it.
            tracing::error!("HLS disabled: {e}");
            None
        }
    };
    // Frames flow one way: the source publishes into the feed, the feed
    // into the hub, and the server's outputs read the hub.
    let feed = Feed::new(hub, info, wiring.clock.clone());
    let state = AppState::with_feed(
        feed.clone(),
        ServerConfig {
            mjpeg_fps: cfg.http.mjpeg_fps,
            jpeg_quality: cfg.http.jpeg_quality,
            ui_dir: cfg.http.ui_dir.clone(),
            hls_dir: hls_dir.as_ref().map(|d| d.path().to_owned()),
            hls_part_target_ms: cfg.hls.part_target_ms,
            security: cfg.security.to_server(),
        },
    );

    let mut listeners = Vec::new();
    for l in &cfg.listen {
        let addr: ListenAddr = l.parse().map_err(|reason| DaemonError::BadListen {
            addr: l.clone(),
            reason,
        })?;
        let bound = Listener::bind(&addr).await?;
        match bound.local_addr() {
            ListenAddr::Tcp(a) => tracing::info!("listening on http://{a}/"),
            u => tracing::info!("listening on {u}"),
        }
        listeners.push(bound);
    }

    if cfg.webrtc.enabled {
        // WebRTC is one output among several: run without it if it cannot start.
        match cfg.webrtc.to_endpoint() {
            Ok(mut wcfg) => {
                wcfg.accept_from = cfg.security.accept_from();
                match pinhole_webrtc::Endpoint::start(wcfg, state.hub.clone()).await {
                    Ok(ep) => {
                        let _ = state.webrtc.set(ep);
                    }
                    Err(e) => tracing::error!("WebRTC disabled: {e}"),
                }
            }
            Err(e) => tracing::error!("WebRTC disabled: {e}"),
        }
    }

    let mut rtsp = Vec::new();
    for a in &cfg.rtsp {
        let addr: std::net::SocketAddr = a.parse().map_err(|_| DaemonError::BadListen {
            addr: a.clone(),
            reason: "RTSP needs IP:PORT".into(),
        })?;
        let l = pinhole_server::rtsp::RtspListener::bind(addr, true)
            .await
            .map_err(|e| DaemonError::BadListen {
                addr: a.clone(),
                reason: format!("cannot bind RTSP: {e}"),
            })?;
        if let Ok(a) = l.local_addr() {
            tracing::info!("rtsp on rtsp://{a}{}", pinhole_server::rtsp::PATH);
        }
        rtsp.push(l);
    }
    if let Some(a) = rtsp.first().and_then(|l| l.local_addr().ok()) {
        let _ = state.rtsp_port.set(a.port());
    }
    let discovery = start_onvif(&cfg, &state, &listeners);

    match ota::start(&cfg.ota) {
        Ok(Some(svc)) => {
            let _ = state.update.set(svc);
        }
        Ok(None) => {}
        // The camera must keep working even if the update set-up is broken.
        Err(e) => tracing::error!("updates disabled: {e}"),
    }

    // Push targets: the config file's, then those the admin added
    // (`/api/push`, kept in the data dir).
    let push = pinhole_push::PushSet::new(state.hub.clone());
    for p in &cfg.push {
        match pinhole_push::PushUrl::parse(&p.url) {
            Ok(mut url) => {
                url.tls_ca = p.tls_ca.clone();
                tracing::info!(target = %url.redacted(), "push");
                push.add(url);
            }
            Err(e) => tracing::error!("push target skipped: {e}"),
        }
    }
    let _ = state.push.set(push);
    pinhole_server::push_api::start_saved(&state);

    let probe = listeners.first().map(|l| l.local_addr());
    let supervisor = Supervisor::spawn(source, feed, wiring.clock.clone())?;
    let audio = Arc::new(audio_ctl::AudioCtl::new(
        state.clone(),
        wiring.clock.clone(),
        wiring.active.clone(),
        PathBuf::from("/sys"),
    ));
    if let Err(e) = audio.apply(&cfg) {
        // Validated with the config; a failure here (no thread) is not fatal
        // for the picture.
        tracing::error!("audio disabled: {e}");
    }
    if let Err(e) = audio.follow_camera() {
        tracing::error!("audio auto cannot follow the camera: {e}");
    }
    let (active, saved) = (wiring.active.clone(), wiring.saved.clone());
    let libcamera = wiring.libcamera.clone();
    let factory: camera_ctl::Factory = Box::new(move |c: &Config| make_source(c, &wiring));
    let camera = camera_ctl::DaemonCamera::new(
        cfg.clone(),
        config_path,
        active,
        saved,
        libcamera,
        factory,
        supervisor.clone(),
    )
    .with_audio(audio.clone());
    let _ = state.camera.set(Arc::new(camera));
    tokio::spawn(systemd::supervise(state.clone(), probe));

    let (rtsp_stop, rtsp_stopped) = tokio::sync::oneshot::channel::<()>();
    let rtsp_task = (!rtsp.is_empty()).then(|| {
        tokio::spawn(pinhole_server::rtsp::serve(
            rtsp,
            state.clone(),
            cfg.rtsp_server.to_server(),
            async {
                let _ = rtsp_stopped.await;
            },
        ))
    });
    let (onvif_stop, onvif_stopped) = tokio::sync::oneshot::channel::<()>();
    let discovery_task = discovery.map(|socket| {
        tokio::spawn(pinhole_server::onvif::discovery(
            socket,
            state.clone(),
            async {
                let _ = onvif_stopped.await;
            },
        ))
    });
    pinhole_server::serve(listeners, state, shutdown_signal()).await;
    let _ = onvif_stop.send(());
    if let Some(t) = discovery_task {
        let _ = t.await;
    }
    let _ = rtsp_stop.send(());
    if let Some(t) = rtsp_task {
        let _ = t.await;
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    supervisor.shutdown();
    audio.shutdown();
    Ok(())
}

/// ONVIF (docs/rtsp.md): only with RTSP, whose URL it hands out. Returns
/// the WS-Discovery socket when discovery is on and the port could be bound
/// (without it, clients that are given the address still work).
fn start_onvif(
    cfg: &Config,
    state: &Arc<AppState>,
    listeners: &[Listener],
) -> Option<tokio::net::UdpSocket> {
    // Until ONVIF is on, the viewer password itself is not kept.
    state.auth.keep_viewer_secret(false);
    if !cfg.onvif.enabled {
        return None;
    }
    if state.rtsp_port.get().is_none() {
        tracing::info!("ONVIF off: it needs RTSP (`rtsp = [\"0.0.0.0:8554\"]`)");
        return None;
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| {
                s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_owned()
            })
            .filter(|s| !s.is_empty())
    };
    let hostname = read("/proc/sys/kernel/hostname").unwrap_or_else(|| "pinhole".into());
    // Stable and unique per card (docs/machine-id.md); hashed, never shown.
    let id = read("/etc/machine-id").unwrap_or_else(|| hostname.clone());
    let device = pinhole_onvif::DeviceInfo {
        manufacturer: "pinhole".into(),
        model: "pinhole camera".into(),
        firmware: env!("CARGO_PKG_VERSION").into(),
        serial: pinhole_server::onvif::serial_of(id.as_bytes()),
        hardware: read("/proc/device-tree/model").unwrap_or_else(|| std::env::consts::ARCH.into()),
    };
    let http_port = match cfg.onvif.http_port {
        0 => listeners
            .iter()
            .find_map(|l| match l.local_addr() {
                ListenAddr::Tcp(a) => Some(a.port()),
                _ => None,
            })
            .unwrap_or(80),
        p => p,
    };
    let onvif = pinhole_server::onvif::Onvif::new(
        device,
        hostname,
        id.as_bytes(),
        http_port,
        state.clock.wall_us(),
    );
    let _ = state.onvif.set(onvif);
    state.auth.keep_viewer_secret(true);
    tracing::info!("ONVIF on {}", pinhole_server::onvif::DEVICE_PATH);
    // Discovery only for a camera the LAN can reach: RTSP on loopback alone
    // (`cargo run`, tests) announces nothing and keeps off port 3702.
    let lan_rtsp = cfg.rtsp.iter().any(|a| {
        a.parse::<std::net::SocketAddr>()
            .is_ok_and(|s| !s.ip().is_loopback())
    });
    if !cfg.onvif.discovery || !lan_rtsp {
        return None;
    }
    match pinhole_server::onvif::bind_discovery(pinhole_onvif::discovery::PORT) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "WS-Discovery off (UDP {}): {e}",
                pinhole_onvif::discovery::PORT
            );
            None
        }
    }
}

/// The HLS segment directory: the configured one, or a fresh temporary one
/// under $XDG_RUNTIME_DIR (else /tmp) that is removed when dropped.
struct HlsDir {
    path: std::path::PathBuf,
    temporary: bool,
}

impl HlsDir {
    fn new(cfg: &config::HlsConfig) -> Result<Option<HlsDir>, HlsDirError> {
        if !cfg.enabled {
            return Ok(None);
        }
        if let Some(dir) = &cfg.dir {
            return Ok(Some(HlsDir {
                path: dir.clone(),
                temporary: false,
            }));
        }
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        remove_stale_hls_dirs(&base);
        let path = base.join(format!("pinhole-hls-{}", std::process::id()));
        if let Err(source) = std::fs::create_dir_all(&path) {
            return Err(HlsDirError { path, source });
        }
        tracing::info!(dir = %path.display(), "HLS segments in a temporary directory");
        Ok(Some(HlsDir {
            path,
            temporary: true,
        }))
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Temporary HLS dirs of daemons that died without cleaning up (SIGKILL,
/// abort): `pinhole-hls-<pid>` whose process is gone.
fn remove_stale_hls_dirs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pinhole-hls-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for HlsDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

/// glibc gives every thread that allocates its own arena, and each keeps
/// freed memory for reuse: ~0.8 MB of idle RSS here for nothing, since our
/// allocation rate is a few per frame. One arena; must run before any thread
/// is spawned.
///
/// And a fixed mmap threshold: glibc raises it to the size of any mmapped
/// block that is freed, so after the first Argon2 hash (19 MiB) every later
/// one came from the heap and ~19.5 MB stayed behind per login (a login
/// flood without credentials pushed RSS towards `MemoryMax`). Setting it
/// turns that adaptation off: big blocks are mmapped and returned on free.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
