//! A scripted fake of a stateful V4L2 M2M H.264 encoder at the ioctl
//! boundary. It enforces the protocol (formats before buffers, buffers
//! before streaming, ownership of each buffer, no S_FMT while buffers exist)
//! by failing as a driver would, and "encodes" into recognisable bytes.

use std::collections::{HashMap, VecDeque};
use std::io;

use crate::v4l2::device::*;
use crate::v4l2::sys::*;

const CAP: u32 = BUF_TYPE_VIDEO_CAPTURE_MPLANE;

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    User,
    Driver,
    Done,
}

pub(crate) struct FakeM2m {
    pub log: Vec<String>,
    pub ctrls: HashMap<u32, i64>,
    /// Controls the "driver" refuses with EINVAL.
    pub unsupported: Vec<u32>,
    /// Luma stride alignment and row padding the driver imposes.
    pub stride_align: u32,
    pub height_align: u32,
    /// Stop producing output (a hung encoder).
    pub hang: bool,
    pub cap_fmt: Option<Format>,
    pub out_fmt: Option<Format>,
    out_owner: Vec<Owner>,
    cap_owner: Vec<Owner>,
    out_mem: Vec<Vec<u8>>,
    cap_mem: Vec<Vec<u8>>,
    out_queue: VecDeque<(u32, u32, u64)>,
    cap_queue: VecDeque<u32>,
    cap_done: VecDeque<Dequeued>,
    out_done: VecDeque<u32>,
    streaming_out: bool,
    streaming_cap: bool,
    frames: u64,
    draining: bool,
    stopped: bool,
    /// First bytes of each input picture as the fake saw it.
    pub inputs: Vec<Vec<u8>>,
}

impl FakeM2m {
    pub fn new() -> Self {
        FakeM2m {
            log: Vec::new(),
            ctrls: HashMap::new(),
            unsupported: Vec::new(),
            stride_align: 32,
            height_align: 16,
            hang: false,
            cap_fmt: None,
            out_fmt: None,
            out_owner: Vec::new(),
            cap_owner: Vec::new(),
            out_mem: Vec::new(),
            cap_mem: Vec::new(),
            out_queue: VecDeque::new(),
            cap_queue: VecDeque::new(),
            cap_done: VecDeque::new(),
            out_done: VecDeque::new(),
            streaming_out: false,
            streaming_cap: false,
            frames: 0,
            draining: false,
            stopped: false,
            inputs: Vec::new(),
        }
    }

    pub fn logged(&self, prefix: &str) -> usize {
        self.log.iter().filter(|l| l.starts_with(prefix)).count()
    }

    fn encode_one(&mut self) {
        while self.streaming_out && self.streaming_cap && !self.hang {
            let (Some(&(oi, used, ts)), Some(&ci)) =
                (self.out_queue.front(), self.cap_queue.front())
            else {
                break;
            };
            self.out_queue.pop_front();
            self.cap_queue.pop_front();
            let input = &self.out_mem[oi as usize];
            self.inputs
                .push(input[..(used as usize).min(input.len())].to_vec());
            let period = self
                .ctrls
                .get(&CID_MPEG_VIDEO_H264_I_PERIOD)
                .copied()
                .unwrap_or(30)
                .max(1) as u64;
            let forced = self.ctrls.remove(&CID_MPEG_VIDEO_FORCE_KEY_FRAME).is_some();
            let key = forced || self.frames.is_multiple_of(period);
            if key {
                self.frames = 0;
            }
            let mut au = Vec::new();
            if key {
                let repeat = self.ctrls.get(&CID_MPEG_VIDEO_REPEAT_SEQ_HEADER) == Some(&1);
                if repeat || self.frames_total() == 0 {
                    let w = self.out_fmt.as_ref().map_or(0, |f| f.width) as u16;
                    au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42]);
                    au.extend_from_slice(&w.to_be_bytes());
                    au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce]);
                }
                au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88]);
            } else {
                au.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a]);
            }
            self.frames += 1;
            self.log.push("encoded".into());
            let mem = &mut self.cap_mem[ci as usize];
            mem[..au.len()].copy_from_slice(&au);
            self.cap_owner[ci as usize] = Owner::Done;
            self.out_owner[oi as usize] = Owner::Done;
            self.cap_done.push_back(Dequeued {
                index: ci,
                flags: if key { BUF_FLAG_KEYFRAME } else { 0 },
                bytesused: vec![au.len() as u32],
                timestamp_us: ts,
                sequence: 0,
            });
            self.out_done.push_back(oi);
        }
        if self.draining && self.out_queue.is_empty() && !self.hang {
            if let Some(ci) = self.cap_queue.pop_front() {
                self.cap_owner[ci as usize] = Owner::Done;
                self.cap_done.push_back(Dequeued {
                    index: ci,
                    flags: BUF_FLAG_LAST,
                    bytesused: vec![0],
                    timestamp_us: 0,
                    sequence: 0,
                });
                self.draining = false;
                self.stopped = true;
            }
        }
    }

    fn frames_total(&self) -> usize {
        self.log.iter().filter(|l| *l == "encoded").count()
    }
}

impl Device for FakeM2m {
    fn querycap(&mut self) -> io::Result<Capability> {
        Ok(Capability {
            driver: "fake-codec".into(),
            card: "fake encoder".into(),
            bus_info: "platform:fake".into(),
            caps: CAP_VIDEO_M2M_MPLANE | CAP_STREAMING,
        })
    }

    fn enum_fmt(&mut self, buf_type: u32, index: u32) -> io::Result<Option<FmtDesc>> {
        let list: &[u32] = if buf_type == CAP {
            &[PIX_FMT_H264]
        } else {
            &[PIX_FMT_YUV420, PIX_FMT_NV12, PIX_FMT_YUYV]
        };
        Ok(list.get(index as usize).map(|&fourcc| FmtDesc {
            fourcc,
            description: fourcc_str(fourcc),
        }))
    }

    fn enum_framesizes(&mut self, _: u32, _: u32) -> io::Result<Option<FrameSize>> {
        Ok(None)
    }

    fn enum_frameintervals(
        &mut self,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
    ) -> io::Result<Option<FrameInterval>> {
        Ok(None)
    }

    fn g_fmt(&mut self, buf_type: u32) -> io::Result<Format> {
        let f = if buf_type == CAP {
            &self.cap_fmt
        } else {
            &self.out_fmt
        };
        f.clone().ok_or_else(|| errno(nix::libc::EINVAL))
    }

    fn s_fmt(&mut self, fmt: &Format) -> io::Result<Format> {
        self.log.push(format!(
            "s_fmt {} {}x{} {}",
            fmt.buf_type,
            fmt.width,
            fmt.height,
            fourcc_str(fmt.fourcc)
        ));
        let busy = if fmt.buf_type == CAP {
            !self.cap_owner.is_empty()
        } else {
            !self.out_owner.is_empty()
        };
        if busy {
            return Err(errno(nix::libc::EBUSY));
        }
        if fmt.buf_type == CAP {
            if fmt.fourcc != PIX_FMT_H264 {
                return Err(errno(nix::libc::EINVAL));
            }
            let f = Format {
                planes: vec![PlaneFormat {
                    bytesperline: 0,
                    sizeimage: fmt.planes.first().map_or(0, |p| p.sizeimage).max(4096),
                }],
                ..fmt.clone()
            };
            self.cap_fmt = Some(f.clone());
            return Ok(f);
        }
        if self.cap_fmt.is_none() {
            // The spec wants the coded format first.
            return Err(errno(nix::libc::EINVAL));
        }
        let a = self.stride_align.max(1);
        let bpl = match fmt.fourcc {
            PIX_FMT_YUYV => (fmt.width * 2).div_ceil(a) * a,
            _ => fmt.width.div_ceil(a) * a,
        };
        let rows = fmt.height.div_ceil(self.height_align.max(1)) * self.height_align.max(1);
        let size = match fmt.fourcc {
            PIX_FMT_YUYV => bpl * fmt.height,
            _ => bpl * rows * 3 / 2,
        };
        let f = Format {
            planes: vec![PlaneFormat {
                bytesperline: bpl,
                sizeimage: size,
            }],
            ..fmt.clone()
        };
        self.out_fmt = Some(f.clone());
        Ok(f)
    }

    fn s_frame_interval(&mut self, _: u32, num: u32, den: u32) -> io::Result<Option<(u32, u32)>> {
        self.log.push(format!("s_parm {num}/{den}"));
        Ok(Some((num, den)))
    }

    fn reqbufs(&mut self, buf_type: u32, count: u32) -> io::Result<u32> {
        self.log.push(format!("reqbufs {buf_type} {count}"));
        let streaming = if buf_type == CAP {
            self.streaming_cap
        } else {
            self.streaming_out
        };
        if streaming {
            return Err(errno(nix::libc::EBUSY));
        }
        let fmt = if buf_type == CAP {
            &self.cap_fmt
        } else {
            &self.out_fmt
        };
        let Some(size) = fmt
            .as_ref()
            .and_then(|f| f.planes.first())
            .map(|p| p.sizeimage)
        else {
            return Err(errno(nix::libc::EINVAL));
        };
        let (owner, mem) = if buf_type == CAP {
            (&mut self.cap_owner, &mut self.cap_mem)
        } else {
            (&mut self.out_owner, &mut self.out_mem)
        };
        *owner = vec![Owner::User; count as usize];
        *mem = vec![vec![0; size as usize]; count as usize];
        Ok(count)
    }

    fn qbuf(&mut self, buf_type: u32, index: u32, bytesused: &[u32], ts: u64) -> io::Result<()> {
        let owner = if buf_type == CAP {
            &mut self.cap_owner
        } else {
            &mut self.out_owner
        };
        match owner.get(index as usize) {
            Some(Owner::User) => owner[index as usize] = Owner::Driver,
            _ => return Err(errno(nix::libc::EINVAL)),
        }
        if buf_type == CAP {
            self.cap_queue.push_back(index);
        } else {
            if self.stopped {
                return Err(errno(nix::libc::EBUSY));
            }
            self.out_queue
                .push_back((index, bytesused.first().copied().unwrap_or(0), ts));
        }
        self.encode_one();
        Ok(())
    }

    fn dqbuf(&mut self, buf_type: u32) -> io::Result<Dequeued> {
        if buf_type == CAP {
            if let Some(d) = self.cap_done.pop_front() {
                self.cap_owner[d.index as usize] = Owner::User;
                return Ok(d);
            }
            if self.stopped {
                return Err(errno(nix::libc::EPIPE));
            }
        } else if let Some(i) = self.out_done.pop_front() {
            self.out_owner[i as usize] = Owner::User;
            return Ok(Dequeued {
                index: i,
                bytesused: vec![0],
                ..Default::default()
            });
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn buffer(&self, buf_type: u32, index: u32, _plane: usize) -> &[u8] {
        let mem = if buf_type == CAP {
            &self.cap_mem
        } else {
            &self.out_mem
        };
        mem.get(index as usize).map_or(&[], |m| m.as_slice())
    }

    fn buffer_mut(&mut self, buf_type: u32, index: u32, _plane: usize) -> &mut [u8] {
        let (mem, owner) = if buf_type == CAP {
            (&mut self.cap_mem, &self.cap_owner)
        } else {
            (&mut self.out_mem, &self.out_owner)
        };
        // Writing a buffer the driver owns would be a protocol bug.
        assert_eq!(
            owner.get(index as usize),
            Some(&Owner::User),
            "write to a queued buffer"
        );
        mem.get_mut(index as usize)
            .map_or(&mut [], |m| m.as_mut_slice())
    }

    fn streamon(&mut self, buf_type: u32) -> io::Result<()> {
        self.log.push(format!("streamon {buf_type}"));
        let n = if buf_type == CAP {
            self.cap_owner.len()
        } else {
            self.out_owner.len()
        };
        if n == 0 {
            return Err(errno(nix::libc::EINVAL));
        }
        if buf_type == CAP {
            self.streaming_cap = true;
        } else {
            self.streaming_out = true;
        }
        self.encode_one();
        Ok(())
    }

    fn streamoff(&mut self, buf_type: u32) -> io::Result<()> {
        self.log.push(format!("streamoff {buf_type}"));
        // STREAMOFF returns every buffer to the user.
        if buf_type == CAP {
            self.streaming_cap = false;
            self.cap_queue.clear();
            self.cap_done.clear();
            self.cap_owner.iter_mut().for_each(|o| *o = Owner::User);
        } else {
            self.streaming_out = false;
            self.out_queue.clear();
            self.out_done.clear();
            self.out_owner.iter_mut().for_each(|o| *o = Owner::User);
        }
        self.stopped = false;
        self.draining = false;
        Ok(())
    }

    fn poll(&mut self, _timeout_ms: i32) -> io::Result<Ready> {
        Ok(Ready {
            readable: !self.cap_done.is_empty() || self.stopped,
            writable: !self.out_done.is_empty(),
            error: false,
        })
    }

    fn queryctrl(&mut self, _: u32) -> io::Result<Option<CtrlInfo>> {
        Ok(None)
    }

    fn querymenu(&mut self, _: u32, _: u32) -> io::Result<Option<String>> {
        Ok(None)
    }

    fn get_ctrl(&mut self, id: u32) -> io::Result<i64> {
        self.ctrls
            .get(&id)
            .copied()
            .ok_or_else(|| errno(nix::libc::EINVAL))
    }

    fn set_ctrl(&mut self, id: u32, value: i64) -> io::Result<()> {
        self.log.push(format!("ctrl {id:#x}={value}"));
        if self.unsupported.contains(&id) {
            return Err(errno(nix::libc::EINVAL));
        }
        self.ctrls.insert(id, value);
        Ok(())
    }

    fn encoder_cmd(&mut self, cmd: u32) -> io::Result<()> {
        self.log.push(format!("encoder_cmd {cmd}"));
        match cmd {
            ENC_CMD_STOP => {
                self.draining = true;
                self.encode_one();
            }
            ENC_CMD_START => {
                self.stopped = false;
                self.draining = false;
                self.encode_one();
            }
            _ => return Err(errno(nix::libc::EINVAL)),
        }
        Ok(())
    }
}
