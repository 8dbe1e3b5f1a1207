//! `execve`: a program the shim cannot reach (statically linked, setuid)
//! started from under it — by a shell, say — gets the one-line warning
//! `intercept run` gives for the command it starts itself, unless
//! `intercept run` supervises it (then such a program is intercepted).
//!
//! `execve` may run in a `vfork` child, on the parent's memory: the check
//! allocates nothing (a stack buffer for the file's first bytes and for the
//! line) and takes no lock.

use std::ffi::{CStr, c_char};

use core_lib::log::{self, Level};
use libc::c_int;

use super::guarded;
use crate::{real, state};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded("execve", || unsafe { real::execve(path, argv, envp) }, || unsafe { execve_impl(path, argv, envp) })
}

unsafe fn execve_impl(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    if state::active() && !state::supervised() && !path.is_null() && log::enabled(Level::Error) {
        // SAFETY: a NUL-terminated path from the caller.
        warn_if_out_of_reach(unsafe { CStr::from_ptr(path) });
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::execve(path, argv, envp) }
}

fn warn_if_out_of_reach(path: &CStr) {
    let mut head = [0u8; 4096];
    // SAFETY: the real open and fstat with valid arguments; the fd is ours
    // until the close below.
    let (n, mode) = unsafe {
        let fd = real::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let mut st: libc::stat = std::mem::zeroed();
        let mode = if libc::fstat(fd, &mut st) == 0 { st.st_mode } else { 0 };
        let n = real::read(fd, head.as_mut_ptr().cast(), head.len());
        real::close(fd);
        (n, mode)
    };
    let Ok(n) = usize::try_from(n) else { return };
    let Some(why) = core_lib::program::bypass_reason(mode, &head[..n]) else { return };
    let mut line = Line { buf: [0; 1024], len: 0 };
    let _ = std::fmt::Write::write_fmt(
        &mut line,
        format_args!("intercept: warning: {} {why}; its connections are not intercepted\n", path.to_string_lossy()),
    );
    // SAFETY: writes the bytes of our stack buffer to stderr.
    let _ = unsafe { real::write(2, line.buf.as_ptr().cast(), line.len) };
}

/// A line formatted on the stack, cut short if it does not fit.
struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
