//! Helpers shared by the fan-out benchmark binaries (`fanout-server`,
//! `fanout-client`): filler NALs, /proc readers, a tiny HTTP GET, and
//! percentiles from the server's Prometheus histogram.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One pre-encoded access unit (Annex B).
#[derive(Clone, Debug)]
pub struct EncodedAu {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Wall-clock time in µs since the Unix epoch.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// An Annex B filler-data NAL unit (type 12) of about `total` bytes
/// (start code, header, 0xFF payload, rbsp trailing bits); at least 6.
pub fn filler_nal(total: usize) -> Vec<u8> {
    let payload = total.saturating_sub(6);
    let mut v = Vec::with_capacity(payload + 6);
    v.extend_from_slice(&[0, 0, 0, 1, 0x0c]);
    v.extend(std::iter::repeat_n(0xffu8, payload));
    v.push(0x80);
    v
}

/// Linux `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat` (100 on
/// every mainstream architecture).
pub const CLK_TCK: f64 = 100.0;

/// utime + stime of a process, in clock ticks.
pub fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn proc_rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Nanoseconds the threads of a process have spent runnable but waiting
/// for a CPU (second field of `/proc/<pid>/task/*/schedstat`): how much other
/// load on the machine delayed it. Threads that ended are not counted.
pub fn proc_runqueue_wait_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(t) = t else { continue };
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        total += s
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// Threads of a process.
pub fn proc_threads(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the body as text.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!(
            "GET {path}: unexpected response {:?}",
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// The server's `pinhole_send_latency_seconds` histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// (upper bound in seconds, cumulative count); +Inf last.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    /// Parses `<name>_bucket{le="…"}`, `<name>_sum`, `<name>_count` lines.
    pub fn from_prometheus(text: &str, name: &str) -> Histogram {
        let mut h = Histogram::default();
        let bucket = format!("{name}_bucket{{le=\"");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&bucket) {
                let Some((le, value)) = rest.split_once("\"}") else {
                    continue;
                };
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                if let Ok(v) = value.trim().parse() {
                    h.buckets.push((le, v));
                }
            } else if let Some(v) = line.strip_prefix(&format!("{name}_sum ")) {
                h.sum = v.trim().parse().unwrap_or(0.0);
            } else if let Some(v) = line.strip_prefix(&format!("{name}_count ")) {
                h.count = v.trim().parse().unwrap_or(0);
            }
        }
        h
    }

    /// What was recorded between `before` and `self`.
    pub fn since(&self, before: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&before.buckets)
                .map(|(&(le, a), &(_, b))| (le, a.saturating_sub(b)))
                .collect(),
            count: self.count.saturating_sub(before.count),
            sum: self.sum - before.sum,
        }
    }

    /// The `q` quantile (0..1) in seconds, interpolated linearly inside its
    /// bucket, with the bucket's bounds: (estimate, lower, upper).
    pub fn quantile(&self, q: f64) -> Option<(f64, f64, f64)> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut lower = 0.0;
        let mut below = 0u64;
        for &(le, cum) in &self.buckets {
            if cum as f64 >= rank {
                if le.is_infinite() {
                    return Some((lower, lower, le));
                }
                let in_bucket = (cum - below) as f64;
                let frac = if in_bucket > 0.0 {
                    (rank - below as f64) / in_bucket
                } else {
                    1.0
                };
                return Some((lower + frac * (le - lower), lower, le));
            }
            lower = le;
            below = cum;
        }
        None
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// The `p` quantile (0..1) of sorted samples (nearest rank).
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_nal_has_the_requested_size_and_type() {
        let n = filler_nal(100);
        assert_eq!(n.len(), 100);
        assert_eq!(&n[..5], &[0, 0, 0, 1, 0x0c]);
        assert_eq!(*n.last().unwrap(), 0x80);
        assert_eq!(filler_nal(0).len(), 6);
    }

    #[test]
    fn histogram_parse_diff_quantile() {
        let text = "\
pinhole_send_latency_seconds_bucket{le=\"0.0001\"} 10
pinhole_send_latency_seconds_bucket{le=\"0.00025\"} 90
pinhole_send_latency_seconds_bucket{le=\"0.0005\"} 100
pinhole_send_latency_seconds_bucket{le=\"+Inf\"} 100
pinhole_send_latency_seconds_sum 0.02
pinhole_send_latency_seconds_count 100
";
        let h = Histogram::from_prometheus(text, "pinhole_send_latency_seconds");
        assert_eq!(h.buckets.len(), 4);
        assert_eq!(h.count, 100);
        let d = h.since(&Histogram {
            buckets: vec![(0.0001, 0), (0.00025, 0), (0.0005, 0), (f64::INFINITY, 0)],
            count: 0,
            sum: 0.0,
        });
        let (p50, lo, hi) = d.quantile(0.5).unwrap();
        assert_eq!((lo, hi), (0.0001, 0.00025));
        assert!((p50 - 0.0001 - 0.5 * 0.00015).abs() < 1e-9);
        let (p99, lo, hi) = d.quantile(0.99).unwrap();
        assert_eq!((lo, hi), (0.00025, 0.0005));
        assert!(p99 > lo && p99 <= hi);
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
