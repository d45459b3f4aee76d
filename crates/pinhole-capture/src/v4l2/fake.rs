//! A fake V4L2 camera at the ioctl boundary: one YUYV format, frames on
//! demand, and switches to unplug it or make it stall.

use std::io;
use std::sync::{Arc, Mutex};

use super::device::*;
use super::sys::*;

#[derive(Default)]
pub(crate) struct CamCtl {
    pub unplugged: bool,
    pub stalled: bool,
    pub opens: u32,
    pub frames: u64,
    /// The camera's controls and their current values (kept by the
    /// "driver", so they survive reopening like a real device's).
    pub controls: Vec<(CtrlInfo, i64)>,
    /// `set_ctrl` of this id fails with EBUSY.
    pub refuse: Option<u32>,
    /// Every successful `set_ctrl`, in order.
    pub sets: Vec<(u32, i64)>,
}

/// A few controls like vivid's: brightness, hue (negative range), a
/// boolean auto switch, a menu, and a codec-class one that is not offered.
pub(crate) fn vivid_like_controls() -> Vec<(CtrlInfo, i64)> {
    let c = |id, kind, name: &str, min, max, step, default| {
        (
            CtrlInfo {
                id,
                kind,
                name: name.into(),
                minimum: min,
                maximum: max,
                step,
                default,
                flags: 0,
            },
            default,
        )
    };
    vec![
        c(0x0098_0900, CTRL_TYPE_INTEGER, "Brightness", 0, 255, 1, 128),
        c(0x0098_0903, CTRL_TYPE_INTEGER, "Hue", -128, 127, 1, 0),
        c(
            0x0098_0912,
            CTRL_TYPE_BOOLEAN,
            "Gain, Automatic",
            0,
            1,
            1,
            1,
        ),
        c(
            0x0098_0918,
            CTRL_TYPE_MENU,
            "Power Line Frequency",
            0,
            2,
            1,
            1,
        ),
        c(
            CID_MPEG_VIDEO_BITRATE,
            CTRL_TYPE_INTEGER,
            "Video Bitrate",
            1,
            1 << 24,
            1,
            1000,
        ),
    ]
}

pub(crate) struct FakeCamera {
    pub ctl: Arc<Mutex<CamCtl>>,
    pub width: u32,
    pub height: u32,
    queued: std::collections::VecDeque<u32>,
    mem: Vec<Vec<u8>>,
    streaming: bool,
}

impl FakeCamera {
    pub fn new(ctl: Arc<Mutex<CamCtl>>) -> Self {
        FakeCamera {
            ctl,
            width: 64,
            height: 48,
            queued: Default::default(),
            mem: Vec::new(),
            streaming: false,
        }
    }

    fn gone(&self) -> io::Result<()> {
        if self.ctl.lock().map(|c| c.unplugged).unwrap_or(true) {
            Err(io::Error::from_raw_os_error(nix::libc::ENODEV))
        } else {
            Ok(())
        }
    }
}

impl Device for FakeCamera {
    fn querycap(&mut self) -> io::Result<Capability> {
        self.gone()?;
        Ok(Capability {
            driver: "fakecam".into(),
            card: "Fake Camera".into(),
            bus_info: "usb-fake".into(),
            caps: CAP_VIDEO_CAPTURE | CAP_STREAMING,
        })
    }
    fn enum_fmt(&mut self, _: u32, index: u32) -> io::Result<Option<FmtDesc>> {
        Ok((index == 0).then(|| FmtDesc {
            fourcc: PIX_FMT_YUYV,
            description: "YUYV 4:2:2".into(),
        }))
    }
    fn enum_framesizes(&mut self, _: u32, index: u32) -> io::Result<Option<FrameSize>> {
        Ok((index == 0).then_some(FrameSize::Discrete {
            width: self.width,
            height: self.height,
        }))
    }
    fn enum_frameintervals(
        &mut self,
        _: u32,
        _: u32,
        _: u32,
        index: u32,
    ) -> io::Result<Option<FrameInterval>> {
        Ok((index == 0).then_some(FrameInterval::Discrete { num: 1, den: 30 }))
    }
    fn g_fmt(&mut self, buf_type: u32) -> io::Result<Format> {
        Ok(Format {
            buf_type,
            width: self.width,
            height: self.height,
            fourcc: PIX_FMT_YUYV,
            planes: vec![PlaneFormat {
                bytesperline: self.width * 2,
                sizeimage: self.width * self.height * 2,
            }],
        })
    }
    fn s_fmt(&mut self, fmt: &Format) -> io::Result<Format> {
        self.gone()?;
        self.g_fmt(fmt.buf_type)
    }
    fn s_frame_interval(&mut self, _: u32, n: u32, d: u32) -> io::Result<Option<(u32, u32)>> {
        Ok(Some((n, d)))
    }
    fn reqbufs(&mut self, _: u32, count: u32) -> io::Result<u32> {
        self.mem = vec![vec![0x80; (self.width * self.height * 2) as usize]; count as usize];
        self.queued.clear();
        Ok(count)
    }
    fn qbuf(&mut self, _: u32, index: u32, _: &[u32], _: u64) -> io::Result<()> {
        self.gone()?;
        self.queued.push_back(index);
        Ok(())
    }
    fn dqbuf(&mut self, _: u32) -> io::Result<Dequeued> {
        self.gone()?;
        let stalled = self.ctl.lock().map(|c| c.stalled).unwrap_or(false);
        if stalled || !self.streaming {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let Some(index) = self.queued.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if let Ok(mut c) = self.ctl.lock() {
            c.frames += 1;
        }
        Ok(Dequeued {
            index,
            flags: 0,
            bytesused: vec![self.width * self.height * 2],
            timestamp_us: 0,
            sequence: 0,
        })
    }
    fn buffer(&self, _: u32, index: u32, _: usize) -> &[u8] {
        self.mem.get(index as usize).map_or(&[], |m| m.as_slice())
    }
    fn buffer_mut(&mut self, _: u32, index: u32, _: usize) -> &mut [u8] {
        self.mem
            .get_mut(index as usize)
            .map_or(&mut [], |m| m.as_mut_slice())
    }
    fn streamon(&mut self, _: u32) -> io::Result<()> {
        self.gone()?;
        self.streaming = true;
        Ok(())
    }
    fn streamoff(&mut self, _: u32) -> io::Result<()> {
        self.streaming = false;
        Ok(())
    }
    fn poll(&mut self, timeout_ms: i32) -> io::Result<Ready> {
        let (unplugged, stalled) = self
            .ctl
            .lock()
            .map(|c| (c.unplugged, c.stalled))
            .unwrap_or((true, false));
        if unplugged {
            return Ok(Ready {
                error: true,
                ..Default::default()
            });
        }
        // Pace like a 30 fps camera (shortened), or wait out a stall.
        std::thread::sleep(std::time::Duration::from_millis(if stalled {
            timeout_ms.clamp(0, 20) as u64
        } else {
            5
        }));
        Ok(Ready {
            readable: !stalled && !self.queued.is_empty(),
            ..Default::default()
        })
    }
    fn queryctrl(&mut self, id: u32) -> io::Result<Option<CtrlInfo>> {
        self.gone()?;
        let ctl = self.ctl.lock().map_err(|_| io::Error::other("poisoned"))?;
        let next = id & CTRL_FLAG_NEXT_CTRL != 0;
        let id = id & !CTRL_FLAG_NEXT_CTRL;
        Ok(if next {
            ctl.controls
                .iter()
                .map(|(c, _)| c)
                .filter(|c| c.id > id)
                .min_by_key(|c| c.id)
                .cloned()
        } else {
            ctl.controls
                .iter()
                .find(|(c, _)| c.id == id)
                .map(|(c, _)| c.clone())
        })
    }
    fn querymenu(&mut self, id: u32, index: u32) -> io::Result<Option<String>> {
        // Index 1 is skipped, as drivers do for menu items they lack.
        Ok((id == 0x0098_0918 && index != 1 && index <= 2).then(|| format!("item {index}")))
    }
    fn get_ctrl(&mut self, id: u32) -> io::Result<i64> {
        self.gone()?;
        let ctl = self.ctl.lock().map_err(|_| io::Error::other("poisoned"))?;
        ctl.controls
            .iter()
            .find(|(c, _)| c.id == id)
            .map(|(_, v)| *v)
            .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EINVAL))
    }
    fn set_ctrl(&mut self, id: u32, value: i64) -> io::Result<()> {
        self.gone()?;
        let mut ctl = self.ctl.lock().map_err(|_| io::Error::other("poisoned"))?;
        if ctl.refuse == Some(id) {
            return Err(io::Error::from_raw_os_error(nix::libc::EBUSY));
        }
        let slot = ctl
            .controls
            .iter_mut()
            .find(|(c, _)| c.id == id)
            .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EINVAL))?;
        let (c, v) = slot;
        if value < c.minimum || value > c.maximum {
            return Err(io::Error::from_raw_os_error(nix::libc::ERANGE));
        }
        *v = value;
        ctl.sets.push((id, value));
        Ok(())
    }
    fn encoder_cmd(&mut self, _: u32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(nix::libc::ENOTTY))
    }
}
