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

use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};

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
