use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinhole_media::SystemClock;

use super::fake::{CamCtl, FakeCamera};
use super::*;

#[derive(Default)]
struct Sink {
    aus: Mutex<Vec<AccessUnit>>,
    states: Mutex<Vec<SourceState>>,
    info: Mutex<Option<SourceInfo>>,
}

impl FrameSink for Sink {
    fn publish(&self, au: AccessUnit) {
        self.aus.lock().expect("lock").push(au);
    }
    fn report(&self, state: SourceState) {
        self.states.lock().expect("lock").push(state);
    }
    fn update_info(&self, info: SourceInfo) {
        *self.info.lock().expect("lock") = Some(info);
    }
}

impl Sink {
    fn count(&self) -> usize {
        self.aus.lock().expect("lock").len()
    }
    fn failed_with(&self, what: &str) -> bool {
        self.states
            .lock()
            .expect("lock")
            .iter()
            .any(|s| matches!(s, SourceState::Failed(r) if r.contains(what)))
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

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
    let t = std::thread::spawn(move || src.run(&*s2, &st2));

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
    t.join().expect("join").expect("clean stop");
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
    assert!(e.contains("MJPG not offered"), "{e}");
    let mut missing: Opener =
        Box::new(|_p: &Path| Err(io::Error::from_raw_os_error(nix::libc::ENOENT)));
    let e = probe(&mut missing, Path::new("/dev/video7"), &want).unwrap_err();
    assert!(e.starts_with("/dev/video7:"), "{e}");
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
