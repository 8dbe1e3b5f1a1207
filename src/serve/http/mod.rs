//! The dispatcher's HTTP/1.1 server loop over any [`Transport`]:
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
mod buffered;
mod head;
mod response;
#[cfg(test)]
pub(crate) mod tests;
mod wire;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::apps::{Request, Response};
use crate::config::route::Scheme;
use crate::journal::Exchange;
use crate::routing::Destination;
use crate::{log_debug, log_error, log_info};
use body::BodyReader;
use wire::Wire;

pub use buffered::{Buffered, answer_all_buffered, answer_buffered, waits_for_more};
use head::Head;
pub use head::MAX_HEAD;
pub(crate) use head::split_target;
pub(crate) use response::http_date;
pub use wire::Transport;

/// How much of a body the app left unread is skipped to keep the connection;
/// past this the connection is closed instead.
const MAX_DRAIN: u64 = 1 << 20;

/// Serves HTTP/1.1 on `stream` for a routed connection until it closes.
pub fn serve<S: Transport + Send>(stream: S, dest: &Destination) {
    serve_after(stream, dest, Vec::new());
}

/// [`serve`] for a connection whose first bytes, `read`, were already taken
/// from `stream` (by [`answer_buffered`]'s caller).
pub fn serve_after<S: Transport + Send>(stream: S, dest: &Destination, read: Vec<u8>) {
    let mut wire = Wire::with_buffered(stream, read);
    loop {
        let head = match wire.read_head(dest.idle) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(r) => {
                // h2c with prior knowledge: the preface is no HTTP/1 head.
                if wire.consumed == 0
                    && dest.site.scheme == Scheme::Http
                    && super::h2::starts_preface(wire.buffered())
                    && let Some(fd) = wire.stream.raw_fd()
                {
                    return super::h2::serve_plain(fd, wire.buffered().to_vec(), dest);
                }
                let url = format!("{}://{}:{}", dest.site.scheme.as_str(), dest.host, dest.port);
                log_error!("{url}: {} ({})", r.status, r.why);
                if answer(&mut wire, dest, None, Response::text(r.status, &r.why), None).is_ok() {
                    wire.linger();
                }
                return;
            }
        };
        match exchange(&mut wire, &head, dest) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log_debug!("connection ended: {e}");
                return;
            }
        }
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
fn exchange<S: Transport + Send>(wire: &mut Wire<S>, head: &Head, dest: &Destination) -> io::Result<bool> {
    let started = Instant::now();
    let consumed_before = wire.consumed - head.len as u64;
    let scheme = dest.site.scheme.as_str();
    let url = format!("{scheme}://{}:{}{}", dest.host, dest.port, head.target);
    let framing = match head.framing() {
        Ok(framing) => framing,
        Err(r) => {
            log_error!("{} {url}: {} ({})", head.method, r.status, r.why);
            let asked = Asked { head, route: "-", url: &url, started, request_bytes: head.len as u64 };
            answer(wire, dest, Some(&asked), Response::text(r.status, &r.why), None)?;
            return Ok(false);
        }
    };
    let expect_continue = head.minor >= 1 && head.has_token("Expect", "100-continue");
    let (path, query) = split_target(&head.target);
    let Some(site) = dest.site_now() else {
        // Its routes were removed: closed with no answer, as a server that
        // went away closes a kept-alive connection.
        log_info!("{} {url}: the route is gone; the connection closes", head.method);
        return Ok(false);
    };
    let mount = site.mount_for(path);
    let (client, opener) = (wire.stream.raw_fd(), wire.stream.opener());
    let mut body = BodyReader::new(wire, framing, expect_continue);
    let (mut response, route) = match mount {
        None => (Response::text(404, &format!("no route for {path} on {}:{}", dest.host, dest.port)), "-"),
        Some(mount) => {
            let rest = &path[mount.prefix.len()..];
            let mut req = Request {
                method: head.method.clone(),
                scheme,
                host: dest.host.clone(),
                port: dest.port,
                target: head.target.clone(),
                script_name: mount.prefix.clone(),
                path_info: percent_encoding::percent_decode_str(rest).decode_utf8_lossy().into_owned(),
                query: query.to_string(),
                headers: head.headers.clone(),
                body: &mut body,
                client,
                opener,
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
    let asked = Asked { head, route, url: &url, started, request_bytes: wire.consumed - consumed_before };
    answer(wire, dest, Some(&asked), response, Some(keep))
}

/// Writes the response (and its journal line); Ok(true) if the connection
/// stays open. `keep` None means close.
fn answer<S: Transport>(
    wire: &mut Wire<S>,
    dest: &Destination,
    asked: Option<&Asked<'_>>,
    mut response: Response,
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
    let journal = dest.journal.as_deref();
    if matches!(response.body, crate::apps::Body::Reset) {
        wire.stream.reset();
    }
    let extra = std::mem::take(&mut response.journal);
    let upgrade = match std::mem::take(&mut response.body) {
        crate::apps::Body::Upgrade(app) if status == 101 => {
            response.body = crate::apps::Body::Upgrade(Box::new(|_| {}));
            Some(app)
        }
        body => {
            response.body = body;
            None
        }
    };
    let mut out = response::Holdback::new(&mut wire.stream, journal.is_some());
    let result = response::write(&mut out, response, &how);
    if let Some(journal) = journal {
        let fallback = format!("{}://{}:{}", dest.site.scheme.as_str(), dest.host, dest.port);
        journal.request(&Exchange {
            route: asked.map_or("-", |a| a.route),
            method,
            url: asked.map_or(&fallback, |a| a.url),
            status,
            request_bytes: asked.map_or(0, |a| a.request_bytes),
            response_bytes: out.written,
            duration_ms: asked.map_or(0.0, |a| a.started.elapsed().as_secs_f64() * 1000.0),
            extra: &extra,
        });
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
