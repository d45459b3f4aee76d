//! Pushes to a real media server: nginx with Debian's `libnginx-mod-rtmp`
//! (installed by ci/install-deps.sh; the test fails loudly without it),
//! then `ffprobe` reads the stream back from nginx. nginx is killed
//! mid-push and restarted: the push resumes by itself, and a local hub
//! viewer keeps getting frames on time throughout.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_hub::{Hub, HubConfig};
use pinhole_media::{AccessUnit, AccessUnitAssembler, Clock, SystemClock};
use pinhole_push::{PushTarget, PushUrl, State};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn start_nginx(root: &Path, port: u16) -> Nginx {
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} missing: run ci/install-deps.sh (libnginx-mod-rtmp)"
    );
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
    std::fs::write(root.join("nginx.conf"), conf).unwrap();
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
            "nginx did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The x264 fixture, looped at 30 fps on the real clock, until `stop`.
fn feed(hub: Arc<Hub>, clock: Arc<SystemClock>, stop: Arc<AtomicBool>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pinhole-media/testdata/x264_baseline_320x240_30fps_gop30.h264"
    );
    let bytes = std::fs::read(path).unwrap();
    let mut asm = AccessUnitAssembler::new();
    let mut aus = asm.push(&bytes);
    aus.extend(asm.finish());
    let start = clock.now_us();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for au in &aus {
            let due = start + n * 33_333;
            clock.sleep_until_us(due);
            hub.publish(AccessUnit {
                data: au.data.clone(),
                pts_us: due,
                wallclock_us: clock.wall_us(),
                keyframe: au.keyframe,
            });
            n += 1;
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ffprobe(url: &str) -> String {
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

#[test]
fn pushes_to_nginx_rtmp_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut nginx = Some(start_nginx(dir.path(), port));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let clock = Arc::new(SystemClock::new());
    let hub = Hub::with_clock(HubConfig::default(), clock.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (hub, clock, stop) = (hub.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || feed(hub, clock, stop))
    };
    // A local viewer, timing every frame's arrival.
    let max_gap_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let local = {
        let (hub, max_gap_ms) = (hub.clone(), max_gap_ms.clone());
        rt.spawn(async move {
            let mut v = hub.subscribe();
            let mut last: Option<Instant> = None;
            while v.recv().await.is_some() {
                if let Some(l) = last {
                    max_gap_ms.fetch_max(l.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                last = Some(Instant::now());
            }
        })
    };

    let url = format!("rtmp://127.0.0.1:{port}/live/cam-key-0123456789");
    let target = {
        let _g = rt.enter();
        PushTarget::spawn(hub.clone(), PushUrl::parse(&url).unwrap())
    };
    wait_for("publishing", 15, || {
        let s = target.status();
        s.state == State::Publishing && s.frames > 30
    });
    let st = target.status();
    assert_eq!(st.url, format!("rtmp://127.0.0.1:{port}/live/***789"));
    assert_eq!(ffprobe(&url), "h264,320,240");

    // Kill the server mid-push: the target notices and backs off.
    nginx.take();
    wait_for("the failure", 15, || {
        target.status().state != State::Publishing
    });
    let failed = target.status();
    assert!(failed.last_error.is_some(), "{failed:?}");
    std::thread::sleep(Duration::from_secs(2));
    let _nginx = start_nginx(dir.path(), port);
    wait_for("publishing again", 40, || {
        let s = target.status();
        s.state == State::Publishing && s.reconnects >= 1
    });
    let before = target.status().frames;
    wait_for("frames after the restart", 10, || {
        target.status().frames > before + 30
    });
    assert_eq!(ffprobe(&url), "h264,320,240");

    let gap = max_gap_ms.load(Ordering::Relaxed);
    assert!(gap < 250, "a local viewer waited {gap} ms for a frame");
    let s = target.status();
    assert!(
        !format!("{s:?}").contains("0123456789"),
        "key leaked: {s:?}"
    );
    eprintln!("status at the end: {s:?}; local viewer max gap {gap} ms");

    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    hub.close();
    drop(target);
    rt.block_on(local).unwrap();
}
