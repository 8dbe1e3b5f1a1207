//! Starting the event thread, and forgetting it in a forked child. A
//! process's first connection only marks the loop wanted later
//! (`DEFERRED`); whoever finds a connection needing it ([`wanted`]) spawns
//! its thread and nothing more; the thread makes its epoll set and pipe
//! itself, a little later (`SETTLE`), so no caller waits for them.

use std::ptr::null_mut;
use std::sync::atomic::Ordering;

use core_lib::log_error;

use super::entry::{
    DEAD, DEFERRED, EPOLL, GENERATION, INBOX, PANIC_ONCE, PANIC_TEST, PIPE_READ, PIPE_WRITE, RUNNING, SETTING_UP, SPAWNING, STATE, STOPPED,
    TEST_PANIC,
};
use super::event_loop;
use crate::peer;

/// Whether the loop takes a new connection now. The first one of a
/// process starts nothing (`DEFERRED`: its caller answers it); a second
/// one spawns the thread, and nothing more (the thread makes its epoll
/// set and pipe itself, then looks at every slot). False while another
/// thread is spawning it, or when it cannot start or died: the caller then
/// uses a thread of its own, never waits.
pub(super) fn taking() -> bool {
    loop {
        match STATE.load(Ordering::Acquire) {
            RUNNING | SETTING_UP => return true,
            SPAWNING | DEAD => return false,
            DEFERRED => return spawn(DEFERRED),
            _ => {
                let panic_test = std::env::var_os(TEST_PANIC).is_some_and(|v| v == "event-thread");
                if panic_test {
                    PANIC_ONCE.store(true, Ordering::Relaxed);
                    PANIC_TEST.store(true, Ordering::Relaxed);
                    return spawn(STOPPED);
                }
                if STATE.compare_exchange(STOPPED, DEFERRED, Ordering::SeqCst, Ordering::Acquire).is_ok() {
                    return true;
                }
            }
        }
    }
}

/// Whether a process's connections wait for the loop to be wanted: the
/// hooks that see a client about to wait ask this first (one load).
#[inline]
pub fn deferred() -> bool {
    STATE.load(Ordering::Relaxed) == DEFERRED
}

/// Starts the loop when connections wait for it (`DEFERRED`): one of them
/// needs it now.
pub fn wanted() {
    if deferred() {
        spawn(DEFERRED);
    }
}

/// Spawns the thread, `from` the state the loop is in; whether it runs (or
/// another caller's spawn of it is on its way). When it cannot start, the
/// state is `from` again: the next connection or need tries once more.
fn spawn(from: u8) -> bool {
    if STATE.compare_exchange(from, SPAWNING, Ordering::SeqCst, Ordering::Acquire).is_err() {
        return matches!(STATE.load(Ordering::Acquire), RUNNING | SETTING_UP);
    }
    match peer::start_thread(c"intercept-events", event_loop::run) {
        Ok(()) => {
            // Unless the thread already got further (it only ever moves on).
            let _ = STATE.compare_exchange(SPAWNING, SETTING_UP, Ordering::SeqCst, Ordering::Relaxed);
            true
        }
        Err(e) => {
            log_error!("cannot start the event thread ({e}); connections get threads of their own");
            STATE.store(from, Ordering::Release);
            false
        }
    }
}

/// In a forked child, which has no event thread: forgets the parent's loop
/// (its fds, like every fd of ours, are closed by
/// `fdtable::close_owned_in_child`), so the child's first such connection
/// starts a loop of its own. The parent's entries are left, and no longer
/// answered in this process's writes: the parent's loop serves them. Async-
/// signal safe: atomics only.
pub fn forget_in_child() {
    STATE.store(STOPPED, Ordering::Release);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    for fd in [&EPOLL, &PIPE_READ, &PIPE_WRITE] {
        fd.store(-1, Ordering::Relaxed);
    }
    for slot in &INBOX {
        slot.store(null_mut(), Ordering::Relaxed);
    }
}
