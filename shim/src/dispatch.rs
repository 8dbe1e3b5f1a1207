//! Where an intercepted connection is served: on the event thread
//! (`reactor`) when every app of its site answers from memory, else on a
//! thread of its own running the core's connection loop (TLS, HTTP/1.1,
//! HTTP/2) or, for a tunnel (or a forward route on http), the byte relay to
//! its upstream.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use core_lib::apps::forward;
use core_lib::config::route::Scheme;
use core_lib::routing::Destination;
use core_lib::serve;

use crate::peer::{self, ClientEnd, Peer};
use crate::{reactor, real, upstream};

/// Serves `fd` (which it then owns) for `dest`; `client` is the other end,
/// as the host holds it. A client quiet for `idle`, or that takes nothing
/// of an answer for that long, is hung up on.
pub fn spawn(fd: OwnedFd, client: Option<ClientEnd>, dest: Destination, idle: Duration, ca_dir: PathBuf) -> io::Result<()> {
    // A forwarded connection may rightly be quiet for long (server push):
    // no idle timeout there.
    let idle = if dest.site.forward.is_some() { Duration::ZERO } else { idle };
    let timeout = libc::timeval { tv_sec: idle.as_secs() as libc::time_t, tv_usec: idle.subsec_micros() as libc::suseconds_t };
    // SAFETY: plain setsockopt calls with valid values on our own fd.
    unsafe {
        let len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        real::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&raw const timeout).cast(), len);
        // And a client that stops reading an answer is let go as well (as
        // nginx's send_timeout does).
        real::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&raw const timeout).cast(), len);
        // A unix stream socket's sender buffer bounds what is in flight:
        // a larger one lets large responses stream in fewer wake-ups.
        let size: libc::c_int = 1 << 20;
        let int = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        real::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, (&raw const size).cast(), int);
    }
    let peer = Peer::new(fd, client);
    let (peer, dest) = if reactor::takes(&dest) {
        match reactor::submit(peer, dest, idle) {
            Ok(()) => return Ok(()),
            Err(back) => *back,
        }
    } else {
        (peer, dest)
    };
    peer::start_thread(c"intercept", move || match &dest.site.forward {
        // Bytes as they come; an https forward ends TLS in `serve` first.
        Some((_, relay)) if relay.tunnel || dest.site.scheme == Scheme::Http => {
            forward::serve(peer.stream(), &relay.to, &upstream::connect)
        }
        _ => serve::serve(peer, &dest, &ca_dir),
    })
}
