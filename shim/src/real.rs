//! The real libc functions behind our hooks, found once with
//! `dlsym(RTLD_NEXT)` and cached in an atomic.
//!
//! Every call the shim itself makes to a hooked symbol goes through here, so
//! our own work (a dispatcher's close, a real lookup) never re-enters a hook.
//! A symbol that cannot be found makes the call fail with the errno or code
//! libc uses for "not supported", never a panic.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{addrinfo, c_char, hostent, c_int, c_uint, c_ulong, msghdr, size_t, sockaddr, socklen_t, ssize_t};

fn fail_errno(code: c_int) -> c_int {
    crate::set_errno(code);
    -1
}

macro_rules! real_fns {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, missing = $missing:expr;)*) => {$(
        #[allow(clippy::missing_safety_doc)]
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            static PTR: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
            let mut ptr = PTR.load(Ordering::Relaxed);
            if ptr.is_null() {
                ptr = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!(stringify!($name), "\0").as_ptr().cast()) };
                PTR.store(ptr, Ordering::Relaxed);
            }
            if ptr.is_null() {
                return $missing;
            }
            let real: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(ptr) };
            unsafe { real($($arg),*) }
        }
    )*};
}

real_fns! {
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn close(fd: c_int) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn dup(fd: c_int) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn dup2(fd: c_int, to: c_int) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int, missing = libc::EAI_SYSTEM;
}

real_fns! {
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut socklen_t) -> c_int, missing = fail_errno(libc::ENOSYS);
}

real_fns! {
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int, missing = fail_errno(libc::ENOSYS);
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t, missing = fail_errno(libc::ENOSYS) as ssize_t;
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> ssize_t, missing = fail_errno(libc::ENOSYS) as ssize_t;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t, missing = fail_errno(libc::ENOSYS) as ssize_t;
    fn getnameinfo(addr: *const sockaddr, alen: socklen_t, host: *mut c_char, hostlen: socklen_t, serv: *mut c_char, servlen: socklen_t, flags: c_int) -> c_int, missing = libc::EAI_SYSTEM;
}

/// `fcntl` is variadic; its one optional argument is an int or a pointer,
/// both passed in an integer register on every ABI we build for.
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    static PTR: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
    let mut ptr = PTR.load(Ordering::Relaxed);
    if ptr.is_null() {
        ptr = unsafe { libc::dlsym(libc::RTLD_NEXT, c"fcntl".as_ptr()) };
        PTR.store(ptr, Ordering::Relaxed);
    }
    if ptr.is_null() {
        return fail_errno(libc::ENOSYS);
    }
    let real: unsafe extern "C" fn(c_int, c_int, ...) -> c_int = unsafe { std::mem::transmute(ptr) };
    unsafe { real(fd, cmd, arg) }
}

real_fns! {
    fn gethostbyname(name: *const c_char) -> *mut hostent, missing = null_mut();
    fn gethostbyname2(name: *const c_char, family: c_int) -> *mut hostent, missing = null_mut();
    fn gethostbyname_r(name: *const c_char, ret: *mut hostent, buf: *mut c_char, buflen: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int, missing = libc::ENOSYS;
    fn gethostbyname2_r(name: *const c_char, family: c_int, ret: *mut hostent, buf: *mut c_char, buflen: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int, missing = libc::ENOSYS;
}
