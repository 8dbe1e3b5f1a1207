//! The HTTP/1.1 loop over one connection: each request head read and
//! its body framed here, the request itself handed to the protocol-neutral
//! [`exchange`](crate::serve::exchange), and the response framed back,
//! until either side closes. A client that opens with the HTTP/2 preface
//! is handed back to the caller ([`Ended::NotHttp1`]).

use std::io;
use std::time::Instant;

use super::body::BodyReader;
use super::head::Head;
use super::response;
use super::wire::{Transport, Wire};
use crate::apps::{Body, Response};
use crate::routing::Destination;
use crate::serve::exchange::{self, Answered, Asked, Client};
use crate::{log_debug, log_error, log_info};

/// How much of a body the app left unread is skipped to keep the connection;
/// past this the connection is closed instead.
const MAX_DRAIN: u64 = 1 << 20;

/// How the loop over a connection ended.
pub enum Ended<S> {
    /// Either side closed it, or it is done with.
    Closed,
    /// The client's first bytes were no HTTP/1 head (they do not parse as
    /// one; a slow or large head is answered here): they are `read`, and
    /// the stream is the caller's again (HTTP/2 with prior knowledge
    /// opens so; [`crate::serve`] decides).
    NotHttp1 {
        /// The connection, handed back.
        stream: S,
        /// The bytes already read from it.
        read: Vec<u8>,
    },
}

/// Serves HTTP/1.1 on `stream` for a routed connection until it closes.
pub fn serve<S: Transport + Send>(stream: S, dest: &Destination) {
    let _ = serve_after(stream, dest, Vec::new(), false);
}

/// [`serve`] for a connection whose first bytes, `read`, were already taken
/// from `stream`. With `hand_back`, a first head that does not parse is
/// handed back ([`Ended::NotHttp1`]) rather than answered 400.
pub fn serve_after<S: Transport + Send>(stream: S, dest: &Destination, read: Vec<u8>, hand_back: bool) -> Ended<S> {
    let mut wire = Wire::with_buffered(stream, read);
    loop {
        let head = match wire.read_head(dest.idle) {
            Ok(Some(head)) => head,
            Ok(None) => return Ended::Closed,
            Err(r) if hand_back && r.not_http1 && wire.consumed == 0 => {
                let read = wire.buffered().to_vec();
                return Ended::NotHttp1 { stream: wire.stream, read };
            }
            Err(r) => {
                let url = exchange::url(dest, "");
                log_error!("{url}: {} ({})", r.status, r.why);
                let asked = Asked { method: "-", target: "", headers: &[], url: &url, started: Instant::now() };
                if answer(&mut wire, dest, &asked, "-", Response::text(r.status, &r.why), To::NoRequest, 0).is_ok() {
                    wire.linger();
                }
                return Ended::Closed;
            }
        };
        match one_request(&mut wire, &head, dest) {
            Ok(true) => {}
            Ok(false) => return Ended::Closed,
            Err(e) => {
                log_debug!("connection ended: {e}");
                return Ended::Closed;
            }
        }
    }
}

/// Answers one request; Ok(true) if the connection stays open.
pub(super) fn one_request<S: Transport + Send>(wire: &mut Wire<S>, head: &Head, dest: &Destination) -> io::Result<bool> {
    let started = Instant::now();
    let consumed_before = wire.consumed - head.len as u64;
    let url = exchange::url(dest, &head.target);
    let asked = Asked { method: &head.method, target: &head.target, headers: &head.headers, url: &url, started };
    let framing = match head.framing() {
        Ok(framing) => framing,
        Err(r) => {
            log_error!("{} {url}: {} ({})", head.method, r.status, r.why);
            answer(
                wire,
                dest,
                &asked,
                "-",
                Response::text(r.status, &r.why),
                To::Request { minor: head.minor, keep: false },
                head.len as u64,
            )?;
            return Ok(false);
        }
    };
    let expect_continue = head.minor >= 1 && head.has_token("Expect", "100-continue");
    let (path, _) = exchange::split_target(&head.target);
    let Some(site) = dest.site_now() else {
        // Its routes were removed: closed with no answer, as a server that
        // went away closes a kept-alive connection.
        log_info!("{} {url}: the route is gone; the connection closes", head.method);
        return Ok(false);
    };
    let mount = site.mount_for(path);
    let client = Client { fd: wire.stream.raw_fd(), opener: wire.stream.opener() };
    let mut body = BodyReader::new(wire, framing, expect_continue);
    let (mut response, route) = match mount {
        None => (exchange::no_route(dest, path), "-"),
        Some(mount) => (exchange::call(dest, &asked, mount, &mut body, client), mount.route.as_str()),
    };
    // Whatever the app left unread is not the next request: skip a little,
    // or close.
    let mut keep = head.keep_alive() && !body.never_started() && body.drain(MAX_DRAIN);
    if body.broken {
        log_error!("{} {url}: 400 (malformed request body)", head.method);
        response = Response::text(400, "malformed request body");
        keep = false;
    }
    let request_bytes = wire.consumed - consumed_before;
    answer(wire, dest, &asked, route, response, To::Request { minor: head.minor, keep }, request_bytes)
}

/// Whom an answer goes to.
enum To {
    /// A request of HTTP/1.`minor`, after which the connection stays open
    /// if `keep`: the answer is logged.
    Request { minor: u8, keep: bool },
    /// Bytes that were no request: the connection closes after it.
    NoRequest,
}

/// Writes the response (and its log and journal lines); Ok(true) if the
/// connection stays open.
fn answer<S: Transport>(
    wire: &mut Wire<S>,
    dest: &Destination,
    asked: &Asked,
    route: &str,
    mut response: Response,
    to: To,
    request_bytes: u64,
) -> io::Result<bool> {
    let status = response.status;
    let (minor, keep_alive) = match to {
        To::Request { minor, keep } => {
            exchange::log_answer(asked, status, route);
            (minor, keep)
        }
        To::NoRequest => (1, false),
    };
    let how = response::Framing { minor, keep_alive, head_only: asked.method.eq_ignore_ascii_case("HEAD") };
    if matches!(response.body, Body::Reset) {
        wire.stream.reset();
    }
    let extra = std::mem::take(&mut response.journal);
    let upgrade = match std::mem::take(&mut response.body) {
        Body::Upgrade(app) if status == 101 => {
            response.body = Body::Upgrade(Box::new(|_| {}));
            Some(app)
        }
        body => {
            response.body = body;
            None
        }
    };
    let journaled = dest.journal.is_some();
    let mut out = response::Holdback::new(&mut wire.stream, journaled);
    let result = response::write(&mut out, response, &how);
    if journaled {
        let answered = Answered { route, status, request_bytes, response_bytes: out.written, extra: &extra };
        exchange::journal(dest, asked, &answered);
    }
    let keep = result?;
    out.release()?;
    if let Some(app) = upgrade {
        app(&mut Upgraded(wire));
    }
    Ok(keep)
}

/// An upgraded connection: what the client sent after the request head
/// first, then the stream.
struct Upgraded<'a, S>(&'a mut Wire<S>);

impl<S: Transport> io::Read for Upgraded<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wire = &mut *self.0;
        if wire.buffered().is_empty() {
            return wire.stream.read(buf);
        }
        let n = buf.len().min(wire.buffered().len());
        buf[..n].copy_from_slice(&wire.buffered()[..n]);
        wire.consume(n);
        Ok(n)
    }
}

impl<S: Transport> io::Write for Upgraded<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.stream.flush()
    }
}
