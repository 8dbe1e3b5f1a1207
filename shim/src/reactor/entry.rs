//! One connection the loop serves ([`Entry`]), what becomes of it after
//! a wake-up ([`Next`]), and the loop's state: whether it runs, its epoll
//! set and pipe, and the slots new connections reach it through.

use std::cell::UnsafeCell;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32};
use std::time::{Duration, Instant};

use core_lib::routing::Destination;

use crate::peer::{self, Peer};

/// One connection the loop serves. What never changes is read by whoever
/// has the entry's address; the body only by whoever holds its slot (or
/// by the loop alone, when no slot names the entry).
pub(super) struct Entry {
    /// Our end's number, for epoll and for reading.
    pub(super) peer_fd: libc::c_int,
    /// The client's fd whose slot names this entry, and its socket.
    pub(super) client: Option<(libc::c_int, (u64, u64))>,
    /// The process's [`GENERATION`] when the entry was made.
    pub(super) generation: u32,
    pub(super) dest: Destination,
    /// Zero: never hung up on for quietness.
    pub(super) idle: Duration,
    /// Set, before its slot is emptied, when a caller's thread took the
    /// connection off the loop: the loop then only frees the entry.
    pub(super) detached: AtomicBool,
    pub(super) body: UnsafeCell<Body>,
}

pub(super) struct Body {
    /// None once a caller's thread took it off the loop.
    pub(super) peer: Option<Peer>,
    pub(super) last: Instant,
    /// Bytes received and not yet answered.
    pub(super) read: Vec<u8>,
    /// Answers not yet sent.
    pub(super) out: Vec<u8>,
    /// In the loop's epoll set.
    pub(super) registered: bool,
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
pub(super) const STOPPED: u8 = 0;
/// A caller is spawning the thread.
pub(super) const SPAWNING: u8 = 1;
/// The thread is making its epoll set and pipe: entries wait in their
/// slots, which it looks at once it runs, and callers may answer them.
pub(super) const SETTING_UP: u8 = 2;
pub(super) const RUNNING: u8 = 3;
/// The loop ended (a panic, its epoll fd closed under it, or it could not
/// set up): threads from now on.
pub(super) const DEAD: u8 = 4;
/// Connections wait in their slots, answered by their callers, and none
/// needs the loop yet: it starts when one does (`start::wanted`).
pub(super) const DEFERRED: u8 = 5;
pub(super) static STATE: AtomicU8 = AtomicU8::new(STOPPED);
pub(super) static EPOLL: AtomicI32 = AtomicI32::new(-1);
pub(super) static PIPE_READ: AtomicI32 = AtomicI32::new(-1);
pub(super) static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// Counts forks in children: an entry made before this process's last
/// fork is its parent's, whose memory this is a copy of.
pub(super) static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Entries on their way to the loop, each in a slot of its own.
pub(super) const SLOTS: usize = 1024;
pub(super) static INBOX: [AtomicPtr<Entry>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];

/// The epoll token of the pipe; entries are heap addresses, never 0.
pub(super) const PIPE_TOKEN: u64 = 0;
/// How long the loop polls for the next request before sleeping.
pub(super) const SPIN: Duration = peer::SPIN;
/// Bytes taken from one connection per wake-up before answering, and the
/// most one write may carry to be answered in the caller's thread.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// `_INTERCEPT_TEST_PANIC=event-thread` makes the loop panic on the first
/// connection it takes in, so a test can show what a bug there costs.
pub(super) const TEST_PANIC: &str = "_INTERCEPT_TEST_PANIC";
pub(super) static PANIC_ONCE: AtomicBool = AtomicBool::new(false);
/// Set with the switch: requests then wait for the loop, as they did
/// before callers answered them, so the test sees the panic's cost.
pub(super) static PANIC_TEST: AtomicBool = AtomicBool::new(false);
