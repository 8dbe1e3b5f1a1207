//! The caller's thread: a client's own `write` of a request to an
//! event-thread connection, answered inside that call. The bytes go to the
//! entry's buffer instead of the socket, the same buffered answer the loop
//! would give is written to our end, and the program's next read finds it
//! with no other thread woken. The caller takes the connection's slot
//! first (`slots`); what it cannot answer there (a chunked request, an
//! answer larger than the socket takes) leaves the loop for a thread
//! exactly as the loop would have sent it, and the loop only frees the
//! entry.

use std::sync::atomic::Ordering;

use super::answer::{hand_over, serve};
use super::entry::{DEFERRED, EPOLL, Entry, GENERATION, Next, PANIC_TEST, READ_CHUNK, RUNNING, SETTING_UP, STATE};
use super::start::wanted;
use crate::{fdtable, real, slots};

/// In a client's own `write` of `bytes` to `fd`: when `fd` is a connection
/// of the loop's that no one else is serving now, the bytes are taken as
/// received and every request they complete is answered before this
/// returns; Some(bytes taken). None: write them to the socket (then call
/// `slots::mark_dirty`), as without the shim.
pub fn answer_in_caller(fd: libc::c_int, bytes: &[&[u8]]) -> Option<usize> {
    let total: usize = bytes.iter().map(|b| b.len()).sum();
    if total == 0
        || total > READ_CHUNK
        || !matches!(STATE.load(Ordering::Acquire), RUNNING | SETTING_UP | DEFERRED)
        || PANIC_TEST.load(Ordering::Relaxed)
    {
        return None;
    }
    let addr = slots::take_any(fd)?;
    let entry = addr as *const Entry;
    // SAFETY: an entry named in a slot stays alive until the loop frees it,
    // which it does only after the slot stops naming it; the slot is ours.
    let e = unsafe { &*entry };
    let ours = e.generation == GENERATION.load(Ordering::Acquire)
        && !e.detached.load(Ordering::Acquire)
        && e.client.is_some_and(|(_, socket)| fdtable::identity(fd) == Some(socket));
    if !ours {
        // Another process's entry, or one of a closed fd: the loop that
        // owns it serves it; bytes marked for it went to the socket.
        while !slots::give_back(fd, addr) {}
        return None;
    }
    let mut holding = Holding { e, fd, addr };
    let mut next = serve(e, bytes);
    loop {
        match next {
            Next::Keep => {
                // A request begun and not finished: the rest may come some
                // other way, and its deadline is the loop's to keep.
                // SAFETY: the slot is still ours, so the body is too.
                let begun = !unsafe { &*e.body.get() }.read.is_empty();
                if slots::give_back(fd, addr) {
                    if begun {
                        wanted();
                    }
                    break;
                }
                next = serve(e, &[]);
            }
            next => {
                detach(e, fd, addr, next);
                break;
            }
        }
    }
    holding.addr = 0;
    Some(total)
}

/// A held entry; dropped while still armed (`addr` not zero) only by a
/// panic in our own code, which then closes the connection and lets go of
/// its slot rather than leave it held for ever.
struct Holding<'a> {
    e: &'a Entry,
    fd: libc::c_int,
    addr: usize,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        if self.addr != 0 {
            detach(self.e, self.fd, self.addr, Next::Close);
        }
    }
}

/// A caller's thread takes a held connection off the loop: out of the
/// epoll set, the entry marked for the loop to free, the slot emptied,
/// then closed or given to a thread.
fn detach(e: &Entry, fd: libc::c_int, addr: usize, next: Next) {
    // SAFETY: the caller holds the slot, so the body is its alone.
    let body = unsafe { &mut *e.body.get() };
    if body.registered {
        // SAFETY: unregisters our own end from the loop's epoll set.
        unsafe { real::epoll_ctl(EPOLL.load(Ordering::Acquire), libc::EPOLL_CTL_DEL, e.peer_fd, std::ptr::null_mut()) };
    }
    let (peer, read, dest) = (body.peer.take(), std::mem::take(&mut body.read), e.dest.clone());
    // After these two stores the loop may free the entry at any time.
    e.detached.store(true, Ordering::Release);
    slots::clear(fd, addr);
    hand_over(peer, dest, read, next);
}
