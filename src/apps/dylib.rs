//! Native apps behind the stable C ABI (`include/intercept.h`):
//! `dylib:PATH[#SYMBOL]` routes, loaded with libloading the first time the
//! route is used, and apps added at run time with a create function (the
//! seed's `app_create_fn`). Either way the create function runs once, on
//! first use, and the library stays loaded while any request holds its
//! route.
//!
//! The response is collected from the handler's callbacks: up to 256 KiB in
//! memory, the rest in an unlinked temporary file, so a large body is never
//! held in memory whole.

use std::ffi::{CString, c_char, c_int, c_void};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use intercept_app::abi;

use crate::apps::app::{App, Body, Opener, Request, Response};
use crate::log_error;

/// The create function's symbol when `dylib:PATH` names none.
pub const DEFAULT_SYMBOL: &str = "intercept_app_create";
const IN_MEMORY: usize = 256 * 1024;

/// A `dylib:PATH[#SYMBOL]` route's library and create function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DylibSpec {
    /// The shared library, resolved against the env file's directory.
    pub path: PathBuf,
    /// The create function's symbol, [`DEFAULT_SYMBOL`] unless `#SYMBOL` is given.
    pub symbol: String,
}

/// Parses what follows `dylib:`.
pub fn parse(arg: &str, base: &Path) -> Result<DylibSpec, String> {
    let (path, symbol) = arg.trim().split_once('#').unwrap_or((arg.trim(), DEFAULT_SYMBOL));
    if path.is_empty() || symbol.is_empty() {
        return Err("expected dylib:PATH[#SYMBOL]".into());
    }
    let path = base.join(path);
    if !path.is_file() {
        return Err(format!("dylib:{arg}: no library at {}", path.display()));
    }
    Ok(DylibSpec { path, symbol: symbol.to_string() })
}

/// Where a native app comes from.
pub enum Source {
    /// A shared library named by a `dylib:` route, loaded on first use.
    Dylib(DylibSpec),
    /// A create function given at run time (`intercept_add_app`).
    Create(abi::CreateFn),
}

/// A native app: created on its first request, then its handler answers every request.
pub struct Native {
    source: Source,
    loaded: OnceLock<Result<Loaded, String>>,
}

impl Native {
    /// An app from `source`, not loaded or created until its first request.
    pub fn new(source: Source) -> Native {
        Native { source, loaded: OnceLock::new() }
    }

    fn load(&self) -> Result<Loaded, String> {
        let (library, create) = match &self.source {
            Source::Create(create) => (None, *create),
            Source::Dylib(spec) => {
                let shown = spec.path.display();
                // SAFETY: loading a library runs its initialisers; naming it
                // in a route is the user's consent to that.
                let library = unsafe { libloading::Library::new(&spec.path) }.map_err(|e| format!("cannot load {shown}: {e}"))?;
                // SAFETY: the symbol is declared as intercept_app_create_fn.
                let create = unsafe { library.get::<abi::CreateFn>(spec.symbol.as_bytes()) }
                    .map(|f| *f)
                    .map_err(|e| format!("{shown} has no `{}`: {e}", spec.symbol))?;
                (Some(library), create)
            }
        };
        let mut app = abi::intercept_app { abi_version: 0, state: std::ptr::null_mut(), handle: None, destroy: None };
        // SAFETY: the create function fills the struct we pass.
        let rc = unsafe { create(&mut app) };
        if rc != 0 {
            return Err(format!("the app's create function failed ({rc})"));
        }
        if app.abi_version != abi::ABI_VERSION || app.handle.is_none() {
            return Err(format!("the app speaks ABI version {} without a handler; this is version {}", app.abi_version, abi::ABI_VERSION));
        }
        Ok(Loaded { app, _library: library })
    }
}

/// A created app and the library its code lives in.
struct Loaded {
    app: abi::intercept_app,
    _library: Option<libloading::Library>,
}

// SAFETY: the ABI requires handlers to be thread-safe; the state pointer is
// only ever passed back to the app's own functions.
unsafe impl Send for Loaded {}
// SAFETY: as for Send.
unsafe impl Sync for Loaded {}

impl Drop for Loaded {
    fn drop(&mut self) {
        if let Some(destroy) = self.app.destroy {
            // SAFETY: called once, after the last request (we are dropped).
            unsafe { destroy(self.app.state) };
        }
    }
}

impl App for Native {
    fn call(&self, req: &mut Request<'_>) -> Response {
        match self.loaded.get_or_init(|| self.load()) {
            Ok(loaded) => loaded.handle(req),
            Err(e) => {
                log_error!("native app: {e}");
                Response::text(500, e)
            }
        }
    }
}

fn c(text: &str) -> CString {
    CString::new(text.replace('\0', "")).expect("NULs removed")
}

impl Loaded {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let strings = [&req.method, req.scheme, &req.host, &req.target, &req.script_name, &req.path_info, &req.query].map(c);
        let header_strings: Vec<(CString, CString)> = req.headers.iter().map(|(n, v)| (c(n), c(v))).collect();
        let headers: Vec<abi::intercept_header> =
            header_strings.iter().map(|(n, v)| abi::intercept_header { name: n.as_ptr(), value: v.as_ptr() }).collect();
        let mut body: &mut (dyn Read + Send) = &mut *req.body;
        let raw = abi::intercept_request {
            method: strings[0].as_ptr(),
            scheme: strings[1].as_ptr(),
            host: strings[2].as_ptr(),
            port: req.port,
            target: strings[3].as_ptr(),
            script_name: strings[4].as_ptr(),
            path_info: strings[5].as_ptr(),
            query: strings[6].as_ptr(),
            headers: headers.as_ptr(),
            header_count: headers.len(),
            read_body,
            body: (&raw mut body).cast(),
        };
        let mut sink = Sink { status: 200, headers: Vec::new(), memory: Vec::new(), spill: None, written: 0, failed: false };
        let out = abi::intercept_response { ctx: (&raw mut sink).cast(), set_status, add_header, write: write_body };
        let handle = self.app.handle.expect("checked at load");
        let before = OPENER.replace(req.opener);
        // SAFETY: pointers valid for the call; the app was created by its own create function.
        let rc = unsafe { handle(self.app.state, &raw, &out) };
        OPENER.set(before);
        if rc != 0 || sink.failed {
            return Response::text(500, if rc != 0 { "the app failed" } else { "the app's response could not be kept" });
        }
        sink.into_response()
    }
}

thread_local! {
    /// The opener of the connection whose request this thread's app is
    /// handling now.
    static OPENER: std::cell::Cell<Option<Opener>> = const { std::cell::Cell::new(None) };
}

/// For an app inside its handler: who in this process opened the
/// connection being answered; None when the client is not this process
/// or no request is being handled on this thread.
pub fn current_opener() -> Option<Opener> {
    OPENER.get()
}

unsafe extern "C" fn read_body(body: *mut c_void, buf: *mut u8, len: usize) -> isize {
    // SAFETY: body is the `&mut dyn Read` handle() made; buf holds len bytes.
    let (reader, out) = unsafe { (&mut *body.cast::<&mut (dyn Read + Send)>(), std::slice::from_raw_parts_mut(buf, len)) };
    loop {
        match reader.read(out) {
            Ok(n) => return n as isize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return -1,
        }
    }
}

/// What the handler has answered so far.
struct Sink {
    status: u16,
    headers: Vec<(String, String)>,
    memory: Vec<u8>,
    spill: Option<File>,
    written: u64,
    failed: bool,
}

fn sink<'a>(ctx: *mut c_void) -> &'a mut Sink {
    // SAFETY: ctx is the Sink handle() passed, alive during the call.
    unsafe { &mut *ctx.cast::<Sink>() }
}

unsafe extern "C" fn set_status(ctx: *mut c_void, status: u16) -> c_int {
    let s = sink(ctx);
    if s.written > 0 || !(100..=599).contains(&status) {
        return -1;
    }
    s.status = status;
    0
}

unsafe extern "C" fn add_header(ctx: *mut c_void, name: *const c_char, value: *const c_char) -> c_int {
    let s = sink(ctx);
    if s.written > 0 || name.is_null() || value.is_null() {
        return -1;
    }
    // SAFETY: NUL-terminated strings from the app.
    let (name, value) = unsafe { (std::ffi::CStr::from_ptr(name), std::ffi::CStr::from_ptr(value)) };
    s.headers.push((name.to_string_lossy().into_owned(), value.to_string_lossy().into_owned()));
    0
}

unsafe extern "C" fn write_body(ctx: *mut c_void, buf: *const u8, len: usize) -> c_int {
    let s = sink(ctx);
    if len == 0 {
        return 0;
    }
    if buf.is_null() {
        return -1;
    }
    // SAFETY: buf holds len bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf, len) };
    s.written += len as u64;
    if s.spill.is_none() && s.memory.len() + len <= IN_MEMORY {
        s.memory.extend_from_slice(bytes);
        return 0;
    }
    if s.spill.is_none() {
        match spill_file() {
            Ok(f) => s.spill = Some(f),
            Err(e) => {
                log_error!("native app: cannot spill a large response to a temporary file: {e}");
                s.failed = true;
                return -1;
            }
        }
    }
    match s.spill.as_mut().map(|f| f.write_all(bytes)) {
        Some(Ok(())) => 0,
        _ => {
            s.failed = true;
            -1
        }
    }
}

/// An unlinked temporary file: gone as soon as it is closed.
fn spill_file() -> io::Result<File> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(".intercept-body-{}-{n}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

impl Sink {
    fn into_response(self) -> Response {
        let Sink { status, headers, memory, spill, written, .. } = self;
        let body = match spill {
            None => Body::Bytes(memory),
            Some(mut file) => match file.seek(SeekFrom::Start(0)) {
                Ok(_) => Body::Stream { reader: Box::new(io::Cursor::new(memory).chain(file)), len: Some(written) },
                Err(e) => return Response::text(500, &format!("cannot read back the response: {e}")),
            },
        };
        Response { status, headers, body, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn handle(_: *mut c_void, req: *const abi::intercept_request, resp: *const abi::intercept_response) -> c_int {
        // SAFETY: the dispatcher passes valid request and response tables.
        let (req, resp) = unsafe { (&*req, &*resp) };
        // SAFETY: path_info is a NUL-terminated string the dispatcher owns.
        let path = unsafe { std::ffi::CStr::from_ptr(req.path_info) }.to_str().unwrap().to_string();
        let mut body = vec![0u8; 64];
        // SAFETY: reads into our buffer of the length given.
        let n = unsafe { (req.read_body)(req.body, body.as_mut_ptr(), body.len()) };
        body.truncate(n.max(0) as usize);
        // SAFETY: the response table's functions with its own context and
        // our NUL-terminated strings and buffers.
        unsafe {
            (resp.set_status)(resp.ctx, 201);
            (resp.add_header)(resp.ctx, c"X-Native".as_ptr(), c"yes".as_ptr());
            let text = format!("{path} {}", String::from_utf8_lossy(&body));
            (resp.write)(resp.ctx, text.as_ptr(), text.len());
            if path == "/big" {
                let chunk = vec![b'x'; 100_000];
                for _ in 0..10 {
                    (resp.write)(resp.ctx, chunk.as_ptr(), chunk.len());
                }
            }
        }
        0
    }

    unsafe extern "C" fn create(app: *mut abi::intercept_app) -> c_int {
        // SAFETY: the loader passes a valid app struct to fill in.
        unsafe {
            *app = abi::intercept_app { abi_version: abi::ABI_VERSION, state: std::ptr::null_mut(), handle: Some(handle), destroy: None }
        };
        0
    }

    fn call(path: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let native = Native::new(Source::Create(create));
        let mut reader: &[u8] = body;
        let mut req = Request {
            method: "POST".into(),
            scheme: "http",
            host: "n.test".into(),
            port: 80,
            target: path.into(),
            script_name: String::new(),
            path_info: path.into(),
            query: String::new(),
            headers: vec![],
            body: &mut reader,
            client: None,
            opener: None,
        };
        let r = native.call(&mut req);
        let bytes = match r.body {
            Body::Bytes(b) | Body::Raw(b) => b,
            Body::Reset | Body::Upgrade(_) => Vec::new(),
            Body::Stream { mut reader, len } => {
                let mut v = Vec::new();
                reader.read_to_end(&mut v).unwrap();
                assert_eq!(Some(v.len() as u64), len);
                v
            }
        };
        (r.status, r.headers, bytes)
    }

    #[test]
    fn a_native_app_answers_through_the_callbacks() {
        let (status, headers, body) = call("/p", b"in");
        assert_eq!((status, body.as_slice()), (201, &b"/p in"[..]));
        assert_eq!(headers, [("X-Native".to_string(), "yes".to_string())]);
    }

    #[test]
    fn large_answers_spill_to_a_file_and_come_back_whole() {
        let (_, _, body) = call("/big", b"");
        assert_eq!(body.len(), "/big ".len() + 1_000_000);
        assert!(body[5..].iter().all(|&b| b == b'x'));
    }

    #[test]
    fn specs() {
        assert!(parse("/no/such/lib.so", Path::new("/")).unwrap_err().contains("no library"));
        let spec = parse("/bin/sh#make_app", Path::new("/")).unwrap();
        assert_eq!(spec.symbol, "make_app");
    }
}
