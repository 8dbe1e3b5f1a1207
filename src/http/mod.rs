//! The dispatcher's HTTP/1.1 server loop over any `Read + Write` stream:
//! reads each request head (httparse), frames its body, picks the mount,
//! calls the app and writes the response, keeping the connection alive
//! until either side closes it. Pipelined requests are answered in order,
//! one at a time.
//!
//! Bad input gets a status and a close, never a hang or a panic: a
//! malformed head 400, a head over 64 KiB 431, ambiguous framing (both
//! Content-Length and Transfer-Encoding, or differing lengths) 400, a bad
//! chunk 400, a client quiet past the idle timeout a close (408 if it was
//! inside a request).
//!
//! [`answer_buffered`] runs the same exchange over bytes already received,
//! for the shim's event thread: a whole request (with a Content-Length
//! body, if any) to an app that answers from memory is answered with no
//! I/O; anything else is left to [`serve_after`] on a thread.
//!
//! Nothing here knows about sockets or hooks, so it is tested over
//! in-memory streams.

mod body;
mod conn;
mod response;

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::apps::{Request, Response};
use crate::journal::Exchange;
use crate::router::Target;
use crate::{log_debug, log_error, log_info};
use body::{BodyReader, Framing};
use conn::Conn;

/// Request heads larger than this get 431.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 256;
/// How much of a body the app left unread is skipped to keep the connection;
/// past this the connection is closed instead.
const MAX_DRAIN: u64 = 1 << 20;

/// A parsed request head, owned so the read buffer can move on.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor: u8,
    headers: Vec<(String, String)>,
    /// Bytes the head took on the wire.
    len: usize,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept after this exchange.
    fn keep_alive(&self) -> bool {
        if self.has_token("Connection", "close") {
            return false;
        }
        self.minor >= 1 || self.has_token("Connection", "keep-alive")
    }

    /// How the body is framed (RFC 9112 section 6.3), refusing what could be
    /// read two ways.
    fn framing(&self) -> Result<Framing, Reject> {
        let codings: Vec<&str> = self.values("Transfer-Encoding").flat_map(|v| v.split(',')).map(str::trim).collect();
        let lengths: Vec<&str> = self.values("Content-Length").flat_map(|v| v.split(',')).map(str::trim).collect();
        if !codings.is_empty() {
            if !lengths.is_empty() {
                return Err(reject(400, "both Transfer-Encoding and Content-Length"));
            }
            if self.minor == 0 {
                return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
            }
            return match codings.as_slice() {
                [only] if only.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
                _ => Err(reject(501, format!("unsupported Transfer-Encoding `{}`", codings.join(", ")))),
            };
        }
        let mut len = None;
        for v in lengths {
            let n: u64 = match v.parse() {
                Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(reject(400, format!("bad Content-Length `{v}`"))),
            };
            if len.is_some_and(|l| l != n) {
                return Err(reject(400, "differing Content-Length values"));
            }
            len = Some(n);
        }
        Ok(Framing::Length(len.unwrap_or(0)))
    }
}

/// A failure that ends the connection after answering with `status`.
struct Reject {
    status: u16,
    why: String,
}

fn reject(status: u16, why: impl Into<String>) -> Reject {
    Reject { status, why: why.into() }
}

/// Parses a request head at the start of `buf`: Ok(None) while it is not
/// whole yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Reject> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Err(reject(431, "request head over 64 KiB")),
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            method: req.method.unwrap_or_default().to_string(),
            target: req.path.unwrap_or_default().to_string(),
            minor: req.version.unwrap_or(1),
            headers: req.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect(),
            len,
        })),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(reject(431, "request head over 64 KiB")),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(reject(431, "too many header fields")),
        Err(e) => Err(reject(400, format!("malformed request: {e}"))),
    }
}

impl<S: Read + Write> Conn<S> {
    /// Reads the next request head. Ok(None) when the client closed (or
    /// went idle) cleanly between requests.
    fn read_head(&mut self) -> Result<Option<Head>, Reject> {
        loop {
            if !self.buffered().is_empty() {
                if let Some(head) = parse_head(self.buffered())? {
                    self.consume(head.len);
                    return Ok(Some(head));
                }
            }
            let inside = !self.buffered().is_empty();
            match self.fill() {
                Ok(0) if !inside => return Ok(None),
                Ok(0) => return Err(reject(400, "connection closed inside a request head")),
                Ok(_) => {}
                Err(e) if conn::is_idle(&e) && inside => return Err(reject(408, "no complete request before the idle timeout")),
                Err(e) => {
                    log_debug!("connection ends: {e}");
                    return Ok(None);
                }
            }
        }
    }
}

/// Serves HTTP/1.1 on `stream` for a routed connection until it closes.
pub fn serve<S: Read + Write + Send>(stream: S, target: &Target) {
    serve_after(stream, target, Vec::new());
}

/// [`serve`] for a connection whose first bytes, `read`, were already taken
/// from `stream` (by [`answer_buffered`]'s caller).
pub fn serve_after<S: Read + Write + Send>(stream: S, target: &Target, read: Vec<u8>) {
    let mut conn = Conn::with_buffered(stream, read);
    loop {
        let head = match conn.read_head() {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(r) => {
                let url = format!("{}://{}:{}", target.site.scheme.as_str(), target.host, target.port);
                log_error!("{url}: {} ({})", r.status, r.why);
                if answer(&mut conn, target, None, Response::text(r.status, &r.why), None).is_ok() {
                    conn.linger();
                }
                return;
            }
        };
        match exchange(&mut conn, &head, target) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log_debug!("connection ended: {e}");
                return;
            }
        }
    }
}

/// What [`answer_buffered`] made of the bytes a client has sent so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Buffered {
    /// The first request was answered into `out`: its `consumed` bytes are
    /// done with, and the connection closes after the answer unless `keep`.
    Answered { consumed: usize, keep: bool },
    /// No whole request, or one this path does not take (a chunked or
    /// partial body, an `Expect`, an app that may block, bad input, https):
    /// serve the connection with [`serve_after`] instead.
    NeedsThread,
}

/// Answers the first request in `input` without any I/O when it is whole
/// (head and a Content-Length body, no `Expect`) and its app answers from
/// memory; the bytes written to `out` (and the journal line) are exactly
/// what [`serve`] would produce, because the same exchange runs over an
/// in-memory stream.
pub fn answer_buffered(input: &[u8], out: &mut Vec<u8>, target: &Target) -> Buffered {
    if target.site.scheme != crate::route::Scheme::Http || target.site.forward.is_some() {
        return Buffered::NeedsThread;
    }
    let Ok(Some(head)) = parse_head(input) else { return Buffered::NeedsThread };
    // The body, if any, must be whole in `input` and have a length.
    let whole = match head.framing() {
        Ok(Framing::Length(n)) => usize::try_from(n).ok().and_then(|n| head.len.checked_add(n)).filter(|&end| end <= input.len()),
        _ => None,
    };
    let Some(end) = whole.filter(|_| head.values("Expect").next().is_none()) else { return Buffered::NeedsThread };
    let (path, _) = split_target(&head.target);
    if !target.site.mount_for(path).is_none_or(|m| m.app.answers_from_memory()) {
        return Buffered::NeedsThread;
    }
    let mut conn = Conn::with_buffered(Memory(out), input[head.len..end].to_vec());
    conn.consumed = head.len as u64;
    // Writing to memory cannot fail, so neither can the exchange.
    let keep = exchange(&mut conn, &head, target).unwrap_or(false);
    Buffered::Answered { consumed: end, keep }
}

/// Answers every request at the start of `input` that [`answer_buffered`]
/// takes, in order, stopping after one that closes the connection. Returns
/// the bytes used and whether the connection stays open; what is left of
/// `input` is for [`serve_after`].
pub fn answer_all_buffered(input: &[u8], out: &mut Vec<u8>, target: &Target) -> (usize, bool) {
    let (mut taken, mut keep) = (0, true);
    while keep && taken < input.len() {
        match answer_buffered(&input[taken..], out, target) {
            Buffered::Answered { consumed, keep: k } => (taken, keep) = (taken + consumed, k),
            Buffered::NeedsThread => break,
        }
    }
    (taken, keep)
}

/// A stream with nothing to read whose writes append to a vector.
struct Memory<'a>(&'a mut Vec<u8>);

impl Read for Memory<'_> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Memory<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the journal needs to know about a request, besides its response.
struct Asked<'a> {
    head: &'a Head,
    route: &'a str,
    url: &'a str,
    started: Instant,
    request_bytes: u64,
}

/// Answers one request; Ok(true) if the connection stays open.
fn exchange<S: Read + Write + Send>(conn: &mut Conn<S>, head: &Head, target: &Target) -> io::Result<bool> {
    let started = Instant::now();
    let consumed_before = conn.consumed - head.len as u64;
    let scheme = target.site.scheme.as_str();
    let url = format!("{scheme}://{}:{}{}", target.host, target.port, head.target);
    let framing = match head.framing() {
        Ok(framing) => framing,
        Err(r) => {
            log_error!("{} {url}: {} ({})", head.method, r.status, r.why);
            let asked = Asked { head, route: "-", url: &url, started, request_bytes: head.len as u64 };
            answer(conn, target, Some(&asked), Response::text(r.status, &r.why), None)?;
            return Ok(false);
        }
    };
    let expect_continue = head.minor >= 1 && head.has_token("Expect", "100-continue");
    let (path, query) = split_target(&head.target);
    let mount = target.site.mount_for(path);
    let mut body = BodyReader::new(conn, framing, expect_continue);
    let (mut response, route) = match mount {
        None => (Response::text(404, &format!("no route for {path} on {}:{}", target.host, target.port)), "-"),
        Some(mount) => {
            let rest = &path[mount.prefix.len()..];
            let mut req = Request {
                method: head.method.clone(),
                scheme,
                host: target.host.clone(),
                port: target.port,
                target: head.target.clone(),
                script_name: mount.prefix.clone(),
                path_info: percent_encoding::percent_decode_str(rest).decode_utf8_lossy().into_owned(),
                query: query.to_string(),
                headers: head.headers.clone(),
                body: &mut body,
            };
            let answer = catch_unwind(AssertUnwindSafe(|| mount.app.call(&mut req))).unwrap_or_else(|_| {
                log_error!("{} {url}: the app of route {} panicked", head.method, mount.route);
                Response::text(500, "the app failed")
            });
            (answer, mount.route.as_str())
        }
    };
    // Whatever the app left unread is not the next request: skip a little,
    // or close.
    let mut keep = head.keep_alive() && !body.never_started() && body.drain(MAX_DRAIN);
    if body.broken {
        log_error!("{} {url}: 400 (malformed request body)", head.method);
        response = Response::text(400, "malformed request body");
        keep = false;
    }
    drop(body);
    let asked = Asked { head, route, url: &url, started, request_bytes: conn.consumed - consumed_before };
    answer(conn, target, Some(&asked), response, Some(keep))
}

/// Writes the response (and its journal line); Ok(true) if the connection
/// stays open. `keep` None means close.
fn answer<S: Read + Write>(
    conn: &mut Conn<S>,
    target: &Target,
    asked: Option<&Asked<'_>>,
    response: Response,
    keep: Option<bool>,
) -> io::Result<bool> {
    let status = response.status;
    let method = asked.map_or("-", |a| a.head.method.as_str());
    if let Some(a) = asked {
        // Logged before the response goes out: once the client has its
        // last byte it may exit, and this thread with it.
        log_info!("{method} {} -> {status} (route {}, {} ms)", a.url, a.route, a.started.elapsed().as_millis());
    }
    let how = response::Framing {
        minor: asked.map_or(1, |a| a.head.minor),
        keep_alive: keep.unwrap_or(false),
        head_only: method.eq_ignore_ascii_case("HEAD"),
    };
    let journal = target.journal.as_deref();
    let mut out = response::Holdback::new(&mut conn.stream, journal.is_some());
    let result = response::write(&mut out, response, &how);
    if let Some(journal) = journal {
        let fallback = format!("{}://{}:{}", target.site.scheme.as_str(), target.host, target.port);
        journal.request(&Exchange {
            route: asked.map_or("-", |a| a.route),
            method,
            url: asked.map_or(&fallback, |a| a.url),
            status,
            request_bytes: asked.map_or(0, |a| a.request_bytes),
            response_bytes: out.written,
            duration_ms: asked.map_or(0.0, |a| a.started.elapsed().as_secs_f64() * 1000.0),
        });
    }
    let keep = result?;
    out.release()?;
    Ok(keep)
}

/// Splits a request target into path and query; absolute-form targets
/// (`http://host/path`) lose their scheme and authority.
fn split_target(target: &str) -> (&str, &str) {
    let target = match target.split_once("://") {
        Some((_, rest)) if !target.starts_with('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    target.split_once('?').unwrap_or((target, ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::apps::{self, Body};
    use crate::router::{Connect, Router};

    /// An in-memory connection: each read returns at most one of `input`'s
    /// segments (then end of stream, or `WouldBlock` if `idle`); writes collect.
    struct Duplex {
        input: std::collections::VecDeque<Vec<u8>>,
        idle: bool,
        output: Vec<u8>,
    }

    impl Duplex {
        fn new(segments: &[&[u8]]) -> Duplex {
            Duplex { input: segments.iter().map(|s| s.to_vec()).collect(), idle: false, output: Vec::new() }
        }
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(front) = self.input.front_mut() else {
                return if self.idle { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(0) };
            };
            let n = front.len().min(buf.len());
            buf[..n].copy_from_slice(&front[..n]);
            front.drain(..n);
            if front.is_empty() {
                self.input.pop_front();
            }
            Ok(n)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn target(routes: &[&str]) -> Target {
        let vars: Vec<(String, String)> =
            routes.iter().enumerate().map(|(i, r)| (format!("INTERCEPT_ROUTE_R{i}"), r.to_string())).collect();
        let router = Router::new(&load(&vars).unwrap());
        let crate::router::Lookup::Synthetic(v4, _) = router.lookup("h.test") else { panic!() };
        match router.connect((v4, 80).into()) {
            Connect::Intercept(t) => t,
            _ => panic!(),
        }
    }

    fn run(routes: &[&str], input: &[u8]) -> String {
        run_segments(routes, &[input], false)
    }

    fn run_segments(routes: &[&str], input: &[&[u8]], idle: bool) -> String {
        let mut d = Duplex::new(input);
        d.idle = idle;
        serve(&mut d, &target(routes));
        String::from_utf8(d.output).unwrap()
    }

    fn body_of(response: &str) -> &str {
        response.split_once("\r\n\r\n").unwrap().1
    }

    #[test]
    fn static_answer_with_length_and_date() {
        let out = run(&["http://h.test -> static:201 made"], b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
        assert!(out.contains("\r\nContent-Length: 4\r\n") && out.contains("\r\nDate: "), "{out}");
        assert_eq!(body_of(&out), "made");
    }

    #[test]
    fn keep_alive_serves_several_requests_in_order() {
        let out = run(
            &["http://h.test -> echo"],
            b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        let statuses = out.matches("HTTP/1.1 200 OK").count();
        assert_eq!(statuses, 3, "{out}");
        let (one, two, three) = (out.find("\"/one\"").unwrap(), out.find("\"/two\"").unwrap(), out.find("\"/three\"").unwrap());
        assert!(one < two && two < three);
        assert!(out.contains("\"body\": \"abc\""));
        assert!(out.ends_with("}\n") && out.contains("Connection: close"));
    }

    #[test]
    fn mounts_split_script_name_and_path_info() {
        let routes = ["http://h.test/api -> echo", "http://h.test/static -> static:200 s"];
        let out = run(&routes, b"GET /api/v1/a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        let v: serde_json::Value = serde_json::from_str(body_of(&out)).unwrap();
        assert_eq!((v["script_name"].as_str(), v["path_info"].as_str(), v["query"].as_str()), (Some("/api"), Some("/v1/a b"), Some("x=1")));
        let out = run(&routes, b"GET /elsewhere HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404 "), "{out}");
        let out = run(&routes, b"GET http://h.test/static/x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(body_of(&out), "s");
    }

    #[test]
    fn http10_closes_unless_asked_and_head_has_no_body() {
        let out = run(&["http://h.test -> static:200 hi"], b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
        assert_eq!(out.matches("HTTP/1.1 200").count(), 1);
        assert!(out.contains("Connection: close"));
        let out = run(&["http://h.test -> static:200 hi"], b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD / HTTP/1.0\r\n\r\n");
        assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
        assert!(out.contains("Connection: keep-alive"));
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
    }

    #[test]
    fn bad_input_gets_a_status_and_a_close() {
        let r = ["http://h.test -> echo"];
        assert!(run(&r, b"GARBAGE\r\n\r\nGET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(run(&r, b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(run(&r, b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 70 * 1024));
        big.extend_from_slice(b"\r\n\r\n");
        let out = run(&r, &big);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert_eq!(out.matches("HTTP/1.1").count(), 1);
        assert!(run(&r, b"GET / HTT").starts_with("HTTP/1.1 400 "));
        assert_eq!(run(&r, b""), "");
    }

    struct Panics;
    impl apps::App for Panics {
        fn call(&self, _: &mut Request<'_>) -> Response {
            panic!("app bug")
        }
    }

    #[test]
    fn a_panicking_app_gets_500_and_the_connection_lives_on() {
        let t = target(&["http://h.test -> echo"]);
        let site = crate::router::Site {
            scheme: crate::route::Scheme::Http,
            host: t.site.host.clone(),
            port: 80,
            mounts: vec![crate::router::Mount { prefix: String::new(), route: "P".into(), app: std::sync::Arc::new(Panics) }],
            forward: None,
        };
        let t = Target { site: std::sync::Arc::new(site), ..t };
        let mut d = Duplex::new(&[b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"]);
        serve(&mut d, &t);
        let out = String::from_utf8(d.output).unwrap();
        assert_eq!(out.matches("HTTP/1.1 500 ").count(), 2, "{out}");
    }

    #[test]
    fn unknown_length_streams_chunked_on_11_and_close_delimited_on_10() {
        for (minor, framing, tail) in [(1, "Transfer-Encoding: chunked\r\n", "\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"), (0, "Connection: close\r\n", "\r\n\r\nabcdef")] {
            let mut out = Vec::new();
            let body = Body::Stream { reader: Box::new(&b"abcdef"[..]), len: None };
            let how = response::Framing { minor, keep_alive: true, head_only: false };
            response::write(&mut out, Response { status: 200, headers: vec![], body }, &how).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains(framing) && out.ends_with(tail), "{out}");
        }
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let out = run(
            &["http://h.test -> echo"],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET /after HTTP/1.1\r\n\r\n",
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(out.contains("\"body\": \"hello world\""), "{out}");
        assert!(out.contains("\"path_info\": \"/after\""), "{out}");
    }

    #[test]
    fn chunked_body_split_across_reads() {
        let out = run_segments(
            &["http://h.test -> echo"],
            &[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"1", b"0\r\n0123456789", b"abcdef\r", b"\n0\r", b"\n\r\n"],
            false,
        );
        assert!(out.contains("\"body\": \"0123456789abcdef\""), "{out}");
    }

    #[test]
    fn bad_framing_is_400_and_a_close() {
        let r = ["http://h.test -> echo"];
        for input in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            let out = run(&r, input);
            assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
            assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
            assert!(out.contains("Connection: close\r\n"), "{out}");
        }
        let out = run(&r, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 501 "), "{out}");
    }

    #[test]
    fn expect_100_continue_is_answered_when_the_app_reads() {
        let out = run_segments(
            &["http://h.test -> echo"],
            &[b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", b"data"],
            false,
        );
        assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("\"body\": \"data\""), "{out}");
        // An app that never reads gets no 100: the final answer comes at once
        // and the connection closes, since the body may or may not follow.
        let out = run_segments(
            &["http://h.test -> static:200 ok"],
            &[b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"],
            true,
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("Connection: close\r\n"), "{out}");
    }

    #[test]
    fn unread_bodies_are_skipped_and_the_connection_kept() {
        let out = run(&["http://h.test -> static:200 ok"], b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n");
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    }

    #[test]
    fn idle_clients_are_closed() {
        let r = ["http://h.test -> static:200 ok"];
        let out = run_segments(&r, &[b"GET / HTTP/1.1\r\n\r\n"], true);
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1, "{out}");
        assert!(!out.contains("408"), "{out}");
        let out = run_segments(&r, &[b"GET / HTTP/1.1\r\nHost: h"], true);
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    }

    #[test]
    fn head_204_and_304_have_no_body() {
        let out = run(&["http://h.test -> static:200 hello"], b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        let (head, rest) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Length: 5"), "{out}");
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.ends_with("\r\n\r\nhello"), "{out}");
        for status in [204, 304] {
            let out = run(&[&format!("http://h.test -> static:{status} ignored")], b"GET / HTTP/1.1\r\n\r\n");
            assert!(!out.contains("Content-Length") && out.ends_with("\r\n\r\n"), "{out}");
        }
    }

    #[test]
    fn the_journal_gets_a_line_per_request() {
        let path = std::env::temp_dir().join(format!("intercept-http-journal-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut t = target(&["http://h.test/api -> echo"]);
        t.journal = Some(std::sync::Arc::new(crate::journal::Journal::new(path.clone())));
        let mut d = Duplex::new(&[b"POST /api/x?q HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /nowhere HTTP/1.1\r\n\r\n"]);
        serve(&mut d, &t);
        let lines: Vec<serde_json::Value> =
            std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["url"], "http://h.test:80/api/x?q");
        assert_eq!((lines[0]["method"].as_str(), lines[0]["status"].as_u64(), lines[0]["route"].as_str()), (Some("POST"), Some(200), Some("R0")));
        // 24 request-line + 19 Content-Length + 2 blank-line + 2 body bytes.
        assert_eq!(lines[0]["request_bytes"], 47);
        let first_response = String::from_utf8_lossy(&d.output).find("HTTP/1.1 404").map(|at| at as u64);
        assert_eq!(lines[0]["response_bytes"].as_u64(), first_response);
        assert_eq!((lines[1]["status"].as_u64(), lines[1]["route"].as_str()), (Some(404), Some("-")));
        std::fs::remove_file(&path).unwrap();
    }

    /// The response bytes with the Date line taken out, so two answers made
    /// a second apart compare equal.
    fn undated(response: &[u8]) -> String {
        String::from_utf8_lossy(response).split("\r\n").filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\r\n")
    }

    #[test]
    fn buffered_answers_are_what_the_loop_would_write() {
        let routes = ["http://h.test -> static:200 hello", "http://h.test/echo -> echo"];
        let t = target(&routes);
        for request in [
            &b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n"[..],
            b"HEAD / HTTP/1.1\r\n\r\n",
            b"GET /echo/a%20b?q=1 HTTP/1.1\r\nX-A: 1\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"POST /echo/up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        ] {
            let mut out = Vec::new();
            let answered = answer_buffered(request, &mut out, &t);
            let closes = request.starts_with(b"GET / HTTP/1.0") || request.ends_with(b"close\r\n\r\n");
            assert_eq!(answered, Buffered::Answered { consumed: request.len(), keep: !closes });
            assert_eq!(undated(&out), undated(run(&routes, request).as_bytes()));
        }
    }

    #[test]
    fn buffered_pipelines_answer_one_request_at_a_time() {
        let t = target(&["http://h.test -> static:200 hello"]);
        for first in [&b"GET /1 HTTP/1.1\r\n\r\n"[..], b"POST /1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"] {
            let input = [first, b"GET /2 HTTP/1.1\r\n\r\n"].concat();
            let mut out = Vec::new();
            assert_eq!(answer_buffered(&input, &mut out, &t), Buffered::Answered { consumed: first.len(), keep: true });
            assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 1);
        }
    }

    #[test]
    fn buffered_pipelines_stop_at_a_close_or_what_needs_a_thread() {
        let t = target(&["http://h.test -> static:200 hello"]);
        let (a, b) = (&b"GET /1 HTTP/1.1\r\n\r\n"[..], &b"GET /2 HTTP/1.1\r\nConnection: close\r\n\r\n"[..]);
        let mut out = Vec::new();
        assert_eq!(answer_all_buffered(&[a, b, a].concat(), &mut out, &t), (a.len() + b.len(), false));
        assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 2);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(answer_all_buffered(&[a, chunked].concat(), &mut Vec::new(), &t), (a.len(), true));
    }

    #[test]
    fn buffered_leaves_everything_else_to_a_thread() {
        let dir = std::env::temp_dir();
        let files = format!("http://h.test/files -> files:{}", dir.display());
        let t = target(&["http://h.test -> static:200 hello", &files]);
        for input in [
            &b""[..],
            b"GET / HTTP/1.1\r\nHost: h.te",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"BAD\x01 / HTTP/1.1\r\n\r\n",
            b"GET /files/ HTTP/1.1\r\n\r\n",
        ] {
            let mut out = Vec::new();
            assert_eq!(answer_buffered(input, &mut out, &t), Buffered::NeedsThread, "{}", String::from_utf8_lossy(input));
            assert!(out.is_empty());
        }
        let https = target(&["https://h.test:80 -> static:200 hello"]);
        assert_eq!(answer_buffered(b"GET / HTTP/1.1\r\n\r\n", &mut Vec::new(), &https), Buffered::NeedsThread);
    }

    #[test]
    fn serving_after_bytes_already_read_continues_the_stream() {
        let routes = ["http://h.test -> echo"];
        let input = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
        let (read, rest) = input.split_at(20);
        let mut d = Duplex::new(&[rest]);
        serve_after(&mut d, &target(&routes), read.to_vec());
        assert_eq!(undated(&d.output), undated(run(&routes, input).as_bytes()));
    }
}
