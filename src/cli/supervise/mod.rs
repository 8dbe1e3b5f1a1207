//! `intercept run`'s supervision, for programs that bypass the shim
//! (static executables, Go, raw system calls in `all` mode): such a
//! program starts under a seccomp filter whose stopped calls a supervisor
//! answers ([`calls`]) with the same core as the shim's.
//!
//! A run is three processes besides the program:
//!
//! - `intercept run` itself, which starts the other two, passes signals
//!   sent to it on to the program, and exits as the program did, at once;
//! - the keeper ([`keeper`]), the program's parent and the subreaper of
//!   everything it starts: it reports the program's end, and ends itself
//!   when the last process of the run is gone;
//! - the supervisor ([`daemon`]), which listens on a unix socket in the
//!   run's directory for the listener of every process put under the
//!   filter (by the keeper for the program, by the shim's exec hooks or the
//!   launcher, [`launch`], for what the program starts), and serves them
//!   until the keeper ends.
//!
//! The supervisor is not threads of the keeper: the apps it serves (`cgi:`,
//! `wsgi:`) start children of their own, which the keeper, reaping every
//! child of the run, would take from them (and a WSGI worker would keep
//! the keeper alive for ever).
//!
//! Neither keeper nor supervisor holds the caller's terminal, stdin,
//! stdout or stderr once the program has started; a daemon started by the
//! program keeps being served after `intercept run` returned.
//!
//! Where seccomp user notification is not available (an old kernel, or an
//! outer supervisor already listening: Linux allows one per process), one
//! line names the program and the reason, and it runs with the shim alone.

mod calls;
mod daemon;
mod detach;
mod keeper;
pub mod launch;
mod notice;
mod run_dir;
mod target;

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use intercept::config::Config;
use intercept::supervision::{Mode, SOCKET_KEY};

use super::program;
use notice::notice_text;
pub use run_dir::RunDir;

/// Runs `command` with `vars` set, its programs that need it supervised;
/// returns its exit status.
pub fn run(command: &[OsString], mut vars: Vec<(String, String)>, config: &Config, run: std::io::Result<RunDir>) -> ExitCode {
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            eprint!("{}", notice_text(&command[0], &format!("cannot make the run's directory: {e}")));
            return keeper::exec_unsupervised(command, vars);
        }
    };
    let socket = run.dir.join("supervisor.sock");
    let (listener, socket_text) = match (UnixListener::bind(&socket), socket.to_str().and_then(|s| CString::new(s).ok())) {
        (Ok(listener), Some(text)) => (listener, text),
        (Err(e), _) => {
            eprint!("{}", notice_text(&command[0], &format!("cannot listen on {}: {e}", socket.display())));
            drop(run);
            return keeper::exec_unsupervised(command, vars);
        }
        (Ok(_), None) => {
            eprint!("{}", notice_text(&command[0], "the run's directory is not a UTF-8 path"));
            drop(run);
            return keeper::exec_unsupervised(command, vars);
        }
    };
    // The program `intercept run` starts is judged here; whatever it
    // starts, by the shim.
    let filtered = match config.supervise {
        Mode::All => true,
        Mode::Auto => program::find(&command[0]).is_some_and(|path| program::kind(&path).bypasses_shim()),
        Mode::Never => false,
    };
    let (Ok((status_in, status_out)), Ok((alive_in, alive_out))) = (pipe(), pipe()) else {
        eprint!("{}", notice_text(&command[0], "cannot make a pipe"));
        drop(run);
        return keeper::exec_unsupervised(command, vars);
    };
    // With no terminal to share (CI), the program gets a process group of
    // its own, which `intercept run` passes signals to: a signal sent to
    // the caller's whole group then reaches the program once, not once
    // from the sender and again from us. At a terminal it stays in the
    // caller's group, for job control; the terminal's own signals
    // (Ctrl-C) reach it directly, and are not passed on.
    let own_group = !has_terminal();
    // Signals for the program wait until its pid is known; the children
    // unblock them at once.
    let unblock = Forwarded::block();
    // Both children are forked from this single-threaded process, before
    // any thread exists.
    // SAFETY: fork in a process with one thread.
    match unsafe { libc::fork() } {
        0 => {
            unblock.restore();
            drop((status_in, status_out, alive_out));
            daemon::run(listener, alive_in, config, run)
        }
        -1 => {
            unblock.restore();
            eprint!("{}", notice_text(&command[0], "cannot start the supervisor"));
            drop(run);
            return keeper::exec_unsupervised(command, vars);
        }
        _ => {}
    }
    // The supervisor owns the directory now.
    let run_dir = run.dir.to_string_lossy().into_owned();
    std::mem::forget(run);
    drop((listener, alive_in));
    // SAFETY: as above.
    match unsafe { libc::fork() } {
        0 => {
            unblock.restore();
            drop(status_in);
            // Only the run's own processes are told where the supervisor
            // listens (a program run without it must not hand it a filter).
            vars.retain(|(k, _)| k != SOCKET_KEY && k != intercept::run::DIR_KEY);
            vars.push((SOCKET_KEY.to_string(), socket_text.to_string_lossy().into_owned()));
            vars.push((intercept::run::DIR_KEY.to_string(), run_dir));
            keeper::run(command, vars, filtered.then_some(socket_text), own_group, status_out, alive_out)
        }
        -1 => {
            eprintln!("intercept: cannot run {}: cannot fork", command[0].to_string_lossy());
            return ExitCode::from(126);
        }
        _ => {}
    }
    drop((status_out, alive_out));
    let mut status = std::fs::File::from(status_in);
    let Some(pid) = read_i32(&mut status) else {
        eprintln!("intercept: cannot run {}: the run's keeper ended first", command[0].to_string_lossy());
        return ExitCode::from(125);
    };
    if pid > 0 {
        CHILD.store(if own_group { -pid } else { pid }, Ordering::Release);
        forward_signals();
    }
    unblock.restore();
    match read_i32(&mut status) {
        Some(raw) => exit_as(raw),
        None => {
            eprintln!("intercept: lost track of {}: the run's keeper ended first", command[0].to_string_lossy());
            ExitCode::from(125)
        }
    }
}

/// A pipe, both ends closed on exec: (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into our array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two new fds of ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn read_i32(from: &mut std::fs::File) -> Option<i32> {
    let mut bytes = [0u8; 4];
    loop {
        match from.read_exact(&mut bytes) {
            Ok(()) => return Some(i32::from_ne_bytes(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// The program, for the signal handler: its pid, or minus its process
/// group's when it has a group of its own.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Whether this process has a controlling terminal.
fn has_terminal() -> bool {
    // SAFETY: open and close of a NUL-terminated path.
    unsafe {
        let fd = libc::open(c"/dev/tty".as_ptr(), libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::close(fd);
        }
        fd >= 0
    }
}

/// The signals `intercept run` passes on.
const FORWARDED: [libc::c_int; 6] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

/// The signal mask from before [`Forwarded::block`].
struct Forwarded(libc::sigset_t);

impl Forwarded {
    /// Holds the forwarded signals back until [`Forwarded::restore`].
    fn block() -> Forwarded {
        // SAFETY: sigset operations on sets of ours.
        unsafe {
            let (mut set, mut old): (libc::sigset_t, libc::sigset_t) = (std::mem::zeroed(), std::mem::zeroed());
            libc::sigemptyset(&mut set);
            for sig in FORWARDED {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Forwarded(old)
        }
    }

    fn restore(&self) {
        // SAFETY: sets the mask saved by `block`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Signals sent to `intercept run` go on to the program; those a
/// terminal sends to its whole process group reach it anyway.
fn forward_signals() {
    extern "C" fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel's siginfo for this signal.
        let from_kernel = unsafe { (*info).si_code } > 0;
        // The program's pid, or minus its process group's.
        let child = CHILD.load(Ordering::Acquire);
        if child < 0 || (child > 0 && !from_kernel) {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(child, sig) };
        }
    }
    for sig in FORWARDED {
        // SAFETY: installs a handler that only loads an atomic and calls kill.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = pass_on as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Exits as the program did (`raw` is its wait status): its code, or the
/// signal that ended it.
fn exit_as(raw: i32) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let status = std::process::ExitStatus::from_raw(raw);
    if let Some(code) = status.code() {
        return ExitCode::from(code as u8);
    }
    let sig = status.signal().unwrap_or(libc::SIGKILL);
    // SAFETY: the default action for the signal, then the signal itself.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigaddset(&mut none, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &none, std::ptr::null_mut());
        libc::raise(sig);
    }
    ExitCode::from(128 + sig as u8)
}
