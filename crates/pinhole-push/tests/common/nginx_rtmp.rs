//! nginx with Debian's `libnginx-mod-rtmp` (ci/install-deps.sh) as a real
//! RTMP server on a loopback port, and `ffprobe` reading a stream back.
//! Shared by pinhole-push's and pinholed's push tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

pub struct NginxRtmp {
    child: Child,
    pub port: u16,
    root: PathBuf,
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl NginxRtmp {
    /// Starts nginx in `root` (a directory of its own) listening on `port`
    /// (0: a free one), with one live application, `live`.
    pub fn start(root: &Path, port: u16) -> NginxRtmp {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} missing: run ci/install-deps.sh (libnginx-mod-rtmp)"
        );
        let port = if port == 0 { free_port() } else { port };
        let conf = format!(
            "load_module {MODULE};\n\
             daemon off;\n\
             pid {root}/nginx.pid;\n\
             error_log {root}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; }} }} }}\n",
            root = root.display()
        );
        std::fs::write(root.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx (ci/install-deps.sh)");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nginx did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NginxRtmp {
            child,
            port,
            root: root.to_owned(),
        }
    }

    /// Send `sig` (e.g. "STOP", "CONT") to the master and its workers, by
    /// PID: a hung server that keeps its sockets open.
    pub fn signal(&self, sig: &str) {
        let master = self.child.id().to_string();
        let workers = Command::new("pgrep")
            .args(["-P", &master])
            .output()
            .expect("pgrep");
        let mut pids = vec![master];
        pids.extend(
            String::from_utf8_lossy(&workers.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        for pid in pids {
            let _ = Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status();
        }
    }

    pub fn error_log(&self) -> PathBuf {
        self.root.join("error.log")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `codec,width,height` of the first video stream at `url`, as ffprobe reads it.
pub fn ffprobe(url: &str) -> String {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .expect("ffprobe (ci/install-deps.sh)");
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
