//! ONVIF against clients we did not write: Home Assistant's libraries
//! (onvif-zeep-async and WSDiscovery from PyPI, in a venv that
//! `tests/onvif/venv.sh` makes) drive the real daemon the way the ONVIF
//! integration does (`tests/onvif/ha_onvif.py`), in a network namespace of
//! their own so WS-Discovery's multicast works without the machine's
//! network (`tests/onvif/netns.sh`). Plus the refusals, over plain HTTP.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::repo;

/// The venv's python (made on first use, ~15 s).
fn python() -> String {
    common::venv_python("tests/onvif/venv.sh")
}

/// Runs ha_onvif.py in its namespace; its JSON report.
fn home_assistant(name: &str, args: &[&str]) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("pinhole-onvif-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(repo().join("tests/onvif/netns.sh"))
        .arg(python())
        .arg(repo().join("tests/onvif/ha_onvif.py"))
        .args(["--pinholed", env!("CARGO_BIN_EXE_pinholed")])
        .arg("--dir")
        .arg(&dir)
        .args(args)
        .output()
        .expect("run netns.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ha_onvif.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line")
}

/// What every run must show: found by discovery, the profile, a stream
/// ffprobe opens at the profile's size, a JPEG snapshot.
fn check_common(r: &serde_json::Value) {
    let found = r["discovered"].as_array().expect("discovered");
    assert_eq!(found.len(), 1, "{r}");
    assert_eq!(
        found[0]["xaddrs"][0], "http://10.99.0.1:8080/onvif/device_service",
        "{r}"
    );
    assert_eq!(found[0]["port"], 8080);
    let ha = &r["ha"];
    assert_eq!(ha["network_interfaces"], "not implemented", "{r}");
    assert_eq!(ha["info"]["Manufacturer"], "pinhole");
    assert_eq!(ha["info"]["SerialNumber"].as_str().map(str::len), Some(16));
    assert_eq!(ha["snapshot_capability"], true);
    assert_eq!(
        (
            &ha["profile"]["token"],
            &ha["profile"]["width"],
            &ha["profile"]["height"]
        ),
        (&"main".into(), &320.into(), &240.into())
    );
    assert_eq!(ha["stream_uri"], "rtsp://10.99.0.1:8554/stream", "{r}");
    assert_eq!(
        ha["ffprobe"],
        serde_json::json!([{"codec_name": "h264", "width": 320, "height": 240}]),
        "{r}"
    );
    assert_eq!(ha["snapshot_jpeg"], true, "{r}");
}

#[test]
fn home_assistant_with_the_viewer_password() {
    let r = home_assistant("password", &["--viewer-password", "viewer-pass-1"]);
    check_common(&r);
    // Viewing needs credentials: the snapshot URL carries the viewer token
    // (the ONVIF client's Digest/Basic is not taken by the HTTP side).
    assert_eq!(
        r["ha"]["snapshot_uri"],
        "http://10.99.0.1:8080/snapshot.jpg?token=onviftestviewertoken0123456789",
        "{r}"
    );
    for refused in ["wrong_password", "no_credentials"] {
        assert_eq!(r[refused]["refused"], true, "{refused}: {r}");
        assert_eq!(r[refused]["auth_error"], true, "{refused}: {r}");
    }
}

#[test]
fn home_assistant_on_an_open_lan() {
    // No viewer password, `viewer_access = "lan"`: as for RTSP, no
    // credentials needed (HA's username and password fields left empty).
    let r = home_assistant("open", &[]);
    check_common(&r);
    assert_eq!(
        r["ha"]["snapshot_uri"],
        "http://10.99.0.1:8080/snapshot.jpg"
    );
}

const ENV: &str = "http://www.w3.org/2003/05/soap-envelope";

fn envelope(ns: &str, op: &str) -> String {
    format!(
        "<e:Envelope xmlns:e=\"{ENV}\"><e:Body><o:{op} xmlns:o=\"{ns}\"/></e:Body></e:Envelope>"
    )
}

/// A daemon with RTSP and ONVIF (no discovery: tests stay off port 3702).
fn daemon(onvif: &str) -> (std::process::Child, String, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "pinhole-onvif-http-{}-{}",
        std::process::id(),
        onvif.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("config.toml");
    std::fs::write(&conf, format!("[onvif]\ndiscovery = false\n{onvif}")).expect("config");
    let (child, addr, _log) = common::spawn_daemon(&[
        "--rtsp",
        "127.0.0.1:0",
        "--config",
        conf.to_str().expect("utf-8"),
        "--data-dir",
        dir.join("data").to_str().expect("utf-8"),
        "--width",
        "160",
        "--height",
        "120",
    ]);
    (child, addr, dir)
}

#[tokio::test]
async fn refusals_are_soap_faults() {
    let (mut child, addr, dir) = daemon("");
    let post = |path: &'static str, body: String, extra: Vec<(&'static str, String)>| {
        let addr = addr.clone();
        async move {
            let mut h: Vec<(&str, &str)> = vec![("content-type", "application/soap+xml")];
            h.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            let (status, head, body) = common::http(&addr, "POST", path, &h, &body).await;
            (status, head, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let device = "http://www.onvif.org/ver10/device/wsdl";
    // Pre-auth: the clock, for anyone on the LAN.
    let (s, head, body) = post(
        "/onvif/device_service",
        envelope(device, "GetSystemDateAndTime"),
        vec![],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(head.to_ascii_lowercase().contains("application/soap+xml"));
    assert!(body.contains("<tt:UTCDateTime>"));
    // Not XML, not SOAP, too big: 400 with a fault, never a 500.
    for bad in [
        "garbage".to_string(),
        "<Envelope/>".into(),
        format!(
            "<e:Envelope xmlns:e=\"{ENV}\"><e:Body>{}</e:Body></e:Envelope>",
            "<a>".repeat(100)
        ),
        format!(
            "<e:Envelope xmlns:e=\"{ENV}\"><e:Body><x>{}</x></e:Body></e:Envelope>",
            "y".repeat(40_000)
        ),
    ] {
        let (s, _, body) = post("/onvif/device_service", bad.clone(), vec![]).await;
        assert_eq!(s, 400, "{}: {body}", &bad[..bad.len().min(60)]);
        assert!(body.contains("<env:Fault>"), "{body}");
    }
    // What we do not offer: ActionNotSupported (a Receiver fault, 500 by
    // SOAP's HTTP binding, with its SOAP body).
    let (s, _, body) = post(
        "/onvif/device_service",
        envelope("http://www.onvif.org/ver20/ptz/wsdl", "GetNodes"),
        vec![],
    )
    .await;
    assert_eq!(s, 500, "{body}");
    assert!(body.contains("ter:ActionNotSupported"), "{body}");
    // A profile that does not exist.
    let (s, _, body) = post(
        "/onvif/media_service",
        format!("<e:Envelope xmlns:e=\"{ENV}\"><e:Body><m:GetStreamUri xmlns:m=\"http://www.onvif.org/ver10/media/wsdl\"><m:ProfileToken>nope</m:ProfileToken></m:GetStreamUri></e:Body></e:Envelope>"),
        vec![],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("ter:NoProfile"), "{body}");
    // A web page cannot POST to it cross-site (the Auth class's Origin rule)…
    let (s, _, _) = post(
        "/onvif/device_service",
        envelope(device, "GetSystemDateAndTime"),
        vec![("origin", "http://evil.example".into())],
    )
    .await;
    assert_eq!(s, 403);
    // …nor with a rebound name (Host).
    let (s, _, _) = common::http(
        &addr,
        "POST",
        "/onvif/device_service",
        &[("host", "evil.example")],
        &envelope(device, "GetSystemDateAndTime"),
    )
    .await;
    assert!(s == 403 || s == 400, "{s}");
    // Only POST.
    let (s, _, _) = common::http(&addr, "GET", "/onvif/device_service", &[], "").await;
    assert_eq!(s, 405);
    let (s, _, _) = post(
        "/onvif/other_service",
        envelope(device, "GetSystemDateAndTime"),
        vec![],
    )
    .await;
    assert_eq!(s, 404);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn onvif_turned_off() {
    let (mut child, addr, dir) = daemon("enabled = false\n");
    let (s, _, _) = common::http(
        &addr,
        "POST",
        "/onvif/device_service",
        &[],
        &envelope(
            "http://www.onvif.org/ver10/device/wsdl",
            "GetSystemDateAndTime",
        ),
    )
    .await;
    assert_eq!(s, 404);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
