//! Leaving the caller's files: what the keeper and the supervisor do once
//! the program has started, so neither holds the caller's pipes.

/// Closes every fd but `keep` and 0, 1, 2 (which become /dev/null): a
/// keeper or supervisor holds none of the caller's files.
pub fn close_all_but(keep: &[i32]) {
    // SAFETY: open, dup2 and close_range on fds of this process.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let mut keep: Vec<u32> = keep.iter().map(|&fd| fd as u32).collect();
        keep.sort_unstable();
        let mut from = 3u32;
        for fd in keep.into_iter().filter(|&fd| fd >= 3) {
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0);
            }
            from = fd + 1;
        }
        libc::syscall(libc::SYS_close_range, from, u32::MAX, 0);
    }
}
