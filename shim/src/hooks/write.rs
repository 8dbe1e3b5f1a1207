//! Writes to an intercepted connection: one whose apps answer from memory
//! is answered inside the write, in the caller's thread
//! (`reactor::answer_in_caller`); any other write is the real one after
//! one atomic load. A write the caller's thread does not answer goes to
//! the socket as without the shim, and the connection's slot is marked so
//! whoever holds it serves those bytes too.

use libc::{c_int, c_void, iovec, msghdr, size_t, ssize_t};

use crate::real;
use crate::{fdtable, reactor, slots};

/// Flags a write answered in the caller's thread may carry: the rest
/// (`MSG_MORE`, `MSG_OOB`, …) go to the socket.
const PLAIN: c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
/// The most pieces a vectored write may have to be answered in the
/// caller's thread.
const PIECES: usize = 16;

pub(super) unsafe fn write_impl(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    if !fdtable::flagged(fd) || buf.is_null() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::write(fd, buf, len) };
    }
    // SAFETY: the caller vouches for `len` bytes at `buf`.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    // SAFETY: as above.
    answered(fd, &[bytes]).unwrap_or_else(|| settled(fd, unsafe { real::write(fd, buf, len) }))
}

/// `send`, and `sendto` with no address.
pub(super) unsafe fn send_impl(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    if !fdtable::flagged(fd) || buf.is_null() || flags & !PLAIN != 0 {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::send(fd, buf, len, flags) };
    }
    // SAFETY: the caller vouches for `len` bytes at `buf`.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    // SAFETY: as above.
    answered(fd, &[bytes]).unwrap_or_else(|| settled(fd, unsafe { real::send(fd, buf, len, flags) }))
}

pub(super) unsafe fn writev_impl(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    if !fdtable::flagged(fd) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::writev(fd, iov, count) };
    }
    // SAFETY: the caller vouches for `count` iovecs at `iov`.
    match unsafe { pieces(iov, count) } {
        // SAFETY: as above.
        Some(bytes) => answered(fd, &bytes).unwrap_or_else(|| settled(fd, unsafe { real::writev(fd, iov, count) })),
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { real::writev(fd, iov, count) },
    }
}

/// `sendmsg` with no address and no control data; None when the message
/// has either (or too many pieces), and the real call sends it.
pub(super) unsafe fn sendmsg_plain(fd: c_int, msg: *const msghdr, flags: c_int) -> Option<ssize_t> {
    if !fdtable::flagged(fd) || msg.is_null() || flags & !PLAIN != 0 {
        return None;
    }
    // SAFETY: msg is a valid msghdr from the caller.
    let msg = unsafe { &*msg };
    if !msg.msg_name.is_null() || msg.msg_controllen != 0 {
        return None;
    }
    // SAFETY: the caller vouches for the message's iovecs.
    let bytes = unsafe { pieces(msg.msg_iov, msg.msg_iovlen as c_int) }?;
    // SAFETY: the caller's arguments, passed on.
    Some(answered(fd, &bytes).unwrap_or_else(|| settled(fd, unsafe { real::sendmsg(fd, msg, flags) })))
}

/// The byte slices of an iovec array of at most [`PIECES`].
///
/// # Safety
/// `iov` must hold `count` valid iovecs, as the call's caller vouches.
unsafe fn pieces<'a>(iov: *const iovec, count: c_int) -> Option<Vec<&'a [u8]>> {
    let count = usize::try_from(count).ok().filter(|&n| n <= PIECES && !iov.is_null())?;
    // SAFETY: the caller's promise.
    let iovs = unsafe { std::slice::from_raw_parts(iov, count) };
    iovs.iter()
        .map(|v| match (v.iov_base.is_null(), v.iov_len) {
            (_, 0) => Some(&[][..]),
            (true, _) => None,
            // SAFETY: the caller vouches for each iovec's bytes.
            (false, len) => Some(unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), len) }),
        })
        .collect()
}

/// The bytes taken by the caller's-thread path, errno as it was (a write
/// that succeeds leaves errno alone).
fn answered(fd: c_int, bytes: &[&[u8]]) -> Option<ssize_t> {
    let errno = real::errno();
    let taken = reactor::answer_in_caller(fd, bytes)?;
    real::set_errno(errno);
    Some(taken as ssize_t)
}

/// After a real write to an intercepted fd: whoever serves the connection
/// now serves these bytes too (the event thread, started now if nobody
/// holds the connection and it was not running).
fn settled(fd: c_int, written: ssize_t) -> ssize_t {
    let errno = real::errno();
    if !slots::mark_dirty(fd) {
        reactor::wanted();
    }
    real::set_errno(errno);
    written
}
