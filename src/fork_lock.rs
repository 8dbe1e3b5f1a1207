//! A lock that a forked child can always take.
//!
//! `fork` copies a process with one thread: a lock another thread held at
//! that moment stays held forever in the child. The shim therefore takes
//! each of its locks in `fork`'s prepare handler and gives it back in both
//! processes after. A parking lock cannot be given back that way: if other
//! threads were parked on it at the fork, the child's copy still says so,
//! and the child's next `lock` parks waiting for a wake-up from threads that
//! do not exist there. This lock has no such state — one flag, taken with a
//! short spin and then `sched_yield` — so giving it back is one store.
//! Its critical sections are a few map operations, never I/O.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A spin-then-yield lock around a `T` that can be given back after `fork`.
pub struct ForkLock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the flag gives one thread at a time access to the value.
unsafe impl<T: Send> Sync for ForkLock<T> {}
// SAFETY: as for a mutex: the value moves with the lock.
unsafe impl<T: Send> Send for ForkLock<T> {}

impl<T: Default> Default for ForkLock<T> {
    fn default() -> Self {
        ForkLock::new(T::default())
    }
}

impl<T> ForkLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> ForkLock<T> {
        ForkLock { held: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Waits for the lock (spinning, then yielding) and takes it.
    pub fn lock(&self) -> Guard<'_, T> {
        let mut spins = 0u32;
        while self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Guard { lock: self }
    }

    /// Takes the lock until [`release_after_fork`](Self::release_after_fork):
    /// for `fork`'s prepare handler.
    pub fn hold_for_fork(&self) {
        std::mem::forget(self.lock());
    }

    /// Gives back the lock [`hold_for_fork`](Self::hold_for_fork) took; in
    /// the parent and in the child after the fork.
    ///
    /// # Safety
    /// Only after `hold_for_fork`, once in each process.
    pub unsafe fn release_after_fork(&self) {
        self.held.store(false, Ordering::Release);
    }
}

/// The held lock: derefs to the value, and gives the lock back when dropped.
pub struct Guard<'a, T> {
    lock: &'a ForkLock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and is borrowed mutably.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.held.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_take_turns() {
        let lock = Arc::new(ForkLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| *lock.lock() += 1))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn held_for_a_fork_and_given_back() {
        let lock = ForkLock::new(1);
        lock.hold_for_fork();
        assert!(lock.held.load(Ordering::Relaxed));
        // SAFETY: after hold_for_fork, once.
        unsafe { lock.release_after_fork() };
        assert_eq!(*lock.lock(), 1);
    }
}
