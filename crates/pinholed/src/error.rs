//! What can stop the daemon or one of its parts, by kind: each error says
//! what failed with what input, and keeps its cause (`source()`), so a log
//! line reads "ota: key /data/keys/a.pub: …" rather than a bare
//! "invalid key".

use std::io;
use std::path::PathBuf;

use pinhole_capture::CaptureError;
use pinhole_ota::OtaError;

/// A source could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "unknown source '{0}': use test, pipe:<file|-|command>, v4l2:<device>, libcamera[:<id>] or auto"
    )]
    Unknown(String),
    /// The test pattern refused its settings or its encoder.
    #[error("test pattern: {0}")]
    TestPattern(#[source] CaptureError),
    /// A camera source refused its settings.
    #[error("{0}")]
    Camera(#[from] CaptureError),
    /// The libcamera helper is not where it is looked for.
    #[error("source '{spec}': {reason}")]
    NoHelper { spec: String, reason: String },
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("listen address '{addr}': {reason}")]
    BadListen { addr: String, reason: String },
    /// Binding a listener failed (the error names the address).
    #[error(transparent)]
    Listen(#[from] pinhole_server::ServerError),
    /// The source thread could not be started.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// The HLS segment directory could not be set up (HLS is then disabled).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub struct HlsDirError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Updates could not be set up (the camera keeps running without them).
#[derive(Debug, thiserror::Error)]
pub enum OtaSetupError {
    #[error("ota: cannot read public key {}: {source}", .path.display())]
    ReadKey {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ota: key {}: {source}", .path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: OtaError,
    },
    #[error("ota: no public_keys: every bundle would be refused")]
    NoKeys,
    #[error("ota.boot = {0:?}: use \"file\" or \"rpi\"")]
    UnknownBoot(String),
    #[error("ota: reading the boot state: {0}")]
    BootState(#[source] OtaError),
    #[error("ota: thread: {0}")]
    Thread(#[source] io::Error),
}

/// Why a camera control could not be read or set (`/api/camera`; the HTTP
/// answer carries the text).
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("the {0} source has no camera controls")]
    NoControls(&'static str),
    #[error("cannot read the controls of {}: {source}", .device.display())]
    ReadControls {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", .device.display())]
    Device {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The driver or the checks refused a value (all or nothing).
    #[error("controls.{0}")]
    Refused(String),
    #[error("the camera helper is not running (starting or restarting)")]
    HelperNotRunning,
    #[error("controls.{0}: the camera no longer has it")]
    Gone(String),
    /// The libcamera helper refused the controls or did not answer.
    #[error("{0}")]
    Helper(String),
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::config::OtaConfig;

    #[test]
    fn ota_errors_name_the_file_and_keep_the_cause() {
        let dir = tempfile_dir();
        let missing = dir.join("missing.pub");
        let bad = dir.join("bad.pub");
        std::fs::write(&bad, "not a key").expect("write");
        let cfg = |keys: Vec<PathBuf>| OtaConfig {
            enabled: true,
            public_keys: keys,
            ..OtaConfig::default()
        };
        let e = crate::ota::start(&cfg(vec![missing.clone()]))
            .err()
            .expect("error");
        assert!(matches!(&e, OtaSetupError::ReadKey { path, .. } if *path == missing));
        assert!(e.to_string().contains("missing.pub"), "{e}");
        let io = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(io.map(io::Error::kind), Some(io::ErrorKind::NotFound));

        let e = crate::ota::start(&cfg(vec![bad])).err().expect("error");
        assert!(matches!(e, OtaSetupError::BadKey { .. }), "{e}");
        assert!(e.source().is_some());
        let e = crate::ota::start(&cfg(vec![])).err().expect("error");
        assert!(matches!(e, OtaSetupError::NoKeys));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn source_errors_keep_the_capture_error() {
        let e = SourceError::TestPattern(CaptureError::InvalidConfig {
            source_kind: "test",
            reason: "0 fps".into(),
        });
        assert_eq!(
            e.to_string(),
            "test pattern: invalid test source configuration: 0 fps"
        );
        assert!(e.source().is_some_and(|s| s.is::<CaptureError>()));
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("pinholed-errors-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }
}
