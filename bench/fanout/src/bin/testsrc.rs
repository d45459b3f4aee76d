//! `testsrc`: pinhole's test pattern as a raw H.264 (Annex B) byte stream,
//! paced in real time, for feeding *other* pipelines (the seeds' websockify
//! and ffmpeg-HLS rebuilds in `bench/latency/`) the same pictures pinholed
//! draws: capture-time barcode and timestamp SEI included.
//!
//! `testsrc` writes to stdout; `testsrc --listen 127.0.0.1:9000` is a TCP
//! listener like `raspivid -l -o tcp://…`: every client gets the stream from
//! the next keyframe on (a client that falls 60 frames behind is dropped).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use pinhole_capture::test_pattern::{TestPattern, TestPatternConfig};
use pinhole_capture::{FrameSink, Source, SourceState, StopFlag};
use pinhole_media::{AccessUnit, SystemClock};

#[derive(Parser)]
#[command(about = "pinhole's test pattern as raw H.264 (Annex B), paced in real time")]
struct Args {
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    #[arg(long, default_value_t = 2_000_000)]
    bitrate: u32,
    /// Frames from one IDR to the next (default: fps).
    #[arg(long)]
    keyframe_interval: Option<u32>,
    /// Serve the stream to TCP clients on this address instead of stdout.
    #[arg(long)]
    listen: Option<String>,
}

/// Per-client queue length, in access units.
const CLIENT_QUEUE: usize = 60;

struct Client {
    tx: SyncSender<Bytes>,
    started: bool,
}

#[derive(Default)]
struct Fanout {
    clients: Mutex<Vec<Client>>,
}

impl Fanout {
    fn add(&self, mut sock: TcpStream) {
        let _ = sock.set_nodelay(true);
        let (tx, rx) = sync_channel::<Bytes>(CLIENT_QUEUE);
        std::thread::spawn(move || {
            for au in rx {
                if sock.write_all(&au).is_err() {
                    break;
                }
            }
        });
        self.clients
            .lock()
            .unwrap()
            .push(Client { tx, started: false });
    }
}

impl FrameSink for Fanout {
    fn publish(&self, au: AccessUnit) {
        self.clients.lock().unwrap().retain_mut(|c| {
            c.started |= au.keyframe;
            if !c.started {
                return true;
            }
            match c.tx.try_send(au.data.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    eprintln!("testsrc: a client fell behind, dropping it");
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }
    fn report(&self, state: SourceState) {
        if let SourceState::Failed(reason) = state {
            eprintln!("testsrc: {reason}");
        }
    }
}

struct Stdout(StopFlag);

impl FrameSink for Stdout {
    fn publish(&self, au: AccessUnit) {
        let mut out = std::io::stdout().lock();
        if out.write_all(&au.data).and_then(|()| out.flush()).is_err() {
            self.0.stop(); // reader went away
        }
    }
    fn report(&self, state: SourceState) {
        if let SourceState::Failed(reason) = state {
            eprintln!("testsrc: {reason}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cfg = TestPatternConfig {
        width: args.width,
        height: args.height,
        fps: args.fps,
        bitrate: args.bitrate,
        keyframe_interval: args.keyframe_interval.unwrap_or(args.fps),
    };
    let mut src = TestPattern::new(cfg, Arc::new(SystemClock::new()))?;
    let stop = StopFlag::new();
    match args.listen {
        Some(addr) => {
            let listener = TcpListener::bind(&addr)?;
            eprintln!("testsrc: serving H.264 on tcp://{}", listener.local_addr()?);
            let fanout = Arc::new(Fanout::default());
            let f = fanout.clone();
            std::thread::spawn(move || {
                for sock in listener.incoming().flatten() {
                    f.add(sock);
                }
            });
            src.run(fanout.as_ref(), &stop)?;
        }
        None => src.run(&Stdout(stop.clone()), &stop)?,
    }
    Ok(())
}
