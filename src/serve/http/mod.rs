//! The dispatcher's HTTP/1.1 server loop over any [`Transport`]:
//! reads each request head (httparse), frames its body, picks the mount,
//! calls the app and writes the response, keeping the connection alive
//! until either side closes it. Pipelined requests are answered in order,
//! one at a time.
//!
//! Bad input gets a status and a close, never a hang or a panic: a
//! malformed head 400, a head over 64 KiB 431, ambiguous framing (both
//! Content-Length and Transfer-Encoding, or differing lengths) 400, a bad
//! chunk 400, a client quiet past the idle timeout a close (408 if it was
//! inside a request).
//!
//! [`answer_buffered`] runs the same exchange over bytes already received,
//! for the shim's event thread: a whole request (with a Content-Length
//! body, if any) to an app that answers from memory is answered with no
//! I/O; anything else is left to [`serve_after`] on a thread.
//!
//! Nothing here knows about sockets or hooks, so it is tested over
//! in-memory streams.

mod body;
mod buffered;
mod conn;
mod head;
mod response;
#[cfg(test)]
pub(crate) mod tests;
mod wire;

pub use buffered::{Buffered, answer_all_buffered, answer_buffered, waits_for_more};
pub use conn::{Ended, serve, serve_after};
pub use wire::Transport;
