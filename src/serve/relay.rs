//! An https `forward:` route: TLS ends here, like a reverse proxy's, and
//! the plaintext is relayed both ways to the upstream (reached for real,
//! around any hooks) until both sides have closed. An unreachable upstream
//! gets a 502 inside the TLS session.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::h2::{Borrowed, Tls, run};
use super::http::Transport;
use crate::apps::forward::{Upstream, bad_gateway};
use crate::apps::origin::{self, Via};
use crate::log_error;

/// How long a client refused with 502 may go on sending.
const LINGER: Duration = Duration::from_secs(2);

/// Relays the plaintext of `session` (its handshake done) over `stream` to
/// `to`.
pub fn serve<S: Transport>(session: rustls::ServerConnection, stream: S, to: &Upstream) {
    let upstream = match origin::connect(to, Via::Real) {
        Ok(fd) => fd,
        Err(e) => {
            log_error!("forward to {to}: {e}");
            let mut tls = rustls::StreamOwned::new(session, stream);
            let _ = tls.write_all(&bad_gateway(to, &e));
            tls.conn.send_close_notify();
            let _ = tls.conn.complete_io(&mut tls.sock);
            // The request the client is sending is read and dropped, so
            // it reads the answer rather than a reset.
            tls.sock.close_write();
            tls.sock.limit_reads(LINGER);
            let (mut sink, mut total) = ([0u8; 16 * 1024], 0);
            while total < (1 << 20) {
                match tls.sock.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            return;
        }
    };
    let Some(fd) = stream.raw_fd() else { return };
    run(async {
        // SAFETY: both sockets stay open until this runtime is gone: the
        // client's is `stream`'s, the upstream's is ours.
        let (client, server) = unsafe { (Borrowed::new(fd)?, Borrowed::new(upstream.as_raw_fd())?) };
        let (mut client, mut server) = (Tls::new(session, client), server);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
            crate::log_debug!("forward to {to} ended: {e}");
        }
        Ok(())
    });
    drop(stream);
}
