//! One request, whatever the protocol: what the HTTP/1.1 loop
//! ([`http`](super::http)) and an HTTP/2 stream ([`h2`](super::h2)) both do
//! between reading a request and writing its response. The request is
//! described once ([`Asked`]), given to the mount its path chooses (404
//! when none does), its app's panic made a 500, and the answer logged
//! and journaled in one form.
//!
//! Framing, flow control and connection state stay with each protocol;
//! nothing here reads or writes a connection.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::apps::{Opener, Request, Response};
use crate::journal::Exchange;
use crate::routing::{Destination, Mount};
use crate::{log_error, log_info};

/// The largest request head we take: an HTTP/1.1 head past it gets 431,
/// and HTTP/2 announces it as its header list limit.
pub const MAX_HEAD: usize = 64 * 1024;

/// A request as both protocols describe it to an app and to the journal.
pub struct Asked<'a> {
    /// The method as received.
    pub method: &'a str,
    /// The request target as sent: path and query.
    pub target: &'a str,
    /// The headers, in the order received (over HTTP/2, `:authority` as `host`
    /// when no Host header came).
    pub headers: &'a [(String, String)],
    /// `scheme://host:port` and the target, for log lines and the journal.
    pub url: &'a str,
    /// When the request's head had been read: the start of its duration.
    pub started: Instant,
}

/// The URL a request to `dest` for `target` is logged and journaled as.
pub fn url(dest: &Destination, target: &str) -> String {
    format!("{}://{}:{}{target}", dest.site.scheme.as_str(), dest.host, dest.port)
}

/// Splits a request target into path and query ([`crate::url::target_parts`]).
pub fn split_target(target: &str) -> (&str, &str) {
    let (path, query) = crate::url::target_parts(target);
    (path, query.unwrap_or(""))
}

/// The answer when no route of the site takes `path`.
pub fn no_route(dest: &Destination, path: &str) -> Response {
    Response::text(404, &format!("no route for {path} on {}:{}", dest.host, dest.port))
}

/// The connection's own side of a request, which only HTTP/1.1 over a
/// socket of the process has: the client's fd and how to open more.
#[derive(Default)]
pub struct Client {
    /// The client's socket, for apps that notice a client gone away.
    pub fd: Option<std::os::fd::RawFd>,
    /// Who in this process opened the connection, when the client is this process.
    pub opener: Option<Opener>,
}

/// Calls `mount`'s app with the request, its body read from `body`; a
/// panic in the app becomes 500.
pub fn call(dest: &Destination, asked: &Asked, mount: &Mount, body: &mut (dyn Read + Send), client: Client) -> Response {
    let (path, query) = split_target(asked.target);
    let rest = path.get(mount.prefix.len()..).unwrap_or("");
    let mut request = Request {
        method: asked.method.to_string(),
        scheme: dest.site.scheme.as_str(),
        host: dest.host.clone(),
        port: dest.port,
        target: asked.target.to_string(),
        script_name: mount.prefix.clone(),
        path_info: percent_encoding::percent_decode_str(rest).decode_utf8_lossy().into_owned(),
        query: query.to_string(),
        headers: asked.headers.to_vec(),
        body,
        client: client.fd,
        opener: client.opener,
    };
    catch_unwind(AssertUnwindSafe(|| mount.app.call(&mut request))).unwrap_or_else(|_| {
        log_error!("{} {}: the app of route {} panicked", asked.method, asked.url, mount.route);
        Response::text(500, "the app failed")
    })
}

/// The log line of an answer, written before the response goes out: once
/// the client has its last byte it may exit, and our thread with it.
pub fn log_answer(asked: &Asked, status: u16, route: &str) {
    log_info!("{} {} -> {status} (route {route}, {} ms)", asked.method, asked.url, asked.started.elapsed().as_millis());
}

/// What the journal records of an answer besides the request.
pub struct Answered<'a> {
    /// The `<NAME>` of the route that answered; `-` when none did.
    pub route: &'a str,
    /// The status answered.
    pub status: u16,
    /// Bytes of the request read: head and body (over HTTP/2, the body alone).
    pub request_bytes: u64,
    /// Bytes of the response written (over HTTP/2, the body alone).
    pub response_bytes: u64,
    /// Fields the app adds to the journal line (see [`Response::journal`]).
    pub extra: &'a [(&'static str, serde_json::Value)],
}

/// The journal entry of an answer, when the run keeps a journal.
pub fn journal(dest: &Destination, asked: &Asked, answered: &Answered) {
    if let Some(journal) = dest.journal.as_deref() {
        journal.request(&Exchange {
            route: answered.route,
            method: asked.method,
            url: asked.url,
            status: answered.status,
            request_bytes: answered.request_bytes,
            response_bytes: answered.response_bytes,
            duration_ms: asked.started.elapsed().as_secs_f64() * 1000.0,
            extra: answered.extra,
        });
    }
}

/// The `Date` field's value for now (RFC 9110 section 6.6.1), formatted
/// once a second per thread rather than for every response.
pub fn http_date() -> [u8; 29] {
    thread_local! {
        static LAST: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let (when, text) = last.get();
        if when == second {
            return text;
        }
        // An IMF-fixdate is 29 bytes (until the year 10000).
        let text = <[u8; 29]>::try_from(httpdate::fmt_http_date(now).as_bytes()).unwrap_or(text);
        last.set((second, text));
        text
    })
}
