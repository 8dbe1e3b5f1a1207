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
//! absolute path under `/etc` or `/usr` opened to read a file (not a
//! directory), a comparison of its first bytes.
//! Should our file be missing, the original path is opened.

use std::ffi::{CStr, c_char};

use core_lib::serve::trust::{self, Redirect};
use libc::c_int;

use crate::state;

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
pub(super) unsafe fn served(path: *const c_char, flags: c_int, open_it: impl Fn(*const c_char) -> c_int) -> c_int {
    // A trust file is read as a file: a directory's open (`opendir`, a
    // tree walk's thousands) is never one, and skips the path's look.
    let reading = flags & (libc::O_ACCMODE | libc::O_CREAT | libc::O_DIRECTORY) == libc::O_RDONLY;
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
pub(super) unsafe fn served_stream(
    path: *const c_char,
    mode: *const c_char,
    open_it: impl Fn(*const c_char) -> *mut libc::FILE,
) -> *mut libc::FILE {
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
