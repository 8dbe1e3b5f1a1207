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

use super::guarded;
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
        // SAFETY: F_GETFL on the caller's fd reads its flags, nothing more.
        let flags = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
        if dontwait || (flags >= 0 && flags & libc::O_NONBLOCK != 0) {
            return real::fail(libc::EAGAIN) as ssize_t;
        }
    }
    wait()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on (the fallback too: a read
    // that failed in our code consumed nothing).
    guarded("read", || unsafe { real::read(fd, buf, len) }, || unsafe { read_impl(fd, buf, len) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t) -> ssize_t {
    // SAFETY: as for read.
    guarded("__read_chk", || unsafe { real::__read_chk(fd, buf, len, size) }, || unsafe { read_chk_impl(fd, buf, len, size) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    // SAFETY: as for read.
    guarded("readv", || unsafe { real::readv(fd, iov, count) }, || unsafe { readv_impl(fd, iov, count) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: as for read.
    guarded("recv", || unsafe { real::recv(fd, buf, len, flags) }, || unsafe { recv_impl(fd, buf, len, flags) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int) -> ssize_t {
    // SAFETY: as for read.
    guarded("__recv_chk", || unsafe { real::__recv_chk(fd, buf, len, size, flags) }, || unsafe { recv_chk_impl(fd, buf, len, size, flags) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    // SAFETY: as for read.
    guarded(
        "recvfrom",
        || unsafe { real::recvfrom(fd, buf, len, flags, addr, alen) },
        || unsafe { recvfrom_impl(fd, buf, len, flags, addr, alen) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    size: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    // SAFETY: as for read.
    guarded(
        "__recvfrom_chk",
        || unsafe { real::__recvfrom_chk(fd, buf, len, size, flags, addr, alen) },
        || unsafe { recvfrom_chk_impl(fd, buf, len, size, flags, addr, alen) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: as for read.
    guarded("recvmsg", || unsafe { real::recvmsg(fd, msg, flags) }, || unsafe { recvmsg_impl(fd, msg, flags) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, count: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: as for read: a poll that failed in our code waited for nothing.
    guarded(
        "poll",
        || unsafe { real::poll(fds, count, timeout) },
        || unsafe { polled(fds, count, timeout != 0, |zero| real::poll(fds, count, if zero { 0 } else { timeout })) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(fds: *mut pollfd, count: nfds_t, timeout: c_int, size: size_t) -> c_int {
    // SAFETY: as for poll; a count past the caller's array is the real
    // function's to refuse.
    guarded(
        "__poll_chk",
        || unsafe { real::__poll_chk(fds, count, timeout, size) },
        || unsafe {
            let fits = (count as usize).checked_mul(size_of::<pollfd>()).is_some_and(|n| n <= size);
            let count_seen = if fits { count } else { 0 };
            polled(fds, count_seen, timeout != 0, |zero| real::__poll_chk(fds, count, if zero { 0 } else { timeout }, size))
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(fds: *mut pollfd, count: nfds_t, timeout: *const timespec, mask: *const sigset_t) -> c_int {
    // SAFETY: as for poll.
    guarded(
        "ppoll",
        || unsafe { real::ppoll(fds, count, timeout, mask) },
        || unsafe {
            polled(fds, count, waits_for(timeout), |zero| {
                real::ppoll(fds, count, if zero { &ZERO as *const timespec } else { timeout }, mask)
            })
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    count: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    size: size_t,
) -> c_int {
    // SAFETY: as for __poll_chk.
    guarded(
        "__ppoll_chk",
        || unsafe { real::__ppoll_chk(fds, count, timeout, mask, size) },
        || unsafe {
            let fits = (count as usize).checked_mul(size_of::<pollfd>()).is_some_and(|n| n <= size);
            let count_seen = if fits { count } else { 0 };
            polled(fds, count_seen, waits_for(timeout), |zero| {
                real::__ppoll_chk(fds, count, if zero { &ZERO as *const timespec } else { timeout }, mask, size)
            })
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(count: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *mut timeval) -> c_int {
    // SAFETY: as for poll.
    guarded(
        "select",
        || unsafe { real::select(count, r, w, e, timeout) },
        || unsafe {
            // The caller's timeval, when there is one.
            let waits = timeout.is_null() || (*timeout).tv_sec != 0 || (*timeout).tv_usec != 0;
            selected(count, [r, w, e], waits, |zero| {
                let mut none = timeval { tv_sec: 0, tv_usec: 0 };
                real::select(count, r, w, e, if zero { &mut none as *mut timeval } else { timeout })
            })
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pselect(
    count: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: as for poll.
    guarded(
        "pselect",
        || unsafe { real::pselect(count, r, w, e, timeout, mask) },
        || unsafe {
            selected(count, [r, w, e], waits_for(timeout), |zero| {
                real::pselect(count, r, w, e, if zero { &ZERO as *const timespec } else { timeout }, mask)
            })
        },
    )
}

/// An event loop's client: adding a connection to an epoll set starts the
/// loop (its waits are `epoll_wait`s on the set, which we do not see).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, event: *mut libc::epoll_event) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "epoll_ctl",
        || unsafe { real::epoll_ctl(ep, op, fd, event) },
        || unsafe {
            if op == libc::EPOLL_CTL_ADD && may_wait(fd) {
                reactor::wanted();
            }
            real::epoll_ctl(ep, op, fd, event)
        },
    )
}

/// stdio: its reads and writes are libc's own, around the hooks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "fdopen",
        || unsafe { real::fdopen(fd, mode) },
        || unsafe {
            if may_wait(fd) {
                reactor::wanted();
            }
            real::fdopen(fd, mode)
        },
    )
}

const ZERO: timespec = timespec { tv_sec: 0, tv_nsec: 0 };

/// Whether a timespec timeout lets the call wait (null: for ever).
fn waits_for(timeout: *const timespec) -> bool {
    // SAFETY: the caller's timespec, when there is one.
    timeout.is_null() || unsafe { (*timeout).tv_sec != 0 || (*timeout).tv_nsec != 0 }
}

unsafe fn read_impl(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    if !may_wait(fd) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::read(fd, buf, len) };
    }
    // SAFETY: as above; a read of a socket is a recv.
    looked(fd, false, || unsafe { real::recv(fd, buf, len, libc::MSG_DONTWAIT) }, || unsafe { real::read(fd, buf, len) })
}

unsafe fn read_chk_impl(fd: c_int, buf: *mut c_void, len: size_t, size: size_t) -> ssize_t {
    if !may_wait(fd) || len > size {
        // SAFETY: the caller's arguments, passed on (a length past the
        // buffer is the real function's to refuse).
        return unsafe { real::__read_chk(fd, buf, len, size) };
    }
    // SAFETY: as for read; `len` fits the caller's buffer.
    looked(fd, false, || unsafe { real::recv(fd, buf, len, libc::MSG_DONTWAIT) }, || unsafe { real::__read_chk(fd, buf, len, size) })
}

unsafe fn readv_impl(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    if !may_wait(fd) || count < 0 {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::readv(fd, iov, count) };
    }
    // SAFETY: a zeroed msghdr is valid; the caller's iovecs are only read
    // into, as readv would.
    let mut msg: msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.cast_mut();
    msg.msg_iovlen = count as _;
    // SAFETY: as above.
    looked(fd, false, || unsafe { real::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) }, || unsafe { real::readv(fd, iov, count) })
}

/// `MSG_WAITALL` asks for a whole buffer, which a look may not give: the
/// loop starts and the real call waits.
fn waits_all(flags: c_int) -> bool {
    flags & libc::MSG_WAITALL != 0 && flags & libc::MSG_DONTWAIT == 0
}

unsafe fn recv_impl(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    if may_wait(fd) && waits_all(flags) {
        reactor::wanted();
    }
    if !may_wait(fd) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::recv(fd, buf, len, flags) };
    }
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    // SAFETY: as above.
    looked(fd, dontwait, || unsafe { real::recv(fd, buf, len, flags | libc::MSG_DONTWAIT) }, || unsafe { real::recv(fd, buf, len, flags) })
}

unsafe fn recv_chk_impl(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int) -> ssize_t {
    if may_wait(fd) && waits_all(flags) {
        reactor::wanted();
    }
    if !may_wait(fd) || len > size {
        // SAFETY: as for __read_chk.
        return unsafe { real::__recv_chk(fd, buf, len, size, flags) };
    }
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    // SAFETY: as for __read_chk.
    looked(
        fd,
        dontwait,
        || unsafe { real::recv(fd, buf, len, flags | libc::MSG_DONTWAIT) },
        || unsafe { real::__recv_chk(fd, buf, len, size, flags) },
    )
}

unsafe fn recvfrom_impl(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t {
    if may_wait(fd) && waits_all(flags) {
        reactor::wanted();
    }
    if !may_wait(fd) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::recvfrom(fd, buf, len, flags, addr, alen) };
    }
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    // SAFETY: as above.
    looked(
        fd,
        dontwait,
        || unsafe { real::recvfrom(fd, buf, len, flags | libc::MSG_DONTWAIT, addr, alen) },
        || unsafe { real::recvfrom(fd, buf, len, flags, addr, alen) },
    )
}

unsafe fn recvfrom_chk_impl(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    size: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if may_wait(fd) && waits_all(flags) {
        reactor::wanted();
    }
    if !may_wait(fd) || len > size {
        // SAFETY: as for __read_chk.
        return unsafe { real::__recvfrom_chk(fd, buf, len, size, flags, addr, alen) };
    }
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    // SAFETY: as for __read_chk.
    looked(
        fd,
        dontwait,
        || unsafe { real::recvfrom(fd, buf, len, flags | libc::MSG_DONTWAIT, addr, alen) },
        || unsafe { real::__recvfrom_chk(fd, buf, len, size, flags, addr, alen) },
    )
}

unsafe fn recvmsg_impl(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if may_wait(fd) && waits_all(flags) {
        reactor::wanted();
    }
    if !may_wait(fd) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::recvmsg(fd, msg, flags) };
    }
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    // SAFETY: as above.
    looked(fd, dontwait, || unsafe { real::recvmsg(fd, msg, flags | libc::MSG_DONTWAIT) }, || unsafe { real::recvmsg(fd, msg, flags) })
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
