//! Writing `PUT /api/camera` changes back to the `--config` file, keeping
//! everything else in it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, LibcameraControl};

/// Writes the video settings and camera controls of `cfg` into the TOML
/// file at `path`, keeping every other key and section (comments are not
/// kept): temp file, fsync, rename, fsync of the directory.
pub fn persist(path: &Path, cfg: &Config) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?;
    let section = |table: &mut toml::Table, name: &str| -> std::io::Result<toml::Table> {
        match table.remove(name) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(t)) => Ok(t),
            Some(_) => Err(Error::new(
                ErrorKind::InvalidData,
                format!("{name} is not a table"),
            )),
        }
    };
    let mut video = section(&mut table, "video")?;
    let v = &cfg.video;
    for (k, n) in [
        ("width", v.width),
        ("height", v.height),
        ("fps", v.fps),
        ("bitrate", v.bitrate),
        ("keyframe_interval", v.keyframe_interval),
    ] {
        video.insert(k.into(), toml::Value::Integer(i64::from(n)));
    }
    table.insert("video".into(), toml::Value::Table(video));
    if !cfg.camera.controls.is_empty() {
        let mut camera = section(&mut table, "camera")?;
        let controls = cfg
            .camera
            .controls
            .iter()
            .map(|(k, v)| (k.clone(), toml::Value::Integer(*v)))
            .collect();
        camera.insert("controls".into(), toml::Value::Table(controls));
        table.insert("camera".into(), toml::Value::Table(camera));
    }
    if !cfg.camera.libcamera_controls.is_empty() {
        let mut camera = section(&mut table, "camera")?;
        let controls = cfg
            .camera
            .libcamera_controls
            .iter()
            .map(|(k, v)| {
                let v = match *v {
                    LibcameraControl::Bool(b) => toml::Value::Boolean(b),
                    LibcameraControl::Int(i) => toml::Value::Integer(i),
                    LibcameraControl::Float(f) => toml::Value::Float(f),
                };
                (k.clone(), v)
            })
            .collect();
        camera.insert("libcamera_controls".into(), toml::Value::Table(controls));
        table.insert("camera".into(), toml::Value::Table(camera));
    }
    // The sound's source (the settings page's Sound menu); a file that
    // never had audio keeps none.
    if cfg.audio.source != "none" || table.contains_key("audio") {
        let mut audio = section(&mut table, "audio")?;
        audio.insert(
            "source".into(),
            toml::Value::String(cfg.audio.source.clone()),
        );
        table.insert("audio".into(), toml::Value::Table(audio));
    }
    let out = toml::to_string(&table).map_err(|e| Error::other(e.to_string()))?;
    write_atomically(path, out.as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use pinhole_camera_proto::ControlValue;

    use super::*;
    use crate::camera_ctl::libcamera_controls;

    #[test]
    fn persist_keeps_other_sections() {
        let dir = std::env::temp_dir().join(format!("pinhole-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            "# a comment\nsource = \"test\"\n[http]\njpeg_quality = 70\n[video]\nfps = 12\n",
        )
        .expect("write");
        let mut cfg = Config::default();
        cfg.video.width = 640;
        cfg.video.height = 360;
        cfg.video.fps = 12;
        cfg.camera.controls.insert("brightness".into(), 7);
        cfg.camera
            .libcamera_controls
            .insert("Brightness".into(), LibcameraControl::Float(0.25));
        cfg.camera
            .libcamera_controls
            .insert("AeEnable".into(), LibcameraControl::Bool(false));
        persist(&path, &cfg).expect("persist");
        let text = std::fs::read_to_string(&path).expect("read");
        let back = Config::from_toml(&text, &path).expect("parse");
        assert_eq!(
            (back.video.width, back.video.height, back.video.fps),
            (640, 360, 12)
        );
        assert_eq!(back.http.jpeg_quality, 70, "other sections stay");
        assert_eq!(back.camera.controls["brightness"], 7);
        assert_eq!(
            back.camera.libcamera_controls["Brightness"],
            LibcameraControl::Float(0.25)
        );
        assert_eq!(
            back.camera.libcamera_controls["AeEnable"],
            LibcameraControl::Bool(false)
        );
        let saved = libcamera_controls(&back).saved();
        assert_eq!(saved["Brightness"], ControlValue::Float(0.25));
        assert_eq!(back.camera.encoder, "software");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temp files left");
        assert_eq!(back.audio.source, "none");
        assert!(
            !text.contains("[audio]"),
            "no audio section for a file without one"
        );
        // The Sound menu's choice is saved, and so is turning it off again.
        cfg.audio.source = "alsa:plughw:1,0".into();
        persist(&path, &cfg).expect("persist");
        let text = std::fs::read_to_string(&path).expect("read");
        let back = Config::from_toml(&text, &path).expect("parse");
        assert_eq!(back.audio.source, "alsa:plughw:1,0");
        cfg.audio.source = "none".into();
        persist(&path, &cfg).expect("persist");
        let text = std::fs::read_to_string(&path).expect("read");
        let back = Config::from_toml(&text, &path).expect("parse");
        assert_eq!(back.audio.source, "none");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
