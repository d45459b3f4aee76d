//! nginx with Debian's `libnginx-mod-rtmp` (ci/install-deps.sh) as a real
//! RTMP server on a loopback port, and `ffprobe` reading a stream back.
//! Shared by pinhole-push's and pinholed's push tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const STREAM: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

pub struct NginxRtmp {
    child: Child,
    pub port: u16,
    /// With [`NginxRtmp::start_tls`]: the TLS port in front of `port`
    /// (RTMPS) and the CA that signed its certificate.
    pub tls: Option<(u16, PathBuf)>,
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
        Self::start_with(root, "127.0.0.1", port, None, &[])
    }

    /// nginx-rtmp on `ip:port`, started through `wrapper` (e.g. `ip netns
    /// exec NAME`: pinholed's inbound test runs it in a namespace).
    pub fn start_in(root: &Path, ip: &str, port: u16, wrapper: &[&str]) -> NginxRtmp {
        Self::start_with(root, ip, port, None, wrapper)
    }

    /// The same, with an nginx `stream {}` TLS terminator in front (how
    /// RTMPS services are built): a test CA (`ca.pem` in `root`) signs its
    /// certificate for 127.0.0.1 and localhost.
    pub fn start_tls(root: &Path) -> NginxRtmp {
        assert!(
            Path::new(STREAM).exists(),
            "{STREAM} missing: run ci/install-deps.sh (libnginx-mod-stream)"
        );
        make_certs(root);
        let tls_port = free_port();
        let front = format!(
            "stream {{ server {{ listen 127.0.0.1:{tls_port} ssl;\n\
               ssl_certificate {root}/server.pem; ssl_certificate_key {root}/server.key;\n\
               proxy_pass 127.0.0.1:@PORT@; }} }}\n",
            root = root.display()
        );
        let mut n = Self::start_with(root, "127.0.0.1", 0, Some(front), &[]);
        wait_listening("127.0.0.1", tls_port);
        n.tls = Some((tls_port, root.join("ca.pem")));
        n
    }

    fn start_with(
        root: &Path,
        ip: &str,
        port: u16,
        front: Option<String>,
        wrapper: &[&str],
    ) -> NginxRtmp {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} missing: run ci/install-deps.sh (libnginx-mod-rtmp)"
        );
        let port = if port == 0 { free_port() } else { port };
        // Modules first: nginx takes no load_module after a block.
        let (modules, front) = match front {
            Some(f) => (
                format!("load_module {STREAM};\n"),
                f.replace("@PORT@", &port.to_string()),
            ),
            None => (String::new(), String::new()),
        };
        let conf = format!(
            "{modules}load_module {MODULE};\n\
             daemon off;\n\
             pid {root}/nginx.pid;\n\
             error_log {root}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen {ip}:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; }} }} }}\n{front}",
            root = root.display()
        );
        std::fs::write(root.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("nginx");
                c
            }
            None => Command::new("nginx"),
        };
        let child = cmd
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx (ci/install-deps.sh)");
        wait_listening(ip, port);
        NginxRtmp {
            child,
            port,
            tls: None,
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

fn wait_listening(ip: &str, port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nginx did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test CA and a server certificate it signs (P-256, for 127.0.0.1 and
/// localhost), with the openssl command line. A self-signed server
/// certificate would not do: it is a CA certificate, which webpki refuses
/// as a server's.
fn make_certs(root: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(root)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=pinhole test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        root.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
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
