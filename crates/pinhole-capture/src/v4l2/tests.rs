use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinhole_media::SystemClock;

use super::fake::{CamCtl, FakeCamera};
use super::*;

use crate::supervisor::{run_restarting, Ended};
use crate::test_sink::{wait_for, Sink};

fn source(ctl: &Arc<Mutex<CamCtl>>) -> V4l2Source {
    let c = ctl.clone();
    let opener: Opener = Box::new(move |_p: &Path| {
        let mut g = c.lock().expect("lock");
        if g.unplugged {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOENT));
        }
        g.opens += 1;
        drop(g);
        Ok(Box::new(FakeCamera::new(c.clone())) as Box<dyn Device>)
    });
    let mut cfg = V4l2Config::new("/dev/video9");
    cfg.width = 64;
    cfg.height = 48;
    cfg.keyframe_interval = 10;
    cfg.stall_timeout = Duration::from_millis(300);
    V4l2Source::with_opener(cfg, Arc::new(SystemClock::new()), opener).expect("source")
}

#[test]
fn captures_encodes_survives_unplug_and_stall() {
    let ctl = Arc::new(Mutex::new(CamCtl::default()));
    let mut src = source(&ctl);
    let sink = Arc::new(Sink::default());
    let stop = StopFlag::new();
    let (s2, st2) = (sink.clone(), stop.clone());
    let t = std::thread::spawn(move || run_restarting(&mut src, &*s2, &st2, &SystemClock::new()));

    wait_for("first frames", || sink.count() >= 12);
    {
        let aus = sink.aus.lock().expect("lock");
        assert!(aus[0].keyframe, "the stream starts on an IDR");
        assert!(aus[10].keyframe && !aus[5].keyframe, "IDR every 10 frames");
    }
    let info = sink.info.lock().expect("lock").clone().expect("info");
    assert!(
        info.detail.contains("YUYV 64x48 @ 30 fps") && info.detail.contains("openh264"),
        "{}",
        info.detail
    );

    // Unplug: the session ends with a reason, reopening fails until replugged.
    ctl.lock().expect("lock").unplugged = true;
    wait_for("unplug reported", || sink.failed_with("disconnected"));
    wait_for("a failed reopen", || sink.failed_with("/dev/video9"));
    let before = sink.count();
    ctl.lock().expect("lock").unplugged = false;
    wait_for("video after replug", || sink.count() >= before + 5);
    let aus = sink.aus.lock().expect("lock");
    assert!(aus[before].keyframe, "resumes on a keyframe");
    drop(aus);

    // A camera that stops delivering without an error is restarted.
    let opens = ctl.lock().expect("lock").opens;
    ctl.lock().expect("lock").stalled = true;
    wait_for("stall detected", || sink.failed_with("no frame for"));
    ctl.lock().expect("lock").stalled = false;
    let before = sink.count();
    wait_for("video after stall", || sink.count() >= before + 5);
    assert!(ctl.lock().expect("lock").opens > opens, "device reopened");

    stop.stop();
    assert_eq!(t.join().expect("join"), Ended::Stopped, "clean stop");
}

#[test]
fn probe_explains_what_it_cannot_use() {
    let ctl = Arc::new(Mutex::new(CamCtl::default()));
    let c = ctl.clone();
    let mut opener: Opener =
        Box::new(move |_p: &Path| Ok(Box::new(FakeCamera::new(c.clone())) as Box<dyn Device>));
    let want = Wanted {
        width: 1280,
        height: 720,
        fps: 30,
        fourcc: None,
    };
    let p = probe(&mut opener, Path::new("/dev/video0"), &want).expect("usable");
    assert_eq!((p.choice.width, p.card.as_str()), (64, "Fake Camera"));
    let want_mjpg = Wanted {
        fourcc: Some(PIX_FMT_MJPEG),
        ..want
    };
    let e = probe(&mut opener, Path::new("/dev/video0"), &want_mjpg).unwrap_err();
    assert!(
        e.reason.contains("MJPG not offered") && !e.not_capture,
        "{e}"
    );
    let mut missing: Opener =
        Box::new(|_p: &Path| Err(io::Error::from_raw_os_error(nix::libc::ENOENT)));
    let e = probe(&mut missing, Path::new("/dev/video7"), &want).unwrap_err();
    assert!(e.reason.starts_with("/dev/video7:"), "{e}");
    // A refusal says which kind, and what to do about the lasting one.
    let mut refused: Opener =
        Box::new(|_p: &Path| Err(io::Error::from_raw_os_error(nix::libc::EPERM)));
    let e = probe(&mut refused, Path::new("/dev/video0"), &want).unwrap_err();
    assert!(
        e.reason.contains("not permitted") && e.reason.contains("restart pinholed"),
        "{e}"
    );
    let mut unreadable: Opener =
        Box::new(|_p: &Path| Err(io::Error::from_raw_os_error(nix::libc::EACCES)));
    let e = probe(&mut unreadable, Path::new("/dev/video0"), &want).unwrap_err();
    assert!(e.reason.contains("group video"), "{e}");
}

#[test]
fn spec_parsing_and_node_listing() {
    assert_eq!(
        parse_spec("/dev/video2"),
        (PathBuf::from("/dev/video2"), None)
    );
    assert_eq!(
        parse_spec("/dev/video0?format=MJPG"),
        (PathBuf::from("/dev/video0"), Some(PIX_FMT_MJPEG))
    );
    let dir = std::env::temp_dir().join(format!("pinhole-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for n in ["video10", "video2", "media0", "video0"] {
        std::fs::write(dir.join(n), b"").expect("touch");
    }
    let names: Vec<String> = device_nodes(&dir)
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["video0", "video2", "video10"]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn camera_with_controls() -> (Arc<Mutex<CamCtl>>, FakeCamera) {
    let ctl = Arc::new(Mutex::new(CamCtl {
        controls: super::fake::vivid_like_controls(),
        ..Default::default()
    }));
    let cam = FakeCamera::new(ctl.clone());
    (ctl, cam)
}

fn value_of(ctl: &Arc<Mutex<CamCtl>>, id: u32) -> i64 {
    let g = ctl.lock().expect("lock");
    g.controls.iter().find(|(c, _)| c.id == id).expect("id").1
}

#[test]
fn controls_are_listed_with_ranges_menus_and_current_values() {
    let (ctl, mut cam) = camera_with_controls();
    ctl.lock().expect("lock").controls[1].1 = -10; // hue
    let list = controls::list(&mut cam).expect("list");
    let keys: Vec<&str> = list.iter().map(|c| c.key.as_str()).collect();
    // The codec-class bitrate is pinhole's own, not offered.
    assert_eq!(
        keys,
        [
            "brightness",
            "hue",
            "gain_automatic",
            "power_line_frequency"
        ]
    );
    assert_eq!((list[0].info.minimum, list[0].info.maximum), (0, 255));
    assert_eq!((list[0].value, list[0].info.default), (128, 128));
    assert_eq!(list[1].value, -10, "negative values read back as they are");
    assert_eq!(
        list[3].menu,
        [(0, "item 0".to_owned()), (2, "item 2".to_owned())],
        "menu items the driver skips are left out"
    );
    assert_eq!(
        list[3].check(1).unwrap_err(),
        "power_line_frequency: 1 is not one of 0 (item 0), 2 (item 2)"
    );
    assert!(list[0].check(256).is_err() && list[0].check(255).is_ok());
    assert!(list[2].check(2).is_err());
}

#[test]
fn setting_controls_is_all_or_nothing() {
    let (ctl, mut cam) = camera_with_controls();
    let list = controls::list(&mut cam).expect("list");
    let set = |m: &[(&str, i64)]| -> BTreeMap<String, i64> {
        m.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    // Valid: set, auto switch first, and the driver's values come back.
    let got = controls::set(
        &mut cam,
        &list,
        &set(&[("brightness", 200), ("gain_automatic", 0)]),
    )
    .expect("set");
    assert_eq!(got, set(&[("brightness", 200), ("gain_automatic", 0)]));
    assert_eq!(value_of(&ctl, 0x0098_0900), 200);
    let sets = ctl.lock().expect("lock").sets.clone();
    assert_eq!(sets.first(), Some(&(0x0098_0912, 0)), "booleans go first");

    // Out of range or unknown: refused before anything is sent.
    let n = ctl.lock().expect("lock").sets.len();
    let e = controls::set(&mut cam, &list, &set(&[("brightness", 10), ("hue", 500)])).unwrap_err();
    assert!(e.contains("hue: 500 is outside -128..=127"), "{e}");
    assert!(controls::set(&mut cam, &list, &set(&[("zoom", 1)])).is_err());
    assert_eq!(ctl.lock().expect("lock").sets.len(), n, "nothing was set");

    // The driver refuses one: the one already set is put back.
    let list = controls::list(&mut cam).expect("list");
    ctl.lock().expect("lock").refuse = Some(0x0098_0903);
    let e = controls::set(&mut cam, &list, &set(&[("brightness", 20), ("hue", 5)])).unwrap_err();
    assert!(e.starts_with("hue: the camera refused 5"), "{e}");
    assert_eq!(value_of(&ctl, 0x0098_0900), 200, "brightness put back");
    assert_eq!(value_of(&ctl, 0x0098_0903), 0);
}

#[test]
fn saved_controls_are_applied_on_every_open() {
    let ctl = Arc::new(Mutex::new(CamCtl {
        controls: super::fake::vivid_like_controls(),
        ..Default::default()
    }));
    let mut src = source(&ctl);
    let saved = controls::SavedControls::new(
        [("brightness".to_owned(), 42), ("zoom".to_owned(), 3)].into(),
    );
    src.cfg.controls = saved.clone();
    let sink = Arc::new(Sink::default());
    let stop = StopFlag::new();
    let (s2, st2) = (sink.clone(), stop.clone());
    let t = std::thread::spawn(move || run_restarting(&mut src, &*s2, &st2, &SystemClock::new()));
    wait_for("frames", || sink.count() >= 3);
    assert_eq!(value_of(&ctl, 0x0098_0900), 42, "set when opened");

    // A replugged camera starts from its defaults: set again on reopen,
    // with what PUT changed in the meantime.
    saved.update(&[("brightness".to_owned(), 99)].into());
    ctl.lock().expect("lock").unplugged = true;
    wait_for("unplug reported", || sink.failed_with("disconnected"));
    {
        let mut g = ctl.lock().expect("lock");
        g.controls = super::fake::vivid_like_controls();
        g.unplugged = false;
    }
    let before = sink.count();
    wait_for("video after replug", || sink.count() >= before + 3);
    assert_eq!(value_of(&ctl, 0x0098_0900), 99);
    stop.stop();
    assert_eq!(t.join().expect("join"), Ended::Stopped, "clean stop");
}
