//! The event thread: connections to sites whose apps answer from memory
//! (`static:` text, `echo`) are served by one epoll loop instead of a thread
//! each, so a request costs one wake-up of this thread, shared by every
//! connection that is ready at that moment, rather than a switch to a
//! thread of its own.
//!
//! The loop answers only whole requests, with no body or a Content-Length
//! body already received (the core's `answer_all_buffered`); anything else —
//! a chunked body, a head or body not yet whole, bad input, an answer the
//! client does not read fast enough — sends the connection to a
//! dispatcher thread with the bytes already read and any answer not yet sent,
//! and it is served there to its end exactly as if it had started there.
//!
//! New connections reach the loop through a table of slots: `submit` puts
//! the entry in a free slot and writes the slot's number to a pipe, which
//! wakes the loop. The loop takes entries out of slots, never from bytes
//! it read, so a stray byte in the pipe costs a look at the table and
//! nothing more; and it alone registers, touches and frees entries, so no
//! lock is needed. The thread is started on the first such connection; a
//! forked child forgets the parent's loop and starts its own.
//!
//! A panic on the loop (our bug) is caught: the loop is marked dead, every
//! connection it had moves to a thread of its own, and so does every later
//! one — the thread stays only to pass on what was already on its way.

use std::io;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use core_lib::config::route::Scheme;
use core_lib::log_error;
use core_lib::routing::Destination;
use core_lib::serve::http;

use crate::peer::{self, Peer};
use crate::{fdtable, real};

/// One connection the loop serves.
struct Entry {
    peer: Peer,
    dest: Destination,
    /// Zero: never hung up on for quietness.
    idle: Duration,
    last: Instant,
    /// Bytes received and not yet answered.
    read: Vec<u8>,
}

/// How serving a ready connection ended.
enum Next {
    Keep,
    Close,
    /// To a thread: `unsent` goes out first; then the connection closes if
    /// `close`, else it is served from `read` on.
    HandOff {
        unsent: Vec<u8>,
        close: bool,
    },
}

const STOPPED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
/// The loop ended (a panic, or its epoll fd was closed under it): threads
/// from now on.
const DEAD: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(STOPPED);
static EPOLL: AtomicI32 = AtomicI32::new(-1);
static PIPE_READ: AtomicI32 = AtomicI32::new(-1);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// Entries on their way to the loop, each in a slot of its own.
const SLOTS: usize = 1024;
static INBOX: [AtomicPtr<Entry>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];

/// The epoll token of the pipe; entries are heap addresses, never 0.
const PIPE_TOKEN: u64 = 0;
/// How long the loop polls for the next request before sleeping.
const SPIN: Duration = peer::SPIN;
/// Bytes taken from one connection per wake-up before answering.
const READ_CHUNK: usize = 64 * 1024;
/// `_INTERCEPT_TEST_PANIC=event-thread` makes the loop panic on its first
/// ready connection, so a test can show what a bug there costs.
const TEST_PANIC: &str = "_INTERCEPT_TEST_PANIC";

/// Whether every request a connection to `dest` can make may be answered
/// on the loop.
pub fn takes(dest: &Destination) -> bool {
    let site = &dest.site;
    site.scheme == Scheme::Http && site.forward.is_none() && site.mounts.iter().all(|m| m.app.answers_from_memory())
}

/// Gives the connection to the loop, starting it if need be; hands the
/// connection back when the loop cannot take it (then a thread serves it).
pub fn submit(peer: Peer, dest: Destination, idle: Duration) -> Result<(), Box<(Peer, Destination)>> {
    let Some(pipe) = channel() else { return Err(Box::new((peer, dest))) };
    let entry = Box::into_raw(Box::new(Entry { peer, dest, idle, last: Instant::now(), read: Vec::new() }));
    let taken_back = |entry: *mut Entry| {
        // SAFETY: the entry is out of every slot again (or never was in
        // one): ours alone.
        let entry = unsafe { Box::from_raw(entry) };
        Err(Box::new((entry.peer, entry.dest)))
    };
    let Some(slot) = INBOX.iter().position(|s| s.compare_exchange(null_mut(), entry, Ordering::SeqCst, Ordering::Relaxed).is_ok()) else {
        return taken_back(entry);
    };
    let token = (slot as u32).to_ne_bytes();
    // SAFETY: a 4-byte write from a local buffer, atomic on a pipe.
    let written = unsafe { libc::write(pipe, token.as_ptr().cast(), token.len()) } == token.len() as isize;
    // A loop that died after we looked may never read the pipe: unless it
    // took the entry already, take it back.
    if (!written || STATE.load(Ordering::SeqCst) == DEAD)
        && INBOX[slot].compare_exchange(entry, null_mut(), Ordering::SeqCst, Ordering::Relaxed).is_ok()
    {
        return taken_back(entry);
    }
    Ok(())
}

/// The pipe into a running loop; None while another thread is starting it
/// or it cannot start (the caller then uses a thread, never waits).
fn channel() -> Option<libc::c_int> {
    match STATE.load(Ordering::Acquire) {
        RUNNING => return Some(PIPE_WRITE.load(Ordering::Relaxed)),
        STARTING | DEAD => return None,
        _ => {}
    }
    if STATE.compare_exchange(STOPPED, STARTING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return None;
    }
    match start() {
        Ok(()) => {
            STATE.store(RUNNING, Ordering::Release);
            Some(PIPE_WRITE.load(Ordering::Relaxed))
        }
        Err(e) => {
            log_error!("cannot start the event thread ({e}); connections get threads of their own");
            STATE.store(STOPPED, Ordering::Release);
            None
        }
    }
}

fn start() -> io::Result<()> {
    let panic_once = std::env::var_os(TEST_PANIC).is_some_and(|v| v == "event-thread");
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
        let close_all = || {
            for fd in [ep, fds[0], fds[1]] {
                fdtable::disown(fd);
                real::close(fd);
            }
        };
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: PIPE_TOKEN };
        if libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fds[0], &mut event) != 0 {
            let e = io::Error::last_os_error();
            close_all();
            return Err(e);
        }
        EPOLL.store(ep, Ordering::Relaxed);
        PIPE_READ.store(fds[0], Ordering::Relaxed);
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
        if let Err(e) = peer::start_thread("intercept-events", move || run(ep, fds[0], panic_once)) {
            close_all();
            return Err(e);
        }
    }
    Ok(())
}

/// In a forked child, which has no event thread: forgets the parent's loop
/// (its fds, like every fd of ours, are closed by
/// `fdtable::close_owned_in_child`), so the child's first such connection
/// starts a loop of its own. The parent's entries are left. Async-signal
/// safe: atomics only.
pub fn forget_in_child() {
    STATE.store(STOPPED, Ordering::Release);
    for fd in [&EPOLL, &PIPE_READ, &PIPE_WRITE] {
        fd.store(-1, Ordering::Relaxed);
    }
    for slot in &INBOX {
        slot.store(null_mut(), Ordering::Relaxed);
    }
}

/// The thread: the loop, then — if it ends, by a panic or a broken epoll
/// fd — every connection it had, and every one still on its way, goes to a
/// thread of its own.
fn run(ep: libc::c_int, pipe: libc::c_int, panic_once: bool) {
    let mut live: Vec<*mut Entry> = Vec::new();
    match catch_unwind(AssertUnwindSafe(|| serve_loop(ep, pipe, &mut live, panic_once))) {
        Ok(e) => log_error!("the event thread stops ({e}); its connections move to threads"),
        Err(_) => log_error!("internal error on the event thread; its connections move to threads"),
    }
    STATE.store(DEAD, Ordering::SeqCst);
    for entry in live.drain(..) {
        // SAFETY: every entry in `live` is owned by the loop, and the loop
        // is over.
        finish(ep, *unsafe { Box::from_raw(entry) }, Next::HandOff { unsent: Vec::new(), close: false });
    }
    // An entry submitted before the loop was marked dead is in a slot (a
    // later one is taken back by `submit`).
    take_inbox(None, |entry| finish(ep, *entry, Next::HandOff { unsent: Vec::new(), close: false }));
}

/// Serves until epoll fails; returns its error.
fn serve_loop(ep: libc::c_int, pipe: libc::c_int, live: &mut Vec<*mut Entry>, mut panic_once: bool) -> io::Error {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut out = Vec::with_capacity(READ_CHUNK);
    let mut next_sweep = Instant::now() + Duration::from_secs(1);
    loop {
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
            let timeout = if live.is_empty() { -1 } else { 1000 };
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
                adopt(ep, pipe, live);
                continue;
            }
            if std::mem::take(&mut panic_once) {
                panic!("{TEST_PANIC}=event-thread");
            }
            let entry = event.u64 as *mut Entry;
            // SAFETY: registered entries stay alive until `finish`, and an
            // fd is reported at most once per epoll_wait.
            let next = serve(unsafe { &mut *entry }, &mut scratch, &mut out);
            if !matches!(next, Next::Keep) {
                live.retain(|e| *e != entry);
                // SAFETY: removed from `live` and from epoll just below: the
                // last reference.
                finish(ep, *unsafe { Box::from_raw(entry) }, next);
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + Duration::from_secs(1);
            let mut quiet = Vec::new();
            live.retain(|&entry| {
                // SAFETY: as above.
                let e = unsafe { &*entry };
                let is_quiet = !e.idle.is_zero() && now.duration_since(e.last) >= e.idle;
                if is_quiet {
                    quiet.push(entry);
                }
                !is_quiet
            });
            for entry in quiet {
                // SAFETY: dropped from `live` by the retain above.
                finish(ep, *unsafe { Box::from_raw(entry) }, Next::Close);
            }
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
fn adopt(ep: libc::c_int, pipe: libc::c_int, live: &mut Vec<*mut Entry>) {
    let mut tokens = [0u8; 4 * 64];
    let mut register = |entry: Box<Entry>| {
        let fd = entry.peer.as_raw_fd();
        let entry = Box::into_raw(entry);
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: entry as u64 };
        // SAFETY: a plain registration of our own end.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut event) } == 0 {
            live.push(entry);
        } else {
            // SAFETY: never registered, so this is the only reference.
            finish(ep, *unsafe { Box::from_raw(entry) }, Next::HandOff { unsent: Vec::new(), close: false });
        }
    };
    loop {
        // SAFETY: reads into a local buffer of its length.
        let n = unsafe { libc::read(pipe, tokens.as_mut_ptr().cast(), tokens.len()) };
        if n <= 0 {
            return;
        }
        let n = n as usize;
        if n.is_multiple_of(4) {
            take_inbox(Some(&tokens[..n]), &mut register);
        } else {
            // Not whole tokens: someone else wrote to our pipe. Look at
            // every slot, so no entry waits for a token that never comes.
            take_inbox(None, &mut register);
        }
    }
}
/// Reads what a ready connection sent and answers every whole request it
/// can; says what becomes of the connection.
fn serve(entry: &mut Entry, scratch: &mut [u8], out: &mut Vec<u8>) -> Next {
    let fd = entry.peer.as_raw_fd();
    let mut ended = false;
    loop {
        // SAFETY: scratch is valid for writes of its length.
        let n = unsafe { libc::recv(fd, scratch.as_mut_ptr().cast(), scratch.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            entry.read.extend_from_slice(&scratch[..n as usize]);
            if (n as usize) < scratch.len() || entry.read.len() >= READ_CHUNK {
                break;
            }
            continue;
        }
        if n == 0 {
            ended = true;
            break;
        }
        match real::errno() {
            libc::EINTR => continue,
            libc::EAGAIN => break,
            _ => return Next::Close,
        }
    }
    entry.last = Instant::now();
    out.clear();
    let (taken, keep) = http::answer_all_buffered(&entry.read, out, &entry.dest);
    entry.read.drain(..taken);
    if entry.read.is_empty() && entry.read.capacity() > 16 * 1024 {
        // Many quiet connections should not each keep a large buffer.
        entry.read = Vec::new();
    }
    let mut sent = 0;
    while sent < out.len() {
        // SAFETY: out[sent..] is valid for reads of its length.
        let n = unsafe { libc::send(fd, out[sent..].as_ptr().cast(), out.len() - sent, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        match real::errno() {
            libc::EINTR => {}
            // The client is not reading yet: a thread waits for it.
            libc::EAGAIN => return Next::HandOff { unsent: out[sent..].to_vec(), close: !keep },
            _ => return Next::Close,
        }
    }
    if !keep {
        Next::Close
    } else if !entry.read.is_empty() {
        Next::HandOff { unsent: Vec::new(), close: false }
    } else if ended {
        Next::Close
    } else {
        Next::Keep
    }
}

/// Takes a connection off the loop: closes it, or gives it to a thread.
fn finish(ep: libc::c_int, entry: Entry, next: Next) {
    // SAFETY: unregisters our own fd (an error for one never registered is
    // harmless).
    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, entry.peer.as_raw_fd(), std::ptr::null_mut()) };
    let Entry { peer, dest, read, .. } = entry;
    match next {
        Next::Keep | Next::Close => drop(peer),
        Next::HandOff { unsent, close } => peer::serve_on_thread(peer, dest, read, unsent, close),
    }
}
