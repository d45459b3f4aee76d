//! `--source libcamera[:<id>]` and the libcamera step of `auto`: the
//! camera runs in the `pinhole-libcamera` helper process
//! (pinhole_capture::libcamera, docs/cameras.md).

use std::sync::Arc;
use std::time::Duration;

use pinhole_capture::libcamera::{
    find_helper, list_cameras, parse_spec, process_spawner, LibcameraConfig, LibcameraControls,
    LibcameraSource,
};
use pinhole_capture::Source;
use pinhole_media::Clock;

use crate::config::Config;

fn config(
    cfg: &Config,
    helper: std::path::PathBuf,
    camera: Option<String>,
    controls: &LibcameraControls,
) -> LibcameraConfig {
    let mut c = LibcameraConfig::new(helper, camera);
    c.controls = controls.clone();
    c.width = cfg.video.width;
    c.height = cfg.video.height;
    c.fps = cfg.video.fps;
    c.bitrate = cfg.video.bitrate;
    c.keyframe_interval = cfg.keyframe_interval();
    c.stall_timeout = Duration::from_millis(u64::from(cfg.camera.stall_timeout_ms));
    c
}

/// `libcamera` or `libcamera:<id>`; `None` if `spec` is not a libcamera one.
pub fn make(
    cfg: &Config,
    spec: &str,
    clock: Arc<dyn Clock>,
    controls: &LibcameraControls,
) -> Option<Result<Box<dyn Source>, String>> {
    let camera = parse_spec(spec)?;
    Some((|| {
        let helper = find_helper(cfg.camera.libcamera_helper.as_deref())
            .map_err(|e| format!("source '{spec}': {e}"))?;
        LibcameraSource::new(config(cfg, helper, camera, controls), clock)
            .map(|s| Box::new(s) as Box<dyn Source>)
            .map_err(|e| e.to_string())
    })())
}

/// For `auto`: the helper's first camera, with the reason it was chosen,
/// or why there is none.
pub fn auto(
    cfg: &Config,
    clock: Arc<dyn Clock>,
    controls: &LibcameraControls,
) -> Result<(Box<dyn Source>, String), String> {
    let helper = find_helper(cfg.camera.libcamera_helper.as_deref())?;
    let mut spawn = process_spawner(helper.clone(), Vec::new());
    let cameras = list_cameras(&mut spawn)?;
    let first = cameras
        .first()
        .ok_or_else(|| format!("{} sees no camera", helper.display()))?;
    let why = format!(
        "libcamera camera {} ({}) via {}",
        first.id,
        first.model,
        helper.display()
    );
    let src = LibcameraSource::new(config(cfg, helper, Some(first.id.clone()), controls), clock)
        .map_err(|e| e.to_string())?;
    Ok((Box::new(src), why))
}
