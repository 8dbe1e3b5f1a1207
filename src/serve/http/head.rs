//! Request heads: parsing one with httparse (owned, so the read buffer can
//! move on), reading one from the wire, the body framing it declares (RFC
//! 9112 section 6.3) and the rejections bad input gets.

use std::time::{Duration, Instant};

use super::body::Framing;
use super::wire::{self, Transport, Wire};
use crate::log_debug;

use crate::serve::exchange::MAX_HEAD;
const MAX_HEADERS: usize = 256;

/// A parsed request head, owned so the read buffer can move on.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(super) minor: u8,
    pub(super) headers: Vec<(String, String)>,
    /// Bytes the head took on the wire.
    pub(super) len: usize,
}

impl Head {
    pub(super) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(super) fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept after this exchange.
    pub(super) fn keep_alive(&self) -> bool {
        if self.has_token("Connection", "close") {
            return false;
        }
        self.minor >= 1 || self.has_token("Connection", "keep-alive")
    }

    /// How the body is framed (RFC 9112 section 6.3), refusing what could be
    /// read two ways.
    pub(super) fn framing(&self) -> Result<Framing, Reject> {
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
pub(super) struct Reject {
    pub(super) status: u16,
    pub(super) why: String,
    /// The bytes are no HTTP/1 head at all (httparse refused them), as
    /// opposed to a head that came too slowly, too large or ill-framed.
    pub(super) not_http1: bool,
}

pub(super) fn reject(status: u16, why: impl Into<String>) -> Reject {
    Reject { status, why: why.into(), not_http1: false }
}

fn unparsable(status: u16, why: impl Into<String>) -> Reject {
    Reject { not_http1: true, ..reject(status, why) }
}

/// Parses a request head at the start of `buf`: Ok(None) while it is not
/// whole yet.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<Head>, Reject> {
    // Left uninitialized: httparse fills what it uses, and a request's
    // parse should not first write 8 KiB of empty headers.
    let mut storage = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut storage) {
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
        Err(httparse::Error::Version) if is_other_version(buf) => Err(unparsable(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")),
        Err(e) => Err(unparsable(400, format!("malformed request: {e}"))),
    }
}

impl<S: Transport> Wire<S> {
    /// Reads the next request head. Ok(None) when the client closed (or
    /// went idle) cleanly between requests. A head must be whole within
    /// `limit` of its first byte, however the bytes trickle in.
    pub(super) fn read_head(&mut self, limit: Duration) -> Result<Option<Head>, Reject> {
        let mut started = (!self.buffered().is_empty()).then(Instant::now);
        loop {
            if !self.buffered().is_empty()
                && let Some(head) = parse_head(self.buffered())?
            {
                self.consume(head.len);
                return Ok(Some(head));
            }
            let inside = !self.buffered().is_empty();
            if started.is_some_and(|t| t.elapsed() >= limit) {
                return Err(reject(408, "no complete request head before the idle timeout"));
            }
            match self.fill() {
                Ok(0) if !inside => return Ok(None),
                Ok(0) => return Err(reject(400, "connection closed inside a request head")),
                Ok(_) => {
                    started.get_or_insert_with(Instant::now);
                }
                Err(e) if wire::is_idle(&e) && inside => return Err(reject(408, "no complete request before the idle timeout")),
                Err(e) => {
                    log_debug!("connection ends: {e}");
                    return Ok(None);
                }
            }
        }
    }
}

/// Whether a request line that httparse refused names an HTTP version
/// other than 1.x (`GET / HTTP/3.0`), rather than being garbage.
fn is_other_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    line.rsplit(|&b| b == b' ').next().is_some_and(|v| v.starts_with(b"HTTP/") && v.get(5).is_some_and(u8::is_ascii_digit))
}
