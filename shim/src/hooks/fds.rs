//! Keeping the fd table exact through close and the dup family, and the
//! shim's own fds out of the host's reach: closing one of them fails with
//! `EBADF` (the host never opened it), `close_range` skips them, and a dup
//! onto one fails with `EBUSY` (as `dup2` does while the number is being
//! opened) rather than turning our socket into one of the host's files.

use libc::{c_int, c_uint, c_ulong};

use super::quietly;
use crate::fdtable::{self, Kind};
use crate::real;

pub(super) unsafe fn close_impl(fd: c_int) -> c_int {
    match fdtable::kind_of(fd) {
        Kind::Other => {}
        // Forget it before the number can be reused by another thread.
        Kind::Intercepted => drop(fdtable::remove(fd)),
        Kind::Owned => return real::fail(libc::EBADF),
    }
    // SAFETY: the caller's fd, passed on.
    unsafe { real::close(fd) }
}

pub(super) unsafe fn dup_impl(fd: c_int) -> c_int {
    // SAFETY: the caller's fd, passed on.
    let new = unsafe { real::dup(fd) };
    if new >= 0 && fdtable::contains(fd) {
        quietly("dup", || copy_entry(fd, new));
    }
    new
}

pub(super) unsafe fn dup2_impl(fd: c_int, to: c_int) -> c_int {
    if fd != to && fdtable::owned(to) {
        return real::fail(libc::EBUSY);
    }
    // SAFETY: the caller's fds, passed on.
    let rc = unsafe { real::dup2(fd, to) };
    if rc >= 0 && fd != to && (fdtable::flagged(fd) || fdtable::flagged(to)) {
        quietly("dup2", || copy_entry(fd, to));
    }
    rc
}

pub(super) unsafe fn dup3_impl(fd: c_int, to: c_int, flags: c_int) -> c_int {
    if fd != to && fdtable::owned(to) {
        return real::fail(libc::EBUSY);
    }
    // SAFETY: the caller's fds, passed on.
    let rc = unsafe { real::dup3(fd, to, flags) };
    if rc >= 0 && (fdtable::flagged(fd) || fdtable::flagged(to)) {
        quietly("dup3", || copy_entry(fd, to));
    }
    rc
}

/// `F_DUPFD` and `F_DUPFD_CLOEXEC` make copies like `dup`; every other
/// command passes straight through.
pub(super) unsafe fn fcntl_impl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    let rc = unsafe { real::fcntl(fd, cmd, arg) };
    if rc >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) && fdtable::contains(fd) {
        quietly("fcntl", || copy_entry(fd, rc));
    }
    rc
}

pub(super) unsafe fn close_range_impl(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if flags as c_uint & libc::CLOSE_RANGE_CLOEXEC != 0 || first > last {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::close_range(first, last, flags) };
    }
    let clamp = |v: c_uint| c_int::try_from(v).unwrap_or(c_int::MAX);
    fdtable::remove_range(clamp(first), clamp(last));
    // The ranges between our own fds.
    let mut from = first;
    for ours in fdtable::owned_in(clamp(first), clamp(last)) {
        let ours = ours as c_uint;
        // SAFETY: a part of the caller's range.
        if ours > from && unsafe { real::close_range(from, ours - 1, flags) } != 0 {
            return -1;
        }
        from = ours + 1;
    }
    if from > last {
        return 0;
    }
    // SAFETY: the rest of the caller's range.
    unsafe { real::close_range(from, last, flags) }
}

/// After `to` became a copy of `from`: `to` is ours exactly when `from` is.
fn copy_entry(from: c_int, to: c_int) {
    let entry = fdtable::get(from);
    fdtable::remove(to);
    if let Some(face) = entry {
        fdtable::insert(to, face);
    }
}
