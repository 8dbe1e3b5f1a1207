//! Apps: what answers a request once the dispatcher has framed it.
//!
//! An [`App`] sees a [`Request`] (already split into SCRIPT_NAME and
//! PATH_INFO for its mount) with a streaming body, and returns a
//! [`Response`] whose body may stream too. App specs from the env file
//! (`echo`, `static:…`) are parsed here.

pub mod cgi;
pub mod dylib;
mod echo;
mod files;
mod fixed;
pub mod forward;
pub mod har;
pub mod origin;
pub mod stubs;
pub mod wsgi;

use std::io::{self, Read};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// A request as an app sees it.
pub struct Request<'a> {
    pub method: String,
    pub scheme: &'static str,
    /// The host name (or address literal) the client connected to.
    pub host: String,
    pub port: u16,
    /// The request target as received (`/api/x?y=1`).
    pub target: String,
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
    pub thread: u64,
    pub fd: i32,
}

impl Request<'_> {
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
    Ready,
    TimedOut,
    ClientGone,
}

/// A response body: fixed bytes, or a stream with or without a known length.
pub enum Body {
    Bytes(Vec<u8>),
    Stream {
        reader: Box<dyn Read + Send>,
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

#[derive(Default)]
pub struct Response {
    pub status: u16,
    /// The reason phrase, when not the standard one for the status.
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Fields the app adds to the request's journal line (which stub
    /// answered, say).
    pub journal: Vec<(&'static str, serde_json::Value)>,
}

impl Response {
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

/// A parsed app spec from a route value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSpec {
    Echo,
    Static {
        status: u16,
        body: StaticBody,
    },
    Cgi(cgi::CgiSpec),
    /// A canonical directory.
    Files(PathBuf),
    /// Not an HTTP app: the router hands the whole connection over
    /// (`forward:` or `tunnel:`).
    Forward(crate::apps::forward::Relay),
    Dylib(crate::apps::dylib::DylibSpec),
    Wsgi(wsgi::WsgiSpec),
    /// A directory of WireMock stub mappings.
    Stubs(PathBuf),
    /// A HAR file to replay (and record into).
    Har(har::HarSpec),
}

impl std::fmt::Display for AppSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppSpec::Echo => f.write_str("echo"),
            AppSpec::Static { status, body: StaticBody::Text(t) } if t.is_empty() => write!(f, "static:{status}"),
            AppSpec::Static { status, body: StaticBody::Text(t) } => write!(f, "static:{status} {t:?}"),
            AppSpec::Static { status, body: StaticBody::File(p) } => write!(f, "static:{status} @{}", p.display()),
            AppSpec::Files(dir) => write!(f, "files:{}", dir.display()),
            AppSpec::Stubs(dir) => write!(f, "stubs:{}", dir.display()),
            AppSpec::Har(h) => write!(f, "har:{} (record: {})", h.file.display(), h.mode.as_str()),
            AppSpec::Forward(relay) => write!(f, "{relay}"),
            AppSpec::Dylib(d) => write!(f, "dylib:{}#{}", d.path.display(), d.symbol),
            AppSpec::Wsgi(w) => write!(f, "wsgi:{}:{} (python: {})", w.module, w.callable, w.python),
            AppSpec::Cgi(c) => {
                f.write_str("cgi:")?;
                for (k, v) in &c.env {
                    write!(f, "{k}={v} ")?;
                }
                write!(f, "{}", c.program.display())?;
                c.args.iter().try_for_each(|a| write!(f, " {a}"))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticBody {
    Text(String),
    /// An absolute path, checked to exist when the configuration loads, read
    /// only when a request comes.
    File(PathBuf),
}

/// Parses `APP` from `URL -> APP`; relative `@FILE` paths are taken from `base`.
pub fn parse_spec(spec: &str, base: &Path) -> Result<AppSpec, String> {
    let (kind, arg) = match spec.split_once(':') {
        Some((k, a)) => (k.trim(), Some(a)),
        None => (spec.trim(), None),
    };
    match (kind, arg) {
        ("echo", None) => Ok(AppSpec::Echo),
        ("echo", Some(_)) => Err("the echo app takes no argument".into()),
        ("static", Some(arg)) => parse_static(arg.trim_start(), base),
        ("static", None) => Err("expected static:STATUS [BODY]".into()),
        ("cgi", Some(arg)) => cgi::parse(arg, base).map(AppSpec::Cgi),
        ("files", Some(arg)) => files::parse(arg, base).map(AppSpec::Files),
        ("files", None) => Err("expected files:DIR".into()),
        ("forward" | "tunnel", Some(arg)) => forward::parse(arg, base)
            .map(|to| AppSpec::Forward(forward::Relay { to, tunnel: kind == "tunnel" }))
            .map_err(|e| if kind == "tunnel" { e.replace("forward:", "tunnel:") } else { e }),
        ("forward", None) => Err("expected forward:HOST:PORT or forward:unix:PATH".into()),
        ("tunnel", None) => Err("expected tunnel:HOST:PORT or tunnel:unix:PATH".into()),
        ("dylib", Some(arg)) => crate::apps::dylib::parse(arg, base).map(AppSpec::Dylib),
        ("dylib", None) => Err("expected dylib:PATH[#SYMBOL]".into()),
        ("wsgi", Some(arg)) => wsgi::parse(arg, base).map(AppSpec::Wsgi),
        ("wsgi", None) => Err("expected wsgi:MODULE:CALLABLE".into()),
        ("stubs", Some(arg)) => stubs::parse(arg, base).map(AppSpec::Stubs),
        ("stubs", None) => Err("expected stubs:DIR".into()),
        ("har", Some(arg)) => har::parse(arg, base).map(AppSpec::Har),
        ("har", None) => Err("expected har:FILE".into()),
        ("cgi", None) => Err("expected cgi:PROGRAM [ARG...]".into()),
        (k, _) => Err(format!(
            "unknown app kind `{k}` (expected echo, static:STATUS [BODY], files:DIR, cgi:PROGRAM, forward:HOST:PORT, tunnel:HOST:PORT, dylib:PATH, wsgi:MODULE:CALLABLE, stubs:DIR or har:FILE)"
        )),
    }
}

fn parse_static(arg: &str, base: &Path) -> Result<AppSpec, String> {
    let (code, rest) = match arg.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim_start()),
        None => (arg, ""),
    };
    let status = match code.parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) && code.len() == 3 => s,
        _ => return Err(format!("bad status code `{code}`: expected a number from 100 to 599")),
    };
    let body = match rest.strip_prefix('@') {
        Some(file) => {
            let path = base.join(file);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => StaticBody::File(path),
                Ok(_) => return Err(format!("@{file}: {} is not a regular file", path.display())),
                Err(e) => return Err(format!("@{file}: cannot open {}: {e}", path.display())),
            }
        }
        None => StaticBody::Text(rest.to_string()),
    };
    Ok(AppSpec::Static { status, body })
}

/// Makes the app a spec describes; None for `forward`, which is not an
/// HTTP app (the router keeps its target on the site instead).
pub fn build(spec: &AppSpec) -> Option<Box<dyn App>> {
    Some(match spec {
        AppSpec::Echo => Box::new(echo::Echo),
        AppSpec::Static { status, body } => Box::new(fixed::Static { status: *status, body: body.clone() }),
        AppSpec::Cgi(spec) => Box::new(cgi::Cgi { spec: spec.clone() }),
        AppSpec::Files(root) => Box::new(files::Files { root: root.clone() }),
        AppSpec::Forward(_) => return None,
        AppSpec::Dylib(spec) => Box::new(crate::apps::dylib::Native::new(crate::apps::dylib::Source::Dylib(spec.clone()))),
        AppSpec::Wsgi(spec) => Box::new(wsgi::Wsgi::new(spec.clone())),
        AppSpec::Stubs(dir) => Box::new(stubs::Stubs::new(dir.clone())),
        AppSpec::Har(spec) => Box::new(har::Har::new(spec.clone())),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(body: &'a mut (dyn Read + Send)) -> Request<'a> {
        Request {
            method: "POST".into(),
            scheme: "http",
            host: "h.test".into(),
            port: 80,
            target: "/m/p%20q?a=1".into(),
            script_name: "/m".into(),
            path_info: "/p q".into(),
            query: "a=1".into(),
            headers: vec![("X-One".into(), "1".into()), ("x-two".into(), "2".into())],
            body,
            client: None,
            opener: None,
        }
    }

    fn bytes(r: Response) -> Vec<u8> {
        match r.body {
            Body::Bytes(b) | Body::Raw(b) => b,
            Body::Reset | Body::Upgrade(_) => Vec::new(),
            Body::Stream { mut reader, .. } => {
                let mut v = Vec::new();
                reader.read_to_end(&mut v).unwrap();
                v
            }
        }
    }

    #[test]
    fn echo_describes_the_request() {
        let mut body: &[u8] = b"hello";
        let r = echo::Echo.call(&mut request(&mut body));
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&bytes(r)).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["script_name"], "/m");
        assert_eq!(v["path_info"], "/p q");
        assert_eq!(v["query"], "a=1");
        assert_eq!(v["headers"], serde_json::json!([["X-One", "1"], ["x-two", "2"]]));
        assert_eq!(v["body"], "hello");
        assert!(v.get("body_encoding").is_none());
    }

    #[test]
    fn echo_base64_encodes_binary_bodies() {
        let mut body: &[u8] = &[0xff, 0x00, 0x41];
        let v: serde_json::Value = serde_json::from_slice(&bytes(echo::Echo.call(&mut request(&mut body)))).unwrap();
        assert_eq!((v["body"].as_str(), v["body_encoding"].as_str()), (Some("/wBB"), Some("base64")));
    }

    #[test]
    fn static_specs() {
        let base = Path::new("/");
        assert_eq!(
            parse_spec("static:201 made it", base).unwrap(),
            AppSpec::Static { status: 201, body: StaticBody::Text("made it".into()) }
        );
        assert_eq!(parse_spec("static: 204", base).unwrap(), AppSpec::Static { status: 204, body: StaticBody::Text("".into()) });
        assert_eq!(parse_spec("echo", base).unwrap(), AppSpec::Echo);
        assert!(parse_spec("static:99", base).unwrap_err().contains("bad status code"));
        assert!(parse_spec("static:600 x", base).unwrap_err().contains("bad status code"));
        assert!(parse_spec("static:abc", base).unwrap_err().contains("bad status code"));
        assert!(parse_spec("static:200 @no/such/file", base).unwrap_err().contains("cannot open"));
        assert!(parse_spec("bogus:1", base).unwrap_err().contains("unknown app kind `bogus`"));
    }

    #[test]
    fn static_file_is_served_with_its_type() {
        let dir = crate::testing::temp_dir("static");
        std::fs::write(dir.join("a.json"), b"{\"x\":1}").unwrap();
        let spec = parse_spec("static:200 @a.json", &dir).unwrap();
        let mut body: &[u8] = b"";
        let r = build(&spec).unwrap().call(&mut request(&mut body));
        assert_eq!(r.headers[0].1, "application/json");
        assert_eq!(bytes(r), b"{\"x\":1}");
    }
}
