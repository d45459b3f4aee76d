//! RTSP/TCP fan-out client: N sessions (DESCRIBE, SETUP interleaved,
//! PLAY) against `fanout-server --rtsp-port`, 50 per loopback source
//! address (the server's per-address viewer limit is 64). Each access
//! unit's first NAL is the server's timestamp SEI (publish wallclock),
//! sent as a single-NAL RTP packet, so receive − publish is the latency a
//! client sees. Over the measuring window it also reads the server's CPU
//! time and RSS (/proc) and its `pinhole_send_latency_seconds` histogram
//! (/metrics: publish → write completed, which the RTSP sender records
//! too). Prints one JSON line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use pinhole_bench::{
    http_get, percentile, proc_cpu_ticks, proc_rss_kib, proc_runqueue_wait_ns, wall_us, Histogram,
    CLK_TCK,
};
use pinhole_media::h264::find_timestamp_sei;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
struct Cli {
    /// The server's RTSP port on 127.0.0.1.
    #[arg(long)]
    rtsp_port: u16,
    /// Its HTTP port (for /metrics).
    #[arg(long)]
    http_port: u16,
    #[arg(long)]
    server_pid: u32,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    #[arg(long, default_value_t = 20)]
    duration: u64,
}

#[derive(Default)]
struct Shared {
    measuring: AtomicBool,
    /// Latency samples (µs) in the window.
    samples: Mutex<Vec<u32>>,
    /// The same split by frame kind (keyframe: an IDR or SPS NAL in the
    /// access unit), to see where the tail sits.
    key_samples: Mutex<Vec<u32>>,
    delta_samples: Mutex<Vec<u32>>,
    /// Per session (in start order): its median latency (µs).
    session_p50: Mutex<Vec<(usize, u32)>>,
    frames: Mutex<Vec<u64>>,
    lost: AtomicU64,
    failed: AtomicU64,
}

async fn request(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    text: String,
) -> std::io::Result<String> {
    s.write_all(text.as_bytes()).await?;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let clen: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + clen {
                buf.drain(..end + 4 + clen);
                if !head.starts_with("RTSP/1.0 200") {
                    return Err(std::io::Error::other(head));
                }
                return Ok(head);
            }
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

async fn client(i: usize, port: u16, shared: Arc<Shared>) -> std::io::Result<()> {
    let src = std::net::SocketAddr::from(([127, 0, 0, 2 + (i / 50) as u8], 0));
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(src)?;
    let mut s = sock
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    s.set_nodelay(true)?;
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let mut buf = Vec::new();
    request(
        &mut s,
        &mut buf,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
    )
    .await?;
    let head = request(
        &mut s,
        &mut buf,
        format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    )
    .await?;
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_owned();
    request(
        &mut s,
        &mut buf,
        format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    )
    .await?;
    let mut frames = 0u64;
    let mut last_seq: Option<u16> = None;
    // The stamp is the AU's first NAL (the pre-encoded AU has a stale one of
    // its own further in).
    let mut first_in_au = true;
    let mut local = Vec::new();
    let mut local_key = Vec::new();
    let mut local_delta = Vec::new();
    let mut all = Vec::new();
    // The stamp of the access unit being received and whether it is a keyframe.
    let mut pending: Option<u32> = None;
    let mut is_key = false;
    let mut tmp = vec![0u8; 256 * 1024];
    loop {
        // Whole interleaved blocks out of the buffer.
        let mut off = 0;
        while buf.len() >= off + 4 && buf[off] == b'$' {
            let len = u16::from_be_bytes([buf[off + 2], buf[off + 3]]) as usize;
            if buf.len() < off + 4 + len {
                break;
            }
            let ch = buf[off + 1];
            let p = &buf[off + 4..off + 4 + len];
            if ch == 0 && p.len() > 12 {
                let seq = u16::from_be_bytes([p[2], p[3]]);
                if let Some(l) = last_seq {
                    let gap = seq.wrapping_sub(l).wrapping_sub(1);
                    shared.lost.fetch_add(u64::from(gap), Ordering::Relaxed);
                }
                last_seq = Some(seq);
                let payload = &p[12..];
                let marker = p[1] & 0x80 != 0;
                let first = std::mem::replace(&mut first_in_au, marker);
                if first {
                    is_key = false;
                }
                // Keyframe: SPS, IDR, or an FU-A fragment of an IDR.
                match payload[0] & 0x1f {
                    5 | 7 => is_key = true,
                    28 if payload.len() > 1 && payload[1] & 0x1f == 5 => is_key = true,
                    _ => {}
                }
                if first && payload[0] & 0x1f == 6 && payload.len() < 64 {
                    let mut nal = vec![0, 0, 0, 1];
                    nal.extend_from_slice(payload);
                    if let Some(t) = find_timestamp_sei(&nal) {
                        if shared.measuring.load(Ordering::Relaxed) {
                            pending = Some(wall_us().saturating_sub(t) as u32);
                        }
                    }
                }
                if marker {
                    if let Some(us) = pending.take() {
                        local.push(us);
                        all.push(us);
                        if is_key {
                            local_key.push(us);
                        } else {
                            local_delta.push(us);
                        }
                    }
                }
                if marker && shared.measuring.load(Ordering::Relaxed) {
                    frames += 1;
                }
            }
            off += 4 + len;
        }
        if off > 0 {
            buf.drain(..off);
        }
        if !local.is_empty() && local.len() >= 64 {
            shared
                .samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&mut local);
        }
        if !shared.measuring.load(Ordering::Relaxed) && frames > 0 {
            break;
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        buf.extend_from_slice(&tmp[..n]);
        // The window ended: hand in the counts.
        if frames > 0 && !shared.measuring.load(Ordering::Relaxed) {
            break;
        }
    }
    shared
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .append(&mut local);
    shared
        .key_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .append(&mut local_key);
    shared
        .delta_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .append(&mut local_delta);
    all.sort_unstable();
    if let Some(p50) = percentile(&all, 0.5) {
        shared
            .session_p50
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((i, p50));
    }
    shared
        .frames
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(frames);
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let shared = Arc::new(Shared::default());
    let mut tasks = Vec::new();
    for i in 0..cli.clients {
        let shared = shared.clone();
        let port = cli.rtsp_port;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = client(i, port, shared.clone()).await {
                eprintln!("client {i}: {e}");
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let http = format!("127.0.0.1:{}", cli.http_port);
    tokio::time::sleep(Duration::from_secs(cli.warmup)).await;
    let m0 = http_get(&http, "/metrics").await.unwrap_or_default();
    let t0 = proc_cpu_ticks(cli.server_pid).unwrap_or(0);
    let w0 = proc_runqueue_wait_ns(cli.server_pid).unwrap_or(0);
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(cli.duration)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let t1 = proc_cpu_ticks(cli.server_pid).unwrap_or(0);
    let w1 = proc_runqueue_wait_ns(cli.server_pid).unwrap_or(0);
    let m1 = http_get(&http, "/metrics").await.unwrap_or_default();
    let (rss, hwm) = proc_rss_kib(cli.server_pid).unwrap_or((0, 0));
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let mut samples = shared
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    samples.sort_unstable();
    let frames = shared
        .frames
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let sorted = |m: &Mutex<Vec<u32>>| {
        let mut v = m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.sort_unstable();
        v
    };
    let key = sorted(&shared.key_samples);
    let delta = sorted(&shared.delta_samples);
    // Median latency of the sessions by start order, in five groups: does
    // the tail follow the order in which sessions are served?
    let mut by_session = shared
        .session_p50
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    by_session.sort_unstable();
    let groups: Vec<f64> = by_session
        .chunks(by_session.len().div_ceil(5).max(1))
        .map(|c| c.iter().map(|&(_, v)| f64::from(v)).sum::<f64>() / c.len() as f64 / 1e3)
        .collect();
    let name = "pinhole_send_latency_seconds";
    let hist = Histogram::from_prometheus(&m1, name).since(&Histogram::from_prometheus(&m0, name));
    let q = |p: f64| hist.quantile(p).map(|(est, _, hi)| (est * 1e3, hi * 1e3));
    let ms = |v: Option<u32>| v.map(|u| f64::from(u) / 1e3);
    let window = cli.duration as f64;
    println!(
        "{}",
        serde_json::json!({
            "clients": cli.clients,
            "failed": shared.failed.load(Ordering::Relaxed),
            "server_cpu_pct": (t1.saturating_sub(t0)) as f64 / CLK_TCK / window * 100.0,
            // The server's CPU time per published frame (30 fps): on one
            // core the last session's write cannot come sooner than this,
            // whatever the load (it excludes time spent waiting for a CPU).
            "server_cpu_ms_per_frame": (t1.saturating_sub(t0)) as f64 / CLK_TCK * 1e3 / (window * 30.0),
            "server_wait_ms_per_s": (w1.saturating_sub(w0)) as f64 / 1e6 / window,
            "server_rss_mib": rss as f64 / 1024.0,
            "server_hwm_mib": hwm as f64 / 1024.0,
            "server_p50_ms": q(0.5),
            "server_p99_ms": q(0.99),
            "client_p50_ms": ms(percentile(&samples, 0.5)),
            "client_p99_ms": ms(percentile(&samples, 0.99)),
            "client_max_ms": samples.last().map(|u| f64::from(*u) / 1e3),
            "client_key_p50_ms": ms(percentile(&key, 0.5)),
            "client_key_p99_ms": ms(percentile(&key, 0.99)),
            "client_delta_p50_ms": ms(percentile(&delta, 0.5)),
            "client_delta_p99_ms": ms(percentile(&delta, 0.99)),
            "session_p50_by_start_fifth_ms": groups,
            "samples": samples.len(),
            "frames_min": frames.iter().min(),
            "frames_max": frames.iter().max(),
            "lost_packets": shared.lost.load(Ordering::Relaxed),
        })
    );
}
