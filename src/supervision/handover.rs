//! Putting the calling process under the filter and handing its listener
//! to the run's supervisor, just before it execs a program that needs it.
//!
//! The supervisor of a run listens on a unix socket (its path is
//! [`SOCKET_KEY`](super::SOCKET_KEY) in the environment). A process
//! connects there first (a refused connect leaves it as it was), then
//! installs the filter and sends the listener over the connection; the
//! supervisor answers the program's stopped calls from then on, for as long
//! as the program or anything it starts lives. Plain system calls on
//! stack buffers only: this runs in `vfork` children and between `fork`
//! and `exec`.

use std::ffi::CStr;

use libc::c_int;

use super::filter;
use crate::program::SHIM_CALL;

/// Why a process could not be put under supervision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No supervisor answers at the socket (errno of the connect).
    NoSupervisor(c_int),
    /// The filter could not be installed (errno of the seccomp call).
    Filter(c_int),
}

impl Refused {
    /// Why, in a few words, for the one-line notice.
    pub fn why(self) -> &'static str {
        match self {
            Refused::NoSupervisor(_) => "the run's supervisor is gone",
            Refused::Filter(libc::EBUSY) => "another supervisor already listens to its system calls",
            Refused::Filter(libc::EINVAL | libc::ENOSYS) => "this kernel has no seccomp user notification (Linux 5.9 or later)",
            Refused::Filter(libc::EPERM | libc::EACCES) => "seccomp filters are not allowed here",
            Refused::Filter(_) => "the seccomp filter could not be installed",
        }
    }
}

/// The one line saying `program` runs unsupervised, and why: printed by
/// `intercept run`, the launcher and the shim.
pub fn write_notice(out: &mut dyn std::fmt::Write, program: &dyn std::fmt::Display, why: &str) -> std::fmt::Result {
    writeln!(
        out,
        "intercept: cannot supervise {program}: {why}; only what loads libintercept.so is intercepted (static binaries and Go are not)"
    )
}

/// Puts the calling process under the filter, its listener handed to the
/// supervisor at `socket`.
///
/// # Safety
/// As for [`filter::install`]: the process is about to exec.
pub unsafe fn supervise_self(socket: &CStr) -> Result<(), Refused> {
    // SAFETY: system calls on our own fds and stack buffers.
    unsafe {
        let conn = connect(socket).map_err(Refused::NoSupervisor)?;
        let installed = filter::install(&filter::program());
        let result = match installed {
            Ok(listener) => {
                send_fd(conn, listener);
                libc::close(listener);
                Ok(())
            }
            Err(errno) => Err(Refused::Filter(errno)),
        };
        libc::close(conn);
        result
    }
}

/// A connected unix stream socket to `path`, or the errno. The connect
/// carries the shim's mark: an outer filter lets it through.
///
/// # Safety
/// None beyond a valid path.
unsafe fn connect(path: &CStr) -> Result<c_int, c_int> {
    // SAFETY: a zeroed sockaddr_un filled within its bounds.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        let bytes = path.to_bytes();
        if bytes.len() >= addr.sun_path.len() {
            return Err(libc::ENAMETOOLONG);
        }
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (to, &from) in addr.sun_path.iter_mut().zip(bytes) {
            *to = from as libc::c_char;
        }
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
        let rc = libc::syscall(libc::SYS_connect, fd, &raw const addr, len as libc::socklen_t, SHIM_CALL);
        if rc < 0 {
            let errno = *libc::__errno_location();
            libc::close(fd);
            return Err(errno);
        }
        Ok(fd)
    }
}

/// Sends `fd` over `to` with one byte of data.
///
/// # Safety
/// Both fds are open.
pub unsafe fn send_fd(to: c_int, fd: c_int) -> bool {
    let mut data = [1u8];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: 1 };
    // SAFETY: a msghdr over our stack buffers, whose control buffer holds
    // one fd.
    unsafe {
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<c_int>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
        libc::sendmsg(to, &msg, libc::MSG_NOSIGNAL) == 1
    }
}

/// Receives one fd sent with [`send_fd`]; None at end of stream or when
/// no fd came.
pub fn receive_fd(from: c_int) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut data = [0u8; 1];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = [0u64; 4];
    // SAFETY: a msghdr over our buffers; a received fd is taken once.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(from, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n != 1 {
            return None;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(std::os::fd::OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>())))
    }
}
