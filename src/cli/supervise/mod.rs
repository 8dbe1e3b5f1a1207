//! `intercept run`'s supervisor, for programs that bypass the shim
//! (static binaries, Go, raw system calls): the program starts under a
//! seccomp filter whose stopped calls come here ([`calls`]), answered with
//! the same core as the shim's. `intercept run` stays the program's parent,
//! passes signals sent to it on, and exits as the program did.
//!
//! Where seccomp user notification is not available (an old kernel, or an
//! outer supervisor already listening: Linux allows one per process), one
//! line names the program and the reason, and it runs with the shim alone.

mod calls;
mod filter;
mod target;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use intercept::config::{Config, SUPERVISED_KEY};
use intercept::log_error;

use super::program;
use calls::Supervisor;
use target::{Call, Reply};

/// Runs `command` supervised, with `vars` set; returns its exit status.
pub fn run(command: &[OsString], vars: Vec<(String, String)>, config: &Config) -> ExitCode {
    let (parent, child) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return program::cannot_run(&command[0], &e),
    };
    let program = filter::program();
    let child_end = child.as_raw_fd();
    // The notice for each likely failure, written by the child itself
    // before its exec, so it comes before anything the program prints.
    let notices: Vec<(i32, Vec<u8>)> = [libc::EBUSY, libc::EINVAL, libc::ENOSYS, libc::EPERM, libc::EACCES, libc::ENOMEM, libc::EFAULT]
        .into_iter()
        .map(|errno| (errno, notice_text(&command[0], &why_unsupervised(errno)).into_bytes()))
        .collect();
    let other = notice_text(&command[0], "seccomp: the filter could not be installed").into_bytes();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).envs(vars).env(SUPERVISED_KEY, "1");
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            match filter::install(&program) {
                Ok(listener) => {
                    send(child_end, 0, Some(listener));
                    libc::close(listener);
                }
                Err(errno) => {
                    let text = notices.iter().find(|(e, _)| *e == errno).map_or(&other, |(_, text)| text);
                    libc::write(libc::STDERR_FILENO, text.as_ptr().cast(), text.len());
                    send(child_end, errno, None);
                }
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(child);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return program::cannot_run(&command[0], &e),
    };
    CHILD.store(child.id() as i32, Ordering::Release);
    forward_signals();
    match receive(parent.as_raw_fd()) {
        Ok(listener) => {
            let supervisor = Arc::new(Supervisor::new(config));
            let started = std::thread::Builder::new().name("intercept-supervisor".into()).spawn(move || watch(listener, supervisor));
            if let Err(e) = started {
                log_error!("cannot start the supervisor: {e}");
            }
        }
        // The child said why, before its exec.
        Err(Unsupervised::Said) => {}
        Err(Unsupervised::Silent(why)) => eprint!("{}", notice_text(&command[0], &why)),
    }
    let status = loop {
        match child.wait() {
            Ok(status) => break status,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log_error!("cannot wait for {}: {e}", command[0].to_string_lossy());
                return ExitCode::from(125);
            }
        }
    };
    exit_as(status)
}

/// The one line saying a program runs unsupervised.
fn notice_text(program: &OsString, why: &str) -> String {
    format!(
        "intercept: cannot supervise {}: {why}; only what loads libintercept.so is intercepted (static binaries and Go are not)\n",
        program.to_string_lossy()
    )
}

/// Why the filter could not be installed, from its errno.
fn why_unsupervised(errno: i32) -> String {
    match errno {
        libc::EBUSY => "another supervisor already listens to its system calls".to_string(),
        libc::EINVAL | libc::ENOSYS => "this kernel has no seccomp user notification (Linux 5.9 or later)".to_string(),
        e => format!("seccomp: {}", io::Error::from_raw_os_error(e)),
    }
}

/// Why a program runs unsupervised: the child said so itself, or it
/// started without a word.
enum Unsupervised {
    Said,
    Silent(String),
}

/// Answers stopped calls until the listener closes (every supervised
/// process has exited).
fn watch(listener: OwnedFd, supervisor: Arc<Supervisor>) {
    let fd = listener.as_raw_fd();
    // The stopped thread and ours hand over on one core (Linux 6.6):
    // about 5 µs a call instead of a scheduler round.
    let sync_wake_up: u64 = 1;
    // SAFETY: an ioctl reading a u64 of ours; older kernels refuse it.
    unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, sync_wake_up) };
    loop {
        // SAFETY: an all-zero seccomp_notif is what RECV expects.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: an ioctl writing into our struct.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) } < 0 {
            match io::Error::last_os_error().raw_os_error() {
                // Interrupted, or the caller died before we read it.
                Some(libc::EINTR | libc::ENOENT) => continue,
                _ => return,
            }
        }
        let call = Call { listener: fd, notif };
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| supervisor.answer(&call))).unwrap_or_else(|_| {
            log_error!("internal error answering a supervised call; it runs as made");
            Reply::Continue
        });
        call.answer(reply);
    }
}

/// Sends the listener (or the errno of the failure) to the parent, from
/// the child before exec: no allocation.
fn send(to: RawFd, errno: i32, fd: Option<RawFd>) {
    let mut data = errno.to_ne_bytes();
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: a msghdr over our stack buffers; the control buffer holds
    // one fd when there is one.
    unsafe {
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
        libc::sendmsg(to, &msg, libc::MSG_NOSIGNAL);
    }
}

/// The child's message: the listener, or why there is none.
fn receive(from: RawFd) -> Result<OwnedFd, Unsupervised> {
    let mut data = [0u8; 4];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut control = [0u64; 4];
    // SAFETY: a msghdr over our buffers; a received fd is taken once.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(from, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n != 4 {
            return Err(Unsupervised::Silent("the program started without reporting on its filter".into()));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
            return Ok(OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>())));
        }
    }
    Err(Unsupervised::Said)
}

/// The supervised program, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Signals sent to `intercept run` go on to the program; those a
/// terminal sends to its whole process group reach it anyway.
fn forward_signals() {
    extern "C" fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel's siginfo for this signal.
        let from_kernel = unsafe { (*info).si_code } > 0;
        let child = CHILD.load(Ordering::Acquire);
        if child > 0 && !from_kernel {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(child, sig) };
        }
    }
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
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

/// Exits as the program did: its code, or the signal that ended it.
fn exit_as(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
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
