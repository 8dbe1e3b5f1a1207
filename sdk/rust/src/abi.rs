//! The C ABI of `include/intercept.h`, field for field.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// `INTERCEPT_ABI_VERSION`: the ABI version an app sets in [`intercept_app::abi_version`].
pub const ABI_VERSION: u32 = 1;

/// One request header, a name and a value.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct intercept_header {
    /// The header's name, NUL-terminated.
    pub name: *const c_char,
    /// The header's value, NUL-terminated.
    pub value: *const c_char,
}

/// Reads up to `len` body bytes into `buf`: returns the count, 0 at the end of the
/// body, -1 on error (the client went away, or sent a malformed body).
pub type ReadBodyFn = unsafe extern "C" fn(body: *mut c_void, buf: *mut u8, len: usize) -> isize;

/// One request. Every string is NUL-terminated and valid during the call.
#[repr(C)]
pub struct intercept_request {
    /// The method, `"GET"`.
    pub method: *const c_char,
    /// `"http"` or `"https"`.
    pub scheme: *const c_char,
    /// The name the client connected to.
    pub host: *const c_char,
    /// The port the client connected to.
    pub port: u16,
    /// The request target as received, `"/api/x?y=1"`.
    pub target: *const c_char,
    /// The route's mount point, `""` for the root.
    pub script_name: *const c_char,
    /// The rest of the path, percent-decoded.
    pub path_info: *const c_char,
    /// The raw query string, without `'?'`.
    pub query: *const c_char,
    /// The headers, in the order received.
    pub headers: *const intercept_header,
    /// How many entries `headers` points to.
    pub header_count: usize,
    /// Reads the request body; called with `body`.
    pub read_body: ReadBodyFn,
    /// The dispatcher's handle on the body, passed back to `read_body`.
    pub body: *mut c_void,
}

/// The response being built. Status (default 200) and headers must be set
/// before the first write; Content-Length and framing are the dispatcher's.
#[repr(C)]
pub struct intercept_response {
    /// The dispatcher's context, passed back to each callback.
    pub ctx: *mut c_void,
    /// Sets the status: returns 0, or -1.
    pub set_status: unsafe extern "C" fn(ctx: *mut c_void, status: u16) -> c_int,
    /// Adds a header: returns 0, or -1.
    pub add_header: unsafe extern "C" fn(ctx: *mut c_void, name: *const c_char, value: *const c_char) -> c_int,
    /// Writes `len` body bytes from `buf`: returns 0, or -1.
    pub write: unsafe extern "C" fn(ctx: *mut c_void, buf: *const u8, len: usize) -> c_int,
}

/// Answers one request: 0, or nonzero for a 500 (when nothing was written
/// yet; otherwise the connection is cut).
pub type HandleFn = unsafe extern "C" fn(state: *mut c_void, req: *const intercept_request, resp: *const intercept_response) -> c_int;

/// A native app, filled in by its create function.
#[repr(C)]
pub struct intercept_app {
    /// Set to [`ABI_VERSION`].
    pub abi_version: u32,
    /// Passed back to `handle` and `destroy`.
    pub state: *mut c_void,
    /// Answers one request: 0, or nonzero for a 500 (when nothing was
    /// written yet; otherwise the connection is cut).
    pub handle: Option<HandleFn>,
    /// Called when the route is removed and no request is running; may be `None`.
    pub destroy: Option<unsafe extern "C" fn(state: *mut c_void)>,
}

/// `intercept_app_create_fn`: fills `*app`; returns 0, or nonzero if the app cannot
/// start (every request to the route then gets 500). Called once, on the route's
/// first request.
pub type CreateFn = unsafe extern "C" fn(app: *mut intercept_app) -> c_int;
