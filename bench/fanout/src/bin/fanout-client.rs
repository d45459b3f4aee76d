//! Fan-out benchmark client: N WebSocket viewers of `/ws/h264`.
//!
//! Each viewer records, per frame, receive wallclock − the publish wallclock
//! in the frame's timestamp SEI (from its second keyframe on, so the GOP a
//! joining viewer is handed at once is not counted). After the warm-up the
//! client opens a measurement window and reads, at both ends of it, the
//! server's CPU time (`/proc/<pid>/stat`), its `/metrics` histogram
//! `pinhole_send_latency_seconds` and `/api/status` drops; RSS at the end.
//! It prints one `RESULT {json}` line.
//!
//! Run it pinned to a core the server does not use (`taskset -c 1 …`): its
//! numbers include its own scheduling, the server histogram does not.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use pinhole_bench::{
    http_get, percentile, proc_cpu_ticks, proc_rss_kib, proc_runqueue_wait_ns, proc_threads,
    wall_us, Histogram, CLK_TCK,
};
use pinhole_media::annexb::{nal_unit_type, nal_units};
use pinhole_media::h264::find_timestamp_sei;
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DONE: u8 = 2;
const HISTOGRAM: &str = "pinhole_send_latency_seconds";

#[derive(Parser, Debug)]
#[command(about = "pinhole fan-out benchmark client")]
struct Cli {
    /// Server address (IP:PORT).
    #[arg(long)]
    addr: String,
    /// Server process id, for CPU and RSS from /proc.
    #[arg(long)]
    server_pid: u32,
    /// WebSocket viewers to open.
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Minimum seconds between the first connect and the measurement window
    /// (the window also waits for every viewer's second keyframe).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// A viewer with fewer frames than this fraction of those published in
    /// the window counts as starved.
    #[arg(long, default_value_t = 0.95)]
    starved_below: f64,
    /// Viewers per loopback source address (127.0.0.2, .3, …), below the
    /// server's per-address viewer limit.
    #[arg(long, default_value_t = 50)]
    per_address: usize,
}

#[derive(Default)]
struct ViewerStats {
    connected: bool,
    error: Option<String>,
    /// Latency samples (µs) in the window.
    samples: Vec<u32>,
    frames_window: u64,
    frames_total: u64,
    /// Largest gap between two frames received in the window, µs.
    max_gap_us: u64,
}

struct Shared {
    phase: AtomicU8,
    ready: AtomicUsize,
}

fn is_keyframe(msg: &[u8]) -> bool {
    let head = &msg[..msg.len().min(256)];
    nal_units(head).any(|n| matches!(nal_unit_type(n), Some(5) | Some(7)))
}

/// Connects from `source` (an address of 127/8), so the server's per-address
/// viewer limit is not what the benchmark measures.
async fn connect(
    url: &str,
    source: Ipv4Addr,
) -> Result<WebSocketStream<tokio::net::TcpStream>, String> {
    let addr: SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("bad url {url}"))?;
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = sock.connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn viewer(
    url: String,
    source: Ipv4Addr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> ViewerStats {
    let mut st = ViewerStats::default();
    let mut ws = match connect(&url, source).await {
        Ok(ws) => ws,
        Err(e) => {
            st.error = Some(e);
            return st;
        }
    };
    st.connected = true;
    let mut keyframes = 0u32;
    let mut last_rx: Option<u64> = None;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let now = wall_us();
        let data = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None => {
                st.error = Some("server closed the connection".into());
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                st.error = Some(e.to_string());
                break;
            }
        };
        st.frames_total += 1;
        if keyframes < 2 && is_keyframe(&data) {
            keyframes += 1;
            if keyframes == 2 {
                shared.ready.fetch_add(1, Ordering::SeqCst);
            }
        }
        if keyframes < 2 || shared.phase.load(Ordering::Relaxed) != MEASURE {
            last_rx = None;
            continue;
        }
        let Some(sent) = find_timestamp_sei(&data[..data.len().min(64)]) else {
            st.error = Some("a frame without timestamp SEI".into());
            break;
        };
        st.samples
            .push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
        st.frames_window += 1;
        if let Some(prev) = last_rx {
            st.max_gap_us = st.max_gap_us.max(now.saturating_sub(prev));
        }
        last_rx = Some(now);
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    st
}

struct ServerSnapshot {
    at: Instant,
    cpu_ticks: u64,
    client_ticks: u64,
    runqueue_wait_ns: u64,
    metrics: String,
    status: Value,
}

async fn snapshot(addr: &str, pid: u32) -> Result<ServerSnapshot, String> {
    let cpu_ticks = proc_cpu_ticks(pid).ok_or("cannot read the server's /proc stat")?;
    let client_ticks = proc_cpu_ticks(std::process::id()).unwrap_or(0);
    let runqueue_wait_ns = proc_runqueue_wait_ns(pid).unwrap_or(0);
    let at = Instant::now();
    let metrics = http_get(addr, "/metrics")
        .await
        .map_err(|e| e.to_string())?;
    let status = http_get(addr, "/api/status")
        .await
        .map_err(|e| e.to_string())?;
    let status: Value = serde_json::from_str(&status).map_err(|e| e.to_string())?;
    Ok(ServerSnapshot {
        at,
        cpu_ticks,
        client_ticks,
        runqueue_wait_ns,
        metrics,
        status,
    })
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fanout-client")
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(v) => println!("RESULT {v}"),
        Err(e) => {
            eprintln!("fanout-client: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> Result<Value, String> {
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(WARMUP),
        ready: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let url = format!("ws://{}/ws/h264", cli.addr);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(cli.viewers);
    for i in 0..cli.viewers {
        // 127.0.0.2, .3, …: `per_address` viewers each.
        let host = 2 + i / cli.per_address.max(1);
        let source = Ipv4Addr::new(127, 0, (host / 250) as u8, (host % 250) as u8);
        tasks.push(tokio::spawn(viewer(
            url.clone(),
            source,
            shared.clone(),
            stop_rx.clone(),
        )));
    }

    // Warm-up: at least `warmup` s, and every viewer past its second keyframe.
    let ready_deadline = started + Duration::from_secs_f64(cli.warmup + 30.0);
    let mut warm = false;
    while Instant::now() < ready_deadline {
        let ready = shared.ready.load(Ordering::SeqCst);
        if ready >= cli.viewers && started.elapsed().as_secs_f64() >= cli.warmup {
            warm = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_at_start = shared.ready.load(Ordering::SeqCst);
    let warmup_s = started.elapsed().as_secs_f64();

    let before = snapshot(&cli.addr, cli.server_pid).await?;
    shared.phase.store(MEASURE, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs_f64(cli.duration)).await;
    shared.phase.store(DONE, Ordering::SeqCst);
    let after = snapshot(&cli.addr, cli.server_pid).await?;
    let (rss_kib, hwm_kib) = proc_rss_kib(cli.server_pid).unwrap_or((0, 0));
    let threads = proc_threads(cli.server_pid).unwrap_or(0);

    let _ = stop_tx.send(true);
    let mut stats = Vec::with_capacity(tasks.len());
    for t in tasks {
        stats.push(t.await.map_err(|e| e.to_string())?);
    }

    let window = after.at.duration_since(before.at).as_secs_f64();
    let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / CLK_TCK / window;
    let runqueue_wait_ms_per_s = after
        .runqueue_wait_ns
        .saturating_sub(before.runqueue_wait_ns) as f64
        / 1e6
        / window;
    let client_cpu = (after.client_ticks - before.client_ticks) as f64 / CLK_TCK / window;
    let published = metric(&after.metrics, "pinhole_frames_total")
        - metric(&before.metrics, "pinhole_frames_total");
    let hist = Histogram::from_prometheus(&after.metrics, HISTOGRAM)
        .since(&Histogram::from_prometheus(&before.metrics, HISTOGRAM));
    let drops = |s: &Value| s["drops"].as_u64().unwrap_or(0);
    let drops_window = drops(&after.status) - drops(&before.status);

    let connected = stats.iter().filter(|s| s.connected).count();
    let errors: Vec<&str> = stats.iter().filter_map(|s| s.error.as_deref()).collect();
    let mut all: Vec<u32> = stats
        .iter()
        .flat_map(|s| s.samples.iter().copied())
        .collect();
    all.sort_unstable();
    let frames: Vec<u64> = stats.iter().map(|s| s.frames_window).collect();
    let min_frames = frames.iter().copied().min().unwrap_or(0);
    let max_frames = frames.iter().copied().max().unwrap_or(0);
    let starved = frames
        .iter()
        .filter(|&&f| (f as f64) < cli.starved_below * published)
        .count();
    let max_gap_us = stats.iter().map(|s| s.max_gap_us).max().unwrap_or(0);
    let ms = |us: Option<u32>| us.map(|u| f64::from(u) / 1000.0);
    let q = |p: f64| {
        hist.quantile(p)
            .map(|(v, lo, hi)| json!({"ms": v * 1e3, "bucket_ms": [lo * 1e3, hi * 1e3]}))
    };

    Ok(json!({
        "viewers": cli.viewers,
        "connected": connected,
        "warm": warm,
        "ready_at_start": ready_at_start,
        "warmup_s": warmup_s,
        "window_s": window,
        "frames_published": published,
        "client": {
            "samples": all.len(),
            "p50_ms": ms(percentile(&all, 0.50)),
            "p99_ms": ms(percentile(&all, 0.99)),
            "p999_ms": ms(percentile(&all, 0.999)),
            "max_ms": ms(all.last().copied()),
            "min_frames_per_viewer": min_frames,
            "max_frames_per_viewer": max_frames,
            "starved_viewers": starved,
            "max_gap_ms": max_gap_us as f64 / 1000.0,
            "cpu_cores": client_cpu,
            "errors": errors.len(),
            "first_error": errors.first(),
        },
        "server": {
            "sends": hist.count,
            "p50": q(0.50),
            "p99": q(0.99),
            "mean_ms": hist.mean().map(|m| m * 1e3),
            "cpu_cores": cpu,
            "runqueue_wait_ms_per_s": runqueue_wait_ms_per_s,
            "rss_kib": rss_kib,
            "hwm_kib": hwm_kib,
            "threads": threads,
            "drops_window": drops_window,
            "drops_total": drops(&after.status),
            "measured_bitrate": after.status["measured"]["bitrate"],
            "measured_fps": after.status["measured"]["fps"],
        },
    }))
}
