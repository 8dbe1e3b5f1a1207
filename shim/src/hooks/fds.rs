//! Keeping the fd table exact through close and the dup family.

use libc::{c_int, c_uint, c_ulong};

use super::guarded;
use crate::{fdtable, real};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if fdtable::contains(fd) {
        // Forget it before the number can be reused by another thread.
        guarded("close", || None, || fdtable::remove(fd));
    }
    unsafe { real::close(fd) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let new = unsafe { real::dup(fd) };
    if new >= 0 && fdtable::contains(fd) {
        guarded("dup", || (), || copy_entry(fd, new));
    }
    new
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(fd: c_int, to: c_int) -> c_int {
    let rc = unsafe { real::dup2(fd, to) };
    if rc >= 0 && fd != to && (fdtable::contains(fd) || fdtable::contains(to)) {
        guarded("dup2", || (), || copy_entry(fd, to));
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int {
    let rc = unsafe { real::dup3(fd, to, flags) };
    if rc >= 0 && (fdtable::contains(fd) || fdtable::contains(to)) {
        guarded("dup3", || (), || copy_entry(fd, to));
    }
    rc
}

/// `F_DUPFD` and `F_DUPFD_CLOEXEC` make copies like `dup`; every other
/// command passes straight through. glibc also exports it as `fcntl64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let rc = unsafe { real::fcntl(fd, cmd, arg) };
    if rc >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) && fdtable::contains(fd) {
        guarded("fcntl", || (), || copy_entry(fd, rc));
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    unsafe { fcntl(fd, cmd, arg) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if flags as c_uint & libc::CLOSE_RANGE_CLOEXEC == 0 {
        let clamp = |v: c_uint| c_int::try_from(v).unwrap_or(c_int::MAX);
        guarded("close_range", || (), || fdtable::remove_range(clamp(first), clamp(last)));
    }
    unsafe { real::close_range(first, last, flags) }
}

/// After `to` became a copy of `from`: `to` is ours exactly when `from` is.
fn copy_entry(from: c_int, to: c_int) {
    let entry = fdtable::get(from);
    fdtable::remove(to);
    if let Some(conn) = entry {
        fdtable::insert(to, conn);
    }
}

