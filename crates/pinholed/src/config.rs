//! Configuration: a TOML file, overridden by command-line flags.
//!
//! Every field has a default that runs anywhere: the test pattern on
//! 127.0.0.1:8080, no camera and no root needed.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

use pinhole_server::ListenAddr;

#[derive(Parser, Debug, Default)]
#[command(
    name = "pinholed",
    version,
    about = "pinhole: a live camera for many browsers at once",
    long_about = "pinholed captures video (a camera, a pipe, or its built-in test pattern), \
                  and serves it live over WebSocket (H.264 and fMP4), progressive MP4, \
                  JPEG snapshots and MJPEG, with a web UI at /.\n\n\
                  Flags override the config file; the config file overrides the defaults."
)]
pub struct Cli {
    /// Address to listen on: IP:PORT for TCP, or unix:/path for a Unix socket.
    /// Repeat for several. [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<ListenAddr>,

    /// RTSP listener (rtsp://HOST:PORT/stream), IP:PORT (port 0: any free
    /// one). Repeat for several; `off` for none. [default: none; the image
    /// uses 0.0.0.0:8554]
    #[arg(long, value_name = "ADDR")]
    pub rtsp: Vec<String>,

    /// Video source: test | pipe:<file, - for stdin, or shell command> |
    /// v4l2:<device> | libcamera[:<id>] | auto. [default: test]
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,

    /// Audio source: none | auto (the microphone of the USB webcam that
    /// runs, if it has one) | test (a tone with a click every second, for
    /// the test pattern) | pipe:<command writing raw s16le PCM> |
    /// alsa:<device>. [default: none]
    #[arg(long, value_name = "SOURCE")]
    pub audio: Option<String>,

    /// TOML configuration file (see docs/config.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// System TOML file read before --config (image-provided settings such
    /// as [ota]); keys in --config override it, table by table.
    #[arg(long, value_name = "FILE")]
    pub system_config: Option<PathBuf>,

    /// Test pattern / encoder width in pixels. [default: 1280]
    #[arg(long)]
    pub width: Option<u32>,

    /// Test pattern / encoder height in pixels. [default: 720]
    #[arg(long)]
    pub height: Option<u32>,

    /// Frames per second of the test pattern; pacing rate of a file pipe
    /// whose stream does not state one. [default: 30]
    #[arg(long)]
    pub fps: Option<u32>,

    /// Encoder bitrate in bit/s. [default: 2000000]
    #[arg(long)]
    pub bitrate: Option<u32>,

    /// Frames between keyframes. [default: two seconds' worth]
    #[arg(long, value_name = "FRAMES")]
    pub keyframe_interval: Option<u32>,

    /// Play a pipe file once instead of looping it.
    #[arg(long)]
    pub no_loop: bool,

    /// MJPEG frames per second on /mjpeg. [default: 5]
    #[arg(long)]
    pub mjpeg_fps: Option<f64>,

    /// JPEG quality (1-100) for /snapshot.jpg and /mjpeg. [default: 80]
    #[arg(long)]
    pub jpeg_quality: Option<u8>,

    /// Frames a viewer may fall behind before it skips to a keyframe. [default: 30]
    #[arg(long, value_name = "FRAMES")]
    pub max_lag: Option<u64>,

    /// Serve the web UI from this directory instead of the built-in copy.
    #[arg(long, value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,

    /// Write LL-HLS segments and playlists into DIR (a tmpfs; nginx may serve
    /// it). [default: a fresh temporary directory, removed at exit]
    #[arg(long, value_name = "DIR")]
    pub hls_dir: Option<PathBuf>,

    /// The WebRTC (WHEP) UDP address, or `off`. [default: 0.0.0.0:8189]
    #[arg(long, value_name = "ADDR")]
    pub webrtc_listen: Option<String>,
    /// The WebRTC ICE-TCP fallback's TCP address, or `off`. [default: off]
    #[arg(long, value_name = "ADDR")]
    pub webrtc_tcp_listen: Option<String>,
    /// Push the stream to a media server: rtmp://host[:port]/app/stream-key.
    /// Repeat for several; replaces the config file's [[push]] entries.
    /// The command line is visible to other local users: prefer the file.
    #[arg(long, value_name = "URL")]
    pub push: Vec<String>,

    /// Keep the admin password (admin.json) here. [default:
    /// $XDG_STATE_HOME/pinhole, else ~/.local/state/pinhole]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The config file. Unknown keys are an error, so typos are caught.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: Vec<String>,
    /// RTSP listeners, IP:PORT (docs/rtsp.md); empty: no RTSP.
    pub rtsp: Vec<String>,
    /// `[rtsp_server]`: the RTSP server's limits (the listeners are `rtsp`,
    /// a list kept apart so `rtsp = []` turns RTSP off).
    pub rtsp_server: RtspServerConfig,
    pub source: String,
    pub video: VideoConfig,
    pub pipe: PipeConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub ota: OtaConfig,
    pub security: crate::security_config::SecuritySection,
    pub camera: CameraConfig,
    pub webrtc: WebrtcConfig,
    /// `[[push]]` entries: media servers to push the stream to.
    pub push: Vec<PushConfig>,
    pub audio: AudioConfig,
    pub onvif: OnvifConfig,
}

/// `[rtsp_server]`: limits of the RTSP server (docs/rtsp.md, *Limits*).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtspServerConfig {
    /// Control connections in all; more are answered 503 and closed.
    pub max_connections: usize,
    /// … and per client address.
    pub max_connections_per_ip: usize,
    /// Sessions (set up, playing or not); a SETUP beyond gets 453.
    pub max_sessions: usize,
    /// Announced in `Session: …;timeout=`; a UDP or idle session ends
    /// after this long without a request.
    pub session_timeout_s: u32,
    /// Multicast group (IPv4, e.g. `239.255.42.42`) offered to clients that
    /// ask for `RTP/AVP;multicast`; empty: no multicast.
    pub multicast_group: String,
    /// Track N's RTP goes to `multicast_port + 2N`, its RTCP to the next.
    pub multicast_port: u16,
    /// Routers the group's packets may cross (1: this LAN only).
    pub multicast_ttl: u8,
}

impl Default for RtspServerConfig {
    fn default() -> Self {
        let d = pinhole_server::rtsp::RtspConfig::default();
        RtspServerConfig {
            max_connections: d.max_connections,
            max_connections_per_ip: d.max_connections_per_ip,
            max_sessions: d.max_sessions,
            session_timeout_s: d.session_timeout_secs,
            multicast_group: String::new(),
            multicast_port: 5004,
            multicast_ttl: 1,
        }
    }
}

impl RtspServerConfig {
    /// The server's settings (validated first).
    pub fn to_server(&self) -> pinhole_server::rtsp::RtspConfig {
        pinhole_server::rtsp::RtspConfig {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_sessions: self.max_sessions,
            session_timeout_secs: self.session_timeout_s,
            multicast: self.multicast_group.parse().ok().map(|group| {
                pinhole_server::rtsp::Multicast {
                    group,
                    port: self.multicast_port,
                    ttl: self.multicast_ttl,
                }
            }),
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let range = |field, v: usize| {
            if (1..=100_000).contains(&v) {
                Ok(())
            } else {
                Err((field, format!("{v} (allowed: 1-100000)")))
            }
        };
        range("rtsp_server.max_connections", self.max_connections)?;
        range(
            "rtsp_server.max_connections_per_ip",
            self.max_connections_per_ip,
        )?;
        range("rtsp_server.max_sessions", self.max_sessions)?;
        // Clients keep alive every timeout/2 or so (ffmpeg: 30 s of 60).
        if !(10..=3600).contains(&self.session_timeout_s) {
            return Err((
                "rtsp_server.session_timeout_s",
                format!("{} (allowed: 10-3600)", self.session_timeout_s),
            ));
        }
        if !self.multicast_group.is_empty() {
            match self.multicast_group.parse::<std::net::Ipv4Addr>() {
                Ok(g) if g.is_multicast() => {}
                _ => {
                    return Err((
                        "rtsp_server.multicast_group",
                        format!(
                            "'{}' is not an IPv4 multicast address (224.0.0.0/4)",
                            self.multicast_group
                        ),
                    ))
                }
            }
            // Even (RFC 3550), and room for two tracks' pairs.
            if self.multicast_port < 1024
                || !self.multicast_port.is_multiple_of(2)
                || self.multicast_port > 65530
            {
                return Err((
                    "rtsp_server.multicast_port",
                    format!("{} (allowed: even, 1024-65530)", self.multicast_port),
                ));
            }
            if self.multicast_ttl == 0 {
                return Err(("rtsp_server.multicast_ttl", "0 (allowed: 1-255)".into()));
            }
        }
        Ok(())
    }
}

/// `[onvif]`: ONVIF Profile S, minimal (docs/rtsp.md). Served only with
/// RTSP on (it hands out the RTSP URL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OnvifConfig {
    /// `/onvif/device_service` and `/onvif/media_service`.
    pub enabled: bool,
    /// Answer WS-Discovery probes (UDP 3702, multicast 239.255.255.250).
    pub discovery: bool,
    /// The HTTP port discovery advertises (the image's nginx: 80);
    /// 0: the first TCP `listen` port.
    pub http_port: u16,
}

impl Default for OnvifConfig {
    fn default() -> Self {
        OnvifConfig {
            enabled: true,
            discovery: true,
            http_port: 0,
        }
    }
}

/// One push target (docs/config.md). The URL holds the stream key: its
/// `Debug` shows it redacted.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    pub url: String,
    /// A CA certificate (PEM file) trusted for this target's TLS
    /// (`rtmps://`, `whip+https://`) besides the built-in roots: for a
    /// server with a private or self-signed certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = pinhole_push::PushUrl::parse(&self.url)
            .map(|u| u.redacted())
            .unwrap_or_else(|_| "(invalid)".into());
        f.debug_struct("PushConfig")
            .field("url", &url)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

/// Sound beside the picture: docs/audio.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// `none`, `test`, `pipe:<command>` (raw s16le PCM on stdout at `rate`
    /// and `channels`), `alsa:<device>`.
    pub source: String,
    /// Input sample rate, Hz: 8000, 12000, 16000, 24000 or 48000.
    pub rate: u32,
    /// 1 or 2.
    pub channels: u8,
    /// Opus bitrate, bit/s.
    pub bitrate: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        let d = pinhole_capture::audio::AudioConfig::default();
        AudioConfig {
            source: "none".into(),
            rate: d.rate,
            channels: d.channels,
            bitrate: d.bitrate,
        }
    }
}

impl AudioConfig {
    pub fn capture(&self) -> pinhole_capture::audio::AudioConfig {
        pinhole_capture::audio::AudioConfig {
            rate: self.rate,
            channels: self.channels,
            bitrate: self.bitrate,
        }
    }
}

/// Camera sources (`v4l2:…`, `auto`): docs/cameras.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// H.264 encoder for raw/MJPEG cameras: `software` (OpenH264) or
    /// `m2m:/dev/videoN` (a V4L2 stateful encoder, e.g. Raspberry Pi OS's
    /// `/dev/video11`).
    pub encoder: String,
    /// No frame for this long: the camera is closed and reopened.
    pub stall_timeout_ms: u32,
    /// The camera's own controls by slug (`brightness = 10`), set when the
    /// daemon starts; `PUT /api/camera` writes them here.
    pub controls: std::collections::BTreeMap<String, i64>,
    /// A libcamera camera's controls by libcamera's name (`Brightness =
    /// 0.25`, `AeEnable = false`), sent to every helper that starts; kept
    /// apart from the V4L2 `controls` so the two never collide.
    pub libcamera_controls: std::collections::BTreeMap<String, LibcameraControl>,
    /// The libcamera helper (`libcamera[:id]`, `auto`); unset: next to
    /// pinholed, then /usr/libexec/pinhole, /usr/lib/pinhole.
    pub libcamera_helper: Option<PathBuf>,
    /// `auto` with no camera asks the libcamera helper again when a
    /// `/dev/media*` node appears or changes, and at least this often
    /// (seconds; 0: only on such changes).
    pub libcamera_rescan_s: u32,
}

/// One saved libcamera control value, as TOML has it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LibcameraControl {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            encoder: "software".into(),
            stall_timeout_ms: 3000,
            controls: Default::default(),
            libcamera_controls: Default::default(),
            libcamera_helper: None,
            libcamera_rescan_s: 60,
        }
    }
}

/// Over-the-air updates. Off unless the image turns it on: a developer
/// machine has no A/B slots to write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtaConfig {
    pub enabled: bool,
    /// This board's compatible string (`rpi4`, `qemu-arm64`).
    pub board: String,
    /// Files with trusted Ed25519 public keys (`pinhole-bundle keygen` output).
    pub public_keys: Vec<PathBuf>,
    /// `rpi` (autoboot.txt + tryboot) or `file` (slot.txt/tryboot.txt read by U-Boot).
    pub boot: String,
    /// Where the bootsel partition is mounted (read-write).
    pub bootsel_dir: PathBuf,
    /// Directory holding the slot partitions by name (boot_a, root_a, …).
    pub slots_dir: PathBuf,
    /// The running system's version (a file holding e.g. `1.2.0`).
    pub version_file: PathBuf,
    pub allow_downgrade: bool,
    /// Seconds a trial boot has to prove healthy before it rolls back.
    pub health_timeout_s: u64,
    /// false: record reboots instead of rebooting (tests).
    pub reboot: bool,
    /// Kernel command line (`file` backend) and device-tree dir (`rpi`).
    pub cmdline: PathBuf,
    pub device_tree_dir: PathBuf,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            enabled: false,
            board: String::new(),
            public_keys: vec![PathBuf::from("/usr/share/pinhole/keys/update.pub")],
            boot: "file".into(),
            bootsel_dir: PathBuf::from("/boot/bootsel"),
            slots_dir: PathBuf::from("/dev/disk/by-partlabel"),
            version_file: PathBuf::from("/usr/lib/pinhole/version"),
            allow_downgrade: false,
            health_timeout_s: 180,
            reboot: true,
            cmdline: PathBuf::from("/proc/cmdline"),
            device_tree_dir: PathBuf::from("/proc/device-tree/chosen/bootloader"),
        }
    }
}

/// `[webrtc]`: WHEP playback (docs/webrtc.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    pub enabled: bool,
    /// The one UDP address every session shares (one firewall hole).
    pub listen: String,
    /// ICE-TCP (passive) on this TCP address, a fallback where UDP is
    /// blocked; empty: off. Port 0: the UDP port's number.
    pub tcp_listen: String,
    /// Offer every non-loopback interface address as a host candidate.
    pub lan_candidates: bool,
    /// More addresses to offer: `"203.0.113.7"` (the UDP port) or
    /// `"203.0.113.7:18189"` (a forwarded port).
    pub extra_candidates: Vec<String>,
    /// STUN/TURN servers handed to clients, for viewing from outside.
    pub ice_servers: Vec<IceServerConfig>,
    /// Sessions at once; more get 503.
    pub max_sessions: usize,
    /// The most playout delay asked of browsers, ms (RTP playout-delay
    /// extension, min 0): 0 shows each frame as soon as it is decoded; -1
    /// asks nothing (the browser's own smoothing, 10–20 ms more).
    pub playout_delay_ms: i32,
    /// NACK resend history per session, KiB (512: ~1 s at 4 Mbit/s).
    pub resend_buffer_kib: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            enabled: true,
            listen: "0.0.0.0:8189".into(),
            tcp_listen: String::new(),
            lan_candidates: true,
            extra_candidates: Vec::new(),
            ice_servers: Vec::new(),
            max_sessions: 20,
            playout_delay_ms: 0,
            resend_buffer_kib: pinhole_webrtc::session::DEFAULT_RESEND_BUFFER_BYTES / 1024,
        }
    }
}

impl WebrtcConfig {
    /// The endpoint's settings; errors name the bad key.
    pub fn to_endpoint(&self) -> Result<pinhole_webrtc::EndpointConfig, String> {
        let listen = self
            .listen
            .parse()
            .map_err(|e| format!("[webrtc] listen '{}': {e}", self.listen))?;
        let mut extra = Vec::new();
        for c in &self.extra_candidates {
            let addr = c
                .parse::<std::net::SocketAddr>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(|ip| (ip, 0).into()))
                .map_err(|_| {
                    format!("[webrtc] extra_candidates '{c}': use an IP address, with :port if forwarded")
                })?;
            extra.push(addr);
        }
        let tcp_listen = match self.tcp_listen.trim() {
            "" | "off" => None,
            a => Some(
                a.parse()
                    .map_err(|e| format!("[webrtc] tcp_listen '{a}': {e}"))?,
            ),
        };
        // The extension carries 10 ms units in 12 bits.
        let playout_delay_max = match self.playout_delay_ms {
            -1 => None,
            ms @ 0..=40_950 => Some(std::time::Duration::from_millis(ms as u64)),
            ms => {
                return Err(format!(
                    "[webrtc] playout_delay_ms {ms}: use 0 to 40950 (ms), or -1 to ask nothing"
                ))
            }
        };
        if self.resend_buffer_kib < 16 || self.resend_buffer_kib > 65_536 {
            return Err(format!(
                "[webrtc] resend_buffer_kib {}: use 16 to 65536",
                self.resend_buffer_kib
            ));
        }
        Ok(pinhole_webrtc::EndpointConfig {
            listen,
            tcp_listen,
            lan_candidates: self.lan_candidates,
            extra_candidates: extra,
            ice_servers: self
                .ice_servers
                .iter()
                .map(|s| pinhole_webrtc::IceServer {
                    url: s.url.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
            max_sessions: self.max_sessions,
            // Set by the daemon from [security] accept_from.
            accept_from: Default::default(),
            playout_delay_max,
            resend_buffer: self.resend_buffer_kib * 1024,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    pub enabled: bool,
    /// Segment directory; unset: a temporary directory removed at exit.
    pub dir: Option<PathBuf>,
    /// LL-HLS part target (maximum part duration), milliseconds.
    pub part_target_ms: u32,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            enabled: true,
            dir: None,
            part_target_ms: 200,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    /// 0 = two seconds' worth of frames: Apple's HLS authoring guide asks
    /// for it, and the encoder's IDR spike then touches 1 frame in 60
    /// (bench/README.md, "Steadiness").
    pub keyframe_interval: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipeConfig {
    /// Loop a file source at its end.
    #[serde(rename = "loop")]
    pub looped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub mjpeg_fps: f64,
    pub jpeg_quality: u8,
    pub max_lag_frames: u64,
    pub ui_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec!["127.0.0.1:8080".into()],
            // Off unless asked for: a development machine offers nothing
            // beyond its loopback HTTP port, and daemons started side by
            // side (tests, several helpers) cannot all own 8554.
            rtsp: Vec::new(),
            rtsp_server: RtspServerConfig::default(),
            source: "test".into(),
            video: VideoConfig::default(),
            pipe: PipeConfig::default(),
            http: HttpConfig::default(),
            hls: HlsConfig::default(),
            ota: OtaConfig::default(),
            security: Default::default(),
            camera: CameraConfig::default(),
            webrtc: WebrtcConfig::default(),
            push: Vec::new(),
            audio: AudioConfig::default(),
            onvif: OnvifConfig::default(),
        }
    }
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_000_000,
            keyframe_interval: 0,
        }
    }
}

impl Default for PipeConfig {
    fn default() -> Self {
        PipeConfig { looped: true }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            mjpeg_fps: 5.0,
            jpeg_quality: 80,
            max_lag_frames: 30,
            ui_dir: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Config {
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Parses the system file, then `text` over it: tables merge key by key,
    /// any other value in `text` replaces the system one.
    pub fn from_layers(
        system: Option<(&str, &Path)>,
        text: &str,
        path: &Path,
    ) -> Result<Config, ConfigError> {
        let parse = |t: &str, p: &Path| {
            toml::from_str::<toml::Table>(t).map_err(|e| ConfigError::Parse {
                path: p.to_owned(),
                source: Box::new(e),
            })
        };
        fn merge(base: &mut toml::Table, top: toml::Table) {
            for (k, v) in top {
                match (base.get_mut(&k), v) {
                    (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
                    (_, v) => {
                        base.insert(k, v);
                    }
                }
            }
        }
        let mut table = match system {
            Some((t, p)) => {
                // checked on its own first, so an error names the right file
                Config::from_toml(t, p)?;
                parse(t, p)?
            }
            None => toml::Table::new(),
        };
        Config::from_toml(text, path)?;
        merge(&mut table, parse(text, path)?);
        Config::from_toml(&toml::to_string(&table).unwrap_or_default(), path)
    }

    /// Loads the files (if any), applies the flags, and validates the result.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })
        };
        let system = match &cli.system_config {
            Some(p) => Some((read(p)?, p.clone())),
            None => None,
        };
        let user = match &cli.config {
            Some(p) => Some((read(p)?, p.clone())),
            None => None,
        };
        let mut cfg = match (&system, &user) {
            (None, None) => Config::default(),
            (None, Some((t, p))) => Config::from_toml(t, p)?,
            (Some((st, sp)), u) => {
                let (t, p) = match u {
                    Some((t, p)) => (t.as_str(), p.as_path()),
                    None => ("", sp.as_path()),
                };
                Config::from_layers(Some((st, sp)), t, p)?
            }
        };
        if !cli.listen.is_empty() {
            cfg.listen = cli.listen.iter().map(|l| l.to_string()).collect();
        }
        if !cli.rtsp.is_empty() {
            cfg.rtsp = cli.rtsp.iter().filter(|a| *a != "off").cloned().collect();
        }
        if let Some(s) = &cli.source {
            cfg.source = s.clone();
        }
        if let Some(a) = &cli.audio {
            cfg.audio.source = a.clone();
        }
        let v = &mut cfg.video;
        v.width = cli.width.unwrap_or(v.width);
        v.height = cli.height.unwrap_or(v.height);
        v.fps = cli.fps.unwrap_or(v.fps);
        v.bitrate = cli.bitrate.unwrap_or(v.bitrate);
        v.keyframe_interval = cli.keyframe_interval.unwrap_or(v.keyframe_interval);
        if cli.no_loop {
            cfg.pipe.looped = false;
        }
        let h = &mut cfg.http;
        h.mjpeg_fps = cli.mjpeg_fps.unwrap_or(h.mjpeg_fps);
        h.jpeg_quality = cli.jpeg_quality.unwrap_or(h.jpeg_quality);
        h.max_lag_frames = cli.max_lag.unwrap_or(h.max_lag_frames);
        if cli.ui_dir.is_some() {
            h.ui_dir = cli.ui_dir.clone();
        }
        if cli.hls_dir.is_some() {
            cfg.hls.dir = cli.hls_dir.clone();
        }
        if cli.data_dir.is_some() {
            cfg.security.data_dir = cli.data_dir.clone();
        }
        match cli.webrtc_listen.as_deref() {
            Some("off") => cfg.webrtc.enabled = false,
            Some(a) => cfg.webrtc.listen = a.to_owned(),
            None => {}
        }
        if let Some(a) = cli.webrtc_tcp_listen.as_deref() {
            cfg.webrtc.tcp_listen = a.to_owned();
        }
        if !cli.push.is_empty() {
            cfg.push = cli
                .push
                .iter()
                .map(|url| PushConfig {
                    url: url.clone(),
                    tls_ca: None,
                })
                .collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if self.listen.is_empty() {
            return bad("listen", "at least one address is needed".into());
        }
        for l in &self.listen {
            if let Err(e) = l.parse::<ListenAddr>() {
                return bad("listen", e);
            }
        }
        for p in &self.push {
            // The error says what is wrong, never the key.
            if let Err(e) = pinhole_push::PushUrl::parse(&p.url) {
                return bad("push.url", e.to_string());
            }
            if let Some(ca) = &p.tls_ca {
                if !ca.is_absolute() {
                    return bad("push.tls_ca", "an absolute path to a PEM file".into());
                }
            }
        }
        // `auto` (the camera's own microphone) is resolved by the daemon.
        if self.audio.source != "auto" {
            if let Err(e) = pinhole_capture::audio::parse_spec(&self.audio.source) {
                return bad("audio.source", e);
            }
        }
        if let Err(e) = self.audio.capture().validate() {
            return bad("audio", e.to_string());
        }
        for a in &self.rtsp {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return bad("rtsp", format!("'{a}' is not IP:PORT"));
            }
        }
        if let Err((field, reason)) = self.rtsp_server.validate() {
            return bad(field, reason);
        }
        let v = &self.video;
        if !(16..=3840).contains(&v.width) || !v.width.is_multiple_of(2) {
            return bad(
                "video.width",
                format!("{} (allowed: even, 16-3840)", v.width),
            );
        }
        if !(16..=2160).contains(&v.height) || !v.height.is_multiple_of(2) {
            return bad(
                "video.height",
                format!("{} (allowed: even, 16-2160)", v.height),
            );
        }
        if !(1..=120).contains(&v.fps) {
            return bad("video.fps", format!("{} (allowed: 1-120)", v.fps));
        }
        if !(50_000..=50_000_000).contains(&v.bitrate) {
            return bad(
                "video.bitrate",
                format!("{} (allowed: 50000-50000000 bit/s)", v.bitrate),
            );
        }
        if v.keyframe_interval > 600 {
            return bad(
                "video.keyframe_interval",
                format!(
                    "{} (allowed: 0 = 1 s, or 1-600 frames)",
                    v.keyframe_interval
                ),
            );
        }
        let h = &self.http;
        if !(0.1..=60.0).contains(&h.mjpeg_fps) {
            return bad(
                "http.mjpeg_fps",
                format!("{} (allowed: 0.1-60)", h.mjpeg_fps),
            );
        }
        if !(1..=100).contains(&h.jpeg_quality) {
            return bad(
                "http.jpeg_quality",
                format!("{} (allowed: 1-100)", h.jpeg_quality),
            );
        }
        if !(2..=3600).contains(&h.max_lag_frames) {
            return bad(
                "http.max_lag_frames",
                format!("{} (allowed: 2-3600)", h.max_lag_frames),
            );
        }
        if !(20..=5000).contains(&self.hls.part_target_ms) {
            return bad(
                "hls.part_target_ms",
                format!("{} (allowed: 20-5000)", self.hls.part_target_ms),
            );
        }
        if let Err((field, reason)) = self.security.validate() {
            return bad(field, reason);
        }
        let enc = &self.camera.encoder;
        if enc != "software" && !enc.strip_prefix("m2m:").is_some_and(|p| p.starts_with('/')) {
            return bad(
                "camera.encoder",
                format!("{enc:?} (allowed: \"software\" or \"m2m:/dev/videoN\")"),
            );
        }
        if self.camera.libcamera_rescan_s > 86_400 {
            return bad(
                "camera.libcamera_rescan_s",
                format!("{} (allowed: 0-86400)", self.camera.libcamera_rescan_s),
            );
        }
        if !(500..=60_000).contains(&self.camera.stall_timeout_ms) {
            return bad(
                "camera.stall_timeout_ms",
                format!("{} (allowed: 500-60000)", self.camera.stall_timeout_ms),
            );
        }
        Ok(())
    }

    pub fn keyframe_interval(&self) -> u32 {
        match self.video.keyframe_interval {
            0 => self.video.fps.saturating_mul(2),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_run_anywhere() {
        let cfg = Config::load(&Cli::default()).expect("defaults");
        assert_eq!(cfg.listen, vec!["127.0.0.1:8080"]);
        assert_eq!(cfg.source, "test");
        assert_eq!(cfg.keyframe_interval(), 60);
    }

    #[test]
    fn webrtc_playout_delay_and_resend_buffer() {
        let d = WebrtcConfig::default().to_endpoint().expect("defaults");
        assert_eq!(d.playout_delay_max, Some(std::time::Duration::ZERO));
        assert_eq!(d.resend_buffer, 512 * 1024);
        let cfg = Config::from_toml(
            "[webrtc]\nplayout_delay_ms = -1\nresend_buffer_kib = 128\n",
            Path::new("w.toml"),
        )
        .expect("parse");
        let e = cfg.webrtc.to_endpoint().expect("valid");
        assert_eq!(e.playout_delay_max, None);
        assert_eq!(e.resend_buffer, 128 * 1024);
        let bad = |toml: &str| {
            Config::from_toml(toml, Path::new("w.toml"))
                .expect("parse")
                .webrtc
                .to_endpoint()
                .unwrap_err()
        };
        assert!(bad("[webrtc]\nplayout_delay_ms = -2\n").contains("playout_delay_ms"));
        assert!(bad("[webrtc]\nplayout_delay_ms = 50000\n").contains("playout_delay_ms"));
        assert!(bad("[webrtc]\nresend_buffer_kib = 1\n").contains("resend_buffer_kib"));
    }

    #[test]
    fn file_then_flags() {
        let cfg = Config::from_toml(
            "source = \"pipe:-\"\n[video]\nfps = 25\nbitrate = 1000000\n",
            Path::new("x.toml"),
        )
        .expect("parse");
        assert_eq!(cfg.video.fps, 25);
        assert_eq!(cfg.video.width, 1280, "unset keys keep defaults");
        assert_eq!(cfg.source, "pipe:-");
    }

    #[test]
    fn push_targets_from_the_file_and_the_flags() {
        let cfg = Config::from_toml(
            "[[push]]\nurl = \"rtmp://a.example/live/key-one-0123456789\"\n\
             [[push]]\nurl = \"rtmp://b.example:1936/app/k2\"\n",
            Path::new("p.toml"),
        )
        .expect("parse");
        assert_eq!(cfg.push.len(), 2);
        cfg.validate().expect("valid");
        // Debug (what a log of the config would show) hides the key.
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("key-one-01234") && dbg.contains("***789"),
            "{dbg}"
        );
        // Flags replace the file's list.
        let cli = Cli {
            push: vec!["rtmp://c.example/live/x".into()],
            ..Cli::default()
        };
        let cfg = Config::load(&cli).expect("load");
        assert_eq!(
            cfg.push,
            vec![PushConfig {
                url: "rtmp://c.example/live/x".into(),
                tls_ca: None,
            }]
        );
        // A bad URL is named, without its key.
        let mut bad = Config::default();
        bad.push.push(PushConfig {
            url: "rtmpx://h/live/sekrit".into(),
            tls_ca: None,
        });
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("push.url") && !e.contains("sekrit"), "{e}");
        let mut rel = Config::default();
        rel.push.push(PushConfig {
            url: "rtmps://h/live/k".into(),
            tls_ca: Some("ca.pem".into()),
        });
        let e = rel.validate().unwrap_err().to_string();
        assert!(e.contains("push.tls_ca"), "{e}");
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let e = Config::from_toml("[video]\nfsp = 25\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("fsp"), "{e}");
        let mut cfg = Config::default();
        cfg.video.width = 1281;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("video.width") && e.contains("1281"), "{e}");
        cfg = Config::default();
        cfg.listen = vec!["nowhere".into()];
        assert!(cfg.validate().unwrap_err().to_string().contains("listen"));
    }

    #[test]
    fn hls_section() {
        let cfg = Config::default();
        assert!(cfg.hls.enabled);
        assert_eq!(cfg.hls.part_target_ms, 200);
        let cfg = Config::from_toml(
            "[hls]\ndir = \"/run/pinhole/hls\"\npart_target_ms = 250\n",
            Path::new("c.toml"),
        )
        .expect("parse");
        assert_eq!(cfg.hls.dir.as_deref(), Some(Path::new("/run/pinhole/hls")));
        let mut cfg = Config::default();
        cfg.hls.part_target_ms = 5;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hls.part_target_ms"));
    }

    #[test]
    fn rtsp_from_the_image_and_turned_off_by_the_user() {
        // What image/lib/ota.sh writes, then the user's file.
        let sys = "rtsp = [\"0.0.0.0:8554\"]\n[ota]\nenabled = true\n";
        let layers = |user: &str| {
            Config::from_layers(
                Some((sys, Path::new("sys.toml"))),
                user,
                Path::new("u.toml"),
            )
            .expect("layers")
        };
        assert_eq!(layers("").rtsp, vec!["0.0.0.0:8554"]);
        assert!(layers("rtsp = []\n").rtsp.is_empty());
        assert!(Config::default().rtsp.is_empty(), "off for cargo run");
        let cfg = Config {
            rtsp: vec!["nowhere:8554".into()],
            ..Config::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("rtsp"));
    }

    #[test]
    fn rtsp_limits_beside_the_listeners() {
        let sys = "rtsp = [\"0.0.0.0:8554\"]\n";
        let cfg = Config::from_layers(
            Some((sys, Path::new("sys.toml"))),
            "[rtsp_server]\nmax_sessions = 8\nsession_timeout_s = 30\n",
            Path::new("u.toml"),
        )
        .expect("layers");
        assert_eq!(cfg.rtsp, vec!["0.0.0.0:8554"], "the listeners stay");
        let s = cfg.rtsp_server.to_server();
        assert_eq!((s.max_sessions, s.session_timeout_secs), (8, 30));
        let d = pinhole_server::rtsp::RtspConfig::default();
        assert_eq!(s.max_connections, d.max_connections, "the rest default");
        assert_eq!(s.max_connections_per_ip, d.max_connections_per_ip);
        let mut bad = Config::default();
        bad.rtsp_server.max_connections_per_ip = 0;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("rtsp_server.max_connections_per_ip"), "{e}");
        bad = Config::default();
        bad.rtsp_server.session_timeout_s = 5;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("rtsp_server.session_timeout_s"), "{e}");
        // Multicast: off by default; a group must be IPv4 multicast, the
        // port even.
        assert!(Config::default()
            .rtsp_server
            .to_server()
            .multicast
            .is_none());
        let mut m = Config::default();
        m.rtsp_server.multicast_group = "239.255.42.42".into();
        m.validate().expect("valid");
        let g = m.rtsp_server.to_server().multicast.expect("on");
        assert_eq!((g.port, g.ttl), (5004, 1));
        m.rtsp_server.multicast_port = 5005;
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("rtsp_server.multicast_port"), "{e}");
        m.rtsp_server.multicast_port = 5004;
        m.rtsp_server.multicast_group = "192.168.1.9".into();
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("rtsp_server.multicast_group"), "{e}");
    }

    #[test]
    fn system_config_then_user_config() {
        let sys = "[ota]\nenabled = true\nboard = \"qemu-arm64\"\nhealth_timeout_s = 60\n[video]\nfps = 10\n";
        let user = "[ota]\nhealth_timeout_s = 90\n[video]\nwidth = 640\n";
        let cfg = Config::from_layers(
            Some((sys, Path::new("/usr/share/pinhole/system.toml"))),
            user,
            Path::new("/data/pinhole/config.toml"),
        )
        .expect("layers");
        assert!(cfg.ota.enabled, "system keys stay");
        assert_eq!(cfg.ota.board, "qemu-arm64");
        assert_eq!(cfg.ota.health_timeout_s, 90, "user file wins per key");
        assert_eq!((cfg.video.fps, cfg.video.width), (10, 640), "tables merge");
        let e = Config::from_layers(
            Some(("[ota]\nbord = 1\n", Path::new("sys.toml"))),
            "",
            Path::new("u.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sys.toml") && e.contains("bord"), "{e}");
        let e = Config::from_layers(
            Some(("", Path::new("sys.toml"))),
            "[ota]\nbord = 1\n",
            Path::new("u.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("u.toml") && e.contains("bord"), "{e}");
    }

    #[test]
    fn help_documents_every_flag() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--listen",
            "--source",
            "--config",
            "--system-config",
            "--version",
            "--bitrate",
            "--fps",
        ] {
            assert!(help.contains(flag), "--help lacks {flag}");
        }
    }
}
