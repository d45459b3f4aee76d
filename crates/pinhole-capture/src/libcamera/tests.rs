use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openh264::formats::YUVSource;
use pinhole_camera_proto::fake::{self, FakeOptions};
use pinhole_media::SystemClock;

use super::*;

use crate::supervisor::{run_restarting, Ended};
use crate::test_sink::{wait_for, Sink};

/// A "process" that is a thread running the fake helper; `crash` cuts its
/// socket the way a dying process's would close.
struct ThreadHelper(Option<std::thread::JoinHandle<()>>);

impl HelperProcess for ThreadHelper {
    fn finish(&mut self, _grace: Duration) -> String {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
        "exited".into()
    }
    fn exited(&mut self) -> Option<String> {
        None
    }
}

type Sockets = Arc<Mutex<Vec<OwnedFd>>>;

fn thread_spawner(opts: FakeOptions, sockets: Sockets) -> Spawner {
    Box::new(move || {
        let (ours, theirs) = Channel::pair().map_err(|e| e.to_string())?;
        let dup = theirs
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| e.to_string())?;
        sockets.lock().expect("lock").push(dup);
        let opts = opts.clone();
        let t = std::thread::spawn(move || {
            let _ = fake::serve(&theirs, &opts);
        });
        Ok((
            Box::new(ThreadHelper(Some(t))) as Box<dyn HelperProcess>,
            ours,
        ))
    })
}

fn crash(sockets: &Sockets, n: usize) {
    let s = sockets.lock().expect("lock");
    nix::sys::socket::shutdown(s[n].as_raw_fd(), nix::sys::socket::Shutdown::Both)
        .expect("shutdown");
}

fn config(camera: Option<&str>) -> LibcameraConfig {
    let mut c = LibcameraConfig::new(PathBuf::from("/nonexistent"), camera.map(str::to_owned));
    // 60 rows: the fake pads them to 64, as an ISP pads to 16.
    c.width = 96;
    c.height = 60;
    c.fps = 60;
    c.keyframe_interval = 10;
    c
}

/// The source on its own thread against the in-process fake helper: the
/// recording sink, the stop flag and the thread.
type Running = (Arc<Sink>, StopFlag, std::thread::JoinHandle<Ended>);

fn start(cfg: LibcameraConfig, sockets: &Sockets) -> Running {
    let mut src = LibcameraSource::with_spawner(
        cfg,
        Arc::new(SystemClock::new()),
        thread_spawner(FakeOptions::default(), sockets.clone()),
    )
    .expect("source");
    let sink = Arc::new(Sink::default());
    let stop = StopFlag::new();
    let t = {
        let (sink, stop) = (sink.clone(), stop.clone());
        std::thread::spawn(move || run_restarting(&mut src, &*sink, &stop, &SystemClock::new()))
    };
    (sink, stop, t)
}

#[test]
fn specs() {
    assert_eq!(parse_spec("libcamera"), Some(None));
    assert_eq!(parse_spec("libcamera:"), Some(None));
    assert_eq!(
        parse_spec("libcamera:/base/soc/i2c0mux/i2c@1/imx708@1a"),
        Some(Some("/base/soc/i2c0mux/i2c@1/imx708@1a".into()))
    );
    assert_eq!(parse_spec("libcameras"), None);
    assert_eq!(parse_spec("v4l2:/dev/video0"), None);
    let e = find_helper(Some(Path::new("/nonexistent/helper"))).unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn frames_flow_and_resume_after_the_helper_dies() {
    let sockets = Sockets::default();
    let (sink, stop, t) = start(config(None), &sockets);
    wait_for("frames", || sink.count() >= 12);
    {
        let aus = sink.aus.lock().expect("lock");
        assert!(aus[0].keyframe, "the stream starts on a keyframe");
        assert!(
            aus[0].data.windows(4).any(|w| w == [0, 0, 1, 0x67]),
            "SPS in the first access unit"
        );
        assert!(aus[10].keyframe, "keyframe interval 10 honoured");
    }
    let info = sink.info.lock().expect("lock").clone().expect("info");
    assert_eq!(info.kind, "libcamera");
    assert!(
        info.detail
            .contains("fake/0 (fake-imx708): NV12 96x60 (stride 128)"),
        "{}",
        info.detail
    );
    let before = sink.count();
    crash(&sockets, 0);
    wait_for("the failure to be reported", || sink.failure().is_some());
    let why = sink.failure().expect("failure");
    assert!(
        why.contains("camera helper") && why.contains("restarting it in 0.5 s"),
        "{why}"
    );
    wait_for("frames after the restart", || sink.count() >= before + 12);
    assert_eq!(sockets.lock().expect("lock").len(), 2, "one new helper");
    {
        let aus = sink.aus.lock().expect("lock");
        let first_new = aus[before..].iter().position(|a| a.keyframe);
        assert!(first_new.is_some(), "the new session starts on a keyframe");
    }
    stop.stop();
    assert_eq!(t.join().expect("thread"), Ended::Stopped);
}

#[test]
fn helper_refusals_are_reported_with_their_reason() {
    let sockets = Sockets::default();
    let (sink, stop, t) = start(config(Some("imx477")), &sockets);
    wait_for("a failure", || sink.failure().is_some());
    stop.stop();
    assert_eq!(t.join().expect("thread"), Ended::Stopped);
    let why = sink.failure().expect("failure");
    assert_eq!(
        why,
        "camera helper: no camera \"imx477\"; restarting it in 0.5 s"
    );
    assert_eq!(sink.count(), 0);
}

#[test]
fn listing_cameras() {
    let mut spawn = thread_spawner(FakeOptions::default(), Sockets::default());
    let list = list_cameras(&mut spawn).expect("list");
    assert_eq!(list, FakeOptions::default().cameras);
    let mut failing: Spawner = Box::new(|| Err("cannot start /x: No such file".into()));
    assert_eq!(
        list_cameras(&mut failing).unwrap_err(),
        "cannot start /x: No such file"
    );
}

#[test]
fn bad_configs_are_refused() {
    let mut c = config(None);
    c.width = 95;
    let e = LibcameraSource::with_spawner(
        c,
        Arc::new(SystemClock::new()),
        Box::new(|| Err("x".into())),
    )
    .err()
    .expect("odd width");
    assert!(e.to_string().contains("sizes must be even"), "{e}");
}

/// Mean luma of each decoded picture of `aus` (decoded from the first).
fn lumas(aus: &[AccessUnit], w: usize, h: usize) -> Vec<f64> {
    let mut dec = openh264::decoder::Decoder::new().expect("decoder");
    let mut out = Vec::new();
    for au in aus {
        let Ok(Some(yuv)) = dec.decode(&au.data) else {
            continue;
        };
        let stride = yuv.strides().0;
        let y = yuv.y();
        let sum: u64 = (0..h)
            .flat_map(|r| y[r * stride..r * stride + w].iter())
            .map(|&p| u64::from(p))
            .sum();
        out.push(sum as f64 / (w * h) as f64);
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn controls_are_set_saved_and_sent_again_to_a_new_helper() {
    use pinhole_camera_proto::ControlValue::Float;
    let sockets = Sockets::default();
    let mut cfg = config(None);
    let controls = LibcameraControls::default();
    cfg.controls = controls.clone();
    let (sink, stop, t) = start(cfg, &sockets);
    wait_for("frames", || sink.count() >= 10);
    let names: Vec<String> = controls
        .available()
        .expect("announced")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["AeEnable", "Brightness", "Contrast", "ExposureTime"]
    );
    let e = controls
        .set(
            vec![
                ("Brightness".into(), Float(0.5)),
                ("Zoom".into(), Float(1.0)),
            ],
            Duration::from_secs(5),
        )
        .unwrap_err();
    assert!(e.starts_with("controls.Zoom:"), "{e}");
    let before = sink.count();
    controls
        .set(
            vec![("Brightness".into(), Float(0.6))],
            Duration::from_secs(5),
        )
        .expect("the helper accepts");
    let set_at = sink.count();
    wait_for("frames after the set", || sink.count() >= set_at + 12);
    let (w, h) = (96, 60);
    let l = lumas(&sink.aus.lock().expect("lock"), w, h);
    let (old, new) = (mean(&l[2..before]), mean(&l[set_at + 4..]));
    assert!(
        new - old > 40.0,
        "Brightness 0.6 reached the camera: mean luma {old:.1} → {new:.1}"
    );
    assert_eq!(controls.saved()["Brightness"], Float(0.6));

    // A new helper starts from its defaults: the saved value is sent again.
    let crashed_at = sink.count();
    crash(&sockets, 0);
    wait_for("frames after the restart", || {
        sockets.lock().expect("lock").len() == 2 && sink.count() >= crashed_at + 15
    });
    let l = lumas(&sink.aus.lock().expect("lock"), w, h);
    let again = mean(&l[l.len() - 6..]);
    assert!(
        again - old > 40.0,
        "Brightness re-applied after the restart: {old:.1} → {again:.1}"
    );
    stop.stop();
    assert_eq!(t.join().expect("thread"), Ended::Stopped);
}
