//! Connects: routed addresses become socketpairs served by a dispatcher.
//! `sendto`/`sendmsg` with `MSG_FASTOPEN` and an address are a connect and
//! a send in one call (TCP Fast Open); any other is a plain send (`write`).

use std::mem::size_of;
use std::net::SocketAddr;

use core_lib::routing::{Connect, Destination, Router};
use core_lib::{log_debug, log_error};
use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::real::{self, fail};
use crate::{dispatch, fdtable, peer, sockaddr as sa, state, upstream};

pub(super) unsafe fn connect_impl(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !state::active() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::connect(fd, addr, len) };
    }
    // SAFETY: the caller vouches for `len` bytes at `addr`.
    let (Some(router), Some(to)) = (state::router(), unsafe { sa::read(addr, len) }) else {
        // SAFETY: as above.
        return unsafe { real::connect(fd, addr, len) };
    };
    if fdtable::contains(fd) {
        return fail(libc::EISCONN);
    }
    match router.connect(to) {
        // SAFETY: as above.
        Connect::Pass => unsafe { real::connect(fd, addr, len) },
        // A datagram socket's connect sends nothing (glibc and Go probe
        // source addresses that way): refused, but not reported.
        Connect::Refuse if socket_option(fd, libc::SO_TYPE) == Some(libc::SOCK_DGRAM) => {
            log_debug!("refused a datagram connect to {to}: INTERCEPT_PASSTHROUGH={}", router.passthrough.as_str());
            fail(libc::ECONNREFUSED)
        }
        Connect::Refuse => refuse(router, &to.to_string()),
        Connect::Resolve { name, port } => connect_for_real(fd, &name, port),
        Connect::Intercept(dest) => {
            if socket_option(fd, libc::SO_TYPE) != Some(libc::SOCK_STREAM) {
                // SAFETY: as above.
                return unsafe { real::connect(fd, addr, len) };
            }
            intercept(fd, to, dest, router)
        }
    }
}

pub(super) unsafe fn sendto_impl(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    if addr.is_null() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { super::write::send_impl(fd, buf, len, flags) };
    }
    if flags & libc::MSG_FASTOPEN == 0 || !state::active() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::sendto(fd, buf, len, flags, addr, alen) };
    }
    // SAFETY: the caller's arguments, passed on; fast_open reads `alen`
    // bytes at `addr`, which the caller vouches for.
    unsafe {
        match fast_open(fd, addr, alen) {
            FastOpen::Connected => super::write::send_impl(fd, buf, len, flags & !libc::MSG_FASTOPEN),
            FastOpen::Failed => -1,
            FastOpen::NotOurs => real::sendto(fd, buf, len, flags, addr, alen),
        }
    }
}

pub(super) unsafe fn sendmsg_impl(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    if let Some(sent) = unsafe { super::write::sendmsg_plain(fd, msg, flags) } {
        return sent;
    }
    if flags & libc::MSG_FASTOPEN == 0 || msg.is_null() || !state::active() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::sendmsg(fd, msg, flags) };
    }
    // SAFETY: msg is a valid msghdr from the caller; its name, when set,
    // holds msg_namelen bytes.
    unsafe {
        let (addr, alen) = ((*msg).msg_name as *const sockaddr, (*msg).msg_namelen);
        if addr.is_null() {
            return real::sendmsg(fd, msg, flags);
        }
        match fast_open(fd, addr, alen) {
            FastOpen::Connected => {
                let mut plain = *msg;
                plain.msg_name = std::ptr::null_mut();
                plain.msg_namelen = 0;
                real::sendmsg(fd, &plain, flags & !libc::MSG_FASTOPEN)
            }
            FastOpen::Failed => -1,
            FastOpen::NotOurs => real::sendmsg(fd, msg, flags),
        }
    }
}

enum FastOpen {
    /// The fd is now connected (intercepted, or to the real host).
    Connected,
    /// Refused or failed; errno is set.
    Failed,
    /// Pass-through: the real call does the fast open itself.
    NotOurs,
}

unsafe fn fast_open(fd: c_int, addr: *const sockaddr, alen: socklen_t) -> FastOpen {
    // SAFETY: the caller vouches for `alen` bytes at `addr`.
    let (Some(router), Some(to)) = (state::router(), unsafe { sa::read(addr, alen) }) else {
        return FastOpen::NotOurs;
    };
    if fdtable::contains(fd) {
        return FastOpen::Connected;
    }
    let rc = match router.connect(to) {
        Connect::Pass => return FastOpen::NotOurs,
        Connect::Refuse => refuse(router, &to.to_string()),
        Connect::Resolve { name, port } => connect_for_real(fd, &name, port),
        Connect::Intercept(dest) => intercept(fd, to, dest, router),
    };
    if rc == 0 { FastOpen::Connected } else { FastOpen::Failed }
}

fn refuse(router: &Router, to: &str) -> c_int {
    let mode = router.passthrough.as_str();
    log_error!("refused connection to {to}: INTERCEPT_PASSTHROUGH={mode}");
    if let Some(journal) = &router.journal {
        journal.blocked(to, mode);
    }
    fail(libc::ECONNREFUSED)
}

fn socket_option(fd: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: value and len are valid for the call.
    let rc = unsafe { real::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut value).cast(), &mut len) };
    (rc == 0).then_some(value)
}

/// A synthetic address on a port no route serves: connect to what the name
/// really resolves to, in the socket's own family.
fn connect_for_real(fd: c_int, name: &str, port: u16) -> c_int {
    let family = socket_option(fd, libc::SO_DOMAIN).unwrap_or(libc::AF_INET);
    upstream::connect_fd(fd, name, port, family).unwrap_or_else(|| {
        log_error!("{name}:{port}: no route serves port {port}, and {name} does not resolve for real");
        fail(libc::ECONNREFUSED)
    })
}

/// Puts one end of a fresh socketpair in place of `fd` and hands the other
/// to a dispatcher.
fn intercept(fd: c_int, to: SocketAddr, dest: Destination, router: &Router) -> c_int {
    // SAFETY: fcntl on an int fd; errors come back as -1 with errno set.
    let (status, fd_flags) = unsafe { (real::fcntl(fd, libc::F_GETFL, 0), real::fcntl(fd, libc::F_GETFD, 0)) };
    if status < 0 || fd_flags < 0 {
        return -1; // EBADF, as connect would say.
    }
    let mut pair = [0 as c_int; 2];
    // SAFETY: pair has room for two fds.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) } != 0 {
        return -1;
    }
    let (ours, theirs) = (fdtable::own_high(pair[1]), pair[0]);
    let host = format!("{}:{}", dest.host, dest.port);
    // SAFETY: `ours` was just created and is owned by nobody else.
    let ours = unsafe { peer::own(ours) };
    // SAFETY: pthread_self has no preconditions.
    let thread = unsafe { libc::pthread_self() } as u64;
    let client = fdtable::identity(theirs).map(|socket| peer::ClientEnd { fd, socket, thread });
    if let Err(e) = dispatch::spawn(ours, client, dest, router.idle_timeout, router.ca_dir().to_path_buf()) {
        log_error!("cannot start a dispatcher thread for {host}: {e}");
        // SAFETY: our own fd, not yet handed to anyone.
        unsafe { real::close(theirs) };
        return fail(libc::EAGAIN);
    }
    let cloexec = if fd_flags & libc::FD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
    // SAFETY: plain fd calls; on failure the dispatcher sees EOF and ends.
    unsafe {
        if real::dup3(theirs, fd, cloexec) < 0 {
            let saved = real::errno();
            real::close(theirs);
            return fail(saved);
        }
        real::close(theirs);
        if status & libc::O_NONBLOCK != 0 {
            real::fcntl(fd, libc::F_SETFL, (real::fcntl(fd, libc::F_GETFL, 0) | libc::O_NONBLOCK) as libc::c_ulong);
        }
    }
    fdtable::insert(fd, fdtable::TcpFace::new(to, fd));
    log_debug!("intercepted connection to {to} ({host}) on fd {fd}");
    0
}
