//! The event thread: connections to sites whose apps answer from memory
//! (`static:` text, `echo`) are served by one epoll loop instead of a thread
//! each, so a request costs one wake-up of this thread, shared by every
//! connection that is ready at that moment, rather than a switch to a
//! thread of its own.
//!
//! The loop answers only whole requests, with no body or a Content-Length
//! body already received (the core's `answer_all_buffered`), and keeps the
//! start of one until the rest comes (`waits_for_more`) — but not past the
//! next sweep, at most a second; anything else — a chunked body, bad
//! input, an answer the client does not read fast enough — sends the
//! connection to a dispatcher thread with the bytes already read and any
//! answer not yet sent, and it is served there to its end exactly as if it
//! had started there.
//!
//! New connections reach the loop through a table of slots: `submit` puts
//! the entry in a free slot and writes the slot's number to a pipe, which
//! wakes the loop (until the loop runs, no number: it looks at every slot
//! once it does). The loop takes entries out of slots, never from bytes
//! it read, so a stray byte in the pipe costs a look at the table and
//! nothing more; and it alone registers, touches and frees entries, so no
//! lock is needed. A process's first such connection starts no thread:
//! its client's own writes are answered in its thread (below), and a
//! process that makes one request is gone before a thread would have been
//! of use (spawning one costs such a process about a tenth of a
//! millisecond here). The thread is spawned when a connection needs it
//! (`start::wanted`): a second connection, a write that went to the
//! socket, a request begun and not finished, a client about to wait on a
//! connection with nothing to read (`hooks::wait`), a fork. It pays for the
//! spawn alone: the thread makes its epoll set and pipe itself, a little
//! later. A forked child forgets the parent's loop and starts its own.
//!
//! A panic on the loop (our bug) is caught: the loop is marked dead, every
//! connection it had moves to a thread of its own, and so does every later
//! one — the thread stays only to pass on what was already on its way.
//!
//! A client's own write of a request is answered in its thread when it
//! can be (`caller`): the loop and the caller take turns through the
//! connection's slot (`slots`).

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use core_lib::config::route::Scheme;
use core_lib::log_error;
use core_lib::routing::Destination;
use core_lib::serve::http;

mod caller;
mod start;

pub use caller::answer_in_caller;
use start::taking;
pub use start::{deferred, forget_in_child, wanted};

use crate::peer::{self, Peer};
use crate::real;
use crate::slots::{self, Take};

/// One connection the loop serves. What never changes is read by whoever
/// has the entry's address; the body only by whoever holds its slot (or
/// by the loop alone, when no slot names the entry).
pub(super) struct Entry {
    /// Our end's number, for epoll and for reading.
    peer_fd: libc::c_int,
    /// The client's fd whose slot names this entry, and its socket.
    client: Option<(libc::c_int, (u64, u64))>,
    /// The process's [`GENERATION`] when the entry was made.
    generation: u32,
    dest: Destination,
    /// Zero: never hung up on for quietness.
    idle: Duration,
    /// Set, before its slot is emptied, when a caller's thread took the
    /// connection off the loop: the loop then only frees the entry.
    detached: AtomicBool,
    body: UnsafeCell<Body>,
}

pub(super) struct Body {
    /// None once a caller's thread took it off the loop.
    peer: Option<Peer>,
    last: Instant,
    /// Bytes received and not yet answered.
    read: Vec<u8>,
    /// Answers not yet sent.
    out: Vec<u8>,
    /// In the loop's epoll set.
    registered: bool,
}

/// How serving a ready connection ended.
pub(super) enum Next {
    Keep,
    Close,
    /// To a thread: `unsent` goes out first; then the connection closes if
    /// `close`, else it is served from `read` on.
    HandOff {
        unsent: Vec<u8>,
        close: bool,
    },
}

/// No loop and no connection for it.
const STOPPED: u8 = 0;
/// A caller is spawning the thread.
const SPAWNING: u8 = 1;
/// The thread is making its epoll set and pipe: entries wait in their
/// slots, which it looks at once it runs, and callers may answer them.
const SETTING_UP: u8 = 2;
const RUNNING: u8 = 3;
/// The loop ended (a panic, its epoll fd closed under it, or it could not
/// set up): threads from now on.
const DEAD: u8 = 4;
/// Connections wait in their slots, answered by their callers, and none
/// needs the loop yet: it starts when one does (`start::wanted`).
const DEFERRED: u8 = 5;
static STATE: AtomicU8 = AtomicU8::new(STOPPED);
static EPOLL: AtomicI32 = AtomicI32::new(-1);
static PIPE_READ: AtomicI32 = AtomicI32::new(-1);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// Counts forks in children: an entry made before this process's last
/// fork is its parent's, whose memory this is a copy of.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Entries on their way to the loop, each in a slot of its own.
const SLOTS: usize = 1024;
static INBOX: [AtomicPtr<Entry>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];

/// The epoll token of the pipe; entries are heap addresses, never 0.
const PIPE_TOKEN: u64 = 0;
/// How long the loop polls for the next request before sleeping.
const SPIN: Duration = peer::SPIN;
/// Bytes taken from one connection per wake-up before answering, and the
/// most one write may carry to be answered in the caller's thread.
const READ_CHUNK: usize = 64 * 1024;
/// `_INTERCEPT_TEST_PANIC=event-thread` makes the loop panic on the first
/// connection it takes in, so a test can show what a bug there costs.
const TEST_PANIC: &str = "_INTERCEPT_TEST_PANIC";
static PANIC_ONCE: AtomicBool = AtomicBool::new(false);
/// Set with the switch: requests then wait for the loop, as they did
/// before callers answered them, so the test sees the panic's cost.
static PANIC_TEST: AtomicBool = AtomicBool::new(false);

/// Whether every request a connection to `dest` can make may be answered
/// on the loop.
pub fn takes(dest: &Destination) -> bool {
    let site = &dest.site;
    site.scheme == Scheme::Http && site.forward.is_none() && site.mounts.iter().all(|m| m.app.answers_from_memory())
}

/// Gives the connection to the loop, starting it if need be; hands the
/// connection back when the loop cannot take it (then a thread serves it).
pub fn submit(peer: Peer, dest: Destination, idle: Duration) -> Result<(), Box<(Peer, Destination)>> {
    if !taking() {
        return Err(Box::new((peer, dest)));
    }
    let client = peer.client().map(|c| (c.fd, c.socket));
    let peer_fd = peer.as_raw_fd();
    let body = Body { peer: Some(peer), last: Instant::now(), read: Vec::new(), out: Vec::new(), registered: false };
    let generation = GENERATION.load(Ordering::Relaxed);
    let entry = Entry { peer_fd, client, generation, dest, idle, detached: AtomicBool::new(false), body: UnsafeCell::new(body) };
    let entry = Box::into_raw(Box::new(entry));
    // The client's fd is not its socket yet (its connect has not returned):
    // no caller can take the slot before the loop has the entry.
    if let Some((fd, _)) = client {
        slots::install(fd, entry as usize);
    }
    let taken_back = |entry: *mut Entry| {
        // SAFETY: the entry is out of every inbox slot again (or never was
        // in one), and no caller could reach it yet: ours alone.
        let entry = unsafe { Box::from_raw(entry) };
        if let Some((fd, _)) = entry.client {
            slots::take(fd, &*entry as *const Entry as usize);
            slots::clear(fd, &*entry as *const Entry as usize);
        }
        let Entry { dest, body, .. } = *entry;
        let peer = body.into_inner().peer.expect("a new entry has its peer");
        Err(Box::new((peer, dest)))
    };
    let Some(slot) = INBOX.iter().position(|s| s.compare_exchange(null_mut(), entry, Ordering::SeqCst, Ordering::Relaxed).is_ok()) else {
        return taken_back(entry);
    };
    // While the loop sets up, it has yet to look at every slot (SeqCst on
    // both sides: if this load sees it setting up, its look comes after
    // this entry went in); once running, the pipe wakes it.
    let state = STATE.load(Ordering::SeqCst);
    let token = (slot as u32).to_ne_bytes();
    let written = state != RUNNING
        // SAFETY: a 4-byte write from a local buffer, atomic on a pipe.
        || unsafe { real::write(PIPE_WRITE.load(Ordering::Relaxed), token.as_ptr().cast(), token.len()) } == token.len() as isize;
    // A loop that died after we looked may never read the pipe: unless it
    // took the entry already, take it back.
    if (!written || STATE.load(Ordering::SeqCst) == DEAD)
        && INBOX[slot].compare_exchange(entry, null_mut(), Ordering::SeqCst, Ordering::Relaxed).is_ok()
    {
        return taken_back(entry);
    }
    Ok(())
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
fn run() {
    let mut live: Vec<*mut Entry> = Vec::new();
    let mut waiting: Vec<*mut Entry> = Vec::new();
    let ep = match start::set_up() {
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

/// Reads what a ready connection sent, then takes `extra` (a caller's
/// write, which comes after it), and answers every whole request it can;
/// says what becomes of the connection. Only by whoever holds the entry.
pub(super) fn serve(e: &Entry, extra: &[&[u8]]) -> Next {
    // SAFETY: the caller holds the entry, so the body is its alone.
    let body = unsafe { &mut *e.body.get() };
    let fd = e.peer_fd;
    let mut ended = false;
    // Read through a stack buffer, so a connection keeps only the bytes
    // it has not had answered, not a buffer of its own.
    // Uninitialized: the receive writes what is read, and most calls read
    // nothing.
    let mut chunk = [const { std::mem::MaybeUninit::<u8>::uninit() }; 8 * 1024];
    while body.read.len() < READ_CHUNK {
        // SAFETY: chunk is valid for writes of its length.
        let n = unsafe { real::recv(fd, chunk.as_mut_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            // SAFETY: the receive initialized its first n bytes.
            body.read.extend_from_slice(unsafe { std::slice::from_raw_parts(chunk.as_ptr().cast::<u8>(), n as usize) });
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
    for bytes in extra {
        body.read.extend_from_slice(bytes);
    }
    body.last = Instant::now();
    body.out.clear();
    let (taken, keep) = http::answer_all_buffered(&body.read, &mut body.out, &e.dest);
    body.read.drain(..taken);
    if body.read.is_empty() && body.read.capacity() > 16 * 1024 {
        // Many quiet connections should not each keep a large buffer.
        body.read = Vec::new();
    }
    let out = &body.out;
    let mut sent = 0;
    while sent < out.len() {
        // SAFETY: out[sent..] is valid for reads of its length.
        let n = unsafe { real::send(fd, out[sent..].as_ptr().cast(), out.len() - sent, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
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
    if body.out.capacity() > 64 * 1024 {
        body.out = Vec::new();
    }
    if !keep {
        Next::Close
    } else if !body.read.is_empty() && (ended || !http::waits_for_more(&body.read, READ_CHUNK)) {
        Next::HandOff { unsent: Vec::new(), close: false }
    } else if ended {
        Next::Close
    } else {
        Next::Keep
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

/// Closes a connection taken off the loop, or gives it to a thread.
pub(super) fn hand_over(peer: Option<Peer>, dest: Destination, read: Vec<u8>, next: Next) {
    match (next, peer) {
        (Next::HandOff { unsent, close }, Some(peer)) => peer::serve_on_thread(peer, dest, read, unsent, close),
        (_, peer) => drop(peer),
    }
}
