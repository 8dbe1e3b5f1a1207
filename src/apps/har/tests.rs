use std::io::{Read, Write};
use std::net::TcpListener;

use super::*;
use crate::apps::Body;
use crate::testing::temp_dir;

fn call(
    app: &Har,
    method: &str,
    (scheme, host, port): (&'static str, &str, u16),
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut body = body;
    let mut req = Request {
        method: method.into(),
        scheme,
        host: host.into(),
        port,
        target: target.into(),
        script_name: String::new(),
        path_info: target.split('?').next().unwrap().into(),
        query: target.split_once('?').map_or("", |(_, q)| q).into(),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: &mut body,
        client: None,
        opener: None,
    };
    app.call(&mut req)
}

fn text(r: &Response) -> String {
    match &r.body {
        Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => panic!("not bytes"),
    }
}

fn journal(r: &Response, key: &str) -> Value {
    r.journal.iter().find(|(k, _)| *k == key).map_or(Value::Null, |(_, v)| v.clone())
}

/// A HAR in the shape a browser's devtools export it: HTTP/2 pseudo-headers,
/// `http/2.0`, a decoded body with its Content-Encoding still listed, base64
/// content, private `_` fields.
const DEVTOOLS: &str = r#"{"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [],
 "entries": [
  {"_initiator": {"type": "script"}, "_priority": "High", "_resourceType": "fetch", "cache": {}, "connection": "443",
   "request": {"method": "GET", "url": "https://api.test/v1/items?b=2&a=1", "httpVersion": "http/2.0",
     "headers": [{"name": ":authority", "value": "api.test"}, {"name": ":method", "value": "GET"}, {"name": ":path", "value": "/v1/items?b=2&a=1"},
                 {"name": ":scheme", "value": "https"}, {"name": "accept", "value": "*/*"}],
     "queryString": [{"name": "b", "value": "2"}, {"name": "a", "value": "1"}], "cookies": [], "headersSize": -1, "bodySize": 0},
   "response": {"status": 200, "statusText": "", "httpVersion": "http/2.0",
     "headers": [{"name": "content-type", "value": "application/json"}, {"name": "content-encoding", "value": "br"}, {"name": ":status", "value": "200"}],
     "cookies": [], "content": {"size": 13, "mimeType": "application/json", "text": "{\"items\":[1]}"}, "redirectURL": "", "headersSize": -1, "bodySize": -1, "_transferSize": 300},
   "serverIPAddress": "10.0.0.1", "startedDateTime": "2026-01-01T00:00:00.000Z", "time": 10.5, "timings": {"send": 1, "wait": 9, "receive": 0.5}},
  {"request": {"method": "POST", "url": "https://api.test/v1/items", "httpVersion": "http/2.0", "headers": [], "queryString": [], "cookies": [],
     "postData": {"mimeType": "application/json", "text": "{\"name\": \"x\", \"n\": 1}"}, "headersSize": -1, "bodySize": 20},
   "response": {"status": 201, "statusText": "", "httpVersion": "http/2.0", "headers": [], "cookies": [],
     "content": {"size": 3, "mimeType": "image/png", "text": "AAEC", "encoding": "base64"}, "redirectURL": "", "headersSize": -1, "bodySize": 3},
   "startedDateTime": "2026-01-01T00:00:01.000Z", "time": 1, "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
 ]}}"#;

fn har_with(name: &str, text: &str, mode: Mode) -> (Har, crate::testing::TempDir) {
    let dir = temp_dir(name);
    std::fs::write(dir.join("x.har"), text).unwrap();
    (Har::new(HarSpec { file: dir.join("x.har"), mode, keep: Vec::new() }), dir)
}

#[test]
fn a_devtools_export_replays() {
    let (app, _dir) = har_with("har-devtools", DEVTOOLS, Mode::None);
    // Query order does not matter.
    let r = call(&app, "GET", ("https", "api.test", 443), "/v1/items?a=1&b=2", &[], b"");
    assert_eq!((r.status, text(&r).as_str()), (200, r#"{"items":[1]}"#));
    assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())], "no pseudo-header, no content-encoding");
    assert_eq!(journal(&r, "entry"), "entry 1 (GET https://api.test/v1/items?b=2&a=1)");
    // JSON bodies compare as JSON; base64 content comes back as bytes.
    let r = call(&app, "POST", ("https", "api.test", 443), "/v1/items", &[], br#"{"n":1,"name":"x"}"#);
    assert!(matches!(&r.body, Body::Bytes(b) if b == &[0, 1, 2]) && r.status == 201);
}

/// A HAR in the shape mitmproxy's export writes: decoded bodies, `null`
/// timings, form `params` beside the text, cookie lists, and a flow that
/// never got an answer (status 0).
const MITMPROXY: &str = r#"{"log": {"version": "1.2", "creator": {"name": "mitmproxy", "version": "11.0.0", "comment": ""}, "pages": [],
 "entries": [
  {"startedDateTime": "2026-11-20T09:00:00.123456+00:00", "time": 12.5,
   "request": {"method": "POST", "url": "http://api.test:8080/login", "httpVersion": "HTTP/1.1",
     "cookies": [{"name": "c", "value": "1"}], "headers": [{"name": "Host", "value": "api.test:8080"}, {"name": "Content-Type", "value": "application/x-www-form-urlencoded"}],
     "queryString": [], "headersSize": 120, "bodySize": 13,
     "postData": {"mimeType": "application/x-www-form-urlencoded", "text": "user=a&pw=b%21", "params": [{"name": "user", "value": "a"}, {"name": "pw", "value": "b!"}]}},
   "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
     "cookies": [{"name": "sid", "value": "x", "path": "/", "domain": "", "httpOnly": true, "secure": false}],
     "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Content-Encoding", "value": "gzip"}, {"name": "Content-Length", "value": "31"}],
     "content": {"size": 31, "compression": -4, "mimeType": "application/json", "text": "{\"token\": \"t1\"}"},
     "redirectURL": "", "headersSize": 90, "bodySize": 31},
   "cache": {}, "timings": {"connect": null, "ssl": null, "send": 0.1, "receive": 0.4, "wait": 12.0}, "serverIPAddress": "10.1.1.1"},
  {"startedDateTime": "2026-11-20T09:00:01+00:00", "time": 0,
   "request": {"method": "GET", "url": "http://api.test:8080/down", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [], "queryString": [], "headersSize": 0, "bodySize": 0},
   "response": {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [], "content": {}, "redirectURL": "", "headersSize": -1, "bodySize": -1, "_transferSize": 0, "_error": "connection refused"},
   "cache": {}, "timings": {"connect": null, "ssl": null, "send": 0, "receive": 0, "wait": 0}}
 ]}}"#;

#[test]
fn a_mitmproxy_export_replays() {
    let (app, _dir) = har_with("har-mitmproxy", MITMPROXY, Mode::None);
    let r = call(&app, "POST", ("http", "api.test", 8080), "/login", &[], b"user=a&pw=b%21");
    assert_eq!((r.status, text(&r).as_str()), (200, r#"{"token": "t1"}"#));
    assert_eq!(r.headers, vec![("Content-Type".to_string(), "application/json".to_string())], "decoded: no Content-Encoding, no length");
    // The flow that never got an answer is not an entry.
    assert_eq!(call(&app, "GET", ("http", "api.test", 8080), "/down", &[], b"").status, 404);
}

#[test]
fn a_miss_in_none_mode_is_a_near_miss_report() {
    let (app, _dir) = har_with("har-miss", DEVTOOLS, Mode::None);
    let r = call(&app, "GET", ("https", "api.test", 443), "/v1/items?a=1&b=3", &[], b"");
    assert_eq!(r.status, 404);
    let report = text(&r);
    assert!(report.starts_with("No recorded entry matched this request.\n\nGET /v1/items?a=1&b=3\n"), "{report}");
    assert!(report.contains("Closest recorded entry: entry 1 (GET https://api.test/v1/items?b=2&a=1)"), "{report}");
    assert!(report.contains("query b: expected 2\n") && report.contains("but was 3\n"), "{report}");
    assert_eq!(journal(&r, "entry"), Value::Null);
    // Another host or port is never answered by these entries.
    assert_eq!(call(&app, "GET", ("https", "api.test", 8443), "/v1/items?a=1&b=2", &[], b"").status, 404);
    assert_eq!(call(&app, "GET", ("http", "api.test", 443), "/v1/items?a=1&b=2", &[], b"").status, 404);
}

#[test]
fn identical_requests_answer_in_order_then_the_last_repeats() {
    let entry = |body: &str| {
        format!(
            r#"{{"request": {{"method": "GET", "url": "http://h.test/n", "headers": []}}, "response": {{"status": 200, "headers": [], "content": {{"text": "{body}"}}}}}}"#
        )
    };
    let doc = format!(r#"{{"log": {{"entries": [{}, {}, {}]}}}}"#, entry("one"), entry("two"), entry("three"));
    let (app, _dir) = har_with("har-order", &doc, Mode::Once);
    let answers: Vec<String> = (0..5).map(|_| text(&call(&app, "GET", ("http", "h.test", 80), "/n", &[], b""))).collect();
    assert_eq!(answers, ["one", "two", "three", "three", "three"]);
    // The same as stubs: a scenario in recorded order.
    let entries = file::parse(doc.as_bytes()).unwrap();
    let maps = replay::mappings(&entries);
    assert_eq!(maps[0]["requiredScenarioState"], "Started");
    assert_eq!(maps[1]["requiredScenarioState"], "answer 2");
    assert_eq!((maps[2]["requiredScenarioState"].as_str(), maps[2].get("newScenarioState")), (Some("answer 3"), None));
    for (i, m) in maps.iter().enumerate() {
        mapping::from_json(m, format!("m{i}"), i).unwrap();
    }
}

#[test]
fn bad_files_are_errors_naming_them() {
    let dir = temp_dir("har-bad");
    std::fs::write(dir.join("bad.har"), "{\"log\": {\n\"entries\": [1,]}}").unwrap();
    let spec = HarSpec { file: dir.join("bad.har"), mode: Mode::Once, keep: Vec::new() };
    let e = validate(&spec, None).unwrap_err();
    assert!(e.starts_with(&format!("{}: line 2: not JSON", dir.join("bad.har").display())), "{e}");
    let none = HarSpec { file: dir.join("missing.har"), mode: Mode::None, keep: Vec::new() };
    assert!(validate(&none, None).unwrap_err().contains("does not exist"));
    assert_eq!(validate(&HarSpec { mode: Mode::Once, ..none }, None).unwrap(), 0);
    assert!(Mode::parse("sometimes").is_err());
    // Found by fuzzing: a status no answer can carry (0 is an exchange
    // never answered, and left out).
    let odd = r#"{"log": {"entries": [{"request": {"method": "GET", "url": "http://a.test/"}, "response": {"status": 1}}]}}"#;
    assert_eq!(file::parse(odd.as_bytes()).unwrap_err(), "entry 1: response status 1 is not 100 to 599");
}

/// A one-shot HTTP server: answers each connection with `answer`, returns
/// what it was sent.
fn server(answers: Vec<&'static [u8]>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut got = Vec::new();
        for answer in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 65536];
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            got.push(String::from_utf8_lossy(&seen).into_owned());
        }
        got
    });
    (port, handle)
}

#[test]
fn recording_relays_keeps_and_redacts_then_replays() {
    let (port, server) = server(vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: s=secret\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
    ]);
    let dir = temp_dir("har-record");
    let file = dir.join("sub.har");
    let app = Har::new(HarSpec { file: file.clone(), mode: Mode::Once, keep: vec!["X-Api-Key".into()] });
    let secret = [("Authorization", "Bearer hunter2"), ("X-Api-Key", "k1")];
    let r = call(&app, "GET", ("http", "127.0.0.1", port), "/a?z=1", &secret, b"");
    assert_eq!((r.status, text(&r).as_str(), journal(&r, "har")), (200, "abcde", Value::from("recorded")));
    assert!(r.headers.contains(&("Set-Cookie".into(), "s=secret".into())), "the client sees what the server sent");
    let r = call(&app, "GET", ("http", "127.0.0.1", port), "/gone", &[], b"");
    assert_eq!((r.status, text(&r).as_str()), (404, "nope"));
    let sent = server.join().unwrap();
    assert!(sent[0].starts_with("GET /a?z=1 HTTP/1.1\r\n") && sent[0].contains("Authorization: Bearer hunter2"), "{}", sent[0]);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(!saved.contains("hunter2") && !saved.contains("s=secret") && saved.contains("[redacted]"), "{saved}");
    assert!(saved.contains("\"k1\""), "a kept header stays: {saved}");
    // The server is gone: a new process (a new app) replays.
    let replay = Har::new(HarSpec { file, mode: Mode::None, keep: Vec::new() });
    let r = call(&replay, "GET", ("http", "127.0.0.1", port), "/a?z=1", &[], b"");
    assert_eq!((r.status, text(&r).as_str(), journal(&r, "har")), (200, "abcde", Value::from("replayed")));
    assert!(!r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")));
    assert_eq!(call(&replay, "GET", ("http", "127.0.0.1", port), "/gone", &[], b"").status, 404);
}

#[test]
fn an_unreachable_origin_is_a_502_and_nothing_is_recorded() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed at once
    let dir = temp_dir("har-502");
    let app = Har::new(HarSpec { file: dir.join("x.har"), mode: Mode::All, keep: Vec::new() });
    assert_eq!(call(&app, "GET", ("http", "127.0.0.1", port), "/", &[], b"").status, 502);
    assert!(!dir.join("x.har").exists());
}

#[test]
fn many_writers_leave_every_entry_whole() {
    let dir = temp_dir("har-append");
    let file = dir.join("many.har");
    let entry = file::parse(DEVTOOLS.as_bytes()).unwrap().remove(1);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| (0..20).for_each(|_| file::append(&file, &entry).unwrap()));
        }
    });
    let entries = file::read(&file).unwrap();
    assert_eq!(entries.len(), 160);
    assert!(entries.iter().all(|e| e.body == [0, 1, 2] && e.request_body == entry.request_body));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left behind");
}

#[test]
fn a_har_answers_from_memory_only_where_it_never_records() {
    let text = r#"{"log": {"entries": []}}"#;
    assert!(har_with("har-mem-none", text, Mode::None).0.answers_from_memory());
    assert!(har_with("har-mem-once", text, Mode::Once).0.answers_from_memory());
    assert!(!har_with("har-mem-new", text, Mode::NewEpisodes).0.answers_from_memory());
    assert!(!har_with("har-mem-all", text, Mode::All).0.answers_from_memory());
    let dir = temp_dir("har-mem-missing");
    let missing = Har::new(HarSpec { file: dir.join("absent.har"), mode: Mode::Once, keep: Vec::new() });
    assert!(!missing.answers_from_memory(), "`once` with no file records");
}

#[test]
fn a_recording_makes_its_directories_as_vcrpy_does() {
    let dir = temp_dir("har-dirs");
    let file = dir.join("cassettes/api/first.har");
    let spec = HarSpec { file: file.clone(), mode: Mode::Once, keep: Vec::new() };
    assert_eq!(validate(&spec, None), Ok(0), "a directory still to be made is no error");
    let entry = file::parse(DEVTOOLS.as_bytes()).unwrap().remove(1);
    file::append(&file, &entry).unwrap();
    assert_eq!(file::read(&file).unwrap().len(), 1);
    // A file where a directory would have to be is an error at once.
    std::fs::write(dir.join("plain"), "").unwrap();
    let blocked = HarSpec { file: dir.join("plain/x.har"), mode: Mode::Once, keep: Vec::new() };
    let err = validate(&blocked, None).unwrap_err();
    assert!(err.ends_with("plain is not a directory, so nothing can be recorded there"), "{err}");
}
