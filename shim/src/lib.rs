//! `libintercept.so`: the `LD_PRELOAD` layer of intercept.
//!
//! It only translates libc calls: name lookups and connects are handed to
//! the core's router, routed connections become an `AF_UNIX` socketpair whose
//! far end a dispatcher thread serves with the core's HTTP loop (or, for
//! apps that answer from memory, one shared event thread). Every hook
//! starts with one atomic load; when the shim has nothing configured, or the
//! call is not ours, it jumps straight to the real function.

mod api;
mod dispatch;
mod fdtable;
mod hooks;
mod reactor;
mod real;
mod sockaddr;
mod state;

pub(crate) fn set_errno(code: libc::c_int) {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() = code };
}

pub(crate) fn errno() -> libc::c_int {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() }
}
