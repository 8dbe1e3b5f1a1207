//! The exported libc hooks. Each one is a translation: read the C
//! arguments, ask the core (or the fd table), act with the real functions.
//!
//! No panic crosses the C boundary: the body of every slow path runs inside
//! `catch_unwind`, and a panic there fails the call the way libc would fail
//! it. The path for a call that is not ours is one atomic load.

pub(crate) mod connect;
mod fds;
mod names;
mod sockets;

use std::panic::{AssertUnwindSafe, catch_unwind};

use core_lib::log_error;
use libc::c_int;

use crate::set_errno;

/// Runs a hook's slow path; a panic becomes `fallback()`.
fn guarded<T>(hook: &str, fallback: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log_error!("internal error in {hook}; the call fails as libc would fail it");
        fallback()
    })
}

fn fail(code: c_int) -> c_int {
    set_errno(code);
    -1
}
