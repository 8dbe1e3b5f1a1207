//! Opens of the system's trust files: a client that reads its trusted CAs
//! from a fixed path (libcurl's and GnuTLS's compiled-in bundle, Perl LWP's,
//! Java's `cacerts`, the `certifi` bundle pycurl uses) gets the trust bundle
//! or truststore `intercept run` wrote, which holds the same system CAs plus
//! the intercept CA, so https routes verify with no flag while real hosts
//! verify as before.
//!
//! Only reads are served so, only to a process that can be verifying a
//! peer (one with a TLS library or a JVM loaded: [`tls_reader`]), and only
//! when `intercept run` named the files (`INTERCEPT_TRUST_BUNDLE`); any other open costs one load and, for an
//! absolute path under `/etc` or `/usr`, a comparison of its first bytes.
//! Should our file be missing, the original path is opened.

use std::ffi::{CStr, c_char};

use core_lib::serve::trust::{self, Redirect};
use libc::{c_int, c_uint};

use super::guarded;
use crate::{real, state};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded("open", || unsafe { real::open(path, flags, mode) }, || unsafe { served(path, flags, |p| real::open(p, flags, mode)) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded("open64", || unsafe { real::open64(path, flags, mode) }, || unsafe { served(path, flags, |p| real::open64(p, flags, mode)) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "openat",
        || unsafe { real::openat(dir, path, flags, mode) },
        || unsafe { served(path, flags, |p| real::openat(dir, p, flags, mode)) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat64(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "openat64",
        || unsafe { real::openat64(dir, path, flags, mode) },
        || unsafe { served(path, flags, |p| real::openat64(dir, p, flags, mode)) },
    )
}

/// What `open` becomes in a program built with `_FORTIFY_SOURCE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded("__open_2", || unsafe { real::__open_2(path, flags) }, || unsafe { served(path, flags, |p| real::__open_2(p, flags)) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded("__open64_2", || unsafe { real::__open64_2(path, flags) }, || unsafe { served(path, flags, |p| real::__open64_2(p, flags)) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "__openat_2",
        || unsafe { real::__openat_2(dir, path, flags) },
        || unsafe { served(path, flags, |p| real::__openat_2(dir, p, flags)) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat64_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    guarded(
        "__openat64_2",
        || unsafe { real::__openat64_2(dir, path, flags) },
        || unsafe { served(path, flags, |p| real::__openat64_2(dir, p, flags)) },
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: the caller's arguments, passed on.
    guarded("fopen", || unsafe { real::fopen(path, mode) }, || unsafe { served_stream(path, mode, |p| real::fopen(p, mode)) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: the caller's arguments, passed on.
    guarded("fopen64", || unsafe { real::fopen64(path, mode) }, || unsafe { served_stream(path, mode, |p| real::fopen64(p, mode)) })
}

/// The file to open instead of `path`, if it is a trust file read from a
/// fixed place and `intercept run` wrote ours.
///
/// # Safety
/// `path` must be null or a C string.
unsafe fn instead(path: *const c_char, reading: bool) -> Option<*const c_char> {
    let (bundle, truststore) = state::trust()?;
    if !reading || path.is_null() {
        return None;
    }
    // SAFETY: a C string from the caller.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    let ours = match trust::redirect(bytes)? {
        Redirect::Bundle => bundle.as_ptr(),
        Redirect::Truststore => truststore.as_ptr(),
    };
    tls_reader().then_some(ours)
}

/// Whether this process can be reading a trust file to verify a peer: it
/// has a TLS library or a JVM loaded ([`trust::verifies_peers`]), or
/// exports OpenSSL itself (Node). Anything else that opens the system
/// bundle (`sed -i`, `cp`, `tee -a`, `grep`) gets the real file, so an
/// edit never writes ours into it. Asked only when a trust file is opened.
fn tls_reader() -> bool {
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _: libc::size_t, found: *mut libc::c_void) -> c_int {
        // SAFETY: the loader's entry for one loaded object, and our bool.
        unsafe {
            let name = (*info).dlpi_name;
            if !name.is_null() && trust::verifies_peers(CStr::from_ptr(name).to_bytes()) {
                *found.cast::<bool>() = true;
                return 1;
            }
        }
        0
    }
    let mut found = false;
    // SAFETY: walks the loaded objects with a callback that only reads
    // their names and writes our bool.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut found).cast()) };
    // SAFETY: dlsym with a NUL-terminated name.
    found || !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"SSL_CTX_new".as_ptr()) }.is_null()
}

/// Opens `path` with `open_it`, or our trust file in its place.
///
/// # Safety
/// As for `open`.
unsafe fn served(path: *const c_char, flags: c_int, open_it: impl Fn(*const c_char) -> c_int) -> c_int {
    let reading = flags & (libc::O_ACCMODE | libc::O_CREAT) == libc::O_RDONLY;
    // SAFETY: the caller's path.
    match unsafe { instead(path, reading) } {
        Some(ours) => match open_it(ours) {
            fd if fd >= 0 => fd,
            _ => open_it(path),
        },
        None => open_it(path),
    }
}

/// [`served`] for `fopen`: reading is a mode of `r` without `+`.
///
/// # Safety
/// As for `fopen`.
unsafe fn served_stream(path: *const c_char, mode: *const c_char, open_it: impl Fn(*const c_char) -> *mut libc::FILE) -> *mut libc::FILE {
    let reading = !mode.is_null() && {
        // SAFETY: a C string from the caller, not null.
        let mode = unsafe { CStr::from_ptr(mode) }.to_bytes();
        mode.first() == Some(&b'r') && !mode.contains(&b'+')
    };
    // SAFETY: the caller's path.
    match unsafe { instead(path, reading) } {
        Some(ours) => match open_it(ours) {
            file if !file.is_null() => file,
            _ => open_it(path),
        },
        None => open_it(path),
    }
}
