//! A stub mapping file and a request, both arbitrary, served as a `stubs:`
//! route serves them: the mapping loaded (or refused), matched against the
//! request (every matcher, scenarios, the near-miss report of a miss) and
//! answered (templates rendered). Any panic, hang or runaway memory is a
//! bug: a bad mapping is an error and a bad request a 4xx, never a dead
//! host.
//!
//! Input: the mapping's JSON, a NUL byte, then the request's bytes
//! (`GET /x HTTP/1.1\r\nHost: fuzz.test\r\n\r\n` when there is no NUL).
#![no_main]

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use intercept::routing::{Connect, Lookup, Router};
use libfuzzer_sys::fuzz_target;

/// Reads the request, collects the answer.
struct Exchange<'a> {
    data: &'a [u8],
    out: Vec<u8>,
}

impl Read for Exchange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Exchange<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl intercept::serve::http::Transport for Exchange<'_> {}

/// This process's stubs directory (its `__files` holds one body file).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("intercept-fuzz-stubs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mappings")).unwrap();
        std::fs::create_dir_all(dir.join("__files")).unwrap();
        std::fs::write(dir.join("__files/body.txt"), "hello {{request.path}}").unwrap();
        intercept::log::set_level(intercept::log::Level::Off);
        dir
    })
}

fuzz_target!(|input: &[u8]| {
    let (mapping, request) = match input.iter().position(|&b| b == 0) {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &b"GET /x HTTP/1.1\r\nHost: fuzz.test\r\n\r\n"[..]),
    };
    let dir = dir();
    std::fs::write(dir.join("mappings/m.json"), mapping).unwrap();
    // A fresh route each time: mappings load on a route's first request.
    let vars = [("INTERCEPT_ROUTE_STUBS".to_string(), format!("http://fuzz.test -> stubs:{}", dir.display()))];
    let config = intercept::config::load(&vars).unwrap();
    let router = Router::new(&config);
    let Lookup::Synthetic(v4, _) = router.lookup("fuzz.test") else { unreachable!() };
    let Connect::Intercept(dest) = router.connect((v4, 80).into()) else { unreachable!() };
    let mut exchange = Exchange { data: request, out: Vec::new() };
    intercept::serve::http::serve(&mut exchange, &dest);
    // Whatever was asked, every answer is a whole HTTP/1.1 response.
    assert!(exchange.out.is_empty() || exchange.out.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&exchange.out));
});
