//! The loop itself: the thread's epoll set and pipe, the entries it
//! takes in from their slots, each wake-up's answers, the sweep of quiet
//! connections, and what happens to every connection when the loop ends.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{Duration, Instant};

use core_lib::log_error;

use super::answer::{hand_over, serve};
use super::entry::*;
use crate::slots::{self, Take};
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

/// The loop's epoll set and pipe, made on its own thread after `SETTLE`;
/// their numbers are published before the loop says it is running.
fn set_up() -> io::Result<(libc::c_int, libc::c_int)> {
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

/// What the loop may do with an entry now.
enum Claim {
    /// Its slot is taken: the loop's until given back.
    Held,
    /// No slot names it: the loop's alone.
    Alone,
    /// A caller holds it now (and will serve what came in).
    Busy,
    /// A caller took the connection off the loop: only to be freed.
    Detached,
}

fn claim(entry: *mut Entry) -> Claim {
    // SAFETY: entries stay alive until the loop frees them, and only the
    // fixed fields are read here.
    let e = unsafe { &*entry };
    let Some((fd, _)) = e.client else { return Claim::Alone };
    match slots::take(fd, entry as usize) {
        Take::Taken => Claim::Held,
        Take::Busy => Claim::Busy,
        Take::Elsewhere if e.detached.load(Ordering::Acquire) => Claim::Detached,
        Take::Elsewhere => Claim::Alone,
    }
}

/// Frees an entry a caller took off the loop. The caller unregistered its
/// end (if the loop had registered it) before letting go, and the number
/// may be another connection's by now: it is left alone here.
fn free_detached(entry: *mut Entry) {
    // SAFETY: a detached entry is reached by the loop alone, which frees it
    // once (it is dropped from every list first).
    drop(unsafe { Box::from_raw(entry) });
}

/// The thread: the loop, then — if it ends, by a panic or a broken epoll
/// fd — every connection it had, and every one still on its way, goes to a
/// thread of its own.
pub(super) fn run() {
    let mut live: Vec<*mut Entry> = Vec::new();
    let mut waiting: Vec<*mut Entry> = Vec::new();
    let ep = match set_up() {
        Ok((ep, pipe)) => {
            STATE.store(RUNNING, Ordering::SeqCst);
            match catch_unwind(AssertUnwindSafe(|| serve_loop(ep, pipe, &mut live, &mut waiting))) {
                Ok(e) => log_error!("the event thread stops ({e}); its connections move to threads"),
                Err(_) => log_error!("internal error on the event thread; its connections move to threads"),
            }
            ep
        }
        Err(e) => {
            log_error!("cannot set up the event thread ({e}); connections get threads of their own");
            -1
        }
    };
    STATE.store(DEAD, Ordering::SeqCst);
    let to_thread = |entry: *mut Entry| loop {
        match claim(entry) {
            Claim::Busy => std::thread::yield_now(),
            Claim::Detached => return free_detached(entry),
            Claim::Held | Claim::Alone => return finish(ep, entry, Next::HandOff { unsent: Vec::new(), close: false }),
        }
    };
    live.drain(..).chain(waiting.drain(..)).for_each(to_thread);
    // An entry submitted before the loop was marked dead is in a slot (a
    // later one is taken back by `submit`).
    take_inbox(None, |entry| to_thread(Box::into_raw(entry)));
}

/// Serves until epoll fails; returns its error.
fn serve_loop(ep: libc::c_int, pipe: libc::c_int, live: &mut Vec<*mut Entry>, waiting: &mut Vec<*mut Entry>) -> io::Error {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    let mut next_sweep = Instant::now() + Duration::from_secs(1);
    // Entries submitted while the loop was setting up wrote no token.
    take_inbox(None, |entry| register(ep, Box::into_raw(entry), live, waiting));
    loop {
        // Entries a caller held when they arrived: again now.
        for entry in std::mem::take(waiting) {
            register(ep, entry, live, waiting);
        }
        // While connections are fewer than the cores left to spare, poll
        // briefly before sleeping: a keep-alive client usually sends its
        // next request within microseconds, and a sleep and wake-up of this
        // thread costs more than the polling.
        let mut n = 0;
        if !live.is_empty() && live.len() <= peer::spare_cores() {
            let deadline = Instant::now() + SPIN;
            while n == 0 && Instant::now() < deadline {
                // SAFETY: events is a valid array of its length.
                n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as libc::c_int, 0) };
                std::hint::spin_loop();
            }
        }
        if n == 0 {
            let timeout = if !waiting.is_empty() {
                1
            } else if live.is_empty() {
                -1
            } else {
                1000
            };
            // SAFETY: events is a valid array of its length.
            n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as libc::c_int, timeout) };
        }
        if n < 0 {
            if real::errno() == libc::EINTR {
                continue;
            }
            return io::Error::last_os_error();
        }
        for event in &events[..n as usize] {
            if event.u64 == PIPE_TOKEN {
                adopt(ep, pipe, live, waiting);
                continue;
            }
            let entry = event.u64 as *mut Entry;
            match claim(entry) {
                // The caller serves what came in before it lets go.
                Claim::Busy => {}
                Claim::Detached => {
                    live.retain(|e| *e != entry);
                    free_detached(entry);
                }
                // SAFETY: the entry is the loop's (held or alone).
                claim => settle(ep, entry, matches!(claim, Claim::Held), serve(unsafe { &*entry }, &[]), live),
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + Duration::from_secs(1);
            sweep(ep, now, live);
        }
    }
}

/// Hangs up on connections quiet past their idle timeout, and frees the
/// entries callers took off the loop.
fn sweep(ep: libc::c_int, now: Instant, live: &mut Vec<*mut Entry>) {
    for entry in std::mem::take(live) {
        match claim(entry) {
            Claim::Busy => live.push(entry),
            Claim::Detached => free_detached(entry),
            claim => {
                // SAFETY: the entry is the loop's (held or alone).
                let e = unsafe { &*entry };
                // SAFETY: as above: the body is the loop's now.
                let body = unsafe { &*e.body.get() };
                live.push(entry);
                let quiet = !e.idle.is_zero() && now.duration_since(body.last) >= e.idle;
                // A request begun and not finished goes to a thread, which
                // holds its head to the idle timeout.
                let next = if !body.read.is_empty() {
                    Next::HandOff { unsent: Vec::new(), close: false }
                } else if quiet {
                    Next::Close
                } else {
                    Next::Keep
                };
                settle(ep, entry, matches!(claim, Claim::Held), next, live);
            }
        }
    }
}

/// After the loop served a claimed entry: gives its slot back (serving
/// again what a caller marked), or takes it off the loop.
fn settle(ep: libc::c_int, entry: *mut Entry, held: bool, mut next: Next, live: &mut Vec<*mut Entry>) {
    loop {
        if !matches!(next, Next::Keep) {
            live.retain(|e| *e != entry);
            return finish(ep, entry, next);
        }
        // SAFETY: only the fixed fields are read.
        let e = unsafe { &*entry };
        match e.client {
            Some((fd, _)) if held && !slots::give_back(fd, entry as usize) => next = serve(e, &[]),
            _ => return,
        }
    }
}

/// Takes entries out of the inbox: the slots `tokens` name, or every slot.
fn take_inbox(tokens: Option<&[u8]>, mut each: impl FnMut(Box<Entry>)) {
    let mut take = |slot: &AtomicPtr<Entry>| {
        let entry = slot.swap(null_mut(), Ordering::SeqCst);
        if !entry.is_null() {
            // SAFETY: `submit` gave up this box when it filled the slot,
            // and the swap made it ours alone.
            each(unsafe { Box::from_raw(entry) });
        }
    };
    match tokens {
        Some(tokens) => {
            tokens.chunks_exact(4).filter_map(|t| INBOX.get(u32::from_ne_bytes([t[0], t[1], t[2], t[3]]) as usize)).for_each(&mut take)
        }
        None => INBOX.iter().for_each(take),
    }
}

/// Registers the connections the pipe announces.
fn adopt(ep: libc::c_int, pipe: libc::c_int, live: &mut Vec<*mut Entry>, waiting: &mut Vec<*mut Entry>) {
    let mut tokens = [0u8; 4 * 64];
    loop {
        // SAFETY: reads into a local buffer of its length.
        let n = unsafe { real::read(pipe, tokens.as_mut_ptr().cast(), tokens.len()) };
        if n <= 0 {
            return;
        }
        let n = n as usize;
        let register = |entry: Box<Entry>| register(ep, Box::into_raw(entry), live, waiting);
        if n.is_multiple_of(4) {
            take_inbox(Some(&tokens[..n]), register);
        } else {
            // Not whole tokens: someone else wrote to our pipe. Look at
            // every slot, so no entry waits for a token that never comes.
            take_inbox(None, register);
        }
    }
}

/// Puts a new entry in the epoll set, unless a caller holds it now (then
/// it waits) or took it off the loop already.
fn register(ep: libc::c_int, entry: *mut Entry, live: &mut Vec<*mut Entry>, waiting: &mut Vec<*mut Entry>) {
    if PANIC_ONCE.swap(false, Ordering::Relaxed) {
        waiting.push(entry);
        panic!("{TEST_PANIC}=event-thread");
    }
    let claim = claim(entry);
    let held = match claim {
        Claim::Busy => return waiting.push(entry),
        Claim::Detached => return free_detached(entry),
        claim => matches!(claim, Claim::Held),
    };
    // SAFETY: the entry is the loop's (held or alone).
    let e = unsafe { &*entry };
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: entry as u64 };
    // SAFETY: a plain registration of our own end.
    if unsafe { real::epoll_ctl(ep, libc::EPOLL_CTL_ADD, e.peer_fd, &mut event) } == 0 {
        // SAFETY: as above: the body is the loop's now.
        unsafe { (*e.body.get()).registered = true };
        live.push(entry);
        settle(ep, entry, held, Next::Keep, live);
    } else {
        finish(ep, entry, Next::HandOff { unsent: Vec::new(), close: false });
    }
}

/// Takes a claimed connection off the loop and frees its entry: closes
/// the connection, or gives it to a thread.
fn finish(ep: libc::c_int, entry: *mut Entry, next: Next) {
    // SAFETY: the loop holds the entry (or it is the loop's alone), and it
    // was dropped from every list: the last reference.
    let entry = unsafe { Box::from_raw(entry) };
    if let Some((fd, _)) = entry.client {
        slots::clear(fd, &*entry as *const Entry as usize);
    }
    // SAFETY: unregisters our own fd (an error for one never registered is
    // harmless).
    unsafe { real::epoll_ctl(ep, libc::EPOLL_CTL_DEL, entry.peer_fd, std::ptr::null_mut()) };
    let Entry { dest, body, .. } = *entry;
    let Body { peer, read, .. } = body.into_inner();
    hand_over(peer, dest, read, next);
}
