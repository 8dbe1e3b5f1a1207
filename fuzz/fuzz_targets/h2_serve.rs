//! Drives the HTTP/2 server (the h2 handshake, the frame reader, streams
//! reaching the apps) with arbitrary bytes after the client preface,
//! delivered in arbitrary pieces. Any panic or hang is a bug: a host
//! process must survive any client.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use common::dest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The preface and the input, read in pieces whose sizes the first bytes
/// choose; then end of file. Writes are dropped.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<u8>,
    next: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = this.sizes.get(this.next % this.sizes.len().max(1)).map_or(usize::MAX, |&s| usize::from(s) + 1);
        this.next += 1;
        let n = size.min(buf.remaining()).min(this.data.len() - this.at);
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pieces {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let cut = input.first().map_or(0, |&b| usize::from(b % 8));
    let (sizes, data) = input.get(1..).unwrap_or_default().split_at(cut.min(input.len().saturating_sub(1)));
    let mut all = intercept::serve::h2::PREFACE.to_vec();
    all.extend_from_slice(data);
    let io = Pieces { data: all, at: 0, sizes: sizes.to_vec(), next: 0 };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(intercept::serve::h2::connection(io, dest()));
});
