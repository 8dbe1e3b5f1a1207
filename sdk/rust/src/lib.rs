//! Write an intercept native app in Rust.
//!
//! `abi` mirrors `include/intercept.h` (the stable C ABI). The rest is a safe
//! layer: implement a handler `fn(&mut Request) -> Response` and export it
//! with [`intercept_app!`]; a panic in the handler becomes a 500.
//!
//! ```no_run
//! fn hello(req: &mut intercept_app::Request) -> intercept_app::Response {
//!     intercept_app::Response::text(200, format!("hello from {}", req.path_info()))
//! }
//! intercept_app::intercept_app!(hello);
//! ```

pub mod abi;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io::{self, Read};

/// A request, borrowed from the dispatcher for the handler's call.
pub struct Request<'a> {
    raw: &'a abi::intercept_request,
}

fn text<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: the ABI promises NUL-terminated strings valid during the call.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

impl<'a> Request<'a> {
    /// # Safety
    /// `raw` must be a request passed to a handler, used only during it.
    pub unsafe fn from_raw(raw: &'a abi::intercept_request) -> Self {
        Request { raw }
    }
    /// The method, `GET`.
    pub fn method(&self) -> &str {
        text(self.raw.method)
    }
    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        text(self.raw.scheme)
    }
    /// The name the client connected to.
    pub fn host(&self) -> &str {
        text(self.raw.host)
    }
    /// The port the client connected to.
    pub fn port(&self) -> u16 {
        self.raw.port
    }
    /// The request target as received (`/api/x?y=1`).
    pub fn target(&self) -> &str {
        text(self.raw.target)
    }
    /// The route's mount point, empty for the root.
    pub fn script_name(&self) -> &str {
        text(self.raw.script_name)
    }
    /// The rest of the path after the mount point, percent-decoded.
    pub fn path_info(&self) -> &str {
        text(self.raw.path_info)
    }
    /// The raw query string, without the `?`.
    pub fn query(&self) -> &str {
        text(self.raw.query)
    }
    /// The headers as (name, value) pairs, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let all: &[abi::intercept_header] = if self.raw.header_count == 0 {
            &[]
        } else {
            // SAFETY: the ABI promises header_count valid entries.
            unsafe { std::slice::from_raw_parts(self.raw.headers, self.raw.header_count) }
        };
        all.iter().map(|h| (text(h.name), text(h.value)))
    }
    /// The value of the first header named `name` (any case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
}

impl Read for Request<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read_body with the body pointer the dispatcher gave.
        let n = unsafe { (self.raw.read_body)(self.raw.body, buf.as_mut_ptr(), buf.len()) };
        if n < 0 { Err(io::Error::other("the request body could not be read")) } else { Ok(n as usize) }
    }
}

/// A response to give back.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers as (name, value) pairs, sent in this order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain; charset=utf-8` response with `body`.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response { status, headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())], body: body.into().into_bytes() }
    }

    /// Sends this response through the dispatcher's callbacks.
    ///
    /// # Safety
    /// `out` must be the response passed to the handler.
    pub unsafe fn send(&self, out: &abi::intercept_response) -> c_int {
        // SAFETY: callbacks and context from the dispatcher.
        unsafe {
            if (out.set_status)(out.ctx, self.status) != 0 {
                return -1;
            }
            for (name, value) in &self.headers {
                let (Ok(n), Ok(v)) = (CString::new(name.as_str()), CString::new(value.as_str())) else { return -1 };
                if (out.add_header)(out.ctx, n.as_ptr(), v.as_ptr()) != 0 {
                    return -1;
                }
            }
            if !self.body.is_empty() && (out.write)(out.ctx, self.body.as_ptr(), self.body.len()) != 0 {
                return -1;
            }
        }
        0
    }
}

/// Runs a handler for the C ABI: a panic becomes a nonzero return (a 500).
///
/// # Safety
/// The pointers must be those the dispatcher passed to `handle`.
pub unsafe fn run_handler(
    handler: fn(&mut Request<'_>) -> Response,
    req: *const abi::intercept_request,
    resp: *const abi::intercept_response,
) -> c_int {
    let outcome = std::panic::catch_unwind(|| {
        // SAFETY: valid for the call, as the dispatcher promises.
        let (req, resp) = unsafe { (&*req, &*resp) };
        // SAFETY: as above.
        let mut request = unsafe { Request::from_raw(req) };
        let response = handler(&mut request);
        // SAFETY: as above.
        unsafe { response.send(resp) }
    });
    outcome.unwrap_or(1)
}

/// Fills the `intercept_app` a create function was given (used by
/// [`intercept_app!`]).
///
/// # Safety
/// `app` must be null or point to a writable `intercept_app`, as the
/// dispatcher's call of the create function promises.
#[doc(hidden)]
pub unsafe fn fill(app: *mut abi::intercept_app, handle: abi::HandleFn) -> c_int {
    if app.is_null() {
        return 1;
    }
    // SAFETY: not null, and writable by the caller's promise.
    unsafe {
        *app = abi::intercept_app {
            abi_version: abi::ABI_VERSION,
            state: std::ptr::null_mut::<c_void>(),
            handle: Some(handle),
            destroy: None,
        };
    }
    0
}

/// Exports `intercept_app_create` serving every request with `handler`.
#[macro_export]
macro_rules! intercept_app {
    ($handler:path) => {
        /// # Safety
        /// `app` must point to a writable `intercept_app` (the dispatcher's call).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn intercept_app_create(app: *mut $crate::abi::intercept_app) -> ::std::ffi::c_int {
            unsafe extern "C" fn handle(
                _state: *mut ::std::ffi::c_void,
                req: *const $crate::abi::intercept_request,
                resp: *const $crate::abi::intercept_response,
            ) -> ::std::ffi::c_int {
                // SAFETY: the dispatcher's own pointers, valid for the call.
                unsafe { $crate::run_handler($handler, req, resp) }
            }
            // SAFETY: the caller's promise, passed on.
            unsafe { $crate::fill(app, handle) }
        }
    };
}
