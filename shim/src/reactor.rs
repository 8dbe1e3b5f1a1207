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
//! New connections reach the loop through a pipe carrying the address of
//! their entry: the loop alone registers, touches and frees entries, so
//! nothing here needs a lock. The thread is started on the first such
//! connection; a forked child forgets the parent's loop and starts its own.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use core_lib::http;
use core_lib::log_error;
use core_lib::route::Scheme;
use core_lib::router::Target;

use crate::dispatch::{self, Peer};

/// One connection the loop serves.
struct Entry {
    peer: Peer,
    target: Target,
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
    HandOff { unsent: Vec<u8>, close: bool },
}

const STOPPED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
/// The loop ended (its epoll fd was closed under it): threads from now on.
const DEAD: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(STOPPED);
static EPOLL: AtomicI32 = AtomicI32::new(-1);
static PIPE_READ: AtomicI32 = AtomicI32::new(-1);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The epoll token of the pipe; entries are heap addresses, never 0.
const PIPE_TOKEN: u64 = 0;
/// How long the loop polls for the next request before sleeping.
const SPIN: Duration = Duration::from_micros(50);
/// Bytes taken from one connection per wake-up before answering.
const READ_CHUNK: usize = 64 * 1024;

/// Whether every request a connection to `target` can make may be answered
/// on the loop.
pub fn takes(target: &Target) -> bool {
    let site = &target.site;
    site.scheme == Scheme::Http && site.forward.is_none() && site.mounts.iter().all(|m| m.app.answers_from_memory())
}

/// Gives the connection to the loop, starting it if need be; hands the
/// connection back when the loop cannot take it (then a thread serves it).
pub fn submit(peer: Peer, target: Target, idle: Duration) -> Result<(), (Peer, Target)> {
    let Some(pipe) = channel() else { return Err((peer, target)) };
    let entry = Box::into_raw(Box::new(Entry { peer, target, idle, last: Instant::now(), read: Vec::new() }));
    let address = (entry as usize).to_ne_bytes();
    // SAFETY: an 8-byte write, atomic on a pipe; the loop owns the entry
    // only once the write succeeded.
    let n = unsafe { libc::write(pipe, address.as_ptr().cast(), address.len()) };
    if n == address.len() as isize {
        return Ok(());
    }
    // SAFETY: the write failed, so the entry is still ours alone.
    let entry = unsafe { Box::from_raw(entry) };
    Err((entry.peer, entry.target))
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
    // SAFETY: plain fd-creating calls; every fd is closed again on failure.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fds = [0; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
            let e = io::Error::last_os_error();
            crate::real::close(ep);
            return Err(e);
        }
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: PIPE_TOKEN };
        if libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fds[0], &mut event) != 0 {
            let e = io::Error::last_os_error();
            for fd in [ep, fds[0], fds[1]] {
                crate::real::close(fd);
            }
            return Err(e);
        }
        EPOLL.store(ep, Ordering::Relaxed);
        PIPE_READ.store(fds[0], Ordering::Relaxed);
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
        if let Err(e) = dispatch::start_thread("intercept-events", move || run(ep, fds[0])) {
            for fd in [ep, fds[0], fds[1]] {
                crate::real::close(fd);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// In a forked child, which has no event thread: closes the parent's loop
/// fds so the child's first such connection starts a loop of its own. The
/// parent's entries are left (their connection ends are closed by
/// dispatch). Async-signal safe: atomics and close(2) only.
pub fn forget_in_child() {
    if matches!(STATE.swap(STOPPED, Ordering::AcqRel), RUNNING | DEAD) {
        for fd in [&EPOLL, &PIPE_READ, &PIPE_WRITE] {
            // SAFETY: closes this process's copy of a loop fd.
            unsafe { crate::real::close(fd.swap(-1, Ordering::Relaxed)) };
        }
    }
}

/// The loop: adopts new connections, serves ready ones, and every second
/// hangs up on those quiet past their idle timeout.
fn run(ep: libc::c_int, pipe: libc::c_int) {
    let mut live: Vec<*mut Entry> = Vec::new();
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
        if !live.is_empty() && live.len() <= dispatch::spare_cores() {
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
            if crate::errno() == libc::EINTR {
                continue;
            }
            // Our epoll fd was closed under us: give every connection a
            // thread and leave new ones to threads too.
            log_error!("the event thread stops ({}); its connections move to threads", io::Error::last_os_error());
            STATE.store(DEAD, Ordering::Release);
            adopt(ep, pipe, &mut live);
            for entry in live.drain(..) {
                // SAFETY: every entry in `live` is owned by this loop.
                finish(ep, unsafe { Box::from_raw(entry) }, Next::HandOff { unsent: Vec::new(), close: false });
            }
            return;
        }
        for event in &events[..n as usize] {
            if event.u64 == PIPE_TOKEN {
                adopt(ep, pipe, &mut live);
                continue;
            }
            let entry = event.u64 as *mut Entry;
            // SAFETY: registered entries stay alive until `finish`, and an
            // fd is reported at most once per epoll_wait.
            let next = serve(unsafe { &mut *entry }, &mut scratch, &mut out);
            if !matches!(next, Next::Keep) {
                live.retain(|e| *e != entry);
                // SAFETY: removed from `live` and from epoll just below: the
                // last reference.
                finish(ep, unsafe { Box::from_raw(entry) }, next);
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + Duration::from_secs(1);
            live.retain(|&entry| {
                // SAFETY: as above.
                let e = unsafe { &*entry };
                let quiet = !e.idle.is_zero() && now.duration_since(e.last) >= e.idle;
                if quiet {
                    // SAFETY: dropped from `live` by this retain.
                    finish(ep, unsafe { Box::from_raw(entry) }, Next::Close);
                }
                !quiet
            });
        }
    }
}

/// Registers the connections the pipe announces.
fn adopt(ep: libc::c_int, pipe: libc::c_int, live: &mut Vec<*mut Entry>) {
    let mut address = [0u8; size_of::<usize>()];
    // SAFETY: reads into a local buffer of its length; the pipe only ever
    // carries whole addresses written by `submit`.
    while unsafe { libc::read(pipe, address.as_mut_ptr().cast(), address.len()) } == address.len() as isize {
        let entry = usize::from_ne_bytes(address) as *mut Entry;
        // SAFETY: `submit` gave up this box when its address went out.
        let fd = unsafe { (*entry).peer.as_raw_fd() };
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: entry as u64 };
        // SAFETY: a plain registration of our own end.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut event) } == 0 {
            live.push(entry);
        } else {
            // SAFETY: never registered, so this is the only reference.
            finish(ep, unsafe { Box::from_raw(entry) }, Next::HandOff { unsent: Vec::new(), close: false });
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
        match crate::errno() {
            libc::EINTR => continue,
            libc::EAGAIN => break,
            _ => return Next::Close,
        }
    }
    entry.last = Instant::now();
    out.clear();
    let (taken, keep) = http::answer_all_buffered(&entry.read, out, &entry.target);
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
        match crate::errno() {
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
fn finish(ep: libc::c_int, entry: Box<Entry>, next: Next) {
    // SAFETY: unregisters our own fd (an error for one never registered is
    // harmless).
    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, entry.peer.as_raw_fd(), std::ptr::null_mut()) };
    let Entry { peer, target, read, .. } = *entry;
    match next {
        Next::Keep | Next::Close => drop(peer),
        Next::HandOff { unsent, close } => dispatch::hand_off(peer, target, read, unsent, close),
    }
}
