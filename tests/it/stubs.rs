//! `stubs:DIR` through real clients: WireMock mapping files answer curl,
//! Python requests and Node's fetch; faults are seen as clients see them;
//! a delay holds only its own connection; a bad mapping stops `check`.

use crate::common::*;

/// A WireMock directory in the documented format (mappings and __files),
/// written the way WireMock's own documentation shows its examples.
pub fn wiremock_dir(name: &str) -> (TempDir, Env) {
    let dir = temp_dir(name);
    let stubs = dir.join("wiremock");
    std::fs::create_dir_all(stubs.join("mappings/orders")).unwrap();
    std::fs::create_dir_all(stubs.join("__files")).unwrap();
    let files = [
        // From "Stubbing": the basic stub.
        (
            "mappings/some-thing.json",
            r#"{
  "request": { "method": "GET", "url": "/some/thing" },
  "response": { "status": 200, "body": "Hello, world!", "headers": { "Content-Type": "text/plain" } }
}"#,
        ),
        // From "Request matching": headers, query, cookies, basic auth and a JSON body.
        (
            "mappings/everything.json",
            r#"{
  "request": {
    "urlPath": "/everything",
    "method": "ANY",
    "headers": { "Accept": { "contains": "xml" } },
    "queryParameters": { "search_term": { "equalTo": "WireMock" } },
    "cookies": { "session": { "matches": ".*12345.*" } },
    "basicAuthCredentials": { "username": "jeff@example.com", "password": "jeffteenjefftyjeff" },
    "bodyPatterns": [ { "equalToJson": { "total_results": 4 } }, { "matchesJsonPath": "$.total_results" } ]
  },
  "response": { "status": 200, "jsonBody": { "everything": "matched" } }
}"#,
        ),
        // A mappings file with several stubs, priorities and a body file.
        (
            "mappings/orders/orders.json",
            r#"{ "mappings": [
  { "priority": 10, "request": { "method": "GET", "urlPathPattern": "/orders/.*" }, "response": { "status": 404, "body": "no such order" } },
  { "priority": 1, "request": { "method": "GET", "urlPath": "/orders/7" }, "response": { "bodyFileName": "order-7.json", "headers": { "Content-Type": "application/json" } } },
  { "request": { "method": "POST", "urlPath": "/orders", "bodyPatterns": [ { "matchesJsonPath": { "expression": "$.item", "equalTo": "tea" } } ] },
    "response": { "status": 201, "transformers": ["response-template"], "headers": { "Location": "/orders/{{randomValue length=4 type='NUMERIC'}}" },
                  "body": "{{jsonPath request.body '$.item'}} for {{request.headers.X-Customer}}" } }
]}"#,
        ),
        // From "Stateful behaviour": the to-do list scenario.
        (
            "mappings/todo.json",
            r#"{ "mappings": [
  { "scenarioName": "To do list", "requiredScenarioState": "Started", "request": { "method": "GET", "url": "/todo/items" },
    "response": { "status": 200, "body": "<items><item>Buy milk</item></items>" } },
  { "scenarioName": "To do list", "requiredScenarioState": "Started", "newScenarioState": "Cancel newspaper item added",
    "request": { "method": "POST", "url": "/todo/items", "bodyPatterns": [ { "contains": "Cancel newspaper subscription" } ] },
    "response": { "status": 201 } },
  { "scenarioName": "To do list", "requiredScenarioState": "Cancel newspaper item added", "request": { "method": "GET", "url": "/todo/items" },
    "response": { "status": 200, "body": "<items><item>Buy milk</item><item>Cancel newspaper subscription</item></items>" } }
]}"#,
        ),
        // From "Simulating faults".
        (
            "mappings/faults.json",
            r#"{ "mappings": [
  { "request": { "url": "/fault/reset" }, "response": { "fault": "CONNECTION_RESET_BY_PEER" } },
  { "request": { "url": "/fault/empty" }, "response": { "fault": "EMPTY_RESPONSE" } },
  { "request": { "url": "/fault/chunk" }, "response": { "fault": "MALFORMED_RESPONSE_CHUNK" } },
  { "request": { "url": "/fault/random" }, "response": { "fault": "RANDOM_DATA_THEN_CLOSE" } },
  { "request": { "url": "/slow" }, "response": { "status": 200, "body": "slow", "fixedDelayMilliseconds": 1500 } }
]}"#,
        ),
        ("__files/order-7.json", r#"{"id": 7, "item": "coffee"}"#),
        (
            "mappings/teapot.json",
            r#"{ "request": { "urlPath": "/tea" }, "response": { "status": 418, "statusMessage": "Short and stout", "body": "tea" } }"#,
        ),
        (
            "mappings/bodies.json",
            r#"{ "mappings": [
  { "request": { "urlPath": "/b64" }, "response": { "base64Body": "AAEC/w==", "headers": { "Content-Type": "application/octet-stream" } } },
  { "request": { "urlPath": "/drip" }, "response": { "body": "0123456789", "chunkedDribbleDelay": { "numberOfChunks": 5, "totalDuration": 400 } } },
  { "request": { "urlPath": "/jitter" }, "response": { "body": "late", "delayDistribution": { "type": "uniform", "lower": 200, "upper": 300 } } },
  { "request": { "urlPath": "/tail" }, "response": { "body": "tail", "delayDistribution": { "type": "lognormal", "median": 100, "sigma": 0.1 } } }
]}"#,
        ),
    ];
    for (path, text) in files {
        std::fs::write(stubs.join(path), text).unwrap();
    }
    let env = env_file(&dir, "INTERCEPT_ROUTE_API=http://api.example.test -> stubs:wiremock\nINTERCEPT_PASSTHROUGH=deny\n");
    (dir, env)
}

#[test]
fn curl_gets_the_documented_answers() {
    need("curl", "curl");
    let (_dir, env) = wiremock_dir("stubs-curl");
    let get = |args: &[&str]| ok(run_with(&env, &[&["curl", "-sS"][..], args].concat()));
    assert_eq!(get(&["http://api.example.test/some/thing"]), "Hello, world!");
    let everything = get(&[
        "-X",
        "PUT",
        "-H",
        "Accept: text/xml",
        "-b",
        "session=abc12345def",
        "-u",
        "jeff@example.com:jeffteenjefftyjeff",
        "--data-binary",
        r#"{"total_results": 4}"#,
        "http://api.example.test/everything?search_term=WireMock",
    ]);
    assert_eq!(everything, r#"{"everything":"matched"}"#);
    assert_eq!(get(&["http://api.example.test/orders/7"]), r#"{"id": 7, "item": "coffee"}"#);
    assert!(get(&["-i", "http://api.example.test/tea"]).starts_with("HTTP/1.1 418 Short and stout\r\n"));
    let bytes = run_with(&env, &["curl", "-sS", "http://api.example.test/b64"]);
    assert!(bytes.status.success(), "{}", stderr(&bytes));
    assert_eq!(bytes.stdout, [0, 1, 2, 255]);
    // The dribble arrives whole, and over its whole duration; the delays
    // hold the answer at least their lower bound.
    for (path, body, at_least) in [("/drip", "0123456789", 0.3), ("/jitter", "late", 0.2), ("/tail", "tail", 0.05)] {
        let timed = get(&["-w", " %{time_total}", &format!("http://api.example.test{path}")]);
        let (text, took) = timed.rsplit_once(' ').unwrap();
        assert_eq!(text, body);
        assert!(took.parse::<f64>().unwrap() >= at_least, "{path} took {took} s");
    }
    assert_eq!(get(&["-w", " %{http_code}", "http://api.example.test/orders/8"]), "no such order 404");
    let created = get(&["-i", "-H", "X-Customer: ann", "--data-binary", r#"{"item": "tea"}"#, "http://api.example.test/orders"]);
    assert!(created.starts_with("HTTP/1.1 201 Created\r\n") && created.ends_with("\r\n\r\ntea for ann"), "{created}");
    let location = created.lines().find_map(|l| l.strip_prefix("Location: /orders/")).unwrap().trim();
    assert!(location.len() == 4 && location.bytes().all(|b| b.is_ascii_digit()), "{created}");
}

#[test]
fn a_near_miss_is_a_404_with_the_report_and_one_stderr_line() {
    need("curl", "curl");
    let (_dir, env) = wiremock_dir("stubs-near-miss");
    let out = run_with(&env, &["curl", "-sS", "-w", "%{http_code}", "http://api.example.test/some/thin"]);
    let body = ok(out.clone());
    assert!(body.starts_with("No stub matched this request.\n\nGET /some/thin\n"), "{body}");
    assert!(
        body.contains("Closest stub: mappings/some-thing.json (1 of 2 fields match, distance 0.05)\n  URL: expected /some/thing\n"),
        "{body}"
    );
    assert!(body.ends_with("404"), "{body}");
    let err = stderr(&out);
    assert_eq!(err, "intercept: stubs: no stub matched GET /some/thin; closest stub: mappings/some-thing.json\n");
}

#[test]
fn python_requests_and_node_fetch_walk_a_scenario() {
    need_python_module("requests", "requests");
    need("node", "nodejs");
    let (_dir, env) = wiremock_dir("stubs-scenario");
    let script = r#"
import requests
u = "http://api.example.test/todo/items"
print(requests.get(u).text)
print(requests.post(u, data="Cancel newspaper subscription").status_code)
print(requests.get(u).text)
"#;
    assert_eq!(
        ok(run_with(&env, &["python3", "-c", script])),
        "<items><item>Buy milk</item></items>\n201\n<items><item>Buy milk</item><item>Cancel newspaper subscription</item></items>\n"
    );
    // A new run starts the scenario again: state lives in the run.
    let node = r#"
(async () => {
  const u = "http://api.example.test/todo/items";
  console.log(await (await fetch(u)).text());
  console.log((await fetch(u, { method: "POST", body: "Cancel newspaper subscription" })).status);
  console.log(await (await fetch(u)).text());
})();
"#;
    assert_eq!(
        ok(run_with(&env, &["node", "-e", node])),
        "<items><item>Buy milk</item></items>\n201\n<items><item>Buy milk</item><item>Cancel newspaper subscription</item></items>\n"
    );
}

/// Each fault as a client sees it: a reset (curl 56, "Connection reset by
/// peer"), an empty reply (52), a bad chunk (56) and random bytes (1 or 8:
/// not HTTP).
#[test]
fn faults_are_seen_as_clients_see_them() {
    need("curl", "curl");
    need("python3", "python3");
    let (_dir, env) = wiremock_dir("stubs-faults");
    let code = |path: &str| run_with(&env, &["curl", "-sS", &format!("http://api.example.test{path}")]);
    let reset = code("/fault/reset");
    assert_eq!(reset.status.code(), Some(56), "{}", stderr(&reset));
    assert!(stderr(&reset).contains("Connection reset by peer"), "{}", stderr(&reset));
    assert_eq!(code("/fault/empty").status.code(), Some(52));
    assert_eq!(code("/fault/chunk").status.code(), Some(56));
    assert!(matches!(code("/fault/random").status.code(), Some(1 | 8)));
    let script = r#"
import socket
s = socket.create_connection(("api.example.test", 80))
s.sendall(b"GET /fault/reset HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
try:
    print(s.recv(100))
except ConnectionResetError as e:
    print("ECONNRESET", e.errno)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "ECONNRESET 104\n");
}

/// A 1.5 s delay on one connection holds that connection only.
#[test]
fn a_delay_does_not_hold_another_connection() {
    need("python3", "python3");
    let (_dir, env) = wiremock_dir("stubs-delay");
    let script = r#"
import threading, time, urllib.request
t0 = time.monotonic()
slow = {}
def fetch_slow():
    slow["body"] = urllib.request.urlopen("http://api.example.test/slow").read()
    slow["at"] = time.monotonic() - t0
th = threading.Thread(target=fetch_slow)
th.start()
time.sleep(0.1)
fast = urllib.request.urlopen("http://api.example.test/some/thing").read()
fast_at = time.monotonic() - t0
th.join()
print(fast, fast_at < 1.0, slow["body"], slow["at"] >= 1.5)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "b'Hello, world!' True b'slow' True\n");
}

#[test]
fn a_bad_mapping_stops_check_and_run_with_its_file_and_line() {
    let (dir, env) = wiremock_dir("stubs-bad");
    std::fs::write(
        dir.join("wiremock/mappings/zz-bad.json"),
        "{\n  \"request\": {\n    \"urlPath\": \"/x\",\n    \"headers\": { \"A\": { \"equalsTo\": \"b\" } }\n  }\n}\n",
    )
    .unwrap();
    let bad = dir.join("wiremock/mappings/zz-bad.json");
    for out in [intercept(&["check", "--env-file", env.to_str().unwrap()]), run_with(&env, &["echo", "ran anyway"])] {
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.starts_with(&format!("{}:4: headers.A: unknown matcher `equalsTo`\n", bad.display())), "{err}");
        assert!(err.contains("in the stubs of API"), "{err}");
        assert_eq!(stdout(&out), "");
    }
}

/// The journal names the stub that answered (null for none), and
/// `intercept verify` checks it: each flag, and its exit codes.
#[test]
fn the_journal_names_stubs_and_verify_checks_it() {
    need("curl", "curl");
    let (dir, env) = wiremock_dir("stubs-verify");
    let journal = dir.join("journal.jsonl");
    let urls = [
        "http://api.example.test/some/thing",
        "http://api.example.test/orders/7",
        "http://api.example.test/orders/7",
        "http://api.example.test/some/thin",
    ];
    let mut args = vec!["run", "--env-file", env.to_str().unwrap(), "--journal", journal.to_str().unwrap(), "--", "curl", "-sS"];
    for url in &urls {
        args.extend(["-o", "/dev/null", url]);
    }
    ok(intercept(&args));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&journal).unwrap().lines().map(json).collect();
    let stubs: Vec<&serde_json::Value> = lines.iter().map(|l| &l["stub"]).collect();
    assert_eq!(
        stubs,
        [
            &json("\"mappings/some-thing.json\""),
            &json("\"mappings/orders/orders.json#1\""),
            &json("\"mappings/orders/orders.json#1\""),
            &serde_json::Value::Null
        ]
    );

    let verify = |args: &[&str]| intercept(&[&["verify", "--journal", journal.to_str().unwrap()][..], args].concat());
    let all_met = verify(&[
        "--expect",
        "GET /some/thing",
        "--expect",
        "GET /orders/[0-9]+ x2",
        "--expect",
        "ANY http://api.example.test:80/orders/7",
    ]);
    assert_eq!((all_met.status.code(), stdout(&all_met).as_str()), (Some(0), ""));
    let unmet = verify(&["--expect", "GET /orders/7 x3", "--expect", "POST /orders"]);
    assert_eq!(unmet.status.code(), Some(1));
    assert_eq!(
        stdout(&unmet),
        "expected GET /orders/7 3 time(s), seen 2 time(s)\n\
         \x20 nearest: GET http://api.example.test:80/orders/7 -> 200\n\
         \x20 nearest: GET http://api.example.test:80/orders/7 -> 200\n\
         \x20 nearest: GET http://api.example.test:80/some/thin -> 404\n\
         expected POST /orders at least once, seen 0 time(s)\n\
         \x20 nearest: GET http://api.example.test:80/orders/7 -> 200\n\
         \x20 nearest: GET http://api.example.test:80/orders/7 -> 200\n\
         \x20 nearest: GET http://api.example.test:80/some/thin -> 404\n"
    );
    let unmatched = verify(&["--no-unmatched"]);
    assert_eq!(unmatched.status.code(), Some(1));
    assert_eq!(stdout(&unmatched), "unmatched (no stub): GET http://api.example.test:80/some/thin -> 404\n");
    let unused = verify(&["--unused-stubs", dir.join("wiremock").to_str().unwrap()]);
    assert_eq!(unused.status.code(), Some(1));
    let report = stdout(&unused);
    assert!(
        report.contains("unused stub: mappings/everything.json\n") && report.contains("unused stub: mappings/orders/orders.json#0\n"),
        "{report}"
    );
    assert!(!report.contains("some-thing.json") && !report.contains("orders.json#1"), "{report}");
    let missing = intercept(&["verify", "--journal", dir.join("nope.jsonl").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).starts_with("intercept: cannot read the journal"), "{}", stderr(&missing));
}

/// A catch-all stub at low priority with `proxyBaseUrl` passes what no
/// other stub answers on to a real server, and its answer comes back.
#[test]
fn proxy_base_url_passes_the_rest_to_a_real_server() {
    need("curl", "curl");
    need("python3", "python3");
    let (dir, env) = wiremock_dir("stubs-proxy");
    let server = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("real: %s %s" % (self.path, self.headers.get("X-Pass"))).encode()
        self.send_response(203, "From Upstream"); self.send_header("X-Upstream", "yes"); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = std::process::Command::new("python3").args(["-c", server]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut port).unwrap();
    let mapping = format!(
        r#"{{ "priority": 10, "request": {{ "method": "ANY", "urlPattern": "/real/.*" }}, "response": {{ "proxyBaseUrl": "http://127.0.0.1:{}" }} }}"#,
        port.trim()
    );
    std::fs::write(dir.join("wiremock/mappings/proxy.json"), mapping).unwrap();
    let allow = std::fs::read_to_string(&*env).unwrap().replace("INTERCEPT_PASSTHROUGH=deny", "INTERCEPT_PASSTHROUGH=loopback");
    std::fs::write(&*env, allow).unwrap();
    let proxied = run_with(&env, &["curl", "-sS", "-i", "-H", "X-Pass: along", "http://api.example.test/real/x?y=1"]);
    let stubbed = run_with(&env, &["curl", "-sS", "http://api.example.test/some/thing"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let proxied = ok(proxied);
    assert!(proxied.starts_with("HTTP/1.1 203 From Upstream\r\n") && proxied.contains("X-Upstream: yes\r\n"), "{proxied}");
    assert!(proxied.ends_with("\r\n\r\nreal: /real/x?y=1 along"), "{proxied}");
    assert_eq!(ok(stubbed), "Hello, world!");
}

/// The cases of tests/fixtures/every-matcher.json: each stub's name, the
/// curl arguments (the path last) of a request it answers, and of its near
/// miss.
pub const EVERY_MATCHER: [(&str, &[&str], &[&str]); 11] = [
    ("url", &["/exact?a=1"], &["/exact?a=2"]),
    ("urlPath", &["/path?any=1"], &["-X", "POST", "/path"]),
    ("urlPattern", &["-X", "DELETE", "/pat/42?x=y"], &["/pat/x?x=y"]),
    ("urlPathPattern", &["-X", "PUT", "/users/ann"], &["/users/Ann1"]),
    ("query", &["/q?id=7"], &["/q?id=7&debug=1"]),
    (
        "headers",
        &["-H", "Accept: application/json", "-H", "X-Key: k-123", "-H", "X-Not: good", "-H", "X-Case: yes", "/h"],
        &["-H", "Accept: text/html", "-H", "X-Key: k-123", "-H", "X-Not: good", "-H", "X-Case: yes", "/h"],
    ),
    ("cookies", &["-b", "theme=dark; session=abc", "/c"], &["-b", "session=abd", "/c"]),
    ("basic", &["-u", "jo:pw", "/auth"], &["-u", "jo:px", "/auth"]),
    (
        "json",
        &["--data-binary", r#"{"a": 1.0, "b": [1, 2], "extra": true}"#, "/json"],
        &["--data-binary", r#"{"a": 2, "b": [1, 2]}"#, "/json"],
    ),
    (
        "jsonpath",
        &["--data-binary", r#"{"items": [{"id": 3}], "name": "bob"}"#, "/jp"],
        &["--data-binary", r#"{"items": [{"id": 4}], "name": "bob"}"#, "/jp"],
    ),
    ("logic", &["-H", "X-V: cb", "/logic"], &["-H", "X-V: b", "/logic"]),
];

/// Every matcher on every request field, through curl: each stub answers
/// the request made for it and not its near miss.
#[test]
fn curl_meets_every_matcher_with_a_hit_and_a_near_miss() {
    need("curl", "curl");
    let dir = temp_dir("stubs-every-matcher");
    std::fs::create_dir_all(dir.join("stubs/mappings")).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/every-matcher.json");
    std::fs::copy(fixture, dir.join("stubs/mappings/all.json")).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_S=http://m.example.test -> stubs:stubs\nINTERCEPT_LOG=off\n");
    let curl = |args: &[&str]| {
        let (path, options) = args.split_last().unwrap();
        let url = format!("http://m.example.test{path}");
        ok(run_with(&env, &[&["curl", "-sS", "-w", " %{http_code}"][..], options, &[url.as_str()]].concat()))
    };
    for (name, hit, miss) in EVERY_MATCHER {
        assert_eq!(curl(hit), format!("{name} 200"), "{name}");
        let missed = curl(miss);
        assert!(missed.starts_with("No stub matched this request.") && missed.ends_with(" 404"), "{name}: {missed}");
    }
}
