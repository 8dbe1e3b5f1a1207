//! The runtime API of `include/intercept.h`, exported with C linkage: add a
//! route from a URL and an app spec, add a route served by a create
//! function's app, remove the routes of a host and port, and, inside an
//! app's handler, the thread that opened the connection. Usable from C,
//! Rust, and Python through ctypes, in a process started under the shim.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use core_lib::apps::dylib::{Native, Source};
use core_lib::config::{
    self,
    route::{self, HostPattern, RouteUrl},
};
use core_lib::routing::RouteApp;
use core_lib::{apps, log_info};
use intercept_app::abi;

use crate::state;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn remember(message: &str) {
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(message.replace('\0', "")).unwrap_or_default());
}

/// Runs an API call: Err(message) becomes -1 and intercept_last_error().
fn api(call: impl FnOnce() -> Result<c_int, String>) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| Err("internal error".into()));
    match outcome {
        Ok(n) => {
            remember("");
            n
        }
        Err(message) => {
            remember(&message);
            -1
        }
    }
}

fn text(p: *const c_char, what: &str) -> Result<String, String> {
    if p.is_null() {
        return Err(format!("{what} is NULL"));
    }
    // SAFETY: a NUL-terminated string from the caller.
    unsafe { CStr::from_ptr(p) }.to_str().map(str::to_string).map_err(|_| format!("{what} is not UTF-8"))
}

fn next_name() -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    format!("API_{}", COUNT.fetch_add(1, Ordering::Relaxed) + 1)
}

fn add(url: &RouteUrl, app: RouteApp) -> Result<c_int, String> {
    let router = state::router().ok_or("libintercept.so did not load its configuration")?;
    let name = next_name();
    router.add(&name, url, app)?;
    state::activate();
    bypass_proxies(&url.host);
    log_info!("route {name} added: {url}");
    Ok(0)
}

/// Adds the host to `NO_PROXY` and `no_proxy`, keeping what they hold, so
/// a client told to use a proxy still reaches the new route.
fn bypass_proxies(host: &HostPattern) {
    let user: Vec<String> = ["NO_PROXY", "no_proxy"].iter().filter_map(|k| std::env::var(k).ok()).collect();
    let Ok(value) = CString::new(config::no_proxy(user.iter().map(String::as_str), [host])) else { return };
    for key in [c"NO_PROXY", c"no_proxy"] {
        // SAFETY: valid C strings; called by the program itself, from the
        // thread adding the route, as it would call setenv.
        unsafe { libc::setenv(key.as_ptr(), value.as_ptr(), 1) };
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn intercept_add_route(url: *const c_char, app: *const c_char) -> c_int {
    api(|| {
        let url = route::parse_url(text(url, "url")?.trim())?;
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        let spec = apps::parse_spec(text(app, "app")?.trim(), &cwd)?;
        add(&url, RouteApp::Spec(spec))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn intercept_add_app(url: *const c_char, create: Option<abi::CreateFn>) -> c_int {
    api(|| {
        let url = route::parse_url(text(url, "url")?.trim())?;
        let create = create.ok_or("create is NULL")?;
        add(&url, RouteApp::App(Arc::new(Native::new(Source::Create(create)))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn intercept_remove_routes(host: *const c_char, port: u16) -> c_int {
    api(|| {
        let host = text(host, "host")?;
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
        let pattern = route::parse_url(&format!("http://{host}:{port}"))?.host;
        let removed = state::router().map_or(0, |r| r.remove(&pattern, port));
        log_info!("{removed} route(s) removed from {host}:{port}");
        Ok(removed as c_int)
    })
}

/// Inside an app's handler: the `pthread_t` of the thread of this process
/// that opened the connection being answered, and the client's fd in
/// `*fd` (when not NULL); 0 and -1 when there is none.
#[unsafe(no_mangle)]
pub extern "C" fn intercept_request_opener(fd: *mut c_int) -> u64 {
    let opener = core_lib::apps::dylib::current_opener();
    if !fd.is_null() {
        // SAFETY: the caller passes NULL or a pointer to an int.
        unsafe { *fd = opener.map_or(-1, |o| o.fd) };
    }
    opener.map_or(0, |o| o.thread)
}

#[unsafe(no_mangle)]
pub extern "C" fn intercept_last_error() -> *const c_char {
    // The pointer stays valid until this thread's next API call.
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// 1 when this library's hooks are the ones the process calls: it was
/// preloaded, not merely opened with dlopen.
#[unsafe(no_mangle)]
pub extern "C" fn intercept_is_preloaded() -> c_int {
    // SAFETY: dlsym with a static name.
    let first = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"connect".as_ptr()) };
    let ours = crate::hooks::table::connect as *const () as *mut libc::c_void;
    c_int::from(first == ours)
}
