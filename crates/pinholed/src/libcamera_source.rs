//! `--source libcamera[:<id>]` and the libcamera step of `auto`: the
//! camera runs in the `pinhole-libcamera` helper process
//! (pinhole_capture::libcamera, docs/cameras.md).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pinhole_capture::libcamera::{
    find_helper, list_cameras, parse_spec, process_spawner, LibcameraConfig, LibcameraControls,
    LibcameraSource,
};
use pinhole_capture::Source;
use pinhole_media::Clock;

use crate::auto;
use crate::config::Config;
use crate::error::SourceError;

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
) -> Option<Result<Box<dyn Source>, SourceError>> {
    let camera = parse_spec(spec)?;
    Some((|| {
        let helper = find_helper(cfg.camera.libcamera_helper.as_deref()).map_err(|reason| {
            SourceError::NoHelper {
                spec: spec.to_owned(),
                reason,
            }
        })?;
        LibcameraSource::new(config(cfg, helper, camera, controls), clock)
            .map(|s| Box::new(s) as Box<dyn Source>)
            .map_err(SourceError::from)
    })())
}

/// For `auto`: how to find the helper (a stat, no process) and ask it for
/// its cameras (a helper process, bounded by the protocol's timeouts).
pub fn probe(cfg: &Config) -> auto::LibcameraProbe {
    let configured = cfg.camera.libcamera_helper.clone();
    auto::LibcameraProbe {
        locate: Box::new(move || find_helper(configured.as_deref())),
        list: Arc::new(|helper: &Path| {
            let mut spawn = process_spawner(helper.to_owned(), Vec::new());
            let cameras = list_cameras(&mut spawn)?;
            Ok(cameras
                .into_iter()
                .map(|c| auto::Candidate {
                    what: format!(
                        "libcamera camera {} ({}) via {}",
                        c.id,
                        c.model,
                        helper.display()
                    ),
                    camera: auto::Camera::Libcamera(c.id),
                })
                .collect())
        }),
        media: Box::new(|| auto::media_nodes(Path::new("/dev"))),
    }
}

/// For `auto`: the libcamera camera `id`.
pub fn camera(
    cfg: &Config,
    id: &str,
    clock: Arc<dyn Clock>,
    controls: &LibcameraControls,
) -> Result<Box<dyn Source>, SourceError> {
    let helper = find_helper(cfg.camera.libcamera_helper.as_deref()).map_err(|reason| {
        SourceError::NoHelper {
            spec: format!("libcamera:{id}"),
            reason,
        }
    })?;
    LibcameraSource::new(config(cfg, helper, Some(id.to_owned()), controls), clock)
        .map(|s| Box::new(s) as Box<dyn Source>)
        .map_err(SourceError::from)
}
