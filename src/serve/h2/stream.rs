//! One HTTP/2 stream: the request handed to the route's app in the same
//! model HTTP/1.1 uses, and the app's response sent back with the stream's
//! flow control.
//!
//! An app that answers from memory is called on the connection's own
//! thread, its request body (if any) gathered first; any other app runs on
//! the runtime's blocking threads and reads the body as it arrives, so
//! streams on one connection are served concurrently. A streamed response
//! body is read on a blocking thread and sent as the client's window
//! allows, never gathered whole.

use std::future::poll_fn;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{CONTENT_LENGTH, DATE, HOST, HeaderName, HeaderValue};
use tokio::runtime::Handle;

use crate::apps::{Body, Response};
use crate::routing::{Destination, Mount};
use crate::serve::exchange::{self, Answered, Asked, Client};
use crate::{log_debug, log_error};

/// A request body an app that answers from memory gets whole; larger ones
/// get 413.
const MAX_GATHERED: usize = 16 << 20;
/// What all streams of the process may hold gathered at once (256 streams
/// a connection, and many connections, must not add up to gigabytes): a
/// stream that would pass it gets 413 too.
const MAX_GATHERED_IN_ALL: usize = 64 << 20;
static GATHERED_IN_ALL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// How much of a streamed response body is read at a time.
const CHUNK: usize = 64 * 1024;

/// The request, owned: the stream's parts outlive the task that calls
/// the app.
struct Owned {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    started: Instant,
    url: String,
}

impl Owned {
    fn asked(&self) -> Asked<'_> {
        Asked { method: &self.method, target: &self.target, headers: &self.headers, url: &self.url, started: self.started }
    }
}

/// Serves one stream to its end.
pub(super) async fn serve(request: http::Request<RecvStream>, mut respond: SendResponse<Bytes>, dest: Destination) {
    let (parts, mut body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    // Apps (CGI, WSGI, stubs) read the host from the Host header, which
    // HTTP/2 carries as :authority.
    if let Some(authority) = parts.uri.authority().filter(|_| !parts.headers.contains_key(HOST)) {
        headers.push(("host".to_string(), authority.to_string()));
    }
    for (name, value) in &parts.headers {
        headers.push((name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    let url = exchange::url(&dest, &target);
    let owned = Owned { method: parts.method.as_str().to_string(), target, headers, started: Instant::now(), url };
    let head_only = parts.method == http::Method::HEAD;
    let (path, _) = exchange::split_target(&owned.target);
    let Some(site) = dest.site_now() else {
        // Its routes were removed: refused, so the client may retry it.
        return respond.send_reset(Reason::REFUSED_STREAM);
    };
    let mount = if parts.method == http::Method::CONNECT { None } else { site.mount_for(path) };
    let (response, route, received) = match mount {
        None if parts.method == http::Method::CONNECT => (Response::text(405, "CONNECT is not served here"), "-".to_string(), 0),
        None => (exchange::no_route(&dest, path), "-".to_string(), 0),
        Some(mount) if mount.app.answers_from_memory() => {
            let (response, received) = match gather(&mut body, dest.idle, mount.app.reads_body()).await {
                Ok(whole) => (call(&dest, &owned, mount, &mut whole.bytes.as_slice()), whole.received),
                Err(response) => (response, 0),
            };
            (response, mount.route.clone(), received)
        }
        Some(mount) => {
            let (mount, dest2, handle) = (mount.clone(), dest.clone(), Handle::current());
            let task = tokio::task::spawn_blocking(move || {
                let mut reader = BodyReader { body, handle, idle: dest2.idle, pending: Bytes::new(), received: 0 };
                let response = call(&dest2, &owned, &mount, &mut reader);
                (response, reader.received, owned, mount.route)
            });
            match task.await {
                Ok((response, received, back, route)) => {
                    return finish(&mut respond, &dest, &back, response, route, received, head_only).await;
                }
                Err(_) => return respond.send_reset(Reason::INTERNAL_ERROR),
            }
        }
    };
    finish(&mut respond, &dest, &owned, response, route, received, head_only).await;
}

/// Sends the response and writes its log and journal lines.
async fn finish(
    respond: &mut SendResponse<Bytes>,
    dest: &Destination,
    owned: &Owned,
    mut response: Response,
    route: String,
    received: u64,
    head_only: bool,
) {
    let (asked, status) = (owned.asked(), response.status);
    exchange::log_answer(&asked, status, &route);
    let mut extra = std::mem::take(&mut response.journal);
    let sent = match send(respond, response, head_only).await {
        Ok(sent) => sent,
        Err(e) => {
            log_debug!("{} {}: the response was cut short: {e}", asked.method, asked.url);
            0
        }
    };
    if dest.journal.is_some() {
        extra.push(("http", "2".into()));
        let answered = Answered { route: &route, status, request_bytes: received, response_bytes: sent, extra: &extra };
        exchange::journal(dest, &asked, &answered);
    }
}

/// Calls the mount's app (HTTP/2 has no client fd of the process's own).
fn call(dest: &Destination, owned: &Owned, mount: &Mount, body: &mut (dyn Read + Send)) -> Response {
    exchange::call(dest, &owned.asked(), mount, body, Client::default())
}

/// A request body gathered whole, counted in [`GATHERED_IN_ALL`] until
/// dropped.
struct Gathered {
    bytes: Vec<u8>,
    received: u64,
}

impl Drop for Gathered {
    fn drop(&mut self) {
        GATHERED_IN_ALL.fetch_sub(self.bytes.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The whole request body, for an app that answers from memory (only
/// counted, not kept, when the app does not read it).
async fn gather(body: &mut RecvStream, idle: Duration, keep: bool) -> Result<Gathered, Response> {
    use std::sync::atomic::Ordering;
    let mut whole = Gathered { bytes: Vec::new(), received: 0 };
    loop {
        let next = if idle.is_zero() {
            body.data().await
        } else {
            tokio::time::timeout(idle, body.data()).await.map_err(|_| Response::text(408, "the request body stopped arriving"))?
        };
        match next {
            None => return Ok(whole),
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                whole.received += chunk.len() as u64;
                if !keep {
                    continue;
                }
                let too_large = || Err(Response::text(413, "request body too large"));
                if whole.bytes.len() + chunk.len() > MAX_GATHERED {
                    return too_large();
                }
                if GATHERED_IN_ALL.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > MAX_GATHERED_IN_ALL {
                    GATHERED_IN_ALL.fetch_sub(chunk.len(), Ordering::Relaxed);
                    return too_large();
                }
                whole.bytes.extend_from_slice(&chunk);
            }
            Some(Err(e)) => return Err(Response::text(400, &format!("the request body was cut short: {e}"))),
        }
    }
}

/// A stream's request body read from a blocking thread as it arrives.
struct BodyReader {
    body: RecvStream,
    handle: Handle,
    idle: Duration,
    pending: Bytes,
    received: u64,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            let (body, idle) = (&mut self.body, self.idle);
            let next = self
                .handle
                .block_on(async { if idle.is_zero() { Ok(body.data().await) } else { tokio::time::timeout(idle, body.data()).await } });
            match next {
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "the request body stopped arriving")),
                Ok(None) => return Ok(0),
                Ok(Some(Ok(chunk))) => {
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.received += chunk.len() as u64;
                    self.pending = chunk;
                }
                Ok(Some(Err(e))) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// Sends `response` on the stream; returns the body bytes sent.
async fn send(respond: &mut SendResponse<Bytes>, response: Response, head_only: bool) -> Result<u64, h2::Error> {
    let Response { status, headers, body, .. } = response;
    let len = match &body {
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Stream { len, .. } => *len,
        // A fault has no HTTP/2 form but a reset stream.
        Body::Raw(_) => return reset(respond, Reason::PROTOCOL_ERROR),
        Body::Reset | Body::Upgrade(_) => return reset(respond, Reason::INTERNAL_ERROR),
    };
    let Ok(code) = http::StatusCode::from_u16(status).map_err(drop).and_then(|c| if c.is_informational() { Err(()) } else { Ok(c) }) else {
        return reset(respond, Reason::INTERNAL_ERROR);
    };
    let bodiless = status == 204 || status == 304;
    let mut head = http::Response::new(());
    *head.status_mut() = code;
    let map = head.headers_mut();
    for (name, value) in &headers {
        if crate::apps::origin::is_hop_by_hop(name) || name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("date") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            map.append(name, value);
        }
    }
    if let Ok(date) = HeaderValue::from_bytes(&exchange::http_date()) {
        map.insert(DATE, date);
    }
    if let Some(len) = len.filter(|_| !bodiless) {
        map.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    let end = head_only || bodiless || len == Some(0);
    let mut stream = respond.send_response(head, end)?;
    if end {
        return Ok(0);
    }
    match body {
        Body::Bytes(bytes) => {
            let n = bytes.len() as u64;
            // Already in memory: h2 sends it as the window opens.
            stream.send_data(Bytes::from(bytes), true)?;
            Ok(n)
        }
        Body::Stream { reader, .. } => {
            let handle = Handle::current();
            tokio::task::spawn_blocking(move || pump(reader, stream, handle)).await.unwrap_or(Ok(0))
        }
        _ => unreachable!("answered above"),
    }
}

fn reset(respond: &mut SendResponse<Bytes>, reason: Reason) -> Result<u64, h2::Error> {
    respond.send_reset(reason);
    Ok(0)
}

/// Sends a streamed body as the client's window allows.
fn pump(mut reader: Box<dyn Read + Send>, mut stream: SendStream<Bytes>, handle: Handle) -> Result<u64, h2::Error> {
    let mut sent = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log_error!("a response body failed after {sent} bytes: {e}");
                stream.send_reset(Reason::INTERNAL_ERROR);
                return Ok(sent);
            }
        };
        if n == 0 {
            stream.send_data(Bytes::new(), true)?;
            return Ok(sent);
        }
        let mut chunk = Bytes::copy_from_slice(&buf[..n]);
        while !chunk.is_empty() {
            stream.reserve_capacity(chunk.len());
            let granted = handle.block_on(poll_fn(|cx| stream.poll_capacity(cx)));
            let granted = match granted {
                Some(granted) => granted?,
                None => return Ok(sent), // the stream was reset
            };
            if granted > 0 {
                let piece = chunk.split_to(granted.min(chunk.len()));
                sent += piece.len() as u64;
                stream.send_data(piece, false)?;
            }
        }
    }
}
