//! HTTP/2 (RFC 9113) on a routed connection, with the `h2` crate: chosen
//! by ALPN on https routes, or by the client's connection preface on http
//! routes (h2c with prior knowledge). Streams go to the same apps as
//! HTTP/1.1 requests (`stream`), concurrently; flow control, RST_STREAM
//! and GOAWAY are the crate's.
//!
//! A connection runs on a tokio runtime of its own thread (the thread the
//! dispatcher gave the connection); the socket is borrowed for it, never
//! closed here, and TLS goes on with the session whose handshake chose h2
//! (`io`). A connection with no open stream quiet past the idle timeout is
//! sent GOAWAY.

mod io;
mod stream;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::routing::Destination;
use crate::{log_debug, log_error};
pub use io::{Borrowed, Rewind, Tls};

/// What an HTTP/2 client sends first (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the first bytes a client sent (`bytes`, perhaps not all of the
/// preface yet) open an HTTP/2 connection.
pub fn starts_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(PREFACE.len());
    n > 0 && bytes[..n] == PREFACE[..n]
}

/// Serves h2c on the socket `fd`, whose first bytes `read` were already
/// taken from it.
pub fn serve_plain(fd: RawFd, read: Vec<u8>, dest: &Destination) {
    run(async {
        // SAFETY: the connection's socket, open until the caller returns,
        // which is after this runtime is gone.
        let socket = unsafe { Borrowed::new(fd) }?;
        connection(Rewind::new(read, socket), dest).await;
        Ok(())
    });
}

/// Serves h2 on the socket `fd` inside `session`, whose handshake is done.
pub fn serve_tls(fd: RawFd, session: rustls::ServerConnection, dest: &Destination) {
    run(async {
        // SAFETY: as for `serve_plain`.
        let socket = unsafe { Borrowed::new(fd) }?;
        connection(Tls::new(session, socket), dest).await;
        Ok(())
    });
}

/// Runs `work` on a runtime of this thread's own; the runtime's blocking
/// threads (for apps that may block) start on demand and inherit this
/// thread's signal mask.
pub fn run(work: impl Future<Output = std::io::Result<()>>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .thread_name("intercept-h2")
        .thread_stack_size(256 * 1024)
        .build();
    match runtime {
        Ok(runtime) => {
            if let Err(e) = runtime.block_on(work) {
                log_error!("cannot serve the connection: {e}");
            }
        }
        Err(e) => log_error!("cannot start serving the connection: {e}"),
    }
}

/// Serves one HTTP/2 connection over `io` until it closes.
pub async fn connection<T: AsyncRead + AsyncWrite + Unpin>(io: T, dest: &Destination) {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_concurrent_streams(256)
        .max_header_list_size(crate::serve::exchange::MAX_HEAD as u32)
        .max_send_buffer_size(1 << 20);
    let handshake = builder.handshake::<_, Bytes>(io);
    let started = if dest.idle.is_zero() { Ok(handshake.await) } else { tokio::time::timeout(dest.idle, handshake).await };
    let mut conn = match started {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return log_debug!("HTTP/2 handshake failed: {e}"),
        Err(_) => return log_debug!("HTTP/2 handshake timed out"),
    };
    let open = Arc::new(AtomicUsize::new(0));
    let mut going_away = false;
    loop {
        let next = if dest.idle.is_zero() {
            conn.accept().await
        } else {
            match tokio::time::timeout(dest.idle, conn.accept()).await {
                Ok(next) => next,
                Err(_) if open.load(Ordering::Relaxed) > 0 => continue,
                // Quiet with a GOAWAY sent: the client is gone.
                Err(_) if going_away => return,
                Err(_) => {
                    conn.graceful_shutdown();
                    going_away = true;
                    continue;
                }
            }
        };
        match next {
            Some(Ok((request, respond))) => {
                let (dest, open) = (dest.clone(), Open::count(&open));
                tokio::spawn(async move {
                    stream::serve(request, respond, dest).await;
                    drop(open);
                });
            }
            Some(Err(e)) => return log_debug!("HTTP/2 connection ended: {e}"),
            None => return,
        }
    }
}

/// One open stream, counted while it lives (a panic included).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
