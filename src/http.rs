//! The dispatcher's HTTP/1.1 server loop over any `Read + Write` stream:
//! reads each request head (httparse), frames its body, picks the mount,
//! calls the app and writes the response, keeping the connection alive
//! until either side closes it.
//!
//! Nothing here knows about sockets or hooks, so it is tested over
//! in-memory streams.

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Instant, SystemTime};

use crate::apps::{self, Body, Request, Response};
use crate::router::Target;
use crate::{log_debug, log_error, log_info};

/// Request heads larger than this get 431.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 256;

/// A parsed request head, owned so the read buffer can move on.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor: u8,
    headers: Vec<(String, String)>,
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
}

/// A failure that ends the connection after answering with `status`.
struct Reject {
    status: u16,
    why: String,
}

fn reject(status: u16, why: impl Into<String>) -> Reject {
    Reject { status, why: why.into() }
}

/// The connection: the stream and the bytes read from it but not used yet.
struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<S: Read + Write> Conn<S> {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer; Ok(0) at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).clamp(8192, MAX_HEAD + 8192);
            self.buf.resize(grown.max(self.end + 1), 0);
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next request head. Ok(None) when the client closed cleanly
    /// between requests.
    fn read_head(&mut self) -> Result<Option<Head>, Reject> {
        loop {
            if self.start < self.end {
                let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut storage);
                match req.parse(self.buffered()) {
                    Ok(httparse::Status::Complete(len)) => {
                        let head = Head {
                            method: req.method.unwrap_or_default().to_string(),
                            target: req.path.unwrap_or_default().to_string(),
                            minor: req.version.unwrap_or(1),
                            headers: req
                                .headers
                                .iter()
                                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                                .collect(),
                        };
                        if len > MAX_HEAD {
                            return Err(reject(431, "request head over 64 KiB"));
                        }
                        self.start += len;
                        return Ok(Some(head));
                    }
                    Ok(httparse::Status::Partial) if self.end - self.start > MAX_HEAD => {
                        return Err(reject(431, "request head over 64 KiB"));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header fields")),
                    Err(e) => return Err(reject(400, format!("malformed request: {e}"))),
                }
            }
            match self.fill() {
                Ok(0) if self.start == self.end => return Ok(None),
                Ok(0) => return Err(reject(400, "connection closed inside a request head")),
                Ok(_) => {}
                Err(e) => {
                    log_debug!("read failed: {e}");
                    return Ok(None);
                }
            }
        }
    }
}

/// The request body as the app reads it: buffered bytes first, then the
/// stream, never past Content-Length.
struct BodyReader<'c, S> {
    conn: &'c mut Conn<S>,
    remaining: u64,
}

impl<S: Read + Write> Read for BodyReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        if self.conn.start == self.conn.end && self.conn.fill()? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed inside the request body"));
        }
        let n = (self.conn.end - self.conn.start).min(out.len()).min(self.remaining.try_into().unwrap_or(usize::MAX));
        out[..n].copy_from_slice(&self.conn.buf[self.conn.start..self.conn.start + n]);
        self.conn.start += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Serves HTTP/1.1 on `stream` for a routed connection until it closes.
pub fn serve<S: Read + Write>(stream: S, target: &Target) {
    let mut conn = Conn { stream, buf: Vec::new(), start: 0, end: 0 };
    loop {
        let head = match conn.read_head() {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(r) => {
                log_error!("{}://{}:{}: {} ({})", target.site.scheme.as_str(), target.host, target.port, r.status, r.why);
                let _ = write_response(&mut conn.stream, Response::text(r.status, &r.why), 1, false, false);
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

/// Answers one request; Ok(true) if the connection stays open.
fn exchange<S: Read + Write>(conn: &mut Conn<S>, head: &Head, target: &Target) -> io::Result<bool> {
    let started = Instant::now();
    let scheme = target.site.scheme.as_str();
    let url = format!("{scheme}://{}:{}{}", target.host, target.port, head.target);
    let body_len = match body_length(head) {
        Ok(len) => len,
        Err(r) => {
            log_error!("{} {url}: {} ({})", head.method, r.status, r.why);
            write_response(&mut conn.stream, Response::text(r.status, &r.why), head.minor, false, false)?;
            return Ok(false);
        }
    };
    let keep = head.keep_alive();
    let head_only = head.method.eq_ignore_ascii_case("HEAD");
    let (path, query) = split_target(&head.target);
    let mount = target.site.mount_for(path);
    let mut body = BodyReader { conn, remaining: body_len };
    let (response, route) = match mount {
        None => (Response::text(404, &format!("no route for {path} on {}:{}", target.host, target.port)), "-"),
        Some(mount) => {
            let rest = &path[mount.prefix.len()..];
            let mut req = Request {
                method: head.method.clone(),
                scheme,
                host: target.host.clone(),
                port: target.port,
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
    // Whatever the app left unread is not the next request.
    let drained = apps::discard(&mut body);
    let keep = keep && drained.is_ok();
    // Logged before the response goes out: once the client has its last
    // byte it may exit, and this thread with it.
    log_info!("{} {url} -> {} (route {route}, {} ms)", head.method, response.status, started.elapsed().as_millis());
    write_response(&mut conn.stream, response, head.minor, keep, head_only)?;
    Ok(keep)
}

/// The body length from the head; chunked request bodies are not framed yet.
fn body_length(head: &Head) -> Result<u64, Reject> {
    if head.values("Transfer-Encoding").next().is_some() {
        return Err(reject(501, "Transfer-Encoding request bodies are not supported; send Content-Length"));
    }
    let mut len = None;
    for v in head.values("Content-Length").flat_map(|v| v.split(',')) {
        let v = v.trim();
        let n: u64 = match v.parse() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(reject(400, format!("bad Content-Length `{v}`"))),
        };
        if len.is_some_and(|l| l != n) {
            return Err(reject(400, "differing Content-Length values"));
        }
        len = Some(n);
    }
    Ok(len.unwrap_or(0))
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

/// Writes a response. The dispatcher owns framing: Content-Length when the
/// length is known, chunked for HTTP/1.1 otherwise, close-delimited for 1.0.
fn write_response<W: Write>(out: &mut W, response: Response, minor: u8, keep: bool, head_only: bool) -> io::Result<()> {
    let Response { status, headers, body } = response;
    let no_body = head_only || status < 200 || status == 204 || status == 304;
    let len = match &body {
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Stream { len, .. } => *len,
    };
    let chunked = len.is_none() && minor >= 1 && !no_body;
    let keep = keep && (len.is_some() || chunked || no_body);
    let mut text = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        let owned = ["content-length", "transfer-encoding", "connection", "date"];
        if !owned.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    text.push_str(&format!("Date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())));
    if let Some(len) = len.filter(|_| status >= 200 && status != 204 && status != 304) {
        text.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if chunked {
        text.push_str("Transfer-Encoding: chunked\r\n");
    }
    match (keep, minor) {
        (false, _) => text.push_str("Connection: close\r\n"),
        (true, 0) => text.push_str("Connection: keep-alive\r\n"),
        (true, _) => {}
    }
    text.push_str("\r\n");
    if no_body {
        out.write_all(text.as_bytes())?;
        return out.flush();
    }
    match body {
        Body::Bytes(bytes) => {
            text.reserve(bytes.len());
            let mut all = text.into_bytes();
            all.extend_from_slice(&bytes);
            out.write_all(&all)?;
        }
        Body::Stream { mut reader, len } => {
            out.write_all(text.as_bytes())?;
            if chunked {
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = reader.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(format!("{n:x}\r\n").as_bytes())?;
                    out.write_all(&chunk[..n])?;
                    out.write_all(b"\r\n")?;
                }
                out.write_all(b"0\r\n\r\n")?;
            } else {
                let expected = len.unwrap_or(u64::MAX);
                let sent = io::copy(&mut reader.take(expected), out)?;
                if len.is_some_and(|l| sent < l) {
                    // The stream came up short of its announced length: the
                    // only honest thing left is to cut the connection.
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "response body shorter than its length"));
                }
            }
        }
    }
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        418 => "I'm a teapot",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::router::{Connect, Router};

    /// An in-memory connection: reads come from `input`, writes collect.
    struct Duplex {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
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
        let mut d = Duplex { input: io::Cursor::new(input.to_vec()), output: Vec::new() };
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
            mounts: vec![crate::router::Mount { prefix: String::new(), route: "P".into(), app: Box::new(Panics) }],
        };
        let t = Target { site: std::sync::Arc::new(site), ..t };
        let mut d = Duplex { input: io::Cursor::new(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec()), output: Vec::new() };
        serve(&mut d, &t);
        let out = String::from_utf8(d.output).unwrap();
        assert_eq!(out.matches("HTTP/1.1 500 ").count(), 2, "{out}");
    }

    #[test]
    fn unknown_length_streams_chunked_on_11_and_close_delimited_on_10() {
        let mut out = Vec::new();
        let body = Body::Stream { reader: Box::new(&b"abcdef"[..]), len: None };
        write_response(&mut out, Response { status: 200, headers: vec![], body }, 1, true, false).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("Transfer-Encoding: chunked\r\n") && out.ends_with("\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"), "{out}");
        let mut out = Vec::new();
        let body = Body::Stream { reader: Box::new(&b"abcdef"[..]), len: None };
        write_response(&mut out, Response { status: 200, headers: vec![], body }, 0, true, false).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("Connection: close\r\n") && out.ends_with("\r\n\r\nabcdef"), "{out}");
    }
}
