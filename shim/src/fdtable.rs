//! Which file descriptors are intercepted connections, and what they were
//! connected to.
//!
//! The question "is this fd ours?" is asked on every close and dup of the
//! host process, so for fds below 65,536 it is one atomic load from a flat
//! table; details live in a locked map only reached for flagged fds. Flags
//! are cleared before the fd is closed, so a number reused by an unrelated
//! socket is never mistaken for ours.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use libc::c_int;
use parking_lot::Mutex;

const FLAT: usize = 1 << 16;

static FLAGS: [AtomicBool; FLAT] = [const { AtomicBool::new(false) }; FLAT];
/// How many flagged fds are at or above `FLAT` (kept only in the map).
static HIGH: AtomicUsize = AtomicUsize::new(0);
static INFO: Mutex<Option<HashMap<c_int, TcpFace>>> = Mutex::new(None);
/// How many fds are in the table at all, so range operations on a process
/// with no intercepted connection cost one load.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// What an intercepted fd was connected to, and the IP-level socket
/// options set on it (kept so `getsockopt` reads back what was set).
#[derive(Debug, Clone, Copy)]
pub struct TcpFace {
    pub peer: SocketAddr,
    options: [(c_int, c_int, c_int); 8],
    option_count: usize,
}

impl TcpFace {
    pub fn new(peer: SocketAddr) -> TcpFace {
        TcpFace { peer, options: [(0, 0, 0); 8], option_count: 0 }
    }

    pub fn option(&self, level: c_int, name: c_int) -> Option<c_int> {
        self.options[..self.option_count].iter().find(|o| (o.0, o.1) == (level, name)).map(|o| o.2)
    }

    /// Remembers an option; past eight distinct options the oldest goes.
    pub fn set_option(&mut self, level: c_int, name: c_int, value: c_int) {
        if let Some(o) = self.options[..self.option_count].iter_mut().find(|o| (o.0, o.1) == (level, name)) {
            o.2 = value;
        } else if self.option_count < self.options.len() {
            self.options[self.option_count] = (level, name, value);
            self.option_count += 1;
        } else {
            self.options.rotate_left(1);
            self.options[self.options.len() - 1] = (level, name, value);
        }
    }
}

/// Whether `fd` is an intercepted connection.
#[inline]
pub fn contains(fd: c_int) -> bool {
    match usize::try_from(fd) {
        Ok(i) if i < FLAT => FLAGS[i].load(Ordering::Acquire),
        Ok(_) => HIGH.load(Ordering::Acquire) > 0 && INFO.lock().as_ref().is_some_and(|m| m.contains_key(&fd)),
        Err(_) => false,
    }
}

pub fn insert(fd: c_int, conn: TcpFace) {
    let Ok(i) = usize::try_from(fd) else { return };
    let fresh = INFO.lock().get_or_insert_with(HashMap::new).insert(fd, conn).is_none();
    if fresh {
        COUNT.fetch_add(1, Ordering::AcqRel);
    }
    if i < FLAT {
        FLAGS[i].store(true, Ordering::Release);
    } else if fresh {
        HIGH.fetch_add(1, Ordering::AcqRel);
    }
}

/// Forgets `fd`; returns what it was, if it was ours.
pub fn remove(fd: c_int) -> Option<TcpFace> {
    let Ok(i) = usize::try_from(fd) else { return None };
    if i < FLAT {
        if !FLAGS[i].swap(false, Ordering::AcqRel) {
            return None;
        }
    } else if HIGH.load(Ordering::Acquire) == 0 {
        return None;
    }
    let removed = INFO.lock().as_mut().and_then(|m| m.remove(&fd));
    if removed.is_some() {
        COUNT.fetch_sub(1, Ordering::AcqRel);
        if i >= FLAT {
            HIGH.fetch_sub(1, Ordering::AcqRel);
        }
    }
    removed
}

/// Forgets every fd from `first` to `last` (inclusive).
pub fn remove_range(first: c_int, last: c_int) {
    if COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let doomed: Vec<c_int> =
        INFO.lock().as_ref().map(|m| m.keys().copied().filter(|fd| (first..=last).contains(fd)).collect()).unwrap_or_default();
    for fd in doomed {
        remove(fd);
    }
}

pub fn get(fd: c_int) -> Option<TcpFace> {
    if !contains(fd) {
        return None;
    }
    INFO.lock().as_ref().and_then(|m| m.get(&fd).copied())
}

/// Changes the entry of an intercepted fd in place.
pub fn update(fd: c_int, change: impl FnOnce(&mut TcpFace)) {
    if contains(fd)
        && let Some(conn) = INFO.lock().as_mut().and_then(|m| m.get_mut(&fd))
    {
        change(conn);
    }
}

/// Before fork: takes the table's lock so the child never inherits it held
/// by a thread that does not exist there.
pub fn hold_for_fork() {
    std::mem::forget(INFO.lock());
}

/// After fork, in parent and child: gives the lock back.
pub fn release_after_fork() {
    // SAFETY: paired with hold_for_fork, whose guard was forgotten.
    unsafe { INFO.force_unlock() };
}
