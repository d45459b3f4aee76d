//! `pinhole-libcamera`: the libcamera capture helper (docs/cameras.md).
//!
//! pinholed starts it with one end of a SOCK_SEQPACKET socket as the
//! descriptor named by `PINHOLE_CAMERA_SOCKET_FD`; the helper opens a
//! camera, allocates its frame buffers (dmabufs), sends their descriptors
//! once, then announces each filled buffer and requeues it when pinholed
//! releases it. No picture is copied.
//!
//!     pinhole-libcamera --version     version, protocol, libcamera version
//!     pinhole-libcamera --list        the cameras libcamera sees
//!     pinhole-libcamera [--fake]      serve pinholed (--fake: synthetic frames)

use std::process::ExitCode;

use pinhole_camera_proto::fake::{self, FakeOptions};
use pinhole_camera_proto::{Channel, PROTOCOL_VERSION};

#[cfg(feature = "libcamera")]
mod camera;

const USAGE: &str = "usage: pinhole-libcamera [--version | --list | --fake]\n\
    Started by pinholed (--source libcamera[:<id>]) with its socket in $PINHOLE_CAMERA_SOCKET_FD.";

fn libcamera_version() -> String {
    #[cfg(feature = "libcamera")]
    {
        camera::version()
    }
    #[cfg(not(feature = "libcamera"))]
    {
        "not built in (fake camera only)".into()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = args.first().map(String::as_str);
    let result = match arg {
        Some("--version" | "-V") => {
            println!(
                "pinhole-libcamera {} (protocol {PROTOCOL_VERSION}, libcamera {})",
                env!("CARGO_PKG_VERSION"),
                libcamera_version()
            );
            Ok(())
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("--list") => list(args.get(1).map(String::as_str) == Some("--fake")),
        Some("--fake") => Channel::from_env()
            .and_then(|ch| fake::serve(&ch, &FakeOptions::default()))
            .map_err(|e| e.to_string()),
        None => serve(),
        Some(other) => Err(format!("unknown argument {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinhole-libcamera: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list(fake: bool) -> Result<(), String> {
    let cameras = if fake {
        FakeOptions::default().cameras
    } else {
        list_real()?
    };
    if cameras.is_empty() {
        println!("no cameras");
    }
    for c in cameras {
        println!("{}\t{}", c.id, c.model);
    }
    Ok(())
}

#[cfg(feature = "libcamera")]
fn list_real() -> Result<Vec<pinhole_camera_proto::CameraDesc>, String> {
    camera::list()
}

#[cfg(not(feature = "libcamera"))]
fn list_real() -> Result<Vec<pinhole_camera_proto::CameraDesc>, String> {
    Err("built without libcamera (cargo feature `libcamera`): only --fake works".into())
}

fn serve() -> Result<(), String> {
    let ch = Channel::from_env().map_err(|e| e.to_string())?;
    #[cfg(feature = "libcamera")]
    {
        camera::serve(&ch)
    }
    #[cfg(not(feature = "libcamera"))]
    {
        let text = "this pinhole-libcamera was built without libcamera (cargo feature `libcamera`)";
        let _ = ch.send(
            &pinhole_camera_proto::Message::Hello {
                version: PROTOCOL_VERSION,
                software: format!("pinhole-libcamera {}", env!("CARGO_PKG_VERSION")),
            },
            &[],
        );
        let _ = ch.recv(Some(5000));
        let _ = ch.send(&pinhole_camera_proto::Message::Error(text.into()), &[]);
        Err(text.into())
    }
}
