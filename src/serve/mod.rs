//! One routed connection from its first byte to its close: a TLS session
//! first when the site is `https://`, then the HTTP/1.1 loop.

pub mod http;
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
}

/// Serves `stream` for `dest`; `ca_dir` holds the CA for https sites.
pub fn serve<S: Transport + Send>(mut stream: S, dest: &Destination, ca_dir: &Path) {
    if dest.site.scheme == Scheme::Http {
        return http::serve(stream, dest);
    }
    let where_ = format!("https://{}:{}", dest.host, dest.port);
    let config = match tls::authority(ca_dir).and_then(|a| a.server_config(&dest.host).map_err(std::io::Error::other)) {
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
    let mut tls_stream = rustls::StreamOwned::new(session, stream);
    http::serve(&mut tls_stream, dest);
    tls_stream.conn.send_close_notify();
    let _ = tls_stream.conn.complete_io(&mut tls_stream.sock);
}
