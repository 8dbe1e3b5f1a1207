//! The run's supervisor, threads of the keeper: takes the listener of
//! every process put under the filter (sent over its socket,
//! [`handover`]) and answers each one's stopped calls on a thread of its
//! own until the filter has no process left (its listener hangs up). It
//! ends with the keeper, that is when no process of the run is left.
//!
//! The keeper runs in a session of its own with no terminal and none of
//! the caller's files; what the supervisor has to say about a call goes to
//! the stderr of the process that made it ([`calls`](super::calls)).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

use intercept::config::Config;
use intercept::log_error;
use intercept::supervision::handover;

use super::calls::Supervisor;
use super::target::{Call, Reply};

/// Serves `listener` on a thread of its own, for the rest of the keeper's
/// life.
pub fn serve(listener: UnixListener, config: &Config) {
    let supervisor = Arc::new(Supervisor::new(config));
    let started = std::thread::Builder::new().name("intercept-super".into()).spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(conn) => take(conn, &supervisor),
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                // Out of fds, for one: the sender waits in the backlog.
                Err(e) => {
                    log_error!("the supervisor cannot take a listener yet: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    });
    if let Err(e) = started {
        log_error!("cannot start the supervisor: {e}");
    }
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
