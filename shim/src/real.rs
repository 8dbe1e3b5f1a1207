//! The real libc functions behind our hooks, found with `dlsym(RTLD_NEXT)`
//! and cached in an atomic, plus errno.
//!
//! Every call the shim itself makes to a hooked symbol goes through here, so
//! our own work (a dispatcher's close, a real lookup) never re-enters a hook.
//! A symbol that cannot be found makes the call fail with the errno or code
//! libc uses for "not supported", never a panic. [`resolve_all`] looks every
//! symbol up at once, before a fork, so a child never calls `dlsym` (which
//! takes a lock another thread may have held at the fork).
//!
//! The calls a supervised program's seccomp filter stops (connect, socket
//! names and TCP options, opens) are made here as system calls carrying
//! `program::SHIM_CALL`, so the shim's own, already decided, pass it.

use std::ffi::{CStr, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use core_lib::program::SHIM_CALL;
use libc::{
    addrinfo, c_char, c_int, c_uint, c_ulong, fd_set, hostent, iovec, msghdr, nfds_t, pollfd, sigset_t, size_t, sockaddr, socklen_t,
    ssize_t, timespec, timeval,
};

pub fn set_errno(code: c_int) {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() = code };
}

pub fn errno() -> c_int {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() }
}

/// Sets errno and returns -1, as a failing libc call does.
pub fn fail(code: c_int) -> c_int {
    set_errno(code);
    -1
}

/// One real function: its name and, once looked up, its address.
struct Slot {
    name: &'static CStr,
    ptr: AtomicPtr<c_void>,
}

impl Slot {
    const fn new(name: &'static CStr) -> Slot {
        Slot { name, ptr: AtomicPtr::new(null_mut()) }
    }

    /// The function's address; null when libc has no such symbol.
    fn get(&self) -> *mut c_void {
        let ptr = self.ptr.load(Ordering::Relaxed);
        if !ptr.is_null() {
            return ptr;
        }
        // SAFETY: dlsym with a NUL-terminated name.
        let ptr = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        if is_ours(ptr) {
            // Calling it would call ourselves for ever: the call fails as
            // for a missing symbol instead.
            return null_mut();
        }
        self.ptr.store(ptr, Ordering::Relaxed);
        ptr
    }
}

/// Whether `ptr` lies in the shim itself. A real function must never be
/// one of our hooks, which `RTLD_NEXT` could find if the shim were loaded
/// twice or linked into the program.
pub fn is_ours(ptr: *mut c_void) -> bool {
    static BASE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
    if ptr.is_null() {
        return false;
    }
    // SAFETY: dladdr writes into our zeroed Dl_info; both addresses are
    // only looked up, never called.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut base = BASE.load(Ordering::Relaxed);
        if base.is_null() && libc::dladdr(is_ours as *const c_void, &mut info) != 0 {
            base = info.dli_fbase;
            BASE.store(base, Ordering::Relaxed);
        }
        libc::dladdr(ptr, &mut info) != 0 && info.dli_fbase == base
    }
}

macro_rules! real_fns {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, missing = $missing:expr;)*) => {
        mod slots {
            #![allow(non_upper_case_globals)]
            $(pub(super) static $name: super::Slot = super::Slot::new(
                match std::ffi::CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                    Ok(name) => name,
                    Err(_) => panic!("bad symbol name"),
                });)*
            pub(super) static fcntl: super::Slot = super::Slot::new(c"fcntl");
        }

        $(
        /// The real function of this name.
        ///
        /// # Safety
        /// As for the libc function.
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            let ptr = slots::$name.get();
            if ptr.is_null() {
                return $missing;
            }
            // SAFETY: dlsym found this symbol in libc, whose prototype it is.
            let real: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(ptr) };
            // SAFETY: the caller upholds libc's contract.
            unsafe { real($($arg),*) }
        }
        )*

        /// Looks every real function up now (see the module doc).
        pub fn resolve_all() {
            $(slots::$name.get();)*
            slots::fcntl.get();
        }
    };
}

real_fns! {
    fn close(fd: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn dup(fd: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn dup2(fd: c_int, to: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int, missing = libc::EAI_SYSTEM;
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn writev(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn getnameinfo(addr: *const sockaddr, alen: socklen_t, host: *mut c_char, hostlen: socklen_t, serv: *mut c_char, servlen: socklen_t, flags: c_int) -> c_int, missing = libc::EAI_SYSTEM;
    fn __open_2(path: *const c_char, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn __open64_2(path: *const c_char, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn __openat_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn __openat64_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE, missing = null_mut();
    fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE, missing = null_mut();
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int, missing = fail(libc::ENOSYS);
    fn execv(path: *const c_char, argv: *const *const c_char) -> c_int, missing = fail(libc::ENOSYS);
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int, missing = fail(libc::ENOSYS);
    fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int, missing = fail(libc::ENOSYS);
    fn execveat(dir: c_int, path: *const c_char, argv: *const *const c_char, envp: *const *const c_char, flags: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int, missing = fail(libc::ENOSYS);
    fn posix_spawn(pid: *mut libc::pid_t, path: *const c_char, actions: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *const c_char, envp: *const *const c_char) -> c_int, missing = libc::ENOSYS;
    fn posix_spawnp(pid: *mut libc::pid_t, file: *const c_char, actions: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *const c_char, envp: *const *const c_char) -> c_int, missing = libc::ENOSYS;
    fn gethostbyname(name: *const c_char) -> *mut hostent, missing = null_mut();
    fn gethostbyname2(name: *const c_char, family: c_int) -> *mut hostent, missing = null_mut();
    fn gethostbyname_r(name: *const c_char, ret: *mut hostent, buf: *mut c_char, buflen: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int, missing = libc::ENOSYS;
    fn gethostbyname2_r(name: *const c_char, family: c_int, ret: *mut hostent, buf: *mut c_char, buflen: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int, missing = libc::ENOSYS;
    fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn __read_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn readv(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn __recvfrom_chk(fd: c_int, buf: *mut c_void, len: size_t, size: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t, missing = fail(libc::ENOSYS) as ssize_t;
    fn poll(fds: *mut pollfd, count: nfds_t, timeout: c_int) -> c_int, missing = fail(libc::ENOSYS);
    fn __poll_chk(fds: *mut pollfd, count: nfds_t, timeout: c_int, size: size_t) -> c_int, missing = fail(libc::ENOSYS);
    fn ppoll(fds: *mut pollfd, count: nfds_t, timeout: *const timespec, mask: *const sigset_t) -> c_int, missing = fail(libc::ENOSYS);
    fn __ppoll_chk(fds: *mut pollfd, count: nfds_t, timeout: *const timespec, mask: *const sigset_t, size: size_t) -> c_int, missing = fail(libc::ENOSYS);
    fn select(count: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *mut timeval) -> c_int, missing = fail(libc::ENOSYS);
    fn pselect(count: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *const timespec, mask: *const sigset_t) -> c_int, missing = fail(libc::ENOSYS);
    fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, event: *mut libc::epoll_event) -> c_int, missing = fail(libc::ENOSYS);
    fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE, missing = null_mut();
}

/// The real `fcntl`. It is variadic; its one optional argument is an int
/// or a pointer, both passed in an integer register on every ABI we build
/// for.
///
/// # Safety
/// As for libc's `fcntl`.
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let ptr = slots::fcntl.get();
    if ptr.is_null() {
        return fail(libc::ENOSYS);
    }
    // SAFETY: dlsym found libc's fcntl, whose prototype this is.
    let real: unsafe extern "C" fn(c_int, c_int, ...) -> c_int = unsafe { std::mem::transmute(ptr) };
    // SAFETY: the caller upholds fcntl's contract.
    unsafe { real(fd, cmd, arg) }
}

/// The real `open`, `open64`, `openat` and `openat64`, all as the
/// `openat` system call, marked as ours (see [`marked`]).
///
/// # Safety
/// As for libc's `openat`.
pub unsafe fn openat(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller upholds openat's contract; the fifth slot is the mark.
    unsafe { marked(libc::SYS_openat, [dir as i64, path as i64, flags as i64, mode as i64, 0]) as c_int }
}

/// # Safety
/// As for libc's `open`.
pub unsafe fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: as above.
    unsafe { openat(libc::AT_FDCWD, path, flags, mode) }
}

pub use open as open64;
pub use openat as openat64;

/// # Safety
/// As for libc's `connect`.
pub unsafe fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller upholds connect's contract.
    unsafe { marked(libc::SYS_connect, [fd as i64, addr as i64, len as i64, 0, 0]) as c_int }
}

/// # Safety
/// As for libc's `getpeername`.
pub unsafe fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller upholds getpeername's contract.
    unsafe { marked(libc::SYS_getpeername, [fd as i64, addr as i64, len as i64, 0, 0]) as c_int }
}

/// # Safety
/// As for libc's `getsockname`.
pub unsafe fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller upholds getsockname's contract.
    unsafe { marked(libc::SYS_getsockname, [fd as i64, addr as i64, len as i64, 0, 0]) as c_int }
}

/// # Safety
/// As for libc's `setsockopt`.
pub unsafe fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> c_int {
    // SAFETY: the caller upholds setsockopt's contract.
    unsafe { marked(libc::SYS_setsockopt, [fd as i64, level as i64, name as i64, value as i64, len as i64]) as c_int }
}

/// # Safety
/// As for libc's `getsockopt`.
pub unsafe fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller upholds getsockopt's contract.
    unsafe { marked(libc::SYS_getsockopt, [fd as i64, level as i64, name as i64, value as i64, len as i64]) as c_int }
}

/// A system call the supervisor's filter lets through: `args` in the
/// first slots, the rest zero, and the mark ([`SHIM_CALL`]) in the slot
/// after the call's last argument (`used` counts them), which the kernel
/// ignores. Returns -1 with errno set on failure, as libc does.
///
/// # Safety
/// `args` must be valid arguments for the call.
unsafe fn marked(nr: libc::c_long, args: [i64; 5]) -> libc::c_long {
    let used = match nr {
        libc::SYS_openat => 4,
        libc::SYS_setsockopt | libc::SYS_getsockopt => 5,
        _ => 3,
    };
    let mut slots = [0i64; 6];
    slots[..used].copy_from_slice(&args[..used]);
    slots[used] = SHIM_CALL as i64;
    // SAFETY: the caller's arguments; the extra slot is ignored by the kernel.
    unsafe { libc::syscall(nr, slots[0], slots[1], slots[2], slots[3], slots[4], slots[5]) }
}
