//! The image's nginx config in front of a real server on a Unix socket:
//! uploads are refused before their body is taken, nginx-served files carry
//! the same security headers as pinholed's, links in the HLS directory are
//! not followed (issue 22 items 9 and 13).

mod common;
#[path = "common/nginx.rs"]
mod nginx;

use std::time::{Duration, Instant};

use common::TestServer;
use pinhole_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Site {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    nginx: nginx::Nginx,
    /// Runs until the test's runtime ends.
    _server: TestServer,
}

impl Site {
    async fn start() -> Site {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        // nginx workers may run as another user: let them in.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let hls = dir.join("hls");
        std::fs::create_dir(&hls).expect("mkdir");
        std::fs::create_dir(dir.join("nginx")).expect("mkdir");
        let sock = dir.join("pinholed.sock");
        let server = TestServer::start_unix(&sock, ServerConfig::default()).await;
        let nginx = nginx::start(&dir.join("nginx"), &hls, &sock);
        Site {
            _tmp: tmp,
            dir,
            nginx,
            _server: server,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx.port)
    }

    /// nginx's error log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.nginx.root.join("error.log")).unwrap_or_default()
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.nginx.port))
    }
}

/// Reads until `\r\n\r\n` or `wait` passes; the head as text.
async fn read_head(s: &mut TcpStream, wait: Duration) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    let end = Instant::now() + wait;
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout_at(end.into(), s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn upload_head(port: u16, len: u64, extra: &str) -> String {
    format!(
        "POST /api/update HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

const TWO_GB: u64 = 2 << 30;

/// An upload without an admin session used to be read by nginx (up to its
/// 2 GB limit) and streamed on to pinholed, which only then refused it.
/// Now nginx asks pinholed first: `Expect: 100-continue` gets the 401
/// instead of "100 Continue", and a client that sends anyway is cut off soon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refuses_an_unauthenticated_upload_before_its_body() {
    let site = Site::start().await;
    let a = site.addr();
    // Set up, so the admin check is what refuses (not first-boot rules).
    let admin = common::admin_cookie(a).await;

    // curl-style: headers, then wait for permission to send the body.
    let mut s = TcpStream::connect(a).await.expect("connect");
    s.write_all(upload_head(a.port(), TWO_GB, "Expect: 100-continue\r\n").as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}\n{}", site.log());
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "a JSON refusal, not nginx's HTML page: {head}"
    );

    // A client that sends regardless: the 401 comes, and nginx stops taking
    // bytes within seconds (it used to discard for 30 s, ~GBs on a LAN).
    let mut s = TcpStream::connect(a).await.expect("connect");
    s.write_all(upload_head(a.port(), TWO_GB, "").as_bytes())
        .await
        .expect("write");
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![0u8; 64 << 10];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(20) {
            if wr.write_all(&chunk).await.is_err() {
                return (sent, Some(start.elapsed()));
            }
            sent += chunk.len() as u64;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sent, None)
    });
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(20), rd.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (sent, cut) = writer.await.expect("writer");
    let cut = cut.unwrap_or_else(|| panic!("nginx still took the body after 20 s ({sent} bytes)"));
    assert!(
        cut < Duration::from_secs(10),
        "connection cut only after {cut:?} ({sent} bytes)"
    );
    eprintln!("unauthenticated upload: cut after {cut:?}, {sent} bytes sent");

    // The admin still gets through to pinholed (no updates configured in this
    // test: pinholed's own 503 proves the upload was forwarded).
    let mut s = TcpStream::connect(a).await.expect("connect");
    let body = "not a bundle";
    let cookie = format!("Cookie: {admin}\r\n");
    s.write_all(
        format!(
            "{}{body}",
            upload_head(a.port(), body.len() as u64, &cookie)
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    // Cross-origin with the admin's cookie: refused by the same check.
    let mut s = TcpStream::connect(a).await.expect("connect");
    let extra = format!("{cookie}Origin: http://evil.example\r\n");
    let req = upload_head(a.port(), body.len() as u64, &extra)
        .replace(&format!("Origin: http://127.0.0.1:{}\r\n", a.port()), "");
    s.write_all(format!("{req}{body}").as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    drop(site);
}

/// The UI's files served by nginx carry the headers pinholed puts on its
/// own pages, with the very same policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_served_files_carry_the_security_headers() {
    let site = Site::start().await;
    for path in ["/", "/index.html", "/app.js", "/jmuxer.html"] {
        let r = common::get(&format!("{}{path}", site.base()), Duration::from_secs(2)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            r.headers["content-security-policy"],
            pinhole_server::headers::CSP,
            "{path}"
        );
        assert_eq!(r.headers["x-frame-options"], "SAMEORIGIN", "{path}");
    }
    // Answers proxied from pinholed carry its own.
    let r = common::get(
        &format!("{}/api/health", site.base()),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    drop(site);
}

/// A link planted in the HLS directory (which pinholed writes) must not
/// make nginx serve the file it points to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_does_not_follow_links_in_the_hls_directory() {
    let site = Site::start().await;
    let secret = site.dir.join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").expect("write");
    let hls = site.dir.join("hls");
    std::os::unix::fs::symlink(&secret, hls.join("seg1.m4s")).expect("symlink");
    std::fs::write(hls.join("seg2.m4s"), "a real part").expect("write");
    let get = |p: &'static str| {
        let url = format!("{}/hls/{p}", site.base());
        async move { common::get(&url, Duration::from_secs(3)).await }
    };
    let r = get("seg1.m4s").await;
    assert_ne!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("TOP SECRET"));
    let real = get("seg2.m4s").await;
    assert_eq!(real.status, 200, "a plain file is served");
    assert_eq!(real.headers["x-content-type-options"], "nosniff");
    drop(site);
}

// ---- root writes only into root's directories (item 10) ----------------------

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A directory owned by another user (as www-data owns /run/nginx), or a
/// link, is refused: root writes nothing into it.
fn hostile_dirs(base: &std::path::Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let foreign = base.join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
    let target = base.join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let link = base.join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    vec![foreign, link]
}

/// pinhole-tls-setup (root) wrote into /run/nginx (www-data's) and the
/// root master included a glob from there. Now only a root-owned directory.
#[test]
fn tls_setup_writes_only_into_a_directory_of_roots() {
    if !is_root() {
        eprintln!("skipped: needs root (ownership checks)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = nginx::repo().join("overlay/etc/nginx/pinhole-tls-setup");
    let run = |dir: &std::path::Path| {
        std::process::Command::new("sh")
            .arg(&script)
            .env("PINHOLE_TLS_FLAG", tmp.path().join("flag-absent"))
            .env("PINHOLE_TLS_DIR", tmp.path().join("tls"))
            .env("PINHOLE_TLS_RUN", dir)
            .output()
            .expect("run pinhole-tls-setup")
    };
    for dir in hostile_dirs(tmp.path()) {
        let planted = dir.join("pinhole-tls.conf");
        std::fs::write(&planted, "planted").expect("write");
        let out = run(&dir);
        assert!(out.status.success(), "never fails nginx's start");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a directory of root's"),
            "{dir:?}: {out:?}"
        );
        assert!(planted.exists(), "{dir:?}: root touched it");
    }
    // Its own directory: made root 0755, stale config removed.
    let own = tmp.path().join("own");
    let out = run(&own);
    assert!(out.status.success(), "{out:?}");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(&own).expect("made");
    assert!(m.is_dir() && m.uid() == 0 && m.mode() & 0o777 == 0o755);
}

/// pinholed.service copied /proc/cmdline as root into /run/pinhole, which
/// pinholed owns (a planted link would have redirected the write).
#[test]
fn the_cmdline_copy_goes_only_into_a_directory_of_roots() {
    if !is_root() {
        eprintln!("skipped: needs root (ownership checks)");
        return;
    }
    let unit =
        std::fs::read_to_string(nginx::repo().join("overlay/etc/systemd/system/pinholed.service"))
            .expect("unit");
    let line = unit
        .lines()
        .find(|l| l.starts_with("ExecStartPre=+") && l.contains("/proc/cmdline"))
        .expect("the cmdline line");
    // `+/bin/sh -c '…'`, with systemd's `$$` for `$` and `%%` for `%` (a
    // single `%` is a unit specifier: `%u` would become the user's name).
    let raw = line
        .split_once("-c '")
        .and_then(|(_, c)| c.strip_suffix('\''))
        .expect("sh -c '…'");
    assert!(
        raw.replace("%%", "").find('%').is_none(),
        "an unescaped specifier: {raw}"
    );
    let cmd = raw.replace("$$", "$").replace("%%", "%");
    assert!(
        !cmd.contains("/run/pinhole/"),
        "not into pinholed's directory: {cmd}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |dir: &std::path::Path| {
        let c = cmd.replace("/run/pinhole-boot", &dir.display().to_string());
        std::process::Command::new("sh")
            .args(["-c", &c])
            .status()
            .expect("sh")
    };
    for dir in hostile_dirs(tmp.path()) {
        let _ = run(&dir);
        assert!(!dir.join("cmdline").exists(), "{dir:?}: written into");
    }
    let own = tmp.path().join("own");
    assert!(run(&own).success());
    let copy = std::fs::read_to_string(own.join("cmdline")).expect("the copy");
    assert_eq!(
        copy,
        std::fs::read_to_string("/proc/cmdline").expect("cmdline")
    );
}
