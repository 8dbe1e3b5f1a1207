//! Writing a response. The dispatcher owns the framing: Content-Length when
//! the length is known, chunked for HTTP/1.1 when it is not, close-delimited
//! for HTTP/1.0; no body for HEAD, 1xx, 204 and 304; `Date` and
//! `Connection` set as servers set them.

use std::io::{self, IoSlice, Read, Write};

use crate::apps::{Body, Response};
use crate::serve::exchange::http_date;

/// How the response must be framed, decided from the request.
pub(super) struct Framing {
    pub minor: u8,
    pub keep_alive: bool,
    pub head_only: bool,
}

/// Writes `response`; returns whether the connection may stay open.
pub(super) fn write(out: &mut dyn Write, response: Response, how: &Framing) -> io::Result<bool> {
    let Response { status, reason: custom, headers, body, .. } = response;
    let body = match body {
        Body::Raw(bytes) => {
            out.write_all(&bytes)?;
            return Ok(false);
        }
        // The caller resets the connection; nothing is written.
        Body::Reset => return Ok(false),
        // The caller hands the connection over after the head.
        Body::Upgrade(_) => return switching(out, status, &headers),
        body => body,
    };
    let bodiless_status = status < 200 || status == 204 || status == 304;
    let no_body = how.head_only || bodiless_status;
    let len = match &body {
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Stream { len, .. } => *len,
        Body::Raw(_) | Body::Reset | Body::Upgrade(_) => unreachable!("written above"),
    };
    let chunked = len.is_none() && how.minor >= 1 && !no_body;
    let keep = how.keep_alive && (len.is_some() || chunked || no_body);
    let reason = custom.filter(|r| !r.contains(['\r', '\n'])).map_or(std::borrow::Cow::Borrowed(reason(status)), std::borrow::Cow::Owned);
    // Head and a body in hand go out in one buffer, sized once, so the
    // client gets them in one write and one wake-up.
    let fields: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let in_hand = match &body {
        Body::Bytes(b) if !no_body => b.len(),
        _ => 0,
    };
    let mut head = Vec::with_capacity(128 + reason.len() + fields + in_hand);
    write!(head, "HTTP/1.1 {status} {reason}\r\n")?;
    const OURS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];
    for (name, value) in &headers {
        if !OURS.iter().any(|o| name.eq_ignore_ascii_case(o)) && !has_line_break(name, value) {
            for piece in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                head.extend_from_slice(piece);
            }
        }
    }
    head.extend_from_slice(b"Date: ");
    head.extend_from_slice(&http_date());
    head.extend_from_slice(b"\r\n");
    if let Some(len) = len.filter(|_| !bodiless_status) {
        write!(head, "Content-Length: {len}\r\n")?;
    }
    if chunked {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    match (keep, how.minor) {
        (false, _) => head.extend_from_slice(b"Connection: close\r\n"),
        (true, 0) => head.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, _) => {}
    }
    head.extend_from_slice(b"\r\n");
    if no_body {
        out.write_all(&head)?;
        return Ok(keep);
    }
    match body {
        Body::Bytes(bytes) => {
            head.extend_from_slice(&bytes);
            out.write_all(&head)?;
        }
        Body::Raw(_) | Body::Reset | Body::Upgrade(_) => unreachable!("written above"),
        Body::Stream { mut reader, len } => {
            out.write_all(&head)?;
            if chunked {
                let mut chunk = vec![0u8; COPY_BUFFER];
                loop {
                    let n = match reader.read(&mut chunk) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    if n == 0 {
                        break;
                    }
                    out.write_all(format!("{n:x}\r\n").as_bytes())?;
                    out.write_all(&chunk[..n])?;
                    out.write_all(b"\r\n")?;
                }
                out.write_all(b"0\r\n\r\n")?;
            } else {
                let sent = copy_large(&mut reader.take(len.unwrap_or(u64::MAX)), out)?;
                if len.is_some_and(|l| sent < l) {
                    // Short of its announced length: cutting the connection
                    // is the only honest end left.
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "response body shorter than its length"));
                }
            }
        }
    }
    Ok(keep)
}

/// The head of a 101 (Switching Protocols): the app's headers as they are,
/// `Connection: Upgrade` included, and no framing; the connection is then
/// no longer HTTP's, so it is not kept.
fn switching(out: &mut dyn Write, status: u16, headers: &[(String, String)]) -> io::Result<bool> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers.iter().filter(|(n, v)| !has_line_break(n, v)) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    Ok(false)
}

/// Body bytes move in pieces this large: every piece is a system call on
/// each side, and fewer, larger ones stream several times faster.
const COPY_BUFFER: usize = 256 * 1024;

fn copy_large(reader: &mut dyn Read, out: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Header fields with CR or LF would split the response: dropped.
fn has_line_break(name: &str, value: &str) -> bool {
    name.contains(['\r', '\n']) || value.contains(['\r', '\n'])
}

/// Counts the bytes written and, when asked, holds the last one back until
/// `release`: a client cannot see its response complete (and exit) before
/// the journal line for it is written.
pub(super) struct Holdback<'w, W: Write> {
    inner: &'w mut W,
    held: Option<u8>,
    hold: bool,
    pub written: u64,
}

impl<'w, W: Write> Holdback<'w, W> {
    pub fn new(inner: &'w mut W, hold: bool) -> Self {
        Holdback { inner, held: None, hold, written: 0 }
    }

    /// Sends the held byte.
    pub fn release(&mut self) -> io::Result<()> {
        if let Some(b) = self.held.take() {
            self.inner.write_all(&[b])?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for Holdback<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.written += buf.len() as u64;
        if !self.hold {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let (send, keep) = buf.split_at(buf.len() - 1);
        let held = self.held.replace(keep[0]);
        let first = held.as_slice();
        let mut slices = [IoSlice::new(first), IoSlice::new(send)];
        let mut slices: &mut [IoSlice<'_>] = &mut slices;
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match self.inner.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn reason(status: u16) -> &'static str {
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
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}
