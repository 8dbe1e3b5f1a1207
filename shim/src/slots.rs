//! Who is serving an event-thread connection right now: the event thread,
//! or the client's own thread answering inside its `write` (see
//! `reactor`'s caller's-thread path).
//!
//! Each intercepted fd below 65,536 has a slot holding the address of the
//! event thread's entry for its connection. Whoever serves the entry takes
//! the slot first (one compare-and-swap sets its busy bit), so only one
//! does at a time. One who finds the slot taken writes its bytes to the
//! socket instead and marks the slot dirty; the holder sees the mark when
//! it gives the slot back, and serves what came in before it does, so no
//! byte waits for a wake-up that never comes.
//!
//! A slot is only a way in: the entry lives on the event thread, which
//! frees it. An entry's slot is emptied when either side takes the
//! connection off the event thread, and a slot naming an entry of a
//! closed (and maybe reused) fd is told apart by the entry, which keeps
//! the identity of its client's socket.

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::c_int;

const FLAT: usize = 1 << 16;
const BUSY: usize = 1;
const DIRTY: usize = 2;
const FLAGS: usize = BUSY | DIRTY;

static SLOTS: [AtomicUsize; FLAT] = [const { AtomicUsize::new(0) }; FLAT];

/// What taking an entry's slot found.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Taken: the entry is the taker's until it gives the slot back.
    Taken,
    /// Another holds it; the slot is marked dirty for it.
    Busy,
    /// The slot does not name this entry (never did, or no longer).
    Elsewhere,
}

fn slot(fd: c_int) -> Option<&'static AtomicUsize> {
    usize::try_from(fd).ok().and_then(|i| SLOTS.get(i))
}

/// Names `entry` (an address, 4-aligned) in `fd`'s slot, unless another
/// holds the slot now; a free entry named there before is replaced (its fd
/// was closed: the event thread keeps serving it alone).
pub fn install(fd: c_int, entry: usize) -> bool {
    debug_assert_eq!(entry & FLAGS, 0);
    let Some(slot) = slot(fd) else { return false };
    let now = slot.load(Ordering::Acquire);
    now & BUSY == 0 && slot.compare_exchange(now, entry, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

/// Takes `fd`'s slot for `entry`; a taken one is marked dirty.
pub fn take(fd: c_int, entry: usize) -> Take {
    let Some(slot) = slot(fd) else { return Take::Elsewhere };
    loop {
        let now = slot.load(Ordering::Acquire);
        if now & !FLAGS != entry {
            return Take::Elsewhere;
        }
        let want = if now & BUSY == 0 { now | BUSY } else { now | DIRTY };
        if slot.compare_exchange(now, want, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return if now & BUSY == 0 { Take::Taken } else { Take::Busy };
        }
    }
}

/// Takes `fd`'s slot for whatever entry it names; None when it names none
/// or is held (a caller that then writes to the socket calls
/// [`mark_dirty`] after).
pub fn take_any(fd: c_int) -> Option<usize> {
    let slot = slot(fd)?;
    let now = slot.load(Ordering::Acquire);
    if now == 0 || now & BUSY != 0 {
        return None;
    }
    slot.compare_exchange(now, now | BUSY, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| now)
}

/// Gives a taken slot back. False when it was marked dirty meanwhile: the
/// mark is cleared, the slot is still held, and the holder serves what
/// came in, then tries again.
pub fn give_back(fd: c_int, entry: usize) -> bool {
    let Some(slot) = slot(fd) else { return true };
    if slot.compare_exchange(entry | BUSY, entry, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        return true;
    }
    slot.store(entry | BUSY, Ordering::Release);
    false
}

/// Empties a taken slot: the entry leaves the event thread.
pub fn clear(fd: c_int, entry: usize) {
    if let Some(slot) = slot(fd) {
        let _ = slot.compare_exchange(entry | BUSY, 0, Ordering::AcqRel, Ordering::Acquire);
        let _ = slot.compare_exchange(entry | BUSY | DIRTY, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// After bytes went to `fd`'s socket because its slot was held: makes sure
/// the holder serves them before it lets go; whether a holder will. One
/// load when nobody holds it (false: the event thread is to see the bytes).
pub fn mark_dirty(fd: c_int) -> bool {
    let Some(slot) = slot(fd) else { return false };
    let mut now = slot.load(Ordering::Acquire);
    while now & BUSY != 0 {
        if now & DIRTY != 0 {
            return true;
        }
        match slot.compare_exchange(now, now | DIRTY, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(seen) => now = seen,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_dirty_mark_makes_it_serve_again() {
        let (fd, entry) = (40_001, 0x1000);
        assert!(install(fd, entry));
        assert_eq!(take_any(fd), Some(entry));
        assert_eq!(take(fd, entry), Take::Busy);
        assert_eq!(take_any(fd), None);
        assert!(!give_back(fd, entry), "the busy take marked it dirty");
        assert!(give_back(fd, entry));
        assert_eq!(take(fd, entry), Take::Taken);
        assert!(mark_dirty(fd), "the holder serves what came in");
        assert!(!give_back(fd, entry));
        clear(fd, entry);
        assert!(!mark_dirty(fd), "nobody holds it");
        assert_eq!(take(fd, entry), Take::Elsewhere);
        assert_eq!(take_any(fd), None);
    }

    #[test]
    fn a_held_slot_is_not_replaced_but_a_free_one_is() {
        let fd = 40_002;
        assert!(install(fd, 0x2000));
        assert_eq!(take(fd, 0x2000), Take::Taken);
        assert!(!install(fd, 0x3000));
        assert!(give_back(fd, 0x2000));
        assert!(install(fd, 0x3000));
        assert_eq!(take(fd, 0x2000), Take::Elsewhere);
        assert_eq!(take(fd, 0x3000), Take::Taken);
        clear(fd, 0x3000);
        assert!(!install(-1, 0x4000));
    }
}
