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
use std::os::fd::AsFd;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use pinhole_capture::test_pattern::{TestPattern, TestPatternConfig};
use pinhole_capture::{FrameSink, Source, SourceState, StopFlag};
use pinhole_media::annexb::{nal_type, nal_unit_type, nal_units, START_CODE};
use pinhole_media::h264::{find_timestamp_sei, timestamp_sei_nal};
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
    /// Stamp each frame's SEI with the time it is written (instead of its
    /// capture time), so a viewer measures what the pipeline after the
    /// encoder adds (`bench/pipe-latency.sh`).
    #[arg(long)]
    stamp_on_write: bool,
}

/// `au` with its timestamp SEI replaced by one carrying the current
/// wall-clock time.
fn restamp(au: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(au.len() + 8);
    for nal in nal_units(au) {
        if nal_unit_type(nal) == Some(nal_type::SEI)
            && find_timestamp_sei(&sei_with_start(nal)).is_some()
        {
            out.extend_from_slice(&timestamp_sei_nal(wall_us()));
        } else {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
    }
    Bytes::from(out)
}

fn sei_with_start(nal: &[u8]) -> Vec<u8> {
    let mut v = START_CODE.to_vec();
    v.extend_from_slice(nal);
    v
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
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
    stamp_on_write: bool,
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
        let data = if self.stamp_on_write {
            restamp(&au.data)
        } else {
            au.data
        };
        self.clients.lock().unwrap().retain_mut(|c| {
            c.started |= au.keyframe;
            if !c.started {
                return true;
            }
            match c.tx.try_send(data.clone()) {
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

struct Stdout(StopFlag, bool);

impl FrameSink for Stdout {
    fn publish(&self, au: AccessUnit) {
        let data = if self.1 { restamp(&au.data) } else { au.data };
        // One write per frame, like an encoder that flushes each frame
        // (rpicam-vid --flush); Stdout's line buffering would split it.
        let out = std::io::stdout().lock();
        let mut file = match out.as_fd().try_clone_to_owned() {
            Ok(fd) => std::fs::File::from(fd),
            Err(_) => return self.0.stop(),
        };
        if file.write_all(&data).is_err() {
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
            let fanout = Arc::new(Fanout {
                stamp_on_write: args.stamp_on_write,
                ..Fanout::default()
            });
            let f = fanout.clone();
            std::thread::spawn(move || {
                for sock in listener.incoming().flatten() {
                    f.add(sock);
                }
            });
            src.run(fanout.as_ref(), &stop)?;
        }
        None => src.run(&Stdout(stop.clone(), args.stamp_on_write), &stop)?,
    }
    Ok(())
}
