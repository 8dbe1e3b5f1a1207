//! The hook table: every export of the shim that a libc call lands on,
//! each named and typed once, with what it fails as when our code panics
//! (`fallback`) and what it does (`body`, in the module of its topic).
//! [`hooks!`] makes each entry an `extern "C"` function of that name
//! running `guarded(name, fallback, body)`. The variadic `execl` family
//! and the `dlopen` trampolines are assembly and are made by their own
//! modules ([`execl`](super::execl), [`dl`](super::dl)).

#![allow(clippy::missing_safety_doc)]

use std::ffi::c_void;

use libc::{
    addrinfo, c_char, c_int, c_uint, c_ulong, fd_set, iovec, msghdr, nfds_t, pid_t, pollfd, posix_spawn_file_actions_t, posix_spawnattr_t,
    sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};

use super::{connect, exec, fds, guarded, names, open, sockets, wait, write};
use crate::real;

type Argv = *const *const c_char;

/// Makes each entry an export (see the module doc).
macro_rules! hooks {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, fallback = $fallback:expr, body = $body:expr;)*) => {
        $(
            $(#[$doc])*
            #[unsafe(no_mangle)]
            #[allow(unused_unsafe)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
                // SAFETY: the caller's arguments, as libc takes them, go to
                // the body (or, after a panic there, to the fallback), which
                // keeps libc's contract for them.
                guarded(stringify!($name), || unsafe { $fallback }, || unsafe { $body })
            }
        )*

        /// Every export's name, for the check that a real function looked
        /// up is never one of ours.
        #[cfg(test)]
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

hooks! {
    // connect.rs
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int, fallback = real::fail(libc::ECONNREFUSED), body = connect::connect_impl(fd, addr, len);
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, alen: socklen_t,) -> ssize_t, fallback = real::fail(libc::ECONNREFUSED) as ssize_t, body = connect::sendto_impl(fd, buf, len, flags, addr, alen);
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t, fallback = real::fail(libc::ECONNREFUSED) as ssize_t, body = connect::sendmsg_impl(fd, msg, flags);

    // sockets.rs
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int, fallback = real::fail(libc::ENOTSOCK), body = sockets::getpeername_impl(fd, addr, len);
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int, fallback = real::fail(libc::ENOTSOCK), body = sockets::getsockname_impl(fd, addr, len);
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const libc::c_void, len: socklen_t) -> c_int, fallback = real::fail(libc::ENOPROTOOPT), body = sockets::setsockopt_impl(fd, level, name, value, len);
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut libc::c_void, len: *mut socklen_t) -> c_int, fallback = real::fail(libc::ENOPROTOOPT), body = sockets::getsockopt_impl(fd, level, name, value, len);

    // names.rs
    /// Routed names resolve to their synthetic addresses. The answer is built by
    /// the real `getaddrinfo` from the numeric address, so every node comes from
    /// libc's own allocator and libc's `freeaddrinfo` frees it: no
    /// `freeaddrinfo` hook is needed to tell the two kinds apart.
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo,) -> c_int, fallback = libc::EAI_FAIL, body = names::getaddrinfo_impl(node, service, hints, res);
    fn gethostbyname2_r(name: *const c_char, family: c_int, ret: *mut libc::hostent, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut libc::hostent, h_errnop: *mut c_int,) -> c_int, fallback = libc::ENOMEM, body = names::hostent_r(name, family, ret, buf, buflen, result, h_errnop, names::real_gethostbyname2_r);
    fn gethostbyname_r(name: *const c_char, ret: *mut libc::hostent, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut libc::hostent, h_errnop: *mut c_int,) -> c_int, fallback = libc::ENOMEM, body = names::hostent_r(name, libc::AF_INET, ret, buf, buflen, result, h_errnop, names::real_v4);
    fn gethostbyname(name: *const c_char) -> *mut libc::hostent, fallback = names::no_host(), body = names::gethostbyname_impl(name);
    fn gethostbyname2(name: *const c_char, family: c_int) -> *mut libc::hostent, fallback = names::no_host(), body = names::gethostbyname2_impl(name, family);
    /// The reverse: a synthetic address names its host.
    fn getnameinfo(addr: *const libc::sockaddr, alen: libc::socklen_t, host: *mut c_char, hostlen: libc::socklen_t, serv: *mut c_char, servlen: libc::socklen_t, flags: c_int,) -> c_int, fallback = libc::EAI_FAIL, body = names::getnameinfo_impl(addr, alen, host, hostlen, serv, servlen, flags);

    // fds.rs
    fn close(fd: c_int) -> c_int, fallback = real::close(fd), body = fds::close_impl(fd);
    fn dup(fd: c_int) -> c_int, fallback = real::fail(libc::EMFILE), body = fds::dup_impl(fd);
    fn dup2(fd: c_int, to: c_int) -> c_int, fallback = real::fail(libc::EBADF), body = fds::dup2_impl(fd, to);
    fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int, fallback = real::fail(libc::EBADF), body = fds::dup3_impl(fd, to, flags);
    /// glibc also exports `fcntl` as `fcntl64`.
    fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int, fallback = real::fail(libc::EBADF), body = fds::fcntl_impl(fd, cmd, arg);
    fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int, fallback = real::fail(libc::EBADF), body = fds::fcntl_impl(fd, cmd, arg);
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int, fallback = real::close_range(first, last, flags), body = fds::close_range_impl(first, last, flags);

    // write.rs
    fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t, fallback = real::fail(libc::EIO) as ssize_t, body = write::write_impl(fd, buf, len);
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t, fallback = real::fail(libc::EIO) as ssize_t, body = write::send_impl(fd, buf, len, flags);
    fn writev(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t, fallback = real::fail(libc::EIO) as ssize_t, body = write::writev_impl(fd, iov, count);

    // wait.rs
    // that failed in our code consumed nothing).
    fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t, fallback = real::read(fd, buf, len), body = wait::read_impl(fd, buf, len);
    fn __read_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t) -> ssize_t, fallback = real::__read_chk(fd, buf, len, size), body = wait::read_chk_impl(fd, buf, len, size);
    fn readv(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t, fallback = real::readv(fd, iov, count), body = wait::readv_impl(fd, iov, count);
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t, fallback = real::recv(fd, buf, len, flags), body = wait::recv_impl(fd, buf, len, flags);
    fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int) -> ssize_t, fallback = real::__recv_chk(fd, buf, len, size, flags), body = wait::recv_chk_impl(fd, buf, len, size, flags);
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t,) -> ssize_t, fallback = real::recvfrom(fd, buf, len, flags, addr, alen), body = wait::recvfrom_impl(fd, buf, len, flags, addr, alen);
    fn __recvfrom_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t,) -> ssize_t, fallback = real::__recvfrom_chk(fd, buf, len, size, flags, addr, alen), body = wait::recvfrom_chk_impl(fd, buf, len, size, flags, addr, alen);
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t, fallback = real::recvmsg(fd, msg, flags), body = wait::recvmsg_impl(fd, msg, flags);
    fn poll(fds: *mut pollfd, count: nfds_t, timeout: c_int) -> c_int, fallback = real::poll(fds, count, timeout), body = wait::poll_impl(fds, count, timeout);
    fn __poll_chk(fds: *mut pollfd, count: nfds_t, timeout: c_int, size: size_t) -> c_int, fallback = real::__poll_chk(fds, count, timeout, size), body = wait::poll_chk_impl(fds, count, timeout, size);
    fn ppoll(fds: *mut pollfd, count: nfds_t, timeout: *const timespec, mask: *const sigset_t) -> c_int, fallback = real::ppoll(fds, count, timeout, mask), body = wait::ppoll_impl(fds, count, timeout, mask);
    fn __ppoll_chk(fds: *mut pollfd, count: nfds_t, timeout: *const timespec, mask: *const sigset_t, size: size_t,) -> c_int, fallback = real::__ppoll_chk(fds, count, timeout, mask, size), body = wait::ppoll_chk_impl(fds, count, timeout, mask, size);
    fn select(count: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *mut timeval) -> c_int, fallback = real::select(count, r, w, e, timeout), body = wait::select_impl(count, r, w, e, timeout);
    fn pselect(count: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *const timespec, mask: *const sigset_t,) -> c_int, fallback = real::pselect(count, r, w, e, timeout, mask), body = wait::pselect_impl(count, r, w, e, timeout, mask);
    /// An event loop's client: adding a connection to an epoll set starts the
    /// loop (its waits are `epoll_wait`s on the set, which we do not see).
    fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, event: *mut libc::epoll_event) -> c_int, fallback = real::epoll_ctl(ep, op, fd, event), body = wait::epoll_ctl_impl(ep, op, fd, event);
    /// stdio: its reads and writes are libc's own, around the hooks.
    fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE, fallback = real::fdopen(fd, mode), body = wait::fdopen_impl(fd, mode);

    // open.rs
    fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int, fallback = real::open(path, flags, mode), body = open::served(path, flags, |p| real::open(p, flags, mode));
    fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int, fallback = real::open64(path, flags, mode), body = open::served(path, flags, |p| real::open64(p, flags, mode));
    fn openat(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int, fallback = real::openat(dir, path, flags, mode), body = open::served(path, flags, |p| real::openat(dir, p, flags, mode));
    fn openat64(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int, fallback = real::openat64(dir, path, flags, mode), body = open::served(path, flags, |p| real::openat64(dir, p, flags, mode));
    /// What `open` becomes in a program built with `_FORTIFY_SOURCE`.
    fn __open_2(path: *const c_char, flags: c_int) -> c_int, fallback = real::__open_2(path, flags), body = open::served(path, flags, |p| real::__open_2(p, flags));
    fn __open64_2(path: *const c_char, flags: c_int) -> c_int, fallback = real::__open64_2(path, flags), body = open::served(path, flags, |p| real::__open64_2(p, flags));
    fn __openat_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int, fallback = real::__openat_2(dir, path, flags), body = open::served(path, flags, |p| real::__openat_2(dir, p, flags));
    fn __openat64_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int, fallback = real::__openat64_2(dir, path, flags), body = open::served(path, flags, |p| real::__openat64_2(dir, p, flags));
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE, fallback = real::fopen(path, mode), body = open::served_stream(path, mode, |p| real::fopen(p, mode));
    fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE, fallback = real::fopen64(path, mode), body = open::served_stream(path, mode, |p| real::fopen64(p, mode));

    // exec.rs
    fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int, fallback = real::execve(path, argv, envp), body = exec::execve_impl(path, argv, envp);
    fn execv(path: *const c_char, argv: Argv) -> c_int, fallback = real::execv(path, argv), body = exec::execv_impl(path, argv);
    fn execvp(file: *const c_char, argv: Argv) -> c_int, fallback = real::execvp(file, argv), body = exec::execvp_impl(file, argv);
    fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int, fallback = real::execvpe(file, argv, envp), body = exec::execvpe_impl(file, argv, envp);
    fn execveat(dir: c_int, path: *const c_char, argv: Argv, envp: Argv, flags: c_int) -> c_int, fallback = real::execveat(dir, path, argv, envp, flags), body = exec::execveat_impl(dir, path, argv, envp, flags);
    fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int, fallback = real::fexecve(fd, argv, envp), body = exec::fexecve_impl(fd, argv, envp);
    fn posix_spawn(pid: *mut pid_t, path: *const c_char, actions: *const posix_spawn_file_actions_t, attr: *const posix_spawnattr_t, argv: Argv, envp: Argv,) -> c_int, fallback = real::posix_spawn(pid, path, actions, attr, argv, envp), body = exec::spawn_impl(pid, path, false, actions, attr, argv, envp);
    fn posix_spawnp(pid: *mut pid_t, file: *const c_char, actions: *const posix_spawn_file_actions_t, attr: *const posix_spawnattr_t, argv: Argv, envp: Argv,) -> c_int, fallback = real::posix_spawnp(pid, file, actions, attr, argv, envp), body = exec::spawn_impl(pid, file, true, actions, attr, argv, envp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_real_function_is_one_of_our_hooks() {
        assert!(real::is_ours(close as *mut c_void), "our own export is ours");
        for name in NAMES {
            let name = std::ffi::CString::new(*name).unwrap();
            // SAFETY: dlsym with a NUL-terminated name.
            let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
            assert!(!real::is_ours(found), "the real {name:?} is one of our hooks");
        }
        assert_eq!(NAMES.len(), 57);
    }
}
