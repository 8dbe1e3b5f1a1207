//! Our end of an intercepted connection (the far end of its socketpair),
//! and the threads that serve such ends.
//!
//! A [`Peer`] reads with a short poll before blocking, writes with
//! `MSG_NOSIGNAL` (a client that hangs up never raises SIGPIPE in a host
//! that did not ignore it) and closes with the real `close`. Our threads
//! block every signal, so the host's handlers keep running on the host's
//! own threads.
//!
//! Our ends are marked as ours in the fd table: a forked child has no
//! dispatcher threads, so it closes its copies of them at once (otherwise a
//! connection the parent's dispatcher closes would never reach end-of-file
//! while the child lived), and the host cannot close them under us.

use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use core_lib::apps::Opener;
use core_lib::log_error;
use core_lib::routing::Destination;
use core_lib::serve::http::Transport;

use crate::{fdtable, real};

/// Our end of the socketpair, and where the client's end is.
pub struct Peer(std::mem::ManuallyDrop<UnixStream>, Option<ClientEnd>);

/// The client's end: its fd number in the host and the socket it held
/// when the connection was made (it may have been closed and reused since).
#[derive(Clone, Copy)]
pub struct ClientEnd {
    pub fd: libc::c_int,
    pub socket: (u64, u64),
    /// The thread that connected it (`pthread_self`).
    pub thread: u64,
}

impl Peer {
    /// Takes `fd`, our end of a fresh socketpair, already marked as ours
    /// in the fd table (`fdtable::own_high`).
    pub fn new(fd: OwnedFd, client: Option<ClientEnd>) -> Peer {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Peer(std::mem::ManuallyDrop::new(UnixStream::from(fd)), client)
    }

    /// Where the client's end is, when known.
    pub fn client(&self) -> Option<ClientEnd> {
        self.1
    }

    /// The socket, for the relay of a forward route.
    pub fn stream(&self) -> &UnixStream {
        &self.0
    }
}

impl AsRawFd for Peer {
    fn as_raw_fd(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let fd = self.0.as_raw_fd();
        // Unmarked before the close, so a forked child never closes a
        // number the host has reused.
        fdtable::disown(fd);
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: our own socket, closed once (the stream is never dropped).
        unsafe { real::close(fd) };
    }
}

/// Peers alive now.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// How long an idle dispatcher polls for the next request before sleeping.
pub const SPIN: Duration = Duration::from_micros(50);

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.0.as_raw_fd();
        // While there are fewer dispatchers than cores, poll briefly before
        // blocking: a client on a keep-alive connection usually sends its
        // next request within microseconds, and a sleep and wake-up of this
        // thread costs more than the polling.
        if LIVE.load(Ordering::Relaxed) <= spare_cores() {
            let deadline = Instant::now() + SPIN;
            loop {
                // SAFETY: buf is valid for writes of its length.
                let n = unsafe { real::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
                if n >= 0 {
                    return Ok(n as usize);
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    return Err(e);
                }
                if Instant::now() >= deadline {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { real::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for reads of its length.
        let n = unsafe { real::send(self.0.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Peer {
    fn opener(&self) -> Option<Opener> {
        self.1.map(|client| Opener { thread: client.thread, fd: client.fd })
    }

    fn close_write(&mut self) {
        // SAFETY: shutdown of our own socket (not a hooked function).
        unsafe { libc::shutdown(self.0.as_raw_fd(), libc::SHUT_WR) };
    }

    fn limit_reads(&mut self, limit: Duration) {
        let limit = limit.max(Duration::from_millis(1));
        let timeout = libc::timeval { tv_sec: limit.as_secs() as libc::time_t, tv_usec: limit.subsec_micros() as libc::suseconds_t };
        let len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        // SAFETY: a valid timeval on our own socket.
        unsafe { real::setsockopt(self.0.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&raw const timeout).cast(), len) };
    }

    fn raw_fd(&self) -> Option<libc::c_int> {
        Some(self.0.as_raw_fd())
    }

    /// A socketpair has no RST, but closing an end with unread bytes in it
    /// makes the other end's next read fail with ECONNRESET: one byte is
    /// sent to us from a copy of the client's end (if that fd still holds
    /// it), and the close that follows does the rest.
    fn reset(&mut self) {
        let Some(client) = self.1 else { return };
        if fdtable::identity(client.fd) != Some(client.socket) {
            return;
        }
        // SAFETY: a copy of the client's end, used for one send and closed.
        unsafe {
            let copy = real::dup(client.fd);
            if copy >= 0 {
                real::send(copy, [0u8].as_ptr().cast(), 1, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
                real::close(copy);
            }
        }
    }
}

/// Cores a polling dispatcher may keep busy: all but one.
pub fn spare_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1))
}

/// Continues on a thread of its own a plain-http connection the event
/// thread gave up: `unsent` goes out first, then the connection closes if
/// `close`, else it is served from the bytes already `read`.
pub fn serve_on_thread(mut peer: Peer, dest: Destination, read: Vec<u8>, unsent: Vec<u8>, close: bool) {
    let started = start_thread(c"intercept", move || {
        if peer.write_all(&unsent).is_ok() && !close {
            core_lib::serve::serve_plain(peer, &dest, read);
        }
    });
    if let Err(e) = started {
        log_error!("cannot start a dispatcher thread: {e}; a connection is closed");
    }
}

/// Starts one of our threads: every signal blocked, so the host's handlers
/// keep running on the host's own threads. A panic that escapes `f` ends
/// only this thread, with a log line.
///
/// A plain detached pthread, not `std::thread`: the caller (often a
/// connect, on the host's critical path) pays for the clone and nothing
/// else — no join handle, result packet or naming through `/proc` — and
/// the thread names itself.
pub fn start_thread(name: &'static CStr, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    type Body = Box<dyn FnOnce() + Send>;
    struct Start {
        name: &'static CStr,
        body: Body,
    }
    extern "C" fn begin(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the box `start_thread` gave up to this thread.
        let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
        // SAFETY: names the calling thread from a NUL-terminated string.
        unsafe { libc::prctl(libc::PR_SET_NAME, start.name.as_ptr()) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(start.body)).is_err() {
            log_error!("internal error on a dispatcher thread; its connection is closed");
        }
        std::ptr::null_mut()
    }
    let start = Box::into_raw(Box::new(Start { name, body: Box::new(f) }));
    // SAFETY: attr is initialised before use and destroyed after; the
    // signal-mask calls use local sets, the new thread inherits the full
    // mask and this thread's is restored after; `start` is handed to the
    // thread, or taken back when it could not start.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let mut thread: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut thread, &attr, begin, start.cast());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(start));
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// Wraps a raw fd we just created.
///
/// # Safety
/// `fd` must be open and owned by nobody else.
pub unsafe fn own(fd: libc::c_int) -> OwnedFd {
    // SAFETY: the caller's promise.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
