//! The connection's read side: a growable buffer over the stream, filled on
//! demand, with a count of the bytes used so far (for the journal).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::serve::exchange::MAX_HEAD;

/// What the serve loop needs of a connection beyond reading and writing.
/// Both do nothing by default, as for an in-memory stream.
pub trait Transport: Read + Write {
    /// Shuts our sending side: the client reads to end-of-file at once,
    /// while we may still read what it sends.
    fn close_write(&mut self) {}

    /// Bounds how long each later read waits.
    fn limit_reads(&mut self, _limit: Duration) {}

    /// The socket, for apps that watch for a client going away.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// Makes the client's next read fail with ECONNRESET, as a TCP reset
    /// would; by default, a plain close is all there is.
    fn reset(&mut self) {}

    /// The thread of this process that opened the connection, when the
    /// client is this process.
    fn opener(&self) -> Option<crate::apps::Opener> {
        None
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn close_write(&mut self) {
        (**self).close_write();
    }

    fn limit_reads(&mut self, limit: Duration) {
        (**self).limit_reads(limit);
    }

    fn raw_fd(&self) -> Option<RawFd> {
        (**self).raw_fd()
    }

    fn reset(&mut self) {
        (**self).reset();
    }

    fn opener(&self) -> Option<crate::apps::Opener> {
        (**self).opener()
    }
}

impl Transport for UnixStream {
    fn close_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }

    fn limit_reads(&mut self, limit: Duration) {
        let _ = self.set_read_timeout(Some(limit.max(Duration::from_millis(1))));
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// How long a rejected client may go on sending before we close.
const LINGER: Duration = Duration::from_secs(2);

pub(super) struct Wire<S> {
    pub stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes consumed by requests so far.
    pub consumed: u64,
}

impl<S: Transport> Wire<S> {
    /// A connection whose first bytes (perhaps none) were already read by
    /// someone else.
    pub fn with_buffered(stream: S, bytes: Vec<u8>) -> Wire<S> {
        let end = bytes.len();
        Wire { stream, buf: bytes, start: 0, end, consumed: 0 }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        self.consumed += n as u64;
    }

    /// Reads more bytes after those buffered; Ok(0) at end of stream.
    pub fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Grow up to what a maximal head needs; bodies pass through
            // this buffer without growing it further.
            let grown = (self.buf.len() * 2).clamp(16 * 1024, MAX_HEAD + 16 * 1024);
            self.buf.resize(grown.max(self.end + 1), 0);
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// After a rejection: ends our sending side, so the client reads the
    /// answer and then end-of-file at once, and reads and drops what it is
    /// still sending (up to 1 MiB, for at most two seconds), so a client
    /// busy writing an oversized request gets to read the answer instead of
    /// a broken pipe.
    pub fn linger(&mut self) {
        self.stream.close_write();
        let deadline = Instant::now() + LINGER;
        let mut total = 0;
        while total < (1 << 20) {
            let n = self.buffered().len();
            self.consume(n);
            total += n;
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else { return };
            self.stream.limit_reads(left);
            match self.fill() {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Makes sure a CRLF-terminated line is buffered and returns its length
    /// including the CRLF; None at end of stream. Lines longer than `max`
    /// are an error.
    pub fn line(&mut self, max: usize) -> io::Result<Option<usize>> {
        let mut searched = 0;
        loop {
            if let Some(at) = self.buffered()[searched..].windows(2).position(|w| w == b"\r\n") {
                return Ok(Some(searched + at + 2));
            }
            searched = self.buffered().len().saturating_sub(1);
            if searched > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }
}

/// Whether a read error means the client went quiet past the idle timeout.
pub(super) fn is_idle(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
