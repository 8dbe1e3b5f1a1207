//! Starting the event thread, and forgetting it in a forked child. A
//! process's first connection only marks the loop wanted later
//! (`DEFERRED`); whoever finds a connection needing it ([`wanted`]) spawns
//! its thread and nothing more; the thread makes its epoll set and pipe
//! itself, a little later (`SETTLE`), so no caller waits for them.

use std::io;
use std::ptr::null_mut;
use std::sync::atomic::Ordering;
use std::time::Duration;

use core_lib::log_error;

use super::{
    DEAD, DEFERRED, EPOLL, GENERATION, INBOX, PANIC_ONCE, PANIC_TEST, PIPE_READ, PIPE_TOKEN, PIPE_WRITE, RUNNING, SETTING_UP, SPAWNING,
    STATE, STOPPED, TEST_PANIC,
};
use crate::{fdtable, peer, real};

/// How long the loop waits before making its epoll set and pipe. The
/// connection that started it is usually answered in its caller's thread
/// meanwhile, and a process that makes one request is often gone by then:
/// the set-up's fd calls, its first allocation (a malloc arena: an mmap and
/// munmaps whose TLB flushes interrupt the caller) and its reads of cgroup
/// files do not compete with the caller's connect and request. What waits
/// for the loop (a write that went to the socket, a quiet connection's
/// idle timeout) waits this much longer, once per process.
const SETTLE: Duration = Duration::from_millis(2);

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
    match peer::start_thread(c"intercept-events", super::run) {
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

/// The loop's epoll set and pipe, made on its own thread after `SETTLE`;
/// their numbers are published before the loop says it is running.
pub(super) fn set_up() -> io::Result<(libc::c_int, libc::c_int)> {
    std::thread::sleep(SETTLE);
    // SAFETY: plain fd-creating calls; every fd is closed again on failure.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fds = [0; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
            let e = io::Error::last_os_error();
            real::close(ep);
            return Err(e);
        }
        // Ours, at numbers the host is unlikely to close or reuse.
        let (ep, fds) = (fdtable::own_high(ep), [fdtable::own_high(fds[0]), fdtable::own_high(fds[1])]);
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: PIPE_TOKEN };
        if real::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fds[0], &mut event) != 0 {
            let e = io::Error::last_os_error();
            for fd in [ep, fds[0], fds[1]] {
                fdtable::disown(fd);
                real::close(fd);
            }
            return Err(e);
        }
        EPOLL.store(ep, Ordering::Relaxed);
        PIPE_READ.store(fds[0], Ordering::Relaxed);
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
        Ok((ep, fds[0]))
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
