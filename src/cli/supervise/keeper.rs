//! The run's keeper: the parent of the program `intercept run` starts and
//! the subreaper of everything that program starts, so it knows when the
//! last process of the run is gone.
//!
//! It starts the program (under the filter when it needs it), tells
//! `intercept run` the program's pid, then leaves the caller's session
//! and files, reaps every process of the run as it ends, tells `intercept
//! run` how the program ended, and ends when nothing is left to reap; the
//! supervisor sees it go (its pipe closes) and ends too.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use intercept::supervision::handover;

use super::detach::close_all_but;
use super::notice::notice_text;

/// Runs in the forked keeper: never returns. `socket` is the supervisor's
/// when the program itself is to run under the filter.
/// With `own_group`, the program leads a process group of its own.
pub fn run(
    command: &[OsString],
    vars: Vec<(String, String)>,
    socket: Option<CString>,
    own_group: bool,
    status: OwnedFd,
    alive: OwnedFd,
) -> ! {
    let mut status = std::fs::File::from(status);
    // SAFETY: prctl and sigaction with valid arguments. Orphans of the run
    // come here; SIGCHLD must not be ignored, or they reap themselves
    // unseen (the program gets the caller's disposition back).
    let ignored = unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"intercept-keep".as_ptr());
        libc::signal(libc::SIGCHLD, libc::SIG_DFL) == libc::SIG_IGN
    };
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).envs(vars);
    if own_group {
        cmd.process_group(0);
    }
    let notices: Vec<(handover::Refused, Vec<u8>)> = [0, libc::EBUSY, libc::EINVAL, libc::EPERM]
        .into_iter()
        .map(handover::Refused::Filter)
        .chain([handover::Refused::NoSupervisor(0)])
        .map(|r| (r, notice_text(&command[0], r.why()).into_bytes()))
        .collect();
    // Without a closure std starts the program with posix_spawn, which is
    // quicker than a fork.
    if socket.is_some() || ignored {
        // SAFETY: the closure runs in the forked child before exec and makes
        // only async-signal-safe calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if ignored {
                    libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                }
                if let Some(socket) = &socket
                    && let Err(refused) = handover::supervise_self(socket)
                {
                    let why = refused.why();
                    let text = notices.iter().find(|(r, _)| r.why() == why).map_or(&notices[0].1, |(_, t)| t);
                    libc::write(libc::STDERR_FILENO, text.as_ptr().cast(), text.len());
                }
                Ok(())
            });
        }
    }
    let program = match cmd.spawn() {
        Ok(child) => child.id() as i32,
        Err(e) => {
            let code = crate::cli::program::cannot_run_code(&command[0], &e);
            let _ = status.write_all(&(-1i32).to_ne_bytes());
            let _ = status.write_all(&(i32::from(code) << 8).to_ne_bytes());
            // SAFETY: ends the keeper, which has nothing else to do.
            unsafe { libc::_exit(0) }
        }
    };
    let _ = status.write_all(&program.to_ne_bytes());
    // Out of the caller's session (no terminal signal reaches the keeper)
    // and off the caller's files.
    // SAFETY: setsid has no preconditions.
    unsafe { libc::setsid() };
    close_all_but(&[status.as_raw_fd(), alive.as_raw_fd()]);
    let mut status = Some(status);
    loop {
        let mut raw = 0;
        // SAFETY: waits for any child, into our int.
        let pid = unsafe { libc::waitpid(-1, &mut raw, 0) };
        if pid == program
            && let Some(mut to) = status.take()
        {
            let _ = to.write_all(&raw.to_ne_bytes());
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    drop(alive);
    // SAFETY: ends the keeper without running the caller's atexit handlers.
    unsafe { libc::_exit(0) }
}

/// Where no supervisor can be started: the program runs with the shim
/// alone, in place of `intercept run`.
pub fn exec_unsupervised(command: &[OsString], vars: Vec<(String, String)>) -> ExitCode {
    let err = Command::new(&command[0]).args(&command[1..]).envs(vars).exec();
    crate::cli::program::cannot_run(&command[0], &err)
}
