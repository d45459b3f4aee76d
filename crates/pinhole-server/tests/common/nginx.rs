//! The image's nginx site (`overlay/etc/nginx/pinhole.conf`) in front of a
//! test server, paths substituted, under its own prefix. Needs nginx
//! (Debian `nginx-light`); fails loudly without it.
#![allow(dead_code)] // not every test uses every helper

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
}

impl Nginx {
    /// nginx's access log (see [`start_logging`] for its format).
    pub fn access_log(&self) -> PathBuf {
        self.root.join("access.log")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts nginx in `root` (an empty directory) with the site serving the
/// repository's web/, HLS files from `hls`, pinholed on `sock`.
pub fn start(root: &Path, hls: &Path, sock: &Path) -> Nginx {
    start_with(root, hls, sock, None)
}

/// As [`start`], with the access log in nginx `log_format` syntax, e.g.
/// `"$request_uri $status $upstream_addr"`.
pub fn start_logging(root: &Path, hls: &Path, sock: &Path, log_format: &str) -> Nginx {
    start_with(root, hls, sock, Some(log_format))
}

/// A caching edge (what a CDN does) in front of `origin_port`: nginx's
/// `proxy_cache` keeping what the origin's `Cache-Control` allows, with
/// `proxy_cache_lock` so that many viewers asking for the same URL at once
/// cost the origin one request. Access log: `$request_uri $status
/// $upstream_cache_status $request_time`.
pub fn start_edge(root: &Path, origin_port: u16) -> Nginx {
    let port = free_port();
    let r = root.display();
    let user = run_as();
    let conf = format!(
        "{user}\nworker_processes 1;\nerror_log {r}/error.log warn;\n\
         events {{ worker_connections 2048; }}\n\
         http {{\n\
         log_format edge '$request_uri $status $upstream_cache_status $request_time';\n\
         access_log {r}/access.log edge;\n\
         client_body_temp_path {r}/body;\n proxy_temp_path {r}/proxy;\n\
         fastcgi_temp_path {r}/fastcgi;\n uwsgi_temp_path {r}/uwsgi;\n scgi_temp_path {r}/scgi;\n\
         proxy_cache_path {r}/cache levels=1:2 keys_zone=edge:4m max_size=256m inactive=2m use_temp_path=off;\n\
         upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 32; }}\n\
         server {{\n listen 127.0.0.1:{port};\n keepalive_requests 100000;\n\
          location / {{\n\
           proxy_pass http://origin;\n proxy_http_version 1.1;\n\
           proxy_set_header Connection \"\";\n proxy_set_header Host $http_host;\n\
           proxy_read_timeout 30s;\n\
           proxy_cache edge;\n proxy_cache_key $request_uri;\n\
           proxy_cache_lock on;\n proxy_cache_lock_timeout 10s;\n proxy_cache_lock_age 10s;\n\
           add_header X-Cache $upstream_cache_status;\n\
          }}\n }}\n}}\n"
    );
    std::fs::write(root.join("nginx.conf"), conf).expect("conf");
    spawn(root, port)
}

/// `user root;` when the test runs as root: workers must read its temp dirs.
fn run_as() -> &'static str {
    if Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        "user root;"
    } else {
        ""
    }
}

fn start_with(root: &Path, hls: &Path, sock: &Path, log_format: Option<&str>) -> Nginx {
    let site = std::fs::read_to_string(repo().join("overlay/etc/nginx/pinhole.conf"))
        .expect("overlay/etc/nginx/pinhole.conf");
    let port = free_port();
    let web = repo().join("web").canonicalize().expect("web/");
    let site = site
        .replace("listen [::]:80 default_server;", "")
        .replace(
            "listen 80 default_server;",
            &format!("listen 127.0.0.1:{port} default_server;"),
        )
        .replace("/usr/share/pinhole/www", &web.display().to_string())
        .replace(
            "unix:/run/pinhole/pinholed.sock",
            &format!("unix:{}", sock.display()),
        )
        .replace("/run/pinhole/hls", &hls.display().to_string())
        .replace("/run/pinhole-tls/", &format!("{}/tls/", root.display()));
    std::fs::write(root.join("pinhole.conf"), site).expect("site");
    let r = root.display();
    let user = run_as();
    let access_log = match log_format {
        Some(f) => format!("log_format pinhole '{f}';\n access_log {r}/access.log pinhole;"),
        None => format!("access_log {r}/access.log;"),
    };
    let conf = format!(
        "{user}\nworker_processes 1;\nerror_log {r}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n include /etc/nginx/mime.types;\n default_type application/octet-stream;\n\
         sendfile on;\n tcp_nodelay on;\n {access_log}\n\
         client_body_temp_path {r}/body;\n proxy_temp_path {r}/proxy;\n\
         fastcgi_temp_path {r}/fastcgi;\n uwsgi_temp_path {r}/uwsgi;\n scgi_temp_path {r}/scgi;\n\
         include {r}/pinhole.conf;\n}}\n"
    );
    std::fs::write(root.join("nginx.conf"), conf).expect("conf");
    spawn(root, port)
}

fn spawn(root: &Path, port: u16) -> Nginx {
    let r = root.display();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .arg("-g")
        .arg(format!("daemon off; pid {r}/nginx.pid;"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is required for this test (apt-get install nginx-light)");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nginx did not start; see {r}/error.log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        port,
        root: root.to_owned(),
    }
}
