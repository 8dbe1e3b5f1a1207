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
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        let found = if found == 0 { missing as *const () as usize } else { found };
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

    /// `dlopen(file, mode)`: mode is the second argument (esi).
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn dlopen(_file: *const c_char, _mode: c_int) -> *mut c_void {
        std::arch::naked_asm!(
            "mov rax, qword ptr [rip + {real}]",
            "test rax, rax",
            "jnz 2f",
            // First use: look the real function up, keeping the arguments
            // (three pushes keep the stack 16-byte aligned for the call).
            "push rdi",
            "push rsi",
            "push rdx",
            "call {resolve}",
            "pop rdx",
            "pop rsi",
            "pop rdi",
            "2:",
            "and esi, {keep}",
            "jmp rax",
            real = sym REAL_DLOPEN,
            resolve = sym resolve_dlopen,
            keep = const !libc::RTLD_DEEPBIND,
        )
    }

    /// `dlmopen(lmid, file, mode)`: mode is the third argument (edx).
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn dlmopen(_lmid: libc::Lmid_t, _file: *const c_char, _mode: c_int) -> *mut c_void {
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
            "and edx, {keep}",
            "jmp rax",
            real = sym REAL_DLMOPEN,
            resolve = sym resolve_dlmopen,
            keep = const !libc::RTLD_DEEPBIND,
        )
    }
}

#[cfg(target_arch = "x86_64")]
pub use trampolines::resolve;

#[cfg(not(target_arch = "x86_64"))]
pub fn resolve() {}
