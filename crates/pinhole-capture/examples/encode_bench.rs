//! Per-stage cost of the software camera path: capture buffer (YUYV, as
//! vivid and most UVC webcams deliver) → I420 conversion → OpenH264 →
//! hub publish. Single thread, as in the daemon's source thread, so time per
//! frame is CPU per frame. Results: bench/README.md ("Cameras / encode").
//!
//!   cargo run --release -p pinhole-capture --example encode_bench [-- FRAMES]

use std::time::{Duration, Instant};

use bytes::Bytes;
use pinhole_capture::encoder::convert::{to_i420, I420Image};
use pinhole_capture::encoder::soft::SoftEncoder;
use pinhole_capture::encoder::{EncoderSettings, Profile, RawFrame};
use pinhole_capture::v4l2::negotiate::RawFormat;
use pinhole_hub::{Hub, HubConfig};
use pinhole_media::AccessUnit;

/// A moving, textured picture (bars, a gradient and sensor-like noise), so
/// the encoder works about as hard as with a real scene.
fn fill_yuyv(buf: &mut [u8], w: usize, h: usize, n: usize, seed: &mut u32) {
    for y in 0..h {
        for x in 0..w / 2 {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (*seed >> 28) as u8;
            let bar = (((x * 2 + n * 4) / 64) % 8) as u8 * 28;
            let i = (y * w + x * 2) * 2;
            buf[i] = bar.wrapping_add((y / 4) as u8).wrapping_add(noise);
            buf[i + 1] = 128u8.wrapping_add(bar / 2);
            buf[i + 2] = bar.wrapping_add((y / 4) as u8).wrapping_add(noise / 2);
            buf[i + 3] = 128u8.wrapping_sub(bar / 3);
        }
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(150);
    println!("| size | stage | mean ms | p95 ms | CPU of one core at 30 fps |");
    println!("|---|---|---|---|---|");
    for (w, h, bitrate) in [
        (640, 480, 1_000_000),
        (1280, 720, 2_000_000),
        (1920, 1080, 4_000_000),
    ] {
        let mut enc = SoftEncoder::new(EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate,
            keyframe_interval: 30,
            profile: Profile::ConstrainedBaseline,
        })
        .expect("encoder");
        let hub = Hub::new(HubConfig::default());
        let (wu, hu) = (w as usize, h as usize);
        let mut yuyv = vec![0u8; wu * hu * 2];
        let mut pic = I420Image::default();
        let mut seed = 1u32;
        let (mut conv, mut encd, mut publ) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0usize;
        for n in 0..frames {
            fill_yuyv(&mut yuyv, wu, hu, n, &mut seed);
            let t0 = Instant::now();
            to_i420(&RawFrame::packed(RawFormat::Yuyv, w, h, &yuyv), &mut pic).expect("convert");
            let t1 = Instant::now();
            let out = enc.encode_i420(&pic, n as u64 * 33_333).expect("encode");
            let t2 = Instant::now();
            for e in out {
                bytes += e.data.len();
                hub.publish(AccessUnit {
                    data: Bytes::from(e.data),
                    pts_us: e.pts_us,
                    wallclock_us: 0,
                    keyframe: e.keyframe,
                });
            }
            let t3 = Instant::now();
            conv.push(t1 - t0);
            encd.push(t2 - t1);
            publ.push(t3 - t2);
        }
        let mean = |v: &[Duration]| {
            v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64 * 1e3
        };
        for (name, v) in [
            ("YUYV→I420", &mut conv),
            ("OpenH264 encode", &mut encd),
            ("hub publish", &mut publ),
        ] {
            let m = mean(v);
            println!(
                "| {w}x{h} | {name} | {m:.2} | {:.2} | {:.0} % |",
                pct(v, 0.95),
                m * 30.0 / 10.0
            );
        }
        let total = mean(&conv) + mean(&encd) + mean(&publ);
        println!(
            "| {w}x{h} | **total** (→ {:.0} kbit/s at 30 fps) | {total:.2} | | {:.0} % |",
            bytes as f64 * 8.0 / (frames as f64 / 30.0) / 1000.0,
            total * 30.0 / 10.0
        );
    }
}
