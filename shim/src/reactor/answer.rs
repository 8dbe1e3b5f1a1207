//! Answering a ready connection from what it sent (the core's buffered
//! path), and closing one taken off the loop or giving it to a thread.

use std::time::Instant;

use core_lib::routing::Destination;
use core_lib::serve::http;

use super::entry::{Entry, Next, READ_CHUNK};
use crate::peer::{self, Peer};
use crate::real;

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

/// Closes a connection taken off the loop, or gives it to a thread.
pub(super) fn hand_over(peer: Option<Peer>, dest: Destination, read: Vec<u8>, next: Next) {
    match (next, peer) {
        (Next::HandOff { unsent, close }, Some(peer)) => peer::serve_on_thread(peer, dest, read, unsent, close),
        (_, peer) => drop(peer),
    }
}
