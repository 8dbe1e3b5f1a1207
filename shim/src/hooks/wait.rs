//! Where a client waits on an intercepted connection. A process's first
//! connection to an app that answers from memory starts no event thread:
//! its requests are answered inside its own writes (`reactor`). A client
//! about to wait on such a connection with nothing to read — a quiet one
//! whose idle timeout must close it, or one it wrote to around the hooks
//! (stdio, `sendfile`) — starts the loop first, then waits as it asked.
//! So each call here looks first without waiting (`poll` with no timeout,
//! a read with `MSG_DONTWAIT`), and only when that finds nothing starts the
//! loop and makes the real call. Errors come from the real call. Every
//! other call is the real one after one atomic load.

use libc::{
    c_char, c_int, c_void, fd_set, iovec, msghdr, nfds_t, pollfd, sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};

use crate::{fdtable, reactor, real};

/// Whether a read of `fd` may have to start the loop first.
#[inline]
fn may_wait(fd: c_int) -> bool {
    reactor::deferred() && fdtable::flagged(fd)
}

/// A read of an intercepted `fd` while the loop waits to be wanted: `look`
/// reads without waiting; when it finds nothing, the loop starts and a
/// caller that waits (`dontwait` false, a blocking fd) makes the real
/// call, `wait`; any other outcome of `look` but data is the real call's.
fn looked(fd: c_int, dontwait: bool, look: impl FnOnce() -> ssize_t, wait: impl FnOnce() -> ssize_t) -> ssize_t {
    let got = look();
    if got >= 0 {
        return got;
    }
    if real::errno() == libc::EAGAIN {
        reactor::wanted();
        if dontwait || nonblocking(fd) {
            return real::fail(libc::EAGAIN) as ssize_t;
        }
    }
    wait()
}

/// Whether `fd` is in non-blocking mode (asked only when a look found
/// nothing and the call itself did not say).
fn nonblocking(fd: c_int) -> bool {
    // SAFETY: F_GETFL on the caller's fd reads its flags, nothing more.
    let flags = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

pub(super) unsafe fn poll_impl(fds: *mut pollfd, count: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { polled(fds, count, timeout != 0, |zero| real::poll(fds, count, if zero { 0 } else { timeout })) }
}

/// How many of `count` pollfds to look at: all when they fit the caller's
/// `size` bytes, else none (the real function refuses the call).
fn to_look_at(count: nfds_t, size: size_t) -> nfds_t {
    if (count as usize).checked_mul(size_of::<pollfd>()).is_some_and(|n| n <= size) { count } else { 0 }
}

pub(super) unsafe fn poll_chk_impl(fds: *mut pollfd, count: nfds_t, timeout: c_int, size: size_t) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { polled(fds, to_look_at(count, size), timeout != 0, |zero| real::__poll_chk(fds, count, if zero { 0 } else { timeout }, size)) }
}

pub(super) unsafe fn ppoll_impl(fds: *mut pollfd, count: nfds_t, timeout: *const timespec, mask: *const sigset_t) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { polled(fds, count, waits_for(timeout), |zero| real::ppoll(fds, count, zero_or(zero, timeout), mask)) }
}

pub(super) unsafe fn ppoll_chk_impl(
    fds: *mut pollfd,
    count: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    size: size_t,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        polled(fds, to_look_at(count, size), waits_for(timeout), |zero| real::__ppoll_chk(fds, count, zero_or(zero, timeout), mask, size))
    }
}

pub(super) unsafe fn select_impl(count: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *mut timeval) -> c_int {
    // SAFETY: the caller's timeval, when there is one.
    let waits = timeout.is_null() || unsafe { (*timeout).tv_sec != 0 || (*timeout).tv_usec != 0 };
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        selected(count, [r, w, e], waits, |zero| {
            let mut none = timeval { tv_sec: 0, tv_usec: 0 };
            real::select(count, r, w, e, if zero { &mut none as *mut timeval } else { timeout })
        })
    }
}

pub(super) unsafe fn pselect_impl(
    count: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { selected(count, [r, w, e], waits_for(timeout), |zero| real::pselect(count, r, w, e, zero_or(zero, timeout), mask)) }
}

pub(super) unsafe fn epoll_ctl_impl(ep: c_int, op: c_int, fd: c_int, event: *mut libc::epoll_event) -> c_int {
    if op == libc::EPOLL_CTL_ADD && may_wait(fd) {
        reactor::wanted();
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::epoll_ctl(ep, op, fd, event) }
}

pub(super) unsafe fn fdopen_impl(fd: c_int, mode: *const c_char) -> *mut libc::FILE {
    if may_wait(fd) {
        reactor::wanted();
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::fdopen(fd, mode) }
}

const ZERO: timespec = timespec { tv_sec: 0, tv_nsec: 0 };

/// The timeout for a look (`zero`: none) or for the caller's own call.
fn zero_or(zero: bool, timeout: *const timespec) -> *const timespec {
    if zero { &ZERO } else { timeout }
}

/// Whether a timespec timeout lets the call wait (null: for ever).
fn waits_for(timeout: *const timespec) -> bool {
    // SAFETY: the caller's timespec, when there is one.
    timeout.is_null() || unsafe { (*timeout).tv_sec != 0 || (*timeout).tv_nsec != 0 }
}

pub(super) unsafe fn read_impl(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on; a read of a socket is a
    // recv.
    unsafe { received(fd, 0, |flags| real::recv(fd, buf, len, flags), || real::read(fd, buf, len)) }
}

pub(super) unsafe fn read_chk_impl(fd: c_int, buf: *mut c_void, len: size_t, size: size_t) -> ssize_t {
    // SAFETY: as for read; a length past the buffer is the real function's
    // to refuse, so no look reads into it.
    unsafe {
        let wait = || real::__read_chk(fd, buf, len, size);
        if len > size { wait() } else { received(fd, 0, |flags| real::recv(fd, buf, len, flags), wait) }
    }
}

pub(super) unsafe fn readv_impl(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    let wait = || unsafe { real::readv(fd, iov, count) };
    if count <= 0 {
        // Nothing to look into: the real call's answer, or its error.
        return wait();
    }
    // SAFETY: a zeroed msghdr is valid; the caller's iovecs are only read
    // into, as readv would.
    let mut msg: msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.cast_mut();
    msg.msg_iovlen = count as _;
    // SAFETY: as above.
    received(fd, 0, |flags| unsafe { real::recvmsg(fd, &mut msg, flags) }, wait)
}

pub(super) unsafe fn recv_impl(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { received(fd, flags, |flags| real::recv(fd, buf, len, flags), || real::recv(fd, buf, len, flags)) }
}

pub(super) unsafe fn recv_chk_impl(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int) -> ssize_t {
    // SAFETY: as for __read_chk.
    unsafe {
        let wait = || real::__recv_chk(fd, buf, len, size, flags);
        if len > size { wait() } else { received(fd, flags, |flags| real::recv(fd, buf, len, flags), wait) }
    }
}

pub(super) unsafe fn recvfrom_impl(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        received(fd, flags, |flags| real::recvfrom(fd, buf, len, flags, addr, alen), || real::recvfrom(fd, buf, len, flags, addr, alen))
    }
}

pub(super) unsafe fn recvfrom_chk_impl(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    size: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    // SAFETY: as for __read_chk.
    unsafe {
        let wait = || real::__recvfrom_chk(fd, buf, len, size, flags, addr, alen);
        if len > size { wait() } else { received(fd, flags, |flags| real::recvfrom(fd, buf, len, flags, addr, alen), wait) }
    }
}

pub(super) unsafe fn recvmsg_impl(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { received(fd, flags, |flags| real::recvmsg(fd, msg, flags), || real::recvmsg(fd, msg, flags)) }
}

/// A read of `fd` with recv's `flags` (0 for `read`): the real call,
/// `wait`, unless `fd` may wait for the loop; then `look(flags)`, the read
/// itself with the flags given, looks first as [`looked`] says. A
/// `MSG_WAITALL` read asks for a whole buffer, which a look may not give:
/// the loop starts and the real call waits.
fn received(fd: c_int, flags: c_int, look: impl FnOnce(c_int) -> ssize_t, wait: impl FnOnce() -> ssize_t) -> ssize_t {
    if !may_wait(fd) {
        return wait();
    }
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    if flags & libc::MSG_WAITALL != 0 && !dontwait {
        reactor::wanted();
        return wait();
    }
    looked(fd, dontwait, || look(flags | libc::MSG_DONTWAIT), wait)
}

/// A poll that may wait on an intercepted connection while the loop waits
/// to be wanted: `call(true)` polls without waiting; when nothing is ready
/// and the caller would wait (`waits`), the loop starts and `call(false)`
/// makes the caller's own call.
///
/// # Safety
/// `fds` must hold `count` pollfds, as the caller vouches.
unsafe fn polled(fds: *const pollfd, count: nfds_t, waits: bool, call: impl Fn(bool) -> c_int) -> c_int {
    if !reactor::deferred() || !waits || fds.is_null() {
        return call(false);
    }
    // SAFETY: the caller's promise.
    let fds = unsafe { std::slice::from_raw_parts(fds, count as usize) };
    let reads = libc::POLLIN | libc::POLLRDNORM | libc::POLLPRI;
    if !fds.iter().any(|p| p.events & reads != 0 && fdtable::flagged(p.fd)) {
        return call(false);
    }
    let ready = call(true);
    if ready != 0 {
        return ready;
    }
    reactor::wanted();
    call(false)
}

/// `select` and `pselect` as [`polled`]: the sets are put back as the
/// caller gave them before its own call.
///
/// # Safety
/// Each non-null set must be a valid fd_set, as the caller vouches.
unsafe fn selected(count: c_int, sets: [*mut fd_set; 3], waits: bool, call: impl Fn(bool) -> c_int) -> c_int {
    let [r, ..] = sets;
    if !reactor::deferred() || !waits || r.is_null() {
        return call(false);
    }
    let last = count.clamp(0, libc::FD_SETSIZE as c_int);
    // SAFETY: `r` is the caller's set, read for fds below its count.
    if !(0..last).any(|fd| unsafe { libc::FD_ISSET(fd, r) } && fdtable::flagged(fd)) {
        return call(false);
    }
    // SAFETY: each non-null set is the caller's, copied out and back.
    let saved = sets.map(|s| (!s.is_null()).then(|| unsafe { *s }));
    let ready = call(true);
    if ready != 0 {
        return ready;
    }
    for (set, copy) in sets.into_iter().zip(saved) {
        if let Some(copy) = copy {
            // SAFETY: as above.
            unsafe { *set = copy };
        }
    }
    reactor::wanted();
    call(false)
}
