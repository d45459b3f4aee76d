//! `POST /api/update` over real HTTP into file-backed "partitions": a good
//! bundle is staged; forged, foreign, truncated and abandoned uploads change
//! nothing that could be booted, and the active slot is never touched.

mod common;

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestServer;
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, StreamBody};
use pinhole_hub::HubConfig;
use pinhole_ota::format::{compress_image, hex, write_bundle, Encoding, ImageInfo, Manifest};
use pinhole_ota::updater::Event;
use pinhole_ota::{
    BootInfo, Config, FileBootControl, FileSlots, ImageKind, Installer, Phase, Policy,
    RebootMethod, SlotPaths, Updater,
};
use pinhole_server::update::UpdateService;
use sha2::{Digest, Sha256};

struct Device {
    dir: tempfile::TempDir,
    server: TestServer,
    active_before: Vec<Vec<u8>>,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn bundle(key: &SigningKey, board: &str, version: &str, boot: &[u8], root: &[u8]) -> Vec<u8> {
    let info = |kind, data: &[u8]| ImageInfo {
        kind,
        slot: None,
        size: data.len() as u64,
        sha256: Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        encoding: Encoding::None,
        stored_size: None,
    };
    let m = Manifest {
        format: 1,
        product: "pinhole".into(),
        compatible: board.into(),
        version: version.into(),
        build_time: 1_790_000_000,
        images: vec![info(ImageKind::Boot, boot), info(ImageKind::Root, root)],
    };
    let mut out = Vec::new();
    write_bundle(&mut out, &m, key, &mut [boot, root]).expect("bundle");
    out
}

impl Device {
    async fn start() -> Device {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for n in ["boot_a", "root_a"] {
            fs::write(d.join(n), format!("ACTIVE {n} ").repeat(10_000)).expect("write");
        }
        for n in ["boot_b", "root_b"] {
            fs::write(d.join(n), vec![0u8; 4096]).expect("write");
        }
        fs::create_dir(d.join("bootsel")).expect("mkdir");
        fs::write(d.join("bootsel/slot.txt"), "boot_slot=a\n").expect("write");
        fs::write(d.join("cmdline"), "ro pinhole.slot=a pinhole.trial=0\n").expect("write");

        let boot =
            FileBootControl::new(d.join("bootsel"), d.join("cmdline"), RebootMethod::Disabled);
        let info = BootInfo::read(&boot).expect("boot info");
        let mut cfg = Config::new(Policy {
            trusted_keys: vec![key(1).verifying_key()],
            compatible: Some("qemu-arm64".into()),
            current_version: Some(semver::Version::new(1, 0, 0)),
            allow_downgrade: false,
        });
        cfg.reboot_delay = Duration::from_secs(3600); // no reboot during the test
        cfg.progress_step = 64 << 10;
        let slots = FileSlots::new(SlotPaths::by_partlabel(d), info.active);
        let installer = Installer::new(Updater::new(cfg, info), slots, boot);
        // Simulated: no timeout or reboot delay runs out during a test.
        let clock = Arc::new(common::sim_clock());
        let svc = UpdateService::spawn(installer, clock, Some("1.0.0".into())).expect("spawn");

        let server = TestServer::start(HubConfig::default()).await;
        assert!(server.state.update.set(svc).is_ok());
        let active_before = ["boot_a", "root_a"]
            .iter()
            .map(|n| fs::read(d.join(n)).expect("read"))
            .collect();
        Device {
            dir,
            server,
            active_before,
        }
    }

    fn read(&self, n: &str) -> Vec<u8> {
        fs::read(self.dir.path().join(n)).expect("read")
    }

    fn assert_active_untouched(&self) {
        for (n, before) in ["boot_a", "root_a"].iter().zip(&self.active_before) {
            assert!(&self.read(n) == before, "{n} changed");
        }
        assert_eq!(
            fs::read_to_string(self.dir.path().join("bootsel/slot.txt")).expect("slot"),
            "boot_slot=a\n"
        );
    }

    fn trial_armed(&self) -> bool {
        fs::read_to_string(self.dir.path().join("bootsel/tryboot.txt"))
            .map(|t| t.contains("try_slot=b"))
            .unwrap_or(false)
    }
}

/// POSTs `body` in 64 KiB chunks; `cut_after` stops sending (and drops the
/// connection) after that many bytes.
async fn post(
    addr: std::net::SocketAddr,
    body: Vec<u8>,
    cut_after: Option<usize>,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut sender = common::http1(stream).await;
    let limit = cut_after.unwrap_or(body.len());
    let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> = body[..limit]
        .chunks(64 << 10)
        .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let cut = cut_after.is_some();
    let stream = futures_util::stream::iter(chunks).chain(futures_util::stream::once(async move {
        if cut {
            // Simulate the client vanishing mid-upload.
            Err(std::io::Error::other("client gone"))
        } else {
            Ok(hyper::body::Frame::data(Bytes::new()))
        }
    }));
    let cookie = common::admin_cookie(addr).await;
    let req = http::Request::post("/api/update")
        .header("host", "localhost")
        .header("cookie", cookie)
        .header("content-type", "application/octet-stream")
        .body(StreamBody::new(stream))
        .expect("request");
    match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, String::from_utf8_lossy(&body).to_string())
        }
        Err(e) => (0, e.to_string()),
    }
}

use futures_util::StreamExt as _;

/// GET as the admin (the update state is the admin's: docs/ota.md).
async fn admin_get(
    addr: std::net::SocketAddr,
    path: &str,
    read_for: Duration,
) -> common::HttpResponse {
    let cookie = common::admin_cookie(addr).await;
    common::get_with(
        &format!("http://{addr}{path}"),
        http::Method::GET,
        &[("cookie", &cookie)],
        read_for,
    )
    .await
}

/// Format 2: the boot image (mostly zeros, like a vfat) zstd-compressed.
fn zstd_bundle(key: &SigningKey, version: &str, boot: &[u8], root: &[u8]) -> Vec<u8> {
    let mut z = Vec::new();
    let (size, sha, n) = compress_image(&mut &boot[..], &mut z).expect("compress");
    let m = Manifest {
        format: 2,
        product: "pinhole".into(),
        compatible: "qemu-arm64".into(),
        version: version.into(),
        build_time: 1_790_000_000,
        images: vec![
            ImageInfo {
                kind: ImageKind::Boot,
                slot: None,
                size,
                sha256: hex(&sha),
                encoding: Encoding::Zstd,
                stored_size: Some(n),
            },
            ImageInfo {
                kind: ImageKind::Root,
                slot: None,
                size: root.len() as u64,
                sha256: hex(&Sha256::digest(root)),
                encoding: Encoding::None,
                stored_size: None,
            },
        ],
    };
    let mut out = Vec::new();
    write_bundle(&mut out, &m, key, &mut [&z[..], root]).expect("bundle");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_bundle_is_decompressed_into_the_slot() {
    let dev = Device::start().await;
    let mut boot = image(200_000, 3);
    boot.resize(9 << 20, 0); // 9 MiB, mostly empty: several Continue batches
    let root = image(500_000, 4);
    let b = zstd_bundle(&key(1), "1.2.0", &boot, &root);
    assert!(b.len() < 1 << 20, "{} bytes", b.len());
    let (status, body) = post(dev.server.addr, b, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(&dev.read("boot_b")[..boot.len()], &boot[..]);
    assert_eq!(&dev.read("root_b")[..root.len()], &root[..]);
    assert!(dev.trial_armed());
    dev.assert_active_untouched();
    // /api/status names the running system (not the bundle)
    let st = common::get(&dev.server.url("/api/status"), Duration::from_secs(2)).await;
    let v: serde_json::Value = serde_json::from_slice(&st.body).expect("json");
    assert_eq!(v["system"]["slot"], "a", "{v}");
    assert_eq!(v["system"]["trial"], false, "{v}");
    assert_eq!(v["system"]["version"], "1.0.0", "{v}");
    dev.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_bundle_is_written_verified_and_staged_for_a_trial() {
    let dev = Device::start().await;
    let boot = image(300_000, 1);
    let root = image(1_500_000, 2);
    let b = bundle(&key(1), "qemu-arm64", "1.1.0", &boot, &root);
    let (status, body) = post(dev.server.addr, b, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("staged"), "{body}");
    assert_eq!(&dev.read("boot_b")[..boot.len()], &boot[..]);
    assert_eq!(&dev.read("root_b")[..root.len()], &root[..]);
    assert!(dev.trial_armed(), "one-shot trial of slot b armed");
    dev.assert_active_untouched();
    let st = admin_get(dev.server.addr, "/api/update", Duration::from_secs(2)).await;
    let v: serde_json::Value = serde_json::from_slice(&st.body).expect("json");
    assert_eq!(v["phase"], "staged", "{v}");
    assert_eq!(v["active_slot"], "a");
    dev.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bundles_are_refused_with_the_right_status_and_nothing_bootable_changes() {
    let dev = Device::start().await;
    let boot = image(200_000, 3);
    let root = image(700_000, 4);
    let cases: Vec<(&str, Vec<u8>, Option<usize>, u16)> = vec![
        (
            "forged (unknown key)",
            bundle(&key(9), "qemu-arm64", "1.1.0", &boot, &root),
            None,
            403,
        ),
        (
            "wrong board",
            bundle(&key(1), "rpi4", "1.1.0", &boot, &root),
            None,
            422,
        ),
        (
            "downgrade",
            bundle(&key(1), "qemu-arm64", "0.9.0", &boot, &root),
            None,
            422,
        ),
        (
            "truncated",
            {
                let mut b = bundle(&key(1), "qemu-arm64", "1.1.0", &boot, &root);
                b.truncate(b.len() - 1000);
                b
            },
            None,
            400,
        ),
        (
            "flipped byte in the root image",
            {
                let mut b = bundle(&key(1), "qemu-arm64", "1.1.0", &boot, &root);
                let n = b.len();
                b[n - 5000] ^= 0x01;
                b
            },
            None,
            400,
        ),
        (
            "client disconnects mid-upload",
            bundle(&key(1), "qemu-arm64", "1.1.0", &boot, &root),
            Some(500_000),
            0,
        ),
    ];
    for (name, b, cut, want) in cases {
        let (status, body) = post(dev.server.addr, b, cut).await;
        if want != 0 {
            assert_eq!(status, want, "{name}: {body}");
        }
        dev.assert_active_untouched();
        assert!(!dev.trial_armed(), "{name}: no trial may be armed");
        // Give the installer a moment to finish the abort before the next case.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = admin_get(dev.server.addr, "/api/update", Duration::from_secs(2)).await;
            let v: serde_json::Value = serde_json::from_slice(&st.body).expect("json");
            if v["phase"] == "failed" && v["uploading"] == false {
                assert!(
                    v["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{name}: {v}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{name}: status {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // After all that, a good bundle still goes through.
    let (status, body) = post(
        dev.server.addr,
        bundle(&key(1), "qemu-arm64", "1.1.0", &boot, &root),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    dev.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_while_one_runs_gets_409() {
    let dev = Device::start().await;
    let addr = dev.server.addr;
    // A slow first upload: the header, then nothing for a while.
    let cookie = common::admin_cookie(addr).await;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut sender = common::http1(stream).await;
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
    let req = http::Request::post("/api/update")
        .header("host", "localhost")
        .header("cookie", cookie)
        .body(StreamBody::new(tokio_stream_from(rx)))
        .expect("req");
    let first =
        tokio::spawn(async move { sender.send_request(req).await.map(|r| r.status().as_u16()) });
    let b = bundle(
        &key(1),
        "qemu-arm64",
        "1.1.0",
        &image(1000, 1),
        &image(1000, 2),
    );
    tx.send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(
        &b[..100],
    ))))
    .await
    .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = post(addr, b.clone(), None).await;
    assert_eq!(status, 409, "{body}");
    drop(tx);
    let _ = first.await;
    dev.server.stop().await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_without_configuration_get_503_and_sse_reports_progress() {
    let server = TestServer::start(HubConfig::default()).await;
    let r = admin_get(server.addr, "/api/update", Duration::from_secs(2)).await;
    assert_eq!(r.status, 503);
    server.stop().await;

    let dev = Device::start().await;
    let events = {
        let addr = dev.server.addr;
        tokio::spawn(
            async move { admin_get(addr, "/api/update/events", Duration::from_secs(4)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = post(
        dev.server.addr,
        bundle(
            &key(1),
            "qemu-arm64",
            "1.2.0",
            &image(100_000, 5),
            &image(400_000, 6),
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ev = events.await.expect("events");
    assert_eq!(ev.headers["content-type"], "text/event-stream");
    let text = String::from_utf8_lossy(&ev.body);
    assert!(text.contains("\"phase\":\"idle\""), "{text}");
    assert!(text.contains("\"phase\":\"staged\""), "{text}");
    assert!(text.matches("data: ").count() >= 3, "{text}");
    dev.server.stop().await;
}

/// An upload signed with an untrusted key, after logging in, captured at
/// TRACE: neither the signing key, nor the admin password, nor the session
/// token appear in the logs (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_keys_passwords_or_tokens() {
    use std::sync::{Arc, Mutex};
    struct W(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || W(b.clone()))
        .finish();
    // Global: the server's tasks run on other threads.
    let _ = tracing::subscriber::set_global_default(sub);

    let dev = Device::start().await;
    let cookie = common::admin_cookie(dev.server.addr).await;
    let wrong = key(9);
    let (status, _) = post(
        dev.server.addr,
        bundle(
            &wrong,
            "qemu-arm64",
            "1.1.0",
            &image(50_000, 3),
            &image(90_000, 4),
        ),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let logs = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    assert!(logs.contains("update failed"), "logging works: {logs}");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for k in [wrong.to_bytes(), key(1).to_bytes()] {
        assert!(!logs.contains(&hex(&k)), "a signing key in the logs");
        assert!(
            !logs.contains(&format!("{:?}", k)),
            "a signing key in the logs"
        );
    }
    assert!(!logs.contains(common::ADMIN_PASSWORD));
    assert!(!logs.contains(cookie.split_once('=').unwrap().1));
}

/// The update state is the admin's (docs/ota.md): it was open to any viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_state_and_its_events_need_the_admin() {
    let dev = Device::start().await;
    let cookie = common::admin_cookie(dev.server.addr).await;
    for path in ["/api/update", "/api/update/events"] {
        let r = common::get(&dev.server.url(path), Duration::from_millis(300)).await;
        assert_eq!(r.status, 401, "{path} without a login");
    }
    let r = common::get_with(
        &dev.server.url("/api/update"),
        http::Method::GET,
        &[("cookie", &cookie)],
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(r.status, 200);
    dev.server.stop().await;
}

/// The stream sent the same status every second (each installer tick);
/// now only a change is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_is_quiet_while_nothing_changes() {
    let dev = Device::start().await;
    let ev = admin_get(
        dev.server.addr,
        "/api/update/events",
        Duration::from_millis(3500),
    )
    .await;
    assert_eq!(ev.status, 200);
    let text = String::from_utf8_lossy(&ev.body);
    assert_eq!(text.matches("data: ").count(), 1, "{text}");
    dev.server.stop().await;
}

/// A good upload after a refused one: its reply (and the status) no longer
/// carry the refused one's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_upload_clears_the_previous_error() {
    let dev = Device::start().await;
    let (boot, root) = (image(100_000, 7), image(300_000, 8));
    let (status, body) = post(
        dev.server.addr,
        bundle(&key(2), "qemu-arm64", "1.1.0", &boot, &root),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        dev.server.addr,
        bundle(&key(1), "qemu-arm64", "1.1.0", &boot, &root),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(v["status"]["error"].is_null(), "{v}");
    let st = admin_get(dev.server.addr, "/api/update", Duration::from_secs(1)).await;
    let v: serde_json::Value = serde_json::from_slice(&st.body).expect("json");
    assert!(v["error"].is_null(), "{v}");
    dev.server.stop().await;
}

/// Nothing ticks the installer every second: the thread waits for its next
/// deadline. On the simulated clock a trial that never gets healthy is kept
/// right up to its deadline and rolled back at it, without waiting 180 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_trial_rolls_back_exactly_at_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for n in ["boot_a", "root_a", "boot_b", "root_b"] {
        fs::write(d.join(n), vec![0u8; 4096]).expect("write");
    }
    fs::create_dir(d.join("bootsel")).expect("mkdir");
    fs::write(d.join("bootsel/slot.txt"), "boot_slot=a\n").expect("write");
    fs::write(d.join("bootsel/tryboot.txt"), "tried_slot=b\n").expect("write");
    fs::write(d.join("cmdline"), "ro pinhole.slot=b pinhole.trial=1\n").expect("write");
    let boot = FileBootControl::new(d.join("bootsel"), d.join("cmdline"), RebootMethod::Disabled);
    let info = BootInfo::read(&boot).expect("boot info");
    assert!(info.trial);
    let mut cfg = Config::new(Policy {
        trusted_keys: vec![key(1).verifying_key()],
        compatible: Some("qemu-arm64".into()),
        current_version: Some(semver::Version::new(1, 0, 0)),
        allow_downgrade: false,
    });
    cfg.health_timeout = Duration::from_secs(180);
    let slots = FileSlots::new(SlotPaths::by_partlabel(d), info.active);
    let installer = Installer::new(Updater::new(cfg, info), slots, boot);
    // One second after boot.
    let clock = Arc::new(common::sim_clock());
    let svc = UpdateService::spawn(installer, clock.clone(), None).expect("spawn");
    assert_eq!(svc.status().phase, Phase::Trial);

    clock.advance(178_999_999);
    svc.request(Event::Tick).await.expect("tick");
    assert_eq!(svc.status().phase, Phase::Trial, "1 µs before the deadline");
    clock.advance(1);
    svc.request(Event::Tick).await.expect("tick");
    let st = svc.status();
    assert_eq!(st.phase, Phase::RollingBack);
    let (_, msg) = st.error.expect("why");
    assert!(msg.contains("not healthy within"), "{msg}");
    assert_eq!(
        fs::read_to_string(d.join("bootsel/slot.txt")).expect("slot"),
        "boot_slot=a\n",
        "back to the committed slot"
    );
}
