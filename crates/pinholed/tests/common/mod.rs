//! Starting the real `pinholed` binary on port 0, shared by the test files.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Spawns `pinholed --listen 127.0.0.1:0 <args>` and waits for the address
/// it logs. Returns the child, `IP:PORT`, and its remaining log lines
/// (`PINHOLE_TEST_LOG=1` also echoes them).
pub fn spawn_daemon(args: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
    // Tests never take the default UDP port (nor any other interface,
    // unless they ask).
    let webrtc: &[&str] = if args.contains(&"--webrtc-listen") {
        &[]
    } else {
        &["--webrtc-listen", "127.0.0.1:0"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinholed"))
        .args(["--listen", "127.0.0.1:0"])
        .args(webrtc)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pinholed");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("PINHOLE_TEST_LOG").is_some() {
                eprintln!("pinholed: {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("pinholed logs its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim_end_matches('/').to_string();
        }
    };
    (child, addr, rx)
}

/// One HTTP/1.0 request; the body as bytes (a snapshot is binary).
#[allow(dead_code)] // not every test file makes requests
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, buf[split + 4..].to_vec())
}

/// An admin session cookie: sets `password` first if none is set.
#[allow(dead_code)]
pub async fn admin(addr: &str, password: &str) -> String {
    let origin = format!("http://{addr}");
    for path in ["/api/auth/setup", "/api/auth/login"] {
        let (status, head, _) = http(
            addr,
            "POST",
            path,
            &[("origin", &origin), ("content-type", "application/json")],
            &format!("{{\"password\":\"{password}\"}}"),
        )
        .await;
        if status == 200 {
            let cookie = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
                        .map(|(_, v)| v.trim())
                })
                .expect("cookie");
            return cookie.split(';').next().expect("name=value").to_owned();
        }
    }
    panic!("cannot log in");
}

/// `PUT /api/camera` as the admin; the status and the JSON answer.
#[allow(dead_code)]
pub async fn put_camera(addr: &str, cookie: &str, body: &str) -> (u16, serde_json::Value) {
    let origin = format!("http://{addr}");
    let (status, _, body) = http(
        addr,
        "PUT",
        "/api/camera",
        &[
            ("origin", &origin),
            ("cookie", cookie),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The repository's root.
#[allow(dead_code)]
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The python of a test venv, made on first use by `script` (a
/// `tests/*/venv.sh` that prints the venv's python relative to the repo).
#[allow(dead_code)]
pub fn venv_python(script: &str) -> String {
    let out = Command::new(repo().join(script))
        .output()
        .unwrap_or_else(|e| panic!("run {script} (needs python3 with venv): {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    repo().join(rel).to_string_lossy().into_owned()
}
