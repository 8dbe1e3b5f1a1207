//! `forward:HOST:PORT`, `tunnel:HOST:PORT` (or `unix:PATH` for either):
//! the whole connection relayed both ways to a real server until both
//! sides have closed. A tunnel relays the bytes as they come, TLS
//! included; a forward route on an https URL ends TLS first and relays the
//! plaintext (`serve::relay`), like a reverse proxy; on an http URL the
//! two are the same. An unreachable target gets a 502 and a close.
//!
//! Connecting is the caller's: inside the shim it must use the real libc
//! functions, or a forward to a routed address would loop back into it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::log_error;

/// The real server a relaying route connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// `HOST:PORT`, over TCP.
    Tcp {
        /// A host name or address literal (an IPv6 one without brackets).
        host: String,
        /// The TCP port.
        port: u16,
    },
    /// `unix:PATH`: a Unix socket, resolved against the env file's directory.
    Unix(PathBuf),
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Upstream::Tcp { host, port } => write!(f, "{host}:{port}"),
            Upstream::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A relaying route's target, and whether TLS is relayed as it comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// Where the connection is relayed.
    pub to: Upstream,
    /// `tunnel:`: bytes as they come, TLS included.
    pub tunnel: bool,
}

impl fmt::Display for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", if self.tunnel { "tunnel" } else { "forward" }, self.to)
    }
}

/// Parses what follows `forward:`.
pub fn parse(arg: &str, base: &Path) -> Result<Upstream, String> {
    let arg = arg.trim();
    if let Some(path) = arg.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("expected forward:unix:PATH".into());
        }
        return Ok(Upstream::Unix(base.join(path)));
    }
    match crate::url::host_and_port(arg) {
        Ok((host, port)) => Ok(Upstream::Tcp { host: host.to_string(), port }),
        Err(why) => Err(format!("expected forward:HOST:PORT or forward:unix:PATH, found `forward:{arg}` ({why})")),
    }
}

/// What a client gets when the target cannot be reached.
pub fn bad_gateway(target: &Upstream, e: &io::Error) -> Vec<u8> {
    let body = format!("cannot reach {target}: {e}\n");
    let head = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n";
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// Relays `client` to the target `connect` reaches.
pub fn serve(client: &UnixStream, target: &Upstream, connect: &dyn Fn(&Upstream) -> io::Result<OwnedFd>) {
    let mut client = client;
    let upstream = match connect(target) {
        Ok(fd) => UnixStream::from(fd),
        Err(e) => {
            log_error!("forward to {target}: {e}");
            let _ = client.write_all(&bad_gateway(target, &e));
            return;
        }
    };
    relay(client, &upstream);
}

/// Copies both ways until both directions have ended; an end of stream on
/// one side becomes a shutdown of writing on the other.
///
/// Both ends are held as `UnixStream` only for their Read/Write/shutdown,
/// which are the same calls on a TCP socket; no fd is duplicated.
pub fn relay(client: &UnixStream, upstream: &UnixStream) {
    std::thread::scope(|scope| {
        scope.spawn(|| pump(client, upstream));
        pump(upstream, client);
    });
}

fn pump(mut from: &UnixStream, mut to: &UnixStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Connects with the standard library (for use outside the shim).
pub fn connect_std(target: &Upstream) -> io::Result<OwnedFd> {
    match target {
        Upstream::Tcp { host, port } => Ok(std::net::TcpStream::connect((host.as_str(), *port))?.into()),
        Upstream::Unix(path) => Ok(UnixStream::connect(path)?.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn specs() {
        let base = Path::new("/srv");
        assert_eq!(parse("api.test:8080", base).unwrap(), Upstream::Tcp { host: "api.test".into(), port: 8080 });
        assert_eq!(parse("[::1]:81", base).unwrap(), Upstream::Tcp { host: "::1".into(), port: 81 });
        assert_eq!(parse("unix:run/app.sock", base).unwrap(), Upstream::Unix("/srv/run/app.sock".into()));
        assert!(parse("api.test", base).is_err());
        assert!(parse("api.test:0", base).is_err());
        assert!(parse(":80", base).is_err());
        assert!(parse("api.test:+80", base).is_err(), "the rules of every URL (crate::url)");
    }

    #[test]
    fn relays_both_ways_with_half_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap(); // until the client half-closes
            s.write_all(&got.repeat(2)).unwrap();
        });
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let relay = std::thread::spawn(move || serve(&theirs, &Upstream::Tcp { host: "127.0.0.1".into(), port }, &connect_std));
        ours.write_all(b"ping").unwrap();
        ours.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        ours.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"pingping");
        server.join().unwrap();
        relay.join().unwrap();
    }

    #[test]
    fn unreachable_targets_get_502() {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        serve(&theirs, &Upstream::Unix("/nonexistent/socket".into()), &connect_std);
        drop(theirs);
        let mut back = String::new();
        ours.read_to_string(&mut back).unwrap();
        assert!(back.starts_with("HTTP/1.1 502 Bad Gateway\r\n") && back.contains("cannot reach unix:/nonexistent/socket"), "{back}");
    }
}
