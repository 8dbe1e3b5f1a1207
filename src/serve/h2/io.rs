//! The async side of a connection's socket, for the HTTP/2 server and the
//! TLS-terminating relay: the socket borrowed (never closed) as a tokio
//! stream, bytes already read put back in front of it, and a TLS session
//! whose handshake is done carried on over it.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The connection's socket as a tokio stream, borrowed: dropping it leaves
/// the fd open, in the mode it had, for its owner to close. Reads and
/// writes pass MSG_DONTWAIT, so the fd need not be non-blocking.
pub struct Borrowed(AsyncFd<Fd>);

/// A bare fd number: AsyncFd never closes it.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Borrowed {
    /// Must be called inside a runtime.
    ///
    /// # Safety
    /// `fd` must be an open socket that stays open, the same socket, while
    /// the result lives, and is read and written by nobody else meanwhile.
    pub unsafe fn new(fd: RawFd) -> io::Result<Borrowed> {
        // SAFETY: the caller's promise; on failure the fd is not closed
        // (a bare number owns nothing).
        unsafe { AsyncFd::register(Fd(fd)) }.map(Borrowed).map_err(io::Error::from)
    }

    /// One non-blocking call `op` once the socket is ready for `interest`.
    fn poll_io(&self, cx: &mut Context<'_>, interest: Interest, mut op: impl FnMut(RawFd) -> isize) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(if interest == Interest::READABLE { self.0.poll_read_ready(cx) } else { self.0.poll_write_ready(cx) })?;
            match guard.try_io(|fd| {
                let n = op(fd.get_ref().0);
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
            }) {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(done) => return Poll::Ready(done),
                // Not ready after all: readiness cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncRead for Borrowed {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        // SAFETY: `unfilled` is valid for writes of its length.
        let n = ready!(self.poll_io(cx, Interest::READABLE, |fd| unsafe {
            libc::recv(fd, unfilled.as_mut_ptr().cast(), unfilled.len(), libc::MSG_DONTWAIT)
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Borrowed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // SAFETY: `buf` is valid for reads of its length.
        self.poll_io(cx, Interest::WRITABLE, |fd| unsafe {
            libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // SAFETY: shuts the sending side of the borrowed socket.
        unsafe { libc::shutdown(self.0.get_ref().0, libc::SHUT_WR) };
        Poll::Ready(Ok(()))
    }
}

/// A stream with bytes already read from it put back in front.
pub struct Rewind<T> {
    front: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner`, whose reads give `front` first.
    pub fn new(front: Vec<u8>, inner: T) -> Rewind<T> {
        Rewind { front, at: 0, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.front.len() {
            let n = buf.remaining().min(this.front.len() - this.at);
            buf.put_slice(&this.front[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A TLS session, its handshake already done, carried on over an async
/// stream: plaintext in and out, records on the stream.
pub struct Tls<T> {
    session: rustls::ServerConnection,
    io: T,
    /// Records taken from the session, from `sent` on not yet written.
    records: Vec<u8>,
    sent: usize,
    /// The stream ended (or the session failed): reads return end of file.
    ended: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Tls<T> {
    /// Carries on `session`, whose handshake is done, over `io`.
    pub fn new(session: rustls::ServerConnection, io: T) -> Tls<T> {
        Tls { session, io, records: Vec::new(), sent: 0, ended: false }
    }

    /// Sends the session's pending records; Ready when none is left.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.sent < self.records.len() {
                match ready!(Pin::new(&mut self.io).poll_write(cx, &self.records[self.sent..])) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => self.sent += n,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            } else if self.session.wants_write() {
                self.records.clear();
                self.sent = 0;
                self.session.write_tls(&mut self.records)?;
            } else {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tls<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.session.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    // 0: the client's close_notify, a clean end.
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The stream ended without close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            // Alerts and key updates go out as the socket takes them; a
            // read never waits for the client to read.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            // One read of records at a time, and only once the plaintext
            // is all taken: the session's buffer never overflows.
            match this.session.read_tls(&mut Polled { io: &mut this.io, cx }) {
                Ok(0) => this.ended = true,
                Ok(_) => {
                    if let Err(e) = this.session.process_new_packets() {
                        // Tell the client why, then give up.
                        let _ = this.poll_send(cx);
                        this.ended = true;
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// An async stream read the way rustls reads: Pending becomes WouldBlock
/// (the waker is registered all the same).
struct Polled<'a, 'b, T> {
    io: &'a mut T,
    cx: &'a mut Context<'b>,
}

impl<T: AsyncRead + Unpin> Read for Polled<'_, '_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut filled) {
            Poll::Ready(Ok(())) => Ok(filled.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tls<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Records from earlier writes go first, so the session's buffer
        // stays small.
        ready!(this.poll_send(cx))?;
        let n = this.session.writer().write(buf)?;
        // Sent as far as the socket takes it now; the rest goes out on the
        // next write or flush.
        let _ = this.poll_send(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.session.send_close_notify();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
