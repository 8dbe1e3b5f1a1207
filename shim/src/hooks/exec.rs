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

use super::guarded;
use crate::real;
use crate::spawn::{self, PathBuf};

type Argv = *const *const c_char;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "execve",
        || unsafe { real::execve(path, argv, envp) },
        || unsafe {
            prepare(libc::AT_FDCWD, path);
            real::execve(path, argv, envp)
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "execv",
        || unsafe { real::execv(path, argv) },
        || unsafe {
            prepare(libc::AT_FDCWD, path);
            real::execv(path, argv)
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "execvp",
        || unsafe { real::execvp(file, argv) },
        || unsafe {
            prepare_search(file);
            real::execvp(file, argv)
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "execvpe",
        || unsafe { real::execvpe(file, argv, envp) },
        || unsafe {
            prepare_search(file);
            real::execvpe(file, argv, envp)
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execveat(dir: c_int, path: *const c_char, argv: Argv, envp: Argv, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "execveat",
        || unsafe { real::execveat(dir, path, argv, envp, flags) },
        || unsafe {
            let empty = !path.is_null() && *path == 0;
            if empty && flags & libc::AT_EMPTY_PATH != 0 {
                prepare_fd(dir);
            } else {
                prepare(dir, path);
            }
            real::execveat(dir, path, argv, envp, flags)
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "fexecve",
        || unsafe { real::fexecve(fd, argv, envp) },
        || unsafe {
            prepare_fd(fd);
            real::fexecve(fd, argv, envp)
        },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: Argv,
    envp: Argv,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "posix_spawn",
        || unsafe { real::posix_spawn(pid, path, actions, attr, argv, envp) },
        || unsafe { spawn_impl(pid, path, false, actions, attr, argv, envp) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: Argv,
    envp: Argv,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "posix_spawnp",
        || unsafe { real::posix_spawnp(pid, file, actions, attr, argv, envp) },
        || unsafe { spawn_impl(pid, file, true, actions, attr, argv, envp) },
    )
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
unsafe fn spawn_impl(
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
