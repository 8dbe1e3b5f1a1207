//! The buffered path: answering whole requests from bytes already
//! received, with no I/O, for the shim's event thread. The same exchange
//! as the serve loop runs over an in-memory stream, so the bytes written
//! and the journal line are the same.

use std::io::{self, Read, Write};

use super::body::Framing;
use super::conn::one_request;
use super::head::parse_head;
use super::wire::{Transport, Wire};
use crate::config::route::Scheme;
use crate::routing::Destination;
use crate::serve::exchange::split_target;

/// What [`answer_buffered`] made of the bytes a client has sent so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Buffered {
    /// The first request was answered into `out`: its `consumed` bytes are
    /// done with, and the connection closes after the answer unless `keep`.
    Answered {
        /// How many bytes of the input the request took.
        consumed: usize,
        /// Whether the connection stays open after the answer.
        keep: bool,
    },
    /// No whole request, or one this path does not take (a chunked or
    /// partial body, an `Expect` or `Upgrade`, an app that may block, bad input, https):
    /// serve the connection with [`serve_after`](super::serve_after) instead.
    NeedsThread,
}

/// Answers the first request in `input` without any I/O when it is whole
/// (head and a Content-Length body, no `Expect`) and its app answers from
/// memory; the bytes written to `out` (and the journal line) are exactly
/// what [`serve`](super::serve) would produce, because the same exchange runs over an
/// in-memory stream.
pub fn answer_buffered(input: &[u8], out: &mut Vec<u8>, dest: &Destination) -> Buffered {
    if dest.site.scheme != Scheme::Http || dest.site.forward.is_some() {
        return Buffered::NeedsThread;
    }
    let Ok(Some(head)) = parse_head(input) else { return Buffered::NeedsThread };
    // The body, if any, must be whole in `input` and have a length.
    let whole = match head.framing() {
        Ok(Framing::Length(n)) => usize::try_from(n).ok().and_then(|n| head.len.checked_add(n)).filter(|&end| end <= input.len()),
        _ => None,
    };
    // An upgrade may take the connection over: not on the shared thread.
    let plain = head.values("Expect").next().is_none() && head.values("Upgrade").next().is_none();
    let Some(end) = whole.filter(|_| plain) else { return Buffered::NeedsThread };
    let (path, _) = split_target(&head.target);
    // A site that changed or went away is left to the serve loop.
    if !dest.site_now().is_some_and(|site| site.mount_for(path).is_none_or(|m| m.app.answers_from_memory())) {
        return Buffered::NeedsThread;
    }
    let mut wire = Wire::with_buffered(Memory(out), input[head.len..end].to_vec());
    wire.consumed = head.len as u64;
    // Writing to memory cannot fail, so neither can the exchange.
    let keep = one_request(&mut wire, &head, dest).unwrap_or(false);
    Buffered::Answered { consumed: end, keep }
}

/// Answers every request at the start of `input` that [`answer_buffered`]
/// takes, in order, stopping after one that closes the connection. Returns
/// the bytes used and whether the connection stays open; what is left of
/// `input` is for [`serve_after`](super::serve_after).
pub fn answer_all_buffered(input: &[u8], out: &mut Vec<u8>, dest: &Destination) -> (usize, bool) {
    let (mut taken, mut keep) = (0, true);
    while keep && taken < input.len() {
        match answer_buffered(&input[taken..], out, dest) {
            Buffered::Answered { consumed, keep: k } => (taken, keep) = (taken + consumed, k),
            Buffered::NeedsThread => break,
        }
    }
    (taken, keep)
}

/// Whether `input` — what [`answer_all_buffered`] left — is the start of a
/// request that path will answer once the rest comes: a head not yet
/// whole, or a whole head (no `Expect`, no `Upgrade`) whose Content-Length
/// body is not, the whole request within `limit` bytes. Anything else
/// (bad input, a chunked body, a larger request) is for a thread.
pub fn waits_for_more(input: &[u8], limit: usize) -> bool {
    match parse_head(input) {
        Ok(None) => input.len() < limit,
        Ok(Some(head)) => {
            let plain = head.values("Expect").next().is_none() && head.values("Upgrade").next().is_none();
            let end = match head.framing() {
                Ok(Framing::Length(n)) => usize::try_from(n).ok().and_then(|n| head.len.checked_add(n)),
                _ => None,
            };
            plain && end.is_some_and(|end| end > input.len() && end <= limit)
        }
        Err(_) => false,
    }
}

/// A stream with nothing to read whose writes append to a vector.
struct Memory<'a>(&'a mut Vec<u8>);

impl Read for Memory<'_> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Transport for Memory<'_> {}

impl Write for Memory<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
