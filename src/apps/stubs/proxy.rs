//! `proxyBaseUrl`: a stub that passes its request on to a real server and
//! answers with what comes back (WireMock's "proxying", e.g. a catch-all at
//! low priority in front of the real API).
//!
//! The request goes out as HTTP/1.0 with `Connection: close`, so the answer
//! ends with the connection and never comes chunked; its body streams back
//! as it arrives. `https://` bases are verified against the system CAs and
//! the user's `SSL_CERT_FILE`. Inside the shim the connect goes through the
//! usual hooks: an unrouted base is reached for real (as the pass-through
//! setting allows), a routed one is answered by its route (a base that is
//! the stubs route itself would loop, as it would in WireMock).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};

use super::Seen;
use crate::apps::{Body, Response};
use crate::log_error;

/// Headers not passed on, either way: they describe one hop.
const HOP: [&str; 7] = ["host", "connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"];

/// Checks a `proxyBaseUrl` when the mapping loads.
pub fn check(base: &str) -> Result<(), String> {
    Base::parse(base).map(drop)
}

struct Base<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    prefix: &'a str,
}

impl Base<'_> {
    fn parse(base: &str) -> Result<Base<'_>, String> {
        let (tls, rest) = match base.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => return Err(format!("proxyBaseUrl `{base}`: expected http:// or https://")),
        };
        let (authority, prefix) = rest.find('/').map_or((rest, ""), |i| (&rest[..i], rest[i..].trim_end_matches('/')));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| format!("proxyBaseUrl `{base}`: bad port `{p}`"))?)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("proxyBaseUrl `{base}`: no host"));
        }
        Ok(Base { tls, host: host.trim_start_matches('[').trim_end_matches(']'), port, prefix })
    }
}

/// Passes the request on and answers with the upstream's answer; 502 when
/// it cannot be reached.
pub fn forward(base: &str, seen: &Seen) -> Response {
    match exchange(base, seen) {
        Ok(response) => response,
        Err(e) => {
            log_error!("stubs: proxy to {base}: {e}");
            Response::text(502, &format!("cannot reach {base}: {e}"))
        }
    }
}

fn exchange(base: &str, seen: &Seen) -> io::Result<Response> {
    let b = Base::parse(base).map_err(io::Error::other)?;
    let tcp = TcpStream::connect((b.host, b.port))?;
    let mut stream: Box<dyn ReadWrite> = if b.tls {
        let name = rustls::pki_types::ServerName::try_from(b.host.to_string()).map_err(io::Error::other)?;
        let session = rustls::ClientConnection::new(client_config()?, name).map_err(io::Error::other)?;
        Box::new(rustls::StreamOwned::new(session, tcp))
    } else {
        Box::new(tcp)
    };
    let default_port = if b.tls { 443 } else { 80 };
    let host = if b.port == default_port { b.host.to_string() } else { format!("{}:{}", b.host, b.port) };
    let mut head = format!("{} {}{} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n", seen.method, b.prefix, seen.url);
    for (name, value) in seen.headers.iter().filter(|(n, _)| !HOP.contains(&n.to_ascii_lowercase().as_str())) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", seen.body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(seen.body.as_bytes())?;
    stream.flush()?;
    // Read until the head is whole, then stream the rest.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("the connection closed before a response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf).map_err(io::Error::other)? {
            httparse::Status::Partial if buf.len() < 64 * 1024 => continue,
            httparse::Status::Partial => return Err(io::Error::other("response head over 64 KiB")),
            httparse::Status::Complete(len) => {
                let status = parsed.code.unwrap_or(502);
                let mut length = None;
                let mut kept = Vec::new();
                for h in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().ok();
                    } else if !HOP.contains(&h.name.to_ascii_lowercase().as_str()) {
                        kept.push((h.name.to_string(), value));
                    }
                }
                let reason = parsed.reason.map(str::to_string);
                let rest = io::Cursor::new(buf[len..].to_vec()).chain(stream);
                let body = Body::Stream { reader: Box::new(rest), len: length };
                return Ok(Response { status, reason, headers: kept, body, ..Default::default() });
            }
        }
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Trust for `https://` bases: `SSL_CERT_FILE` (under `intercept run`, the
/// bundle of the system CAs, the user's and ours), else the system's.
fn client_config() -> io::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let made = CONFIG.get_or_init(|| {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let file = std::env::var_os("SSL_CERT_FILE").unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        for cert in CertificateDer::pem_file_iter(&file).into_iter().flatten().flatten() {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    made.clone().map_err(io::Error::other)
}
