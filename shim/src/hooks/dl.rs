//! `dlopen` and `dlmopen` without `RTLD_DEEPBIND`.
//!
//! A library opened with `RTLD_DEEPBIND` (PHP loads its extensions so)
//! binds its own dependencies' symbols before the global scope, so libcurl
//! inside PHP's curl extension would call libc's `connect` and
//! `getaddrinfo` directly, past our hooks, and even past
//! `INTERCEPT_PASSTHROUGH=deny`. These two hooks clear the flag and pass
//! the call on.
//!
//! They are the one exception to "each export is a one-line `guarded`
//! call": `dlopen` looks at its caller's return address to know which
//! object asked (for `$ORIGIN` and the caller's RUNPATH), so a hook that
//! called the real function from a frame of its own would make every
//! `dlopen` look as if libintercept.so had asked. On x86-64 the hooks are
//! therefore trampolines: clear one bit of the mode argument, then jump to
//! the real function with the caller's frame untouched. Nothing in them
//! can panic. Elsewhere they are absent, and `dlopen` is libc's own.

#[cfg(target_arch = "x86_64")]
mod trampolines {
    use std::ffi::{c_char, c_int, c_void};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The real functions, looked up on first use (or by `resolve`).
    static REAL_DLOPEN: AtomicUsize = AtomicUsize::new(0);
    static REAL_DLMOPEN: AtomicUsize = AtomicUsize::new(0);

    /// What a missing real function becomes: a failed open.
    extern "C" fn missing() -> *mut c_void {
        std::ptr::null_mut()
    }

    fn lookup(slot: &AtomicUsize, name: &std::ffi::CStr) -> usize {
        // SAFETY: dlsym with a NUL-terminated name.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
        let found = if found.is_null() || crate::real::is_ours(found) { missing as *const () as usize } else { found as usize };
        slot.store(found, Ordering::Relaxed);
        found
    }

    extern "C" fn resolve_dlopen() -> usize {
        lookup(&REAL_DLOPEN, c"dlopen")
    }

    extern "C" fn resolve_dlmopen() -> usize {
        lookup(&REAL_DLMOPEN, c"dlmopen")
    }

    /// Looks both up now (at load, and before a fork).
    pub fn resolve() {
        resolve_dlopen();
        resolve_dlmopen();
    }

    /// A trampoline: look the real function up on first use (keeping the
    /// argument registers; three pushes keep the stack 16-byte aligned for
    /// the call), clear `RTLD_DEEPBIND` in the mode register, jump.
    macro_rules! trampoline {
        ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*), $real:ident, $resolve:ident, $mode:literal) => {
            $(#[$doc])*
            #[unsafe(no_mangle)]
            #[unsafe(naked)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> *mut c_void {
                std::arch::naked_asm!(
                    "mov rax, qword ptr [rip + {real}]",
                    "test rax, rax",
                    "jnz 2f",
                    "push rdi",
                    "push rsi",
                    "push rdx",
                    "call {resolve}",
                    "pop rdx",
                    "pop rsi",
                    "pop rdi",
                    "2:",
                    concat!("and ", $mode, ", {keep}"),
                    "jmp rax",
                    real = sym $real,
                    resolve = sym $resolve,
                    keep = const !libc::RTLD_DEEPBIND,
                )
            }
        };
    }

    trampoline!(
        /// `dlopen(file, mode)`: mode is the second argument (esi).
        fn dlopen(_file: *const c_char, _mode: c_int), REAL_DLOPEN, resolve_dlopen, "esi"
    );
    trampoline!(
        /// `dlmopen(lmid, file, mode)`: mode is the third argument (edx).
        fn dlmopen(_lmid: libc::Lmid_t, _file: *const c_char, _mode: c_int), REAL_DLMOPEN, resolve_dlmopen, "edx"
    );
}

#[cfg(target_arch = "x86_64")]
pub use trampolines::resolve;

#[cfg(not(target_arch = "x86_64"))]
pub fn resolve() {}
