//! `--audio auto`: the microphone of the webcam that runs (docs/audio.md).
//!
//! A UVC webcam with a microphone is one USB device with a video interface
//! and an audio interface. In sysfs, the V4L2 node's `device` link and the
//! sound card's `device` link both lead to interfaces (`1-1:1.0`, `1-1:1.2`)
//! whose parent directory is that USB device (`1-1`). [`microphone_for`]
//! finds the sound card that shares the camera's USB device and has a
//! capture PCM. Pure over a sysfs root the caller gives, so the tests build
//! a fake tree.

use std::fs;
use std::path::{Path, PathBuf};

/// A capture device on the same USB device as the camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Microphone {
    pub card: u32,
    /// The card's ALSA id (`C920`): stable when card numbers move on replug.
    pub id: String,
    pub device: u32,
}

impl Microphone {
    /// Through ALSA's plug layer (a webcam's microphone is often 16 or 32
    /// kHz mono; the plug layer converts to what we encode).
    pub fn spec(&self) -> String {
        format!("alsa:plughw:CARD={},DEV={}", self.id, self.device)
    }
}

/// The microphone beside the V4L2 node `video` (`/dev/video0`), if the node
/// is a USB device's interface and a sound card with a capture PCM hangs
/// off the same USB device. The lowest card wins if several do.
pub fn microphone_for(sys: &Path, video: &Path) -> Option<Microphone> {
    let node = video.file_name()?;
    let camera = fs::canonicalize(sys.join("class/video4linux").join(node).join("device")).ok()?;
    let usb = usb_device(&camera)?;
    let mut found: Vec<Microphone> = fs::read_dir(sys.join("class/sound"))
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let card: u32 = name.to_str()?.strip_prefix("card")?.parse().ok()?;
            let dir = entry.path();
            let iface = fs::canonicalize(dir.join("device")).ok()?;
            if usb_device(&iface).as_deref() != Some(usb.as_path()) {
                return None;
            }
            let device = capture_pcms(&dir, card).into_iter().min()?;
            let id = fs::read_to_string(dir.join("id")).ok()?.trim().to_owned();
            valid_id(&id).then_some(Microphone { card, id, device })
        })
        .collect();
    found.sort_by_key(|m| m.card);
    found.into_iter().next()
}

/// A USB interface directory is named `<bus>-<ports>:<config>.<interface>`;
/// its parent is the USB device. Anything else (a platform camera such as
/// the Pi's `bcm2835-v4l2`) has no USB device and so no paired microphone.
fn usb_device(interface: &Path) -> Option<PathBuf> {
    let name = interface.file_name()?.to_str()?;
    let (port, iface) = name.split_once(':')?;
    let usb_like = port.contains('-')
        && port
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '.')
        && iface.chars().all(|c| c.is_ascii_digit() || c == '.');
    usb_like.then(|| interface.parent().map(Path::to_path_buf))?
}

/// Capture PCM device numbers of a card: its `pcmC<card>D<n>c` children.
fn capture_pcms(card_dir: &Path, card: u32) -> Vec<u32> {
    let prefix = format!("pcmC{card}D");
    fs::read_dir(card_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let n = name.to_str()?.strip_prefix(&prefix)?.strip_suffix('c')?;
                    n.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// ALSA ids are short alphanumeric names; anything else is not put into a
/// device string.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs with a USB webcam (video0 + card1 with capture), a USB
    /// speaker on another port (card2, playback only) and a platform camera
    /// (video10, the Pi's legacy camera).
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let usb = r.join("devices/platform/usb/usb1");
        for d in [
            "1-1/1-1:1.0",
            "1-1/1-1:1.2/sound/card1/pcmC1D0c",
            "1-2/1-2:1.0/sound/card2/pcmC2D0p",
        ] {
            fs::create_dir_all(usb.join(d)).unwrap();
        }
        fs::create_dir_all(r.join("devices/platform/soc/bcm2835-v4l2")).unwrap();
        fs::create_dir_all(r.join("class/video4linux/video0")).unwrap();
        fs::create_dir_all(r.join("class/video4linux/video10")).unwrap();
        symlink(
            usb.join("1-1/1-1:1.0"),
            r.join("class/video4linux/video0/device"),
        )
        .unwrap();
        symlink(
            r.join("devices/platform/soc/bcm2835-v4l2"),
            r.join("class/video4linux/video10/device"),
        )
        .unwrap();
        fs::create_dir_all(r.join("class/sound")).unwrap();
        for (card, iface, id) in [(1, "1-1/1-1:1.2", "C920"), (2, "1-2/1-2:1.0", "Speaker")] {
            let dir = usb.join(iface).join(format!("sound/card{card}"));
            fs::write(dir.join("id"), format!("{id}\n")).unwrap();
            symlink(usb.join(iface), dir.join("device")).unwrap();
            symlink(&dir, r.join(format!("class/sound/card{card}"))).unwrap();
        }
        t
    }

    #[test]
    fn a_webcam_is_paired_with_its_own_microphone() {
        let t = tree();
        let mic = microphone_for(t.path(), Path::new("/dev/video0")).unwrap();
        assert_eq!(
            mic,
            Microphone {
                card: 1,
                id: "C920".into(),
                device: 0
            }
        );
        assert_eq!(mic.spec(), "alsa:plughw:CARD=C920,DEV=0");
        // The spec is one the audio source accepts.
        assert!(pinhole_capture::audio::parse_spec(&mic.spec())
            .unwrap()
            .is_some());
    }

    #[test]
    fn no_microphone_for_a_platform_camera_or_an_unknown_node() {
        let t = tree();
        assert_eq!(microphone_for(t.path(), Path::new("/dev/video10")), None);
        assert_eq!(microphone_for(t.path(), Path::new("/dev/video7")), None);
        assert_eq!(
            microphone_for(Path::new("/nonexistent"), Path::new("/dev/video0")),
            None
        );
    }

    #[test]
    fn a_card_without_capture_or_with_an_odd_id_is_not_used() {
        let t = tree();
        let card1 = t
            .path()
            .join("devices/platform/usb/usb1/1-1/1-1:1.2/sound/card1");
        fs::remove_dir(card1.join("pcmC1D0c")).unwrap();
        fs::create_dir(card1.join("pcmC1D0p")).unwrap();
        assert_eq!(microphone_for(t.path(), Path::new("/dev/video0")), None);
        fs::create_dir(card1.join("pcmC1D3c")).unwrap();
        assert_eq!(
            microphone_for(t.path(), Path::new("/dev/video0")).map(|m| m.device),
            Some(3)
        );
        fs::write(card1.join("id"), "bad'id\n").unwrap();
        assert_eq!(microphone_for(t.path(), Path::new("/dev/video0")), None);
    }

    #[test]
    fn usb_interfaces_are_told_from_other_devices() {
        assert_eq!(
            usb_device(Path::new("/s/usb1/1-1.4/1-1.4:1.2")),
            Some(PathBuf::from("/s/usb1/1-1.4"))
        );
        assert_eq!(usb_device(Path::new("/s/soc/fe00b840.mailbox")), None);
        assert_eq!(usb_device(Path::new("/s/i2c-1/1-0010")), None);
        assert_eq!(usb_device(Path::new("/s/pci/0000:00:14.0")), None);
    }
}
