//! One message per datagram on a SOCK_SEQPACKET Unix socket, with its file
//! descriptors as SCM_RIGHTS; read-only mappings of shared buffers.
//!
//! SOCK_SEQPACKET keeps message boundaries and ties descriptors to their
//! message, so there is no stream reassembly and no way for descriptors to
//! drift onto the wrong message.

use std::io::{IoSlice, IoSliceMut};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::msg::{self, Message, MAX_BUFFERS, MAX_MESSAGE};
use crate::ProtoError;

/// One end of the helper socket.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A message and the descriptors that came with it.
#[derive(Debug)]
pub struct Received {
    pub msg: Message,
    pub fds: Vec<OwnedFd>,
}

impl Channel {
    /// A connected pair (close-on-exec; the spawner hands one end over).
    pub fn pair() -> Result<(Channel, Channel), ProtoError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| ProtoError::io("socketpair", e))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Wraps a descriptor, checking it is a SOCK_SEQPACKET socket.
    pub fn from_fd(fd: OwnedFd) -> Result<Channel, ProtoError> {
        use nix::sys::socket::{getsockopt, sockopt::SockType as SockTypeOpt};
        match getsockopt(&fd, SockTypeOpt) {
            Ok(SockType::SeqPacket) => Ok(Channel { fd }),
            Ok(other) => Err(ProtoError::io(
                "helper socket",
                std::io::Error::other(format!("is {other:?}, not SOCK_SEQPACKET")),
            )),
            Err(e) => Err(ProtoError::io("helper socket", e)),
        }
    }

    /// The helper's end, named by [`crate::SOCKET_FD_ENV`].
    pub fn from_env() -> Result<Channel, ProtoError> {
        let raw = std::env::var(crate::SOCKET_FD_ENV).map_err(|_| {
            ProtoError::io(
                "helper socket",
                std::io::Error::other(format!(
                    "{} is not set: this program is started by pinholed",
                    crate::SOCKET_FD_ENV
                )),
            )
        })?;
        let fd: RawFd = raw.trim().parse().map_err(|_| {
            ProtoError::io(
                "helper socket",
                std::io::Error::other(format!("{}={raw:?} is not a number", crate::SOCKET_FD_ENV)),
            )
        })?;
        if fd < 3 {
            return Err(ProtoError::io(
                "helper socket",
                std::io::Error::other(format!("descriptor {fd} is stdio")),
            ));
        }
        // The fd was inherited for exactly this purpose; from_fd checks it.
        // SAFETY: nothing else in this process owns descriptor `fd`.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(&owned, nix::fcntl::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
        Channel::from_fd(owned)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends `msg` with exactly `msg.fd_count()` descriptors.
    pub fn send(&self, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), ProtoError> {
        if fds.len() != msg.fd_count() {
            return Err(ProtoError::FdCount {
                message: msg.name(),
                expected: msg.fd_count(),
                got: fds.len(),
            });
        }
        let bytes = msg::encode(msg)?;
        self.send_raw(&bytes, fds)
    }

    /// Sends arbitrary bytes (tests of hostile peers use this directly).
    pub fn send_raw(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ProtoError> {
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
        let iov = [IoSlice::new(bytes)];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => return Err(ProtoError::Closed),
                Err(e) => return Err(ProtoError::io("sending to the camera helper socket", e)),
            }
        }
    }

    /// Waits up to `timeout_ms` (None: for ever) for a message.
    pub fn recv(&self, timeout_ms: Option<u32>) -> Result<Received, ProtoError> {
        if let Some(ms) = timeout_ms {
            if !self.wait_readable(ms)? {
                return Err(ProtoError::Timeout(ms));
            }
        }
        // One byte more than allowed, so an oversized datagram is seen as such.
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        let mut space = nix::cmsg_space!([RawFd; MAX_BUFFERS + 1]);
        let (n, flags, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fds = Vec::new();
                    if let Ok(cmsgs) = r.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(list) = c {
                                // SAFETY: the kernel just installed these
                                // descriptors in this process for us.
                                fds.extend(
                                    list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }),
                                );
                            }
                        }
                    }
                    break (r.bytes, r.flags, fds);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Err(ProtoError::Closed),
                Err(e) => return Err(ProtoError::io("reading the camera helper socket", e)),
            }
        };
        // `fds` are owned now: any error below closes them.
        if n == 0 && fds.is_empty() {
            return Err(ProtoError::Closed);
        }
        if flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(ProtoError::TooMany(
                "file descriptors",
                fds.len() + 1,
                MAX_BUFFERS,
            ));
        }
        if flags.contains(MsgFlags::MSG_TRUNC) || n > MAX_MESSAGE {
            return Err(ProtoError::TooLong("message", n, MAX_MESSAGE));
        }
        let msg = msg::decode(&buf[..n], fds.len())?;
        Ok(Received { msg, fds })
    }

    /// `true` if a message (or EOF) is waiting, `false` after `ms`.
    pub fn wait_readable(&self, ms: u32) -> Result<bool, ProtoError> {
        let mut pfd = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let timeout =
            PollTimeout::try_from(ms.min(i32::MAX as u32) as i32).unwrap_or(PollTimeout::MAX);
        loop {
            match poll(&mut pfd, timeout) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(ProtoError::io("waiting for the camera helper", e)),
            }
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A shared buffer mapped read-only into the daemon.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<std::ffi::c_void>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is read-only and owned; the helper writes into it
// only while the protocol says the daemon does not hold it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd`. Refuses descriptors that are smaller than
    /// claimed, and memfds that could shrink under us (a truncated mapping
    /// would kill the daemon with SIGBUS): a memfd must carry F_SEAL_SHRINK.
    pub fn new(fd: OwnedFd, len: u64) -> Result<Mapping, ProtoError> {
        use nix::fcntl::{fcntl, FcntlArg, SealFlag};
        use nix::unistd::{lseek, Whence};
        let bad = |why: String| Err(ProtoError::BadLayout(why));
        let Some(nz) = usize::try_from(len).ok().and_then(NonZeroUsize::new) else {
            return bad(format!("buffer length {len}"));
        };
        let size = lseek(&fd, 0, Whence::SeekEnd)
            .map_err(|e| ProtoError::io("sizing a shared buffer", e))?;
        let _ = lseek(&fd, 0, Whence::SeekSet);
        if (size as u64) < len {
            return bad(format!(
                "the shared buffer has {size} bytes, {len} were announced"
            ));
        }
        match fcntl(&fd, FcntlArg::F_GET_SEALS) {
            Ok(bits) => {
                let seals = SealFlag::from_bits_truncate(bits);
                if !seals.contains(SealFlag::F_SEAL_SHRINK) {
                    return bad("a memfd buffer without F_SEAL_SHRINK (it could be truncated under the reader)".into());
                }
            }
            // Not a memfd (a dmabuf): its size is fixed by the driver.
            Err(Errno::EINVAL) => {}
            Err(e) => return Err(ProtoError::io("reading a buffer's seals", e)),
        }
        // SAFETY: a fresh shared read-only mapping of a descriptor we own,
        // whose size was checked above.
        let ptr = unsafe {
            nix::sys::mman::mmap(
                None,
                nz,
                nix::sys::mman::ProtFlags::PROT_READ,
                nix::sys::mman::MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| ProtoError::io("mapping a shared buffer", e))?;
        Ok(Mapping {
            ptr,
            len: nz.get(),
            fd,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }

    /// Brackets CPU reads of a dmabuf (cache maintenance on non-coherent
    /// SoCs); a no-op error on memfds, ignored.
    pub fn sync_read(&self, start: bool) {
        #[repr(C)]
        struct DmaBufSync {
            flags: u64,
        }
        nix::ioctl_write_ptr!(dma_buf_sync, b'b', 0, DmaBufSync);
        const READ: u64 = 1;
        const END: u64 = 4;
        let s = DmaBufSync {
            flags: if start { READ } else { READ | END },
        };
        // SAFETY: DMA_BUF_IOCTL_SYNC reads one u64 from the pointer.
        let _ = unsafe { dma_buf_sync(self.fd.as_raw_fd(), &s) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr, self.len) };
    }
}

/// Which buffers the daemon holds: the helper may only fill buffers it
/// owns, and the daemon must not be handed a buffer twice. Pure.
#[derive(Clone, Debug, Default)]
pub struct Ownership {
    held: Vec<bool>,
}

impl Ownership {
    pub fn new(count: usize) -> Self {
        Ownership {
            held: vec![false; count],
        }
    }

    /// A `Frame` for `buffer` arrived: the daemon takes it.
    pub fn take(&mut self, buffer: u16) -> Result<(), ProtoError> {
        let count = self.held.len();
        let slot = self
            .held
            .get_mut(usize::from(buffer))
            .ok_or(ProtoError::NoSuchBuffer { buffer, count })?;
        if *slot {
            return Err(ProtoError::BufferBusy(buffer));
        }
        *slot = true;
        Ok(())
    }

    /// The daemon gives `buffer` back (`false` if it did not hold it).
    pub fn release(&mut self, buffer: u16) -> bool {
        match self.held.get_mut(usize::from(buffer)) {
            Some(slot) if *slot => {
                *slot = false;
                true
            }
            _ => false,
        }
    }

    pub fn held(&self, buffer: u16) -> bool {
        self.held.get(usize::from(buffer)).copied().unwrap_or(false)
    }

    /// A buffer the daemon does not hold.
    pub fn free(&self) -> Option<u16> {
        self.held.iter().position(|h| !h).map(|i| i as u16)
    }
}
