//! The request body as an app reads it: framed by Content-Length or by
//! chunked transfer coding (trailers read and dropped), streamed from the
//! connection's buffer, never past its end.
//!
//! `Expect: 100-continue` is answered the first time the app asks for body
//! bytes the client has not sent yet: a client waiting for the go-ahead
//! gets it exactly when the app wants the body.

use std::io::{self, Read};

use super::wire::{Transport, Wire};

/// Longest chunk-size line accepted (size plus extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers(usize),
    Done,
}

pub(super) struct BodyReader<'c, S> {
    wire: &'c mut Wire<S>,
    state: State,
    /// `Expect: 100-continue` not answered yet.
    continue_pending: bool,
    /// The framing broke (bad chunk, early end): the connection cannot go on.
    pub broken: bool,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl<'c, S: Transport> BodyReader<'c, S> {
    pub fn new(wire: &'c mut Wire<S>, framing: Framing, expect_continue: bool) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        BodyReader { wire, state, continue_pending: expect_continue && state != State::Done, broken: false }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the client is still waiting for `100 Continue` (it may or may
    /// not send the body, so the connection cannot be reused).
    pub fn never_started(&self) -> bool {
        self.continue_pending
    }

    /// Reads past what the app left unread, up to `limit` bytes; true if
    /// the body ended within it.
    pub fn drain(&mut self, limit: u64) -> bool {
        if self.continue_pending {
            return false;
        }
        let mut left = limit;
        let mut scratch = [0u8; 16 * 1024];
        while !self.done() && left > 0 {
            match self.read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => left = left.saturating_sub(n as u64),
                Err(_) => return false,
            }
        }
        self.done()
    }

    /// Buffered bytes, filling (and sending 100 Continue) when there are none.
    fn available(&mut self) -> io::Result<usize> {
        if self.wire.buffered().is_empty() {
            if self.continue_pending {
                self.continue_pending = false;
                self.wire.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                self.wire.stream.flush()?;
            }
            if self.wire.fill()? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed inside the request body"));
            }
        }
        self.continue_pending = false;
        Ok(self.wire.buffered().len())
    }

    fn step(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        match self.state {
            State::Done => Ok(Some(0)),
            State::Length(left) | State::ChunkData(left) => {
                let n = self.available()?.min(out.len()).min(usize::try_from(left).unwrap_or(usize::MAX));
                out[..n].copy_from_slice(&self.wire.buffered()[..n]);
                self.wire.consume(n);
                let left = left - n as u64;
                self.state = match self.state {
                    State::Length(_) if left == 0 => State::Done,
                    State::Length(_) => State::Length(left),
                    _ if left == 0 => State::ChunkEnd,
                    _ => State::ChunkData(left),
                };
                Ok(Some(n))
            }
            State::ChunkSize => {
                self.available()?;
                let len = self.wire.line(MAX_CHUNK_LINE).map_err(|_| invalid("chunk size line too long"))?;
                let Some(len) = len else { return Err(invalid("client closed inside a chunk size")) };
                let size = match httparse::parse_chunk_size(&self.wire.buffered()[..len]) {
                    Ok(httparse::Status::Complete((_, size))) => size,
                    _ => return Err(invalid("invalid chunk size")),
                };
                self.wire.consume(len);
                self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                Ok(None)
            }
            State::ChunkEnd => {
                while self.wire.buffered().len() < 2 {
                    if self.wire.fill()? == 0 {
                        return Err(invalid("client closed after chunk data"));
                    }
                }
                if &self.wire.buffered()[..2] != b"\r\n" {
                    return Err(invalid("chunk data longer than its size"));
                }
                self.wire.consume(2);
                self.state = State::ChunkSize;
                Ok(None)
            }
            State::Trailers(seen) => {
                let Some(len) = self.wire.line(MAX_TRAILERS)? else {
                    return Err(invalid("client closed inside the trailers"));
                };
                self.wire.consume(len);
                self.state = match (len, seen + len) {
                    (2, _) => State::Done,
                    (_, total) if total > MAX_TRAILERS => return Err(invalid("trailers over 64 KiB")),
                    (_, total) => State::Trailers(total),
                };
                Ok(None)
            }
        }
    }
}

impl<S: Transport> Read for BodyReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.step(out) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => continue,
                Err(e) => {
                    self.broken = true;
                    self.state = State::Done;
                    return Err(e);
                }
            }
        }
    }
}
