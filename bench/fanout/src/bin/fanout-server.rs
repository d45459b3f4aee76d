//! Fan-out benchmark server: the real hub + `pinhole_server::serve` on
//! 127.0.0.1, fed with a pre-encoded 720p30 stream at 30 fps.
//!
//! Encoding happens once, in a child process (`fanout-server encode`), so
//! neither its CPU nor its memory is charged to the server being measured.
//! Each published access unit is `timestamp SEI (publish wallclock) + AU
//! [+ filler NAL]`, so a viewer can compute publish → receive latency.
//!
//! Run it pinned to one core (`taskset -c 0 fanout-server …`): the tokio
//! multi-thread runtime (as in `pinholed`) sizes itself from the affinity
//! mask and so gets one worker; `--current-thread` uses a current-thread
//! runtime instead.

use std::io::{BufWriter, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use pinhole_bench::{filler_nal, wall_us, EncodedAu};
use pinhole_capture::test_pattern::{TestPattern, TestPatternConfig};
use pinhole_capture::{FrameSink, Source, SourceState, StopFlag};
use pinhole_hub::{Feed, Hub, HubConfig};
use pinhole_media::h264::timestamp_sei_nal;
use pinhole_media::{AccessUnit, Clock};
use pinhole_server::{AppState, ListenAddr, Listener, ServerConfig};

#[derive(Parser, Debug)]
#[command(about = "pinhole fan-out benchmark server")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Pre-encode the test pattern and write length-prefixed AUs to stdout
    /// (used internally by the server).
    Encode(EncodeArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct EncodeArgs {
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    #[arg(long, default_value_t = 4_000_000)]
    bitrate: u32,
    #[arg(long, default_value_t = 30)]
    keyframe_interval: u32,
    /// Frames to pre-encode (a multiple of the keyframe interval).
    #[arg(long, default_value_t = 60)]
    frames: u32,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TCP port on 127.0.0.1 (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Pad each AU with a filler NAL (type 12) so the average bitrate
    /// reaches `--bitrate` when the encoder undershoots it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pad: bool,
    /// Use a current-thread tokio runtime instead of the multi-thread one.
    #[arg(long)]
    current_thread: bool,
    /// Also serve RTSP on 127.0.0.1:PORT (bench/rtsp-fanout.sh).
    #[arg(long)]
    rtsp_port: Option<u16>,
    /// Pad with a SEI NAL (type 6) instead of filler (type 12): RTP drops
    /// filler, so the RTSP bench pads with SEI to carry the same bitrate.
    #[arg(long)]
    pad_sei: bool,
    /// Also serve WHEP, with the WebRTC UDP socket on 127.0.0.1:PORT
    /// (bench/webrtc-fanout.sh; 0: any free port).
    #[arg(long)]
    webrtc_port: Option<u16>,
    /// WebRTC: the NACK resend buffer per session, KiB (the daemon's
    /// `[webrtc] resend_buffer_kib`; 1200 held str0m's old 1024 packets).
    #[arg(long, default_value_t = pinhole_webrtc::session::DEFAULT_RESEND_BUFFER_BYTES / 1024)]
    resend_kib: usize,
    #[command(flatten)]
    enc: EncodeArgs,
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Encode(args)) => encode(&args),
        None => serve(cli.serve),
    }
}

/// A clock whose sleeps return at once: the test pattern then encodes as
/// fast as it can while believing it runs in real time.
struct FastClock {
    now: std::sync::atomic::AtomicU64,
}

impl Clock for FastClock {
    fn now_us(&self) -> u64 {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn wall_us(&self) -> u64 {
        1_700_000_000_000_000 + self.now_us()
    }
    fn sleep_until_us(&self, deadline_us: u64) {
        self.now
            .fetch_max(deadline_us, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Collect {
    aus: std::sync::Mutex<Vec<EncodedAu>>,
    want: usize,
    stop: StopFlag,
}

impl FrameSink for Collect {
    fn publish(&self, au: AccessUnit) {
        let mut aus = self.aus.lock().unwrap_or_else(|e| e.into_inner());
        if aus.len() < self.want {
            aus.push(EncodedAu {
                data: au.data.to_vec(),
                keyframe: au.keyframe,
            });
        }
        if aus.len() >= self.want {
            self.stop.stop();
        }
    }
    fn report(&self, state: SourceState) {
        if let SourceState::Failed(reason) = state {
            eprintln!("encode: {reason}");
        }
    }
}

fn encode(a: &EncodeArgs) {
    let cfg = TestPatternConfig {
        width: a.width,
        height: a.height,
        fps: a.fps,
        bitrate: a.bitrate,
        keyframe_interval: a.keyframe_interval,
    };
    let clock = Arc::new(FastClock {
        now: Default::default(),
    });
    let mut src = TestPattern::new(cfg, clock).unwrap_or_else(|e| die(&e.to_string()));
    let sink = Collect {
        aus: Default::default(),
        want: a.frames as usize,
        stop: StopFlag::new(),
    };
    if let Err(e) = src.run(&sink, &sink.stop.clone()) {
        die(&e.to_string());
    }
    let aus = sink.aus.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut out = BufWriter::new(std::io::stdout().lock());
    for au in &aus {
        let len = u32::try_from(au.data.len()).unwrap_or_else(|_| die("AU too large"));
        let ok = out
            .write_all(&len.to_le_bytes())
            .and_then(|()| out.write_all(&[u8::from(au.keyframe)]))
            .and_then(|()| out.write_all(&au.data));
        if let Err(e) = ok {
            die(&e.to_string());
        }
    }
    if let Err(e) = out.flush() {
        die(&e.to_string());
    }
}

fn die(msg: &str) -> ! {
    eprintln!("fanout-server: {msg}");
    std::process::exit(1);
}

/// Runs `<self> encode …` and reads the AUs it writes.
fn pre_encode(a: &EncodeArgs) -> Vec<EncodedAu> {
    let exe = std::env::current_exe().unwrap_or_else(|e| die(&e.to_string()));
    let mut child = Command::new(exe)
        .args([
            "encode",
            &format!("--width={}", a.width),
            &format!("--height={}", a.height),
            &format!("--fps={}", a.fps),
            &format!("--bitrate={}", a.bitrate),
            &format!("--keyframe-interval={}", a.keyframe_interval),
            &format!("--frames={}", a.frames),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| die(&format!("cannot run the encoder: {e}")));
    let mut bytes = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut bytes)
            .unwrap_or_else(|e| die(&e.to_string()));
    }
    let status = child.wait().unwrap_or_else(|e| die(&e.to_string()));
    if !status.success() {
        die("the encoder failed");
    }
    let mut aus = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 5 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let keyframe = rest[4] != 0;
        let data = rest
            .get(5..5 + len)
            .unwrap_or_else(|| die("truncated encoder output"));
        aus.push(EncodedAu {
            data: data.to_vec(),
            keyframe,
        });
        rest = &rest[5 + len..];
    }
    if aus.is_empty() || !aus[0].keyframe {
        die("the encoder produced no keyframe first");
    }
    aus
}

fn serve(args: ServeArgs) {
    let a = &args.enc;
    let mut aus = pre_encode(a);
    let frames = aus.len() as f64;
    let secs = frames / f64::from(a.fps);
    let sei_len = timestamp_sei_nal(0).len();
    let encoded: usize = aus.iter().map(|au| au.data.len()).sum();
    let encoded_bps = (encoded + sei_len * aus.len()) as f64 * 8.0 / secs;
    let target_per_frame = f64::from(a.bitrate) / 8.0 / f64::from(a.fps);
    let mut pad = 0;
    if args.pad && encoded_bps < f64::from(a.bitrate) {
        // Same filler on every AU: keyframes stay larger, as in a real stream.
        let per_frame = (encoded + sei_len * aus.len()) as f64 / frames;
        pad = (target_per_frame - per_frame).round().max(0.0) as usize;
        let mut nal = filler_nal(pad);
        if args.pad_sei {
            nal[4] = 0x06; // SEI; its payload is never parsed (the stamp comes first)
        }
        pad = nal.len();
        for au in &mut aus {
            au.data.extend_from_slice(&nal);
        }
    }
    let total: usize = aus.iter().map(|au| au.data.len()).sum();
    let published_bps = (total + sei_len * aus.len()) as f64 * 8.0 / secs;
    let key_sizes: Vec<usize> = aus
        .iter()
        .filter(|a| a.keyframe)
        .map(|a| a.data.len())
        .collect();
    println!(
        "ENCODED frames={} keyframes={} encoded_bps={:.0} filler_per_au={} published_bps={:.0} keyframe_bytes={:?}",
        aus.len(),
        key_sizes.len(),
        encoded_bps,
        pad,
        published_bps,
        key_sizes
    );

    let mut builder = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = builder
        .enable_all()
        .thread_name("fanout-server")
        .build()
        .unwrap_or_else(|e| die(&e.to_string()));
    let workers = rt.metrics().num_workers();
    rt.block_on(async move {
        let hub = Hub::new(HubConfig {
            nominal_fps: f64::from(a.fps),
            ..HubConfig::default()
        });
        let state = AppState::new(
            hub,
            pinhole_source_api::SourceInfo {
                kind: "bench",
                detail: "pre-encoded test pattern".into(),
                fps: Some(f64::from(a.fps)),
                bitrate: Some(a.bitrate),
                keyframe_interval: Some(a.keyframe_interval),
            },
            ServerConfig::default(),
        );
        let addr: ListenAddr = format!("127.0.0.1:{}", args.port)
            .parse()
            .unwrap_or_else(|e: String| die(&e));
        let listener = Listener::bind(&addr)
            .await
            .unwrap_or_else(|e| die(&e.to_string()));
        println!(
            "LISTEN {} pid={} runtime={} workers={}",
            listener.local_addr(),
            std::process::id(),
            if args.current_thread {
                "current_thread"
            } else {
                "multi_thread"
            },
            workers
        );
        let _ = std::io::stdout().flush();

        let stop = StopFlag::new();
        let publisher = {
            let state = state.clone();
            let stop = stop.clone();
            let fps = a.fps;
            let aus: Vec<(Bytes, bool)> = aus
                .into_iter()
                .map(|au| (Bytes::from(au.data), au.keyframe))
                .collect();
            std::thread::Builder::new()
                .name("publisher".into())
                .spawn(move || publish_loop(&state.source, &aus, fps, &stop))
                .unwrap_or_else(|e| die(&e.to_string()))
        };
        state.source.report(SourceState::Running);
        if let Some(port) = args.rtsp_port {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let l = pinhole_server::rtsp::RtspListener::bind(addr, false)
                .await
                .unwrap_or_else(|e| die(&e.to_string()));
            println!("RTSP {}", l.local_addr().unwrap_or(addr));
            let _ = std::io::stdout().flush();
            let cfg = pinhole_server::rtsp::RtspConfig {
                max_connections: 2000,
                max_connections_per_ip: 2000,
                max_sessions: 2000,
                ..Default::default()
            };
            tokio::spawn(pinhole_server::rtsp::serve(
                vec![l],
                state.clone(),
                cfg,
                std::future::pending(),
            ));
        }
        if let Some(port) = args.webrtc_port {
            let cfg = pinhole_webrtc::EndpointConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                lan_candidates: false,
                max_sessions: 2000,
                resend_buffer: args.resend_kib * 1024,
                ..Default::default()
            };
            let ep = pinhole_webrtc::Endpoint::start(cfg, state.hub.clone())
                .await
                .unwrap_or_else(|e| die(&e.to_string()));
            println!("WEBRTC {}", ep.local_addr());
            let _ = std::io::stdout().flush();
            let _ = state.webrtc.set(ep);
        }
        pinhole_server::serve(vec![listener], state, shutdown_signal()).await;
        stop.stop();
        let _ = publisher.join();
    });
}

/// Publishes the AUs in a loop at `fps`, each prefixed with a timestamp SEI
/// carrying the publish wallclock. Deadlines are absolute, so no drift.
fn publish_loop(state: &Feed, aus: &[(Bytes, bool)], fps: u32, stop: &StopFlag) {
    let start = Instant::now();
    for (n, (data, keyframe)) in (0u64..).zip(aus.iter().cycle()) {
        if stop.is_stopped() {
            break;
        }
        let due = start + Duration::from_micros(n * 1_000_000 / u64::from(fps));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let wall = wall_us();
        let mut v = timestamp_sei_nal(wall);
        v.extend_from_slice(data);
        state.publish(AccessUnit {
            data: Bytes::from(v),
            pts_us: start.elapsed().as_micros() as u64,
            wallclock_us: wall,
            keyframe: *keyframe,
        });
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
