//! Allocation while loading. The configuration is read before `main`, and
//! in a process that never calls `malloc` itself (`/bin/true`) the first
//! call costs about 8 µs here, a sixth of all loading takes (the heap's
//! set-up: two `brk`s, a `getrandom`, its first page). So while
//! the shim loads, Rust's allocations come from a region of our own,
//! handed out by a bump pointer; once loading ends ([`close`]) every
//! allocation is libc's. A block from the region is never freed: what
//! loading keeps lives as long as the process, and what it drops is a few
//! KiB of a region whose untouched pages cost nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The allocator of `libintercept.so`: the region while loading, libc's
/// `malloc` after, and for whatever the region cannot hold.
pub struct LoadFirst;

static REGION: Region<{ 64 * 1024 }> = Region::new();
static OPEN: AtomicBool = AtomicBool::new(true);

/// Every allocation from now on is libc's.
pub fn close() {
    OPEN.store(false, Ordering::Release);
}

/// Bytes handed out front to back, each block once; page-aligned, so a
/// small configuration touches only the pages it fills (two for a
/// one-route env file), the count of bytes handed out on the first.
#[repr(C, align(4096))]
struct Region<const SIZE: usize> {
    used: AtomicUsize,
    bytes: UnsafeCell<[u8; SIZE]>,
}

// SAFETY: each block is handed out once, by an atomic bump of `used`, and
// only its receiver touches its bytes.
unsafe impl<const SIZE: usize> Sync for Region<SIZE> {}

impl<const SIZE: usize> Region<SIZE> {
    const fn new() -> Self {
        Region { used: AtomicUsize::new(0), bytes: UnsafeCell::new([0; SIZE]) }
    }

    fn start(&self) -> usize {
        self.bytes.get() as usize
    }

    /// A block for `layout`, or None when the region is too full.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let at = (self.start() + used).next_multiple_of(layout.align()) - self.start();
            let end = at.checked_add(layout.size()).filter(|&end| end <= SIZE)?;
            match self.used.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(self.bytes.get().cast::<u8>().wrapping_add(at)),
                Err(now) => used = now,
            }
        }
    }

    fn holds(&self, ptr: *mut u8) -> bool {
        (self.start()..self.start() + SIZE).contains(&(ptr as usize))
    }
}

// SAFETY: blocks from the region are distinct, aligned as asked and never
// handed out twice; the rest is libc's allocator, used as `System` is.
unsafe impl GlobalAlloc for LoadFirst {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match OPEN.load(Ordering::Acquire).then(|| REGION.take(layout)).flatten() {
            Some(block) => block,
            // SAFETY: the caller's layout, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !REGION.holds(ptr) {
            // SAFETY: a block of libc's, with the layout it was made for.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !REGION.holds(ptr) {
            // SAFETY: a block of libc's; the caller's promises, passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller promises `new_size` makes a valid layout with
        // the old alignment.
        let new = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: two distinct blocks, each at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_inside_until_the_region_is_full() {
        static SMALL: Region<256> = Region::new();
        let a = SMALL.take(Layout::from_size_align(3, 1).unwrap()).unwrap();
        let b = SMALL.take(Layout::from_size_align(16, 16).unwrap()).unwrap();
        assert_eq!(b as usize % 16, 0, "aligned as asked");
        assert!(b as usize >= a as usize + 3, "after the first block");
        assert!(SMALL.holds(a) && SMALL.holds(b));
        assert_eq!(SMALL.take(Layout::from_size_align(512, 8).unwrap()), None, "too large for what is left");
        let c = SMALL.take(Layout::from_size_align(64, 8).unwrap()).unwrap();
        assert!(c as usize + 64 <= SMALL.start() + 256);
        let mut outside = 0u8;
        assert!(!SMALL.holds(&mut outside));
    }

    #[test]
    fn after_loading_every_block_is_libcs_and_a_region_block_moves_out_when_it_grows() {
        // The test binary loads the shim's `init` too, so loading has ended.
        let libc_block = Box::into_raw(Box::new([7u8; 32]));
        assert!(!REGION.holds(libc_block.cast()));
        // SAFETY: the box just made, given back.
        drop(unsafe { Box::from_raw(libc_block) });
        let block = REGION.take(Layout::from_size_align(4, 1).unwrap()).unwrap();
        // SAFETY: a fresh block of four bytes, ours alone.
        unsafe { block.copy_from_nonoverlapping([1u8, 2, 3, 4].as_ptr(), 4) };
        // SAFETY: the block came from the region with this layout.
        let grown = unsafe { LoadFirst.realloc(block, Layout::from_size_align(4, 1).unwrap(), 4096) };
        assert!(!REGION.holds(grown), "grown into libc's heap");
        // SAFETY: the first four bytes were copied over.
        assert_eq!(unsafe { std::slice::from_raw_parts(grown, 4) }, [1, 2, 3, 4]);
        // SAFETY: libc's block now, with its new layout; freeing the
        // region's old block does nothing.
        unsafe {
            LoadFirst.dealloc(grown, Layout::from_size_align(4096, 1).unwrap());
            LoadFirst.dealloc(block, Layout::from_size_align(4, 1).unwrap());
        }
    }
}
