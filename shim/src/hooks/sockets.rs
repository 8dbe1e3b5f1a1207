//! What would reveal the socketpair: peer and local names, socket options.

use std::mem::size_of;
use std::net::SocketAddr;

use libc::{c_int, sockaddr, socklen_t};

use crate::real::{self, fail};
use crate::{fdtable, sockaddr as sa};

/// The address the caller connected to, as TCP would report it (an
/// IPv4-mapped address stays mapped).
pub(super) unsafe fn getpeername_impl(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    match fdtable::get(fd) {
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { real::getpeername(fd, addr, len) },
        // SAFETY: the caller's buffer, as for the real call.
        Some(face) => unsafe { write_name(face.peer, addr, len) },
    }
}

/// A plausible local end: loopback in the peer's family, with a port from
/// the ephemeral range that stays the same for the fd.
pub(super) unsafe fn getsockname_impl(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    match fdtable::get(fd) {
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { real::getsockname(fd, addr, len) },
        Some(face) => {
            let port = 32768 + (fd as u16 % 28000);
            let local = match face.peer {
                SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], port)),
                SocketAddr::V6(p) if p.ip().to_ipv4_mapped().is_some() => {
                    SocketAddr::from((std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(), port))
                }
                SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            };
            // SAFETY: the caller's buffer, as for the real call.
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

/// Whether a socket option level belongs to TCP/IP, which a socketpair
/// would reject and a TCP socket accepts.
fn ip_level(level: c_int) -> bool {
    matches!(level, libc::IPPROTO_TCP | libc::IPPROTO_IP | libc::IPPROTO_IPV6)
}

/// Options at the TCP/IP levels are accepted and remembered (TCP_NODELAY
/// and friends have no meaning on a socketpair); the rest go to the kernel.
pub(super) unsafe fn setsockopt_impl(fd: c_int, level: c_int, name: c_int, value: *const libc::c_void, len: socklen_t) -> c_int {
    if !ip_level(level) || !fdtable::contains(fd) {
        // SAFETY: the caller's arguments, passed on.
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
    fdtable::update(fd, |face| face.set_option(level, name, int));
    0
}

/// Reads back remembered TCP/IP options (zero when never set), and answers
/// SO_DOMAIN and SO_PROTOCOL as a TCP socket would.
pub(super) unsafe fn getsockopt_impl(fd: c_int, level: c_int, name: c_int, value: *mut libc::c_void, len: *mut socklen_t) -> c_int {
    let Some(face) = fdtable::get(fd) else {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::getsockopt(fd, level, name, value, len) };
    };
    let answer = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => Some(if face.peer.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 }),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => Some(libc::IPPROTO_TCP),
        (l, n) if ip_level(l) => Some(face.option(l, n).unwrap_or(0)),
        _ => None,
    };
    let Some(answer) = answer else {
        // SAFETY: the caller's arguments, passed on.
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
