//! Raspberry Pi OS: `--source auto` runs `rpicam-vid` through the pipe
//! source when that program is installed (the `.deb`, docs/cameras.md).
//! Raspberry Pi's own camera stack is the only one that drives the Camera
//! Module 3 and every libcamera-only sensor, and its hardware H.264 needs
//! no encoder of ours. Where it is not installed, auto is as before.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use pinholed::config::Config;

/// Raspberry Pi's camera apps; `libcamera-vid` is the pre-2024 name.
const PROGRAMS: [&str; 2] = ["rpicam-vid", "libcamera-vid"];

/// The first of [`PROGRAMS`] that is an executable file in `path` (a
/// `PATH`-style list).
pub fn find(path: Option<&OsStr>) -> Option<PathBuf> {
    let path = path?;
    PROGRAMS.iter().find_map(|name| {
        std::env::split_paths(path)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The command line that streams the configured picture as H.264 Annex B
/// on stdout: forever (`-t 0`), no preview window, SPS/PPS with every
/// keyframe (`--inline`), each frame flushed as it is encoded (`--flush`,
/// so the pipe source can publish it at once).
pub fn command(program: &Path, cfg: &Config) -> String {
    format!(
        "exec '{}' -t 0 -n --codec h264 --inline --flush --width {} --height {} \
         --framerate {} --bitrate {} --intra {} -o -",
        program.display().to_string().replace('\'', r"'\''"),
        cfg.video.width,
        cfg.video.height,
        cfg.video.fps,
        cfg.video.bitrate,
        cfg.keyframe_interval(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_program_on_the_path_and_builds_its_command() {
        let dir = std::env::temp_dir().join(format!("pinhole-rpicam-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find(Some(&path)), None);
        assert_eq!(find(None), None);
        // Not executable: not found.
        std::fs::write(b.join("libcamera-vid"), "#!/bin/sh\n").unwrap();
        assert_eq!(find(Some(&path)), None);
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(b.join("libcamera-vid"), exec.clone()).unwrap();
        assert_eq!(find(Some(&path)), Some(b.join("libcamera-vid")));
        // rpicam-vid wins over the old name, wherever it is on the path.
        std::fs::write(b.join("rpicam-vid"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("rpicam-vid"), exec).unwrap();
        assert_eq!(find(Some(&path)), Some(b.join("rpicam-vid")));
        std::fs::remove_dir_all(&dir).unwrap();

        let mut cfg = Config::default();
        cfg.video.width = 1280;
        cfg.video.height = 720;
        cfg.video.fps = 30;
        cfg.video.bitrate = 2_000_000;
        cfg.video.keyframe_interval = 0;
        assert_eq!(
            command(Path::new("/usr/bin/rpicam-vid"), &cfg),
            "exec '/usr/bin/rpicam-vid' -t 0 -n --codec h264 --inline --flush --width 1280 \
             --height 720 --framerate 30 --bitrate 2000000 --intra 60 -o -"
        );
    }
}
