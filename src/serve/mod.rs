//! One routed connection from its first byte to its close: a TLS session
//! first when the site is `https://`, then HTTP/2 when ALPN chose it (or
//! the client opened with the HTTP/2 preface), else the HTTP/1.1 loop; or,
//! for an https `forward:` route, the plaintext relay to its upstream.

pub mod exchange;
pub mod h2;
pub mod http;
pub mod relay;
pub mod tls;
pub mod trust;

use std::path::Path;
use std::time::Duration;

use crate::config::route::Scheme;
use crate::log_error;
use crate::routing::Destination;
use http::Transport;

/// A TLS session over a transport: closing our side sends close_notify
/// first.
impl<S: Transport> Transport for rustls::StreamOwned<rustls::ServerConnection, S> {
    fn close_write(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
        self.sock.close_write();
    }

    fn limit_reads(&mut self, limit: Duration) {
        self.sock.limit_reads(limit);
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.sock.raw_fd()
    }

    fn reset(&mut self) {
        self.sock.reset();
    }

    fn opener(&self) -> Option<crate::apps::Opener> {
        self.sock.opener()
    }
}

/// Serves a plain-http connection whose first bytes, `read`, were already
/// taken from `stream`: HTTP/1.1, or HTTP/2 when the client opens with its
/// preface (h2c with prior knowledge).
pub fn serve_plain<S: Transport + Send>(stream: S, dest: &Destination, read: Vec<u8>) {
    if let http::Ended::NotHttp1 { stream, read } = http::serve_after(stream, dest, read, true) {
        if h2::starts_preface(&read)
            && let Some(fd) = stream.raw_fd()
        {
            // `stream` stays ours (and open) while HTTP/2 borrows its socket.
            return h2::serve_plain(fd, read, dest);
        }
        // Neither: the HTTP/1.1 loop answers it as the bad request it is.
        let _ = http::serve_after(stream, dest, read, false);
    }
}

/// Serves `stream` for `dest`; `ca_dir` holds the CA for https sites.
pub fn serve<S: Transport + Send>(mut stream: S, dest: &Destination, ca_dir: &Path) {
    if dest.site.scheme == Scheme::Http {
        return serve_plain(stream, dest, Vec::new());
    }
    let where_ = format!("https://{}:{}", dest.host, dest.port);
    // A relay's upstream speaks HTTP/1.1 (or what it upgrades to): its
    // clients are offered nothing else.
    let offer_h2 = dest.site.forward.is_none();
    let config = match tls::authority(ca_dir).and_then(|a| a.server_config(&dest.host, offer_h2).map_err(std::io::Error::other)) {
        Ok(config) => config,
        Err(e) => {
            log_error!("{where_}: cannot serve TLS: {e}");
            return;
        }
    };
    let mut session = match rustls::ServerConnection::new(config) {
        Ok(session) => session,
        Err(e) => {
            log_error!("{where_}: cannot start TLS: {e}");
            return;
        }
    };
    while session.is_handshaking() {
        if let Err(e) = session.complete_io(&mut stream) {
            // Typically the client rejected our certificate (it does not
            // trust the intercept CA) or spoke something other than TLS.
            log_error!("{where_}: TLS handshake failed: {e}");
            return;
        }
    }
    if let Some(forward) = &dest.site.forward {
        return relay::serve(session, stream, &forward.1.to);
    }
    if session.alpn_protocol() == Some(b"h2")
        && let Some(fd) = stream.raw_fd()
    {
        // `stream` stays ours (and open) while HTTP/2 borrows its socket.
        return h2::serve_tls(fd, session, dest);
    }
    let mut tls_stream = rustls::StreamOwned::new(session, stream);
    http::serve(&mut tls_stream, dest);
    tls_stream.conn.send_close_notify();
    let _ = tls_stream.conn.complete_io(&mut tls_stream.sock);
}
