//! Starting a program: the `exec` family (`execve`, `execv`, `execvp`,
//! `execvpe`, `execveat`, `fexecve`, and [`execl`](super::execl) and its
//! kin over these) and `posix_spawn`/`posix_spawnp` (which GNU make,
//! glibc's `system` and `popen` go through). A program the shim cannot
//! reach is put under the run's supervisor, or named in a warning
//! ([`spawn`]); anything else starts untouched.
//!
//! The file is read only when something may be done or said about it
//! ([`spawn::wanted`]): with no run and no route, an exec is the real one
//! after one load.

use std::ffi::{CStr, c_char};

use libc::{c_int, pid_t, posix_spawn_file_actions_t, posix_spawnattr_t};

use crate::real;
use crate::spawn::{self, PathBuf};

type Argv = *const *const c_char;

/// What the `execve` hook does.
///
/// # Safety
/// As for libc's `execve`.
pub(super) unsafe fn execve_impl(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        prepare(libc::AT_FDCWD, path);
        real::execve(path, argv, envp)
    }
}

/// What the `execv` hook does.
///
/// # Safety
/// As for libc's `execv`.
pub(super) unsafe fn execv_impl(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        prepare(libc::AT_FDCWD, path);
        real::execv(path, argv)
    }
}

/// What the `execvp` hook does.
///
/// # Safety
/// As for libc's `execvp`.
pub(super) unsafe fn execvp_impl(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        prepare_search(file);
        real::execvp(file, argv)
    }
}

/// What the `execvpe` hook does.
///
/// # Safety
/// As for libc's `execvpe`.
pub(super) unsafe fn execvpe_impl(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        prepare_search(file);
        real::execvpe(file, argv, envp)
    }
}

/// What the `execveat` hook does.
///
/// # Safety
/// As for libc's `execveat`.
pub(super) unsafe fn execveat_impl(dir: c_int, path: *const c_char, argv: Argv, envp: Argv, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        let empty = !path.is_null() && *path == 0;
        if empty && flags & libc::AT_EMPTY_PATH != 0 {
            prepare_fd(dir);
        } else {
            prepare(dir, path);
        }
        real::execveat(dir, path, argv, envp, flags)
    }
}

/// What the `fexecve` hook does.
///
/// # Safety
/// As for libc's `fexecve`.
pub(super) unsafe fn fexecve_impl(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        prepare_fd(fd);
        real::fexecve(fd, argv, envp)
    }
}

/// Before an exec of `path` (relative to `dir`).
///
/// # Safety
/// `path` is null or NUL-terminated.
unsafe fn prepare(dir: c_int, path: *const c_char) {
    if path.is_null() || !spawn::wanted() {
        return;
    }
    // SAFETY: as the caller says.
    let path = unsafe { CStr::from_ptr(path) };
    spawn::before_exec(path, spawn::kind_at(dir, path));
}

/// Before an exec of `file`, searched on PATH.
///
/// # Safety
/// `file` is null or NUL-terminated.
unsafe fn prepare_search(file: *const c_char) {
    if file.is_null() || !spawn::wanted() {
        return;
    }
    let mut found = PathBuf::new();
    // SAFETY: as the caller says.
    if spawn::search(unsafe { CStr::from_ptr(file) }, &mut found) {
        let path = found.as_cstr();
        spawn::before_exec(path, spawn::kind_at(libc::AT_FDCWD, path));
    }
}

/// Before an exec of the file open as `fd`.
fn prepare_fd(fd: c_int) {
    if !spawn::wanted() {
        return;
    }
    let mut path = PathBuf::new();
    if path.push(b"/proc/self/fd/") && path.push(itoa(fd, &mut [0; 12])) {
        spawn::before_exec(path.as_cstr(), spawn::kind_at(libc::AT_FDCWD, path.as_cstr()));
    }
}

/// `fd` in decimal, in `buf`.
fn itoa(fd: c_int, buf: &mut [u8; 12]) -> &[u8] {
    let mut n = fd.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// `posix_spawn(p)`: a program to supervise starts through the launcher.
///
/// # Safety
/// As for libc's `posix_spawn`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn spawn_impl(
    pid: *mut pid_t,
    file: *const c_char,
    search: bool,
    actions: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: Argv,
    envp: Argv,
) -> c_int {
    let real = |file| {
        // SAFETY: the caller's arguments, passed on.
        unsafe {
            if search {
                real::posix_spawnp(pid, file, actions, attr, argv, envp)
            } else {
                real::posix_spawn(pid, file, actions, attr, argv, envp)
            }
        }
    };
    if file.is_null() || !spawn::wanted() {
        return real(file);
    }
    let mut found = PathBuf::new();
    // SAFETY: a NUL-terminated string from the caller.
    let given = unsafe { CStr::from_ptr(file) };
    let path = if !search {
        given
    } else if spawn::search(given, &mut found) {
        found.as_cstr()
    } else {
        return real(file);
    };
    match spawn::launcher_argv(path, spawn::kind_at(libc::AT_FDCWD, path), argv) {
        // SAFETY: the launcher's path and arguments live across the call.
        Some((launcher, args)) => unsafe { real::posix_spawn(pid, launcher.as_ptr(), actions, attr, args.as_ptr(), envp) },
        None => real(file),
    }
}
