//! The appliance's network policy (docs/security.md, "Inbound and
//! outbound"): the daemon may connect anywhere (push to a server on the
//! internet), but its listeners answer LAN addresses only.
//!
//! Two network namespaces joined to this one by veth pairs: "internet"
//! (203.0.113.x, TEST-NET-3) runs a real nginx-rtmp; "lan" (192.168.x) is a
//! viewer at home. The daemon listens on every address. From the internet
//! side HTTP and RTSP connections are closed unanswered; from the LAN side
//! both answer; the push to the internet server publishes and ffprobe reads
//! it back. Needs root (CI runs as root); elsewhere it says so and passes
//! unless `CI` is set.

mod common;
#[path = "../../pinhole-push/tests/common/nginx_rtmp.rs"]
mod nginx_rtmp;
use nginx_rtmp::NginxRtmp;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

const KEY: &str = "inbound-test-key-0123456789";

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace joined to this one by a veth pair, with a /30 between them;
/// removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

impl Netns {
    fn new(name: &str, host_if: &str, net: [u8; 3], k: u8) -> Netns {
        let base = 4 * k;
        let host_ip = format!("{}.{}.{}.{}", net[0], net[1], net[2], base + 1);
        let ns_ip = format!("{}.{}.{}.{}", net[0], net[1], net[2], base + 2);
        let n = Netns {
            name: name.into(),
            host_if: host_if.into(),
            host_ip,
            ns_ip,
        };
        let peer = format!("{host_if}p");
        sh(&["ip", "netns", "add", name]);
        sh(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", &peer, "netns", name]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", n.host_ip),
            "dev",
            host_if,
        ]);
        sh(&["ip", "link", "set", host_if, "up"]);
        let ns = |a: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", name];
            v.extend_from_slice(a);
            sh(&v);
        };
        ns(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", n.ns_ip),
            "dev",
            &peer,
        ]);
        ns(&["ip", "link", "set", &peer, "up"]);
        ns(&["ip", "link", "set", "lo", "up"]);
        n
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a client in `ns` gets back for one request line on a TCP port:
/// the first line of the answer, or "" when closed unanswered.
fn first_line(ns: &Netns, ip: &str, port: u16, request: &str) -> String {
    let script = format!(
        "import socket,sys\n\
         s=socket.create_connection(('{ip}',{port}),timeout=5)\n\
         s.sendall({request:?}.encode())\n\
         d=b''\n\
         try:\n  d=s.recv(200)\n\
         except (ConnectionResetError, socket.timeout): pass\n\
         sys.stdout.write(d.decode('latin1').split('\\r\\n')[0])\n"
    );
    let out = ns
        .exec(&["python3", "-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "client in {}: {}",
        ns.name,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = line.split(marker).nth(1)?;
    let hostport = rest.split('/').next()?;
    hostport.rsplit(':').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_answer_the_lan_only_and_push_reaches_the_internet() {
    let uid = Command::new("id").arg("-u").output().expect("id");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: network namespaces need it"
        );
        eprintln!("skipped: network namespaces need root");
        return;
    }
    // Distinct names and /30s per process: tests of other worktrees run at once.
    let pid = std::process::id();
    let k = (pid % 60) as u8;
    let inet = Netns::new(
        &format!("phinet{pid}"),
        &format!("phi{pid}"),
        [203, 0, 113],
        k,
    );
    let lan = Netns::new(
        &format!("phlan{pid}"),
        &format!("phl{pid}"),
        [192, 168, 213],
        k,
    );

    // The "internet" media server: nginx-rtmp inside its namespace.
    let dir = tempfile::tempdir().unwrap();
    let _nginx = NginxRtmp::start_in(
        dir.path(),
        &inet.ns_ip,
        1935,
        &["ip", "netns", "exec", &inet.name],
    );

    let data = tempfile::tempdir().unwrap();
    let url = format!("rtmp://{}:1935/live/{KEY}", inet.ns_ip);
    let (child, addr, log) = common::spawn_daemon(&[
        "--listen",
        "0.0.0.0:0",
        "--rtsp",
        "0.0.0.0:0",
        "--webrtc-listen",
        "0.0.0.0:0",
        "--width",
        "320",
        "--height",
        "240",
        "--push",
        &url,
        "--data-dir",
        &data.path().display().to_string(),
    ]);
    let _daemon = Killed(child);
    let (mut http_port, mut rtsp_port) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_port.is_none() || rtsp_port.is_none() {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("pinholed logs its listeners");
        http_port = http_port.or(port_after(&line, "listening on http://0.0.0.0:"));
        rtsp_port = rtsp_port.or(port_after(&line, "rtsp on rtsp://0.0.0.0:"));
    }
    let (http_port, rtsp_port) = (http_port.unwrap(), rtsp_port.unwrap());
    let health = "GET /api/health HTTP/1.0\r\n\r\n";
    let options = format!("OPTIONS rtsp://x:{rtsp_port}/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n");

    // The LAN viewer gets answers on both; the internet gets nothing.
    let h = first_line(&lan, &lan.host_ip, http_port, health);
    assert!(
        h.starts_with("HTTP/1.") && h.contains(" 200"),
        "LAN HTTP: {h:?}"
    );
    let r = first_line(&lan, &lan.host_ip, rtsp_port, &options);
    assert_eq!(r, "RTSP/1.0 200 OK", "LAN RTSP");
    assert_eq!(
        first_line(&inet, &inet.host_ip, http_port, health),
        "",
        "internet HTTP"
    );
    assert_eq!(
        first_line(&inet, &inet.host_ip, rtsp_port, &options),
        "",
        "internet RTSP"
    );

    // WebRTC's UDP port: a datagram from the internet is dropped unread
    // (counted), one from the LAN is read (and, not being a session's,
    // counted as unrouted instead).
    let cookie = common::admin(&addr, "inbound-test-password").await;
    let (_, _, body) = common::http(&addr, "GET", "/api/status", &[("cookie", &cookie)], "").await;
    let st: serde_json::Value = serde_json::from_slice(&body).expect("status json");
    let udp: u16 = st["webrtc"]["udp"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("webrtc.udp in the status");
    let refused = || async {
        let (_, _, m) = common::http(&addr, "GET", "/metrics", &[], "").await;
        String::from_utf8_lossy(&m)
            .lines()
            .find_map(|l| l.strip_prefix("pinhole_webrtc_refused_packets_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("pinhole_webrtc_refused_packets_total")
    };
    let datagram = |ns: &Netns, ip: &str| {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.sendto(b'\\x00\\x01\\x00\\x00'+b'\\x21\\x12\\xa4\\x42'+bytes(12),('{ip}',{udp}))\n"
        );
        let ok = ns
            .exec(&["python3", "-c", &script])
            .status()
            .expect("python3");
        assert!(ok.success());
    };
    assert_eq!(refused().await, 0.0);
    datagram(&lan, &lan.host_ip);
    datagram(&inet, &inet.host_ip);
    datagram(&inet, &inet.host_ip);
    let t = Instant::now();
    while refused().await < 2.0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "internet datagrams not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        refused().await,
        2.0,
        "only the internet's datagrams are refused"
    );

    // The push to the internet server publishes, and it serves our stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) =
            common::http(&addr, "GET", "/api/status", &[("cookie", &cookie)], "").await;
        let s: serde_json::Value = serde_json::from_slice(&body).expect("status json");
        let p = &s["push"][0];
        if p["state"] == "publishing" && p["frames"].as_u64() > Some(30) {
            break;
        }
        assert!(Instant::now() < deadline, "push never published: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264,320,240");

    // The refusals are in the debug log only; nothing secret in the rest.
    let lines: Vec<String> = log.try_iter().collect();
    for l in &lines {
        assert!(!l.contains(KEY), "the key in the log: {l}");
    }
}
