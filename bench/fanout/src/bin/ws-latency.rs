//! `ws-latency`: one WebSocket viewer that records, per message carrying a
//! timestamp SEI, receive wall-clock time − the SEI's time, and prints
//! `RESULT {json}` with percentiles. Unlike `fanout-client` it needs
//! nothing from the server but the WebSocket, so it also measures the
//! seed's websockify relay (`bench/pipe-latency.sh`).

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use pinhole_bench::{percentile, wall_us};
use pinhole_media::h264::find_timestamp_sei;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "receive time − SEI time of one WebSocket viewer")]
struct Cli {
    /// WebSocket URL, e.g. ws://127.0.0.1:24080/ws/h264.
    #[arg(long)]
    url: String,
    /// Seconds of messages to ignore first.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// What to call this run in the result.
    #[arg(long, default_value = "")]
    label: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let (mut ws, _) = tokio_tungstenite::connect_async(cli.url.as_str()).await?;
    let start = Instant::now();
    let warm = Duration::from_secs_f64(cli.warmup);
    let end = warm + Duration::from_secs_f64(cli.duration);
    let mut samples: Vec<u32> = Vec::new();
    let (mut messages, mut without_sei) = (0u64, 0u64);
    while start.elapsed() < end {
        let msg = match tokio::time::timeout(end - start.elapsed().min(end), ws.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Err("the server closed the connection".into()),
            Err(_) => break,
        };
        let now = wall_us();
        let Message::Binary(data) = msg else { continue };
        if start.elapsed() < warm {
            continue;
        }
        messages += 1;
        match find_timestamp_sei(&data[..data.len().min(96)]) {
            Some(sent) => samples.push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX)),
            // A relay's piece of a frame (websockify forwards reads).
            None => without_sei += 1,
        }
    }
    samples.sort_unstable();
    let ms = |v: Option<u32>| v.map(|us| f64::from(us) / 1000.0);
    let result = json!({
        "label": cli.label,
        "frames": samples.len(),
        "messages": messages,
        "messages_without_sei": without_sei,
        "p50_ms": ms(percentile(&samples, 0.50)),
        "p95_ms": ms(percentile(&samples, 0.95)),
        "p99_ms": ms(percentile(&samples, 0.99)),
        "max_ms": ms(samples.last().copied()),
        "min_ms": ms(samples.first().copied()),
    });
    println!("RESULT {result}");
    Ok(())
}
