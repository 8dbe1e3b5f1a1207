//! A stopped call and the process that made it: its memory (read and
//! written with `process_vm_readv`/`writev`), its fds (a copy taken with
//! `pidfd_getfd`, their flags from `/proc`), and the listener's answers:
//! a value, an errno, "carry on as if we were not here", or an fd put in
//! its place.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use intercept::log::Level;
use libc::{c_int, seccomp_notif};

/// One stopped call, and the listener it came from.
#[derive(Clone, Copy)]
pub struct Call {
    pub listener: RawFd,
    pub notif: seccomp_notif,
}

/// What the supervisor answers.
pub enum Reply {
    /// Run the call as the program made it.
    Continue,
    /// The call returns this.
    Value(i64),
    /// The call fails with this errno.
    Error(c_int),
    /// Answered already (an fd sent as the call's result), or to be
    /// answered by another thread.
    Sent,
}

impl Call {
    pub fn pid(&self) -> libc::pid_t {
        self.notif.pid as libc::pid_t
    }

    pub fn arg(&self, i: usize) -> u64 {
        self.notif.data.args[i]
    }

    /// Whether the call is still waiting: after reading the process's
    /// memory, the pid may belong to another process by now.
    pub fn still_waiting(&self) -> bool {
        let id = self.notif.id;
        // SAFETY: an ioctl reading a u64 of ours.
        unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
    }

    /// `len` bytes of the process's memory at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
        let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
        // SAFETY: our buffer is valid for `len` bytes; the remote range is
        // checked by the kernel.
        let n = unsafe { libc::process_vm_readv(self.pid(), &local, 1, &remote, 1, 0) };
        (n == len as isize).then_some(buf)
    }

    /// A native-endian u32 (a length, an int option) at `addr`.
    pub fn read_u32(&self, addr: u64) -> Option<u32> {
        self.read(addr, 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string at `addr`, read a page at a time (the
    /// string may end just before an unmapped page).
    pub fn read_str(&self, addr: u64, max: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            let chunk = (4096 - (at % 4096) as usize).min(max - out.len());
            let bytes = self.read(at, chunk)?;
            if let Some(end) = bytes.iter().position(|&b| b == 0) {
                out.extend_from_slice(&bytes[..end]);
                return Some(out);
            }
            out.extend_from_slice(&bytes);
            at += chunk as u64;
        }
        None
    }

    /// Writes `bytes` into the process's memory at `addr`.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> bool {
        let local = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
        let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: bytes.len() };
        // SAFETY: as for `read`.
        let n = unsafe { libc::process_vm_writev(self.pid(), &local, 1, &remote, 1, 0) };
        n == bytes.len() as isize
    }

    /// The process the calling thread belongs to: `pid` names the thread
    /// that made the call (Go makes its calls from any of its threads).
    fn process(&self) -> io::Result<libc::pid_t> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no Tgid in /proc/PID/status"))
    }

    /// A copy of the process's fd `fd`.
    pub fn copy_fd(&self, fd: c_int) -> io::Result<OwnedFd> {
        let process = self.process()?;
        // SAFETY: pidfd_open and pidfd_getfd return new fds or -1.
        unsafe {
            // pidfd_open takes a process, not a thread (before Linux 6.9).
            let pidfd = libc::syscall(libc::SYS_pidfd_open, process, 0);
            if pidfd < 0 {
                return Err(io::Error::last_os_error());
            }
            let pidfd = OwnedFd::from_raw_fd(pidfd as RawFd);
            let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
            if copy < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(OwnedFd::from_raw_fd(copy as RawFd))
        }
    }

    /// The inode of the socket behind the process's fd `fd`.
    pub fn socket_inode(&self, fd: c_int) -> Option<u64> {
        let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", self.pid())).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    }

    /// Whether the process's fd `fd` is closed on exec.
    pub fn cloexec(&self, fd: c_int) -> bool {
        let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", self.pid())).unwrap_or_default();
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim).unwrap_or("0");
        u32::from_str_radix(flags, 8).is_ok_and(|f| f & libc::O_CLOEXEC as u32 != 0)
    }

    /// Puts `fd` in the process: over `at` when given (closing what was
    /// there), else as the call's result, which answers it.
    pub fn add_fd(&self, fd: &OwnedFd, at: Option<c_int>, cloexec: bool) -> io::Result<c_int> {
        let addfd = libc::seccomp_notif_addfd {
            id: self.notif.id,
            flags: match at {
                Some(_) => libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
                None => libc::SECCOMP_ADDFD_FLAG_SEND as u32,
            },
            srcfd: fd.as_raw_fd() as u32,
            newfd: at.unwrap_or(0) as u32,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: an ioctl reading a struct of ours.
        let rc = unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
    }

    /// One log line at `level`, on the process's stderr (the supervisor
    /// has none of its own); nothing is asked of the process when the
    /// level is off.
    pub fn tell_at(&self, level: Level, args: std::fmt::Arguments<'_>) {
        if !intercept::log::enabled(level) {
            return;
        }
        let copy = self.copy_fd(2).ok();
        let before = copy.as_ref().map(|fd| intercept::log::set_thread_sink(fd.as_raw_fd()));
        intercept::log::line(level, args);
        if let Some(before) = before {
            intercept::log::set_thread_sink(before);
        }
    }

    /// One error line, on the process's stderr.
    pub fn tell(&self, args: std::fmt::Arguments<'_>) {
        self.tell_at(Level::Error, args);
    }

    /// Sends the answer (nothing for `Sent`).
    pub fn answer(&self, reply: Reply) {
        let (val, error, flags) = match reply {
            Reply::Sent => return,
            Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Reply::Value(v) => (v, 0, 0),
            Reply::Error(e) => (0, -e, 0),
        };
        let resp = libc::seccomp_notif_resp { id: self.notif.id, val, error, flags };
        // SAFETY: an ioctl reading a struct of ours; a process that died
        // meanwhile gives ENOENT, which changes nothing.
        unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}
