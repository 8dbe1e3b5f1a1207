//! What an app is: the [`App`] trait, the [`Request`] it is given (already
//! split into SCRIPT_NAME and PATH_INFO for its mount, with a streaming
//! body) and the [`Response`] it returns (whose body may stream too), and
//! the helpers every app shares.

use std::io::{self, Read};
use std::os::fd::RawFd;
use std::path::Path;

/// A request as an app sees it.
pub struct Request<'a> {
    /// The method as received (`GET`).
    pub method: String,
    /// The route's scheme, `http` or `https`.
    pub scheme: &'static str,
    /// The host name (or address literal) the client connected to.
    pub host: String,
    /// The port the client connected to.
    pub port: u16,
    /// The request target as received (`/api/x?y=1`).
    pub target: String,
    /// The route's mount point (its path prefix), empty for the root.
    pub script_name: String,
    /// The rest of the path below the mount, percent-decoded.
    pub path_info: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The request body: reads end where the body ends.
    pub body: &'a mut (dyn Read + Send),
    /// The client's socket, so an app that waits can notice a client that
    /// went away; None for a request not read from a socket.
    pub client: Option<RawFd>,
    /// Who in this process opened the connection, when the client is
    /// this process; apps that run in the client's own runtime (Python)
    /// raise their errors there.
    pub opener: Option<Opener>,
}

/// The thread that opened a connection (its `pthread_t`) and the client's
/// fd number, both in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opener {
    /// The opening thread's `pthread_t`, as a number.
    pub thread: u64,
    /// The client's end of the connection, an fd of this process.
    pub fd: i32,
}

impl Request<'_> {
    /// The value of the first header named `name` (any case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The target's path and query, also when it came in absolute form
    /// (`http://host/p?q`, from a client that takes us for a proxy).
    pub fn path_and_query(&self) -> String {
        crate::url::origin_form(&self.target).into_owned()
    }
}

/// A query string's parameters, percent-decoded (`+` is a space), in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or((decode(p), String::new()), |(k, v)| (decode(k), decode(v))))
        .collect()
}

/// Waits up to `limit` for `fd` to have bytes to read, giving up early if
/// the client's socket `client` hangs up (closed, not merely half-closed).
pub fn wait_readable(fd: RawFd, client: Option<RawFd>, limit: std::time::Duration) -> Wait {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Wait::TimedOut;
        }
        let mut fds = [
            libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
            // No events asked: only a hang-up (or an error) is reported.
            libc::pollfd { fd: client.unwrap_or(-1), events: 0, revents: 0 },
        ];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: polls two valid pollfds (a negative fd is ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Wait::Ready; // let the read itself report the problem
        }
        if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Wait::ClientGone;
        }
        if fds[0].revents != 0 {
            return Wait::Ready;
        }
    }
}

/// What [`wait_readable`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// The fd has bytes to read (or the wait failed, and the read will say why).
    Ready,
    /// The limit passed with nothing to read.
    TimedOut,
    /// The client hung up first.
    ClientGone,
}

/// A response body: fixed bytes, or a stream with or without a known length.
pub enum Body {
    /// These bytes, all in hand.
    Bytes(Vec<u8>),
    /// Bytes read from a reader as they are sent.
    Stream {
        /// Where the body's bytes come from.
        reader: Box<dyn Read + Send>,
        /// The body's length, when known beforehand (sent as Content-Length).
        len: Option<u64>,
    },
    /// Not an HTTP response at all (a stub's fault): these bytes as they
    /// are, then the connection closes.
    Raw(Vec<u8>),
    /// No answer: the connection is reset (the client reads ECONNRESET).
    Reset,
    /// After a 101 (Switching Protocols) head, the connection is the
    /// app's: this gets it, bytes both ways, and the connection closes when
    /// it returns. HTTP/1.1 only.
    Upgrade(Upgraded),
}

/// What takes an upgraded connection over.
pub type Upgraded = Box<dyn FnOnce(&mut dyn Duplex) + Send>;

/// A connection's two directions, as an upgraded app gets them.
pub trait Duplex: Read + io::Write {}
impl<T: Read + io::Write + ?Sized> Duplex for T {}

/// No bytes.
impl Default for Body {
    fn default() -> Body {
        Body::Bytes(Vec::new())
    }
}

/// An app's answer to one request.
#[derive(Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase, when not the standard one for the status.
    pub reason: Option<String>,
    /// Headers to send, in order (the dispatcher sets Content-Length,
    /// Transfer-Encoding, Connection and Date itself).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// Fields the app adds to the request's journal line (which stub
    /// answered, say).
    pub journal: Vec<(&'static str, serde_json::Value)>,
}

impl Response {
    /// A response with `status`, a Content-Type header and `body` in hand.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body.into()),
            ..Default::default()
        }
    }

    /// A short plain-text answer from the dispatcher itself (404, 500, …).
    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{text}\n"))
    }
}

/// Something that answers requests. Shared by every connection of a route,
/// so it must be thread-safe.
pub trait App: Send + Sync {
    /// Answers one request.
    fn call(&self, req: &mut Request<'_>) -> Response;

    /// True when the app answers from memory, with no I/O beyond reading a
    /// request body already received and no waiting: such apps may be
    /// called inside the client's own write, or on the shared event
    /// thread, instead of on a thread of their own.
    fn answers_from_memory(&self) -> bool {
        false
    }

    /// False when the app never looks at a request's body (`static:`): an
    /// HTTP/2 stream's body is then discarded as it arrives, not gathered.
    fn reads_body(&self) -> bool {
        true
    }
}

/// A content type from a file name's extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "text" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "xml" => "application/xml",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "gz" => "application/gzip",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Drains a reader without keeping it (used when an app ignored the body).
pub fn discard(reader: &mut dyn Read) -> io::Result<u64> {
    io::copy(reader, &mut io::sink())
}
