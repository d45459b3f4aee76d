//! The real `pinholed` keeps its memory over many logins: each Argon2 hash
//! takes 19 MiB, and glibc's adaptive mmap threshold used to keep ~19.5 MB
//! of it per login (RSS 10 → 302 MB after 16), which anyone could trigger
//! without a password. `main.rs` pins the threshold.

mod common;

use std::time::Duration;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_logins_do_not_ratchet_memory() {
    let data = std::env::temp_dir().join(format!("pinhole-login-rss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data dir");
    let dir = data.to_str().expect("utf8");
    let (mut child, addr, _log) = common::spawn_daemon(&["--data-dir", dir]);
    let pid = child.id();
    let password = "memory test password";
    let _ = common::admin(&addr, password).await; // sets it: one hash
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = vm_rss_kib(pid);
    let origin = format!("http://{addr}");
    let body = format!("{{\"password\":\"{password}\"}}");
    let headers = [("origin", origin.as_str())];
    let mut peak = before;
    // Two at a time, so the hashes also run on different blocking threads.
    for _ in 0..25 {
        let a = common::http(&addr, "POST", "/api/auth/login", &headers, &body);
        let b = common::http(&addr, "POST", "/api/auth/login", &headers, &body);
        let ((sa, _, _), (sb, _, _)) = tokio::join!(a, b);
        assert_eq!((sa, sb), (200, 200));
        peak = peak.max(vm_rss_kib(pid));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = vm_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    eprintln!("VmRSS: {before} KiB before, {after} KiB after 50 logins (peak seen {peak} KiB)");
    // One hash's worth of slack (19 MiB) plus allocator noise; before the
    // fix this grew by ~19.5 MB per login.
    assert!(
        after < before + 24 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 50 logins"
    );
}
