//! The stubs app over in-memory requests: loading, every matcher on every
//! request field, priorities, scenarios, templates, faults and the
//! near-miss report.

use super::*;
use crate::apps::Body;
use crate::testing::{TempDir, temp_dir};

/// A stubs directory with these mapping files (name, JSON text).
fn dir_with(name: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::create_dir_all(dir.join("__files")).unwrap();
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// A request from "METHOD /target", headers, and a reader of its body.
fn request<'a>(line: &str, headers: &[(&str, &str)], body: &'a mut &[u8]) -> Request<'a> {
    let (method, target) = line.split_once(' ').unwrap();
    Request {
        method: method.into(),
        scheme: "http",
        host: "api.test".into(),
        port: 80,
        target: target.into(),
        script_name: String::new(),
        path_info: target.split('?').next().unwrap().into(),
        query: target.split_once('?').map_or("", |(_, q)| q).into(),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body,
        client: None,
        opener: None,
    }
}

/// Calls the app: "METHOD /target", headers, body.
fn call(stubs: &Stubs, line: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<(String, String)>, String) {
    let mut reader = body.as_bytes();
    let r = stubs.call(&mut request(line, headers, &mut reader));
    let body = match r.body {
        Body::Bytes(b) | Body::Raw(b) => String::from_utf8_lossy(&b).into_owned(),
        Body::Reset | Body::Upgrade(_) => "(reset)".into(),
        Body::Stream { mut reader, .. } => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut b).unwrap();
            String::from_utf8_lossy(&b).into_owned()
        }
    };
    (r.status, r.headers, body)
}

/// Request headers in a test case.
type Headers = &'static [(&'static str, &'static str)];

/// One stub per matcher and request field, shared with the integration
/// test that drives it with curl.
const EVERY_MATCHER: &str = include_str!("../../../tests/fixtures/every-matcher.json");

#[test]
fn every_matcher_picks_its_stub_and_refuses_a_near_miss() {
    let dir = dir_with("stubs-matchers", &[("mappings/all.json", EVERY_MATCHER)]);
    let stubs = Stubs::new(dir.to_path_buf());
    let hits: [(&str, Headers, &str, &str); 11] = [
        ("GET /exact?a=1", &[], "", "url"),
        ("GET /path?anything=1", &[], "", "urlPath"),
        ("DELETE /pat/42?x=y", &[], "", "urlPattern"),
        ("PUT /users/ann", &[], "", "urlPathPattern"),
        ("GET /q?id=7", &[], "", "query"),
        ("GET /h", &[("accept", "application/json"), ("X-Key", "k-123"), ("X-Not", "good"), ("X-Case", "yes")], "", "headers"),
        ("GET /c", &[("Cookie", "theme=dark; session=abc")], "", "cookies"),
        ("GET /auth", &[("Authorization", "Basic am86cHc=")], "", "basic"),
        ("POST /json", &[], r#"{"a": 1.0, "b": [1, 2], "extra": true}"#, "json"),
        ("POST /jp", &[], r#"{"items": [{"id": 3}], "name": "bob"}"#, "jsonpath"),
        ("GET /logic", &[("X-V", "cb")], "", "logic"),
    ];
    for (line, headers, body, expected) in hits {
        assert_eq!(call(&stubs, line, headers, body), (200, vec![], expected.to_string()), "{line}");
    }
    let misses: [(&str, Headers, &str); 11] = [
        ("GET /exact?a=2", &[], ""),
        ("POST /path", &[], ""),
        ("GET /pat/x?x=y", &[], ""),
        ("GET /users/Ann1", &[], ""),
        ("GET /q?id=7&debug=1", &[], ""),
        ("GET /h", &[("Accept", "text/html"), ("X-Key", "k-123"), ("X-Not", "good"), ("X-Case", "yes")], ""),
        ("GET /c", &[("Cookie", "session=abd")], ""),
        ("GET /auth", &[("Authorization", "Basic am86eHg=")], ""),
        ("POST /json", &[], r#"{"a": 2, "b": [1, 2]}"#),
        ("POST /jp", &[], r#"{"items": [{"id": 4}], "name": "bob"}"#),
        ("GET /logic", &[("X-V", "b")], ""),
    ];
    for (line, headers, body) in misses {
        assert_eq!(call(&stubs, line, headers, body).0, 404, "{line} must not match");
    }
    // The fast test and the measured one agree on every stub and request.
    let mappings = mapping::load(&dir).unwrap();
    let requests = hits.iter().map(|(l, h, b, _)| (*l, *h, *b)).chain(misses);
    for (line, headers, body) in requests {
        let mut reader = body.as_bytes();
        let seen = Seen::of(&request(line, headers, &mut reader), body.as_bytes());
        for m in &mappings {
            let measured = near_miss::fields(&m.request, &seen).iter().all(|f| f.distance == 0.0);
            assert_eq!(near_miss::matches(&m.request, &seen), measured, "{} on {line}", m.label);
        }
    }
}

#[test]
fn priority_then_the_latest_loaded_wins() {
    let dir = dir_with(
        "stubs-priority",
        &[
            ("mappings/a.json", r#"{"request": {"urlPath": "/x"}, "response": {"body": "a"}}"#),
            ("mappings/b.json", r#"{"request": {"urlPath": "/x"}, "response": {"body": "b"}}"#),
            ("mappings/c.json", r#"{"priority": 1, "request": {"urlPath": "/y"}, "response": {"body": "c"}}"#),
            ("mappings/d.json", r#"{"priority": 9, "request": {"urlPath": "/y"}, "response": {"body": "d"}}"#),
        ],
    );
    let stubs = Stubs::new(dir.to_path_buf());
    assert_eq!(call(&stubs, "GET /x", &[], "").2, "b");
    assert_eq!(call(&stubs, "GET /y", &[], "").2, "c");
}

#[test]
fn scenarios_move_on_across_requests() {
    let todo = r#"{"mappings": [
      {"scenarioName": "todo", "requiredScenarioState": "Started", "request": {"method": "GET", "urlPath": "/items"}, "response": {"jsonBody": []}},
      {"scenarioName": "todo", "requiredScenarioState": "Started", "newScenarioState": "added", "request": {"method": "POST", "urlPath": "/items"}, "response": {"status": 201}},
      {"scenarioName": "todo", "requiredScenarioState": "added", "request": {"method": "GET", "urlPath": "/items"}, "response": {"jsonBody": ["milk"]}}
    ]}"#;
    let dir = dir_with("stubs-scenario", &[("mappings/todo.json", todo)]);
    let stubs = Stubs::new(dir.to_path_buf());
    let json = vec![("Content-Type".to_string(), "application/json".to_string())];
    assert_eq!(call(&stubs, "GET /items", &[], ""), (200, json.clone(), "[]".into()));
    assert_eq!(call(&stubs, "POST /items", &[], "milk").0, 201);
    assert_eq!(call(&stubs, "GET /items", &[], ""), (200, json, r#"["milk"]"#.into()));
    assert_eq!(call(&stubs, "POST /items", &[], "eggs").0, 404, "only from Started");
}

#[test]
fn responses_carry_every_body_kind_headers_and_templates() {
    let files = [
        (
            "mappings/r.json",
            r#"{"mappings": [
          {"request": {"urlPath": "/b64"}, "response": {"base64Body": "aGVsbG8=", "headers": {"X-Many": ["1", "2"]}}},
          {"request": {"urlPath": "/drip"}, "response": {"status": 299, "statusMessage": "Slowly", "body": "abcdef", "chunkedDribbleDelay": {"numberOfChunks": 3, "totalDuration": 90}}},
          {"request": {"urlPath": "/file"}, "response": {"bodyFileName": "page.html", "headers": {"Content-Type": "text/html"}}},
          {"request": {"urlPathPattern": "/t/.*"}, "response": {"transformers": ["response-template"],
             "headers": {"X-Path": "{{request.path}}"},
             "body": "{{request.method}} {{request.pathSegments.[1]}} q={{request.query.q}} h={{request.headers.X-Id}} n={{jsonPath request.body '$.name'}} r={{randomValue length=5 type='NUMERIC'}}"}}
        ]}"#,
        ),
        ("__files/page.html", "<p>from a file</p>"),
    ];
    let dir = dir_with("stubs-responses", &files);
    let stubs = Stubs::new(dir.to_path_buf());
    let (status, headers, body) = call(&stubs, "GET /b64", &[], "");
    assert_eq!((status, body.as_str()), (200, "hello"));
    assert_eq!(headers, [("X-Many".to_string(), "1".to_string()), ("X-Many".to_string(), "2".to_string())]);
    assert_eq!(call(&stubs, "GET /file", &[], "").2, "<p>from a file</p>");
    let started = std::time::Instant::now();
    assert_eq!(call(&stubs, "GET /drip", &[], "").2, "abcdef");
    assert!(started.elapsed() >= std::time::Duration::from_millis(60), "two pauses of 30 ms");
    let (_, headers, body) = call(&stubs, "POST /t/seven?q=1", &[("X-Id", "42")], r#"{"name": "ann"}"#);
    assert_eq!(headers, [("X-Path".to_string(), "/t/seven".to_string())]);
    let (fixed, random) = body.split_at(body.len() - 5);
    assert_eq!(fixed, "POST seven q=1 h=42 n=ann r=");
    assert!(random.bytes().all(|b| b.is_ascii_digit()), "{body}");
}

#[test]
fn faults_are_raw_bytes_then_a_close() {
    let faults = r#"{"mappings": [
      {"request": {"urlPath": "/empty"}, "response": {"fault": "EMPTY_RESPONSE"}},
      {"request": {"urlPath": "/chunk"}, "response": {"fault": "MALFORMED_RESPONSE_CHUNK"}},
      {"request": {"urlPath": "/random"}, "response": {"fault": "RANDOM_DATA_THEN_CLOSE"}}
    ]}"#;
    let dir = dir_with("stubs-faults", &[("mappings/f.json", faults)]);
    let stubs = Stubs::new(dir.to_path_buf());
    assert_eq!(call(&stubs, "GET /empty", &[], "").2, "");
    assert!(call(&stubs, "GET /chunk", &[], "").2.starts_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nlskdu"));
    assert!(!call(&stubs, "GET /random", &[], "").2.is_empty());
}

#[test]
fn the_near_miss_report_names_the_closest_stubs_and_what_differed() {
    let files = [
        (
            "mappings/users.json",
            r#"{"name": "get user", "request": {"method": "GET", "urlPath": "/users/7", "headers": {"Accept": {"equalTo": "application/json"}}}, "response": {"body": "ann"}}"#,
        ),
        ("mappings/orders.json", r#"{"name": "list orders", "request": {"method": "POST", "url": "/orders"}, "response": {"body": "[]"}}"#),
    ];
    let dir = dir_with("stubs-near-miss", &files);
    let stubs = Stubs::new(dir.to_path_buf());
    let (status, _, body) = call(&stubs, "GET /users/8", &[("Accept", "text/plain")], "");
    assert_eq!(status, 404);
    assert_eq!(
        body,
        "No stub matched this request.\n\nGET /users/8\nAccept: text/plain\n\n\
         Closest stub: get user (1 of 3 fields match, distance 0.33)\n\
         \x20 URL path: expected /users/7\n\
         \x20           but was /users/8\n\
         \x20 header Accept: expected application/json\n\
         \x20                but was text/plain\n\
         \nClosest stub: list orders (0 of 2 fields match, distance 0.81)\n\
         \x20 method: expected POST\n\
         \x20         but was GET\n\
         \x20 URL: expected /orders\n\
         \x20      but was /users/8\n"
    );
}

#[test]
fn bad_mappings_are_errors_with_file_and_line() {
    let cases = [
        ("syntax", "{\n  \"request\": {\n    \"url\": \"/x\",\n  }\n}\n", "x.json:4: not JSON"),
        (
            "matcher",
            "{\n  \"request\": {\n    \"urlPath\": \"/x\",\n    \"headers\": {\"A\": {\"equalsTo\": \"b\"}}\n  }\n}\n",
            "x.json:4: headers.A: unknown matcher `equalsTo`",
        ),
        ("field", "{\n  \"request\": {\"urlPath\": \"/x\"},\n  \"respone\": {}\n}\n", "x.json:3: unknown field `respone`"),
        (
            "file",
            "{\"request\": {\"urlPath\": \"/x\"},\n \"response\": {\"bodyFileName\": \"missing.txt\"}}\n",
            "x.json:2: bodyFileName `missing.txt`: cannot read",
        ),
    ];
    for (name, text, expected) in cases {
        let dir = dir_with(&format!("stubs-bad-{name}"), &[("mappings/x.json", text)]);
        let e = validate(&dir).unwrap_err();
        assert!(e.contains(expected), "{name}: {e}");
        let stubs = Stubs::new(dir.to_path_buf());
        assert_eq!(call(&stubs, "GET /x", &[], "").0, 500, "{name}");
    }
}

#[test]
fn delay_distributions_delay() {
    let delays = r#"{"mappings": [
      {"request": {"urlPath": "/uniform"}, "response": {"body": "u", "delayDistribution": {"type": "uniform", "lower": 30, "upper": 40}}},
      {"request": {"urlPath": "/lognormal"}, "response": {"body": "l", "delayDistribution": {"type": "lognormal", "median": 5, "sigma": 0.1}}},
      {"request": {"urlPath": "/fixed"}, "response": {"body": "f", "fixedDelayMilliseconds": 30}}
    ]}"#;
    let dir = dir_with("stubs-delays", &[("mappings/d.json", delays)]);
    let stubs = Stubs::new(dir.to_path_buf());
    for (path, body, at_least) in [("/uniform", "u", 30), ("/lognormal", "l", 1), ("/fixed", "f", 30)] {
        let started = std::time::Instant::now();
        assert_eq!(call(&stubs, &format!("GET {path}"), &[], "").2, body);
        assert!(started.elapsed() >= std::time::Duration::from_millis(at_least), "{path}: {:?}", started.elapsed());
    }
    let bad =
        dir_with("stubs-bad-delay", &[("mappings/d.json", r#"{"request": {}, "response": {"delayDistribution": {"type": "poisson"}}}"#)]);
    assert!(validate(&bad).unwrap_err().contains("unknown delayDistribution type"));
}

#[test]
fn stubs_answer_from_memory_unless_a_mapping_waits_breaks_or_proxies() {
    let plain = r#"{"request": {"url": "/a"}, "response": {"status": 200, "body": "a"}}"#;
    let at_once = dir_with("stubs-at-once", &[("mappings/a.json", plain)]);
    assert!(Stubs::new(at_once.to_path_buf()).answers_from_memory());
    for (name, response) in [
        ("delay", r#"{"status": 200, "fixedDelayMilliseconds": 5}"#),
        ("dribble", r#"{"status": 200, "body": "ab", "chunkedDribbleDelay": {"numberOfChunks": 2, "totalDuration": 10}}"#),
        ("fault", r#"{"fault": "CONNECTION_RESET_BY_PEER"}"#),
        ("proxy", r#"{"proxyBaseUrl": "http://origin.test"}"#),
    ] {
        let mapping = format!(r#"{{"request": {{"url": "/b"}}, "response": {response}}}"#);
        let dir = dir_with(&format!("stubs-{name}"), &[("mappings/a.json", plain), ("mappings/b.json", &mapping)]);
        assert!(!Stubs::new(dir.to_path_buf()).answers_from_memory(), "{name}");
    }
    let broken = dir_with("stubs-broken", &[("mappings/a.json", "{")]);
    assert!(!Stubs::new(broken.to_path_buf()).answers_from_memory());
}

#[test]
fn a_looping_template_is_refused_at_load_and_never_rendered() {
    let looping = r#"{"request": {"urlPath": "/loop"}, "response": {"status": 200, "body": "{{#*inline \"p\"}}x{{> p}}{{/inline}}{{> p}}", "transformers": ["response-template"]}}"#;
    let dir = dir_with("stubs-loop", &[("mappings/loop.json", looping)]);
    let e = validate(&dir).unwrap_err();
    assert!(e.contains("loop.json:1: ") && e.contains("includes itself"), "{e}");
    // Loaded anyway (the bare shim loads on the first request): a 5xx,
    // and the process lives on.
    let stubs = Stubs::new(dir.to_path_buf());
    let (status, _, body) = call(&stubs, "GET /loop", &[], "");
    assert!((500..600).contains(&status), "{status} {body}");
}

#[test]
fn a_template_that_fails_to_render_is_a_500() {
    let bad = r#"{"request": {"urlPath": "/bad"}, "response": {"status": 200, "body": "{{jsonPath request.body '$.['}}", "transformers": ["response-template"]}}"#;
    let dir = dir_with("stubs-bad-template", &[("mappings/bad.json", bad)]);
    let stubs = Stubs::new(dir.to_path_buf());
    let (status, _, body) = call(&stubs, "POST /bad", &[], "{}");
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("template error: "), "{body}");
}

#[test]
fn a_symlink_loop_in_mappings_loads_each_file_once() {
    let one = r#"{"request": {"urlPath": "/one"}, "response": {"status": 200}}"#;
    let dir = dir_with("stubs-symlink-loop", &[("mappings/sub/one.json", one)]);
    std::os::unix::fs::symlink("..", dir.join("mappings/sub/loop")).unwrap();
    std::os::unix::fs::symlink("one.json", dir.join("mappings/sub/again.json")).unwrap();
    assert_eq!(validate(&dir).unwrap(), 1);
}
