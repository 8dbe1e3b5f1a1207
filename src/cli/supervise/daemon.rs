//! The run's supervisor: takes the listener of every process put under the
//! filter (sent over its socket, [`handover`]) and answers each one's
//! stopped calls on a thread of its own until the filter has no process
//! left (its listener hangs up). It ends when the keeper does, that is
//! when no process of the run is left, and removes the run's directory.
//!
//! It runs in a session of its own with no terminal and none of the
//! caller's files; what it has to say about a call goes to the stderr of
//! the process that made it ([`calls`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

use intercept::config::Config;
use intercept::log_error;
use intercept::supervision::handover;

use super::calls::Supervisor;
use super::detach::close_all_but;
use super::run_dir::RunDir;
use super::target::{Call, Reply};

/// Runs in the forked supervisor: never returns.
pub fn run(listener: UnixListener, alive: OwnedFd, config: &Config, dir: RunDir) -> ! {
    // SAFETY: setsid and prctl with a NUL-terminated name.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, c"intercept-super".as_ptr());
    }
    close_all_but(&[listener.as_raw_fd(), alive.as_raw_fd()]);
    let supervisor = Arc::new(Supervisor::new(config));
    let _ = listener.set_nonblocking(true);
    loop {
        let mut fds = [
            libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: alive.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: polls two valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            while let Ok((conn, _)) = listener.accept() {
                take(conn, &supervisor);
            }
        }
        // The keeper is gone: so is every process of the run.
        if fds[1].revents != 0 {
            break;
        }
    }
    drop(dir);
    // SAFETY: ends the supervisor; its threads have nobody left to serve.
    unsafe { libc::_exit(0) }
}

/// Receives a listener on `conn` and serves it, on a thread of its own
/// (a sender that never sends holds up nobody else).
fn take(conn: UnixStream, supervisor: &Arc<Supervisor>) {
    let supervisor = supervisor.clone();
    let started = std::thread::Builder::new().name("intercept-supervisor".into()).spawn(move || {
        let _ = conn.set_nonblocking(false);
        if let Some(listener) = handover::receive_fd(conn.as_raw_fd()) {
            drop(conn);
            watch(listener, &supervisor);
        }
    });
    if let Err(e) = started {
        log_error!("cannot start a supervisor thread: {e}");
    }
}

/// Answers stopped calls until no process is left under the filter.
fn watch(listener: OwnedFd, supervisor: &Arc<Supervisor>) {
    let fd = listener.as_raw_fd();
    // The stopped thread and ours hand over on one core (Linux 6.6):
    // about 5 µs a call instead of a scheduler round.
    let sync_wake_up: u64 = 1;
    // SAFETY: an ioctl reading a u64 of ours; older kernels refuse it.
    unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, sync_wake_up) };
    loop {
        let mut ready = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: polls one valid pollfd.
        if unsafe { libc::poll(&mut ready, 1, -1) } < 0 {
            continue;
        }
        if ready.revents & libc::POLLIN == 0 && ready.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return;
        }
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
            call.tell(format_args!("internal error answering a supervised call; it runs as made"));
            Reply::Continue
        });
        call.answer(reply);
    }
}
