//! Connects: routed addresses become socketpairs served by a dispatcher.

use std::ffi::CString;
use std::mem::size_of;
use std::net::SocketAddr;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use core_lib::forward::ForwardTarget;
use core_lib::router::{Connect, Router, Target};
use core_lib::{log_debug, log_error};
use libc::{addrinfo, c_int, sockaddr, socklen_t};

use super::{fail, guarded};
use crate::{dispatch, errno, fdtable, real, set_errno, sockaddr as sa, state};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !state::active() {
        return unsafe { real::connect(fd, addr, len) };
    }
    guarded("connect", || fail(libc::ECONNREFUSED), || unsafe { route_connect(fd, addr, len) })
}

unsafe fn route_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let (Some(router), Some(to)) = (state::router(), unsafe { sa::read(addr, len) }) else {
        return unsafe { real::connect(fd, addr, len) };
    };
    if fdtable::contains(fd) {
        return fail(libc::EISCONN);
    }
    match router.connect(to) {
        Connect::Pass => unsafe { real::connect(fd, addr, len) },
        Connect::Refuse => refuse(router, &to.to_string()),
        Connect::Resolve { name, port } => unsafe { connect_for_real(fd, &name, port) },
        Connect::Intercept(target) => {
            if socket_option(fd, libc::SO_TYPE) != Some(libc::SOCK_STREAM) {
                return unsafe { real::connect(fd, addr, len) };
            }
            unsafe { intercept(fd, to, target) }
        }
    }
}

/// `sendto` with `MSG_FASTOPEN` and an address is a connect and a send in
/// one call (TCP Fast Open); anything else is not ours and is one flag test.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const libc::c_void,
    len: libc::size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> libc::ssize_t {
    if flags & libc::MSG_FASTOPEN == 0 || addr.is_null() || !state::active() {
        return unsafe { real::sendto(fd, buf, len, flags, addr, alen) };
    }
    guarded("sendto", || fail(libc::ECONNREFUSED) as libc::ssize_t, || unsafe {
        match fast_open(fd, addr, alen) {
            FastOpen::Connected => real::send(fd, buf, len, flags & !libc::MSG_FASTOPEN),
            FastOpen::Failed => -1,
            FastOpen::NotOurs => real::sendto(fd, buf, len, flags, addr, alen),
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> libc::ssize_t {
    if flags & libc::MSG_FASTOPEN == 0 || msg.is_null() || !state::active() {
        return unsafe { real::sendmsg(fd, msg, flags) };
    }
    guarded("sendmsg", || fail(libc::ECONNREFUSED) as libc::ssize_t, || unsafe {
        let (addr, alen) = ((*msg).msg_name as *const sockaddr, (*msg).msg_namelen);
        if addr.is_null() {
            return real::sendmsg(fd, msg, flags);
        }
        match fast_open(fd, addr, alen) {
            FastOpen::Connected => {
                let mut plain = *msg;
                plain.msg_name = std::ptr::null_mut();
                plain.msg_namelen = 0;
                real::sendmsg(fd, &plain, flags & !libc::MSG_FASTOPEN)
            }
            FastOpen::Failed => -1,
            FastOpen::NotOurs => real::sendmsg(fd, msg, flags),
        }
    })
}

enum FastOpen {
    /// The fd is now connected (intercepted, or to the real host).
    Connected,
    /// Refused or failed; errno is set.
    Failed,
    /// Pass-through: the real call does the fast open itself.
    NotOurs,
}

unsafe fn fast_open(fd: c_int, addr: *const sockaddr, alen: socklen_t) -> FastOpen {
    let (Some(router), Some(to)) = (state::router(), unsafe { sa::read(addr, alen) }) else {
        return FastOpen::NotOurs;
    };
    if fdtable::contains(fd) {
        return FastOpen::Connected;
    }
    let rc = match router.connect(to) {
        Connect::Pass => return FastOpen::NotOurs,
        Connect::Refuse => refuse(router, &to.to_string()),
        Connect::Resolve { name, port } => unsafe { connect_for_real(fd, &name, port) },
        Connect::Intercept(target) => unsafe { intercept(fd, to, target) },
    };
    if rc == 0 { FastOpen::Connected } else { FastOpen::Failed }
}

fn refuse(router: &Router, to: &str) -> c_int {
    let mode = router.passthrough.as_str();
    log_error!("refused connection to {to}: INTERCEPT_PASSTHROUGH={mode}");
    if let Some(journal) = &router.journal {
        journal.blocked(to, mode);
    }
    fail(libc::ECONNREFUSED)
}

fn socket_option(fd: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: value and len are valid for the call.
    let rc = unsafe { real::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut value).cast(), &mut len) };
    (rc == 0).then_some(value)
}

/// A synthetic address on a port no route serves: connect to what the name
/// really resolves to, in the socket's own family.
unsafe fn connect_for_real(fd: c_int, name: &str, port: u16) -> c_int {
    let family = socket_option(fd, libc::SO_DOMAIN).unwrap_or(libc::AF_INET);
    // SAFETY: zeroed addrinfo is "no hints"; the fields set are plain ints.
    let mut hints: addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = family;
    hints.ai_socktype = libc::SOCK_STREAM;
    let (Ok(c_name), Ok(c_port)) = (CString::new(name), CString::new(port.to_string())) else {
        return fail(libc::ECONNREFUSED);
    };
    let mut list: *mut addrinfo = std::ptr::null_mut();
    if unsafe { real::getaddrinfo(c_name.as_ptr(), c_port.as_ptr(), &hints, &mut list) } != 0 || list.is_null() {
        log_error!("{name}:{port}: no route serves port {port}, and {name} does not resolve for real");
        return fail(libc::ECONNREFUSED);
    }
    // SAFETY: list is a valid result of getaddrinfo, freed right after use.
    unsafe {
        let rc = real::connect(fd, (*list).ai_addr, (*list).ai_addrlen);
        let saved = errno();
        libc::freeaddrinfo(list);
        set_errno(saved);
        rc
    }
}

/// Puts one end of a fresh socketpair in place of `fd` and hands the other
/// to a dispatcher thread.
unsafe fn intercept(fd: c_int, to: SocketAddr, target: Target) -> c_int {
    // SAFETY: fcntl on an int fd; errors come back as -1.
    let (status, fd_flags) = unsafe { (libc::fcntl(fd, libc::F_GETFL), libc::fcntl(fd, libc::F_GETFD)) };
    if status < 0 || fd_flags < 0 {
        return -1; // EBADF, as connect would say.
    }
    let mut pair = [0 as c_int; 2];
    // SAFETY: pair has room for two fds.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) } != 0 {
        return -1;
    }
    let (ours, theirs) = (pair[1], pair[0]);
    let host = format!("{}:{}", target.host, target.port);
    // SAFETY: `ours` was just created and is owned by nobody else.
    let Some(router) = state::router() else { return fail(libc::ECONNREFUSED) };
    if let Err(e) = dispatch::spawn(unsafe { dispatch::own(ours) }, target, router.idle_timeout, router.ca_dir.clone()) {
        log_error!("cannot start a dispatcher thread for {host}: {e}");
        unsafe { real::close(theirs) };
        return fail(libc::EAGAIN);
    }
    let cloexec = if fd_flags & libc::FD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
    // SAFETY: plain fd calls; on failure the dispatcher sees EOF and ends.
    unsafe {
        if real::dup3(theirs, fd, cloexec) < 0 {
            let saved = errno();
            real::close(theirs);
            return fail(saved);
        }
        real::close(theirs);
        if status & libc::O_NONBLOCK != 0 {
            libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
        }
    }
    fdtable::insert(fd, fdtable::Conn::new(to));
    log_debug!("intercepted connection to {to} ({host}) on fd {fd}");
    0
}


/// Connects to a forward route's target with the real libc functions, so
/// a target that is itself routed is reached for real, not looped back.
pub fn forward_target(target: &ForwardTarget) -> std::io::Result<OwnedFd> {
    use std::io::Error;
    let socket = |family: c_int| -> std::io::Result<OwnedFd> {
        // SAFETY: a plain socket call; the fd is owned at once.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 { Err(Error::last_os_error()) } else { Ok(unsafe { OwnedFd::from_raw_fd(fd) }) }
    };
    match target {
        ForwardTarget::Unix(path) => {
            // SAFETY: all-zero is a valid sockaddr_un.
            let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_encoded_bytes();
            if bytes.len() >= addr.sun_path.len() {
                return Err(Error::other("socket path too long"));
            }
            for (slot, b) in addr.sun_path.iter_mut().zip(bytes) {
                *slot = *b as libc::c_char;
            }
            let fd = socket(libc::AF_UNIX)?;
            let len = size_of::<libc::sockaddr_un>() as socklen_t;
            // SAFETY: addr is a valid sockaddr_un of len bytes.
            if unsafe { real::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) } != 0 {
                return Err(Error::last_os_error());
            }
            Ok(fd)
        }
        ForwardTarget::Tcp { host, port } => {
            // SAFETY: zeroed addrinfo is "no hints".
            let mut hints: addrinfo = unsafe { std::mem::zeroed() };
            hints.ai_socktype = libc::SOCK_STREAM;
            let (Ok(c_host), Ok(c_port)) = (CString::new(host.as_str()), CString::new(port.to_string())) else {
                return Err(Error::other("bad host name"));
            };
            let mut list: *mut addrinfo = std::ptr::null_mut();
            let rc = unsafe { real::getaddrinfo(c_host.as_ptr(), c_port.as_ptr(), &hints, &mut list) };
            if rc != 0 {
                // SAFETY: gai_strerror returns a static string.
                let why = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) }.to_string_lossy().into_owned();
                return Err(Error::other(format!("cannot resolve {host}: {why}")));
            }
            let mut last = Error::other(format!("no address for {host}"));
            let mut at = list;
            let mut connected = None;
            while !at.is_null() {
                // SAFETY: walking the list getaddrinfo returned.
                let ai = unsafe { &*at };
                match socket(ai.ai_family) {
                    Ok(fd) if unsafe { real::connect(fd.as_raw_fd(), ai.ai_addr, ai.ai_addrlen) } == 0 => {
                        connected = Some(fd);
                        break;
                    }
                    Ok(_) => last = Error::last_os_error(),
                    Err(e) => last = e,
                }
                at = ai.ai_next;
            }
            // SAFETY: frees the list from getaddrinfo.
            unsafe { libc::freeaddrinfo(list) };
            connected.ok_or(last)
        }
    }
}
