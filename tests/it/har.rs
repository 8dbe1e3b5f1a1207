//! `har:FILE` routes: curl, Python requests and Node fetch record a real
//! local API over http and https, the API goes away, and the same
//! programs get the same statuses and bytes back from the file.

use std::path::PathBuf;
use std::process::Output;

use crate::common::*;

/// Two real servers, http and https, and an env file routing both to one
/// HAR file.
struct Setup {
    env: Env,
    ca: PathBuf,
    http: Option<Server>,
    https: Option<Server>,
    ports: (u16, u16),
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = temp_dir(name);
        let (ca, leaf) = certificates(&dir);
        let (http, https) = (Server::start(None), Server::start(Some(&leaf)));
        let ports = (http.port, https.port);
        let env = env_file(
            &dir,
            &format!(
                "INTERCEPT_ROUTE_PLAIN=http://localhost:{} -> har:api.har\nINTERCEPT_ROUTE_SECURE=https://localhost:{} -> har:api.har\n",
                ports.0, ports.1
            ),
        );
        Setup { env, ca, http: Some(http), https: Some(https), ports }
    }

    fn stop_servers(&mut self) {
        self.http = None;
        self.https = None;
    }

    fn har(&self) -> PathBuf {
        self.env.parent().unwrap().join("api.har")
    }

    fn urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        for base in [format!("http://localhost:{}", self.ports.0), format!("https://localhost:{}", self.ports.1)] {
            for path in ["/items?b=2&a=1", "/missing", "/binary", "/chunked"] {
                urls.push(format!("{base}{path}"));
            }
        }
        urls
    }

    /// `intercept run` with this env file, the test CA in SSL_CERT_FILE,
    /// and the record mode given.
    fn run(&self, mode: &str, cmd: &[&str]) -> Output {
        let dir = self.env.parent().unwrap();
        let mut args = vec!["run", "--env-file", self.env.to_str().unwrap(), "--record", mode, "--"];
        args.extend_from_slice(cmd);
        command(intercept_bin(), dir).current_dir(dir).env("SSL_CERT_FILE", &self.ca).args(args).output().unwrap()
    }
}

const CURL: &str = r#"
for url in "$@"; do
  curl -sS -H 'Authorization: Bearer s3cret-token' -o body -w '%{http_code} ' "$url" && sha256sum < body
done
for base in "http://localhost:$PLAIN" "https://localhost:$SECURE"; do
  curl -sS -X POST -H 'Content-Type: application/json' -d '{"name": "x", "tags": [1, 2]}' -w ' %{http_code}\n' "$base/items"
done
"#;

fn curl_lines(setup: &Setup, mode: &str) -> String {
    need("curl", "curl");
    let mut cmd = vec!["sh", "-c", CURL, "curl"];
    let urls = setup.urls();
    cmd.extend(urls.iter().map(String::as_str));
    let script = format!("PLAIN={} SECURE={}; {CURL}", setup.ports.0, setup.ports.1);
    cmd[2] = &script;
    ok(setup.run(mode, &cmd))
}

#[test]
fn curl_records_then_replays_with_the_servers_gone() {
    let mut setup = Setup::new("har-curl");
    let recorded = curl_lines(&setup, "once");
    assert_eq!(recorded.lines().count(), 10, "{recorded}");
    assert!(recorded.starts_with("200 "), "{recorded}");
    assert!(recorded.contains("\n404 "), "{recorded}");
    assert!(recorded.contains(r#"{"made": {"name": "x", "tags": [1, 2]}, "n": "#), "{recorded}");
    let har = std::fs::read_to_string(setup.har()).unwrap();
    assert_eq!(json(&har)["log"]["entries"].as_array().unwrap().len(), 10);
    assert!(!har.contains("s3cret") && !har.contains("topsecret"), "secrets reached the file");
    assert!(har.contains("[redacted]"));

    setup.stop_servers();
    assert_eq!(curl_lines(&setup, "none"), recorded, "replay gives the same statuses and bytes");
    // A second `once` run: the file exists, so it replays.
    assert_eq!(curl_lines(&setup, "once"), recorded);

    // The recording as WireMock stubs answers the same.
    let stubs = setup.env.parent().unwrap().join("stubs");
    let made = intercept(&["har2stubs", setup.har().to_str().unwrap(), stubs.to_str().unwrap()]);
    assert_eq!(ok(made), format!("wrote 10 mappings to {}\n", stubs.join("mappings").display()));
    let url = format!("http://localhost:{}/items?a=1&b=2", setup.ports.0);
    let route = format!("http://localhost:{} -> stubs:{}", setup.ports.0, stubs.display());
    let from_stubs = ok(intercept(&["run", "--route", &route, "--", "curl", "-sS", &url]));
    let from_har = ok(setup.run("none", &["curl", "-sS", &url]));
    assert_eq!(from_stubs, from_har);
}

#[test]
fn the_record_modes() {
    need("curl", "curl");
    let mut setup = Setup::new("har-modes");
    let base = format!("http://localhost:{}", setup.ports.0);
    let get = |setup: &Setup, mode: &str, path: &str| ok(setup.run(mode, &["curl", "-sS", &format!("{base}{path}")]));
    let entries = |setup: &Setup| json(&std::fs::read_to_string(setup.har()).unwrap())["log"]["entries"].as_array().unwrap().len();
    let first = get(&setup, "once", "/items?b=2&a=1");
    assert!(first.contains(r#""n": 1}"#), "{first}");
    // new_episodes: what matches is replayed (the server is not asked), the rest recorded.
    assert_eq!(get(&setup, "new_episodes", "/items?a=1&b=2"), first);
    assert_eq!(get(&setup, "new_episodes", "/chunked"), "first second third");
    assert_eq!(entries(&setup), 2);
    // all: always recorded (the server's counter moved on).
    let again = get(&setup, "all", "/items?b=2&a=1");
    assert!(again.contains(r#""n": 3}"#), "{again}");
    assert_eq!(entries(&setup), 3);
    // none, with the server gone: identical requests in recorded order, then
    // the last repeats (within a process: each process starts at the first).
    setup.stop_servers();
    let url = format!("{base}/items?b=2&a=1");
    assert_eq!(ok(setup.run("none", &["curl", "-sS", &url, &url, &url])), format!("{first}{again}{again}"));
    // A miss is the near-miss report.
    let out = setup.run("none", &["curl", "-sS", "-w", "%{http_code}", &format!("{base}/items?b=3&a=1")]);
    let text = ok(out);
    assert!(text.starts_with("No recorded entry matched this request.\n\nGET /items?b=3&a=1\n"), "{text}");
    assert!(text.contains(&format!("Closest recorded entry: entry 1 (GET {base}/items?b=2&a=1)")), "{text}");
    assert!(text.ends_with("404"), "{text}");
    assert_eq!(entries(&setup), 3, "none never writes");
}

/// Prints status and a digest per request, as the curl script does.
const PYTHON: &str = r#"
import hashlib, sys, requests
for url in sys.argv[1:]:
    r = requests.get(url, headers={"Authorization": "Bearer s3cret-token"})
    print(r.status_code, hashlib.sha256(r.content).hexdigest())
for url in sys.argv[1:2] + sys.argv[5:6]:
    r = requests.post(url.split("?")[0], json={"name": "x", "tags": [1, 2]})
    print(r.status_code, r.text)
"#;

const NODE: &str = r#"
const crypto = require('crypto');
(async () => {
  const urls = process.argv.slice(1);
  for (const url of urls) {
    const r = await fetch(url, { headers: { Authorization: 'Bearer s3cret-token' } });
    const body = Buffer.from(await r.arrayBuffer());
    console.log(r.status, crypto.createHash('sha256').update(body).digest('hex'));
  }
  for (const url of [urls[0], urls[4]]) {
    const r = await fetch(url.split('?')[0], { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'x', tags: [1, 2] }) });
    console.log(r.status, await r.text());
  }
})().catch((e) => { console.error(e); process.exit(1); });
"#;

fn record_and_replay(name: &str, program: &[&str]) {
    let mut setup = Setup::new(name);
    let urls = setup.urls();
    let mut cmd = program.to_vec();
    cmd.extend(urls.iter().map(String::as_str));
    let recorded = ok(setup.run("once", &cmd));
    assert_eq!(recorded.lines().count(), 10, "{recorded}");
    assert_eq!(recorded.lines().filter(|l| l.starts_with("404 ")).count(), 2, "{recorded}");
    assert_eq!(recorded.lines().filter(|l| l.starts_with("201 ")).count(), 2, "{recorded}");
    let har = std::fs::read_to_string(setup.har()).unwrap();
    assert!(!har.contains("s3cret") && !har.contains("topsecret"), "secrets reached the file");
    setup.stop_servers();
    assert_eq!(ok(setup.run("none", &cmd)), recorded);
}

#[test]
fn python_requests_records_then_replays() {
    need_python_module("requests", "requests");
    record_and_replay("har-requests", &["python3", "-c", PYTHON]);
}

#[test]
fn node_fetch_records_then_replays() {
    need("node", "nodejs");
    record_and_replay("har-node", &["node", "-e", NODE]);
}

#[test]
fn eight_processes_recording_at_once_leave_every_entry() {
    need("curl", "curl");
    let setup = Setup::new("har-parallel");
    let script = format!(
        "for k in 1 2 3 4 5 6 7 8; do (for i in $(seq 20); do curl -sS -o /dev/null 'http://localhost:{}/items?k='$k'&i='$i; done) & done; wait",
        setup.ports.0
    );
    ok(setup.run("all", &["sh", "-c", &script]));
    let doc = json(&std::fs::read_to_string(setup.har()).unwrap());
    let entries = doc["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 160);
    let mut seen: Vec<String> = entries.iter().map(|e| e["request"]["url"].as_str().unwrap().to_string()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 160, "every request once");
}

#[test]
fn recording_processes_killed_while_appending_leave_only_the_har() {
    need("curl", "curl");
    need("pkill", "procps");
    let setup = Setup::new("har-killed");
    // Eight recording loops, and a loop killing their curls (only
    // theirs: other tests run curl too) at random moments.
    let script = format!(
        "loops=; parents=; for k in 1 2 3 4 5 6 7 8; do \
           (for i in $(seq 25); do curl -sS -o /dev/null 'http://localhost:{}/items?k='$k'&i='$i 2>/dev/null; done) & \
           loops=\"$loops $!\"; parents=\"$parents,$!\"; done; \
         (while :; do pkill -9 -x -P \"${{parents#,}}\" curl; sleep 0.02; done) & killer=$!; \
         wait $loops; kill $killer",
        setup.ports.0
    );
    setup.run("all", &["sh", "-c", &script]);
    let doc = json(&std::fs::read_to_string(setup.har()).unwrap());
    assert!(doc["log"]["entries"].as_array().is_some_and(|e| !e.is_empty()));
    let dir = setup.env.parent().unwrap();
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("api.har") && n != "api.har")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A HAR written the way a browser's devtools export one (HTTP/2
/// pseudo-headers, `http/2.0`, base64 content, `_` fields) answers curl over
/// https, verified, with no flag.
#[test]
fn a_browser_export_replays_to_curl_over_https() {
    need("curl", "curl");
    let dir = temp_dir("har-browser");
    let har = r#"{"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [], "entries": [
  {"_initiator": {"type": "other"}, "_priority": "VeryHigh", "_resourceType": "document", "cache": {}, "connection": "7001",
   "request": {"method": "GET", "url": "https://shop.example.test/api/cart?id=7&lang=en", "httpVersion": "http/2.0",
     "headers": [{"name": ":authority", "value": "shop.example.test"}, {"name": ":method", "value": "GET"},
                 {"name": ":path", "value": "/api/cart?id=7&lang=en"}, {"name": ":scheme", "value": "https"},
                 {"name": "cookie", "value": "sid=abc"}],
     "queryString": [{"name": "id", "value": "7"}, {"name": "lang", "value": "en"}], "cookies": [], "headersSize": -1, "bodySize": 0},
   "response": {"status": 200, "statusText": "", "httpVersion": "http/2.0",
     "headers": [{"name": "content-type", "value": "application/json; charset=utf-8"}, {"name": "content-encoding", "value": "gzip"},
                 {"name": "x-cart", "value": "7"}],
     "cookies": [], "content": {"size": 27, "mimeType": "application/json", "compression": 10, "text": "eyJjYXJ0Ijo3LCJpdGVtcyI6WyJ0ZWEiXX0=", "encoding": "base64"},
     "redirectURL": "", "headersSize": -1, "bodySize": 17, "_transferSize": 240, "_error": null},
   "serverIPAddress": "93.184.216.34", "startedDateTime": "2026-11-01T10:00:00.000Z", "time": 42.1,
   "timings": {"blocked": 1, "dns": -1, "ssl": -1, "connect": -1, "send": 0.2, "wait": 40, "receive": 0.9, "_blocked_queueing": 0.5}}
]}}"#;
    std::fs::write(dir.join("browser.har"), har).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_SHOP=https://shop.example.test -> har:browser.har\nINTERCEPT_RECORD=none\n");
    let out = run_with(&env, &["curl", "-sS", "-D", "-", "https://shop.example.test/api/cart?lang=en&id=7"]);
    let text = ok(out);
    // curl and the route agree on HTTP/2 by ALPN, as with the browser.
    assert!(text.starts_with("HTTP/2 200 \r\n"), "{text}");
    assert!(text.contains("x-cart: 7\r\n") && !text.contains("content-encoding"), "{text}");
    assert!(text.ends_with("\r\n\r\n{\"cart\":7,\"items\":[\"tea\"]}"), "{text}");
}

#[test]
fn a_bad_har_file_stops_the_run_naming_it() {
    let dir = temp_dir("har-bad");
    std::fs::write(dir.join("broken.har"), "{\"log\": {\"entries\": [\n{\"request\": {}, \"response\": {\"status\": 200}}]}}").unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_API=http://api.example.test -> har:broken.har\n");
    let out = run_with(&env, &["true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with(&format!("{}: entry 1: request has no method\n", dir.join("broken.har").display())), "{err}");
    assert!(err.contains("in the HAR file of API"), "{err}");
}

/// The milliseconds of each `har: HOW FILE (N entries) in MS ms` line.
fn load_times(err: &str, how: &str) -> Vec<f64> {
    err.lines()
        .filter(|l| l.contains(&format!("har: {how} ")))
        .map(|l| l.rsplit(" in ").next().unwrap().trim_end_matches(" ms").parse().unwrap())
        .collect()
}

/// A 200 MB recording is parsed once per run (by `intercept run`, when it
/// checks the file): each process of the run reads the run's index of it
/// instead, in under a tenth of what parsing costs a process with no run,
/// and still answers every body whole.
#[test]
fn a_large_har_is_parsed_once_per_run() {
    need("curl", "curl");
    let dir = temp_dir("har-large");
    let body = "x".repeat(100_000);
    let mut text = String::from(r#"{"log": {"version": "1.2", "entries": ["#);
    for i in 0..2_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"request": {{"method": "GET", "url": "http://big.example.test/item/{i}", "headers": []}}, "response": {{"status": 200, "headers": [{{"name": "Content-Type", "value": "text/plain"}}], "content": {{"text": "{i:04}:{body}"}}}}}}"#
        ));
    }
    text.push_str("]}}\n");
    assert!(text.len() > 200_000_000);
    std::fs::write(dir.join("big.har"), text).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_BIG=http://big.example.test -> har:big.har\nINTERCEPT_RECORD=none\nINTERCEPT_LOG=info\n");
    let script = "for i in 7 1999; do curl -sS http://big.example.test/item/$i | head -c 5; curl -sS -o /dev/null -w ' %{size_download}\\n' http://big.example.test/item/$i; done";
    let never = dir.join("never.env");
    std::fs::write(&never, std::fs::read_to_string(&*env).unwrap() + "INTERCEPT_SUPERVISE=never\n").unwrap();
    // A run is kept for a har: route even unsupervised; with its
    // directory unset, each process is on its own.
    let alone = run_with(&never, &["sh", "-c", &format!("unset INTERCEPT_RUN_DIR; {script}")]);
    let err = stderr(&alone);
    assert_eq!(ok(alone), "0007: 100005\n1999: 100005\n");
    let parsed = load_times(&err, "indexed");
    assert_eq!(parsed.len(), 4, "with no run, every process parses the file:\n{err}");
    let out = run_with(&env, &["sh", "-c", script]);
    let err = stderr(&out);
    assert_eq!(ok(out), "0007: 100005\n1999: 100005\n");
    assert!(load_times(&err, "indexed").is_empty(), "{err}");
    let read = load_times(&err, "read the run's index of");
    assert_eq!(read.len(), 4, "{err}");
    let fastest_parse = parsed.iter().copied().fold(f64::INFINITY, f64::min);
    for ms in read {
        assert!(ms < fastest_parse / 10.0, "the run's index took {ms} ms, parsing {fastest_parse} ms:\n{err}");
    }
}
