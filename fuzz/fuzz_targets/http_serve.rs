//! Drives the dispatcher's HTTP loop (request parsing, body framing,
//! mounts, response writing) with arbitrary bytes, delivered in arbitrary
//! pieces. Any panic or hang is a bug: a host process must survive any
//! client. It also checks that the event thread's path (`answer_all_buffered`,
//! then `serve_after` on the rest) writes the same bytes as the loop alone,
//! and so does the caller's-thread path: the bytes arriving in the pieces
//! the sizes choose, each answered as far as it goes, the start of a
//! request kept while `waits_for_more`, the rest to `serve_after`.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use common::dest;

/// Input cut into reads at the sizes the first bytes choose (no sizes: all
/// of it in one read); writes collected.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
    out: Vec<u8>,
}

impl<'a> Pieces<'a> {
    fn whole(data: &'a [u8]) -> Self {
        Pieces { data, sizes: &[], next: 0, out: Vec::new() }
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes.get(self.next % self.sizes.len().max(1)).map_or(usize::MAX, |&s| usize::from(s) + 1);
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl intercept::serve::http::Transport for Pieces<'_> {}

impl Write for Pieces<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bytes without `Date:` lines, which may differ between two answers.
fn undated(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|&b| b == b'\n').filter(|line| !line.starts_with(b"Date: ")).collect()
}

fuzz_target!(|input: &[u8]| {
    let cut = input.first().map_or(0, |&b| usize::from(b % 8));
    let (sizes, data) = input.get(1..).unwrap_or_default().split_at(cut.min(input.len().saturating_sub(1)));
    intercept::serve::http::serve(Pieces { data, sizes, next: 0, out: Vec::new() }, dest());

    let mut alone = Pieces::whole(data);
    intercept::serve::http::serve(&mut alone, dest());
    let mut out = Vec::new();
    let (taken, open) = intercept::serve::http::answer_all_buffered(data, &mut out, dest());
    if open {
        let mut rest = Pieces::whole(&[]);
        intercept::serve::http::serve_after(&mut rest, dest(), data[taken..].to_vec());
        out.extend_from_slice(&rest.out);
    }
    assert_eq!(undated(&out), undated(&alone.out));
    assert_eq!(undated(&caller_path(data, sizes)), undated(&alone.out));
});

/// What the shim's caller's-thread path writes for `data` written in the
/// pieces `sizes` chooses.
fn caller_path(data: &[u8], sizes: &[u8]) -> Vec<u8> {
    const LIMIT: usize = 64 * 1024;
    let (mut out, mut held, mut at, mut next) = (Vec::new(), Vec::new(), 0, 0);
    while at < data.len() {
        let size = sizes.get(next % sizes.len().max(1)).map_or(usize::MAX, |&s| usize::from(s) + 1);
        next += 1;
        let piece = &data[at..at + size.min(data.len() - at)];
        at += piece.len();
        held.extend_from_slice(piece);
        let (taken, open) = intercept::serve::http::answer_all_buffered(&held, &mut out, dest());
        held.drain(..taken);
        if !open {
            return out;
        }
        if !held.is_empty() && !intercept::serve::http::waits_for_more(&held, LIMIT) {
            break;
        }
    }
    held.extend_from_slice(&data[at..]);
    let mut rest = Pieces::whole(&[]);
    intercept::serve::http::serve_after(&mut rest, dest(), held);
    out.extend_from_slice(&rest.out);
    out
}
