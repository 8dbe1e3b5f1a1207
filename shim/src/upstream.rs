//! Connecting for real, with the real libc functions: to a `forward:`
//! route's upstream, and to what a synthetic name really resolves to when
//! a connect reaches a port no route serves. Going around our own hooks
//! means an upstream that is itself routed is reached for real, never
//! looped back into the shim.

use std::ffi::{CStr, CString};
use std::io::{self, Error};
use std::mem::size_of;
use std::os::fd::{FromRawFd, OwnedFd};

use core_lib::apps::forward::Upstream;
use libc::{addrinfo, c_int, socklen_t};

use crate::real;

/// A socket of ours, closed with the real `close` unless kept.
struct Socket(c_int);

impl Socket {
    fn new(family: c_int) -> io::Result<Socket> {
        // SAFETY: a plain socket call (not a hooked function).
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 { Err(Error::last_os_error()) } else { Ok(Socket(fd)) }
    }

    /// Connects with the real `connect`.
    fn connect(&self, addr: *const libc::sockaddr, len: socklen_t) -> io::Result<()> {
        // SAFETY: the caller passes an address valid for `len` bytes.
        if unsafe { real::connect(self.0, addr, len) } == 0 { Ok(()) } else { Err(Error::last_os_error()) }
    }

    fn keep(self) -> OwnedFd {
        let fd = self.0;
        std::mem::forget(self);
        // SAFETY: a socket we created and own alone.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: closes our own socket.
        unsafe { real::close(self.0) };
    }
}

/// The addresses `name:port` really resolves to (the real `getaddrinfo`),
/// freed when dropped.
struct Resolved(*mut addrinfo);

impl Resolved {
    fn lookup(name: &str, port: u16, family: c_int) -> io::Result<Resolved> {
        // SAFETY: zeroed addrinfo is "no hints"; the fields set are plain ints.
        let mut hints: addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = family;
        hints.ai_socktype = libc::SOCK_STREAM;
        let (Ok(c_name), Ok(c_port)) = (CString::new(name), CString::new(port.to_string())) else {
            return Err(Error::other("bad host name"));
        };
        let mut list: *mut addrinfo = std::ptr::null_mut();
        // SAFETY: valid C strings and out-pointer.
        let rc = unsafe { real::getaddrinfo(c_name.as_ptr(), c_port.as_ptr(), &hints, &mut list) };
        if rc != 0 {
            // SAFETY: gai_strerror returns a static string.
            let why = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }.to_string_lossy().into_owned();
            return Err(Error::other(format!("cannot resolve {name}: {why}")));
        }
        Ok(Resolved(list))
    }

    fn iter(&self) -> impl Iterator<Item = &addrinfo> {
        // SAFETY: walking the list getaddrinfo returned, alive while self is.
        std::iter::successors(unsafe { self.0.as_ref() }, |ai| unsafe { ai.ai_next.as_ref() })
    }
}

impl Drop for Resolved {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: frees the list from getaddrinfo, once.
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

/// Connects to a forward route's upstream.
pub fn connect(upstream: &Upstream) -> io::Result<OwnedFd> {
    match upstream {
        Upstream::Unix(path) => {
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
            let socket = Socket::new(libc::AF_UNIX)?;
            socket.connect((&raw const addr).cast(), size_of::<libc::sockaddr_un>() as socklen_t)?;
            Ok(socket.keep())
        }
        Upstream::Tcp { host, port } => {
            let resolved = Resolved::lookup(host, *port, libc::AF_UNSPEC)?;
            let mut last = Error::other(format!("no address for {host}"));
            for ai in resolved.iter() {
                match Socket::new(ai.ai_family).and_then(|s| s.connect(ai.ai_addr, ai.ai_addrlen).map(|()| s)) {
                    Ok(socket) => return Ok(socket.keep()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// Connects the caller's `fd` to the first address `name:port` really
/// resolves to in `family`: what `connect` returns, errno included; None
/// when the name does not resolve.
pub fn connect_fd(fd: c_int, name: &str, port: u16, family: c_int) -> Option<c_int> {
    let resolved = Resolved::lookup(name, port, family).ok()?;
    let ai = resolved.iter().next()?;
    // SAFETY: an address from getaddrinfo, valid for ai_addrlen bytes.
    let rc = unsafe { real::connect(fd, ai.ai_addr, ai.ai_addrlen) };
    let saved = real::errno();
    drop(resolved);
    real::set_errno(saved);
    Some(rc)
}
