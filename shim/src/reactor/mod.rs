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
use std::os::fd::AsRawFd;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use core_lib::config::route::Scheme;
use core_lib::routing::Destination;

mod answer;
mod caller;
mod entry;
mod event_loop;
mod start;

pub use caller::answer_in_caller;
use entry::*;
use start::taking;
pub use start::{deferred, forget_in_child, wanted};

use crate::peer::Peer;
use crate::real;
use crate::slots;

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
