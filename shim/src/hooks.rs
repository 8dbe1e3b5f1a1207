//! The exported libc hooks. Each one is a translation: read the C
//! arguments, ask the core (or the fd table), act with the real functions.
//!
//! No panic crosses the C boundary: the body of every slow path runs inside
//! `catch_unwind`, and a panic there fails the call the way libc would fail
//! it. The path for a call that is not ours is one atomic load.

use std::ffi::{CStr, CString};
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};

use core_lib::router::{Connect, Lookup, Router, Target};
use core_lib::{log_debug, log_error};
use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};

use crate::{dispatch, errno, fdtable, real, set_errno, sockaddr as sa, state};

/// Runs a hook's slow path; a panic becomes `fallback()`.
fn guarded<T>(hook: &str, fallback: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log_error!("internal error in {hook}; the call fails as libc would fail it");
        fallback()
    })
}

fn fail(code: c_int) -> c_int {
    set_errno(code);
    -1
}

// ---- names ----------------------------------------------------------------

/// Routed names resolve to their synthetic addresses. The answer is built by
/// the real `getaddrinfo` from the numeric address, so every node comes from
/// libc's own allocator and libc's `freeaddrinfo` frees it: no
/// `freeaddrinfo` hook is needed to tell the two kinds apart.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if !state::active() || node.is_null() || res.is_null() {
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    }
    guarded("getaddrinfo", || libc::EAI_FAIL, || unsafe { lookup(node, service, hints, res) })
}

unsafe fn lookup(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int {
    let (Some(router), Ok(name)) = (state::router(), unsafe { CStr::from_ptr(node) }.to_str()) else {
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    };
    match router.lookup(name) {
        Lookup::Pass => unsafe { real::getaddrinfo(node, service, hints, res) },
        Lookup::Refuse => {
            log_error!("refused lookup of {name}: INTERCEPT_PASSTHROUGH=deny");
            if let Some(journal) = &router.journal {
                journal.blocked(name, router.passthrough.as_str());
            }
            libc::EAI_NONAME
        }
        Lookup::Synthetic(v4, v6) => {
            // SAFETY: hints, when given, is a valid addrinfo; zero is "no hints".
            let mut h: addrinfo = if hints.is_null() { unsafe { std::mem::zeroed() } } else { unsafe { *hints } };
            let want_canonical = h.ai_flags & libc::AI_CANONNAME != 0;
            h.ai_flags = (h.ai_flags | libc::AI_NUMERICHOST) & !libc::AI_CANONNAME;
            h.ai_canonname = std::ptr::null_mut();
            h.ai_addr = std::ptr::null_mut();
            h.ai_next = std::ptr::null_mut();
            let addresses: &[IpAddr] = match h.ai_family {
                libc::AF_INET => &[IpAddr::V4(v4)],
                libc::AF_INET6 => &[IpAddr::V6(v6)],
                libc::AF_UNSPEC => &[IpAddr::V4(v4), IpAddr::V6(v6)],
                _ => return libc::EAI_FAMILY,
            };
            let mut head: *mut addrinfo = std::ptr::null_mut();
            let mut tail: *mut *mut addrinfo = &mut head;
            let mut first_error = None;
            for ip in addresses {
                h.ai_family = if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
                let text = CString::new(ip.to_string()).expect("addresses have no NUL");
                let mut list: *mut addrinfo = std::ptr::null_mut();
                match unsafe { real::getaddrinfo(text.as_ptr(), service, &h, &mut list) } {
                    0 => unsafe {
                        *tail = list;
                        while !(*tail).is_null() {
                            tail = &mut (**tail).ai_next;
                        }
                    },
                    code => {
                        first_error.get_or_insert(code);
                    }
                }
            }
            if head.is_null() {
                return first_error.unwrap_or(libc::EAI_NONAME);
            }
            if want_canonical {
                let canonical = CString::new(name).expect("came from a C string");
                // SAFETY: strdup's copy is freed by libc's freeaddrinfo.
                unsafe { (*head).ai_canonname = libc::strdup(canonical.as_ptr()) };
            }
            log_debug!("resolved {name} to {v4} and {v6}");
            unsafe { *res = head };
            0
        }
    }
}

// ---- connect --------------------------------------------------------------

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
    let idle = state::router().map_or(core_lib::config::DEFAULT_IDLE_TIMEOUT, |r| r.idle_timeout);
    if let Err(e) = dispatch::spawn(unsafe { dispatch::own(ours) }, target, idle) {
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

// ---- the fd table ---------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if fdtable::contains(fd) {
        // Forget it before the number can be reused by another thread.
        guarded("close", || None, || fdtable::remove(fd));
    }
    unsafe { real::close(fd) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let new = unsafe { real::dup(fd) };
    if new >= 0 && fdtable::contains(fd) {
        guarded("dup", || (), || copy_entry(fd, new));
    }
    new
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(fd: c_int, to: c_int) -> c_int {
    let rc = unsafe { real::dup2(fd, to) };
    if rc >= 0 && fd != to && (fdtable::contains(fd) || fdtable::contains(to)) {
        guarded("dup2", || (), || copy_entry(fd, to));
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int {
    let rc = unsafe { real::dup3(fd, to, flags) };
    if rc >= 0 && (fdtable::contains(fd) || fdtable::contains(to)) {
        guarded("dup3", || (), || copy_entry(fd, to));
    }
    rc
}

/// After `to` became a copy of `from`: `to` is ours exactly when `from` is.
fn copy_entry(from: c_int, to: c_int) {
    let entry = fdtable::get(from);
    fdtable::remove(to);
    if let Some(conn) = entry {
        fdtable::insert(to, conn);
    }
}

// ---- peer names -------------------------------------------------------------

/// The address the caller connected to, as TCP would report it (an
/// IPv4-mapped address stays mapped).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    match fdtable::get(fd) {
        None => unsafe { real::getpeername(fd, addr, len) },
        Some(conn) => unsafe { write_name(conn.peer, addr, len) },
    }
}

/// A plausible local end: loopback in the peer's family, with a port from
/// the ephemeral range that stays the same for the fd.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    match fdtable::get(fd) {
        None => unsafe { real::getsockname(fd, addr, len) },
        Some(conn) => {
            let port = 32768 + (fd as u16 % 28000);
            let local = match conn.peer {
                SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], port)),
                SocketAddr::V6(p) if p.ip().to_ipv4_mapped().is_some() => {
                    SocketAddr::from((std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(), port))
                }
                SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            };
            unsafe { write_name(local, addr, len) }
        }
    }
}

/// Copies an address out as the kernel does: truncated to the caller's
/// buffer, with the full length reported.
unsafe fn write_name(name: SocketAddr, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if addr.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    let (storage, full) = sa::to_c(name);
    // SAFETY: the caller's buffer holds *len bytes; we copy at most that.
    unsafe {
        let n = (*len).min(full) as usize;
        std::ptr::copy_nonoverlapping((&raw const storage).cast::<u8>(), addr.cast::<u8>(), n);
        *len = full;
    }
    0
}

// ---- socket options ---------------------------------------------------------

/// Whether a socket option level belongs to TCP/IP, which a socketpair
/// would reject and a TCP socket accepts.
fn ip_level(level: c_int) -> bool {
    matches!(level, libc::IPPROTO_TCP | libc::IPPROTO_IP | libc::IPPROTO_IPV6)
}

/// Options at the TCP/IP levels are accepted and remembered (TCP_NODELAY
/// and friends have no meaning on a socketpair); the rest go to the kernel.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const libc::c_void, len: socklen_t) -> c_int {
    if !ip_level(level) || !fdtable::contains(fd) {
        return unsafe { real::setsockopt(fd, level, name, value, len) };
    }
    if value.is_null() && len > 0 {
        return fail(libc::EFAULT);
    }
    let int = if len as usize >= size_of::<c_int>() {
        // SAFETY: the caller's buffer holds at least an int.
        unsafe { std::ptr::read_unaligned(value.cast::<c_int>()) }
    } else {
        0
    };
    guarded("setsockopt", || (), || fdtable::update(fd, |c| c.set_option(level, name, int)));
    0
}

/// Reads back remembered TCP/IP options (zero when never set), and answers
/// SO_DOMAIN and SO_PROTOCOL as a TCP socket would.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut libc::c_void, len: *mut socklen_t) -> c_int {
    let Some(conn) = fdtable::get(fd) else {
        return unsafe { real::getsockopt(fd, level, name, value, len) };
    };
    let answer = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => Some(if conn.peer.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 }),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => Some(libc::IPPROTO_TCP),
        (l, n) if ip_level(l) => Some(conn.option(l, n).unwrap_or(0)),
        _ => None,
    };
    let Some(answer) = answer else {
        return unsafe { real::getsockopt(fd, level, name, value, len) };
    };
    if value.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller's buffer holds *len bytes; larger option structs
    // (TCP_INFO) read as zeros after the int.
    unsafe {
        let room = *len as usize;
        std::ptr::write_bytes(value.cast::<u8>(), 0, room);
        let bytes = answer.to_ne_bytes();
        let n = room.min(bytes.len());
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast::<u8>(), n);
        let is_struct = (level, name) == (libc::IPPROTO_TCP, libc::TCP_INFO);
        *len = if is_struct { room } else { n } as socklen_t;
    }
    0
}
