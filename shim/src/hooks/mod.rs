//! The exported libc hooks. Each one is a translation: read the C
//! arguments, ask the core (or the fd table), act with the real functions.
//!
//! Every export is an entry of one table ([`table`]): its name and C
//! signature once, its fallback and its implementation in the module of
//! its topic; the table makes it a call of
//! `guarded(name, fallback, || implementation)`. No panic crosses the C
//! boundary: a panic in the implementation becomes `fallback()`, which
//! fails the call the way libc would fail it (or, where nothing was done
//! yet, makes the real call). An implementation that must not lose a real
//! call's result guards its own bookkeeping with [`quietly`]. The path for
//! a call that is not ours is one atomic load.

pub(crate) mod connect;
pub(crate) mod dl;
mod exec;
mod execl;
mod fds;
mod names;
mod open;
mod sockets;
pub(crate) mod table;
mod wait;
mod write;

use std::panic::{AssertUnwindSafe, catch_unwind};

use core_lib::log_error;

/// Runs a hook's implementation; a panic becomes `fallback()`.
#[inline(always)]
fn guarded<T>(hook: &str, fallback: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log_error!("internal error in {hook}; the call fails as libc would fail it");
        fallback()
    })
}

/// Runs bookkeeping after a real call that already happened: a panic is
/// logged and the call's result stands.
fn quietly(hook: &str, body: impl FnOnce()) {
    guarded(hook, || (), body)
}
