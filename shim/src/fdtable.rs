//! Which file descriptors are intercepted connections (the host's fds,
//! connected to a socketpair), which are the shim's own (our ends of those
//! socketpairs, the event thread's epoll and pipe), and what each
//! intercepted one was connected to.
//!
//! The question "is this fd ours?" is asked on every close and dup of the
//! host process, so for fds below 65,536 it is one atomic load from a flat
//! table of kinds; details live in a locked map only reached for
//! intercepted fds. Kinds are cleared before the fd is closed, so a number
//! reused by an unrelated socket is never mistaken for ours.
//!
//! An intercepted fd is never trusted on its kind alone: a program may close
//! an fd with a raw `syscall(SYS_close)` (libuv does), which no hook sees.
//! Each entry keeps the device and inode of the socket it was made for, and
//! a flagged fd counts as intercepted only while `fstat` still finds that
//! socket there; a stale entry is dropped when found.
//!
//! The shim's own fds live at high numbers (see [`own_high`]), where a host
//! closing every fd it did not open (`closerange`) is unlikely to reach;
//! the hooks refuse a close or dup onto one that it does reach, so no
//! number we use can become one of the host's files.
//!
//! A child made with `vfork` (Python's `subprocess`, `posix_spawn`) runs in
//! our memory but has fds of its own, and closes most of them before its
//! `exec`: the table is changed only by the process it belongs to
//! ([`claim`]), or such a child would make its parent forget every
//! connection it has.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};

use core_lib::fork_lock::ForkLock;
use libc::c_int;

use crate::real;

const FLAT: usize = 1 << 16;

/// The kinds of fd in the table.
const FREE: u8 = 0;
const INTERCEPTED: u8 = 1;
const OWNED: u8 = 2;

/// What an fd is to the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing of ours: the real call, untouched.
    Other,
    /// The host's fd, connected to a socketpair of ours (maybe stale).
    Intercepted,
    /// One of the shim's own fds.
    Owned,
}

/// The process the table belongs to (0 until claimed), beside the kinds:
/// loading (which claims the table) and a process's first look at a low
/// fd touch one page of ours, not two.
#[repr(C)]
struct Table {
    owner: AtomicI32,
    kinds: [AtomicU8; FLAT],
}

static TABLE: Table = Table { owner: AtomicI32::new(0), kinds: [const { AtomicU8::new(FREE) }; FLAT] };

/// Makes the table this process's: at load, and in a forked child.
/// Async-signal safe.
pub fn claim() {
    // SAFETY: getpid has no preconditions.
    TABLE.owner.store(unsafe { libc::getpid() }, Ordering::Release);
}

/// Whether this process may change the table: not a vfork child sharing
/// its parent's memory. One system call, made only on the way to a change.
fn may_change() -> bool {
    let owner = TABLE.owner.load(Ordering::Acquire);
    // SAFETY: getpid has no preconditions.
    owner == 0 || owner == unsafe { libc::getpid() }
}

/// How many intercepted fds are at or above `FLAT` (kept only in the map).
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// What each intercepted fd was connected to. Ordered: a hashed map would
/// draw its keys (a `getrandom`) at a process's first connection.
static INFO: ForkLock<Option<BTreeMap<c_int, TcpFace>>> = ForkLock::new(None);
/// How many intercepted fds are in the table at all, so range operations
/// on a process with no intercepted connection cost one load.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// How many of our own fds are marked.
static OWNED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// What an intercepted fd was connected to, and the IP-level socket
/// options set on it (kept so `getsockopt` reads back what was set).
#[derive(Debug, Clone, Copy)]
pub struct TcpFace {
    pub peer: SocketAddr,
    /// The socket the fd held when it was intercepted.
    socket: (u64, u64),
    options: [(c_int, c_int, c_int); 8],
    option_count: usize,
}

/// The device and inode of what `fd` holds now.
pub fn identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is valid; fstat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

impl TcpFace {
    /// The face of `fd`, just intercepted, connected to `peer`.
    pub fn new(peer: SocketAddr, fd: c_int) -> TcpFace {
        TcpFace { peer, socket: identity(fd).unwrap_or((0, 0)), options: [(0, 0, 0); 8], option_count: 0 }
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

/// The kind of `fd`: one load.
#[inline]
fn kind(fd: c_int) -> u8 {
    match usize::try_from(fd) {
        Ok(i) if i < FLAT => TABLE.kinds[i].load(Ordering::Acquire),
        Ok(_) if HIGH.load(Ordering::Acquire) > 0 && INFO.lock().as_ref().is_some_and(|m| m.contains_key(&fd)) => INTERCEPTED,
        _ => FREE,
    }
}

/// What `fd` is to the shim; an intercepted fd is not checked against
/// `fstat` here (a close forgets it anyway).
#[inline]
pub fn kind_of(fd: c_int) -> Kind {
    match kind(fd) {
        INTERCEPTED => Kind::Intercepted,
        OWNED => Kind::Owned,
        _ => Kind::Other,
    }
}

/// Whether `fd` may be an intercepted connection.
#[inline]
pub fn flagged(fd: c_int) -> bool {
    kind(fd) == INTERCEPTED
}

/// Whether `fd` is one of the shim's own.
#[inline]
pub fn owned(fd: c_int) -> bool {
    kind(fd) == OWNED
}

/// Whether `fd` is an intercepted connection now.
#[inline]
pub fn contains(fd: c_int) -> bool {
    flagged(fd) && get(fd).is_some()
}

pub fn insert(fd: c_int, face: TcpFace) {
    let Ok(i) = usize::try_from(fd) else { return };
    if !may_change() {
        return;
    }
    let fresh = INFO.lock().get_or_insert_with(BTreeMap::new).insert(fd, face).is_none();
    if fresh {
        COUNT.fetch_add(1, Ordering::AcqRel);
    }
    if i < FLAT {
        TABLE.kinds[i].store(INTERCEPTED, Ordering::Release);
    } else if fresh {
        HIGH.fetch_add(1, Ordering::AcqRel);
    }
}

/// Forgets the intercepted `fd`; returns what it was, if it was one.
pub fn remove(fd: c_int) -> Option<TcpFace> {
    let Ok(i) = usize::try_from(fd) else { return None };
    if !may_change() {
        return None;
    }
    if i < FLAT {
        if TABLE.kinds[i].compare_exchange(INTERCEPTED, FREE, Ordering::AcqRel, Ordering::Acquire).is_err() {
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

/// Forgets every intercepted fd from `first` to `last` (inclusive).
pub fn remove_range(first: c_int, last: c_int) {
    if COUNT.load(Ordering::Acquire) == 0 || !may_change() {
        return;
    }
    let doomed: Vec<c_int> =
        INFO.lock().as_ref().map(|m| m.keys().copied().filter(|fd| (first..=last).contains(fd)).collect()).unwrap_or_default();
    for fd in doomed {
        remove(fd);
    }
}

/// The entry of `fd` if it is still intercepted; a stale one is dropped.
pub fn get(fd: c_int) -> Option<TcpFace> {
    if !flagged(fd) {
        return None;
    }
    let face = INFO.lock().as_ref().and_then(|m| m.get(&fd).copied())?;
    if identity(fd) == Some(face.socket) {
        return Some(face);
    }
    // Closed behind our back (and perhaps reused): forget it, unless a new
    // entry for the number came in meanwhile.
    let same = INFO.lock().as_ref().is_some_and(|m| m.get(&fd).is_some_and(|now| now.socket == face.socket));
    if same {
        remove(fd);
    }
    None
}

/// Changes the entry of an intercepted fd in place.
pub fn update(fd: c_int, change: impl FnOnce(&mut TcpFace)) {
    if contains(fd)
        && let Some(face) = INFO.lock().as_mut().and_then(|m| m.get_mut(&fd))
    {
        change(face);
    }
}

/// The lowest number our own fds are moved to: three quarters of the way
/// to the fd limit (or to 65,536, which the kinds table covers).
pub fn high_base() -> c_int {
    static BASE: OnceLock<c_int> = OnceLock::new();
    *BASE.get_or_init(|| {
        // SAFETY: an all-zero rlimit is valid; getrlimit fills it or fails.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: limit is a valid out-pointer.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 { limit.rlim_cur } else { 1024 };
        let top = soft.min(FLAT as libc::rlim_t) as c_int;
        (top / 4 * 3).max(3)
    })
}

/// Takes `fd`, a new fd of ours, to a high number (close-on-exec) and marks
/// it as ours; returns its number now.
pub fn own_high(fd: c_int) -> c_int {
    // SAFETY: F_DUPFD_CLOEXEC on our own fd; the original is closed only
    // once the copy exists.
    let moved = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, high_base() as libc::c_ulong) };
    let fd = if moved >= 0 && (moved as usize) < FLAT {
        // SAFETY: our own fd, replaced by its copy.
        unsafe { real::close(fd) };
        moved
    } else {
        if moved >= 0 {
            // SAFETY: a copy we do not keep (the kinds table ends below it).
            unsafe { real::close(moved) };
        }
        fd
    };
    if let Ok(i) = usize::try_from(fd)
        && i < FLAT
        && TABLE.kinds[i].swap(OWNED, Ordering::AcqRel) != OWNED
    {
        OWNED_COUNT.fetch_add(1, Ordering::AcqRel);
    }
    fd
}

/// Unmarks one of our fds, before we close it.
pub fn disown(fd: c_int) {
    if let Ok(i) = usize::try_from(fd)
        && i < FLAT
        && TABLE.kinds[i].compare_exchange(OWNED, FREE, Ordering::AcqRel, Ordering::Acquire).is_ok()
    {
        OWNED_COUNT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Our own fds from `first` to `last` (inclusive), in order.
pub fn owned_in(first: c_int, last: c_int) -> Vec<c_int> {
    if OWNED_COUNT.load(Ordering::Acquire) == 0 {
        return Vec::new();
    }
    let (first, last) = (first.max(0) as usize, (last.max(-1) + 1) as usize);
    (first..last.min(FLAT)).filter(|&i| TABLE.kinds[i].load(Ordering::Acquire) == OWNED).map(|i| i as c_int).collect()
}

/// In a forked child, which has none of our threads: closes every fd of
/// ours it inherited. Async-signal safe: atomics and close(2) only.
pub fn close_owned_in_child() {
    if OWNED_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    for (i, kind) in TABLE.kinds.iter().enumerate() {
        if kind.load(Ordering::Relaxed) == OWNED {
            kind.store(FREE, Ordering::Relaxed);
            // SAFETY: closes an fd this process inherited as ours.
            unsafe { real::close(i as c_int) };
        }
    }
    OWNED_COUNT.store(0, Ordering::Release);
}

/// Before fork: takes the table's lock so the child never inherits it held
/// by a thread that does not exist there.
pub fn hold_for_fork() {
    INFO.hold_for_fork();
}

/// After fork, in parent and child: gives the lock back.
pub fn release_after_fork() {
    // SAFETY: paired with hold_for_fork.
    unsafe { INFO.release_after_fork() };
}
