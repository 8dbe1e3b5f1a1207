//! Reaching a real server from an app: one HTTP/1.1 exchange with an origin
//! (`http://` or `https://`, TLS verified against the system CAs and the
//! user's `SSL_CERT_FILE`), used by a stub's `proxyBaseUrl` and by a `har:`
//! route that records.
//!
//! How the TCP connection is made is the caller's choice ([`Via`]): through
//! the process's own `connect` (inside the shim, its hooks: a routed origin
//! is answered by its route) or through the connector the host installed
//! with [`set_real_connector`] (inside the shim, the real libc: a routed
//! origin is reached for real, so a recording never loops into itself).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};

use super::app::Duplex;
use super::forward::{self, Upstream};
use crate::url::Scheme;

/// Headers that describe one hop, never passed on either way.
pub const HOP_BY_HOP: [&str; 9] =
    ["host", "connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade", "te", "trailer"];

/// Whether `name` (any case) is one of the [`HOP_BY_HOP`] headers.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// How to make the TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The process's `connect`, hooks and all.
    Process,
    /// The real network, around any hooks.
    Real,
}

type Connector = fn(&Upstream) -> io::Result<OwnedFd>;
static REAL: OnceLock<Connector> = OnceLock::new();

/// Installs how [`Via::Real`] connects (the shim: its real-libc connect).
/// Without it, the standard library's connect is used.
pub fn set_real_connector(connect: Connector) {
    let _ = REAL.set(connect);
}

/// An origin: `http[s]://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Whether the scheme is `https` (TLS, verified).
    pub tls: bool,
    /// The host, without brackets for an IPv6 address.
    pub host: String,
    /// The port given, else the scheme's.
    pub port: u16,
    /// A path prefix without its trailing `/` (often empty).
    pub prefix: String,
}

impl Origin {
    /// A base URL as [`crate::url`] reads every URL, with no query or
    /// fragment: its path is the prefix.
    pub fn parse(base: &str) -> Result<Origin, String> {
        let url = crate::url::parse(base).map_err(|e| format!("`{base}`: {e}"))?;
        if url.query.is_some() || url.fragment.is_some() {
            return Err(format!("`{base}`: a base URL has no query or fragment"));
        }
        let prefix = url.path.trim_end_matches('/').to_string();
        Ok(Origin { tls: url.scheme.is_tls(), host: url.host.to_string(), port: url.port, prefix })
    }

    /// The `Host` header's value: the port only when not the scheme's.
    pub fn authority(&self) -> String {
        crate::url::authority(&self.host, self.port, if self.tls { Scheme::Https } else { Scheme::Http })
    }
}

/// Connects to `upstream`.
pub fn connect(upstream: &Upstream, via: Via) -> io::Result<OwnedFd> {
    match via {
        Via::Process => forward::connect_std(upstream),
        Via::Real => REAL.get().copied().unwrap_or(forward::connect_std)(upstream),
    }
}

/// A request to send: the target is appended to the origin's prefix.
pub struct Outgoing<'a> {
    /// The method, sent as is.
    pub method: &'a str,
    /// The path and query, appended to the origin's prefix.
    pub target: &'a str,
    /// Headers to send (hop-by-hop ones are left out; `Host` is the origin's).
    pub headers: &'a [(String, String)],
    /// The whole body, empty for none.
    pub body: &'a [u8],
}

/// A response head, and the rest of the response to read.
pub struct Incoming {
    /// The final status: interim 1xx answers are skipped, but for a 101.
    pub status: u16,
    /// The reason phrase, as the origin sent it.
    pub reason: Option<String>,
    /// Every header but the hop-by-hop ones.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked, ending where the response ends.
    pub body: Box<dyn Read + Send>,
    /// The body's length when the response said it.
    pub length: Option<u64>,
}

/// Sends one request (HTTP/1.1, `Connection: close`) and reads the head of
/// its response.
pub fn exchange(origin: &Origin, request: &Outgoing<'_>, via: Via) -> io::Result<Incoming> {
    let tcp: TcpStream = connect(&Upstream::Tcp { host: origin.host.clone(), port: origin.port }, via)?.into();
    let mut stream: Box<dyn Duplex + Send> = if origin.tls {
        let name = rustls::pki_types::ServerName::try_from(origin.host.clone()).map_err(io::Error::other)?;
        let session = rustls::ClientConnection::new(client_config()?, name).map_err(io::Error::other)?;
        Box::new(rustls::StreamOwned::new(session, tcp))
    } else {
        Box::new(tcp)
    };
    let mut head =
        format!("{} {}{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", request.method, origin.prefix, request.target, origin.authority());
    for (name, value) in request.headers.iter().filter(|(n, _)| !is_hop_by_hop(n)) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || !matches!(request.method, "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE") {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(request.body)?;
    stream.flush()?;
    read_head(stream, request.method == "HEAD")
}

fn read_head(mut stream: Box<dyn Duplex + Send>, head_only: bool) -> io::Result<Incoming> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut headers);
        let len = match parsed.parse(&buf).map_err(io::Error::other)? {
            httparse::Status::Partial if buf.len() < 64 * 1024 => {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::Error::other("the connection closed before a response head"));
                }
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            httparse::Status::Partial => return Err(io::Error::other("response head over 64 KiB")),
            httparse::Status::Complete(len) => len,
        };
        let status = parsed.code.unwrap_or(502);
        if (100..200).contains(&status) && status != 101 {
            buf.drain(..len); // an interim answer: the real one follows
            continue;
        }
        let (mut length, mut chunked) = (None, false);
        let mut kept = Vec::new();
        for h in parsed.headers.iter() {
            let value = String::from_utf8_lossy(h.value).into_owned();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
            if !is_hop_by_hop(h.name) {
                kept.push((h.name.to_string(), value));
            }
        }
        let reason = parsed.reason.map(str::to_string);
        let rest = io::Cursor::new(buf[len..].to_vec()).chain(stream);
        let (body, length): (Box<dyn Read + Send>, _) = if head_only || status == 204 || status == 304 {
            (Box::new(io::empty()), Some(0))
        } else if chunked {
            (Box::new(Dechunk::new(rest)), None)
        } else if let Some(n) = length {
            (Box::new(rest.take(n)), Some(n))
        } else {
            (Box::new(rest), None)
        };
        return Ok(Incoming { status, reason, headers: kept, body, length });
    }
}

/// A chunked body read as plain bytes; trailers are read and dropped.
pub struct Dechunk<R> {
    inner: io::BufReader<R>,
    left: u64,
    done: bool,
}

impl<R: Read> Dechunk<R> {
    /// Reads the chunked body coming from `inner`.
    pub fn new(inner: R) -> Dechunk<R> {
        Dechunk { inner: io::BufReader::new(inner), left: 0, done: false }
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        io::BufRead::read_until(&mut self.inner, b'\n', &mut line)?;
        if line.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the chunked body ended early"));
        }
        Ok(line)
    }
}

impl<R: Read> Read for Dechunk<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            self.left = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, size))) => size,
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "a bad chunk size line")),
            };
            if self.left == 0 {
                while !matches!(self.line()?.as_slice(), b"\r\n" | b"\n") {} // trailers, then the end
                self.done = true;
                return Ok(0);
            }
        }
        let want = out.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the chunked body ended early"));
        }
        self.left -= n as u64;
        if self.left == 0 {
            self.line()?; // the CRLF after the chunk
        }
        Ok(n)
    }
}

/// Trust for `https://` origins: the system's CAs and those of
/// `SSL_CERT_FILE` (under `intercept run`, the bundle of the system CAs,
/// the user's and ours).
fn client_config() -> io::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let made = CONFIG.get_or_init(|| {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let system = std::ffi::OsString::from("/etc/ssl/certs/ca-certificates.crt");
        for file in std::iter::once(system).chain(std::env::var_os("SSL_CERT_FILE")) {
            for cert in CertificateDer::pem_file_iter(&file).into_iter().flatten().flatten() {
                let _ = roots.add(cert);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = Origin::parse("https://api.test:8443/v1/").unwrap();
        assert_eq!((o.tls, o.host.as_str(), o.port, o.prefix.as_str()), (true, "api.test", 8443, "/v1"));
        assert_eq!(o.authority(), "api.test:8443");
        let o = Origin::parse("http://[::1]").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.authority()), ("::1", 80, "[::1]".to_string()));
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("http://:80").is_err());
        assert!(Origin::parse("http://x:port").is_err());
        // The rules every URL has (see crate::url).
        assert!(Origin::parse("http://x:0").is_err() && Origin::parse("http://x:+80").is_err());
        assert_eq!(Origin::parse("HTTP://x.test").unwrap().port, 80);
    }

    #[test]
    fn chunked_bodies_read_plain() {
        let wire: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let mut body = Vec::new();
        Dechunk::new(wire).read_to_end(&mut body).unwrap();
        assert_eq!(body, b"hello world");
        let cut: &[u8] = b"5\r\nhel";
        assert_eq!(Dechunk::new(cut).read_to_end(&mut Vec::new()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn one_exchange_with_a_server() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"\r\n\r\n{}") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Made\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            )
            .unwrap();
            String::from_utf8(got).unwrap()
        });
        let origin = Origin::parse(&format!("http://127.0.0.1:{port}/base")).unwrap();
        let headers = vec![("X-Up".to_string(), "y".to_string()), ("Connection".to_string(), "keep-alive".to_string())];
        let request = Outgoing { method: "POST", target: "/p?q=1", headers: &headers, body: b"{}" };
        let mut answer = exchange(&origin, &request, Via::Real).unwrap();
        let mut body = String::new();
        answer.body.read_to_string(&mut body).unwrap();
        assert_eq!((answer.status, answer.reason.as_deref(), body.as_str()), (201, Some("Made"), "ok"));
        assert_eq!(answer.headers, vec![("X-A".to_string(), "1".to_string())]);
        let sent = server.join().unwrap();
        assert!(
            sent.starts_with(&format!("POST /base/p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nX-Up: y\r\n")),
            "{sent}"
        );
        assert!(sent.contains("Content-Length: 2\r\n") && !sent.contains("keep-alive"), "{sent}");
    }
}
