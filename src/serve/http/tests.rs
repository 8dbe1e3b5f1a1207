//! The serve loop and the buffered path over in-memory streams.

use super::*;
use crate::apps::{self, Body};
use crate::apps::{Request, Response};
use crate::config::load;
use crate::routing::Destination;
use crate::routing::{Connect, Router};
use std::io;
use std::io::{Read, Write};

/// An in-memory connection: each read returns at most one of `input`'s
/// segments (then end of stream, or `WouldBlock` if `idle`); writes collect.
struct Duplex {
    input: std::collections::VecDeque<Vec<u8>>,
    idle: bool,
    output: Vec<u8>,
}

impl Duplex {
    fn new(segments: &[&[u8]]) -> Duplex {
        Duplex { input: segments.iter().map(|s| s.to_vec()).collect(), idle: false, output: Vec::new() }
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(front) = self.input.front_mut() else {
            return if self.idle { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(0) };
        };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        front.drain(..n);
        if front.is_empty() {
            self.input.pop_front();
        }
        Ok(n)
    }
}

impl Transport for Duplex {}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn dest(routes: &[&str]) -> Destination {
    let vars: Vec<(String, String)> = routes.iter().enumerate().map(|(i, r)| (format!("INTERCEPT_ROUTE_R{i}"), r.to_string())).collect();
    let config = load(&vars).unwrap();
    let router = Router::new(&config);
    let crate::routing::Lookup::Synthetic(v4, _) = router.lookup("h.test") else { panic!() };
    match router.connect((v4, config.routes[0].url.port).into()) {
        Connect::Intercept(t) => t,
        _ => panic!(),
    }
}

fn run(routes: &[&str], input: &[u8]) -> String {
    run_segments(routes, &[input], false)
}

fn run_segments(routes: &[&str], input: &[&[u8]], idle: bool) -> String {
    let mut d = Duplex::new(input);
    d.idle = idle;
    serve(&mut d, &dest(routes));
    String::from_utf8(d.output).unwrap()
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").unwrap().1
}

#[test]
fn static_answer_with_length_and_date() {
    let out = run(&["http://h.test -> static:201 made"], b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
    assert!(out.contains("\r\nContent-Length: 4\r\n") && out.contains("\r\nDate: "), "{out}");
    assert_eq!(body_of(&out), "made");
}

#[test]
fn the_date_is_now_in_the_imf_fixdate_form() {
    let out = run(&["http://h.test -> static:200 ok"], b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n");
    let date = out.split("\r\n").find_map(|l| l.strip_prefix("Date: ")).expect("a Date field");
    let when = httpdate::parse_http_date(date).expect("an HTTP date");
    let off = std::time::SystemTime::now().duration_since(when).unwrap_or_default();
    assert!(off < std::time::Duration::from_secs(2) && date.ends_with(" GMT") && date.len() == 29, "{date}");
}

#[test]
fn keep_alive_serves_several_requests_in_order() {
    let out = run(
        &["http://h.test -> echo"],
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    let statuses = out.matches("HTTP/1.1 200 OK").count();
    assert_eq!(statuses, 3, "{out}");
    let (one, two, three) = (out.find("\"/one\"").unwrap(), out.find("\"/two\"").unwrap(), out.find("\"/three\"").unwrap());
    assert!(one < two && two < three);
    assert!(out.contains("\"body\": \"abc\""));
    assert!(out.ends_with("}\n") && out.contains("Connection: close"));
}

#[test]
fn mounts_split_script_name_and_path_info() {
    let routes = ["http://h.test/api -> echo", "http://h.test/static -> static:200 s"];
    let out = run(&routes, b"GET /api/v1/a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    let v: serde_json::Value = serde_json::from_str(body_of(&out)).unwrap();
    assert_eq!((v["script_name"].as_str(), v["path_info"].as_str(), v["query"].as_str()), (Some("/api"), Some("/v1/a b"), Some("x=1")));
    let out = run(&routes, b"GET /elsewhere HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 404 "), "{out}");
    let out = run(&routes, b"GET http://h.test/static/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(body_of(&out), "s");
}

#[test]
fn http10_closes_unless_asked_and_head_has_no_body() {
    let out = run(&["http://h.test -> static:200 hi"], b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 1);
    assert!(out.contains("Connection: close"));
    let out = run(&["http://h.test -> static:200 hi"], b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD / HTTP/1.0\r\n\r\n");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(out.contains("Connection: keep-alive"));
    assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
}

#[test]
fn bad_input_gets_a_status_and_a_close() {
    let r = ["http://h.test -> echo"];
    assert!(run(&r, b"GARBAGE\r\n\r\nGET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(run(&r, b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(run(&r, b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let out = run(&r, &big);
    assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1);
    assert!(run(&r, b"GET / HTT").starts_with("HTTP/1.1 400 "));
    assert!(run(&r, b"GET / HTTP/3.0\r\n\r\n").starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"));
    assert_eq!(run(&r, b""), "");
}

struct Panics;
impl apps::App for Panics {
    fn call(&self, _: &mut Request<'_>) -> Response {
        panic!("app bug")
    }
}

#[test]
fn a_panicking_app_gets_500_and_the_connection_lives_on() {
    let t = dest(&["http://h.test -> echo"]);
    let site = crate::routing::Site {
        scheme: crate::config::route::Scheme::Http,
        host: t.site.host.clone(),
        port: 80,
        mounts: vec![crate::routing::Mount { prefix: String::new(), route: "P".into(), app: std::sync::Arc::new(Panics) }],
        forward: None,
    };
    let t = Destination { site: std::sync::Arc::new(site), ..t };
    let mut d = Duplex::new(&[b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"]);
    serve(&mut d, &t);
    let out = String::from_utf8(d.output).unwrap();
    assert_eq!(out.matches("HTTP/1.1 500 ").count(), 2, "{out}");
}

#[test]
fn unknown_length_streams_chunked_on_11_and_close_delimited_on_10() {
    for (minor, framing, tail) in
        [(1, "Transfer-Encoding: chunked\r\n", "\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"), (0, "Connection: close\r\n", "\r\n\r\nabcdef")]
    {
        let mut out = Vec::new();
        let body = Body::Stream { reader: Box::new(&b"abcdef"[..]), len: None };
        let how = response::Framing { minor, keep_alive: true, head_only: false };
        response::write(&mut out, Response { status: 200, headers: vec![], body, ..Default::default() }, &how).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(framing) && out.ends_with(tail), "{out}");
    }
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let out = run(
        &["http://h.test -> echo"],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET /after HTTP/1.1\r\n\r\n",
    );
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.contains("\"body\": \"hello world\""), "{out}");
    assert!(out.contains("\"path_info\": \"/after\""), "{out}");
}

#[test]
fn chunked_body_split_across_reads() {
    let out = run_segments(
        &["http://h.test -> echo"],
        &[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"1", b"0\r\n0123456789", b"abcdef\r", b"\n0\r", b"\n\r\n"],
        false,
    );
    assert!(out.contains("\"body\": \"0123456789abcdef\""), "{out}");
}

#[test]
fn bad_framing_is_400_and_a_close() {
    let r = ["http://h.test -> echo"];
    for input in [
        &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let out = run(&r, input);
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
        assert!(out.contains("Connection: close\r\n"), "{out}");
    }
    let out = run(&r, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 501 "), "{out}");
}

#[test]
fn expect_100_continue_is_answered_when_the_app_reads() {
    let out =
        run_segments(&["http://h.test -> echo"], &[b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", b"data"], false);
    assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\"body\": \"data\""), "{out}");
    // An app that never reads gets no 100: the final answer comes at once
    // and the connection closes, since the body may or may not follow.
    let out =
        run_segments(&["http://h.test -> static:200 ok"], &[b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"], true);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("Connection: close\r\n"), "{out}");
}

#[test]
fn unread_bodies_are_skipped_and_the_connection_kept() {
    let out = run(&["http://h.test -> static:200 ok"], b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
}

#[test]
fn idle_clients_are_closed() {
    let r = ["http://h.test -> static:200 ok"];
    let out = run_segments(&r, &[b"GET / HTTP/1.1\r\n\r\n"], true);
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1, "{out}");
    assert!(!out.contains("408"), "{out}");
    let out = run_segments(&r, &[b"GET / HTTP/1.1\r\nHost: h"], true);
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
}

#[test]
fn head_204_and_304_have_no_body() {
    let out = run(&["http://h.test -> static:200 hello"], b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    let (head, rest) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Content-Length: 5"), "{out}");
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.ends_with("\r\n\r\nhello"), "{out}");
    for status in [204, 304] {
        let out = run(&[&format!("http://h.test -> static:{status} ignored")], b"GET / HTTP/1.1\r\n\r\n");
        assert!(!out.contains("Content-Length") && out.ends_with("\r\n\r\n"), "{out}");
    }
}

#[test]
fn the_journal_gets_a_line_per_request() {
    let dir = crate::testing::temp_dir("http-journal");
    let path = dir.join("journal.jsonl");
    let mut t = dest(&["http://h.test/api -> echo"]);
    t.journal = Some(std::sync::Arc::new(crate::journal::Journal::new(path.clone())));
    let mut d = Duplex::new(&[b"POST /api/x?q HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /nowhere HTTP/1.1\r\n\r\n"]);
    serve(&mut d, &t);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["url"], "http://h.test:80/api/x?q");
    assert_eq!(
        (lines[0]["method"].as_str(), lines[0]["status"].as_u64(), lines[0]["route"].as_str()),
        (Some("POST"), Some(200), Some("R0"))
    );
    // 24 request-line + 19 Content-Length + 2 blank-line + 2 body bytes.
    assert_eq!(lines[0]["request_bytes"], 47);
    let first_response = String::from_utf8_lossy(&d.output).find("HTTP/1.1 404").map(|at| at as u64);
    assert_eq!(lines[0]["response_bytes"].as_u64(), first_response);
    assert_eq!((lines[1]["status"].as_u64(), lines[1]["route"].as_str()), (Some(404), Some("-")));
    std::fs::remove_file(&path).unwrap();
}

/// The response bytes with the Date line taken out, so two answers made
/// a second apart compare equal.
fn undated(response: &[u8]) -> String {
    String::from_utf8_lossy(response).split("\r\n").filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\r\n")
}

#[test]
fn buffered_answers_are_what_the_loop_would_write() {
    let routes = ["http://h.test -> static:200 hello", "http://h.test/echo -> echo"];
    let t = dest(&routes);
    for request in [
        &b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n"[..],
        b"HEAD / HTTP/1.1\r\n\r\n",
        b"GET /echo/a%20b?q=1 HTTP/1.1\r\nX-A: 1\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"POST /echo/up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let mut out = Vec::new();
        let answered = answer_buffered(request, &mut out, &t);
        let closes = request.starts_with(b"GET / HTTP/1.0") || request.ends_with(b"close\r\n\r\n");
        assert_eq!(answered, Buffered::Answered { consumed: request.len(), keep: !closes });
        assert_eq!(undated(&out), undated(run(&routes, request).as_bytes()));
    }
}

#[test]
fn buffered_pipelines_answer_one_request_at_a_time() {
    let t = dest(&["http://h.test -> static:200 hello"]);
    for first in [&b"GET /1 HTTP/1.1\r\n\r\n"[..], b"POST /1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"] {
        let input = [first, b"GET /2 HTTP/1.1\r\n\r\n"].concat();
        let mut out = Vec::new();
        assert_eq!(answer_buffered(&input, &mut out, &t), Buffered::Answered { consumed: first.len(), keep: true });
        assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 1);
    }
}

#[test]
fn buffered_pipelines_stop_at_a_close_or_what_needs_a_thread() {
    let t = dest(&["http://h.test -> static:200 hello"]);
    let (a, b) = (&b"GET /1 HTTP/1.1\r\n\r\n"[..], &b"GET /2 HTTP/1.1\r\nConnection: close\r\n\r\n"[..]);
    let mut out = Vec::new();
    assert_eq!(answer_all_buffered(&[a, b, a].concat(), &mut out, &t), (a.len() + b.len(), false));
    assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 2);
    let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(answer_all_buffered(&[a, chunked].concat(), &mut Vec::new(), &t), (a.len(), true));
}

#[test]
fn a_partial_request_waits_for_more_unless_a_thread_must_serve_it() {
    for (input, waits) in [
        (&b""[..], true),
        (b"GET / HTTP/1.1\r\nHost: h.te", true),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nhi", true),
        (b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", false),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false),
        (b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n", false),
        (b"BAD\x01 / HTTP/1.1\r\n", false),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false),
    ] {
        assert_eq!(waits_for_more(input, 64), waits, "{}", String::from_utf8_lossy(input));
    }
    assert!(!waits_for_more(&[b'G'; 64], 64), "a head as long as the limit is not waited for");
}

#[test]
fn buffered_leaves_everything_else_to_a_thread() {
    let dir = crate::testing::temp_dir("buffered-files");
    let files = format!("http://h.test/files -> files:{}", dir.display());
    let t = dest(&["http://h.test -> static:200 hello", &files]);
    for input in [
        &b""[..],
        b"GET / HTTP/1.1\r\nHost: h.te",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nhi",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"BAD\x01 / HTTP/1.1\r\n\r\n",
        b"GET /files/ HTTP/1.1\r\n\r\n",
    ] {
        let mut out = Vec::new();
        assert_eq!(answer_buffered(input, &mut out, &t), Buffered::NeedsThread, "{}", String::from_utf8_lossy(input));
        assert!(out.is_empty());
    }
    let https = dest(&["https://h.test:80 -> static:200 hello"]);
    assert_eq!(answer_buffered(b"GET / HTTP/1.1\r\n\r\n", &mut Vec::new(), &https), Buffered::NeedsThread);
}

#[test]
fn serving_after_bytes_already_read_continues_the_stream() {
    let routes = ["http://h.test -> echo"];
    let input = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
    let (read, rest) = input.split_at(20);
    let mut d = Duplex::new(&[rest]);
    let _ = serve_after(&mut d, &dest(&routes), read.to_vec(), false);
    assert_eq!(undated(&d.output), undated(run(&routes, input).as_bytes()));
}
